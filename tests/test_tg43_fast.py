"""FAST grid mode (near/far split, coarse far grid, cubic upsample) against the exact engine and
the independent numpy reference; fast slices; fast incremental accumulator; mode labelling.

Tolerances come from issue 3 ("≤ 0.5 % error" for the interactive grid) and from the measured
behaviour of the split, stated where a bound differs (see dose/engine/kernels/fast.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_dose import make_case
from dose.engine import Cancelled, DoseEngine, DoseGrid, DoseResult, SeedSet, kernels, make_engine
from dose.geometry import GridGeometry
from tests.dose_helpers import random_edits, random_rotation

# Issue 3, Performance: the fast grid must stay within 0.5 % of the reference beyond 1 mm; met
# on needle implants (measured ≤ 0.2 %).
FAST_TOL = 5e-3
# The bound DoseResult.label() states for FAST mode everywhere beyond 1 mm from every seed (any
# model, axes, grid): measured ≤ 1.61 % (grids) and ≤ 1.30 % (slices) over 192 random cases, the
# worst a kink of IAI-125A's g_L at 8 cm seen by the 4 mm level (dose/engine/kernels/fast.py).
FAST_TOL_ANY = 2.0e-2
FAST_LABEL = "fast (display; ≤2 % beyond 1 mm from the seeds)"


def _geometry_around(
    rng: np.random.Generator, shape_zyx: tuple[int, int, int], spacing: tuple[float, ...]
) -> GridGeometry:
    """A rotated grid roughly centred on the origin."""
    d = random_rotation(rng)
    half = 0.5 * np.array(shape_zyx[::-1]) * np.array(spacing)
    return GridGeometry(shape_zyx, -d @ half, np.array(spacing), d)


def _errors(
    fast: np.ndarray, want: np.ndarray, geometry: GridGeometry, seeds: SeedSet, cone_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Relative errors beyond 1 mm from every seed: all, and outside every seed's axis cone."""
    w = geometry.voxel_centres_world().reshape(-1, 3)
    rel = (np.abs(fast - want) / want).reshape(-1)
    if len(seeds) == 0:
        return rel, rel
    dmin = np.full(w.shape[0], np.inf)
    off_axis = np.ones(w.shape[0], dtype=bool)
    for p, ax in zip(seeds.positions_mm, seeds.axes, strict=True):  # O(P) memory
        v = w - p
        r = np.linalg.norm(v, axis=1)
        dmin = np.minimum(dmin, r)
        off_axis &= np.abs(v @ ax) <= np.cos(np.radians(cone_deg)) * np.maximum(r, 1e-9)
    far = dmin > 1.0
    return rel[far], rel[far & off_axis]


def _fast_vs_exact(
    eng: DoseEngine, seeds: SeedSet, geometry: GridGeometry, cone_deg: float
) -> tuple[np.ndarray, np.ndarray, DoseResult, DoseResult]:
    """FAST and EXACT grids of ``seeds``; their relative errors as :func:`_errors` gives them."""
    fast = eng.dose_rate_on_grid(seeds, geometry, mode="fast")
    exact = eng.dose_rate_on_grid(seeds, geometry)
    rel, rel_off_axis = _errors(
        fast.dose_rate_cgy_h, exact.dose_rate_cgy_h, geometry, seeds, cone_deg
    )
    return rel, rel_off_axis, fast, exact


def test_fast_grid_realistic_implant_vs_exact_and_reference() -> None:
    # the benchmark implant (needles of parallel seeds 5 mm apart), smaller: 6 needles x 8 seeds
    seeds, grid = make_case(6, 8)
    eng = make_engine("6711")
    rel, _, fast, exact = _fast_vs_exact(eng, seeds, grid, 10.0)
    # measured with the 2 + 4 mm levels: max 0.17 %, mean 0.022 % (most of the volume is on
    # the 4 mm level, whose interpolation error is small but everywhere)
    assert rel.max() <= FAST_TOL
    assert rel.mean() <= 5e-4
    assert (fast.flagged == exact.flagged).all()
    # and directly against the independent reference at random voxels
    rng = np.random.default_rng(31)
    kji = rng.integers(0, 100, size=(1500, 3))
    pts = grid.zyx_to_world(kji.astype(np.float64))
    d = np.linalg.norm(pts[:, None] - seeds.positions_mm[None], axis=2).min(axis=1)
    kji, pts = kji[d > 1.0], pts[d > 1.0]
    ref = make_engine("6711", kind="reference").dose_rate_at_points(seeds, pts).dose_rate_cgy_h
    got = fast.dose_rate_cgy_h[kji[:, 0], kji[:, 1], kji[:, 2]]
    assert np.max(np.abs(got - ref) / ref) <= FAST_TOL


@pytest.mark.parametrize(
    ("n_seeds", "shape", "spacing", "shift_mm"),
    [
        (30, (40, 44, 48), (1.0, 1.1, 1.2), 0.0),  # cloud inside a rotated grid
        (12, (8, 9, 10), (1.0, 1.0, 1.0), 0.0),  # grid smaller than the near radius
        (10, (30, 34, 36), (1.2, 0.9, 1.5), 45.0),  # seeds outside the grid
        (1, (50, 50, 50), (1.0, 1.0, 1.0), 0.0),  # a single seed
    ],
)
def test_fast_grid_random_clouds_vs_exact(
    n_seeds: int, shape: tuple[int, int, int], spacing: tuple[float, ...], shift_mm: float
) -> None:
    rng = np.random.default_rng(n_seeds)
    pos = rng.normal(0.0, 8.0, (n_seeds, 3)) + shift_mm * np.array([1.0, 0.0, 0.0])
    seeds = SeedSet.create(pos, rng.normal(size=(n_seeds, 3)), rng.uniform(0.3, 1.2, n_seeds))
    geometry = _geometry_around(rng, shape, spacing)
    eng = make_engine("6711")
    rel, rel_off_axis, fast, exact = _fast_vs_exact(eng, seeds, geometry, 15.0)
    # the label's bound everywhere (the axis cusp of F is in the near part); off the axes the
    # issue's goal (measured ≤ 0.34 % for clouds, ≤ 0.67 % for a lone 6711 seed at r ≈ 22 mm)
    assert rel.max() <= FAST_TOL_ANY
    if n_seeds > 1:
        assert rel_off_axis.max() <= FAST_TOL
    assert (fast.flagged == exact.flagged).all()
    assert fast.extras["mode"] == "fast" and exact.extras["mode"] == "exact"


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.1, 1.2)])
@pytest.mark.parametrize("model", ["6711", "2301", "6702", "IAI-125A", "STM1251", "AgX100"])
def test_fast_grid_lone_seed_every_model_within_label_bound(
    model: str, spacing: tuple[float, float, float]
) -> None:
    # one seed, arbitrary axis, on a rotated grid reaching ~60 mm along the seed axis: the worst
    # case for the axis cusp of F(r, θ) (without the axis caps: 2.4-34 % here). At 1 mm the
    # levels are 2 and 4 mm (measured ≤ 1.25 %); at 1.1-1.2 mm the steps are never coarser
    # than 2 and 4 mm, so j and k keep the fine spacing (≤ 1.21 %).
    rng = np.random.default_rng(sum(map(ord, model)))
    seeds = SeedSet.create(rng.uniform(-1, 1, (1, 3)), rng.normal(size=(1, 3)), 0.7)
    geometry = _geometry_around(rng, (101, 102, 103), spacing)
    eng = make_engine(model)
    rel, _, fast, exact = _fast_vs_exact(eng, seeds, geometry, 0.0)
    assert rel.max() <= FAST_TOL_ANY
    assert (fast.flagged == exact.flagged).all()
    # and a fast slice through the seed (the slice split has its own parameters)
    k = round(geometry.world_to_zyx(seeds.positions_mm)[0, 0])
    sl = eng.dose_rate_on_slice(seeds, geometry, k, mode="fast")
    ex = eng.dose_rate_on_slice(seeds, geometry, k)
    rel_s, _ = _errors(sl.dose_rate_cgy_h, ex.dose_rate_cgy_h, sl.geometry, seeds, 0.0)
    assert rel_s.max() <= FAST_TOL_ANY


def test_fast_grid_1d_formalism_cloud_and_lone_seed() -> None:
    # 1D point source: no angular table, hence no axis cusp and no axis caps (the near part is a
    # plain ball). A seed cloud meets the 0.5 % goal; a lone seed on a 1 mm grid reaching
    # ~85 mm stays within the label bound (24 random 1D cases measured ≤ 0.74 %: g_L kinks seen
    # by the 4 mm level).
    rng = np.random.default_rng(41)
    seeds = SeedSet.create(rng.normal(0, 8, (15, 3)), None, rng.uniform(0.3, 1.2, 15))
    geometry = _geometry_around(rng, (36, 40, 44), (1.0, 1.0, 1.0))
    eng = make_engine("6711", "1d")
    fast = eng.dose_rate_on_grid(seeds, geometry, mode="fast")
    ref = make_engine("6711", "1d", kind="reference").dose_rate_on_grid(seeds, geometry)
    rel, _ = _errors(fast.dose_rate_cgy_h, ref.dose_rate_cgy_h, geometry, seeds, 0.0)
    assert rel.max() <= FAST_TOL
    for model in ("6711", "2301", "6702"):  # the models with a published φ_an
        lone = SeedSet.create(rng.uniform(-1, 1, (1, 3)), None, 0.7)
        big = _geometry_around(rng, (101, 102, 103), (1.0, 1.0, 1.0))
        eng = make_engine(model, "1d")
        rel, *_ = _fast_vs_exact(eng, lone, big, 0.0)
        assert rel.max() <= FAST_TOL_ANY, model


def test_fast_grid_zero_seeds_and_labels() -> None:
    geometry = GridGeometry.axis_aligned((5, 6, 7), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    eng = make_engine("6711")
    empty = SeedSet.create(np.zeros((0, 3)))
    res = eng.dose_rate_on_grid(empty, geometry, mode="fast")
    assert res.dose_rate_cgy_h.shape == geometry.shape_zyx
    assert not res.dose_rate_cgy_h.any() and not res.flagged.any()
    assert FAST_LABEL in res.label() and res.mode == "fast"
    assert "engine exact" in eng.dose_rate_on_grid(empty, geometry).label()
    with pytest.raises(ValueError):
        make_engine("6711", kind="reference").dose_rate_on_grid(empty, geometry, mode="fast")
    with pytest.raises(ValueError):
        eng.dose_rate_on_grid(empty, geometry, mode="quick")  # type: ignore[arg-type]


def test_fast_slice_matches_fast_grid_slice_and_exact() -> None:
    rng = np.random.default_rng(17)
    seeds = SeedSet.create(rng.normal(0, 7, (20, 3)), rng.normal(size=(20, 3)), 0.6)
    geometry = _geometry_around(rng, (30, 64, 60), (1.0, 0.8, 0.8))
    eng = make_engine("6711")
    grid = eng.dose_rate_on_grid(seeds, geometry, mode="fast").dose_rate_cgy_h
    for k in (4, 15, 26):
        sl = eng.dose_rate_on_slice(seeds, geometry, k, mode="fast")
        ex = eng.dose_rate_on_slice(seeds, geometry, k)
        g2 = sl.geometry
        assert sl.mode == "fast" and sl.dose_rate_cgy_h.shape == (64, 60)
        rel_grid, _ = _errors(sl.dose_rate_cgy_h, grid[k], g2, seeds, 15.0)
        rel_ex, rel_ex_off = _errors(sl.dose_rate_cgy_h, ex.dose_rate_cgy_h, g2, seeds, 15.0)
        # both are within the label's bound of the exact values, so they agree to twice that
        assert rel_ex.max() <= FAST_TOL_ANY and rel_grid.max() <= 2 * FAST_TOL_ANY
        assert rel_ex_off.max() <= FAST_TOL
        assert (sl.flagged == ex.flagged).all()


def test_fast_accumulator_edit_sequence_equals_fast_recompute() -> None:
    rng = np.random.default_rng(23)
    geometry = _geometry_around(rng, (24, 28, 30), (1.0, 1.0, 1.0))
    eng = make_engine("6711")
    acc = DoseGrid(eng, geometry, mode="fast")
    acc.set_seeds(SeedSet.create(rng.normal(0, 7, (15, 3)), rng.normal(size=(15, 3)), 0.7))
    ids = list(range(15))
    random_edits(acc, rng, ids, 300)
    full = eng.dose_rate_on_grid(acc.seeds(), geometry, mode="fast")
    rel = np.abs(acc.dose_rate_cgy_h - full.dose_rate_cgy_h) / full.dose_rate_cgy_h
    assert rel.max() <= 1e-6  # issue 3: no drift, ≤ 1e-6 relative after a long edit sequence
    assert (acc.flagged == full.flagged).all()
    res = acc.result()
    assert res.mode == "fast" and "fast" in res.label()
    # a cancelled fast recompute keeps the previous state
    before = acc.dose_rate_cgy_h.copy()
    with pytest.raises(Cancelled):
        acc.set_seeds(SeedSet.create(rng.normal(0, 7, (5, 3))), cancel=lambda: True)
    np.testing.assert_array_equal(acc.dose_rate_cgy_h, before)
    # removing every seed returns to zero (up to float64 rounding of the sums)
    for sid in list(ids):
        acc.remove(sid)
    assert np.abs(acc.dose_rate_cgy_h).max() <= 1e-9 * full.dose_rate_cgy_h.max()
    assert not acc.flagged.any()


def test_split_layout_covers_the_grid_and_upsample_is_exact_for_quadratics() -> None:
    # Catmull-Rom reproduces quadratics exactly (its defining property), in index space, for
    # any direction matrix and per-axis steps; a one-voxel axis is copied. Through a chain of
    # two coarse levels as well (level 2 is the coarse grid of level 1, padding included).
    rng = np.random.default_rng(3)

    def f(p: np.ndarray) -> np.ndarray:
        return 1 + 0.3 * p[..., 0] - 0.02 * p[..., 1] ** 2 + 0.01 * p[..., 0] * p[..., 2]

    def level_geometry(lev: kernels.CoarseLevel, direction: np.ndarray) -> GridGeometry:
        return GridGeometry(
            lev.shape_zyx, lev.origin_mm, np.linalg.norm(lev.m_ijk, axis=0), direction
        )

    for shape, spacing, steps in (
        ((13, 20, 17), (0.7, 1.1, 1.9), (2.0,)),
        ((1, 40, 33), (0.8, 0.8, 2.0), (3.2,)),
        ((21, 25, 23), (1.0, 0.9, 1.2), (2.0, 4.0)),
    ):
        g = GridGeometry(shape, rng.normal(size=3), np.array(spacing), random_rotation(rng))
        spec = kernels.FastSpec(
            tuple(
                kernels.FastLevel(step, 10.0 + 30 * n, 24.0 + 30 * n, 0.0)
                for n, step in enumerate(steps)
            )
        )
        lay = kernels.split_layout(g.shape_zyx, g.origin_mm, g.index_to_world_matrix, spec)
        far = lay.zeros_far()
        # the whole field on the coarsest level, zeros on the others
        far[-1][...] = f(level_geometry(lay.levels[-1], g.direction).voxel_centres_world())
        out = np.zeros(g.shape_zyx)
        kernels.upsample_into(out, out, far, lay)
        np.testing.assert_allclose(out, f(g.voxel_centres_world()), atol=1e-9)
        # and every level covers the grid, with the padding Catmull-Rom needs
        for lev in lay.levels:
            lo = level_geometry(lev, g.direction).world_to_zyx(g.voxel_centres_world()[0, 0, 0])
            assert np.all(lo[np.array(lev.shape_zyx) > 1] >= 1.0 - 1e-9)


@pytest.mark.parametrize("spec_name", ["FAST_GRID_SPEC", "FAST_SLICE_SPEC"])
@pytest.mark.parametrize("model", ["6711", "STM1251", "AgX100"])
def test_part_tables_sum_to_the_kernel_and_vanish_where_they_are_skipped(
    spec_name: str, model: str
) -> None:
    # The kernels skip a part wherever its table is 0 (outside the part's ball and axis
    # cylinder, inside its window start), so that must hold exactly at the table nodes; and
    # the parts must add up to the EXACT-mode table T (dose/engine/kernels/fast.py, part_tables).
    spec = getattr(kernels, spec_name)
    fm = kernels.fast_model(make_engine(model).model, "2d")
    parts = [p.astype(np.float64) for p in kernels.part_tables(fm, spec)]
    np.testing.assert_allclose(sum(parts), fm.table, rtol=1e-6, atol=0.0)
    r = kernels.TABLE_LAYOUT.r_nodes_mm()[:, np.newaxis]
    rho = r * np.sin(np.radians(kernels.TABLE_LAYOUT.theta_nodes_deg()))[np.newaxis, :]
    levels = spec.levels
    for n, part in enumerate(parts):
        nonzero = part != 0.0
        if n > 0:  # level n: nothing inside its window start
            assert not nonzero[r[:, 0] < levels[n - 1].r0_mm].any()
        if n < len(levels):  # beyond the next level's window end: only the thin axis cylinder
            beyond = (r >= levels[n].r1_mm) & (rho >= levels[n].cap_mm)
            assert not (nonzero & beyond).any()
    # the cap does change the kernel near the axis (else the test above proves nothing)
    assert (parts[0][(r[:, 0] > levels[0].r1_mm + 5.0)] != 0.0).any()


def test_fast_slices_through_lone_seeds_at_random_angles_within_label_bound() -> None:
    # Slices that cut a seed axis obliquely at some distance from the seed cross the axis cusp
    # of F where the slice's coarse level takes over (a 4 mm axis cap there erred up to 3 % for
    # 2301; with the 8 mm cap measured ≤ 1.3 % over 60 such cases, dose/engine/kernels/fast.py).
    rng = np.random.default_rng(5)
    for case in range(12):
        model = ["2301", "6711", "STM1251", "AgX100", "IAI-125A", "6702"][case % 6]
        seeds = SeedSet.create(rng.normal(0, 6, (1, 3)), rng.normal(size=(1, 3)), 0.7)
        geometry = _geometry_around(rng, (90, 95, 100), tuple(rng.uniform(0.7, 1.3, 3)))
        eng = make_engine(model)
        k = int(rng.integers(20, 70))
        fast = eng.dose_rate_on_slice(seeds, geometry, k, mode="fast")
        exact = eng.dose_rate_on_slice(seeds, geometry, k)
        rel, _ = _errors(fast.dose_rate_cgy_h, exact.dose_rate_cgy_h, fast.geometry, seeds, 0.0)
        assert rel.max() <= FAST_TOL_ANY, (model, case)


@pytest.mark.parametrize("model", ["6711", "2301", "6702", "IAI-125A", "STM1251", "AgX100"])
def test_fast_grid_random_spacings_within_label_bound(model: str) -> None:
    # Anisotropic spacings between 0.7 and 1.6 mm: the coarse steps must never be rounded up
    # past the tuned 2 and 4 mm (a 1.29 mm spacing once gave a 2.6 mm step and 2.0 % errors;
    # measured now ≤ 1.61 % over 192 random cases, dose/engine/kernels/fast.py).
    rng = np.random.default_rng(sum(map(ord, model)) + 7)
    n = int(rng.integers(1, 6))
    seeds = SeedSet.create(rng.normal(0, 6, (n, 3)), rng.normal(size=(n, 3)), 0.6)
    geometry = _geometry_around(rng, (80, 85, 90), tuple(rng.uniform(0.7, 1.6, 3)))
    eng = make_engine(model)
    rel, _, fast, exact = _fast_vs_exact(eng, seeds, geometry, 0.0)
    assert rel.max() <= FAST_TOL_ANY
    assert (fast.flagged == exact.flagged).all()
