"""The seed image model fit (planner/postop/detection/seed_fit.py) on seeds rendered at 5 mm slices.

The renderer (planner/postop/synthetic.py) samples the same blur model at the voxel centres,
adds noise and clips at 3071 HU; the fit must give back the centre and axis of one seed, and
two seeds stacked along the slice axis two slices apart must fit better as two than as one.
The fit's closed-form Jacobian matches finite differences, and gives the same fits.
"""

from __future__ import annotations

import numpy as np
import pytest

import planner.postop.detection.seed_fit as seed_fit
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.postop.detection.seed_fit import (
    SeedImageModel,
    fit_seeds,
    line_image,
    line_image_jacobian,
)
from planner.postop.synthetic import SEED_EXCESS_HU_MM3, PostopScene, render_postop_ct

GEO = GridGeometry(
    shape_zyx=(12, 64, 64),
    origin_mm=np.zeros(3),
    spacing_mm=np.array([0.8, 0.8, 5.0]),
    direction=np.eye(3),
)


def _blob(seeds: np.ndarray, axes: np.ndarray, rng: int):
    base = CTVolume(np.full(GEO.shape_zyx, 40, np.int16), GEO)
    ct = render_postop_ct(base, PostopScene(seeds, axes, streak_hu=0.0), rng=rng)
    xyz = GEO.zyx_to_world(np.argwhere(np.ones(ct.hu.shape, bool)).astype(float))
    near = np.linalg.norm(xyz - seeds.mean(axis=0), axis=1) < 12.0
    hu = ct.hu.reshape(-1)[near]
    return xyz[near], hu.astype(float) - 40.0, hu >= 3071


@pytest.mark.parametrize("rng", [0, 1, 2])
def test_one_seed_centre_and_axis_recovered(rng: int) -> None:
    gen = np.random.default_rng(rng)
    centre = np.array([25.0, 25.0, 27.0]) + gen.normal(0, 1, 3)
    axis = gen.normal(size=3)
    axis /= np.linalg.norm(axis)
    coords, values, sat = _blob(centre[None], axis[None], rng)
    model = SeedImageModel.for_grid(GEO.spacing_mm, GEO.direction)
    start = centre + gen.normal(0, 1.0, 3)  # 1.7 mm off on average, as a centroid on 5 mm is
    fit = fit_seeds(coords, values, start[None], np.array([[1.0, 0.2, 0.1]]), 45_000.0, model, sat)
    assert np.linalg.norm(fit.centres_mm[0] - centre) < 0.3
    assert np.degrees(np.arccos(min(1.0, abs(float(fit.axes[0] @ axis))))) < 5.0
    assert abs(fit.amplitudes[0] / SEED_EXCESS_HU_MM3 - 1.0) < 0.1


def test_two_seeds_along_the_slice_axis_fit_better_as_two() -> None:
    seeds = np.array([[25.0, 25.0, 22.0], [25.5, 25.0, 31.0]])
    axes = np.array([[0.0, 1.0, 0.0], [0.1, 1.0, 0.0]])
    coords, values, sat = _blob(seeds, axes, 3)
    model = SeedImageModel.for_grid(GEO.spacing_mm, GEO.direction)
    one = fit_seeds(coords, values, seeds.mean(axis=0)[None], axes[:1], 45_000.0, model, sat)
    two = fit_seeds(coords, values, seeds + np.array([0.5, -0.5, 1.5]), axes, 45_000.0, model, sat)
    assert two.bic < one.bic
    err = np.linalg.norm(two.centres_mm[:, None] - seeds[None], axis=-1).min(axis=0)
    assert err.max() < 0.5


@pytest.mark.parametrize("slice_mm", [1.25, 5.0])
def test_the_closed_form_jacobian_matches_finite_differences(slice_mm: float) -> None:
    gen = np.random.default_rng(4)
    sigma = SeedImageModel.for_grid(np.array([0.8, 0.8, slice_mm]), np.eye(3)).sigma_mm
    points = gen.normal(size=(200, 3)) * np.array([3.0, 3.0, 2.0 * slice_mm])
    centres, axes = gen.normal(size=(2, 3)), gen.normal(size=(2, 3))
    amplitudes = np.array([40_000.0, 55_000.0])
    d_centre, d_axis, d_amplitude = line_image_jacobian(points, centres, axes, amplitudes, sigma)
    image = line_image(points, centres, axes, amplitudes, sigma)
    step = 1e-6
    for j in range(2):
        for k in range(3):
            for param, analytic in ((centres, d_centre), (axes, d_axis)):
                moved = param.copy()
                moved[j, k] += step
                args = (moved, axes) if param is centres else (centres, moved)
                numeric = (line_image(points, *args, amplitudes, sigma) - image) / step
                assert np.allclose(
                    analytic[:, j, k], numeric, rtol=1e-4, atol=1e-4 * abs(numeric).max()
                )
    assert np.allclose(d_amplitude @ amplitudes, image)


def test_fits_with_either_jacobian_agree(monkeypatch) -> None:
    seeds = np.array([[25.0, 25.0, 22.0], [25.5, 25.0, 31.0]])
    axes = np.array([[0.0, 1.0, 0.2], [0.1, 1.0, -0.3]])
    coords, values, sat = _blob(seeds, axes, 5)
    model = SeedImageModel.for_grid(GEO.spacing_mm, GEO.direction)
    start = seeds + np.array([0.5, -0.5, 1.5])
    closed = fit_seeds(coords, values, start, axes, 45_000.0, model, sat)
    monkeypatch.setattr(seed_fit, "ANALYTIC_JACOBIAN", False)
    numeric = fit_seeds(coords, values, start, axes, 45_000.0, model, sat)
    assert np.abs(closed.centres_mm - numeric.centres_mm).max() < 0.05
    assert np.abs(np.abs(np.sum(closed.axes * numeric.axes, axis=1)) - 1.0).max() < 1e-3
    assert abs(closed.rss / numeric.rss - 1.0) < 0.01


def test_compiled_kernels_give_the_reference_image_and_jacobian() -> None:
    """The numba kernels (planner/postop/detection/seed_fit_kernels.py) give the numpy reference's
    image and Jacobian (to 1e-12 relative) for seeds of every orientation, unnormalised axes
    included, on a thick-slice blur."""
    from planner.postop.detection.seed_fit_kernels import line_image_jacobian_nb, line_image_nb

    rng = np.random.default_rng(7)
    points = rng.normal(0.0, 4.0, (700, 3))
    centres = rng.normal(0.0, 2.0, (3, 3))
    axes = rng.normal(0.0, 1.0, (3, 3))
    amplitudes = rng.uniform(400.0, 900.0, 3)
    sigma = np.array([0.5, 0.5, 2.1])
    ref = line_image(points, centres, axes, amplitudes, sigma)
    assert np.abs(ref).max() > 1.0  # the points see the seeds
    got = line_image_nb(points, centres, axes, amplitudes, sigma, seed_fit.SEED_LENGTH_MM)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    ref_jac = line_image_jacobian(points, centres, axes, amplitudes, sigma)
    got_jac = line_image_jacobian_nb(
        points, centres, axes, amplitudes, sigma, seed_fit.SEED_LENGTH_MM
    )
    for g, r in zip(got_jac, ref_jac, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * np.abs(r).max())
