"""The DVH value object and compute_dvh on hand-checkable cases (TG-53 DVH tests 3, 5, 7, 9, 10)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dose.dvh import DVH, default_bin_width_gy
from dose.dvh_calc import compute_dvh, sample_dose_gy, volume_at_or_above_cm3
from dose.errors import InputError
from dose.geometry import GridGeometry


def _toy() -> DVH:
    # Bins of 1 Gy: 1 cm³ in [1, 2), 1 cm³ in [2, 3), 2 cm³ in [3, 4); Dmin 1, Dmax 4.
    return DVH(
        name="toy",
        bin_width_gy=1.0,
        differential_cm3=np.array([0.0, 1.0, 1.0, 2.0]),
        dmin_gy=1.0,
        dmax_gy=4.0,
        dmean_gy=2.75,
        prescription_gy=2.0,
    )


def test_dvh_axes_cumulative_and_relative() -> None:
    dvh = _toy()
    assert dvh.volume_cm3 == 4.0  # sum of the bins
    np.testing.assert_allclose(dvh.bin_edges_gy, [0, 1, 2, 3, 4])
    # V(≥ edge): 4, 4, 3, 2, 0 cm³ (hand sums of the bins above each edge).
    np.testing.assert_allclose(dvh.cumulative_cm3, [4, 4, 3, 2, 0])
    np.testing.assert_allclose(dvh.cumulative_percent, [100, 100, 75, 50, 0])
    assert dvh.differential_percent.sum() == pytest.approx(100.0)
    np.testing.assert_allclose(dvh.bin_edges_percent_pd, [0, 50, 100, 150, 200])


def test_dvh_queries_interpolate_inside_bins() -> None:
    dvh = _toy()
    assert dvh.v_gy(2.0) == pytest.approx(3.0)
    # Inside [3, 4): linear from 2 cm³ at 3 Gy to 0 at Dmax 4 Gy → 1 cm³ at 3.5 Gy.
    assert dvh.v_gy(3.5) == pytest.approx(1.0)
    assert dvh.v_gy(0.5) == pytest.approx(4.0)
    assert dvh.v_gy(5.0) == 0.0
    assert dvh.v_percent(2.0) == pytest.approx(75.0)
    assert dvh.v_percent_pd(100.0) == pytest.approx(75.0)  # PD = 2 Gy
    assert dvh.v_cc_percent_pd(150.0) == pytest.approx(2.0)
    assert dvh.d_cc(2.0) == pytest.approx(3.0)
    assert dvh.d_cc(1.0) == pytest.approx(3.5)
    assert dvh.d_percent(50.0) == pytest.approx(3.0)
    assert dvh.d_percent(100.0) == 1.0  # D100 = Dmin
    assert dvh.d_cc(10.0) == 1.0  # more than the structure: Dmin
    assert dvh.d_cc(0.0) == 4.0  # Dmax
    assert dvh.d_percent_of_pd(50.0) == pytest.approx(150.0)
    s = dvh.summary()
    assert set(s) == {
        "volume_cm3",
        "dmin_gy",
        "dmax_gy",
        "dmean_gy",
        "d99_gy",
        "d95_gy",
        "d90_gy",
        "d5_gy",
        "d1_gy",
        "d0_03cc_gy",
    }
    assert s["d90_gy"] == pytest.approx(dvh.d_cc(3.6))


def test_dict_round_trip() -> None:
    dvh = _toy()
    back = DVH.from_dict(json.loads(json.dumps(dvh.to_dict())))
    np.testing.assert_array_equal(back.differential_cm3, dvh.differential_cm3)
    assert back.summary() == dvh.summary()
    assert back.prescription_gy == 2.0 and math.isnan(back.voxel_dmax_gy)


def test_float32_dose_matches_float64() -> None:
    g = _grid(12, 1.0)
    xyz = g.voxel_centres_world()
    dose = 500.0 / np.maximum(((xyz - 5.5) ** 2).sum(-1), 1.0)
    occ = (((xyz - 5.5) ** 2).sum(-1) <= 16.0).astype(np.float32)
    a = compute_dvh(dose, occ, g).summary()
    b = compute_dvh(dose.astype(np.float32), occ, g).summary()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5)


def test_named_queries() -> None:
    dvh = _toy()
    assert dvh.query("D50") == dvh.query("d 50 %") == pytest.approx(3.0)
    assert dvh.query("D1cc") == dvh.query("D1cm³") == pytest.approx(3.5)
    assert dvh.query("V100") == pytest.approx(75.0)  # % volume ≥ 100 % of PD (2 Gy)
    assert dvh.query("V3.5Gy") == pytest.approx(25.0)
    assert (dvh.query("Dmin"), dvh.query("Dmax"), dvh.query("Volume")) == (1.0, 4.0, 4.0)
    for bad in ("D", "X90", "D90Gy", "V1cc"):
        with pytest.raises(ValueError, match="unknown DVH query"):
            dvh.query(bad)


def test_implausible_dose_is_refused() -> None:
    g = _grid(4, 1.0)
    mask = np.ones(g.shape_zyx, dtype=bool)
    dose = np.full(g.shape_zyx, 1.0)
    dose[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compute_dvh(dose, mask, g, name="GTV")
    dose[1, 1, 1] = 1e9  # 10¹⁰ bins of 0.1 Gy
    with pytest.raises(InputError, match="beyond the DVH range"):
        compute_dvh(dose, mask, g, name="GTV")


def test_relative_query_without_prescription_is_refused() -> None:
    dvh = DVH("x", 0.1, np.ones(3), 0.0, 0.3, 0.15)
    with pytest.raises(ValueError, match="prescription"):
        dvh.v_percent_pd(100.0)


def test_default_bin_width() -> None:
    # DVH-4 (dicom-and-integrity.md §C): ≤ 0.1 Gy, and ≤ 0.5 % of the prescription.
    assert default_bin_width_gy() == 0.1
    assert default_bin_width_gy(145.0) == 0.1
    assert default_bin_width_gy(10.0) == pytest.approx(0.05)


def _grid(n: int = 20, h: float = 2.0) -> GridGeometry:
    return GridGeometry.axis_aligned((n, n, n), (0.0, 0.0, 0.0), (h, h, h))


def test_uniform_dose_mask_and_fractional_occupancy() -> None:
    g = _grid()
    dose = np.full(g.shape_zyx, 5.0)
    mask = np.zeros(g.shape_zyx, dtype=bool)
    mask[5:7, 5:10, 5:6] = True  # 10 voxels of 8 mm³
    dvh = compute_dvh(dose, mask, g, name="box", prescription_gy=5.0)
    assert dvh.volume_cm3 == pytest.approx(10 * 8 / 1000)
    assert (dvh.dmin_gy, dvh.dmax_gy, dvh.dmean_gy) == pytest.approx((5.0, 5.0, 5.0))
    assert dvh.d_percent(90) == pytest.approx(5.0)
    assert dvh.bin_width_gy == pytest.approx(0.025)  # 0.5 % of 5 Gy
    assert dvh.voxel_dmax_gy == 5.0
    occ = np.zeros(g.shape_zyx, dtype=np.float32)
    occ[3, 3, 3:7] = 0.25  # four quarter voxels = one voxel
    assert compute_dvh(dose, occ, g).volume_cm3 == pytest.approx(8 / 1000)


def test_linear_gradient_box_is_uniform_distribution() -> None:
    # Dose 10 + 2·x (Gy, x in mm) over a box of whole voxels x ∈ [9, 31] mm (voxel edges):
    # trilinear interpolation is exact for a linear field, so the dose is uniform on [28, 72] Gy.
    g = _grid()
    x = g.axis_coordinates_mm()[0]
    dose = np.broadcast_to(10.0 + 2.0 * x, g.shape_zyx).copy()
    mask = np.zeros(g.shape_zyx, dtype=bool)
    mask[4:8, 4:8, 5:16] = True  # i = 5..15 → centres 10..30 mm, edges 9..31 mm
    dvh = compute_dvh(dose, mask, g, samples_per_voxel=4)
    lo, hi = 28.0, 72.0
    assert dvh.dmean_gy == pytest.approx(50.0, abs=0.05)
    for p in (95.0, 50.0, 10.0):
        assert dvh.d_percent(p) == pytest.approx(hi - p / 100 * (hi - lo), abs=0.3)
    assert lo <= dvh.dmin_gy < lo + 1.0
    assert hi - 1.0 < dvh.dmax_gy <= hi


def test_dose_on_a_rotated_grid() -> None:
    # Occupancy on an axis-aligned grid; dose on a grid rotated 30° about z and shifted, holding
    # the linear field D = 50 + x + 0.5·y (Gy) at its voxel centres (trilinear-exact), so every
    # sample must come back with the field value: check mean and extremes against the box.
    occ_g = GridGeometry.axis_aligned((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    dose_g = GridGeometry((40, 40, 40), (-13.0, -25.0, -19.5), (1.2, 1.1, 1.0), rot)
    xyz = dose_g.voxel_centres_world()
    dose = 50.0 + xyz[..., 0] + 0.5 * xyz[..., 1]
    occ = np.ones(occ_g.shape_zyx)
    dvh = compute_dvh(dose, occ, occ_g, dose_geometry=dose_g, samples_per_voxel=1, jitter=False)
    assert dvh.volume_cm3 == pytest.approx(1.0)
    assert dvh.dmean_gy == pytest.approx(50.0, abs=1e-9)  # the box is centred on the origin
    assert dvh.dmax_gy == pytest.approx(50.0 + 4.5 + 2.25)  # the corner voxel centre (4.5, 4.5)
    dvh = compute_dvh(dose, occ, occ_g, dose_geometry=dose_g, samples_per_voxel=1)  # jittered
    assert dvh.dmean_gy == pytest.approx(50.0, abs=0.01)
    # Jittered samples stay inside the box: below the corner (5, 5) mm value, above the corner
    # voxel's centre value minus half its dose range.
    assert 50.0 + 6.75 - 0.75 < dvh.dmax_gy <= 50.0 + 5.0 + 2.5 + 1e-9
    assert dvh.outside_dose_grid_cm3 == 0.0
    # Voxel maximum: dose-grid value (no interpolation) at the dose voxels holding the structure
    # voxels' centres; the corner centre (4.5, 4.5) mm is 56.75 Gy, a dose voxel ≤ 0.85 mm away.
    assert 56.75 - 1.3 < dvh.voxel_dmax_gy < 56.75 + 1.3
    pts = np.array([[1.0, 2.0, 3.0], [-3.0, 0.5, 0.0]])
    np.testing.assert_allclose(sample_dose_gy(dose, dose_g, pts), 50 + pts[:, 0] + 0.5 * pts[:, 1])


def test_structure_outside_the_dose_grid_counts_zero() -> None:
    g = GridGeometry.axis_aligned((4, 4, 8), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    dose_g = GridGeometry.axis_aligned((4, 4, 4), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    dose = np.full(dose_g.shape_zyx, 3.0)
    occ = np.ones(g.shape_zyx, dtype=bool)  # x from -0.5 to 7.5 mm; dose grid to 3.5 mm
    dvh = compute_dvh(dose, occ, g, dose_geometry=dose_g, samples_per_voxel=1, jitter=False)
    assert dvh.volume_cm3 == pytest.approx(0.128)
    assert dvh.outside_dose_grid_cm3 == pytest.approx(0.064)
    assert dvh.dmin_gy == 0.0
    assert dvh.v_gy(1.0) == pytest.approx(0.064)


def test_v_ref_matches_full_occupancy_dvh_and_bounds_a_target() -> None:
    # V_ref uses the same samples as a structure covering the whole grid (brachy-like field).
    g = GridGeometry.axis_aligned((30, 30, 30), (-14.5, -14.5, -14.5), (1.0, 1.0, 1.0))
    xyz = g.voxel_centres_world()
    r2 = (xyz**2).sum(-1)
    dose = 2000.0 / np.maximum(r2, 1.0)
    whole = compute_dvh(dose, np.ones(g.shape_zyx, dtype=bool), g, bin_width_gy=0.1)
    v_ref = volume_at_or_above_cm3(dose, g, 20.0)
    assert v_ref == pytest.approx(whole.v_gy(20.0), rel=1e-6)
    # Analytic check (D = 2000/r² ≥ 20 Gy ⇔ r ≤ 10 mm): 4/3·π·10³ mm³ = 4.189 cm³.
    assert v_ref == pytest.approx(4.18879, rel=0.02)
    target = (r2 <= 12.0**2).astype(np.float32) * 0.9
    assert compute_dvh(dose, target, g).v_gy(20.0) <= v_ref
