"""Freehand implants of random geometry (planner/postop/freehand_scene.py, issue 13).

The generator is the ground truth of the freehand benchmark scenes: it must be deterministic,
draw different implants for different seeds of its random generator, keep to the clinical
ranges it claims (seed spacing 5.5–11 mm along a needle), never overlap two seeds or put one
by the screw or cement, and load seeds only near the target. Detection on a 2.5 mm freehand
scene is held to the issue's goal.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment

from planner.demo.phantom import generate_phantom
from planner.postop.detection.detect import detect_seeds
from planner.postop.freehand_scene import (
    METAL_CLEARANCE_MM,
    MIN_CENTRE_DISTANCE_MM,
    _axis_points,
    freehand_implant_scene,
)
from planner.postop.synthetic import SEED_DIAMETER_MM, render_postop_ct, reslice_thick


@pytest.fixture(scope="module")
def base_2_5mm():
    ph = generate_phantom(n_slices=40)
    return reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], 2.5)


def test_deterministic_and_varied(base_2_5mm) -> None:
    base, gtv = base_2_5mm
    a = freehand_implant_scene(gtv, base.geometry, rng=3)
    b = freehand_implant_scene(gtv, base.geometry, rng=3)
    c = freehand_implant_scene(gtv, base.geometry, rng=4)
    np.testing.assert_array_equal(a.seeds_mm, b.seeds_mm)
    np.testing.assert_array_equal(a.axes, b.axes)
    assert len(a.seeds_mm) >= 15 and len(c.seeds_mm) >= 15
    # Different draws are different implants, not the same grid jittered: the needle
    # directions (mean seed axis) differ by more than a few degrees or the counts differ.
    mean_a = np.mean(a.axes * np.sign(a.axes @ a.axes[0])[:, None], axis=0)
    mean_c = np.mean(c.axes * np.sign(c.axes @ c.axes[0])[:, None], axis=0)
    cos = abs(mean_a @ mean_c) / np.linalg.norm(mean_a) / np.linalg.norm(mean_c)
    assert len(a.seeds_mm) != len(c.seeds_mm) or np.degrees(np.arccos(min(cos, 1.0))) > 5.0


@pytest.mark.parametrize("rng", [0, 5, 9])
def test_no_overlap_near_target_clear_of_metal(base_2_5mm, rng: int) -> None:
    base, gtv = base_2_5mm
    geo = base.geometry
    sc = freehand_implant_scene(gtv, geo, rng=rng, margin_mm=6.0)
    seeds, axes = sc.seeds_mm, sc.axes
    np.testing.assert_allclose(np.linalg.norm(axes, axis=1), 1.0, atol=1e-9)
    d = np.linalg.norm(seeds[:, None] - seeds[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() >= MIN_CENTRE_DISTANCE_MM
    for n in range(len(seeds)):  # capsules do not intersect
        for m in np.flatnonzero(d[n] < 6.0):
            gap = np.linalg.norm(
                _axis_points(seeds[n], axes[n])[:, None] - _axis_points(seeds[m], axes[m])[None],
                axis=-1,
            ).min()
            assert gap >= SEED_DIAMETER_MM
    outside = distance_transform_edt(~gtv, sampling=np.asarray(geo.spacing_mm)[::-1])
    kji = np.rint(geo.world_to_zyx(seeds)).astype(int)
    assert outside[tuple(kji.T)].max() <= 6.0
    screw = sc.screws[0]
    a, b = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    t = np.clip((seeds - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    to_axis = np.linalg.norm(seeds - a - t[:, None] * (b - a), axis=1)
    assert to_axis.min() >= screw.radius_mm + METAL_CLEARANCE_MM
    cement = sc.cements[0]
    grown = np.asarray(cement.semi_axes_mm) + METAL_CLEARANCE_MM
    assert np.min(np.sum(((seeds - np.asarray(cement.centre_mm)) / grown) ** 2, axis=1)) > 1.0


def test_seed_spacing_along_needles_is_clinical(base_2_5mm) -> None:
    """Seeds of one needle (axes within a few degrees, on one line) lie 5.5–11 mm apart plus
    jitter: the nearest neighbour of most seeds is beyond 4 mm and none is beyond 40 mm."""
    base, gtv = base_2_5mm
    sc = freehand_implant_scene(gtv, base.geometry, rng=7)
    d = np.linalg.norm(sc.seeds_mm[:, None] - sc.seeds_mm[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    assert np.median(nearest) > 4.0
    assert nearest.max() < 40.0


def test_empty_target_is_refused(base_2_5mm) -> None:
    base, gtv = base_2_5mm
    with pytest.raises(ValueError, match="empty"):
        freehand_implant_scene(np.zeros_like(gtv), base.geometry)


def test_detection_on_a_freehand_scene_at_2_5mm(base_2_5mm) -> None:
    """A freehand implant on 2.5 mm slices (lung, screw, cement, random needle geometry):
    ≥ 99 % of the seeds within 2.5 mm, ≤ 1 % false, centre RMS ≤ 0.7 mm, none in the screw."""
    base, gtv = base_2_5mm
    sc = freehand_implant_scene(gtv, base.geometry, rng=2)
    ct = render_postop_ct(base, sc, rng=102)
    result = detect_seeds(ct, expected=len(sc.seeds_mm))
    found = result.positions_mm
    d = np.linalg.norm(sc.seeds_mm[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(np.where(d < 2.5, d, 1e6))
    ok = d[r, c] < 2.5
    n = len(sc.seeds_mm)
    assert ok.sum() >= 0.99 * n, result.summary()
    assert len(found) - ok.sum() <= 0.01 * n, result.summary()
    assert np.sqrt(np.mean(d[r, c][ok] ** 2)) <= 0.7
    screw = sc.screws[0]
    a, b = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    t = np.clip((found - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    assert np.linalg.norm(found - a - t[:, None] * (b - a), axis=1).min() > screw.radius_mm
