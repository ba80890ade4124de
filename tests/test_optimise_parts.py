"""Parts of automatic planning: candidates and their rejection reasons, slots, the influence
matrix against the engine, robustness sampling."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_autoplan import make_case
from planner.optimise.candidates import (
    REJECTION_REASONS,
    CandidateSettings,
    approach_directions,
    make_candidates,
)
from planner.optimise.influence import dose_at_points_gy, influence_matrix
from planner.optimise.robustness import NeedleErrorModel, perturbed_seeds, robustness
from planner.optimise.slots import make_slots
from planner.plan.model import Needle
from planner.plan.needles import NeedleCheckSettings, needle_warnings


@pytest.fixture(scope="module")
def demo():
    return make_case("demo")


def test_candidates_respect_no_pass_and_bone(demo) -> None:
    plan, ct = demo
    target = plan.structure("st-ptv")
    for bone in ("avoid", "allow"):
        cs = make_candidates(plan, ct, target, settings=CandidateSettings(bone=bone))
        assert set(cs.rejected) == set(REJECTION_REASONS)
        assert cs.rejected["no_pass"] > 0  # the canal is in the way of some lines
        # Every line meeting the target is either a candidate or counted once as rejected.
        assert len(cs.candidates) + sum(cs.rejected.values()) == cs.lines_meeting_target
        cfg = NeedleCheckSettings(avoid_distance_mm=5.0)
        for c in cs.candidates:
            n = Needle("nd-x", tuple(c.entry_mm), tuple(c.tip_mm))
            kinds = {w.kind for w in needle_warnings(plan, n, ct, settings=cfg, others=())}
            assert not kinds & {"through_avoid", "near_avoid", "outside_ct"}
            if bone == "avoid":
                assert "bone" not in kinds and c.bone_mm <= 1.0
            assert c.in_target_mm >= 3.0
    strict = make_candidates(plan, ct, target, settings=CandidateSettings(bone="avoid"))
    loose = make_candidates(plan, ct, target, settings=CandidateSettings(bone="allow"))
    assert strict.rejected["bone"] > loose.rejected["bone"]
    assert len(loose.candidates) > len(strict.candidates)
    # A wider no-pass margin rejects more.
    wide = make_candidates(
        plan, ct, target, settings=CandidateSettings(bone="allow", no_pass_margin_mm=12.0)
    )
    assert wide.rejected["no_pass"] > loose.rejected["no_pass"]


def test_approach_directions() -> None:
    post = approach_directions("posterior")
    assert np.allclose(post[0], [0.0, -1.0, 0.0])  # LPS: entering from the back, towards −y
    assert np.all(post[:, 1] < 0)
    assert np.allclose(np.linalg.norm(approach_directions("any"), axis=1), 1.0)
    assert np.allclose(approach_directions((0, 0, -2.0)), [[0, 0, -1.0]])


def test_slots_spacing_and_conflicts(demo) -> None:
    plan, ct = demo
    cs = make_candidates(plan, ct, plan.structure("st-ptv"), settings=CandidateSettings())
    sl = make_slots(cs.candidates, spacing_mm=10.0)
    assert len(sl) > 0
    for a, b in sl.conflicts:
        assert sl.needle[a] == sl.needle[b] and abs(sl.from_tip_mm[a] - sl.from_tip_mm[b]) < 10.0
    # Slots not in conflict on one needle are ≥ 10 mm apart.
    conf = set(sl.conflicts)
    for n in np.unique(sl.needle):
        idx = np.flatnonzero(sl.needle == n)
        for i in idx:
            for j in idx:
                if i < j and (i, j) not in conf:
                    assert abs(sl.from_tip_mm[i] - sl.from_tip_mm[j]) >= 10.0 - 1e-6


def test_influence_columns_add_up_to_the_engine_dose(demo) -> None:
    plan, ct = demo
    cs = make_candidates(plan, ct, plan.structure("st-ptv"), settings=CandidateSettings())
    sl = make_slots(cs.candidates[:6])
    target = plan.structure("st-ptv-eval")
    inf = influence_matrix("6711", "2d", 0.6, sl.positions_mm, sl.axes, target, [])
    pick = np.arange(0, len(sl), 2)
    direct = dose_at_points_gy(
        "6711", "2d", sl.positions_mm[pick], sl.axes[pick], 0.6, inf.target_points_mm
    )
    assert np.allclose(inf.target_gy[:, pick].sum(axis=1), direct, rtol=1e-9, atol=1e-9)
    assert direct.max() > 1.0


def test_robustness_without_errors_is_the_nominal_plan(demo) -> None:
    plan, _ = demo
    zero = NeedleErrorModel((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), 0.0)
    r = robustness(plan, samples=3, model=zero)
    for key, pc in r.percentiles().items():
        assert pc["p5"] == pytest.approx(r.nominal[key], rel=1e-9)
        assert pc["p95"] == pytest.approx(r.nominal[key], rel=1e-9)
    r2 = robustness(plan, samples=40)
    pc = r2.percentiles()
    assert pc["d90_gy"]["p5"] < r2.nominal["d90_gy"]  # errors cost coverage in bad samples
    assert pc["d90_gy"]["p5"] <= pc["d90_gy"]["median"] <= pc["d90_gy"]["p95"]
    assert pc["cord_d0_1cc_gy"]["p95"] > pc["cord_d0_1cc_gy"]["p5"]
    assert 1.0 < float(r2.tip_error_mm.mean()) < 15.0


def test_seeds_move_rigidly_with_their_needle(demo) -> None:
    plan, _ = demo
    rng = np.random.default_rng(4)
    model = NeedleErrorModel((3.4, 1.7), (2.8, 1.7), (5.2, 4.8), 0.0)
    pos, axes, tips = perturbed_seeds(plan, model, rng)
    assert len(tips) == len({s.needle_id for s in plan.seeds})
    p0 = np.array([s.position_mm for s in plan.seeds])
    for n in plan.needles:
        idx = [i for i, s in enumerate(plan.seeds) if s.needle_id == n.id]
        if len(idx) < 2:
            continue
        d0 = np.linalg.norm(p0[idx][:, None] - p0[idx][None], axis=-1)
        d1 = np.linalg.norm(pos[idx][:, None] - pos[idx][None], axis=-1)
        assert np.allclose(d0, d1, atol=1e-9)  # rigid
        assert np.linalg.norm(pos[idx] - p0[idx], axis=1).min() > 0.0  # moved
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0)
