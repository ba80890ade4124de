"""FAST mode of the numba engine: the table-baked multilevel near/far split (interactive display).

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
from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from dose.engine.kernels.exact import run_part, seed_arrays
from dose.engine.kernels.jit import tabulate_pairs
from dose.engine.kernels.tables import KERNEL_LOCK, TABLE_LAYOUT, FastModel, frozen_f64

__all__ = [
    "FAST_GRID_SPEC",
    "FAST_SLICE_SPEC",
    "CoarseLevel",
    "FastLevel",
    "FastSpec",
    "SplitLayout",
    "capped_table",
    "coarse_level",
    "far_accumulate",
    "near_accumulate",
    "part_tables",
    "split_layout",
    "upsample_into",
]


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
    with KERNEL_LOCK:
        r_ro, thc_ro = frozen_f64(r), frozen_f64(thc)
        t_c = tabulate_pairs(r_ro, thc_ro, *fm.model_arrays())
        t_2c = tabulate_pairs(r_ro, frozen_f64(np.minimum(2.0 * thc, 90.0)), *fm.model_arrays())
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
    corners_mm: NDArray[np.float64]  # (8, 3) LPS mm of the coarse grid's corner nodes


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
    shape = (c_ijk[2], c_ijk[1], c_ijk[0])
    c_origin = origin + m @ np.array(off)
    c_m = np.ascontiguousarray(m * np.array(steps, dtype=np.float64)[np.newaxis, :])
    return CoarseLevel(
        shape,
        c_origin,
        c_m,
        (steps[0], steps[1], steps[2]),
        tuple(stencils),
        _corners_mm(shape, c_origin, c_m),
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
    corners_mm: NDArray[np.float64]  # (8, 3) LPS mm of the fine grid's corner voxels

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
    return SplitLayout(shape, origin, m, spec, tuple(levels), _corners_mm(shape, origin, m))


def _corners_mm(shape_zyx, origin_mm, m_ijk) -> NDArray[np.float64]:
    n = np.array(shape_zyx[::-1], dtype=np.float64) - 1.0
    c = np.array([[a, b, d] for a in (0, 1) for b in (0, 1) for d in (0, 1)], dtype=np.float64)
    return origin_mm + (c * n) @ m_ijk.T


@njit(cache=True, nogil=True)
def _max_distance_mm(positions_mm, corners_mm):  # pragma: no cover
    """Largest distance (mm) between a seed (S, 3) and a grid corner (8, 3) (in numba: the
    numpy version was ~30 µs of Python per part call, 9 calls per drag step)."""
    best = 0.0
    for s in range(positions_mm.shape[0]):
        for c in range(corners_mm.shape[0]):
            d2 = 0.0
            for a in range(3):
                d = corners_mm[c, a] - positions_mm[s, a]
                d2 += d * d
            best = max(best, d2)
    return math.sqrt(best)


def _cylinder_mm(cap_mm: float, positions_mm, corners_mm) -> float:
    """Radius of the axis cylinder that holds a part's non-zero values beyond its ball.

    A part is non-zero beyond its ball only within θ < θc(r) (cap radius ρc) plus one table
    column (0.25° below 10°, 1° above, i.e. r < 5.8·ρc), bilinearly: ρ ≤ ρc + r·sin(0.25°)
    up to the farthest grid corner r, and ≤ 1.1·ρc where the column is 1°; + 0.5 mm margin.
    """
    if cap_mm <= 0.0:
        return 0.0
    if not len(positions_mm):
        return cap_mm + 0.1 * cap_mm + 0.5
    r_reach = _max_distance_mm(frozen_f64(positions_mm), frozen_f64(corners_mm))
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
    seeds = seed_arrays(positions_mm, axes, strengths_u)
    nz, ny, _ = lay.shape_zyx
    rows = row_range if row_range is not None else (0, nz * ny)
    first = lay.spec.levels[0]
    rho = _cylinder_mm(_cap_mm(fm, first), seeds[0], lay.corners_mm)
    run_part(
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
    seeds = seed_arrays(positions_mm, axes, strengths_u)
    tables = part_tables(fm, lay.spec)
    dummy = np.zeros((1, 1, 1), dtype=np.int32)
    n_lev = len(lay.levels)
    for lv in range(n_lev) if level is None else (level,):
        c = lay.levels[lv]
        nz, ny, _ = c.shape_zyx
        rows = row_range if (row_range is not None and level is not None) else (0, nz * ny)
        nxt = lay.spec.levels[lv + 1] if lv + 1 < n_lev else None  # the level taking over
        run_part(
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
            rho_cyl=_cylinder_mm(_cap_mm(fm, nxt), seeds[0], c.corners_mm),
        )


def upsample_into(
    dst: NDArray[np.float64],
    base: NDArray[np.float64],
    far: list[NDArray[np.float64]],
    lay: SplitLayout,
) -> None:
    """dst = base + the far levels, each Catmull-Rom upsampled into the next finer one (``far``
    is not modified; dst may be base)."""
    with KERNEL_LOCK:
        acc = far[-1]
        for lv in range(len(lay.levels) - 1, 0, -1):
            finer = np.empty_like(far[lv - 1])
            _upsample(finer, far[lv - 1], acc, *lay.levels[lv].stencils)
            acc = finer
        _upsample(dst, base, acc, *lay.levels[0].stencils)
