"""Needle geometry, warnings, seed loading, template needles and the loading summary."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.loading import (
    load_needle_seeds,
    loading_summary,
    target_parts_mm,
    template_needles,
)
from planner.plan.model import CTReference, Needle, Plan, Prescription, Seed, SourceSpec, Structure
from planner.plan.needles import (
    angle_to_plane_deg,
    needle_row,
    needle_table,
    needle_warnings,
    plane_crossing_mm,
    segment_distance_mm,
    slice_crossing_mm,
)

# A 1 mm CT, 60 × 60 × 40 mm: body = cylinder of radius 25 mm around the z axis (0 HU), air
# outside (-1000), a bone slab (700 HU) at y in [5, 10) mm, a cord tube along z at x = y = 0
# (radius 3 mm), a target cube x, y in [-15, -5] mm, z in [-8, 8] mm.
SHAPE = (40, 60, 60)
ORIGIN = (-29.5, -29.5, -19.5)


def _world_axes():
    g = GridGeometry.axis_aligned(SHAPE, ORIGIN, (1.0, 1.0, 1.0))
    x, y, z = g.axis_coordinates_mm()
    return g, x[None, None, :], y[None, :, None], z[:, None, None]


@pytest.fixture(scope="module")
def case():
    g, x, y, z = _world_axes()
    hu = np.full(SHAPE, -1000, np.int16)
    body = np.broadcast_to(x**2 + y**2 <= 25.0**2, SHAPE)
    hu[body] = 0
    slab = np.broadcast_to((y >= 5) & (y < 10) & (x**2 + y**2 <= 25.0**2), SHAPE)
    hu[slab] = 700
    info = PatientInfo(
        patient_id="P-N",
        patient_name="TEST^NEEDLE",
        study_instance_uid="1.2.3.1",
        series_instance_uid="1.2.3.2",
        frame_of_reference_uid="1.2.3.3",
    )
    ct = CTVolume(hu, g, info)
    cord = np.broadcast_to(x**2 + y**2 <= 3.0**2, SHAPE)
    target = (x >= -15) & (x <= -5) & (y >= -15) & (y <= -5) & (np.abs(z) <= 8)
    target = np.broadcast_to(target, SHAPE)
    structures = (
        Structure.from_mask("st-ptv", "PTV", "target", target, g),
        Structure.from_mask("st-cord", "SpinalCord", "oar", cord, g),
    )
    plan = Plan.new(
        CTReference.from_volume(ct),
        structures=structures,
        prescription=Prescription(110.0, "st-ptv"),
        source=SourceSpec(
            "6711",
            strength_u=0.635,
            calibration_date=date(2026, 11, 1),
            implant_date=date(2026, 12, 1),
        ),
    )
    return ct, plan


def test_length_angles_and_crossings():
    n = Needle("nd-a", (0.0, 0.0, 0.0), (0.0, 30.0, 40.0))
    assert angle_to_plane_deg((0, 0, 1), (0, 0, 1)) == pytest.approx(90.0)
    assert angle_to_plane_deg((1, 0, 0), (0, 0, 1)) == pytest.approx(0.0)
    # tan(angle to axial) = 40 / 30
    g = GridGeometry.axis_aligned((50, 50, 50), (-10, -10, -10), (1, 1, 1))
    p = slice_crossing_mm(n, g, "k", 30)  # z = 20 mm
    np.testing.assert_allclose(p, (0.0, 15.0, 20.0), atol=1e-9)
    assert slice_crossing_mm(n, g, "k", 55) is None  # beyond the tip (z = 45)
    assert plane_crossing_mm((0, 0, 0), (1, 0, 0), (0, 0, 5), (0, 0, 1)) is None  # parallel
    assert segment_distance_mm((0, 0, 0), (10, 0, 0), (5, -5, 3), (5, 5, 3)) == pytest.approx(3.0)
    assert segment_distance_mm((0, 0, 0), (10, 0, 0), (12, 0, 4), (20, 0, 4)) == pytest.approx(
        math.hypot(2, 4)
    )


def test_table_row_without_ct(case):
    _, plan = case
    n = Needle("nd-a", (-10.0, -40.0, 0.0), (-10.0, -10.0, 0.0), "A")
    plan = plan.evolve(needles=(n,))
    row = needle_row(plan, n)
    assert row.length_mm == pytest.approx(30.0)
    assert row.insertion_depth_mm == pytest.approx(30.0)  # no CT: the whole length
    assert row.angle_to_axial_deg == pytest.approx(0.0)
    assert row.angle_to_sagittal_deg == pytest.approx(0.0)
    assert row.angle_to_coronal_deg == pytest.approx(90.0)


def test_insertion_depth_and_clean_needle(case):
    ct, plan = case
    # From outside the body (y = -29) straight to y = -10: skin at y ≈ -25 (radius 25 at x=-10:
    # y = -sqrt(625 - 100) = -22.9 mm).
    n = Needle("nd-a", (-10.0, -29.0, 0.0), (-10.0, -10.0, 0.0), "A")
    plan = plan.evolve(needles=(n,))
    row = needle_table(plan, ct)[0]
    assert row.insertion_depth_mm == pytest.approx(22.9 - 10.0, abs=0.8)
    assert row.warnings == ()


def test_cord_bone_body_and_crossing_warnings(case):
    ct, plan = case
    through = Needle("nd-t", (0.0, -20.0, 0.0), (0.0, 20.0, 0.0), "T")  # through cord and slab
    near = Needle("nd-n", (-6.0, -20.0, 2.0), (-6.0, 0.0, 2.0), "N")  # 3 mm from the cord
    leaves = Needle("nd-l", (-20.0, -10.0, 0.0), (-29.0, -10.0, 0.0), "L")  # tip outside body
    crossing = Needle("nd-c", (-6.0, -10.0, -10.0), (-6.0, -10.0, 10.0), "C")  # meets nd-n
    plan = plan.evolve(needles=(through, near, leaves, crossing))
    w = {n.id: {x.kind: x for x in needle_warnings(plan, n, ct)} for n in plan.needles}
    assert "through_avoid" in w["nd-t"]
    assert w["nd-t"]["through_avoid"].value_mm == pytest.approx(7.0, abs=1.0)
    assert w["nd-t"]["bone"].value_mm == pytest.approx(5.0, abs=1.0)
    assert "5.0 mm" in w["nd-t"]["bone"].message or "mm above 300 HU" in w["nd-t"]["bone"].message
    assert w["nd-n"]["near_avoid"].value_mm == pytest.approx(6.0 - 3.5, abs=0.6)
    assert "bone" not in w["nd-n"]
    assert "leaves_body" in w["nd-l"]
    assert w["nd-n"]["crosses_needle"].other_id == "nd-c"
    assert w["nd-c"]["crosses_needle"].other_id == "nd-n"
    assert "crosses_needle" not in w["nd-l"]
    # Settings: a larger avoid distance flags a needle 9 mm away.
    from planner.plan.needles import NeedleCheckSettings

    far = Needle("nd-f", (-12.0, -20.0, 0.0), (-12.0, 0.0, 0.0))
    plan2 = plan.evolve(needles=(far,))
    assert not needle_warnings(plan2, far, ct)
    kinds = [
        x.kind
        for x in needle_warnings(plan2, far, ct, settings=NeedleCheckSettings(avoid_distance_mm=10))
    ]
    assert kinds == ["near_avoid"]


def test_load_needle_centres_seeds_in_the_target(case):
    _, plan = case
    # Along y through the target (voxel boxes y in [-15, -5]: 10 mm of track inside).
    n = Needle("nd-a", (-10.0, -28.0, 0.0), (-10.0, 0.0, 0.0), "A")
    plan = plan.evolve(needles=(n,))
    parts = target_parts_mm(n, plan.structure("st-ptv"))
    assert len(parts) == 1
    lo, hi = parts[0]
    assert lo == pytest.approx(5.0, abs=0.3) and hi == pytest.approx(15.0, abs=0.3)
    seeds = load_needle_seeds(plan, "nd-a", spacing_mm=5.0)
    ys = sorted(s.position_mm[1] for s in seeds)
    assert len(seeds) == 2
    np.testing.assert_allclose(np.diff(ys), 5.0, atol=1e-9)
    assert np.mean(ys) == pytest.approx(-10.0, abs=0.3)  # centred in the part
    for s in seeds:
        assert s.needle_id == "nd-a" and s.strength_u is None
        np.testing.assert_allclose(s.axis, (0.0, 1.0, 0.0), atol=1e-12)
        assert s.position_mm[0] == pytest.approx(-10.0) and s.position_mm[2] == pytest.approx(0.0)
    # A margin lengthens the part: 10 mm spacing then fits 2 seeds instead of 1; a negative
    # margin shortens it below the 2 mm minimum part.
    assert len(load_needle_seeds(plan, "nd-a", spacing_mm=10.0)) == 1
    assert len(load_needle_seeds(plan, "nd-a", spacing_mm=10.0, margin_mm=3.0)) == 2
    assert len(load_needle_seeds(plan, "nd-a", spacing_mm=10.0, margin_mm=-4.0)) == 0
    with pytest.raises(InputError, match="5-15 mm"):
        load_needle_seeds(plan, "nd-a", spacing_mm=20.0)


def test_template_needles_are_parallel_on_a_grid(case):
    ct, plan = case
    needles = template_needles(plan, (0.0, 1.0, 0.0), spacing_mm=5.0, ct=ct)
    assert needles
    dirs = np.array([np.subtract(n.tip_mm, n.entry_mm) for n in needles])
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    np.testing.assert_allclose(dirs, np.tile([0.0, 1.0, 0.0], (len(needles), 1)), atol=1e-9)
    xz = np.array([(n.tip_mm[0], n.tip_mm[2]) for n in needles])
    # Grid spacing 5 mm in the plane: every pairwise offset is a multiple of 5 mm.
    off = (xz - xz[0]) / 5.0
    np.testing.assert_allclose(off, np.round(off), atol=1e-6)
    # The target spans 11 mm in x and 17 mm in z: 2-3 columns × 3-4 rows.
    assert 6 <= len(needles) <= 12
    for n in needles:
        assert n.tip_mm[1] == pytest.approx(-5.0 + 5.0, abs=1.0)  # 5 mm beyond the target
        r = math.hypot(n.entry_mm[0], n.entry_mm[1])
        assert r == pytest.approx(25.0, abs=1.0)  # enters at the skin


def test_loading_summary(case):
    _, plan = case
    n = Needle("nd-a", (-10.0, -28.0, 0.0), (-10.0, 0.0, 0.0), "A")
    plan = plan.evolve(needles=(n,))
    seeds = load_needle_seeds(plan, "nd-a", spacing_mm=5.0)
    free = Seed("sd-free", (-8.0, -8.0, 3.0), strength_u=0.5)
    plan = plan.evolve(seeds=(*seeds, free))
    s = loading_summary(plan)
    assert s.total_seeds == 3 and s.free_seeds == 1
    assert s.needles[0].n_seeds == 2
    assert s.total_strength_u == pytest.approx(2 * 0.635 + 0.5)
    assert s.total_activity_mci == pytest.approx(s.total_strength_u / 1.270)
    assert s.total_strength_at_implant_u == pytest.approx(
        s.total_strength_u * plan.source.decay_factor
    )
    assert s.total_strength_at_implant_u < s.total_strength_u


def test_needle_checks_follow_the_document(case):
    from planner.plan.document import PlanDocument
    from planner.plan.needle_checks import NeedleChecks
    from planner.plan.needle_commands import AddNeedle, DeleteNeedle, MoveNeedle

    ct, plan = case
    doc = PlanDocument(plan)
    checks = NeedleChecks(doc.plan, ct)
    checks.attach(doc)
    seen = []
    checks.events.rows_changed.connect(seen.append)
    doc.execute(AddNeedle((-10.0, -29.0, 0.0), (-10.0, -10.0, 0.0), needle_id="nd-a"))
    doc.execute(AddNeedle((-14.0, -29.0, 4.0), (-14.0, -10.0, 4.0), needle_id="nd-b"))
    assert seen == [frozenset({"nd-a"}), frozenset({"nd-b"})]
    assert checks.row("nd-a").warnings == ()
    # Drag nd-b's tip next to the cord and across nd-a's track: both rows change.
    with doc.stroke("Drag tip"):
        doc.execute(MoveNeedle("nd-b", tip_mm=(-4.0, -8.0, -4.0)))
        doc.execute(MoveNeedle("nd-b", tip_mm=(-3.0, -6.5, -4.0)))
    kinds_b = {w.kind for w in checks.row("nd-b").warnings}
    assert "near_avoid" in kinds_b and "crosses_needle" in kinds_b
    assert {w.kind for w in checks.row("nd-a").warnings} == {"crosses_needle"}
    assert seen[-1] == frozenset({"nd-a", "nd-b"})
    # The kept rows equal a fresh table of the same plan.
    fresh = {r.id: r for r in needle_table(doc.plan, ct)}
    for nid, row in checks.rows.items():
        assert sorted(w.message for w in row.warnings) == sorted(
            w.message for w in fresh[nid].warnings
        )
        assert row.insertion_depth_mm == pytest.approx(fresh[nid].insertion_depth_mm)
    doc.execute(DeleteNeedle("nd-b"))
    assert seen[-1] == frozenset({"nd-a", "nd-b"}) and set(checks.rows) == {"nd-a"}
    assert checks.row("nd-a").warnings == ()
