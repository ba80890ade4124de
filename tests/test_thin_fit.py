"""Thin slices: seeds placed by the seed image model (planner/postop/detection/thin_fit.py, issue
13).

A freehand implant on 2.5 mm slices (needles tilted out of the axial plane, seed trains, lung,
screw and cement): the blob covariance gave an axis error of 11.9° median on this scene; the
image model fit gives ≤ 4° and a smaller centre error, and finds the same seeds. The test
fails with the fit off.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import planner.postop.detection.thin_fit as thin_fit
from planner.demo.phantom import generate_phantom
from planner.postop.detection.detect import detect_seeds
from planner.postop.freehand_scene import freehand_implant_scene
from planner.postop.synthetic import render_postop_ct, reslice_thick


@pytest.fixture(scope="module")
def freehand_2_5mm():
    ph = generate_phantom(n_slices=40)
    base, gtv = reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], 2.5)
    scene = freehand_implant_scene(gtv, base.geometry, rng=1)
    return render_postop_ct(base, scene, rng=101), scene


def _scores(ct, scene) -> tuple[int, int, float, float]:
    """(found within 2.5 mm, false, centre RMS mm, axis median °)."""
    result = detect_seeds(ct, expected=len(scene.seeds_mm))
    found = result.positions_mm
    d = np.linalg.norm(scene.seeds_mm[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(np.where(d < 2.5, d, 1e6))
    ok = d[r, c] < 2.5
    r, c = r[ok], c[ok]
    cos = np.abs(np.sum(scene.axes[r] * result.axes[c], axis=1))
    axis = float(np.median(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))))
    return len(r), len(found) - len(r), float(np.sqrt(np.mean(d[r, c] ** 2))), axis


def test_freehand_axes_on_2_5mm_by_the_image_model(freehand_2_5mm, monkeypatch) -> None:
    ct, scene = freehand_2_5mm
    found, false, rms, axis = _scores(ct, scene)
    assert found == len(scene.seeds_mm) and false == 0
    assert axis <= 4.0 and rms <= 0.4
    monkeypatch.setattr(thin_fit, "REFINE_SINGLES", False)
    monkeypatch.setattr(thin_fit, "REFINE_CLUSTERS", False)
    found_off, false_off, rms_off, axis_off = _scores(ct, scene)
    assert (found_off, false_off) == (found, false)  # the fit places seeds, it does not count
    assert axis_off > 8.0 and rms_off > rms
