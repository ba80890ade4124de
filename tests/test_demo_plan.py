"""The demo plan: written with the demo case, deterministic, meets its goals, needles keep 5 mm
from the cord and the canal (no needle warning about them), seeds on their needles along the
needle direction; a cached case made before the current plan is recognised as stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dose.needles import distance_to_track_mm
from planner.demo.plan import (
    DEMO_PLAN_FILE,
    DEMO_PLAN_VERSION,
    DemoPlanSettings,
    build_demo_plan,
    demo_plan_is_current,
    demo_plan_stamp,
)
from planner.plan.dosimetry import compute_plan_dosimetry
from planner.plan.needles import needle_direction, plan_needle_warnings, structure_distance_mm
from planner.plan.plan_ct import find_plan_ct
from planner.plan.plan_file import load_plan, plan_file_bytes
from tests.conftest import shared_demo_case


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):
    out = shared_demo_case(tmp_path_factory)  # the run's demo case, written by write_demo_case
    loaded = load_plan(out / DEMO_PLAN_FILE)
    ct, note = find_plan_ct(loaded.plan, loaded.path)
    assert ct is not None, note
    return out, loaded.plan, ct


@pytest.fixture(scope="module")
def dosimetry(case):
    _, plan, ct = case
    return compute_plan_dosimetry(plan, ct)


def test_plan_is_on_the_demo_ct(case):
    out, plan, ct = case
    assert plan.check_ct(ct) == []
    assert Path(ct.source_path).resolve() == (out / "ct").resolve()
    names = [s.name for s in plan.structures]
    assert names == ["GTV", "PTV", "PTV_eval", "SpinalCord", "SpinalCanal", "VertebralBody"]
    assert plan.prescription.dose_gy == 110.0
    assert plan.structure(plan.prescription.structure_id).name == "PTV_eval"
    assert 20 <= len(plan.seeds) <= 80 and 4 <= len(plan.needles) <= 20
    # 0.4-0.8 mCi per seed (clinical.md), with decay from calibration to implant.
    assert 0.4 <= plan.source.activity_mci <= 0.8
    assert plan.source.decay_factor < 1.0


def test_goals_pass(dosimetry):
    by_metric = {g.goal.metric: g for g in dosimetry.goal_results}
    assert by_metric["D90"].value >= 110.0 and by_metric["D90"].status == "pass"
    assert by_metric["D0.1cc"].value <= 50.0 and by_metric["D0.1cc"].status != "fail"
    assert dosimetry.status in ("pass", "warn")
    assert dosimetry.metrics["PTV_eval"].d90_gy >= 110.0
    assert dosimetry.metrics["SpinalCord"].d0_1cc_gy <= 50.0
    # The PTV's own coverage is reported (the cord-adjacent rim is deliberately cold).
    ptv = dosimetry.metrics["PTV"]
    assert 0 < ptv.d90_gy < dosimetry.metrics["PTV_eval"].d90_gy
    assert 0 < ptv.v100_percent < dosimetry.metrics["PTV_eval"].v100_percent < 100


def test_needles_avoid_the_cord_and_canal_and_seeds_lie_on_them(case):
    _, plan, ct = case
    avoid = [plan.structure_named("SpinalCord"), plan.structure_named("SpinalCanal")]
    for n in plan.needles:
        for st in avoid:
            dist, _ = structure_distance_mm(st, np.asarray(n.entry_mm), np.asarray(n.tip_mm))
            assert dist >= 5.0, (n, st.name, dist)
        assert n.entry_mm[1] > n.tip_mm[1]  # enters from posterior (LPS +y)
    # The plan's own needle warnings (the needle table's rule): none about the cord or canal.
    warnings = plan_needle_warnings(plan, ct)
    assert set(warnings) == {n.id for n in plan.needles}
    for ws in warnings.values():
        assert not any(w.kind in ("near_avoid", "through_avoid") for w in ws), ws
        assert not any(w.other_id in {st.id for st in avoid} for w in ws)
        assert not any(w.kind in ("leaves_body", "crosses_needle", "outside_ct") for w in ws)
    # Seeds at least 7.5 mm apart (closer ones merge on the post-op CT).
    pos = np.array([s.position_mm for s in plan.seeds])
    gaps = np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(len(pos)) * 1e9
    assert gaps.min() >= 7.5 - 1e-6
    needles = {n.id: n for n in plan.needles}
    for s in plan.seeds:
        n = needles[s.needle_id]
        assert distance_to_track_mm(s.position_mm, n.entry_mm, n.tip_mm)[0] < 1e-6
        np.testing.assert_allclose(s.axis, needle_direction(n), atol=1e-9)


def test_plan_is_deterministic_and_configurable(case):
    _, plan, ct = case
    masks = {s.name: s.mask for s in plan.structures}
    again, _ = build_demo_plan(ct, masks)
    # Rebuilt from the loaded CT (same UIDs and grid): the same plan, byte for byte.
    a = plan_file_bytes(plan, saved_utc="x", app_version="")
    b = plan_file_bytes(again.evolve(ct=plan.ct), saved_utc="x", app_version="")
    assert a == b
    tighter, rep = build_demo_plan(ct, masks, settings=DemoPlanSettings(cord_d0_1cc_limit_gy=45.0))
    cord_goal = next(g for g in tighter.goals if g.metric == "D0.1cc")
    assert cord_goal.value == 45.0
    # The chosen plan is one of the searched candidates (thinned by the seed refinement).
    keys = ("angle_deg", "grid_offset_mm", "seed_spacing_mm", "seed_cord_clearance_mm")
    source = [c for c in rep.candidates if all(c[k] == rep.chosen[k] for k in keys)]
    assert len(source) == 1
    assert (
        rep.chosen["seeds"]
        == len(tighter.seeds)
        == source[0]["seeds"] - rep.chosen["seeds_dropped"]
    )
    assert rep.chosen["needles"] == len(tighter.needles) <= source[0]["needles"]


def test_case_manifest_stamps_the_plan_and_a_stale_cache_is_recognised(case):
    import json

    out, plan, _ = case
    manifest = json.loads((out / "case.json").read_text())
    assert demo_plan_is_current(manifest)
    assert manifest["plan"]["version"] == DEMO_PLAN_VERSION
    assert manifest["plan"]["model_sha256"] == plan.source.model_sha256 != ""
    assert manifest["plan"]["needles"] == len(plan.needles)
    assert manifest["plan"]["seeds"] == len(plan.seeds)
    # A cache made by an earlier plan (or seed tables) is stale: ensure_demo_case regenerates it.
    older = {**manifest, "plan": {**manifest["plan"], "version": DEMO_PLAN_VERSION - 1}}
    assert not demo_plan_is_current(older)
    other_tables = {**manifest, "plan": {**manifest["plan"], "model_sha256": "0" * 64}}
    assert not demo_plan_is_current(other_tables)
    no_plan = {k: v for k, v in manifest.items() if k != "plan"}
    assert not demo_plan_is_current(no_plan)
    assert demo_plan_stamp() == {
        "version": DEMO_PLAN_VERSION,
        "model_sha256": plan.source.model_sha256,
    }
