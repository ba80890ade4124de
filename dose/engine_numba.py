"""Fast TG-43U1 dose engine: numba kernels on (r, θ) lookup tables.

Used through :mod:`dose.engine` (``make_engine(model, kind="numba")``); this module holds the
kernels, the tables and the FAST-mode split.

How it is fast and still exact
------------------------------
* Beyond ``R_DIRECT_MM`` (3.5 mm) from a seed the per-unit-strength dose rate times r², T(r, θ),
  is looked up bilinearly in a float32 table (:class:`TableLayout`: rows every 0.05 mm to
  25 mm, 0.25 mm to 60 mm, 1 mm to 600 mm, held beyond; columns every 0.25° below 10°, 1°
  above). Every published r node is a multiple of its segment's step and every published θ
  node an integer degree, so the kinks of g_L and F fall on rows and columns. Against the
  reference engine: ≤ 3e-5 from 5 to 60 mm, ≤ 3e-4 elsewhere beyond R_DIRECT_MM (the largest
  errors are at 3.5-5 mm, where G_L curves strongly in θ between 1° columns, and beyond 60 mm,
  where g_L decays exponentially between 1 mm rows; tested per distance band).
  θ = 2·atan(ρ/(r + |z|)) with a polynomial atan (|error| < 1e-7 rad), so no libm call in the
  inner loop. The table is 0.57 MB.
* Each (row, seed) is done in two passes: a branch-free float32 pass that LLVM vectorises (table
  cell, weights, 1/r²) and a scalar pass of bilinear lookups (this CPU has no vector gathers).
* Near a seed (r < R_DIRECT_MM), including the capsule, the exact formalism is evaluated
  (atan2-difference β, on-axis form, table interpolation, capsule capping and flagging).
* For a grid row (fixed j, k) and a seed, r²(i) and z(i) are quadratics/linears in i, so each
  voxel costs two FMAs for geometry; the i-ranges (ball, axis cylinder, skipped core) are solved
  analytically per row and rows outside a seed's (j, k) box are skipped, for any direction matrix.
* Kernels are ``parallel`` over grid rows (so one 512×512 slice also uses every core),
  ``nogil`` (callable from a worker thread) and ``cache=True``; :func:`warm_up` compiles them.
* Accumulation is float64: the incremental accumulator subtracts exactly the values it added.

Every kernel launch takes ``_KERNEL_LOCK`` so launches from a GUI thread and a worker thread
never overlap (numba's workqueue threading layer is not re-entrant).

EXACT and FAST modes
--------------------
EXACT mode puts every seed-voxel pair through the table T (≤ 3e-4 of the reference engine). It is
the default and the only mode for dose at points, the CLI, exports and anything a report quotes.
FAST mode (``mode="fast"`` on grids, slices and ``DoseGrid``) is for interactive display:

* The kernel is split, multigrid style, into a near part on the fine grid and L coarse levels
  (:class:`FastSpec`; grids: 2 mm from r = 8-21 mm and 4 mm from 21-45 mm; slices: 4 mm from
  10-32 mm and 8 mm from 90-160 mm). With s_l(r) the C² quintic window of level l and C_l the
  table whose axis cusp is capped (below), the parts are near = T − s_1·C_1, level
  l = s_l·C_l − s_(l+1)·C_(l+1), last = s_L·C_L: they sum to T exactly, each is its own
  (r, θ) table (:func:`part_tables`), and each is exactly 0 where it is not evaluated.
* Axis caps. F(r, θ) is linear in θ and folded at 0°: a cusp along every seed axis that no
  coarse grid represents (2-34 % errors for lone seeds without a fix). In C_l the rows are
  replaced within θ < θc(r) = asin(ρc/r) by a smooth even quartic in θ that meets T at θc with
  the secant slope of [θc, 2θc] (:func:`capped_table`; continuous in r). T − C_l is then non-zero
  only in a thin cylinder ρ < ~ρc around the axis (6 mm for the near part, 12 mm for the 2 mm
  level), which the finer part evaluates on its own grid. (The previous split zeroed the whole
  far kernel within 17 mm of the axis: 40 % of the near work.)
* Level l is summed over all seeds on its coarse grid (every n-th node of the next finer grid,
  n = floor(step / spacing): never coarser than the step; one node of padding before and two
  after), then the levels are upsampled in turn with separable Catmull-Rom cubics (exact for
  quadratics) and added to the near sum. Everything is in index space, so any direction matrix
  works.
* Cost on the benchmark (100 seeds, 100³ at 1 mm): 5.1e6 near + 4.6e6 (2 mm) + 1.5e6 (4 mm)
  seed-voxel pairs and two upsamples (~2-4 ms), against 1e8 pairs in EXACT mode (26e6 with the
  earlier single-level split).

Accuracy, and what limits it: a coarse level must be smooth on its step, but g_L and F are
piecewise linear (kinks on shells r = node and cones θ = node) and cubic interpolation across a
kink errs by ~ slope jump × step / 16; the windows must also be wide for their step (errors
grow as (step/width)³: a 4 mm level over a 20 mm window errs ~2 %, over 24 mm ~1.5 %). Measured
against the exact engine beyond 1 mm from every seed (tests/test_tg43_fast.py, seeds with
arbitrary axes on rotated grids): lone seeds of every model on 1 mm grids ≤ 1.25 % (slices
through them ≤ 1.18 %); 192 random cases (every model, 1-5 seeds, spacings 0.7-1.6 mm, random
slices) ≤ 1.61 % on grids and ≤ 1.30 % on slices, the worst always IAI-125A, whose g_L slope
changes by 60 % at its 8 cm node, seen by the 4 mm level; the benchmark implant 0.17 % (mean
0.02 %), its 512² slice 0.29 %. Hence the stated bound of FAST mode: ≤ 2 % beyond 1 mm from
every seed, ≤ 0.5 % on implants. Level steps are never coarser than specified (a step rounded
up to 2.6 mm doubled the errors). The 8 mm slice level starts beyond 90 mm, after the last g_L
node (10 cm) and F's last radius, where T has no radial kinks left.
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
    ON_AXIS_SIN_THETA,
    Formalism,
    reference_geometry_factor,
)

__all__ = [
    "FAST_GRID_SPEC",
    "FAST_SLICE_SPEC",
    "R_DIRECT_MM",
    "TABLE_LAYOUT",
    "CoarseLevel",
    "FastLevel",
    "FastModel",
    "FastSpec",
    "SplitLayout",
    "TableLayout",
    "capped_table",
    "coarse_level",
    "far_accumulate",
    "fast_model",
    "grid_rate_accumulate",
    "near_accumulate",
    "part_tables",
    "points_rate",
    "split_layout",
    "upsample_into",
    "warm_up",
]

#: Below this distance (mm) from a seed centre the exact formalism is used instead of the table.
R_DIRECT_MM = 3.5
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
def _tabulate_pairs(r_mm, theta_deg, p_scal, g_r, g_v, f_r, f_t, f_v, phi_r, phi_v, is_1d):
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


@dataclass(frozen=True)
class TableLayout:
    """Rows and columns of the (r, θ) lookup tables (every table of a model shares them).

    Rows: r in mm from 0 in segments of uniform step (``r_breaks_mm``, ``r_steps_mm``); columns:
    θ in degrees, step ``dtheta_fine_deg`` below ``theta_break_deg`` (the axis caps of FAST mode
    live there), ``dtheta_coarse_deg`` above. Every published r node (g_L, F) is a multiple of
    its segment's step and every published θ node an integer degree, so the kinks of g_L and F
    fall on rows and columns and the tables reproduce the formalism to ~1e-6.
    """

    r_breaks_mm: tuple[float, float, float, float] = (0.0, 25.0, 60.0, 600.0)
    r_steps_mm: tuple[float, float, float] = (0.05, 0.25, 1.0)
    theta_break_deg: float = 10.0
    dtheta_fine_deg: float = 0.25
    dtheta_coarse_deg: float = 1.0

    def _counts(self) -> tuple[int, int, int]:
        b, s = self.r_breaks_mm, self.r_steps_mm
        return (
            round((b[1] - b[0]) / s[0]),
            round((b[2] - b[1]) / s[1]),
            round((b[3] - b[2]) / s[2]) + 1,
        )

    def r_nodes_mm(self) -> NDArray[np.float64]:
        n0, n1, n2 = self._counts()
        b, s = self.r_breaks_mm, self.r_steps_mm
        return np.concatenate(
            [b[0] + np.arange(n0) * s[0], b[1] + np.arange(n1) * s[1], b[2] + np.arange(n2) * s[2]]
        )

    def theta_nodes_deg(self) -> NDArray[np.float64]:
        nf = round(self.theta_break_deg / self.dtheta_fine_deg)
        nc = round((90.0 - self.theta_break_deg) / self.dtheta_coarse_deg) + 1
        return np.concatenate(
            [
                np.arange(nf) * self.dtheta_fine_deg,
                self.theta_break_deg + np.arange(nc) * self.dtheta_coarse_deg,
            ]
        )

    def params(self) -> NDArray[np.float64]:
        """Kernel parameters: [1/dr0, r1, n0, 1/dr1, r2, n0 + n1, 1/dr2, r_max, 1/dθf, θb, nθf,
        1/dθc] (mm, degrees)."""
        n0, n1, _ = self._counts()
        b, s = self.r_breaks_mm, self.r_steps_mm
        return np.array(
            [
                1.0 / s[0],
                b[1],
                float(n0),
                1.0 / s[1],
                b[2],
                float(n0 + n1),
                1.0 / s[2],
                b[3],
                1.0 / self.dtheta_fine_deg,
                self.theta_break_deg,
                float(round(self.theta_break_deg / self.dtheta_fine_deg)),
                1.0 / self.dtheta_coarse_deg,
            ]
        )


TABLE_LAYOUT = TableLayout()


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
    table: NDArray[np.float64]  # T = Ḋ·r² per U on TABLE_LAYOUT, float64 (nr, nθ)
    lut: NDArray[np.float32]  # the same in float32: what the kernels read
    lut_par: NDArray[np.float64]  # TABLE_LAYOUT.params()

    @property
    def is_1d(self) -> bool:
        return self.formalism == "1d"

    def model_arrays(self) -> tuple:
        return (
            self.p_scal,
            self.g_r,
            self.g_v,
            self.f_r,
            self.f_t,
            self.f_v,
            self.phi_r,
            self.phi_v,
            self.is_1d,
        )


_FAST_CACHE: dict[tuple[str, str], FastModel] = {}


def fast_model(model: SourceModel, formalism: Formalism) -> FastModel:
    """Prepare (and cache, by table checksum) the kernel data for ``model``/``formalism``."""
    key = (model.checksum, formalism)
    fm = _FAST_CACHE.get(key)
    if fm is not None:
        return fm
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
    lay = TABLE_LAYOUT
    with _KERNEL_LOCK:
        table = _tabulate(lay.r_nodes_mm(), lay.theta_nodes_deg(), p_scal, *arrays, is_1d)
    fm = FastModel(
        model,
        formalism,
        p_scal,
        *arrays,
        table,
        np.ascontiguousarray(table, dtype=np.float32),
        lay.params(),
    )
    _FAST_CACHE[key] = fm
    return fm


# =========================================================================== grid kernel
# The table lookup is written out inline in the kernels on purpose: a call to a numba function
# that takes arrays costs reference-count traffic per call (measured 60-100 ns per voxel-seed
# pair here, against ~11 ns inline).
@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _part_rows(
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
def _points_kernel(
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


# =========================================================================== FAST (split) mode
@dataclass(frozen=True)
class FastLevel:
    """One coarse level of FAST mode: grid step, radial window (where the level takes over from
    the previous one) and axis cap radius (see the module docstring)."""

    step_mm: float  # coarse step (per axis: the nearest multiple of the finer grid's spacing)
    r0_mm: float  # window s(r) = 0 below: this level is 0 there
    r1_mm: float  # window s(r) = 1 above: the finer parts are 0 there, off the axis cylinder
    cap_mm: float  # axis cap radius ρc of this level's kernel


@dataclass(frozen=True)
class FastSpec:
    """FAST-mode split: the near part on the fine grid and coarse levels of increasing step."""

    levels: tuple[FastLevel, ...]

    def __post_init__(self) -> None:
        prev_r1 = 0.0
        for lev in self.levels:
            if not (0.0 < lev.r0_mm < lev.r1_mm and lev.step_mm > 0 and lev.cap_mm >= 0):
                raise ValueError(f"bad FAST level {lev}")
            if lev.r0_mm < prev_r1:
                raise ValueError("FAST levels must take over farther and farther out")
            if 1.2 * lev.cap_mm >= lev.r0_mm:
                raise ValueError("a level's axis cap must be narrower than its window start")
            prev_r1 = lev.r1_mm


#: FAST mode for 3-D grids. Tuned on lone seeds of every model and the benchmark implant (max
#: error vs exact beyond 1 mm from every seed; see the module docstring for the measurements).
FAST_GRID_SPEC = FastSpec(
    (
        FastLevel(step_mm=2.0, r0_mm=8.0, r1_mm=21.0, cap_mm=6.0),
        FastLevel(step_mm=4.0, r0_mm=21.0, r1_mm=45.0, cap_mm=12.0),
    )
)
#: FAST mode for single slices (a 2-D coarse grid has far fewer nodes per step).
FAST_SLICE_SPEC = FastSpec(
    (
        # a cap of 2 steps: with a 4 mm cap, slices cutting a seed axis obliquely near r ≈ 30 mm
        # erred up to 3 % (2301); with 8 mm ≤ 1.3 % over 60 random lone-seed slices
        FastLevel(step_mm=4.0, r0_mm=10.0, r1_mm=32.0, cap_mm=8.0),
        # beyond ~100 mm g_L is extrapolated log-linearly and F is clamped in r: no radial kinks,
        # so an 8 mm level is accurate there (it takes over only after the last table node)
        FastLevel(step_mm=8.0, r0_mm=90.0, r1_mm=160.0, cap_mm=24.0),
    )
)
#: Coarse nodes below index 0 (Catmull-Rom needs one node before and two after each interval).
_PAD_LO = 1
_PAD_HI = 2


def _smoothstep(r_mm: NDArray[np.float64], r0: float, r1: float) -> NDArray[np.float64]:
    """C² quintic window: 0 for r ≤ r0, 1 for r ≥ r1 (exactly)."""
    u = np.clip((r_mm - r0) / (r1 - r0), 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def _cap_mm(fm: FastModel, lev: FastLevel | None) -> float:
    """Axis cap radius (mm) of ``lev`` for this model: 0 without a level or for 1D kernels,
    which have no axis cusp (their capped table is T itself, so no axis cylinder either)."""
    return 0.0 if (lev is None or fm.is_1d) else lev.cap_mm


def capped_table(fm: FastModel, cap_mm: float) -> NDArray[np.float64]:
    """T with the axis cusp smoothed within ρ < ``cap_mm``: float64 (nr, nθ) on TABLE_LAYOUT.

    F(r, θ) is linear in θ and folded at 0°: a cusp along the seed axis that no coarse grid
    represents. Within θ < θc(r) = asin(min(ρc/r, sin 45°)) each row is replaced by the even
    quartic cap T(θc) + m·θc·(¾u² − ⅛u⁴ − ⅝), u = θ/θc, with m the secant slope of T between
    θc and 2θc: equal to T at θc with slope m and zero curvature there, flat on the axis, and
    continuous in r (θc, T(θc) and T(2θc) all are). 1D kernels have no cusp: T unchanged.
    """
    if cap_mm <= 0.0:
        return fm.table
    r = TABLE_LAYOUT.r_nodes_mm()
    th = TABLE_LAYOUT.theta_nodes_deg()
    thc = np.degrees(np.arcsin(np.minimum(cap_mm / np.maximum(r, 1e-9), math.sqrt(0.5))))
    with _KERNEL_LOCK:
        t_c = _tabulate_pairs(r, thc, *fm.model_arrays())
        t_2c = _tabulate_pairs(r, np.minimum(2.0 * thc, 90.0), *fm.model_arrays())
    slope = (t_2c - t_c) / thc
    u = th[np.newaxis, :] / thc[:, np.newaxis]
    cap = t_c[:, np.newaxis] + (slope * thc)[:, np.newaxis] * (0.75 * u * u - 0.125 * u**4 - 0.625)
    return np.where(u < 1.0, cap, fm.table)


_PART_CACHE: dict[tuple[str, str, FastSpec], tuple[NDArray[np.float32], ...]] = {}


def part_tables(fm: FastModel, spec: FastSpec) -> tuple[NDArray[np.float32], ...]:
    """(near, level 1, …, level L) float32 tables whose sum is T (to float32 rounding).

    With s_l the window and C_l the capped table of level l: near = T − s_1·C_1,
    level l = s_l·C_l − s_(l+1)·C_(l+1), the last level s_L·C_L. Each is exactly 0 where its
    part is not evaluated (s = 1 and C = T there), so skipping those voxels loses nothing.
    """
    key = (fm.model.checksum, fm.formalism, spec)
    got = _PART_CACHE.get(key)
    if got is not None:
        return got
    r = TABLE_LAYOUT.r_nodes_mm()[:, np.newaxis]
    terms = [
        _smoothstep(r, lev.r0_mm, lev.r1_mm) * capped_table(fm, _cap_mm(fm, lev))
        for lev in spec.levels
    ]
    parts = [fm.table - terms[0]]
    parts += [terms[i] - terms[i + 1] for i in range(len(terms) - 1)]
    parts.append(terms[-1])
    got = tuple(np.ascontiguousarray(p, dtype=np.float32) for p in parts)
    _PART_CACHE[key] = got
    return got


# Memory-bound (a few MACs per fine voxel). The x and y passes work on the small coarse planes and
# stay serial; the z pass streams the fine grid and is split over the threads (10⁶ voxels: 3.3 →
# 2.4 ms median on 2 shared cores; an earlier version that also split the scratch allocation
# measured 12-16 ms under load, from page faults and threads waiting for a scheduler tick).
@njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
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
    for r in prange(nz * ny):
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


# =========================================================================== Python wrappers
def _seed_arrays(positions_mm, axes, strengths_u):
    return (
        np.ascontiguousarray(positions_mm, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(axes, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(strengths_u, dtype=np.float64).reshape(-1),
    )


def _row_boxes(
    shape_zyx: tuple[int, ...],
    origin_mm: NDArray[np.float64],
    m_ijk: NDArray[np.float64],
    pos: NDArray[np.float64],
    axes: NDArray[np.float64],
    r_out: float,
    rho_cyl: float,
) -> NDArray[np.float64]:
    """Per seed, the (j, k) index box [j0, j1, k0, k1] of the rows its part can touch: the ball
    r < r_out and the axis cylinder ρ < rho_cyl clipped to the grid (everything if r_out ≤ 0).

    The cylinder's axis line is clipped (slab method, in index space) to the grid box grown by
    the cylinder radius; the box of the two end points, grown again, holds the clipped cylinder.
    """
    ns = pos.shape[0]
    boxes = np.empty((ns, 4))
    boxes[:, 0] = boxes[:, 2] = -1.0
    boxes[:, 1] = boxes[:, 3] = 1.0e9
    if r_out <= 0.0 or ns == 0:
        return boxes
    m_inv = np.linalg.inv(m_ijk)
    per_mm = np.linalg.norm(m_inv, axis=1)  # index units per mm along i, j, k (an upper bound)
    c0 = (pos - origin_mm) @ m_inv.T  # (ns, 3) continuous (i, j, k)
    n_ijk = np.array(shape_zyx[::-1], dtype=np.float64)
    e_ball = r_out * per_mm + 1.0
    lo = c0 - e_ball
    hi = c0 + e_ball
    if rho_cyl > 0.0:
        e = rho_cyl * per_mm + 1.0
        d = axes @ m_inv.T  # index-space direction of each axis
        g_lo, g_hi = -e, n_ijk - 1.0 + e
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (g_lo - c0) / d
            t2 = (g_hi - c0) / d
        par = np.abs(d) < 1e-12
        inside = (c0 >= g_lo) & (c0 <= g_hi)
        t_lo = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2)).max(axis=1)
        t_hi = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2)).min(axis=1)
        hit = t_hi >= t_lo
        if hit.any():
            p_a = c0[hit] + t_lo[hit, None] * d[hit]
            p_b = c0[hit] + t_hi[hit, None] * d[hit]
            lo[hit] = np.minimum(lo[hit], np.minimum(p_a, p_b) - e)
            hi[hit] = np.maximum(hi[hit], np.maximum(p_a, p_b) + e)
    boxes[:, 0], boxes[:, 1] = lo[:, 1], hi[:, 1]
    boxes[:, 2], boxes[:, 3] = lo[:, 2], hi[:, 2]
    return boxes


def _run_part(
    fm: FastModel,
    lut: NDArray[np.float32],
    out: NDArray[np.float64],
    counts: NDArray[np.int32],
    rows: tuple[int, int],
    origin_mm: NDArray[np.float64],
    m_ijk: NDArray[np.float64],
    seeds: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    *,
    direct: bool,
    r_in: float = 0.0,
    r_out: float = -1.0,
    rho_cyl: float = 0.0,
) -> None:
    pos, ax, st = seeds
    if pos.shape[0] == 0 or rows[1] <= rows[0]:
        return
    origin = np.ascontiguousarray(origin_mm, dtype=np.float64)
    m = np.ascontiguousarray(m_ijk, dtype=np.float64)
    boxes = _row_boxes(out.shape, origin, m, pos, ax, r_out, rho_cyl)
    with _KERNEL_LOCK:
        _part_rows(
            out,
            counts,
            int(rows[0]),
            int(rows[1]),
            origin,
            m,
            pos,
            ax,
            st,
            boxes,
            direct,
            float(r_in),
            float(r_out),
            float(rho_cyl),
            lut,
            fm.lut_par,
            ATAN_COEF,
            *fm.model_arrays(),
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
    """EXACT mode: add Σ S·Ḋ (cGy/h) of the seeds to ``out`` (float64 (nz, ny, nx), C-contiguous).

    ``index_to_world`` is GridGeometry.index_to_world_matrix (mm per index step, columns i, j, k).
    ``row_range`` limits the work to flattened rows [r0, r1) of (k, j) — used for chunking.
    """
    nz, ny, _ = out.shape
    rows = row_range if row_range is not None else (0, nz * ny)
    _run_part(
        fm,
        fm.lut,
        out,
        counts,
        rows,
        origin_mm,
        index_to_world,
        _seed_arrays(positions_mm, axes, strengths_u),
        direct=True,
        r_out=-1.0 if cutoff_mm is None else float(cutoff_mm),
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
    pos, ax, st = _seed_arrays(positions_mm, axes, strengths_u)
    with _KERNEL_LOCK:
        _points_kernel(
            out, flags, pts, pos, ax, st, cutoff2, fm.lut, fm.lut_par, ATAN_COEF, *fm.model_arrays()
        )
    return out, flags


def threads() -> int:
    """Number of numba worker threads."""
    return int(numba.get_num_threads())


# =========================================================================== FAST layouts
@dataclass(frozen=True, eq=False)
class CoarseLevel:
    """A coarse grid in the index space of the next finer grid, and the stencils back to it.

    Coarse node I along an axis sits on finer index n·(I − 1) (n = ``steps_ijk``), so the coarse
    grid covers the finer one with one node before and two after (a flat axis of one voxel keeps
    one node). Everything is in index space, so any direction matrix works.
    """

    shape_zyx: tuple[int, int, int]
    origin_mm: NDArray[np.float64]
    m_ijk: NDArray[np.float64]  # coarse index → LPS mm (columns i, j, k)
    steps_ijk: tuple[int, int, int]
    stencils: tuple[NDArray, ...]  # bx, wx, by, wy, bz, wz onto the finer grid


def coarse_level(
    shape_zyx: tuple[int, int, int],
    origin_mm: NDArray[np.float64],
    m_ijk: NDArray[np.float64],
    step_mm: float,
) -> CoarseLevel:
    """The coarse grid of step ≤ ``step_mm`` over a grid (per axis n = max(1, floor(step /
    spacing)))."""
    m = np.ascontiguousarray(m_ijk, dtype=np.float64)
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
            # never coarser than step_mm: the windows and caps are tuned for that step (a
            # rounded-up step of 2.6 mm instead of 2 mm doubled the interpolation error)
            st = max(1, math.floor(step_mm / spacing[a] + 1e-6))
            steps.append(st)
            c_ijk.append((n_f - 1) // st + 1 + _PAD_LO + _PAD_HI)
            off.append(-float(st * _PAD_LO))
            b, w = _catmull_rom(n_f, st)
        stencils += [b, w]
    origin = np.asarray(origin_mm, dtype=np.float64)
    return CoarseLevel(
        (c_ijk[2], c_ijk[1], c_ijk[0]),
        origin + m @ np.array(off),
        np.ascontiguousarray(m * np.array(steps, dtype=np.float64)[np.newaxis, :]),
        (steps[0], steps[1], steps[2]),
        tuple(stencils),
    )


@dataclass(frozen=True, eq=False)
class SplitLayout:
    """FAST mode on one fine grid: the spec and its chain of coarse grids (level l + 1 is the
    coarse grid of level l)."""

    shape_zyx: tuple[int, int, int]
    origin_mm: NDArray[np.float64]
    m_ijk: NDArray[np.float64]  # fine index → LPS mm (columns i, j, k)
    spec: FastSpec
    levels: tuple[CoarseLevel, ...]

    @property
    def coarse_shapes_zyx(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(lev.shape_zyx for lev in self.levels)

    def zeros_far(self) -> list[NDArray[np.float64]]:
        """Fresh far sums, one float64 array per level."""
        return [np.zeros(s, dtype=np.float64) for s in self.coarse_shapes_zyx]


def split_layout(
    shape_zyx: tuple[int, int, int],
    origin_mm: NDArray[np.float64],
    index_to_world: NDArray[np.float64],
    spec: FastSpec | None = None,
) -> SplitLayout:
    """The FAST-mode layout of a fine grid for ``spec`` (default FAST_GRID_SPEC)."""
    spec = FAST_GRID_SPEC if spec is None else spec
    shape = (int(shape_zyx[0]), int(shape_zyx[1]), int(shape_zyx[2]))
    origin = np.asarray(origin_mm, dtype=np.float64)
    m = np.ascontiguousarray(index_to_world, dtype=np.float64)
    levels = []
    g_shape, g_origin, g_m = shape, origin, m
    for lev in spec.levels:
        c = coarse_level(g_shape, g_origin, g_m, lev.step_mm)
        levels.append(c)
        g_shape, g_origin, g_m = c.shape_zyx, c.origin_mm, c.m_ijk
    return SplitLayout(shape, origin, m, spec, tuple(levels))


def _corners_mm(shape_zyx, origin_mm, m_ijk) -> NDArray[np.float64]:
    n = np.array(shape_zyx[::-1], dtype=np.float64) - 1.0
    c = np.array([[a, b, d] for a in (0, 1) for b in (0, 1) for d in (0, 1)], dtype=np.float64)
    return origin_mm + (c * n) @ m_ijk.T


def _cylinder_mm(cap_mm: float, positions_mm, corners_mm) -> float:
    """Radius of the axis cylinder that holds a part's non-zero values beyond its ball.

    A part is non-zero beyond its ball only within θ < θc(r) (cap radius ρc) plus one table
    column (0.25° below 10°, 1° above, i.e. r < 5.8·ρc), bilinearly: ρ ≤ ρc + r·sin(0.25°)
    up to the farthest grid corner r, and ≤ 1.1·ρc where the column is 1°; + 0.5 mm margin.
    """
    if cap_mm <= 0.0:
        return 0.0
    d = np.linalg.norm(corners_mm[np.newaxis, :, :] - positions_mm[:, np.newaxis, :], axis=2)
    r_reach = float(d.max()) if d.size else 0.0
    return cap_mm + max(0.1 * cap_mm, r_reach * math.sin(math.radians(0.25))) + 0.5


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
    """out += Σ S·(near kernel) (cGy/h) on the fine grid; capsule flags into ``counts``."""
    seeds = _seed_arrays(positions_mm, axes, strengths_u)
    nz, ny, _ = lay.shape_zyx
    rows = row_range if row_range is not None else (0, nz * ny)
    first = lay.spec.levels[0]
    rho = _cylinder_mm(
        _cap_mm(fm, first), seeds[0], _corners_mm(lay.shape_zyx, lay.origin_mm, lay.m_ijk)
    )
    _run_part(
        fm,
        part_tables(fm, lay.spec)[0],
        out,
        counts,
        rows,
        lay.origin_mm,
        lay.m_ijk,
        seeds,
        direct=True,
        r_out=first.r1_mm,
        rho_cyl=rho,
    )


def far_accumulate(
    fm: FastModel,
    far: list[NDArray[np.float64]],
    lay: SplitLayout,
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    level: int | None = None,
    row_range: tuple[int, int] | None = None,
) -> None:
    """far[l] += Σ S·(level-l kernel) (cGy/h) on the coarse nodes of level l (every level, or
    only ``level``; ``row_range``: flattened (K, J) rows [r0, r1) of that level only)."""
    seeds = _seed_arrays(positions_mm, axes, strengths_u)
    tables = part_tables(fm, lay.spec)
    dummy = np.zeros((1, 1, 1), dtype=np.int32)
    n_lev = len(lay.levels)
    for lv in range(n_lev) if level is None else (level,):
        c = lay.levels[lv]
        nz, ny, _ = c.shape_zyx
        rows = row_range if (row_range is not None and level is not None) else (0, nz * ny)
        nxt = lay.spec.levels[lv + 1] if lv + 1 < n_lev else None  # the level taking over
        _run_part(
            fm,
            tables[lv + 1],
            far[lv],
            dummy,
            rows,
            c.origin_mm,
            c.m_ijk,
            seeds,
            direct=False,
            r_in=lay.spec.levels[lv].r0_mm,
            r_out=-1.0 if nxt is None else nxt.r1_mm,
            rho_cyl=_cylinder_mm(
                _cap_mm(fm, nxt), seeds[0], _corners_mm(c.shape_zyx, c.origin_mm, c.m_ijk)
            ),
        )


def upsample_into(
    dst: NDArray[np.float64],
    base: NDArray[np.float64],
    far: list[NDArray[np.float64]],
    lay: SplitLayout,
) -> None:
    """dst = base + the far levels, each Catmull-Rom upsampled into the next finer one (``far``
    is not modified; dst may be base)."""
    with _KERNEL_LOCK:
        acc = far[-1]
        for lv in range(len(lay.levels) - 1, 0, -1):
            finer = np.empty_like(far[lv - 1])
            _upsample(finer, far[lv - 1], acc, *lay.levels[lv].stencils)
            acc = finer
        _upsample(dst, base, acc, *lay.levels[0].stencils)


def warm_up(model: SourceModel | None = None) -> None:
    """Compile (or load from cache) every kernel, so the first GUI use does not stall."""
    from dose.sources import load_model

    m = model if model is not None else load_model("6711")
    for formalism in ("2d", "1d") if m.has_phi_an else ("2d",):
        fm = fast_model(m, formalism)  # type: ignore[arg-type]
        one = (np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]]), np.ones(1))
        out = np.zeros((2, 3, 4))
        counts = np.zeros(out.shape, dtype=np.int32)
        grid_rate_accumulate(fm, out, counts, np.zeros(3), np.eye(3), *one)
        points_rate(fm, np.ones((2, 3)), *one)
        for spec in (FAST_GRID_SPEC, FAST_SLICE_SPEC):
            lay = split_layout((6, 7, 8), np.zeros(3), np.eye(3), spec)
            near = np.zeros(lay.shape_zyx)
            far = lay.zeros_far()
            near_accumulate(fm, near, np.zeros(lay.shape_zyx, dtype=np.int32), lay, *one)
            far_accumulate(fm, far, lay, *one)
            upsample_into(near, near, far, lay)
