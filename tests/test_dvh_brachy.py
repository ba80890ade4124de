"""Brachytherapy analytic DVH tests (DVH-2, DVH-6): steep point/line-source gradients and thin
cylinders, with closed-form answers.

Sources of the formulas:
* Point source D = k/r² and a concentric sphere of radius R: V(D ≥ d) = 4/3·π·min(R, ρ)³ with
  ρ = √(k/d), so Dx% = k/(R·(x/100)^{1/3})² (../shared/reference/dicom-and-integrity.md §2.4).
* Sphere whose centre is at distance c from the source: V(D ≥ d) is the lens volume
  π(R+ρ−c)²(c²+2cρ−3ρ²+2cR+6ρR−3R²)/(12c) for |R−ρ| < c < R+ρ (same section, standard geometry).
* Linear gradient across a cylinder of radius R: the fraction of the disc with x ≥ t is the
  circular-segment fraction (arccos u − u·√(1−u²))/π, u = t/R (standard geometry).
* Line source on a cylinder's axis, D = k/r: V(D ≥ d) = π·L·min(R, k/d)² (derived the same way).
The dose grids hold these fields at voxel centres; the DVH interpolates trilinearly, whose error
for 1/r² on a 1 mm grid is ≈ 0.75/r² (r in mm): 0.4 % at the D90 radius of the 15 mm sphere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import brentq

from dose.dvh_calc import compute_dvh
from dose.geometry import GridGeometry


def _occupancy(geom: GridGeometry, inside: Callable, n: int = 8) -> np.ndarray:
    """Fractional occupancy of an implicit shape: n³ sub-samples per voxel."""
    x, y, z = geom.axis_coordinates_mm()
    off = (np.arange(n) + 0.5) / n - 0.5
    occ = np.zeros(geom.shape_zyx)
    for oz in off:
        zz = (z + oz * geom.spacing_mm[2])[:, None, None]
        for oy in off:
            yy = (y + oy * geom.spacing_mm[1])[None, :, None]
            for ox in off:
                occ += inside((x + ox * geom.spacing_mm[0])[None, None, :], yy, zz)
    return occ / n**3


def _point_source_dose(geom: GridGeometry, k: float, centre=(0.0, 0.0, 0.0), r_min=0.5):
    xyz = geom.voxel_centres_world() - np.asarray(centre)
    r2 = (xyz**2).sum(-1)
    return k / np.maximum(r2, r_min**2)  # clamp at r_min (DOSE-4)


DOSE_GRID = GridGeometry.axis_aligned((61, 61, 61), (-30.0, -30.0, -30.0), (1.0, 1.0, 1.0))
K_SPHERE = 100.0 * 15.0**2  # 100 Gy at 15 mm


@pytest.mark.parametrize("structure_grid_mm", [0.5, 1.0])
def test_point_source_in_concentric_sphere(structure_grid_mm: float) -> None:
    R = 15.0
    dose = _point_source_dose(DOSE_GRID, K_SPHERE)
    if structure_grid_mm == 1.0:  # the plan case: structure on the dose grid
        geom, dose_geom = DOSE_GRID, None
    else:
        geom = GridGeometry.covering_box((-15.5,) * 3, (15.5,) * 3, structure_grid_mm)
        dose_geom = DOSE_GRID
    occ = _occupancy(geom, lambda x, y, z: x**2 + y**2 + z**2 <= R**2)
    dvh = compute_dvh(dose, occ, geom, dose_geometry=dose_geom, prescription_gy=100.0)
    assert dvh.volume_cm3 == pytest.approx(4 / 3 * math.pi * R**3 / 1000, rel=2e-3)
    for x in (90.0, 50.0):
        analytic = K_SPHERE / (R * (x / 100) ** (1 / 3)) ** 2  # Dx% = k/(R·(x/100)^⅓)²
        assert dvh.d_percent(x) == pytest.approx(analytic, rel=0.01)
    # D100 = Dmin = k/R² = 100 Gy. From voxel samples (voxel-centre rule) it lies within one
    # structure voxel h of the surface; with surface points it is the interpolated surface dose.
    h = structure_grid_mm
    assert K_SPHERE / (R + h) ** 2 <= dvh.dmin_gy <= K_SPHERE / (R - h) ** 2
    u = np.random.default_rng(1).normal(size=(500, 3))
    surface = R * u / np.linalg.norm(u, axis=1, keepdims=True)
    dvh_b = compute_dvh(
        dose, occ, geom, dose_geometry=dose_geom, prescription_gy=100.0, boundary_points_mm=surface
    )
    assert dvh_b.dmin_gy == pytest.approx(100.0, rel=0.01)
    assert dvh_b.volume_cm3 == dvh.volume_cm3  # surface points never change the histogram
    for pct_pd in (150.0, 200.0):
        rho = math.sqrt(K_SPHERE / (pct_pd))  # d = pct_pd % of 100 Gy
        assert dvh.v_percent_pd(pct_pd) == pytest.approx(100 * (rho / R) ** 3, abs=1.0)
    # The r → 0 singularity is clamped: finite Dmax at the source voxel.
    assert math.isfinite(dvh.dmax_gy) and dvh.dmax_gy <= K_SPHERE / 0.25 + 1e-6


def _lens_volume(R: float, rho: float, c: float) -> float:
    if c >= R + rho:
        return 0.0
    if c <= abs(R - rho):
        return 4 / 3 * math.pi * min(R, rho) ** 3
    return (
        math.pi
        * (R + rho - c) ** 2
        * (c**2 + 2 * c * rho - 3 * rho**2 + 2 * c * R + 6 * rho * R - 3 * R**2)
        / (12 * c)
    )


def test_lens_formula_reference_value() -> None:
    # dicom-and-integrity.md §2.4: R=1, ρ=0.8, c=0.9 → 0.92598 (checked there by Monte Carlo).
    assert _lens_volume(1.0, 0.8, 0.9) == pytest.approx(0.92598, abs=1e-5)


def test_point_source_offset_sphere() -> None:
    R, c = 10.0, 8.0  # sphere centre 8 mm from the source (source inside, near the edge)
    k = 50.0 * 100.0  # 50 Gy at 10 mm
    dose = _point_source_dose(DOSE_GRID, k)
    geom = GridGeometry.covering_box((-2.75, -10.75, -10.75), (18.75, 10.75, 10.75), 0.5)
    occ = _occupancy(geom, lambda x, y, z: (x - c) ** 2 + y**2 + z**2 <= R**2)
    dvh = compute_dvh(dose, occ, geom, dose_geometry=DOSE_GRID)
    v_total = 4 / 3 * math.pi * R**3
    assert dvh.volume_cm3 == pytest.approx(v_total / 1000, rel=2e-3)
    for rho in (6.0, 10.0, 14.0):  # partial lenses
        d = k / rho**2
        assert dvh.v_gy(d) * 1000 == pytest.approx(_lens_volume(R, rho, c), rel=0.015)
    assert dvh.v_gy(k / 19.0**2) * 1000 == pytest.approx(v_total, rel=2e-3)  # ρ ≥ c + R
    # D90 from the lens formula by bisection on ρ.
    rho90 = brentq(lambda r: _lens_volume(R, r, c) - 0.9 * v_total, abs(R - c) + 1e-9, R + c)
    assert dvh.d_percent(90.0) == pytest.approx(k / rho90**2, rel=0.01)


def _segment_fraction(t: float, R: float) -> float:
    u = min(max(t / R, -1.0), 1.0)
    return (math.acos(u) - u * math.sqrt(1 - u * u)) / math.pi


@pytest.mark.parametrize("diameter_mm", [5.0, 10.0])
@pytest.mark.parametrize("structure_grid_mm", [0.25, 1.0])
def test_thin_cylinder_in_steep_linear_gradient(diameter_mm: float, structure_grid_mm: float):
    # A cord-like cylinder (axis z, 40 mm long) across a 10 Gy/mm gradient (typical 1 cm from a
    # seed): D = 100 + 10·x Gy.
    R, L = diameter_mm / 2, 40.0
    x = DOSE_GRID.axis_coordinates_mm()[0]
    dose = np.broadcast_to(100.0 + 10.0 * x, DOSE_GRID.shape_zyx).copy()
    if structure_grid_mm == 1.0:
        geom, dose_geom = DOSE_GRID, None
    else:
        h = structure_grid_mm
        geom = GridGeometry.covering_box(
            (-R - h, -R - h, -L / 2 + h / 2), (R + h, R + h, L / 2 - h / 2), h
        )
        dose_geom = DOSE_GRID
    occ = _occupancy(geom, lambda x, y, z: (x**2 + y**2 <= R**2) & (np.abs(z) <= L / 2))
    dvh = compute_dvh(dose, occ, geom, dose_geometry=dose_geom)
    # Fine structure grid: 0.3 %; structure on the 1 mm dose grid: partial-volume voxels span
    # most of a 5 mm cord, so 2 %.
    tol = 0.003 if structure_grid_mm < 1 else 0.02
    assert dvh.volume_cm3 == pytest.approx(math.pi * R**2 * L / 1000, rel=tol)
    assert dvh.dmean_gy == pytest.approx(100.0, rel=tol / 3)
    for p in (90.0, 50.0, 5.0):
        t = brentq(lambda t, p=p: _segment_fraction(t, R) - p / 100, -R, R)
        assert dvh.d_percent(p) == pytest.approx(100.0 + 10.0 * t, rel=tol)
    assert dvh.v_percent(110.0) == pytest.approx(100 * _segment_fraction(1.0, R), abs=100 * tol)


def test_line_source_on_cylinder_axis() -> None:
    # D = k/r (r from the z axis), 50 Gy at the 5 mm surface: V(≥d) = π·L·min(R, k/d)².
    R, L, k = 5.0, 40.0, 250.0
    dose_geom = GridGeometry.axis_aligned((81, 41, 41), (-10.0, -10.0, -20.0), (0.5, 0.5, 0.5))
    xyz = dose_geom.voxel_centres_world()
    dose = k / np.maximum(np.hypot(xyz[..., 0], xyz[..., 1]), 0.25)
    geom = GridGeometry.covering_box((-5.25, -5.25, -19.875), (5.25, 5.25, 19.875), 0.25)
    occ = _occupancy(geom, lambda x, y, z: (x**2 + y**2 <= R**2) & (np.abs(z) <= L / 2), n=4)
    dvh = compute_dvh(dose, occ, geom, dose_geometry=dose_geom)
    assert dvh.d_percent(90.0) == pytest.approx(k / (R * math.sqrt(0.9)), rel=0.01)
    assert dvh.v_percent(100.0) == pytest.approx(100 * (k / 100.0 / R) ** 2, abs=1.0)  # 25 %
    assert 250.0 / (R + 0.25) <= dvh.dmin_gy <= 50.0  # within one structure voxel
