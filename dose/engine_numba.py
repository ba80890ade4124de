"""Fast TG-43U1 dose engine: numba kernels with uniform-grid lookup tables.

Used through :mod:`dose.engine` (``make_engine(model, kind="numba")``); this module holds the
kernels and the model-specific tables.

How it is fast and still exact enough
-------------------------------------
* Far from a seed (r ≥ ``R_DIRECT_MM``) the per-unit-strength dose rate times r² is looked up
  bilinearly in a table on a uniform (r, θ) grid: r step 0.05 mm up to 20 mm, then 1 mm up to
  600 mm (every published r node is a multiple of the step, so g_L's and F's kinks in r fall on
  table rows; beyond 600 mm the value is held); θ step 1° (every published θ node is an integer
  degree, so F's kinks in θ fall on table columns). θ = 2·atan(ρ/(r + |z|)) with a polynomial
  atan (|error| < 1e-7 rad), so no libm call in the inner loop. The table is float32 (≈ 0.36 MB
  for 981 × 91) and stays in L2. Measured against the reference: ≤ 1e-5 relative.
* Each (row, seed) is done in two passes: a branch-free float32 pass that LLVM vectorises (table
  cell index, weights, 1/r²) and a scalar pass of bilinear lookups.
* Near a seed (r < ``R_DIRECT_MM``), including the capsule, the exact formalism is evaluated
  (atan2-difference β, on-axis form, table interpolation, capsule capping and flagging).
* For a grid row (fixed j, k) and a seed, r²(i) and z(i) are quadratics/linears in i, so each
  voxel costs two FMAs for geometry; the near-field and cut-off i-ranges are solved
  analytically per row, which works for any grid direction matrix.
* Kernels are ``parallel`` over grid rows (so one 512×512 slice also uses every core),
  ``nogil`` (callable from a worker thread) and ``cache=True``; :func:`warm_up` compiles them.
* Accumulation is float64: the incremental accumulator subtracts exactly the values it added.

Every kernel launch takes ``_KERNEL_LOCK`` so launches from a GUI thread and a worker thread
never overlap (numba's workqueue threading layer is not re-entrant).

EXACT and FAST modes
--------------------
Everything above is EXACT mode: every seed-voxel pair goes through the kernel (≤ 1e-5 of the
reference engine). It is the default, and the only mode for dose at points, the CLI, exports and
anything a report quotes. FAST mode (``mode="fast"`` on grids, slices and ``DoseGrid``) is for
interactive display in the GUI:

* Each seed's kernel is split, particle-mesh style, as K = K·(1 − w) + K·w with
  w(r, ρ) = s(r)·(1 − a(ρ)): s the C² quintic smoothstep from 0 at ``FAST_R0_MM`` (10 mm) to 1
  at ``FAST_R1_MM`` (24 mm), a(ρ) a C² quintic in the distance ρ from the seed axis, 1 for
  ρ ≤ 3 mm and 0 for ρ ≥ 17 mm (``FAST_AXIAL_MM``). So the far part is zero along every seed
  axis: F(r, θ) is linear in θ and folded at 0°, a cusp on the axis that no coarse grid
  represents (before this, lone seeds erred 2-34 % near their axes, e.g. STM1251, 2301).
* Near part: evaluated per fine voxel inside each seed's ball r ≤ R1 and its axis cylinder
  ρ < 17 mm (clipped to the grid) only (rows outside the seed's index-space bounding box are
  skipped; the hull of the ball and cylinder i-ranges is solved per row), exact formalism and
  capsule flags below ``R_DIRECT_MM`` as in EXACT mode.
* Far part: summed over all seeds on a coarse grid in the fine grid's index space (every n-th
  voxel per axis, n = round(``FAST_STEP_MM`` / spacing), 2 mm → n = 2 at 1 mm; one node of
  padding before and two after; single slices: ``FAST_SLICE_STEP_MM`` = 4 mm with the window
  from ``FAST_SLICE_R0_MM`` = 6 mm and axis strips ρ < 40 mm), then
  upsampled with separable Catmull-Rom cubics (x, y, z passes; exact for quadratics) and added.
  Any direction matrix works because the interpolation happens in index space.
* Cost on the benchmark (100 seeds, 100³ at 1 mm): 5.8e6 near-ball pairs (plus the axis
  cylinders, which largely overlap along a needle) + 1.5e7 far pairs + a 2.7 ms upsample,
  against 1e8 pairs exact (~7 ns per pair on 2 cores either way).

Accuracy, and what limits it: the far part must be smooth on the coarse step, but the TG-43
kernel is not smooth everywhere: g_L and F are piecewise linear (kinks on shells r = node and
cones θ = node). Cubic interpolation across a kink errs by ~ slope jump × step / 16. Measured
against the exact engine beyond 1 mm from every seed (before → after the axis cylinders): a
lone seed, arbitrary axis, rotated 141³ grid: 6711 3.5 → 0.67 %, 2301 21 → 0.64 %, 6702
2.9 → 0.61 %, IAI-125A 3.4 → 0.85 %, STM1251 34 → 0.55 %, AgX100 13 → 0.58 % (what remains sits
at the window edges r ≈ 20-24 mm or ρ ≈ 17 mm); the benchmark implant 0.40 → 0.16 % (2301
1.5 → 0.15 %, AgX100 1.8 → 0.16 %); random clouds ≤ 0.34 %; fast slices through the needles
0.42 → 0.21 %, oblique slices through a lone seed ≤ 1.1 % (4 mm slice step). Hence the stated
bound of FAST mode: ≤ 1.5 % beyond 1 mm from every seed (grids ≤ 1 %; the worst measured,
0.98 %, IAI-125A at r = 80 mm just off the axis cylinder). Cost on the benchmark: full grid
~140-230 ms, move ~6-9 ms, slice ~9-16 ms (2 shared cores; noisy).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from dose.sources import SourceModel
from dose.tg43 import (
    CM_PER_MM,
    MM_PER_CM,
    ON_AXIS_SIN_THETA,
    Formalism,
    UniformLUT,
    reference_geometry_factor,
)

__all__ = [
    "FAST_R0_MM",
    "FAST_R1_MM",
    "FAST_SLICE_R0_MM",
    "FAST_SLICE_STEP_MM",
    "FAST_STEP_MM",
    "R_DIRECT_MM",
    "FastModel",
    "SplitLayout",
    "far_accumulate",
    "fast_model",
    "grid_rate_accumulate",
    "near_accumulate",
    "near_rows_span",
    "points_rate",
    "split_layout",
    "upsample_into",
    "warm_up",
]

#: Below this distance (mm) from a seed centre the exact formalism is used instead of the table.
R_DIRECT_MM = 3.5
_LUT_LAYOUT = UniformLUT(
    dr_fine_cm=0.005, r_split_cm=2.0, dr_coarse_cm=0.1, r_max_cm=60.0, dtheta_deg=1.0
)
_KERNEL_LOCK = threading.RLock()
_RAD2DEG = 180.0 / math.pi


def _atan_coefficients() -> NDArray[np.float64]:
    """Coefficients c (ascending in t²) with atan(t) ≈ t·Σ c_k t^(2k) on [0, 1]."""
    t = 0.5 * (1 - np.cos(np.linspace(0, np.pi, 2001)))  # Chebyshev-like nodes on [0, 1]
    s = t * t
    y = np.where(t > 0, np.arctan(t) / np.where(t > 0, t, 1.0), 1.0)
    coef = np.polynomial.polynomial.polyfit(s, y, 9)
    return np.ascontiguousarray(coef, dtype=np.float64)


ATAN_COEF = _atan_coefficients()


# =========================================================================== exact scalar path
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

    ``p_scal`` = [Λ, L_cm, G_L(1, 90°), capsule radius cm, capsule half-length cm].
    Returns (rate, flagged).
    """
    lam = p_scal[0]
    length = p_scal[1]
    g0 = p_scal[2]
    cap_r = p_scal[3]
    cap_h = p_scal[4]
    rho = abs(rho_mm) * CM_PER_MM  # the one mm → cm conversion of this path
    z = abs(z_mm) * CM_PER_MM  # folding θ to [0°, 90°] = using |z|
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
    if sin_t < ON_AXIS_SIN_THETA and r > half:
        geo = 1.0 / (r * r - half * half)
    else:
        beta = math.atan2(z + half, rho) - math.atan2(z - half, rho)
        geo = beta / (length * rho)
    theta = math.atan2(rho, z) * 180.0 / math.pi
    f = _f_aniso(r, theta, f_r, f_t, f_v)
    return lam * geo / g0 * _g_radial(r, g_r, g_v) * f, flagged


@njit(cache=True, nogil=True, parallel=True)
def _tabulate(r_mm, theta_deg, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d):
    """Ḋ·r² (cGy/h/U · mm²) on the (r_mm × θ) table nodes."""
    nr = r_mm.size
    nt = theta_deg.size
    out = np.empty((nr, nt), dtype=np.float32)
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


@dataclass(frozen=True, eq=False)
class FastModel:
    """A source model prepared for the kernels (tables converted once, LUT built once)."""

    model: SourceModel
    formalism: Formalism
    p_scal: NDArray[np.float64]
    g_r: NDArray[np.float64]
    g_v: NDArray[np.float64]
    f_r: NDArray[np.float64]
    f_t: NDArray[np.float64]
    f_v: NDArray[np.float64]
    phi_r: NDArray[np.float64]
    phi_v: NDArray[np.float64]
    lut: NDArray[np.float32]
    lut_par: NDArray[
        np.float64
    ]  # [inv_dr_fine_mm, r_split_mm, inv_dr_coarse_mm, n_fine, r_max_mm, inv_dtheta]
    layout: UniformLUT

    @property
    def is_1d(self) -> bool:
        return self.formalism == "1d"


_FAST_CACHE: dict[tuple[str, str], FastModel] = {}


def fast_model(model: SourceModel, formalism: Formalism) -> FastModel:
    """Prepare (and cache, by table checksum) the kernel data for ``model``/``formalism``."""
    key = (model.checksum, formalism)
    fm = _FAST_CACHE.get(key)
    if fm is not None:
        return fm
    lay = _LUT_LAYOUT
    p_scal = np.array(
        [
            model.dose_rate_constant,
            model.active_length_cm,
            reference_geometry_factor(model.active_length_cm),
            model.capsule_radius_cm,
            model.capsule_half_length_cm,
        ]
    )
    is_1d = formalism == "1d"
    phi_r = model.phi_r_cm if model.phi_r_cm is not None else np.ones(1)
    phi_v = model.phi_values if model.phi_values is not None else np.ones(1)
    arrays = [
        np.ascontiguousarray(a, dtype=np.float64)
        for a in (
            model.g_r_cm,
            model.g_values,
            model.f_r_cm,
            model.f_theta_deg,
            model.f_values,
            phi_r,
            phi_v,
        )
    ]
    r_fine_mm = np.arange(lay.n_fine) * lay.dr_fine_cm * MM_PER_CM
    r_coarse_mm = (lay.r_split_cm + np.arange(lay.n_coarse) * lay.dr_coarse_cm) * MM_PER_CM
    r_mm = np.concatenate([r_fine_mm, r_coarse_mm])
    theta = np.arange(lay.n_theta) * lay.dtheta_deg
    with _KERNEL_LOCK:
        lut = _tabulate(r_mm, theta, p_scal, *arrays, is_1d)
    lut_par = np.array(
        [
            1.0 / (lay.dr_fine_cm * MM_PER_CM),
            lay.r_split_cm * MM_PER_CM,
            1.0 / (lay.dr_coarse_cm * MM_PER_CM),
            float(lay.n_fine),
            float(r_coarse_mm[-1]),
            1.0 / lay.dtheta_deg,
        ]
    )
    fm = FastModel(model, formalism, p_scal, *arrays, lut, lut_par, lay)
    _FAST_CACHE[key] = fm
    return fm


# =========================================================================== grid kernel
# The grid kernel is :func:`_split_rows` (defined with the FAST mode below; ``part`` 2 = EXACT).
# The table lookup is written out inline in the kernels on purpose: a call to a numba function
# that takes arrays costs reference-count traffic per call (measured 60-100 ns per voxel-seed
# pair here, against ~11 ns inline).
@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _points_kernel(
    out,
    flags,
    pts,
    pos,
    axis,
    strength,
    r_direct,
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
    rd2 = r_direct * r_direct
    flat = lut.ravel()
    nt = lut.shape[1]
    nr = lut.shape[0]
    kth = 2.0 * _RAD2DEG * lut_par[5]
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
                ft = t * pp * kth
                rr = min(r, lut_par[4])
                fr = (
                    rr * lut_par[0]
                    if rr < lut_par[1]
                    else (lut_par[3] + (rr - lut_par[1]) * lut_par[2])
                )
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


# =========================================================================== Python wrappers
def _model_args(fm: FastModel) -> tuple:
    return (
        fm.lut,
        fm.lut_par,
        ATAN_COEF,
        fm.p_scal,
        fm.g_r,
        fm.g_v,
        fm.f_r,
        fm.f_t,
        fm.f_v,
        fm.phi_r,
        fm.phi_v,
        fm.is_1d,
    )


def grid_rate_accumulate(
    fm: FastModel,
    out: NDArray[np.float64],
    counts: NDArray[np.int32],
    origin_mm: NDArray[np.float64],
    index_to_world: NDArray[np.float64],
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    *,
    cutoff_mm: float | None = None,
    row_range: tuple[int, int] | None = None,
) -> None:
    """Add Σ S·Ḋ (cGy/h) of the seeds to ``out`` (float64 (nz, ny, nx), C-contiguous), in place.

    ``index_to_world`` is GridGeometry.index_to_world_matrix (mm per index step, columns i, j, k).
    ``row_range`` limits the work to flattened rows [r0, r1) of (k, j) — used for chunking.
    """
    nz, ny, _ = out.shape
    r0, r1 = row_range if row_range is not None else (0, nz * ny)
    pos, ax, st = _seed_arrays(positions_mm, axes, strengths_u)
    with _KERNEL_LOCK:
        _split_rows(
            out,
            counts,
            int(r0),
            int(r1),
            np.ascontiguousarray(origin_mm, dtype=np.float64),
            np.ascontiguousarray(index_to_world, dtype=np.float64),
            pos,
            ax,
            st,
            np.zeros((pos.shape[0], 3)),
            np.zeros(3),
            2,
            R_DIRECT_MM,
            0.0,
            -1.0 if cutoff_mm is None else float(cutoff_mm),
            0.0,
            1.0,
            0.0,
            -1.0,
            *_model_args(fm),
        )


def points_rate(
    fm: FastModel,
    points_mm: NDArray[np.float64],
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    *,
    cutoff_mm: float | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Dose rate (cGy/h) and inside-capsule flags at ``points_mm`` (P, 3)."""
    pts = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(pts.shape[0])
    flags = np.zeros(pts.shape[0], dtype=np.bool_)
    cutoff2 = -1.0 if cutoff_mm is None else float(cutoff_mm) ** 2
    with _KERNEL_LOCK:
        _points_kernel(
            out,
            flags,
            pts,
            np.ascontiguousarray(positions_mm, dtype=np.float64).reshape(-1, 3),
            np.ascontiguousarray(axes, dtype=np.float64).reshape(-1, 3),
            np.ascontiguousarray(strengths_u, dtype=np.float64).reshape(-1),
            R_DIRECT_MM,
            cutoff2,
            *_model_args(fm),
        )
    return out, flags


def warm_up(model: SourceModel | None = None) -> None:
    """Compile (or load from cache) every kernel, so the first GUI use does not stall."""
    from dose.sources import load_model

    m = model if model is not None else load_model("6711")
    for formalism in ("2d", "1d") if m.has_phi_an else ("2d",):
        fm = fast_model(m, formalism)  # type: ignore[arg-type]
        out = np.zeros((2, 3, 4))
        counts = np.zeros(out.shape, dtype=np.int32)
        grid_rate_accumulate(
            fm,
            out,
            counts,
            np.zeros(3),
            np.eye(3),
            np.zeros((1, 3)),
            np.array([[0.0, 0.0, 1.0]]),
            np.ones(1),
        )
        points_rate(fm, np.ones((2, 3)), np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]]), np.ones(1))
        # FAST mode kernels (near/far split and the cubic upsample)
        lay = split_layout((6, 7, 8), np.zeros(3), np.eye(3), 2.0)
        near = np.zeros(lay.shape_zyx)
        far = np.zeros(lay.coarse_shape_zyx)
        one = (np.ones((1, 3)), np.array([[0.0, 0.0, 1.0]]), np.ones(1))
        near_accumulate(fm, near, np.zeros(lay.shape_zyx, dtype=np.int32), lay, *one)
        far_accumulate(fm, far, lay, *one)
        upsample_into(near, near, far, lay)


def threads() -> int:
    """Number of numba worker threads."""
    return int(numba.get_num_threads())


# =========================================================================== FAST (split) mode
# Particle-mesh style split of each seed's kernel (see "EXACT and FAST modes" in the module
# docstring). Tuned on the benchmark implant (max error vs exact beyond 1 mm; seed-voxel pairs):
# (R0, R1, step) = (10, 24, 2) mm 0.40 %, 2.1e7 pairs; (6, 24, 2) 0.49 %; (2, 24, 2) 0.80 %;
# (14, 24, 2) 0.31 % (but one seed off-axis 0.98 %: a narrow window is less smooth);
# (10, 22, 2) 0.44 %, 1.9e7; (8, 20, 2) 0.55 %; (2, 24, 3) 1.4 %, 1.1e7; (6, 30, 3) 0.69 %,
# 1.6e7; (10, 40, 3) 0.39 %, 3.2e7; (12, 20, 4) 3.6 %. Exact: 1e8 pairs, 0.71 s. The step sets
# the cost (the far part is ~2/3 of it); R1 trades near cost against accuracy.
FAST_R0_MM = 10.0
FAST_R1_MM = 24.0
FAST_STEP_MM = 2.0
#: Coarse step (mm) of the far grid of a single slice (a 2-D coarse grid costs little less per
#: node but has far fewer nodes, so it trades some accuracy for speed).
FAST_SLICE_STEP_MM = 4.0
#: Window start (mm) for single slices: wider than FAST_R0_MM so the 4 mm step stays accurate.
FAST_SLICE_R0_MM = 6.0
#: Axial extension of the near part, (R0a, R1a, ρi, ρo) mm: within ρi of a seed's axis the
#: window runs from R0a to R1a instead of R0 to R1, blended (C², in ρ) into the radial window by
#: ρo. F(r, θ) is linear in θ and folded at 0°, a cusp along the axis that no coarse grid
#: represents (2-34 % errors for a lone seed, the deepest for STM1251 and 2301, and they persist
#: to r > 60 mm), so R0a is beyond any grid: the far part vanishes within ρi of every seed axis,
#: w = s(r)·(1 − a(ρ)), and the near part covers the ball plus a cylinder of radius ρo along the
#: axis (clipped to the grid). Tuned (max vs exact beyond 1 mm; ρi, ρo): (5, 13) 1.9 % (the ρ
#: ramp too steep for a 2 mm step), (2, 14) 0.74 %, (3, 17) 0.67 % (lone seeds; implants
#: 0.16 %); a finite cone (R0a, R1a) = (24, 60) left 12 % on the axis at r = 55 mm (STM1251).
FAST_AXIAL_MM = (1.0e4, 1.0e4 + 1.0, 3.0, 17.0)
#: The same for single slices (4 mm step, window from 6 mm): a wider ρ ramp (a strip is cheap);
#: lone seeds, oblique slices, max vs exact: (ρ 4-30) 2.0 %, (4-40) 1.1 %; a 3 mm step with
#: (4-40) gives 0.59 % but makes the benchmark slice ~1.7x slower (over the 15 ms goal).
FAST_SLICE_AXIAL_MM = (1.0e4, 1.0e4 + 1.0, 4.0, 40.0)
#: Coarse nodes below index 0 (Catmull-Rom needs one node before and two after each interval).
_PAD_LO = 1
_PAD_HI = 2


@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _split_rows(
    out,
    counts,
    row0,
    row1,
    origin,
    m_ijk,
    pos,
    axis,
    strength,
    cidx,
    ext,
    part,
    r_direct,
    w_r0,
    w_r1,
    w_r0a,
    w_r1a,
    rho_i,
    rho_o,
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
    """One part of the split kernel on flattened rows [row0, row1) of ``out`` (z, y, x) float64.

    ``part`` 0 = near: out += Σ S·Ḋ·(1 − w(r)) for voxels with r ≤ w_r1 (exact formalism below
    ``r_direct``, capsule flags into ``counts``); only seeds whose index-space ellipsoid of
    radius w_r1 meets the row are visited (``cidx`` (ns, 3) continuous (i, j, k) index of each
    seed, ``ext`` (3,) half extents in index units). ``part`` 1 = far: out += Σ S·Ḋ·w(r), every
    seed, skipping the voxels with r < w_r0 where w = 0. ``part`` 2 = EXACT mode: out += Σ S·Ḋ
    for every seed (no window), cut off beyond w_r1 when w_r1 > 0.

    Pass 1 of each (row, seed) is branch-free float32 arithmetic that LLVM vectorises (table
    cell, weights, window/r²); pass 2 does the bilinear table lookups.
    """
    ny = out.shape[1]
    nx = out.shape[2]
    ns = pos.shape[0]
    rd2 = r_direct * r_direct
    near = part != 1  # near and exact: exact formalism below r_direct, capsule counts
    filt = part == 0  # near: only seeds whose ellipsoid meets the row
    r_in2 = rd2 if near else w_r0 * w_r0
    cut2 = w_r1 * w_r1 if (part == 0 or (part == 2 and w_r1 > 0.0)) else -1.0
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
    inv_f = np.float32(lut_par[0])
    r_split = np.float32(lut_par[1])
    inv_c = np.float32(lut_par[2])
    n_f = np.float32(lut_par[3])
    r_max = np.float32(lut_par[4])
    kth = np.float32(2.0 * _RAD2DEG * lut_par[5])
    zero32 = np.float32(0.0)
    one32 = np.float32(1.0)
    ntf = np.float32(nt - 2)
    nrf = np.float32(nr - 2)
    nt32 = np.int32(nt)
    wr0 = np.float32(w_r0)
    inv_dw = np.float32(1.0 / (w_r1 - w_r0)) if part != 2 else zero32
    cone = part == 0 and rho_o > 0.0
    cut2a = w_r1a * w_r1a
    rho_o2 = rho_o * rho_o
    wr0a = np.float32(w_r0a)
    inv_dwa = np.float32(1.0 / (w_r1a - w_r0a)) if part != 2 else zero32
    rho_o32 = np.float32(rho_o)
    inv_drho = np.float32(1.0 / (rho_o - rho_i)) if part != 2 else zero32
    k10 = np.float32(10.0)
    km15 = np.float32(-15.0)
    k6 = np.float32(6.0)
    # factor = fa + fb·w: near 1 − w, far w, exact 1
    fa = one32 if near else zero32
    fb = -one32 if part == 0 else (one32 if part == 1 else zero32)
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
                if filt and (abs(k - cidx[s, 2]) > ext[2] or abs(j - cidx[s, 1]) > ext[1]):
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
                    # the row's i-range: the ball r < R1, and (near part with axial cylinders)
                    # the hull with the row ∩ ball r < R1a ∩ cylinder ρ < ρo around the axis
                    flo = 1.0
                    fhi = 0.0
                    if dmin2 < cut2:
                        w = math.sqrt((cut2 - dmin2) / cc)
                        flo = ic - w
                        fhi = ic + w
                    if cone and dmin2 < cut2a:
                        w = math.sqrt((cut2a - dmin2) / cc)
                        clo = ic - w
                        chi = ic + w
                        alpha = cc - a1 * a1  # ρ²(i) = alpha·i² + 2·beta·i + gamma + ρo²
                        beta = B - a0 * a1
                        gamma = A - a0 * a0 - rho_o2
                        ok = True
                        if alpha > 1e-9 * cc:
                            disc = beta * beta - alpha * gamma
                            if disc < 0.0:
                                ok = False
                            else:
                                sq = math.sqrt(disc)
                                clo = max(clo, (-beta - sq) / alpha)
                                chi = min(chi, (-beta + sq) / alpha)
                        elif gamma > 0.0:
                            ok = False
                        if ok and chi >= clo:
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
                    if near:  # superset of r < r_direct: checked per voxel below
                        nlo = min(max(lo, int(math.floor(ic - w))), hi)  # noqa: RUF046
                        nhi = min(max(nlo, int(math.ceil(ic + w)) + 1), hi)  # noqa: RUF046
                    else:  # subset of r ≤ R0 (w = 0 there): skipped
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
                # pass 1 over a multiple of 16 elements: the vector loop then has no scalar
                # remainder (rows are short: ~50 coarse nodes, ~30 voxels in a near ball);
                # the values past hi are computed into the spare buffer tail and never read
                hi_v = lo + ((hi - lo + 15) // 16) * 16
                for i in range(lo, hi_v):
                    d = np.float32(np.int32(i - ic_i)) - frac32
                    r2 = dm2_32 + cc32 * (d * d)
                    za = zc32 + d * a1_32
                    if r2 < one32:
                        r2 = one32
                    r = np.sqrt(r2)
                    az = abs(za)
                    rho2 = max(r2 - az * az, zero32)
                    t = np.sqrt(rho2) / (r + az)
                    q = t * t
                    p = (
                        (
                            ((((((c9 * q + c8) * q + c7) * q + c6) * q + c5) * q + c4) * q + c3) * q
                            + c2
                        )
                        * q
                        + c1
                    ) * q + c0
                    ft = t * p * kth
                    rr = min(r, r_max)
                    fr = rr * inv_f if rr < r_split else n_f + (rr - r_split) * inv_c
                    jt = np.int32(min(ft, ntf))
                    ir = np.int32(min(fr, nrf))
                    wt_buf[i] = ft - np.float32(jt)
                    wr_buf[i] = fr - np.float32(ir)
                    ib_buf[i] = ir * nt32 + jt
                    # w = s1 + a·(s2 − s1): radial windows s1 (R0 → R1) and s2 (R0a → R1a)
                    # blended by a(ρ) = 1 near the axis (ρ ≤ ρi) → 0 (ρ ≥ ρo); all C² quintics
                    u = min(max((r - wr0) * inv_dw, zero32), one32)
                    s1 = u * u * u * (k10 + u * (km15 + k6 * u))
                    u = min(max((r - wr0a) * inv_dwa, zero32), one32)
                    s2 = u * u * u * (k10 + u * (km15 + k6 * u))
                    u = min(max((rho_o32 - np.sqrt(rho2)) * inv_drho, zero32), one32)
                    win = s1 + u * u * u * (k10 + u * (km15 + k6 * u)) * (s2 - s1)
                    iv_buf[i] = (fa + fb * win) / r2
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
                if not near:
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
                    else:  # r < r_direct < R0: window factor 1
                        rho2d = r2d - za * za
                        rho = math.sqrt(rho2d) if rho2d > 0.0 else 0.0
                        v, flag = _exact_rate_per_u(
                            rho, za, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d
                        )
                        orow[i] += st * v
                        if flag:
                            counts[k, j, i] += 1 if st >= 0.0 else -1


# Serial on purpose: a few MACs per fine voxel (2.7 ms for 10⁶ voxels, 0.35 ms for a 512² slice),
# while a parallel version measured 12-16 ms on a loaded 2-core machine (threads waiting for a
# scheduler tick and page faults on the scratch buffers).
@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _upsample(dst, base, coarse, bx, wx, by, wy, bz, wz):
    """dst = base + cubic upsample of ``coarse``; separable passes x, then y, then z.

    ``dst``/``base`` (nz, ny, nx) float64 (may be the same array); ``coarse`` (Nz, Ny, Nx);
    per axis ``b*`` (n,) int64 first coarse node of the 4-tap stencil and ``w*`` (n, 4) weights.
    An axis with one coarse node (a flat axis: one slice) is copied, not interpolated.
    """
    nz, ny, nx = dst.shape
    cz, cy, cx = coarse.shape
    t2 = np.empty((cz, ny, nx))
    for kc in range(cz):
        t1 = np.empty((cy, nx))
        for jc in range(cy):
            src = coarse[kc, jc]
            d = t1[jc]
            if cx == 1:
                for i in range(nx):
                    d[i] = src[0]
            else:
                for i in range(nx):
                    b = bx[i]
                    d[i] = (
                        wx[i, 0] * src[b]
                        + wx[i, 1] * src[b + 1]
                        + wx[i, 2] * src[b + 2]
                        + wx[i, 3] * src[b + 3]
                    )
        for j in range(ny):
            d = t2[kc, j]
            if cy == 1:
                s0 = t1[0]
                for i in range(nx):
                    d[i] = s0[i]
            else:
                b = by[j]
                s0 = t1[b]
                s1 = t1[b + 1]
                s2 = t1[b + 2]
                s3 = t1[b + 3]
                w0 = wy[j, 0]
                w1 = wy[j, 1]
                w2 = wy[j, 2]
                w3 = wy[j, 3]
                for i in range(nx):
                    d[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
    for r in range(nz * ny):
        k = r // ny
        j = r - k * ny
        d = dst[k, j]
        e = base[k, j]
        if cz == 1:
            s0 = t2[0, j]
            for i in range(nx):
                d[i] = e[i] + s0[i]
        else:
            b = bz[k]
            s0 = t2[b, j]
            s1 = t2[b + 1, j]
            s2 = t2[b + 2, j]
            s3 = t2[b + 3, j]
            w0 = wz[k, 0]
            w1 = wz[k, 1]
            w2 = wz[k, 2]
            w3 = wz[k, 3]
            for i in range(nx):
                d[i] = e[i] + (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i])


def _catmull_rom(n_fine: int, step: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """First coarse node (n_fine,) and Catmull-Rom weights (n_fine, 4) of each fine index."""
    u = np.arange(n_fine) / step + _PAD_LO
    node = np.floor(u + 1e-9)  # fine indices on a coarse node get t = 0 exactly
    t = np.clip(u - node, 0.0, 1.0)
    t2 = t * t
    t3 = t2 * t
    w = np.stack(
        [
            0.5 * (-t3 + 2 * t2 - t),
            0.5 * (3 * t3 - 5 * t2 + 2),
            0.5 * (-3 * t3 + 4 * t2 + t),
            0.5 * (t3 - t2),
        ],
        axis=1,
    )
    return (node - 1).astype(np.int64), np.ascontiguousarray(w)


@dataclass(frozen=True, eq=False)
class SplitLayout:
    """The coarse far-field grid of a fine grid for FAST mode, and the upsampling stencils.

    Coarse node I along an axis sits on fine index n·(I − 1) (n = ``steps_ijk``), so the coarse
    grid covers the fine one with one node before and two after (a flat axis of one voxel keeps
    one node). Everything is in index space, so any direction matrix works.
    """

    shape_zyx: tuple[int, int, int]
    origin_mm: NDArray[np.float64]
    m_ijk: NDArray[np.float64]  # fine index → LPS mm (columns i, j, k)
    m_inv: NDArray[np.float64]  # LPS mm → fine index
    steps_ijk: tuple[int, int, int]
    coarse_shape_zyx: tuple[int, int, int]
    coarse_origin_mm: NDArray[np.float64]
    coarse_m_ijk: NDArray[np.float64]
    stencils: tuple[NDArray, ...]  # bx, wx, by, wy, bz, wz
    r0_mm: float  # window: w = 0 below (far part zero)
    r1_mm: float  # window: w = 1 above (near part zero)
    r0a_mm: float  # axial window (ρ ≤ rho_i_mm): w = 0 below
    r1a_mm: float  # axial window: w = 1 above
    rho_i_mm: float  # distance from the seed axis below which the axial window applies
    rho_o_mm: float  # ... and above which the radial window applies (C² blend between)

    @property
    def near_radius_mm(self) -> float:
        """Largest distance from a seed centre where the near part can be non-zero."""
        return max(self.r1_mm, self.r1a_mm)


def split_layout(
    shape_zyx: tuple[int, int, int],
    origin_mm: NDArray[np.float64],
    index_to_world: NDArray[np.float64],
    step_mm: float | None = None,
    r0_mm: float | None = None,
    r1_mm: float | None = None,
    axial_mm: tuple[float, float, float, float] | None = None,
) -> SplitLayout:
    """Coarse layout for a fine grid: per axis n = max(1, round(step_mm / spacing)); the split
    window from r0_mm to r1_mm (defaults FAST_STEP_MM, FAST_R0_MM, FAST_R1_MM) and, around each
    seed axis, ``axial_mm`` = (R0a, R1a, ρi, ρo) (default FAST_AXIAL_MM): the window runs from
    R0a to R1a for ρ ≤ ρi, blended (C²) into the radial one by ρo."""
    if step_mm is None:
        step_mm = FAST_STEP_MM
    r0 = FAST_R0_MM if r0_mm is None else float(r0_mm)
    r1 = FAST_R1_MM if r1_mm is None else float(r1_mm)
    r0a, r1a, rho_i, rho_o = (float(x) for x in (FAST_AXIAL_MM if axial_mm is None else axial_mm))
    if not 0.0 < r0 < r1:
        raise ValueError("the split window needs 0 < r0 < r1")
    if not (r0 <= r0a < r1a and 0.0 <= rho_i < rho_o):
        raise ValueError("the axial window needs r0 <= R0a < R1a and 0 <= rho_i < rho_o")
    m = np.ascontiguousarray(index_to_world, dtype=np.float64)
    spacing = np.linalg.norm(m, axis=0)  # (i, j, k)
    n_ijk = [int(x) for x in shape_zyx[::-1]]
    steps, c_ijk, off = [], [], []
    stencils: list[NDArray] = []
    for a in range(3):
        n_f = n_ijk[a]
        if n_f == 1:
            steps.append(1)
            c_ijk.append(1)
            off.append(0.0)
            b = np.zeros(1, dtype=np.int64)
            w = np.array([[0.0, 1.0, 0.0, 0.0]])
        else:
            st = max(1, round(step_mm / spacing[a]))
            steps.append(st)
            c_ijk.append((n_f - 1) // st + 1 + _PAD_LO + _PAD_HI)
            off.append(-float(st * _PAD_LO))
            b, w = _catmull_rom(n_f, st)
        stencils += [b, w]
    origin = np.asarray(origin_mm, dtype=np.float64)
    return SplitLayout(
        (int(shape_zyx[0]), int(shape_zyx[1]), int(shape_zyx[2])),
        origin,
        m,
        np.linalg.inv(m),
        (steps[0], steps[1], steps[2]),
        (c_ijk[2], c_ijk[1], c_ijk[0]),
        origin + m @ np.array(off),
        np.ascontiguousarray(m * np.array(steps, dtype=np.float64)[np.newaxis, :]),
        tuple(stencils),
        r0,
        r1,
        r0a,
        r1a,
        rho_i,
        rho_o,
    )


def _seed_arrays(positions_mm, axes, strengths_u):
    return (
        np.ascontiguousarray(positions_mm, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(axes, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(strengths_u, dtype=np.float64).reshape(-1),
    )


def near_rows_span(lay: SplitLayout, positions_mm: NDArray[np.float64]) -> tuple[int, int]:
    """Flattened (k, j) rows [r0, r1) that the seeds' near balls (r ≤ lay.r1_mm) can touch."""
    nz, ny, _ = lay.shape_zyx
    pos = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    if pos.shape[0] == 0:
        return 0, 0
    kc = (pos - lay.origin_mm) @ lay.m_inv[2]
    ek = lay.near_radius_mm * float(np.linalg.norm(lay.m_inv[2])) + 1.0
    k0 = max(0, int(np.floor(kc.min() - ek)))
    k1 = min(nz, int(np.ceil(kc.max() + ek)) + 1)
    return (k0 * ny, k1 * ny) if k1 > k0 else (0, 0)


def near_accumulate(
    fm: FastModel,
    out: NDArray[np.float64],
    counts: NDArray[np.int32],
    lay: SplitLayout,
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    row_range: tuple[int, int] | None = None,
) -> None:
    """out += Σ S·Ḋ·(1 − w(r)) (cGy/h) on the fine grid, r ≤ lay.r1_mm; capsule flags."""
    pos, ax, st = _seed_arrays(positions_mm, axes, strengths_u)
    r0, r1 = near_rows_span(lay, pos)
    if row_range is not None:
        r0, r1 = max(r0, row_range[0]), min(r1, row_range[1])
    if r1 <= r0:
        return
    cidx = np.ascontiguousarray((pos - lay.origin_mm) @ lay.m_inv.T)
    ext = lay.near_radius_mm * np.linalg.norm(lay.m_inv, axis=1) + 1e-6
    with _KERNEL_LOCK:
        _split_rows(
            out,
            counts,
            int(r0),
            int(r1),
            lay.origin_mm,
            lay.m_ijk,
            pos,
            ax,
            st,
            cidx,
            ext,
            0,
            R_DIRECT_MM,
            lay.r0_mm,
            lay.r1_mm,
            lay.r0a_mm,
            lay.r1a_mm,
            lay.rho_i_mm,
            lay.rho_o_mm,
            *_model_args(fm),
        )


def far_accumulate(
    fm: FastModel,
    coarse: NDArray[np.float64],
    lay: SplitLayout,
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    row_range: tuple[int, int] | None = None,
) -> None:
    """coarse += Σ S·Ḋ·w(r) (cGy/h) on the coarse nodes of ``lay`` (shape coarse_shape_zyx);
    ``row_range``: flattened coarse (K, J) rows [r0, r1) only."""
    pos, ax, st = _seed_arrays(positions_mm, axes, strengths_u)
    nz, ny, _ = coarse.shape
    r0, r1 = row_range if row_range is not None else (0, nz * ny)
    if pos.shape[0] == 0 or r1 <= r0:
        return
    dummy = np.zeros((1, 1, 1), dtype=np.int32)
    with _KERNEL_LOCK:
        _split_rows(
            coarse,
            dummy,
            int(r0),
            int(r1),
            lay.coarse_origin_mm,
            lay.coarse_m_ijk,
            pos,
            ax,
            st,
            np.zeros((pos.shape[0], 3)),
            np.zeros(3),
            1,
            R_DIRECT_MM,
            lay.r0_mm,
            lay.r1_mm,
            lay.r0a_mm,
            lay.r1a_mm,
            lay.rho_i_mm,
            lay.rho_o_mm,
            *_model_args(fm),
        )


def upsample_into(
    dst: NDArray[np.float64],
    base: NDArray[np.float64],
    coarse: NDArray[np.float64],
    lay: SplitLayout,
) -> None:
    """dst = base + Catmull-Rom upsample of the coarse far grid (dst may be base)."""
    with _KERNEL_LOCK:
        _upsample(dst, base, coarse, *lay.stencils)
