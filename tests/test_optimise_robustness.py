"""Robustness under needle errors (issue 12): DVH percentile bands and the error model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.bench_autoplan import make_case
from planner.optimise.robustness import NeedleErrorModel, robustness, tip_error_mm


@pytest.fixture(scope="module")
def demo():
    return make_case("demo")


def _band_keys(plan) -> set[str]:
    return {s.name for s in plan.structures if s.role == "target"} | {"SpinalCord"}


def test_dvh_bands_are_ordered_and_cover_targets_and_cord(demo) -> None:
    plan, _ = demo
    r = robustness(plan, samples=12)
    assert set(r.dvh_bands) == _band_keys(plan)
    pd = plan.prescription.dose_gy
    for name, b in r.dvh_bands.items():
        n = b.dose_gy.size
        assert n > 50 and b.dose_gy[0] == 0.0 and np.all(np.diff(b.dose_gy) > 0)
        assert b.dose_gy[-1] <= 3.0 * pd + 1e-9
        for arr in (b.volume_pct_p5, b.volume_pct_p50, b.volume_pct_p95, b.volume_pct_nominal):
            assert arr.shape == (n,)
            assert np.all(np.diff(arr) <= 1e-9)  # cumulative: never rises with dose
            assert arr[0] == pytest.approx(100.0)
            assert np.all((arr >= 0.0) & (arr <= 100.0))
        assert np.all(b.volume_pct_p5 <= b.volume_pct_p50 + 1e-12)
        assert np.all(b.volume_pct_p50 <= b.volume_pct_p95 + 1e-12)
        assert np.any(b.volume_pct_p95 - b.volume_pct_p5 > 1.0), name  # errors do spread it
        assert b["dose_gy"] is b.dose_gy
    # The bands agree with the metrics: the prescription target's nominal curve is at 90 %
    # at its nominal D90, the cord's at 0.1 cm³ of the whole cord at its nominal D0.1 cm³.
    rx = plan.structure(plan.prescription.structure_id)
    b = r.dvh_bands[rx.name]
    assert np.interp(r.nominal["d90_gy"], b.dose_gy, b.volume_pct_nominal) == pytest.approx(
        90.0, abs=1.0
    )
    cord = plan.structure("st-cord")
    b = r.dvh_bands[cord.name]
    k = math.ceil(100.0 / cord.geometry.voxel_volume_mm3)
    expect = 100.0 * k / cord.voxel_count
    got = np.interp(r.nominal["cord_d0_1cc_gy"], b.dose_gy, b.volume_pct_nominal)
    assert got == pytest.approx(expect, abs=1.5)
    # JSON carries the same arrays.
    doc = json.loads(json.dumps(r.to_dict()))
    for name in _band_keys(plan):
        jb = doc["dvh_bands"][name]
        assert set(jb) >= {"dose_gy", "volume_pct_p5", "volume_pct_p50", "volume_pct_p95"}
        assert len(jb["volume_pct_p50"]) == r.dvh_bands[name].dose_gy.size
        assert np.allclose(jb["volume_pct_p95"], r.dvh_bands[name].volume_pct_p95, atol=1e-3)


def test_dvh_bands_hold_the_nominal_dvh_without_needle_errors(demo) -> None:
    plan, _ = demo
    zero = robustness(plan, samples=3, model=NeedleErrorModel((0, 0), (0, 0), (0, 0), 0.0))
    for b in zero.dvh_bands.values():
        assert np.allclose(b.volume_pct_p5, b.volume_pct_nominal, atol=1e-9)
        assert np.allclose(b.volume_pct_p95, b.volume_pct_nominal, atol=1e-9)
    jitter = robustness(plan, samples=12, model=NeedleErrorModel((0, 0), (0, 0), (0, 0), 0.3))
    for name, b in jitter.dvh_bands.items():
        # A 0.3 mm seed jitter only: the plan as planned lies in its band (to 0.25 % volume,
        # the small systematic blur of the steep 1/r² dose near seeds), and the band is not
        # degenerate.
        assert np.all(b.volume_pct_nominal >= b.volume_pct_p5 - 0.25), name
        assert np.all(b.volume_pct_nominal <= b.volume_pct_p95 + 0.25), name
        assert np.max(b.volume_pct_p95 - b.volume_pct_p5) > 0.0, name


def test_error_model_tip_error_matches_the_measured() -> None:
    """Calibration (module docstring): the lateral tip error is the measured 4.4 mm mean (within
    10 %) for needles of typical lengths; without the lever cap it grows with depth."""
    model = NeedleErrorModel()
    for length in (60.0, 90.0, 130.0):
        mean, sd = tip_error_mm(model, length, samples=4000)
        assert mean == pytest.approx(4.4, rel=0.10), length
        assert 1.5 < sd < 2.9
    uncapped = NeedleErrorModel(max_lever_mm=0.0)
    assert tip_error_mm(uncapped, 130.0, samples=4000)[0] > 1.3 * 4.4
    assert tip_error_mm(model, 30.0, samples=4000)[0] < 4.4  # short needles: the angle in full


def test_sampled_tip_error_of_a_plan_matches_the_measured(demo) -> None:
    plan, _ = demo
    r = robustness(plan, samples=25)
    tip = r.to_dict()["tip_error_mm"]
    lengths = [
        float(np.linalg.norm(np.subtract(n.tip_mm, n.entry_mm)))
        for n in plan.needles
        if any(s.needle_id == n.id for s in plan.seeds)
    ]
    assert min(lengths) >= 55.0  # every needle is at least the lever cap long
    assert tip["mean"] == pytest.approx(4.4, rel=0.10)
    assert r.model.to_dict()["max_lever_mm"] == 55.0
