"""The plan's dosimetry: exact dose grid, DVHs by the one volume rule, metrics, goal status."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dose.engine import SeedSet, make_engine
from dose.errors import InputError
from planner.plan.dosimetry import (
    WARN_FRACTION,
    compute_plan_dosimetry,
    dose_grid_geometry,
    goal_status,
    plan_seed_set,
)
from planner.plan.model import Goal
from tests.plan_builders import full_plan


@pytest.fixture(scope="module")
def plan_and_dosimetry():
    plan = full_plan()
    return plan, compute_plan_dosimetry(plan)


def test_dvh_volumes_follow_the_one_volume_rule(plan_and_dosimetry):
    plan, d = plan_and_dosimetry
    for s in plan.structures:
        assert d.dvhs[s.name].volume_cm3 == pytest.approx(s.volume_cm3, rel=1e-9)


def test_dose_grid_is_at_most_1mm_and_covers_targets_and_oars(plan_and_dosimetry):
    plan, d = plan_and_dosimetry
    assert np.all(d.geometry.spacing_mm <= 1.0 + 1e-12)
    lo, hi = d.geometry.bounds_world_mm()
    for s in plan.structures:
        if s.role in ("target", "oar"):
            pts = plan.geometry.zyx_to_world(np.argwhere(s.mask))
            assert np.all(pts >= lo - 1e-6) and np.all(pts <= hi + 1e-6)


def test_dose_equals_the_engine_at_implant_strength(plan_and_dosimetry):
    plan, d = plan_and_dosimetry
    seeds, ids = plan_seed_set(plan)
    assert ids == tuple(s.id for s in plan.seeds)
    decay = plan.source.decay_factor
    assert decay < 1.0
    # Seed 1 has no own strength: source strength decayed; seed 2 its own, decayed.
    assert seeds.strengths_u[0] == pytest.approx(plan.source.strength_u * decay)
    assert seeds.strengths_u[1] == pytest.approx(0.55 * decay)
    pts = d.geometry.zyx_to_world(np.array([[5, 6, 7], [20, 18, 10]]))
    eng = make_engine("6711", "2d", "reference")
    ref = eng.dose_rate_at_points(
        SeedSet.create(seeds.positions_mm, seeds.axes, seeds.strengths_u), pts
    )
    got = d.dose_gy[[5, 20], [6, 18], [7, 10]]
    np.testing.assert_allclose(got, ref.dose_gy, rtol=1e-3)


def test_metrics_and_goals_are_present(plan_and_dosimetry):
    plan, d = plan_and_dosimetry
    t = d.metrics["PTV"]
    assert t.d90_gy == pytest.approx(d.dvhs["PTV"].d_percent(90.0))
    cord = d.metrics["SpinalCord"]
    assert cord.d0_1cc_gy == pytest.approx(d.dvhs["SpinalCord"].d_cc(0.1))
    assert "Body" not in d.metrics  # role "other": DVH only
    assert [g.goal.id for g in d.goal_results] == [g.id for g in plan.goals]
    assert d.goal_results[0].value == pytest.approx(t.d90_gy)
    v = t.d90_gy
    assert d.goal_results[0].status == ("pass" if v >= 110 else "warn" if v >= 104.5 else "fail")
    assert d.goal_results[1].status == (
        "fail" if cord.d0_1cc_gy > 50 else "warn" if cord.d0_1cc_gy > 47.5 else "pass"
    )
    m = d.metrics_dict()
    assert m["goals"][1]["value"] == pytest.approx(cord.d0_1cc_gy)
    assert any("tables" in w for w in d.warnings)  # the test plan's made-up table checksum


def test_goal_status_warns_within_five_percent():
    hi = Goal("gl-a", "st-x", "D90", ">=", 100.0, "Gy")
    lo = Goal("gl-b", "st-x", "D0.1cc", "<=", 50.0, "Gy")
    assert WARN_FRACTION == 0.05
    assert goal_status(hi, 100.0) == "pass"
    assert goal_status(hi, 96.0) == "warn"
    assert goal_status(hi, 94.9) == "fail"
    assert goal_status(lo, 47.4) == "pass"
    assert goal_status(lo, 48.0) == "warn"
    assert goal_status(lo, 50.0) == "warn"
    assert goal_status(lo, 50.01) == "fail"
    assert goal_status(lo, math.nan) == "fail"


def test_a_plan_without_strength_is_refused():
    plan = full_plan()
    plan = plan.evolve(source=None)
    with pytest.raises(InputError, match="source"):
        compute_plan_dosimetry(plan)


def test_grid_is_clipped_to_the_ct():
    plan = full_plan()
    g = dose_grid_geometry(plan, margin_mm=500.0)
    lo, hi = g.bounds_world_mm()
    ct_lo, ct_hi = plan.geometry.bounds_world_mm()
    half = 0.5 * plan.geometry.spacing_mm  # the CT's voxel boxes (an axis-aligned test CT)
    assert np.all(lo >= ct_lo - half - 1e-6) and np.all(hi <= ct_hi + half + 1e-6)


def _oblique_plan():
    from dose.geometry import GridGeometry
    from planner.imaging.volume import CTVolume, PatientInfo
    from planner.plan.model import CTReference, Plan, Prescription, Seed, SourceSpec, Structure

    a = np.radians(25.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    g = GridGeometry((24, 40, 40), np.array([-15.0, -18.0, -20.0]), np.array([0.9, 0.9, 1.5]), rot)
    ct = CTVolume(np.zeros(g.shape_zyx, np.int16), g, PatientInfo(patient_id="OBL"))
    centres = g.voxel_centres_world()
    ptv = np.linalg.norm(centres - [3.0, 6.0, -3.0], axis=-1) <= 8.0
    cord = np.linalg.norm(centres[..., :2] - [3.0, 22.0], axis=-1) <= 3.0
    plan = Plan.new(
        CTReference.from_volume(ct),
        structures=(
            Structure.from_mask("st-p", "PTV", "target", ptv, g),
            Structure.from_mask("st-c", "SpinalCord", "oar", cord, g),
        ),
        prescription=Prescription(110.0, "st-p"),
        source=SourceSpec("6711", strength_u=0.6),
        seeds=(
            Seed("sd-1", (3.0, 3.0, -3.0), (0, 1, 0)),
            Seed("sd-2", (3.0, 9.0, -3.0), (0, 1, 0)),
            Seed("sd-3", (-2.0, 6.0, 0.0), (1, 0, 0)),
        ),
    )
    return plan


def test_oblique_ct_volumes_dose_and_seed_distance():
    from dose.metrics import min_seed_distance_mm

    plan = _oblique_plan()
    d = compute_plan_dosimetry(plan)
    for s in plan.structures:
        assert d.dvhs[s.name].volume_cm3 == pytest.approx(s.volume_cm3, rel=1e-9)
        assert d.dvhs[s.name].outside_dose_grid_cm3 == 0.0
    # The crop-based seed distance equals the full-volume one.
    seeds, _ = plan_seed_set(plan)
    cord = plan.structure("st-c")
    full = min_seed_distance_mm(seeds.positions_mm, cord.mask, plan.geometry)
    assert d.metrics["SpinalCord"].min_seed_distance_mm == pytest.approx(full, abs=1e-9)
    assert 5.0 < full < 20.0
    # Dose at a grid node equals the engine there.
    eng = make_engine("6711", "2d", "reference")
    k = np.array([[4, 9, 12]])
    p = d.geometry.zyx_to_world(k.astype(float))
    assert d.dose_gy[4, 9, 12] == pytest.approx(
        eng.dose_rate_at_points(seeds, p).dose_gy[0], rel=1e-3
    )


def test_progress_rises_to_one_and_cancel_stops():
    from dose.progress import Cancelled

    plan = full_plan()
    seen: list[float] = []
    compute_plan_dosimetry(plan, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(seen))
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        compute_plan_dosimetry(plan, cancel=cancel)
