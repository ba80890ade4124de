"""Live dose on the three views: fast incremental slices, isodose lines, stale exact results."""

from __future__ import annotations

import numpy as np
import pytest

from dose.engine import SeedSet, make_engine
from planner.plan.document import PlanDocument
from planner.plan.live_dose import VIEWS, LiveDose
from planner.plan.model import Seed
from planner.plan.needle_commands import AddSeedOnNeedle, DeleteSeeds, MoveSeedAlongNeedle
from tests.plan_builders import full_plan


@pytest.fixture(scope="module")
def engine():
    return make_engine("6711", "2d", "numba")


def _plan():
    p = full_plan().evolve(status="draft")
    extra = (
        Seed("sd-3", (-3.0, -8.0, -18.0), (0.0, 1.0, 0.0), None),
        Seed("sd-4", (4.0, -2.0, -25.0), (1.0, 0.0, 0.0), None, 0.7),
    )
    return p.evolve(seeds=(*p.seeds, *extra))


def _exact_plane(engine, live, view):
    plan = live.plan
    from planner.plan.dosimetry import plan_seed_set

    seeds, _ = plan_seed_set(plan)
    g = live.plane(view).geometry
    res = engine.dose_rate_on_grid(seeds, g)
    return res.dose_gy[0], seeds


def test_views_lie_on_the_ct_pixel_grid(engine):
    plan = _plan()
    live = LiveDose(plan, engine=engine, crop_margin_mm=None)
    g = plan.geometry
    for view, (k, j, i) in {
        "axial": (7, 3, 5),
        "coronal": (3, 7, 5),
        "sagittal": (3, 5, 7),
    }.items():
        live.set_slice(view, 7)
        plane = live.plane(view)
        rc = {"axial": (j, i), "coronal": (k, i), "sagittal": (k, j)}[view]
        w = plane.rc_to_world_mm(np.array([rc], dtype=float))[0]
        np.testing.assert_allclose(w, g.zyx_to_world(np.array([[k, j, i]], float))[0], atol=1e-9)
        assert live.slice_dose_gy(view).shape == plane.full_shape


def test_fast_views_match_the_exact_dose(engine):
    live = LiveDose(_plan(), engine=engine, crop_margin_mm=None)
    for view in VIEWS:
        exact, seeds = _exact_plane(engine, live, view)
        fast = live.region_dose_gy(view)
        pts = live.plane(view).geometry.voxel_centres_world().reshape(-1, 3)
        dist = np.min(
            np.linalg.norm(pts[:, None, :] - seeds.positions_mm[None, :, :], axis=2), axis=1
        ).reshape(exact.shape)
        far = dist > 1.0
        rel = np.abs(fast[far] - exact[far]) / exact[far]
        assert exact.max() > 0 and rel.max() <= 0.02


def test_incremental_edits_equal_a_fresh_computation_and_undo(engine):
    doc = PlanDocument(_plan())
    live = LiveDose(doc.plan, engine=engine, crop_margin_mm=10.0)
    live.attach(doc)
    before = {v: live.slice_dose_gy(v).copy() for v in VIEWS}
    seen = []
    live.events.slices_changed.connect(seen.append)
    with doc.stroke("Drag seed"):
        for k in range(6):
            doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=4.0 + 2.0 * k))
    doc.execute(AddSeedOnNeedle("nd-1", 12.0, seed_id="sd-5"))
    doc.execute(DeleteSeeds(["sd-3"]))
    assert len(seen) == 8 and all(s == frozenset(VIEWS) for s in seen)
    fresh = LiveDose(doc.plan, engine=engine, crop_margin_mm=10.0)
    for v in VIEWS:
        live.set_slice(v, live.slice_index(v))
        a, b = live.slice_dose_gy(v), fresh.slice_dose_gy(v)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * b.max())
        assert not np.allclose(a, before[v])
    while doc.undo():
        pass
    for v in VIEWS:
        np.testing.assert_allclose(
            live.slice_dose_gy(v), before[v], rtol=1e-9, atol=1e-9 * before[v].max()
        )


def test_isodose_lines_follow_the_levels(engine):
    live = LiveDose(_plan(), engine=engine, crop_margin_mm=None)
    live.set_slice("axial", 8)  # z = -20 mm, the needle's plane
    pd = live.prescription_gy
    dose = live.slice_dose_gy("axial")
    lines = live.isodose_lines("axial", (50.0, 100.0, 1e6))
    assert lines[1e6] == []  # above the maximum: no line
    for p in (50.0, 100.0):
        assert lines[p], f"no {p} % line"
        for line in lines[p]:
            r, c = line[:, 0], line[:, 1]
            r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
            r1, c1 = np.minimum(r0 + 1, dose.shape[0] - 1), np.minimum(c0 + 1, dose.shape[1] - 1)
            fr, fc = r - r0, c - c0
            v = (
                dose[r0, c0] * (1 - fr) * (1 - fc)
                + dose[r1, c0] * fr * (1 - fc)
                + dose[r0, c1] * (1 - fr) * fc
                + dose[r1, c1] * fr * fc
            )
            np.testing.assert_allclose(v, pd * p / 100.0, rtol=1e-6)


def test_a_stale_exact_result_never_overwrites_a_newer_one(engine):
    doc = PlanDocument(_plan())
    live = LiveDose(doc.plan, engine=engine, crop_margin_mm=10.0)
    live.attach(doc)
    ready, stale = [], []
    live.events.exact_ready.connect(ready.append)
    live.events.exact_stale.connect(stale.append)
    old = live.request_exact()
    doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=9.0))
    assert old.cancelled()
    new = live.request_exact()
    result_new = live.run_exact(new)
    assert result_new is not None and live.latest_exact is result_new
    # The old request finishes later (e.g. a slow worker): dropped.
    from planner.plan.dosimetry import compute_plan_dosimetry

    result_old = compute_plan_dosimetry(old.plan)
    assert live.deliver_exact(old, result_old) is False
    assert live.latest_exact is result_new and ready == [result_new] and stale == [old.generation]
    # A request made stale while running is cancelled and returns None.
    req = live.request_exact()
    doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=7.0))
    assert live.run_exact(req) is None
    assert live.latest_exact is result_new
    # The exact dose of the delivered result is that of its plan's seeds.
    seeds = SeedSet.create(
        result_new.seeds.positions_mm, result_new.seeds.axes, result_new.seeds.strengths_u
    )
    p = result_new.geometry.zyx_to_world(np.array([[10.0, 10.0, 10.0]]))
    ref = engine.dose_rate_at_points(seeds, p).dose_gy[0]
    assert result_new.dose_gy[10, 10, 10] == pytest.approx(ref, rel=1e-6)


def test_iso_segments_match_find_contours():
    from skimage.measure import find_contours

    from planner.plan.isolines import iso_segments

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:60, 0:70]
    field = np.exp(-((x - 30.0) ** 2 + (y - 25.0) ** 2) / 200.0) + 0.6 * np.exp(
        -((x - 50.0) ** 2 + (y - 40.0) ** 2) / 60.0
    )
    field += 0.01 * rng.standard_normal(field.shape)
    for level in (0.2, 0.5, 0.9):
        segs = iso_segments(field, level)
        lines = find_contours(field, level)
        ends = segs.reshape(-1, 2)
        pts = np.concatenate(lines)
        # Every segment end is a find_contours point and vice versa (same edge crossings).
        d1 = np.min(np.linalg.norm(ends[:, None] - pts[None], axis=2), axis=1)
        d2 = np.min(np.linalg.norm(pts[:, None] - ends[None], axis=2), axis=1)
        assert d1.max() < 1e-9 and d2.max() < 1e-9
        # Segments chain: the number of segments is the number of polyline steps.
        assert len(segs) == sum(len(c) - 1 for c in lines)
    assert iso_segments(field, 10.0).shape == (0, 2, 2)


def test_live_segments_are_the_lines(engine):
    live = LiveDose(_plan(), engine=engine, crop_margin_mm=10.0)
    live.set_slice("axial", 8)
    segs = live.isodose_segments("axial", (50.0, 100.0))
    lines = live.isodose_lines("axial", (50.0, 100.0))
    for p in (50.0, 100.0):
        assert len(segs[p]) == sum(len(c) - 1 for c in lines[p]) > 0
        pts = np.concatenate(lines[p])
        d = np.min(np.linalg.norm(segs[p].reshape(-1, 2)[:, None] - pts[None], axis=2), axis=1)
        assert d.max() < 1e-9


def test_exact_mode_views_equal_the_engine(engine):
    live = LiveDose(_plan(), engine=engine, crop_margin_mm=10.0, mode="exact")
    for view in VIEWS:
        exact, _ = _exact_plane(engine, live, view)
        np.testing.assert_allclose(live.region_dose_gy(view), exact, rtol=1e-9)


def test_a_seed_dragged_out_of_the_computed_region_enlarges_it(engine):
    from planner.plan.needle_commands import MoveSeed

    doc = PlanDocument(_plan())
    live = LiveDose(doc.plan, engine=engine, crop_margin_mm=6.0)
    live.attach(doc)
    before = live.plane("axial").geometry.shape_zyx
    doc.execute(MoveSeed("sd-3", (-3.0, 14.0, -18.0)))  # 22 mm further posterior
    after = live.plane("axial").geometry.shape_zyx
    assert after[1] > before[1]
    fresh = LiveDose(doc.plan, engine=engine, crop_margin_mm=6.0)
    for v in VIEWS:
        np.testing.assert_allclose(live.slice_dose_gy(v), fresh.slice_dose_gy(v), rtol=1e-12)


def test_a_drag_step_converts_no_seed_and_keys_stay_exact(engine, monkeypatch):
    """The seed keys are cached per (immutable) seed: a drag step (a seed that differs from
    its last key's seed only by position) keeps that key's axis and strength and converts
    nothing; another strength is converted; the keys equal those computed from scratch
    (order, values, a new strength)."""
    import planner.plan.live_dose as live_dose_module
    from planner.plan.dosimetry import plan_seed_set

    doc = PlanDocument(_plan())
    live = LiveDose(doc.plan, engine=engine)
    live.attach(doc)
    converted: list[int] = []
    real = live_dose_module.plan_seed_set

    def counting(plan):
        converted.append(len(plan.seeds))
        return real(plan)

    monkeypatch.setattr(live_dose_module, "plan_seed_set", counting)
    on_needle = next(s for s in doc.plan.seeds if s.needle_id is not None)
    doc.execute(MoveSeedAlongNeedle(on_needle.id, distance_mm=4.0))
    converted.clear()  # (that step gave the seed its needle's axis: converted)
    doc.execute(MoveSeedAlongNeedle(on_needle.id, distance_mm=6.0))
    assert converted == []
    assert live._seeds[on_needle.id][0] != tuple(on_needle.position_mm)
    free = next(s for s in doc.plan.seeds if s.needle_id is None)
    doc.execute(DeleteSeeds([free.id]))
    assert converted == []  # a deletion converts nothing
    from dataclasses import replace

    first = doc.plan.seeds[0]
    stronger = replace(first, strength_u=0.9)
    live.sync(doc.plan.evolve(seeds=(stronger, *doc.plan.seeds[1:])))
    assert converted == [1] and live._seeds[first.id][2] != 0.0
    live.sync(doc.plan)
    assert converted == [1, 1]  # the original seed object again: re-converted, not stale
    turned = replace(doc.plan.seeds[1], axis=(0.6, 0.0, 0.8))
    live.sync(doc.plan.evolve(seeds=(doc.plan.seeds[0], turned, *doc.plan.seeds[2:])))
    assert converted == [1, 1, 1]  # another axis is converted too
    live.sync(doc.plan)
    fresh = LiveDose(doc.plan, engine=engine)._seed_keys(doc.plan)
    assert list(live._seeds) == list(fresh) == [s.id for s in doc.plan.seeds]
    seeds, ids = plan_seed_set(doc.plan)
    for i, sid in enumerate(ids):
        pos, axis, strength = live._seeds[sid]
        np.testing.assert_array_equal(pos, seeds.positions_mm[i])
        np.testing.assert_array_equal(axis, seeds.axes[i])
        assert strength == seeds.strengths_u[i]
    assert live._seeds == fresh


def test_iso_segments_of_several_levels_in_one_pass_equal_one_level_at_a_time():
    """One pass for every level (the live isodose layer's): each level's block is that level's
    segments, in the order of the levels, ends mapped by the affine; a saddle joins its high
    corners when the cell's mean is at or above the level, else its low ones."""
    from planner.plan.isolines import iso_segments, iso_segments_levels

    rng = np.random.default_rng(5)
    field = rng.normal(size=(40, 50))
    levels = [0.4, -0.3, 1.1, 0.0]
    affine = np.array([[0.5, 0.1, -2.0], [0.0, 0.7, 3.0], [0.2, 0.0, 9.0]])
    pts, counts = iso_segments_levels(field, levels, affine)
    assert pts.shape == (2 * counts.sum(), 3) and (counts > 0).all()
    start = 0
    for level, n in zip(levels, counts.tolist(), strict=True):
        rc = iso_segments(field, level).reshape(-1, 2)
        assert len(rc) == 2 * n
        block = pts[2 * start : 2 * (start + n)]
        expected = rc @ affine[:, :2].T + affine[:, 2]
        np.testing.assert_allclose(block, expected, rtol=0, atol=1e-12)
        start += n
    saddle = np.array([[1.0, 0.0], [0.0, 1.0]])  # a (0, 0) and c (1, 1) high
    high = iso_segments(saddle, 0.5).reshape(-1, 2, 2)  # mean 0.5 >= 0.5: a-c joined
    low = iso_segments(saddle, 0.6).reshape(-1, 2, 2)  # mean below: a and c cut off
    ends = lambda segs: sorted(tuple(sorted(map(tuple, s.round(6).tolist()))) for s in segs)  # noqa: E731
    assert ends(high) == [((0.0, 0.5), (0.5, 1.0)), ((0.5, 0.0), (1.0, 0.5))]
    assert ends(low) == [((0.0, 0.4), (0.4, 0.0)), ((0.6, 1.0), (1.0, 0.6))]
    empty, none = iso_segments_levels(field, [10.0, 20.0])
    assert empty.shape == (0, 3) and none.tolist() == [0, 0]


def test_a_drag_step_finds_the_moved_seed_by_identity_and_falls_back_otherwise(engine):
    """The identity diff of the plan's seed tuple (a drag step touches one seed object, no
    per-seed key) gives the same dose as a fresh computation, also after a reorder of the
    same seeds, a seed replaced by another id at the same place in the tuple, and undo."""
    from dataclasses import replace

    doc = PlanDocument(_plan())
    live = LiveDose(doc.plan, engine=engine, crop_margin_mm=10.0)
    live.attach(doc)
    before = {v: live.slice_dose_gy(v).copy() for v in VIEWS}

    def assert_fresh() -> None:
        fresh = LiveDose(live.plan, engine=engine, crop_margin_mm=10.0)
        assert live._seeds == fresh._seeds and list(live._seeds) == list(fresh._seeds)
        for v in VIEWS:
            b = fresh.slice_dose_gy(v)
            np.testing.assert_allclose(live.slice_dose_gy(v), b, rtol=1e-9, atol=1e-9 * b.max())

    with doc.stroke("Drag seed"):
        for k in range(3):
            doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=5.0 + 2.0 * k))
    assert_fresh()
    seeds = doc.plan.seeds
    live.sync(doc.plan.evolve(seeds=seeds[::-1]))  # the same objects, another order
    assert list(live._seeds) == [s.id for s in seeds[::-1]]
    assert_fresh()
    other = replace(seeds[0], id="sd-new", position_mm=(1.0, -6.0, -20.0))
    live.sync(doc.plan.evolve(seeds=(other, *seeds[1:])))  # same length, another id
    assert seeds[0].id not in live._seeds and "sd-new" in live._seeds
    assert_fresh()
    live.sync(doc.plan)
    while doc.undo():
        pass
    for v in VIEWS:
        np.testing.assert_allclose(
            live.slice_dose_gy(v), before[v], rtol=1e-9, atol=1e-9 * before[v].max()
        )
    assert_fresh()
