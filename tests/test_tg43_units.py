"""Units and decay used by the dose engine (sources: tg43.md §3.5, dose/units.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from dose.engine import SeedSet, make_engine, rate_to_dose_gy, strength_at_implant
from dose.units import I125_MEAN_LIFE_H, mci_to_u, u_to_mci


def test_mci_u_conversion() -> None:
    # 1.270 U/mCi for I-125 (TPOR-mat mkSeedDose.m, tg43.md §3.5)
    assert mci_to_u(1.0) == pytest.approx(1.270)
    assert u_to_mci(mci_to_u(0.42)) == pytest.approx(0.42)


def test_total_dose_is_rate_times_mean_life() -> None:
    # tg43.md §3.5: τ = 2056.7 h; a 1 U 6711 at (1 cm, 90°) gives 0.965 × 2056.7 cGy ≈ 19.85 Gy
    assert abs(I125_MEAN_LIFE_H - 2056.7) < 0.05
    seeds = SeedSet.create([[0.0, 0.0, 0.0]], None, 1.0)
    res = make_engine("6711").dose_rate_at_points(seeds, [[10.0, 0.0, 0.0]])
    assert res.dose_gy[0] == pytest.approx(res.dose_rate_cgy_h[0] * I125_MEAN_LIFE_H / 100.0)
    assert res.dose_gy[0] == pytest.approx(19.85, abs=0.01)
    np.testing.assert_allclose(rate_to_dose_gy([1.0, 2.0]), [20.567, 41.134], rtol=1e-4)


def test_dose_scales_with_strength_and_activity() -> None:
    eng = make_engine("2301")
    pts = [[7.0, 3.0, -2.0]]
    a = eng.dose_rate_at_points(SeedSet.create([[0, 0, 0]], None, mci_to_u(0.5)), pts)
    b = eng.dose_rate_at_points(SeedSet.create([[0, 0, 0]], None, 0.635), pts)
    assert a.dose_rate_cgy_h[0] == pytest.approx(b.dose_rate_cgy_h[0], rel=1e-12)


def test_decay_one_half_life_halves_strength() -> None:
    # T½ = 59.40 d (TG-43U1; tg43.md §0): one half-life later the strength is halved
    cal = datetime(2026, 1, 1, 9, 30)
    implant = cal + timedelta(days=59.4)
    assert float(strength_at_implant(0.8, cal, implant)) == pytest.approx(0.4, rel=1e-9)
    # no decay on the calibration date; implant before calibration gives > 1
    assert float(strength_at_implant(0.8, cal, cal)) == 0.8
    assert float(strength_at_implant(0.8, cal, cal - timedelta(days=10))) > 0.8
