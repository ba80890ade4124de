"""Every numba kernel that evaluates the TG-43 formalism: the exact scalar path, tabulation, the
grid-row kernel and the point kernel.

Self-contained on purpose (a rule tested in tests/test_tg43_kernel_cache.py): numba's on-disk
cache (``cache=True``) is invalidated only when *this* file changes; a jitted function called
from another file, or a global constant imported from another module, is frozen into the cached
machine code and a later change there would silently not take effect. So every jitted function
here calls only jitted functions of this file, and the conventions of :mod:`dose.tg43` (mm → cm,
the on-axis switch) reach the kernels as data in ``p_scal``, never as compiled-in globals.

``p_scal`` = [Λ (cGy h⁻¹ U⁻¹), L (cm), G_L(1 cm, 90°) (cm⁻²), capsule radius (cm), capsule
half-length (cm), on-axis sin θ switch, cm per mm] (built by :func:`dose.engine.kernels.tables.
fast_model`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["R_DIRECT_MM", "part_rows", "points_kernel", "tabulate", "tabulate_pairs"]

#: Below this distance (mm) from a seed centre the exact formalism is used instead of the table.
R_DIRECT_MM = 3.5
_RAD2DEG = 180.0 / math.pi


@njit(cache=True, nogil=True, fastmath=False)
def _interp_lin(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation with clamping at both ends (xs increasing)."""
    n = xs.size
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    w = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + w * (ys[hi] - ys[lo])


@njit(cache=True, nogil=True, fastmath=False)
def _g_radial(r_cm: float, g_r: np.ndarray, g_v: np.ndarray) -> float:
    """g_L: linear inside, nearest below r_min, log-linear beyond r_max."""
    n = g_r.size
    if r_cm > g_r[n - 1]:
        slope = math.log(g_v[n - 1] / g_v[n - 2]) / (g_r[n - 1] - g_r[n - 2])
        return g_v[n - 1] * math.exp(slope * (r_cm - g_r[n - 1]))
    return _interp_lin(r_cm, g_r, g_v)


@njit(cache=True, nogil=True, fastmath=False)
def _f_aniso(r_cm: float, theta_deg: float, f_r: np.ndarray, f_t: np.ndarray, f_v: np.ndarray):
    """F bilinear in (r, θ°); θ already folded to [0, 90]; r clamped to the table."""
    nr = f_r.size
    nt = f_t.size
    # r bracket (clamped)
    if r_cm <= f_r[0]:
        ir = 0
        wr = 0.0
    elif r_cm >= f_r[nr - 1]:
        ir = nr - 2
        wr = 1.0
    else:
        ir = 0
        while f_r[ir + 1] < r_cm:
            ir += 1
        wr = (r_cm - f_r[ir]) / (f_r[ir + 1] - f_r[ir])
    if nr == 1:
        ir = 0
        wr = 0.0
    # θ bracket
    if theta_deg <= f_t[0]:
        it = 0
        wt = 0.0
    elif theta_deg >= f_t[nt - 1]:
        it = nt - 2
        wt = 1.0
    else:
        it = 0
        while f_t[it + 1] < theta_deg:
            it += 1
        wt = (theta_deg - f_t[it]) / (f_t[it + 1] - f_t[it])
    ir1 = min(ir + 1, nr - 1)
    a = f_v[it, ir] + wr * (f_v[it, ir1] - f_v[it, ir])
    b = f_v[it + 1, ir] + wr * (f_v[it + 1, ir1] - f_v[it + 1, ir])
    return a + wt * (b - a)


@njit(cache=True, nogil=True, fastmath=False)
def _exact_rate_per_u(rho_mm, z_mm, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d):
    """Exact dose rate per unit S_K (cGy/h/U) at cylinder coords (ρ, z) in mm of one seed.

    ``p_scal``: see the module docstring. Returns (rate, flagged).
    """
    lam = p_scal[0]
    length = p_scal[1]
    g0 = p_scal[2]
    cap_r = p_scal[3]
    cap_h = p_scal[4]
    on_axis_sin = p_scal[5]
    cm_per_mm = p_scal[6]
    rho = abs(rho_mm) * cm_per_mm  # the one mm → cm conversion of this path
    z = abs(z_mm) * cm_per_mm  # folding θ to [0°, 90°] = using |z|
    half = 0.5 * length
    if is_1d:
        r = math.sqrt(rho * rho + z * z)
        flagged = r < cap_r
        if flagged:
            r = cap_r
        beta = 2.0 * math.atan2(half, r)
        geo = beta / (length * r)
        phi = _interp_lin(r, phi_r, phi_v)
        return lam * geo / g0 * _g_radial(r, g_r, g_v) * phi, flagged
    flagged = rho < cap_r and z < cap_h
    if flagged:
        rho = cap_r
    r = math.sqrt(rho * rho + z * z)
    sin_t = rho / r
    if sin_t < on_axis_sin and r > half:
        geo = 1.0 / (r * r - half * half)
    else:
        beta = math.atan2(z + half, rho) - math.atan2(z - half, rho)
        geo = beta / (length * rho)
    theta = math.atan2(rho, z) * 180.0 / math.pi
    f = _f_aniso(r, theta, f_r, f_t, f_v)
    return lam * geo / g0 * _g_radial(r, g_r, g_v) * f, flagged


@njit(cache=True, nogil=True, parallel=True)
def tabulate(r_mm, theta_deg, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d):
    """Ḋ·r² (cGy/h/U · mm²) on the (r_mm × θ) table nodes."""
    nr = r_mm.size
    nt = theta_deg.size
    out = np.empty((nr, nt))
    for i in prange(nr):
        r = max(r_mm[i], 1e-3)
        for j in range(nt):
            th = theta_deg[j] * math.pi / 180.0
            v, _ = _exact_rate_per_u(
                r * math.sin(th),
                r * math.cos(th),
                p_scal,
                g_r,
                g_v,
                f_r,
                f_t,
                f_v,
                phi_r,
                phi_v,
                is_1d,
            )
            out[i, j] = v * r * r
    return out


@njit(cache=True, nogil=True, parallel=True)
def tabulate_pairs(r_mm, theta_deg, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d):
    """Ḋ·r² (cGy/h/U · mm²) at the (r_mm[i], theta_deg[i]) pairs."""
    n = r_mm.size
    out = np.empty(n)
    for i in prange(n):
        r = max(r_mm[i], 1e-3)
        th = theta_deg[i] * math.pi / 180.0
        v, _ = _exact_rate_per_u(
            r * math.sin(th), r * math.cos(th), p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d
        )
        out[i] = v * r * r
    return out


# =========================================================================== grid kernel
# The table lookup is written out inline in the kernels on purpose: a call to a numba function
# that takes arrays costs reference-count traffic per call (measured 60-100 ns per voxel-seed
# pair here, against ~11 ns inline).
@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def part_rows(
    out,
    counts,
    row0,
    row1,
    origin,
    m_ijk,
    pos,
    axis,
    strength,
    boxes,
    direct,
    r_in,
    r_out,
    rho_cyl,
    lut,
    lut_par,
    atan_c,
    p_scal,
    g_r,
    g_v,
    f_r,
    f_t,
    f_v,
    phi_r,
    phi_v,
    is_1d,
):
    """out += Σ_s S_s·lut(r, θ)/r² on flattened rows [row0, row1) of ``out`` (z, y, x) float64.

    ``lut`` is one table on TABLE_LAYOUT (``lut_par``): T for EXACT mode, or one part of the
    FAST split. Voxels visited per (row, seed): the whole row if ``r_out`` ≤ 0, else the hull
    of the row ∩ ball r < r_out and (``rho_cyl`` > 0) the row ∩ cylinder ρ < rho_cyl around the
    seed axis; the table is 0 elsewhere. ``direct``: the exact formalism below R_DIRECT_MM
    with capsule flags counted into ``counts`` (±1 by the sign of S); otherwise voxels with
    r < ``r_in`` are skipped (the table is 0 there). ``boxes`` (ns, 4) [j0, j1, k0, k1]: rows
    outside a seed's box (which holds everything that seed's part touches) skip that seed.

    Pass 1 of each (row, seed) is branch-free float32 arithmetic that LLVM vectorises (table
    cell, weights, 1/r²); pass 2 does the bilinear table lookups (scalar gathers).
    """
    ny = out.shape[1]
    nx = out.shape[2]
    ns = pos.shape[0]
    rd2 = R_DIRECT_MM * R_DIRECT_MM
    r_in2 = rd2 if direct else r_in * r_in
    cut2 = r_out * r_out if r_out > 0.0 else -1.0
    cyl = r_out > 0.0 and rho_cyl > 0.0
    rho_c2 = rho_cyl * rho_cyl
    cx = m_ijk[0, 0]
    cy = m_ijk[1, 0]
    cz = m_ijk[2, 0]
    cc = cx * cx + cy * cy + cz * cz
    flat = lut.ravel()
    nt = lut.shape[1]
    nr = lut.shape[0]
    c0 = np.float32(atan_c[0])
    c1 = np.float32(atan_c[1])
    c2 = np.float32(atan_c[2])
    c3 = np.float32(atan_c[3])
    c4 = np.float32(atan_c[4])
    c5 = np.float32(atan_c[5])
    c6 = np.float32(atan_c[6])
    c7 = np.float32(atan_c[7])
    c8 = np.float32(atan_c[8])
    c9 = np.float32(atan_c[9])
    inv_r0 = np.float32(lut_par[0])
    rb1 = np.float32(lut_par[1])
    n0 = np.float32(lut_par[2])
    inv_r1 = np.float32(lut_par[3])
    rb2 = np.float32(lut_par[4])
    n01 = np.float32(lut_par[5])
    inv_r2 = np.float32(lut_par[6])
    r_max = np.float32(lut_par[7])
    k_tf = np.float32(2.0 * _RAD2DEG * lut_par[8])  # t = tan(θ/2) → fine column
    k_deg = np.float32(2.0 * _RAD2DEG)  # t → degrees
    tb = np.float32(lut_par[9])
    ntf = np.float32(lut_par[10])
    inv_tc = np.float32(lut_par[11])
    zero32 = np.float32(0.0)
    one32 = np.float32(1.0)
    ncol = np.float32(nt - 2)
    nrow = np.float32(nr - 2)
    nt32 = np.int32(nt)
    n_rows = row1 - row0
    n_blocks = min(n_rows, 64)
    for blk in prange(n_blocks):
        # + 16: pass 1 runs over whole vector blocks (see below)
        wr_buf = np.empty(nx + 16, dtype=np.float32)
        wt_buf = np.empty(nx + 16, dtype=np.float32)
        iv_buf = np.empty(nx + 16, dtype=np.float32)
        ib_buf = np.empty(nx + 16, dtype=np.int32)
        # rows interleaved across blocks: the work is concentrated around the seeds, and
        # prange hands each thread a contiguous range of blocks
        for row in range(row0 + blk, row1, n_blocks):
            k = row // ny
            j = row - k * ny
            bx = origin[0] + j * m_ijk[0, 1] + k * m_ijk[0, 2]
            by = origin[1] + j * m_ijk[1, 1] + k * m_ijk[1, 2]
            bz = origin[2] + j * m_ijk[2, 1] + k * m_ijk[2, 2]
            orow = out[k, j]
            for s in range(ns):
                if j < boxes[s, 0] or j > boxes[s, 1] or k < boxes[s, 2] or k > boxes[s, 3]:
                    continue
                dx = bx - pos[s, 0]
                dy = by - pos[s, 1]
                dz = bz - pos[s, 2]
                A = dx * dx + dy * dy + dz * dz
                B = dx * cx + dy * cy + dz * cz
                a0 = dx * axis[s, 0] + dy * axis[s, 1] + dz * axis[s, 2]
                a1 = cx * axis[s, 0] + cy * axis[s, 1] + cz * axis[s, 2]
                ic = -B / cc
                dmin2 = A - B * B / cc
                if dmin2 < 0.0:
                    dmin2 = 0.0
                lo = 0
                hi = nx
                if cut2 > 0.0:
                    # the row's i-range: the ball r < r_out, and the hull with the row ∩ the
                    # cylinder ρ < rho_cyl around the seed axis
                    flo = 1.0
                    fhi = 0.0
                    if dmin2 < cut2:
                        w = math.sqrt((cut2 - dmin2) / cc)
                        flo = ic - w
                        fhi = ic + w
                    if cyl:
                        alpha = cc - a1 * a1  # ρ²(i) − ρc² = alpha·i² + 2·beta·i + gamma
                        beta = B - a0 * a1
                        gamma = A - a0 * a0 - rho_c2
                        clo = 1.0
                        chi = 0.0
                        if alpha > 1e-9 * cc:
                            disc = beta * beta - alpha * gamma
                            if disc >= 0.0:
                                sq = math.sqrt(disc)
                                clo = (-beta - sq) / alpha
                                chi = (-beta + sq) / alpha
                        elif gamma <= 0.0:  # the row runs along the axis, inside the cylinder
                            clo = -1.0
                            chi = float(nx)
                        if chi >= clo:
                            if fhi < flo:
                                flo = clo
                                fhi = chi
                            else:
                                flo = min(flo, clo)
                                fhi = max(fhi, chi)
                    if fhi < flo:
                        continue
                    lo = max(0, int(math.ceil(flo)))  # noqa: RUF046
                    hi = min(nx, int(math.floor(fhi)) + 1)  # noqa: RUF046
                    if hi <= lo:
                        continue
                nlo = hi
                nhi = hi
                if dmin2 < r_in2:
                    w = math.sqrt((r_in2 - dmin2) / cc)
                    if direct:  # superset of r < R_DIRECT_MM: checked per voxel below
                        nlo = min(max(lo, int(math.floor(ic - w))), hi)  # noqa: RUF046
                        nhi = min(max(nlo, int(math.ceil(ic + w)) + 1), hi)  # noqa: RUF046
                    else:  # subset of r < r_in (the table is 0 there): skipped
                        nlo = min(max(lo, int(math.ceil(ic - w))), hi)  # noqa: RUF046
                        nhi = min(max(nlo, int(math.floor(ic + w)) + 1), hi)  # noqa: RUF046
                st = strength[s]
                two_b = 2.0 * B
                # float32 geometry, re-centred on the row's closest point ic to the seed so that
                # r² = dmin² + cc·d² has no cancellation (relative error ~1e-7 even for long rows)
                # and z = z(ic) + d·a1 has terms no larger than r; d = i − ic goes through int32
                # (int32 → float32 converts in vector registers, int64 does not without AVX-512).
                ic_i = int(math.floor(ic))  # noqa: RUF046
                frac32 = np.float32(ic - ic_i)
                dm2_32 = np.float32(dmin2)
                cc32 = np.float32(cc)
                zc32 = np.float32(a0 + ic * a1)
                a1_32 = np.float32(a1)
                # pass 1 over a multiple of 8 elements (one AVX float32 vector): the vector loop
                # then has no scalar remainder (rows are short: ~30 voxels in a near ball, ~12
                # across an axis cylinder); the values past hi are computed into the spare
                # buffer tail and never read (8 measured 3-4 % faster than 16)
                hi_v = lo + ((hi - lo + 7) // 8) * 8
                for i in range(lo, hi_v):
                    d = np.float32(np.int32(i - ic_i)) - frac32
                    r2 = dm2_32 + cc32 * (d * d)
                    za = zc32 + d * a1_32
                    if r2 < one32:
                        r2 = one32
                    r = np.sqrt(r2)
                    az = abs(za)
                    t = np.sqrt(max(r2 - az * az, zero32)) / (r + az)  # tan(θ/2)
                    q = t * t
                    p = (
                        (
                            ((((((c9 * q + c8) * q + c7) * q + c6) * q + c5) * q + c4) * q + c3) * q
                            + c2
                        )
                        * q
                        + c1
                    ) * q + c0
                    tp = t * p
                    th_deg = tp * k_deg
                    ft = tp * k_tf if th_deg < tb else ntf + (th_deg - tb) * inv_tc
                    rr = min(r, r_max)
                    fr = (
                        rr * inv_r0
                        if rr < rb1
                        else (n0 + (rr - rb1) * inv_r1 if rr < rb2 else n01 + (rr - rb2) * inv_r2)
                    )
                    jt = np.int32(min(ft, ncol))
                    ir = np.int32(min(fr, nrow))
                    wt_buf[i] = ft - np.float32(jt)
                    wr_buf[i] = fr - np.float32(ir)
                    ib_buf[i] = ir * nt32 + jt
                    iv_buf[i] = one32 / r2
                for seg in range(2):
                    i0 = lo if seg == 0 else nhi
                    i1 = nlo if seg == 0 else hi
                    for i in range(i0, i1):
                        base = ib_buf[i]
                        wt = wt_buf[i]
                        l00 = flat[base]
                        l01 = flat[base + 1]
                        l10 = flat[base + nt]
                        l11 = flat[base + nt + 1]
                        a = l00 + wt * (l01 - l00)
                        b = l10 + wt * (l11 - l10)
                        orow[i] += st * ((a + wr_buf[i] * (b - a)) * iv_buf[i])
                if not direct:
                    continue
                for i in range(nlo, nhi):
                    r2d = A + i * (two_b + i * cc)
                    za = a0 + i * a1
                    if r2d >= rd2:
                        base = ib_buf[i]
                        wt = wt_buf[i]
                        a = flat[base] + wt * (flat[base + 1] - flat[base])
                        b = flat[base + nt] + wt * (flat[base + nt + 1] - flat[base + nt])
                        orow[i] += st * ((a + wr_buf[i] * (b - a)) * iv_buf[i])
                    else:  # r < R_DIRECT_MM: the exact formalism (every part table is T there)
                        rho2d = r2d - za * za
                        rho = math.sqrt(rho2d) if rho2d > 0.0 else 0.0
                        v, flag = _exact_rate_per_u(
                            rho, za, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d
                        )
                        orow[i] += st * v
                        if flag:
                            counts[k, j, i] += 1 if st >= 0.0 else -1


@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def points_kernel(
    out,
    flags,
    pts,
    pos,
    axis,
    strength,
    cutoff2,
    lut,
    lut_par,
    atan_c,
    p_scal,
    g_r,
    g_v,
    f_r,
    f_t,
    f_v,
    phi_r,
    phi_v,
    is_1d,
):
    """out[p] = Σ_s S_s·Ḋ_s(p) (cGy/h); flags[p] = True inside any capsule. pts (P, 3) mm."""
    npts = pts.shape[0]
    ns = pos.shape[0]
    rd2 = R_DIRECT_MM * R_DIRECT_MM
    flat = lut.ravel()
    nt = lut.shape[1]
    nr = lut.shape[0]
    k_deg = 2.0 * _RAD2DEG
    for p in prange(npts):
        acc = 0.0
        fl = False
        for s in range(ns):
            dx = pts[p, 0] - pos[s, 0]
            dy = pts[p, 1] - pos[s, 1]
            dz = pts[p, 2] - pos[s, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if cutoff2 > 0.0 and r2 >= cutoff2:
                continue
            za = dx * axis[s, 0] + dy * axis[s, 1] + dz * axis[s, 2]
            if r2 >= rd2:
                r = math.sqrt(r2)
                az = abs(za)
                rho2 = max(r2 - az * az, 0.0)
                t = math.sqrt(rho2) / (r + az)
                q = t * t
                pp = atan_c[9]
                for c in range(8, -1, -1):
                    pp = pp * q + atan_c[c]
                th = t * pp * k_deg
                ft = (
                    th * lut_par[8]
                    if th < lut_par[9]
                    else lut_par[10] + (th - lut_par[9]) * lut_par[11]
                )
                rr = min(r, lut_par[7])
                if rr < lut_par[1]:
                    fr = rr * lut_par[0]
                elif rr < lut_par[4]:
                    fr = lut_par[2] + (rr - lut_par[1]) * lut_par[3]
                else:
                    fr = lut_par[5] + (rr - lut_par[4]) * lut_par[6]
                jt = min(int(ft), nt - 2)
                wt = ft - jt
                ir = min(int(fr), nr - 2)
                wr = fr - ir
                base = ir * nt + jt
                a = flat[base] + wt * (flat[base + 1] - flat[base])
                b = flat[base + nt] + wt * (flat[base + nt + 1] - flat[base + nt])
                acc += strength[s] * ((a + wr * (b - a)) / r2)
            else:
                rho2 = r2 - za * za
                rho = math.sqrt(rho2) if rho2 > 0.0 else 0.0
                v, flag = _exact_rate_per_u(
                    rho, za, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d
                )
                acc += strength[s] * v
                fl = fl or flag
        out[p] = acc
        flags[p] = fl
