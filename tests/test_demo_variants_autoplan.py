"""Automatic planning on a lumbar variant (issue 12): L3, tumour on the right, below the conus.

At 256² (1.56 mm pixels): the demo plan's margins (2 mm around the cord) need voxels finer than
2 mm, so a smaller matrix cannot build the plan; one case built once for the module (~10 s on an
idle 2-core machine, plus one autoplan run). Constraints are checked on the result with the
plan's own exact dosimetry and needle rules, not on the solver's internals.
"""

from __future__ import annotations

import numpy as np
import pytest

from planner.demo.variants import make_variant
from planner.optimise.autoplan import AutoplanOptions, autoplan
from planner.plan.dosimetry import compute_plan_dosimetry
from planner.plan.needles import NeedleCheckSettings, plan_needle_warnings, structure_distance_mm

CORD_LIMIT_GY = 50.0
MARGIN_MM = 5.0


@pytest.fixture(scope="module")
def lumbar_case():
    return make_variant("L3-right")


def test_lumbar_variant_plan(lumbar_case) -> None:
    """The demo plan's structures and goals; the cauda equina is in the cord structure (the limit
    applies to it) and its own organ at risk."""
    plan, ct = lumbar_case
    s = {x.name: x for x in plan.structures}
    assert {"GTV", "PTV", "PTV_eval", "SpinalCord", "SpinalCanal", "CaudaEquina"} <= set(s)
    cord, cauda = s["SpinalCord"].mask, s["CaudaEquina"].mask
    assert cauda.any() and not (cauda & ~cord).any()
    assert s["CaudaEquina"].role == "oar" and s["SpinalCord"].role == "oar"
    assert not (s["PTV_eval"].mask & cord).any()
    metrics = {(g.metric, plan.structure(g.structure_id).name) for g in plan.goals}
    assert {("D90", "PTV_eval"), ("D0.1cc", "SpinalCord")} <= metrics
    assert plan.prescription is not None and plan.prescription.dose_gy == 110.0
    assert ct.hu.shape == (37, 256, 256)


def test_autoplan_on_a_lumbar_variant_keeps_off_the_canal(lumbar_case) -> None:
    plan, ct = lumbar_case
    res = autoplan(plan, ct)
    d = compute_plan_dosimetry(res.plan, ct)
    # The cord limit (here on the cauda equina) is hard.
    assert d.metrics["SpinalCord"].d0_1cc_gy <= CORD_LIMIT_GY + 1e-9
    assert d.metrics["CaudaEquina"].d0_1cc_gy <= CORD_LIMIT_GY + 1e-9
    assert res.plan.needles and res.plan.seeds
    # Every needle ≥ 5 mm from the cord / cauda equina and from the canal around them.
    s = {x.name: x for x in res.plan.structures}
    for n in res.plan.needles:
        e, t = np.asarray(n.entry_mm), np.asarray(n.tip_mm)
        for name in ("SpinalCord", "SpinalCanal", "CaudaEquina"):
            assert structure_distance_mm(s[name], e, t)[0] >= MARGIN_MM, (n.id, name)
    warnings = plan_needle_warnings(
        res.plan, ct, settings=NeedleCheckSettings(avoid_distance_mm=MARGIN_MM)
    )
    assert not [w for ws in warnings.values() for w in ws if w.kind.endswith("_avoid")]
    # Coverage near the prescription (measured with the polish: D90 111-112 Gy at 256², V100
    # 90-91 %, cord 49.9 Gy; before it D90 109.7 Gy — the V100 goal of 95 % is not reached at
    # the cord limit, and is reported as failed or warned).
    rx = d.metrics["PTV_eval"]
    assert rx.d90_gy >= 100.0
    if rx.v100_percent < 95.0:  # the note says where the cold points lie
        near = [n for n in res.notes if "of the sampled target points under PD lie within" in n]
        assert len(near) == 1 and int(near[0].split(" %")[0]) >= 50
    if res.feasible:
        assert rx.d90_gy >= 110.0
    else:
        assert res.failed_goals


def test_a_small_time_budget_stops_with_a_feasible_plan(lumbar_case) -> None:
    """A 0.5 s budget on the lumbar case (candidates, influence and dosimetry alone take
    longer): the run returns a plan that keeps every hard rule and reaches D90 ≥ PD, as a 10 s
    run does (the candidates and the D90 phase do not depend on the machine's speed)."""
    plan, ct = lumbar_case
    res = autoplan(plan, ct, options=AutoplanOptions(time_budget_s=0.5))
    summary = res.summary()
    # Whether the budget cut anything short is said (here the D90 phase may end the run).
    assert summary["time_budget_cut"] is res.budget_cut
    assert res.budget_cut == any("time budget (0.5 s) cut" in n for n in res.notes)
    assert set(summary["phase_seconds"]) >= {"candidates", "influence", "selection", "dosimetry"}
    assert res.plan.seeds  # the first selection pass always completes
    d = compute_plan_dosimetry(res.plan, ct)
    assert d.metrics["SpinalCord"].d0_1cc_gy <= CORD_LIMIT_GY + 1e-9
    s = {x.name: x for x in res.plan.structures}
    for n in res.plan.needles:
        e, t = np.asarray(n.entry_mm), np.asarray(n.tip_mm)
        for name in ("SpinalCord", "SpinalCanal", "CaudaEquina"):
            assert structure_distance_mm(s[name], e, t)[0] >= MARGIN_MM, (n.id, name)
    # D90 first: the budget may cut the V100 work, not the prescription (the polish reaches
    # its D90 share of the points whatever the time: D90 111-112 Gy with 10 s, 256²).
    assert d.metrics["PTV_eval"].d90_gy >= 110.0
    status = {g.label: g.status for g in d.goal_results}
    assert status["PTV_eval D90 ≥ 110 Gy"] == "pass"
    assert res.feasible == (not res.failed_goals)
