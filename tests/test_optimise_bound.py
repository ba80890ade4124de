"""The upper bound on V100 under the cord limit (planner.optimise.bound): it never claims less
than a real plan achieves, and each voxel it calls uncoverable is uncovered in a real plan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.bench_autoplan import make_case
from planner.optimise.autoplan import AutoplanOptions, autoplan
from planner.optimise.bound import admissible_seed_positions, v100_upper_bound
from planner.optimise.candidates import CandidateSettings, box_distance_mm
from planner.optimise.influence import dose_at_points_gy


@pytest.fixture(scope="module")
def demo():
    return make_case("demo")


def test_admissible_seeds_include_every_candidate_slot_region(demo) -> None:
    plan, ct = demo
    s = CandidateSettings(approach="posterolateral", bone="allow")
    p, d = admissible_seed_positions(plan, ct, s)
    assert len(p) > 0 and np.allclose(np.linalg.norm(d, axis=1), 1.0)
    # Lenient: never closer to the canal than the margin less half a voxel diagonal.
    canal = plan.structure("st-canal")
    half = 0.5 * float(np.linalg.norm(plan.geometry.spacing_mm))
    for q in p[:: max(1, len(p) // 40)]:
        assert box_distance_mm(canal, q, q) >= 5.0 - half - 1.0
    strict, _ = admissible_seed_positions(plan, ct, s, strict=True)
    assert 0 < len(strict) < len(p)


def test_bound_holds_for_a_real_plan(demo) -> None:
    plan, ct = demo
    limit = 8.0  # tight: some voxels are out of reach of any plan
    res = autoplan(plan, ct, options=AutoplanOptions(cord_limit_gy=limit, max_rounds=1))
    s = CandidateSettings(approach="posterolateral", bone="allow")
    target, cord = plan.structure("st-ptv-eval"), plan.structure("st-cord")
    b = v100_upper_bound(plan, ct, target, cord, 110.0, limit, s, max_target_voxels=900)
    assert b.sampled and b.target_voxels == 900
    summary = replace(res, v100_bound=b).summary()
    assert summary["v100_bound"]["v100_max_percent"] == b.v100_max_percent
    v100 = res.dosimetry.metrics["PTV_eval"].v100_percent
    assert v100 <= b.v100_max_percent
    assert res.dosimetry.metrics["SpinalCord"].d0_1cc_gy <= limit
    # Each voxel the bound calls uncoverable is below the prescription in this plan.
    assert b.uncoverable_voxels == len(b.uncoverable_points_mm) > 0
    assert b.v100_max_percent < 100.0
    seeds = res.plan.seeds
    dose = dose_at_points_gy(
        plan.source.model_id,
        "2d",
        np.array([x.position_mm for x in seeds]),
        np.array([x.axis for x in seeds]),
        float(plan.source.strength_at_implant_u),
        b.uncoverable_points_mm,
    )
    assert np.all(dose < 110.0)
    # A looser cord limit never lowers the bound.
    loose = v100_upper_bound(plan, ct, target, cord, 110.0, 50.0, s, max_target_voxels=900)
    assert loose.v100_max_percent >= b.v100_max_percent
