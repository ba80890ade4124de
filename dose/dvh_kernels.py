"""Numba kernels of the DVH computation (dose sampling, histograms, V(≥ d) of a whole grid).

Private to :mod:`dose.dvh_calc` and :mod:`planner.structures.rasterise`: array conventions are
those of :mod:`dose.geometry` (arrays (z, y, x), continuous indices (k, j, i) here), doses in Gy,
volumes in cm³.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: R3 low-discrepancy sequence constants (Roberts 2018: 1/φ₃^n, φ₃ the "plastic" number).
_PHI3 = 1.2207440846057596
_R3 = np.array([1.0 / _PHI3, 1.0 / _PHI3**2, 1.0 / _PHI3**3])
#: Jitter table: (L, 3) in [-1, 1), the R3 sequence; sample m uses row m mod L (L prime), so
#: consecutive samples get well-spread offsets and the lookup costs one modulo.
JITTER_LEN = 8191
JITTER = 2.0 * np.mod(0.5 + np.arange(1, JITTER_LEN + 1)[:, None] * _R3[None, :], 1.0) - 1.0

#: Indices into the running statistics of :func:`accumulate`.
S_TOTAL, S_INTEGRAL, S_LO_I, S_HI_I, S_LO_A, S_HI_A, S_OUTSIDE = range(7)


def new_stats() -> np.ndarray:
    """(7,) running statistics for :func:`accumulate` (volume, ∫dose, extremes, outside)."""
    return np.array([0.0, 0.0, np.inf, -np.inf, np.inf, -np.inf, 0.0])


@numba.njit(cache=True, inline="always")
def _trilinear(dose: np.ndarray, qk: float, qj: float, qi: float) -> tuple[float, bool]:
    """Trilinear dose at continuous array index (k, j, i); (0, False) outside the voxel boxes."""
    nz, ny, nx = dose.shape
    if qk < -0.5 or qj < -0.5 or qi < -0.5 or qk > nz - 0.5 or qj > ny - 0.5 or qi > nx - 0.5:
        return 0.0, False
    # Inside the outer half-voxel the dose is held at the edge value (no extrapolation).
    qk = min(max(qk, 0.0), nz - 1.0)
    qj = min(max(qj, 0.0), ny - 1.0)
    qi = min(max(qi, 0.0), nx - 1.0)
    k0 = min(int(qk), max(nz - 2, 0))
    j0 = min(int(qj), max(ny - 2, 0))
    i0 = min(int(qi), max(nx - 2, 0))
    k1 = min(k0 + 1, nz - 1)
    j1 = min(j0 + 1, ny - 1)
    i1 = min(i0 + 1, nx - 1)
    tk = qk - k0
    tj = qj - j0
    ti = qi - i0
    c00 = dose[k0, j0, i0] * (1.0 - ti) + dose[k0, j0, i1] * ti
    c01 = dose[k0, j1, i0] * (1.0 - ti) + dose[k0, j1, i1] * ti
    c10 = dose[k1, j0, i0] * (1.0 - ti) + dose[k1, j0, i1] * ti
    c11 = dose[k1, j1, i0] * (1.0 - ti) + dose[k1, j1, i1] * ti
    c0 = c00 * (1.0 - tj) + c01 * tj
    c1 = c10 * (1.0 - tj) + c11 * tj
    return c0 * (1.0 - tk) + c1 * tk, True


@numba.njit(cache=True)
def _sample_voxels(
    dose: np.ndarray,
    vox_flat: np.ndarray,
    grid_shape: np.ndarray,
    affine: np.ndarray,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    out_dose: np.ndarray,
    out_inside: np.ndarray,
) -> float:
    """Dose at the sub-cell sample points of the listed voxels.

    vox_flat (N,) int: C-order flat voxel indices on the occupancy grid; affine (3, 4): grid
    (k, j, i, 1) → dose-grid continuous (k, j, i); offsets (S, 3): sub-cell centres relative to
    the voxel centre (index units); jitter_half: half sub-cell width (0 = no jitter).
    out_dose, out_inside: (N, S). Returns the voxel maximum: the largest dose-grid value at the
    dose voxels holding the listed voxels' centres (NaN if none is inside the dose grid).
    """
    n_vox = vox_flat.shape[0]
    n_sub = offsets.shape[0]
    ny = grid_shape[1]
    nx = grid_shape[2]
    dz, dy, dx = dose.shape
    vmax = -np.inf
    for n in range(n_vox):
        f = vox_flat[n]
        k = f // (ny * nx)
        j = (f // nx) % ny
        i = f % nx
        ck = math.floor(affine[0, 0] * k + affine[0, 1] * j + affine[0, 2] * i + affine[0, 3] + 0.5)
        cj = math.floor(affine[1, 0] * k + affine[1, 1] * j + affine[1, 2] * i + affine[1, 3] + 0.5)
        ci = math.floor(affine[2, 0] * k + affine[2, 1] * j + affine[2, 2] * i + affine[2, 3] + 0.5)
        if 0 <= ck < dz and 0 <= cj < dy and 0 <= ci < dx:
            vmax = max(vmax, dose[ck, cj, ci])
        lin = f * n_sub
        for s in range(n_sub):
            pk = k + offsets[s, 0]
            pj = j + offsets[s, 1]
            pi = i + offsets[s, 2]
            if jitter_half > 0.0:
                m = (lin + s) % table.shape[0]
                pk += jitter_half * table[m, 0]
                pj += jitter_half * table[m, 1]
                pi += jitter_half * table[m, 2]
            qk = affine[0, 0] * pk + affine[0, 1] * pj + affine[0, 2] * pi + affine[0, 3]
            qj = affine[1, 0] * pk + affine[1, 1] * pj + affine[1, 2] * pi + affine[1, 3]
            qi = affine[2, 0] * pk + affine[2, 1] * pj + affine[2, 2] * pi + affine[2, 3]
            d, ok = _trilinear(dose, qk, qj, qi)
            out_dose[n, s] = d
            out_inside[n, s] = ok
    return vmax if vmax > -np.inf else np.nan


@numba.njit(cache=True)
def _sample_same_grid(
    dose: np.ndarray,
    vox_flat: np.ndarray,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    out_dose: np.ndarray,
) -> None:
    """:func:`_sample_voxels` for dose and occupancy on one grid (the plan case), faster.

    Every sample lies inside its voxel's box, so it interpolates within the voxel's 3×3×3
    neighbourhood (edge-clamped, as :func:`_trilinear`): the 27 values are loaded once per voxel
    and each sample picks the half-cell on its side of the centre along each axis.
    """
    _nz, ny, nx = dose.shape
    n_vox = vox_flat.shape[0]
    n_sub = offsets.shape[0]
    nb = np.empty((3, 3, 3))
    for n in range(n_vox):
        f = vox_flat[n]
        _load_nb(dose, f // (ny * nx), (f // nx) % ny, f % nx, nb)
        lin = f * n_sub
        for s in range(n_sub):
            out_dose[n, s] = _nb_sample(nb, lin, s, offsets, jitter_half, table)


@numba.njit(cache=True, inline="always")
def _load_nb(dose: np.ndarray, k: int, j: int, i: int, nb: np.ndarray) -> None:
    """Copy the edge-clamped 3×3×3 neighbourhood of voxel (k, j, i) into nb."""
    nz, ny, nx = dose.shape
    for a in range(3):
        kk = min(max(k + a - 1, 0), nz - 1)
        for b in range(3):
            jj = min(max(j + b - 1, 0), ny - 1)
            for c in range(3):
                ii = min(max(i + c - 1, 0), nx - 1)
                nb[a, b, c] = dose[kk, jj, ii]


@numba.njit(cache=True, inline="always")
def _nb_sample(
    nb: np.ndarray, lin: int, s: int, offsets: np.ndarray, jitter_half: float, table: np.ndarray
) -> float:
    """Trilinear dose at sub-sample s of a voxel from its neighbourhood nb (see module doc)."""
    pk = offsets[s, 0]
    pj = offsets[s, 1]
    pi = offsets[s, 2]
    if jitter_half > 0.0:
        m = (lin + s) % table.shape[0]
        pk += jitter_half * table[m, 0]
        pj += jitter_half * table[m, 1]
        pi += jitter_half * table[m, 2]
    # Half-cell on the sample's side: [-1, 0] with t = p + 1, or [0, 1] with t = p.
    a0 = 0 if pk < 0.0 else 1
    b0 = 0 if pj < 0.0 else 1
    c0 = 0 if pi < 0.0 else 1
    tk = pk + 1.0 - a0
    tj = pj + 1.0 - b0
    ti = pi + 1.0 - c0
    c00 = nb[a0, b0, c0] * (1.0 - ti) + nb[a0, b0, c0 + 1] * ti
    c01 = nb[a0, b0 + 1, c0] * (1.0 - ti) + nb[a0, b0 + 1, c0 + 1] * ti
    c10 = nb[a0 + 1, b0, c0] * (1.0 - ti) + nb[a0 + 1, b0, c0 + 1] * ti
    c11 = nb[a0 + 1, b0 + 1, c0] * (1.0 - ti) + nb[a0 + 1, b0 + 1, c0 + 1] * ti
    d0 = c00 * (1.0 - tj) + c01 * tj
    d1 = c10 * (1.0 - tj) + c11 * tj
    return d0 * (1.0 - tk) + d1 * tk


@numba.njit(cache=True)
def sample_top(doses: np.ndarray, weight: np.ndarray) -> tuple[float, bool]:
    """Largest sample dose of the voxels with weight > 0, and False if any is not finite."""
    top = 0.0
    for n in range(doses.shape[0]):
        if weight[n] > 0.0:
            for s in range(doses.shape[1]):
                d = doses[n, s]
                if not math.isfinite(d):
                    return math.nan, False
                if d > top:
                    top = d
    return top, True


@numba.njit(cache=True)
def accumulate(
    doses: np.ndarray,
    inside: np.ndarray,
    weight: np.ndarray,
    interior: np.ndarray,
    bin_width: float,
    layout: np.ndarray,
    fine: np.ndarray,
    stats: np.ndarray,
) -> None:
    """Add (N, S) sample doses, each weighing weight[n] cm³, to the fine bins of a display
    histogram (dose.dvh module docstring); may be called chunk by chunk.

    layout (n_bins, 2) int64: per display bin, its first fine bin and its number of fine bins;
    fine (n_fine, 3): volume, lowest and highest dose per fine bin (lo = +inf, hi = −inf when
    empty; one row per cache line). A display bin's volume is the sum of its fine bins.
    Doses ≥ the last bin go into it; negative doses count as 0. ``interior`` (N,) bool flags
    the voxels whose samples count for Dmin/Dmax (S_LO_I/S_HI_I; empty = all voxels);
    S_LO_A/S_HI_A are over all samples. ``inside`` (N, S) False marks samples outside the
    dose grid (their volume goes to S_OUTSIDE).
    """
    n_vox, n_sub = doses.shape
    n_bins = layout.shape[0]
    use_all = interior.shape[0] == 0
    inv = 1.0 / bin_width
    # Running sums in locals (array updates in the loop would defeat register allocation).
    total = stats[S_TOTAL]
    integral = stats[S_INTEGRAL]
    lo_i = stats[S_LO_I]
    hi_i = stats[S_HI_I]
    lo_a = stats[S_LO_A]
    hi_a = stats[S_HI_A]
    outside = stats[S_OUTSIDE]
    for n in range(n_vox):
        w = weight[n]
        if w <= 0.0:
            continue
        ext = use_all or interior[n]
        for s in range(n_sub):
            d = doses[n, s]
            if d < 0.0:
                d = 0.0
            u = d * inv
            b = min(int(u), n_bins - 1)
            m = layout[b, 1]
            f = layout[b, 0] + min(max(int((u - b) * m), 0), m - 1)
            fine[f, 0] += w
            if d < fine[f, 1]:
                fine[f, 1] = d
            if d > fine[f, 2]:
                fine[f, 2] = d
            total += w
            integral += w * d
            if not inside[n, s]:
                outside += w
            if d < lo_a:
                lo_a = d
            if d > hi_a:
                hi_a = d
            if ext:
                if d < lo_i:
                    lo_i = d
                if d > hi_i:
                    hi_i = d
    stats[S_TOTAL] = total
    stats[S_INTEGRAL] = integral
    stats[S_LO_I] = lo_i
    stats[S_HI_I] = hi_i
    stats[S_LO_A] = lo_a
    stats[S_HI_A] = hi_a
    stats[S_OUTSIDE] = outside


@numba.njit(cache=True)
def _volume_at_or_above(
    dose: np.ndarray,
    threshold: float,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    box: np.ndarray,
) -> float:
    """Σ over voxels of the fraction of sub-samples with dose ≥ threshold (in voxels).

    A voxel whose 3×3×3 neighbourhood is entirely ≥ (or < ) the threshold is counted 1 (or 0)
    without sampling: trilinear values inside the voxel box are convex combinations of those
    27 values, so the result is identical to sampling every voxel. Only voxels in ``box``
    (k0, k1, j0, j1, i0, i1, inclusive) are visited: outside the bounding box of the voxels ≥ the
    threshold grown by one voxel every neighbourhood is entirely below it.
    """
    _nz, ny, nx = dose.shape
    n_sub = offsets.shape[0]
    total = 0.0
    nb = np.empty((3, 3, 3))
    for k in range(box[0], box[1] + 1):
        acc = 0.0
        for j in range(box[2], box[3] + 1):
            for i in range(box[4], box[5] + 1):
                _load_nb(dose, k, j, i, nb)
                n_above = 0
                for a in range(3):
                    for b in range(3):
                        for c in range(3):
                            if nb[a, b, c] >= threshold:
                                n_above += 1
                if n_above == 27:
                    acc += 1.0
                    continue
                if n_above == 0:
                    continue
                lin = ((k * ny + j) * nx + i) * n_sub
                cnt = 0
                for s in range(n_sub):
                    if _nb_sample(nb, lin, s, offsets, jitter_half, table) >= threshold:
                        cnt += 1
                acc += cnt / n_sub
        total += acc
    return total


@numba.njit(cache=True)
def _threshold_box(dose: np.ndarray, threshold: float) -> np.ndarray:
    """(6,) inclusive (k0, k1, j0, j1, i0, i1) of the voxels ≥ threshold, grown by 1 and clipped
    to the grid; all −1 when no voxel reaches the threshold."""
    nz, ny, nx = dose.shape
    box = np.array([nz, -1, ny, -1, nx, -1])
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if dose[k, j, i] >= threshold:
                    box[0] = min(box[0], k)
                    box[1] = max(box[1], k)
                    box[2] = min(box[2], j)
                    box[3] = max(box[3], j)
                    box[4] = min(box[4], i)
                    box[5] = max(box[5], i)
    if box[1] < 0:
        return np.full(6, -1)
    box[0] = max(box[0] - 1, 0)
    box[1] = min(box[1] + 1, nz - 1)
    box[2] = max(box[2] - 1, 0)
    box[3] = min(box[3] + 1, ny - 1)
    box[4] = max(box[4] - 1, 0)
    box[5] = min(box[5] + 1, nx - 1)
    return box


@numba.njit(cache=True)
def _occupied(occ_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (int64) and occupancy (float64, clipped to 1) of the voxels with occ > 0."""
    n = 0
    for f in range(occ_flat.shape[0]):
        if occ_flat[f] > 0:
            n += 1
    idx = np.empty(n, dtype=np.int64)
    frac = np.empty(n)
    m = 0
    for f in range(occ_flat.shape[0]):
        v = occ_flat[f]
        if v > 0:
            idx[m] = f
            frac[m] = min(float(v), 1.0)
            m += 1
    return idx, frac


@numba.njit(cache=True)
def _sample_point_list(
    dose: np.ndarray, kji: np.ndarray, out: np.ndarray, inside: np.ndarray
) -> None:
    for n in range(kji.shape[0]):
        d, ok = _trilinear(dose, kji[n, 0], kji[n, 1], kji[n, 2])
        out[n, 0] = d
        inside[n, 0] = ok


@numba.njit(cache=True)
def column_samples(
    dose: np.ndarray,
    aff: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    size_xy: float,
    z_lo: float,
    z_hi: float,
    m_z: int,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    seed: int,
    clamp: bool,
    out_dose: np.ndarray,
    out_inside: np.ndarray,
) -> None:
    """Dose at the samples of columns centred at (cx, cy) (N,) mm, ``size_xy`` mm wide, from z_lo
    to z_hi cut into m_z cells; offsets (S, 3) (z, y, x) in cell units. out: (N, m_z·S).
    ``clamp``: pull points into the dose grid's voxel boxes (for an ROI that lies inside them,
    whose surface samples may stray up to a fine pixel beyond its contour)."""
    nz, ny, nx = dose.shape
    n_sub = offsets.shape[0]
    dzc = (z_hi - z_lo) / m_z
    n_t = table.shape[0]
    for n in range(cx.shape[0]):
        m = (seed + n * m_z * n_sub) % n_t
        for c in range(m_z):
            zc = z_lo + (c + 0.5) * dzc
            for s in range(n_sub):
                q = c * n_sub + s
                oz = offsets[s, 0] + jitter_half * table[m, 0]
                oy = offsets[s, 1] + jitter_half * table[m, 1]
                ox = offsets[s, 2] + jitter_half * table[m, 2]
                x = cx[n] + ox * size_xy
                y = cy[n] + oy * size_xy
                z = zc + oz * dzc
                qk = aff[0, 0] * x + aff[0, 1] * y + aff[0, 2] * z + aff[0, 3]
                qj = aff[1, 0] * x + aff[1, 1] * y + aff[1, 2] * z + aff[1, 3]
                qi = aff[2, 0] * x + aff[2, 1] * y + aff[2, 2] * z + aff[2, 3]
                if clamp:
                    qk = min(max(qk, -0.5), nz - 0.5)
                    qj = min(max(qj, -0.5), ny - 0.5)
                    qi = min(max(qi, -0.5), nx - 0.5)
                d, ok = _trilinear(dose, qk, qj, qi)
                out_dose[n, q] = d
                out_inside[n, q] = ok
                m += 1
                if m == n_t:
                    m = 0


@numba.njit(cache=True)
def wall_extremes(
    dose: np.ndarray,
    aff: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    starts: np.ndarray,
    z_levels: np.ndarray,
    step: float,
) -> tuple[float, float]:
    """Min and max trilinear dose over the side walls of the prisms (polygons × z_levels):
    every edge cut into pieces ≤ ``step`` mm, at every z level (0 Gy outside the dose grid)."""
    lo = np.inf
    hi = -np.inf
    for p in range(starts.shape[0] - 1):
        a = starts[p]
        n = starts[p + 1] - a
        for e in range(n):
            x1 = vx[a + e]
            y1 = vy[a + e]
            x2 = vx[a + (e + 1) % n]
            y2 = vy[a + (e + 1) % n]
            n_pts = max(1, math.ceil(math.hypot(x2 - x1, y2 - y1) / step))
            for t in range(n_pts):
                x = x1 + (x2 - x1) * t / n_pts
                y = y1 + (y2 - y1) * t / n_pts
                for z in z_levels:
                    qk = aff[0, 0] * x + aff[0, 1] * y + aff[0, 2] * z + aff[0, 3]
                    qj = aff[1, 0] * x + aff[1, 1] * y + aff[1, 2] * z + aff[1, 3]
                    qi = aff[2, 0] * x + aff[2, 1] * y + aff[2, 2] * z + aff[2, 3]
                    d, _ok = _trilinear(dose, qk, qj, qi)
                    lo = min(lo, d)
                    hi = max(hi, d)
    return lo, hi


@numba.njit(cache=True)
def points_dose(dose: np.ndarray, kji: np.ndarray, out: np.ndarray, inside: np.ndarray) -> None:
    """Trilinear dose at continuous indices kji (N, 3) into out (N, 1), inside flags (N, 1)."""
    for n in range(kji.shape[0]):
        d, ok = _trilinear(dose, kji[n, 0], kji[n, 1], kji[n, 2])
        out[n, 0] = d
        inside[n, 0] = ok
