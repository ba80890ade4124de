"""DVH accuracy that does not depend on the display bins (issue 11): D- and V-values from the
samples, exact to max(1 %, 0.003 Gy) for structures whose whole dose range is a few tenths of a Gy,
and plateaus that stay steps.

Analytic reference (derived here): a box x ∈ [0, Lx], y ∈ [0, Ly] in the field
D = d0 + gx·x + gy·y (linear, so trilinear interpolation reproduces it exactly). With U = gx·x
uniform on [0, A] and W = gy·y uniform on [0, B] (A ≤ B), S = U + W has the trapezoidal CDF
F(s) = s²/(2AB) for s ≤ A, so the dose exceeded by 95 % of the volume is
D95 = d0 + √(2AB·0.05) and, by symmetry, D5 = d0 + A + B − √(2AB·0.05) (valid while √(0.1AB) ≤ A).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dose.dvh import DVH
from dose.dvh_calc import compute_dvh
from dose.geometry import GridGeometry


def _tol(ref_gy: float) -> float:
    return max(0.01 * abs(ref_gy), 0.003)


def _trapezoid_case(d0: float, a_gy: float, b_gy: float):
    # 0.5 mm voxels; the box is voxels 4..43 along x and y (20 mm), 6 along z.
    g = GridGeometry.axis_aligned((10, 50, 50), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
    x, y, _z = g.axis_coordinates_mm()
    x0 = 4 * 0.5 - 0.25  # box edge (voxel boundary)
    length = 40 * 0.5
    gx, gy = a_gy / length, b_gy / length
    dose = np.broadcast_to(
        d0 + gx * (x[None, None, :] - x0) + gy * (y[None, :, None] - x0), g.shape_zyx
    ).copy()
    occ = np.zeros(g.shape_zyx, dtype=bool)
    occ[2:8, 4:44, 4:44] = True
    return dose, occ, g


@pytest.mark.parametrize("d0", [0.05, 0.0, 2.0])
def test_d95_d5_in_a_structure_spanning_0_3_gy(d0: float) -> None:
    a, b = 0.1, 0.2  # the structure's whole dose range is d0 … d0 + 0.3 Gy
    dose, occ, g = _trapezoid_case(d0, a, b)
    dvh = compute_dvh(dose, occ, g, samples_per_voxel=4)
    q = math.sqrt(2 * a * b * 0.05)
    d95, d5 = d0 + q, d0 + a + b - q
    assert dvh.bin_width_gy == pytest.approx(0.1)  # the display bins are 1/3 of the range
    assert dvh.d_percent(95) == pytest.approx(d95, abs=_tol(d95))
    assert dvh.d_percent(5) == pytest.approx(d5, abs=_tol(d5))
    # V-values: the volume receiving ≥ D95 / D5 is 95 % / 5 % (to 0.5 % of the volume).
    assert dvh.v_percent(d95) == pytest.approx(95.0, abs=0.5)
    assert dvh.v_percent(d5) == pytest.approx(5.0, abs=0.5)
    # Median of the symmetric trapezoid: d0 + (A + B)/2.
    assert dvh.d_percent(50) == pytest.approx(d0 + 0.15, abs=_tol(d0 + 0.15))


def test_zero_dose_plateau_stays_a_step() -> None:
    # Half of the structure lies outside the dose grid (0 Gy), the other half at 0.05-0.35 Gy:
    # D60 … D99 are exactly 0, not a ramp through the first 0.1 Gy bin.
    dose, _occ, g = _trapezoid_case(0.05, 0.1, 0.2)
    big = GridGeometry.axis_aligned((20, 50, 50), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
    occ_big = np.zeros(big.shape_zyx, dtype=bool)
    occ_big[4:16, 4:44, 4:44] = True  # z voxels 4..15: 4..9 inside the dose grid, 10..15 beyond
    dvh = compute_dvh(dose, occ_big, big, dose_geometry=g, samples_per_voxel=4)
    assert dvh.outside_dose_grid_cm3 == pytest.approx(dvh.volume_cm3 / 2, rel=1e-6)
    for p in (60.0, 75.0, 99.0):
        assert dvh.d_percent(p) == 0.0
    assert dvh.v_gy(0.01) == pytest.approx(dvh.volume_cm3 / 2, rel=1e-9)
    # The hot half: its D10 (= D5 of the whole) is the trapezoid's D10.
    q = math.sqrt(2 * 0.1 * 0.2 * 0.1)
    assert dvh.d_percent(5) == pytest.approx(0.35 - q, abs=_tol(0.35 - q))


def test_fine_bins_survive_a_dict_round_trip_and_old_dicts_still_load() -> None:
    dose, occ, g = _trapezoid_case(0.05, 0.1, 0.2)
    dvh = compute_dvh(dose, occ, g)
    back = DVH.from_dict(dvh.to_dict())
    assert back.summary() == dvh.summary()
    old = dvh.to_dict()
    del old["fine_bins"]  # a DVH saved before fine bins existed: display-bin queries
    legacy = DVH.from_dict(old)
    assert legacy.volume_cm3 == pytest.approx(dvh.volume_cm3)
    assert abs(legacy.d_percent(95) - dvh.d_percent(95)) > 0.003  # what fine bins fix


def test_fine_bins_resolution_is_relative_at_high_dose() -> None:
    # 150-151 Gy linear across a box: D50 at 150.5 Gy to 0.1 % (fine bins ≤ 0.15 Gy there,
    # display bins 0.1 Gy) and V at a display edge is the exact sum of the bins above it.
    g = GridGeometry.axis_aligned((4, 4, 40), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    x = g.axis_coordinates_mm()[0]
    dose = np.broadcast_to(150.0 + (x + 0.5) / 40.0, g.shape_zyx).copy()
    occ = np.ones(g.shape_zyx, dtype=bool)
    dvh = compute_dvh(dose, occ, g, samples_per_voxel=4)
    assert dvh.d_percent(50) == pytest.approx(150.5, rel=1e-3)
    edges, cum = dvh.bin_edges_gy, dvh.cumulative_cm3
    b = int(np.searchsorted(edges, 150.45))
    assert dvh.v_gy(edges[b]) == pytest.approx(cum[b], rel=1e-9)


def test_importing_the_value_object_does_not_load_numba() -> None:
    # Issue 9: ``import dose.dvh`` is cheap (no numba); dose.dvh_calc computes (numba).
    code = (
        "import sys, dose.dvh; assert 'numba' not in sys.modules, 'numba imported';"
        "import dose.dvh_calc; assert 'numba' in sys.modules"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=str(Path(__file__).parents[1]),
    )
