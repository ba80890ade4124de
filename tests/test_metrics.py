"""Plan-quality metrics on hand-checkable toy cases (clinical.md §2.4 formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dose.dvh import DVH
from dose.geometry import GridGeometry
from dose.metrics import (
    CORD,
    TUMOUR,
    Goal,
    bed_permanent_implant_gy,
    default_goals,
    eqd2_gy,
    evaluate_goals,
    evaluate_plan,
    min_seed_distance_mm,
    oar_metrics,
    target_metrics,
)


# ---------------------------------------------------------------- BED / EQD2
def test_dale_bed_permanent_i125_by_hand() -> None:
    # λ = ln2/(59.40 d · 24 h) = 4.86214e-4 /h; μ = ln2/1.5 h = 0.462098 /h; μ + λ = 0.462584 /h.
    # D = 145 Gy: R₀ = λ·D = 0.0705011 Gy/h.
    # α/β = 10: BED = 145·(1 + 0.0705011/(0.462584·10)) = 145·1.0152406 = 147.2099 Gy,
    #           EQD2 = 147.2099/(1 + 2/10) = 122.6749 Gy.
    # α/β = 2:  BED = 145·(1 + 0.0705011/(0.462584·2)) = 145·1.0762033 = 156.0495 Gy,
    #           EQD2 = 156.0495/2 = 78.0248 Gy.
    bed10 = bed_permanent_implant_gy(145.0, alpha_beta_gy=10.0, repair_half_time_h=1.5)
    bed2 = bed_permanent_implant_gy(145.0, alpha_beta_gy=2.0, repair_half_time_h=1.5)
    assert bed10 == pytest.approx(147.2099, abs=1e-3)
    assert eqd2_gy(bed10, alpha_beta_gy=10.0) == pytest.approx(122.6749, abs=1e-3)
    assert bed2 == pytest.approx(156.0495, abs=1e-3)
    assert eqd2_gy(bed2, alpha_beta_gy=2.0) == pytest.approx(78.0248, abs=1e-3)
    # Explicit R₀ = 0.1 Gy/h, D = 100 Gy: 100·(1 + 0.1/(0.462584·10)) = 102.1618 Gy.
    assert bed_permanent_implant_gy(
        100.0, alpha_beta_gy=10.0, initial_dose_rate_gy_per_h=0.1
    ) == pytest.approx(102.1618, abs=1e-3)
    # Slower repair (longer half-time) → larger BED; defaults are the tumour/cord values.
    assert bed_permanent_implant_gy(145.0, repair_half_time_h=3.0) > bed10
    assert (TUMOUR.alpha_beta_gy, CORD.alpha_beta_gy, CORD.repair_half_time_h) == (10.0, 2.0, 1.5)
    with pytest.raises(ValueError):
        bed_permanent_implant_gy(145.0, alpha_beta_gy=0.0)


# ---------------------------------------------------------------- target / OAR
def _target_dvh() -> DVH:
    # 10 cm³ target, PD = 10 Gy, 1 Gy bins: 1 cm³ in [5, 6), 6 cm³ in [12, 13), 3 cm³ in [16, 17).
    diff = np.zeros(17)
    diff[5], diff[12], diff[16] = 1.0, 6.0, 3.0
    return DVH("PTV", 1.0, diff, dmin_gy=5.0, dmax_gy=17.0, dmean_gy=13.1, prescription_gy=10.0)


def test_target_indices_by_hand() -> None:
    # V_T = 10, V_T,ref = V(≥10) = 9, V_T,1.5ref = V(≥15) = 3 cm³; V_ref (whole grid) = 12 cm³.
    # CI = (9/10)·(9/12) = 0.675; EI = (12 − 9)/10 = 0.3; HI = (9 − 3)/9 = 0.6667.
    tm = target_metrics(_target_dvh(), 12.0, prescription_gy=10.0)
    assert tm.volume_cm3 == pytest.approx(10.0)
    assert tm.v_t_ref_cm3 == pytest.approx(9.0)
    assert tm.v_t_1_5ref_cm3 == pytest.approx(3.0)
    assert tm.ci == pytest.approx(0.675)
    assert tm.ei == pytest.approx(0.3)
    assert tm.hi == pytest.approx(6.0 / 9.0)
    # D90: 9 cm³ receive ≥ 12 Gy (the [12, 13) bin starts there); D100 = Dmin = 5 Gy.
    assert tm.d90_gy == pytest.approx(12.0)
    assert tm.d100_gy == 5.0
    assert (tm.v100_percent, tm.v150_percent, tm.v200_percent) == pytest.approx((90, 30, 0))
    assert tm.dmean_gy == 13.1
    assert tm.bed_d90_gy == pytest.approx(bed_permanent_implant_gy(12.0, alpha_beta_gy=10.0))
    d = tm.to_dict()
    assert d["ci"] == pytest.approx(0.675) and d["name"] == "PTV"


def test_oar_metrics_by_hand() -> None:
    # Cord: 3 cm³; 0.05 cm³ in [40, 41), 0.95 cm³ in [20, 21), 2 cm³ in [5, 6); Dmax 41 Gy.
    diff = np.zeros(41)
    diff[40], diff[20], diff[5] = 0.05, 0.95, 2.0
    dvh = DVH("SpinalCord", 1.0, diff, dmin_gy=5.0, dmax_gy=41.0, dmean_gy=12.0)
    om = oar_metrics(dvh, dmax_voxel_gy=40.7, min_seed_distance_mm=6.5)
    # D0.03cm³: inside [40, 41], V falls linearly 0.05 → 0: 41 − 0.03/0.05 = 40.4 Gy.
    assert om.dmax_0_03cc_gy == pytest.approx(40.4)
    # D0.1cm³: V(≥21) = 0.05, V(≥20) = 1.0 → 21 − (0.1 − 0.05)/0.95 = 20.947 Gy.
    assert om.d0_1cc_gy == pytest.approx(21 - 0.05 / 0.95)
    assert om.d1cc_gy == pytest.approx(20.0)  # exactly 1 cm³ at ≥ 20 Gy
    assert om.d2cc_gy == pytest.approx(5.5)  # 2 cm³: halfway into the [5, 6) bin
    assert om.dmax_voxel_gy == 40.7 and om.min_seed_distance_mm == 6.5
    assert om.alpha_beta_gy == 2.0  # cord default
    assert om.eqd2_d0_1cc_gy == pytest.approx(
        eqd2_gy(bed_permanent_implant_gy(om.d0_1cc_gy, alpha_beta_gy=2.0), alpha_beta_gy=2.0)
    )


# ---------------------------------------------------------------- goals
def test_goal_pass_warn_fail() -> None:
    goals = default_goals(10.0, target_name="PTV", cord_name="Cord", cord_d0_1cc_limit_gy=45.0)
    assert [g.metric for g in goals] == ["d90_gy", "v100_percent", "d0_1cc_gy"]

    class M:  # minimal metric holders
        def __init__(self, **kw):
            self.__dict__.update(kw)

    def status(d90, v100, cord):
        res = evaluate_goals(
            goals, {"PTV": M(d90_gy=d90, v100_percent=v100), "Cord": M(d0_1cc_gy=cord)}
        )
        return [r.status for r in res]

    # D90 ≥ 10 pass, [9, 10) warn, < 9 fail; V100 ≥ 95 pass, [90, 95) warn; cord ≤ 40.5 pass,
    # (40.5, 45] warn, > 45 fail.
    assert status(10.0, 95.0, 40.5) == ["pass", "pass", "pass"]
    assert status(9.5, 92.0, 44.0) == ["warn", "warn", "warn"]
    assert status(8.9, 89.9, 45.1) == ["fail", "fail", "fail"]
    res = evaluate_goals([Goal("x", "Missing", "d90_gy", ">=", 1.0)], {})
    assert res[0].status == "fail" and math.isnan(res[0].value)
    assert res[0].to_dict()["value"] is None


# ---------------------------------------------------------------- seed distance
def test_min_seed_distance_to_voxel_boxes() -> None:
    g = GridGeometry.axis_aligned((5, 5, 5), (-2.0, -2.0, -4.0), (1.0, 1.0, 2.0))
    mask = np.zeros(g.shape_zyx, dtype=bool)
    mask[2, 2, 2] = True  # one voxel: x, y ∈ [-0.5, 0.5] mm, z ∈ [-1, 1] mm (2 mm thick)
    assert min_seed_distance_mm([[3.0, 0.0, 0.0]], mask, g) == pytest.approx(2.5)
    assert min_seed_distance_mm([[3.0, 4.0, 0.0]], mask, g) == pytest.approx(math.hypot(2.5, 3.5))
    assert min_seed_distance_mm([[0.0, 0.0, 5.0]], mask, g) == pytest.approx(4.0)
    seeds = [[0.2, 0.1, 0.9], [10.0, 0.0, 0.0]]
    assert min_seed_distance_mm(seeds, mask, g) == 0.0  # one seed inside
    assert min_seed_distance_mm(np.zeros((0, 3)), mask, g) == math.inf
    # Fractional occupancy: voxels below 0.5 are not part of the structure.
    occ = mask.astype(np.float32)
    occ[2, 2, 3] = 0.4
    assert min_seed_distance_mm([[3.0, 0.0, 0.0]], occ, g) == pytest.approx(2.5)
    # Rotated grid (90° about z): index i runs along +y, so the voxel box is the same region.
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    gr = GridGeometry((5, 5, 5), (2.0, -2.0, -4.0), (1.0, 1.0, 2.0), rot)
    assert gr.zyx_to_world([2, 2, 2]) == pytest.approx([0.0, 0.0, 0.0])
    assert min_seed_distance_mm([[0.0, 3.0, 0.0]], mask, gr) == pytest.approx(2.5)
    assert min_seed_distance_mm([[3.0, 0.0, 0.0]], mask, gr) == pytest.approx(2.5)


def test_seed_distance_interior_voxel() -> None:
    g = GridGeometry.axis_aligned((9, 9, 9), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    mask = np.zeros(g.shape_zyx, dtype=bool)
    mask[1:8, 1:8, 1:8] = True
    assert min_seed_distance_mm([[4.0, 4.0, 4.0]], mask, g) == 0.0  # deep inside
    assert min_seed_distance_mm([[4.0, 4.0, 10.0]], mask, g) == pytest.approx(2.5)


# ---------------------------------------------------------------- whole plan
def test_evaluate_plan_uniform_field_by_hand() -> None:
    # 20 Gy everywhere, PD 10 Gy: V_ref = whole grid = 8 cm³; target = 1 cm³ box, all ≥ 1.5 PD.
    # CI = 1·(1/8) = 0.125; EI = (8 − 1)/1 = 7; HI = (1 − 1)/1 = 0.
    g = GridGeometry.axis_aligned((20, 20, 20), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    dose = np.full(g.shape_zyx, 20.0)
    target = np.zeros(g.shape_zyx, dtype=bool)
    target[5:15, 5:15, 5:15] = True
    cord = np.zeros(g.shape_zyx, dtype=np.float32)
    cord[:, 17:19, 17:19] = 1.0
    ev = evaluate_plan(
        dose,
        g,
        prescription_gy=10.0,
        target=("PTV", target),
        oars={"Cord": cord},
        seeds_mm=[[10.0, 10.0, 10.0]],
        cord_name="Cord",
        cord_d0_1cc_limit_gy=15.0,
    )
    assert ev.target.ci == pytest.approx(0.125)
    assert ev.target.ei == pytest.approx(7.0)
    assert ev.target.hi == pytest.approx(0.0)
    assert ev.target.d90_gy == pytest.approx(20.0)
    assert ev.oars["Cord"].dmax_voxel_gy == 20.0
    # Seed at (10, 10, 10) mm; cord boxes start at x, y = 16.5 mm → √(6.5² + 6.5²).
    assert ev.oars["Cord"].min_seed_distance_mm == pytest.approx(math.hypot(6.5, 6.5))
    assert [r.status for r in ev.goals] == ["pass", "pass", "fail"]  # cord 20 Gy > 15 Gy
    assert ev.status == "fail"
    d = ev.to_dict()
    assert d["status"] == "fail" and set(d["oars"]) == {"Cord"}
    assert ev.dvhs["PTV"].prescription_gy == 10.0  # DVH-5: the plan prescription on the DVH


def test_evaluate_plan_structures_on_a_finer_grid() -> None:
    # Same uniform 20 Gy field on a 1 mm dose grid (8 cm³); the target is a 1 cm³ box given on a
    # 0.5 mm structure grid: CI = 1/8, EI = 7 as in the same-grid case.
    g = GridGeometry.axis_aligned((20, 20, 20), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    sg = GridGeometry.axis_aligned((40, 40, 40), (-0.25, -0.25, -0.25), (0.5, 0.5, 0.5))
    target = np.zeros(sg.shape_zyx, dtype=bool)
    target[10:30, 10:30, 10:30] = True
    ev = evaluate_plan(
        np.full(g.shape_zyx, 20.0),
        g,
        prescription_gy=10.0,
        target=("PTV", target),
        structure_geometry=sg,
    )
    assert ev.target.volume_cm3 == pytest.approx(1.0)
    assert ev.target.ci == pytest.approx(0.125)
    assert ev.target.ei == pytest.approx(7.0)
    assert [r.status for r in ev.goals] == ["pass", "pass"]
