"""Contour DVHs whose accuracy must not depend on where the extreme dose sits or on the size of
the structure (issue 11).

Dose fields are chosen so that trilinear interpolation reproduces them exactly (sums of
piecewise-linear functions whose kinks lie on dose-grid nodes), so the analytic values below are
the exact values of the interpolated field:

* D = 50 + 2·x − 2·|y − 5| − 2·|z − 1| on a box x ∈ [−10, 0], y ∈ [0, 10] contoured on z = 0, 3, 6
  (slabs −1.5 … 7.5 mm): Dmax = 50 Gy at (0, 5, 1), on the side wall x = 0, between two contour
  planes and half-way along an edge (no vertex or end cap is there); Dmin = 50 − 20 − 10 − 13 =
  7 Gy at the cap corners (x = −10, y ∈ {0, 10}, z = 7.5).
* D = A − g·(|x − c_x| + |y − c_y| + |z − c_z|) (an L1 cone) inside a structure that holds the
  whole octahedron D ≥ d: V(D ≥ d) = (4/3)·ρ³ with ρ = (A − d)/g, so
  D(v) = A − g·(3v/4)^(1/3); D0.03cm³ = A − g·(22.5 mm³)^(1/3).
"""

from __future__ import annotations

import numpy as np
import pytest

from dose.geometry import GridGeometry
from planner.dicom.rtstruct import ROI
from planner.structures.rasterise import rasterise_roi, rasterise_roi_on_grid, roi_dvh
from tests.test_rt_io import circle, square


def _roi(name: str, contours) -> ROI:
    return ROI(number=1, name=name, contours=[np.asarray(c, float) for c in contours])


def test_dmax_on_a_slab_wall_between_planes() -> None:
    roi = _roi("Box", [square(-10.0, 0.0, 10.0, z) for z in (0.0, 3.0, 6.0)])
    g = GridGeometry.axis_aligned((16, 16, 16), (-12.0, -3.0, -4.0), (1.0, 1.0, 1.0))
    x, y, z = g.axis_coordinates_mm()
    dose = (
        50.0
        + 2.0 * x[None, None, :]
        - 2.0 * np.abs(y[None, :, None] - 5.0)
        - 2.0 * np.abs(z[:, None, None] - 1.0)
    )
    dvh = roi_dvh(rasterise_roi(roi), dose, g)
    assert dvh.volume_cm3 == pytest.approx(0.9, rel=2e-3)  # 10 × 10 × 9 mm³
    assert dvh.dmax_gy == pytest.approx(50.0, abs=1e-9)
    assert dvh.dmin_gy == pytest.approx(7.0, abs=1e-9)
    assert dvh.outside_dose_grid_cm3 == 0.0


def _l1_cone(g: GridGeometry, peak_gy: float, grad: float, centre) -> np.ndarray:
    x, y, z = g.axis_coordinates_mm()
    return (
        peak_gy
        - grad * np.abs(x[None, None, :] - centre[0])
        - grad * np.abs(y[None, :, None] - centre[1])
        - grad * np.abs(z[:, None, None] - centre[2])
    ).astype(np.float32)


def _d_cc(peak: float, grad: float, v_cm3: float) -> float:
    return peak - grad * (0.75 * v_cm3 * 1000.0) ** (1.0 / 3.0)


def test_hot_spot_values_do_not_depend_on_structure_size() -> None:
    # The same hot spot (an L1 cone peaking at 120 Gy, 8 Gy/mm, at (10, −6, 24) mm, a dose-grid
    # node) inside a 2 cm box and inside a 22 × 20 × 24 cm "body": D0.03cm³, D0.1cm³ and Dmax
    # must agree with the analytic values for both (1 %, or 0.003 Gy), and the body, which lies
    # inside the dose grid, has no volume outside it.
    centre = (10.0, -6.0, 24.0)
    g = GridGeometry.axis_aligned((130, 115, 120), (-120.0, -120.0, -106.0), (2.0, 2.0, 2.0))
    dose = np.maximum(_l1_cone(g, 120.0, 8.0, centre), 0.0)
    small = _roi("Small", [square(0.0, -16.0, 20.0, z) for z in np.arange(15.0, 33.1, 3.0)])
    lung = _roi("Lung", [circle(-5.0, -10.0, 60.0, z, n=720) for z in np.arange(-60.0, 90.1, 3.0)])
    for roi in (small, lung):
        dvh = roi_dvh(rasterise_roi(roi), dose, g)
        assert dvh.outside_dose_grid_cm3 == 0.0, roi.name
        for v_cm3 in (0.03, 0.1):
            ref = _d_cc(120.0, 8.0, v_cm3)
            assert dvh.d_cc(v_cm3) == pytest.approx(ref, rel=0.01), (roi.name, v_cm3)
        assert dvh.dmax_gy == pytest.approx(120.0, rel=1e-6)
    # The lung's volume: 720-gon area × 51 planes × 3 mm (slabs with ½-slice end caps).
    poly = circle(-5.0, -10.0, 60.0, 0.0, n=720)
    area = 0.5 * abs(
        np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1))
    )
    assert dvh.volume_cm3 == pytest.approx(area * 51 * 3.0 / 1000.0, rel=1e-3)


def test_on_grid_occupancy_is_exact_in_z_and_memory_light() -> None:
    # Box 10 × 10 mm on planes 0 … 9 (slabs −0.5 … 9.5) onto a grid with 2.5 mm slices starting
    # at z = −1.25: slice 0 spans −1.25 … 1.25, 70 % inside; the occupancy integral is 1 cm³.
    roi = _roi("Box", [square(0.0, 0.0, 10.0, z) for z in range(10)])
    g = GridGeometry.axis_aligned((6, 18, 18), (-2.6, -2.6, 0.0), (0.8, 0.8, 2.5))
    occ = rasterise_roi_on_grid(roi, g)
    assert occ.sum() * g.voxel_volume_mm3 / 1000 == pytest.approx(1.0, rel=2e-3)
    assert occ[0, 8, 8] == pytest.approx(0.7, abs=1e-6)
    assert occ[1, 8, 8] == pytest.approx(1.0)
    assert occ[4, 8, 8] == pytest.approx(0.3, abs=1e-6)  # 8.75 … 11.25: 0.75 mm of 2.5 inside


def test_roi_touching_the_dose_grid_edge_is_not_partly_outside() -> None:
    # The box x ∈ [−10, 0] mm, planes z = 0 … 6 (slabs −0.5 … 6.5) ends exactly where the dose
    # grid's voxel boxes end (x = 0, z = 6.5): nothing lies outside the grid, so no volume may be
    # counted at 0 Gy (surface samples straying a fraction of a fine pixel beyond the contour
    # must not raise a false "outside the dose grid" warning or a 0 Gy Dmin).
    roi = _roi("Edge", [square(-10.0, 0.0, 10.0, z) for z in range(7)])
    g = GridGeometry.axis_aligned((10, 14, 12), (-11.5, -2.0, -2.5), (1.0, 1.0, 1.0))
    x = g.axis_coordinates_mm()[0]
    dose = np.broadcast_to(20.0 + x, g.shape_zyx).copy()  # 8.5 … 19.5 Gy at the voxel centres
    dvh = roi_dvh(rasterise_roi(roi), dose, g)
    assert dvh.outside_dose_grid_cm3 == 0.0
    assert dvh.volume_cm3 == pytest.approx(0.7, rel=2e-3)
    assert dvh.dmin_gy == pytest.approx(10.0, abs=1e-9)  # x = −10 mm
    assert dvh.dmax_gy == pytest.approx(19.5, abs=1e-9)  # held at the edge voxel's value
    assert dvh.d_percent(100) == pytest.approx(10.0, abs=1e-9)


def test_contour_dvh_on_a_rotated_dose_grid() -> None:
    # Dose D = 40 + x + 0.5·y + 0.25·z (Gy) at the voxel centres of a grid rotated 30° about z
    # and tilted 10° about x (trilinear-exact for a linear field). Box x, y ∈ [0, 10], planes
    # z = 0 … 9 (slabs −0.5 … 9.5): Dmin at (0, 0, −0.5) = 39.875, Dmax at (10, 10, 9.5) =
    # 57.375, Dmean at the centre (5, 5, 4.5) = 48.625 Gy.
    roi = _roi("Box", [square(0.0, 0.0, 10.0, z) for z in range(10)])
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t = np.deg2rad(10.0)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
    g = GridGeometry((30, 40, 40), (-2.0, -16.0, -8.0), (1.2, 1.1, 1.0), rz @ rx)
    xyz = g.voxel_centres_world()
    dose = 40.0 + xyz[..., 0] + 0.5 * xyz[..., 1] + 0.25 * xyz[..., 2]
    assert g.world_to_zyx(np.array([[0.0, 0, -0.5], [10, 10, 9.5]])).min() > 0  # inside
    dvh = roi_dvh(rasterise_roi(roi), dose, g)
    assert dvh.outside_dose_grid_cm3 == 0.0
    assert dvh.volume_cm3 == pytest.approx(1.0, rel=2e-3)
    assert dvh.dmin_gy == pytest.approx(39.875, abs=1e-6)
    assert dvh.dmax_gy == pytest.approx(57.375, abs=1e-6)
    assert dvh.dmean_gy == pytest.approx(48.625, abs=0.01)
