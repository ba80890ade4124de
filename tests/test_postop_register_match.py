"""Post-op registration (SimpleITK, on bone) and planned ↔ implanted seed matching (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the conventional name)

from dose.errors import InputError
from planner.demo.phantom import generate_phantom
from planner.imaging.volume import CTVolume
from planner.postop.match import match_seeds, needle_deviations
from planner.postop.register import RigidTransform, register_rigid, sitk_image
from planner.postop.synthetic import PostopScene, render_postop_ct


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(n_slices=40)


def test_registration_recovers_a_known_patient_shift(phantom) -> None:
    """Post-op = planning CT moved by 2.5° / 1.5° / −1° and (3, −2, 4) mm, plus seeds and
    their streaks; the registration maps target points back within 0.5 mm."""
    plan = CTVolume(phantom.hu, phantom.geometry)
    centre = phantom.geometry.zyx_to_world(np.argwhere(phantom.masks["GTV"]).mean(axis=0))
    truth = sitk.Euler3DTransform()
    truth.SetCenter(tuple(float(v) for v in centre))
    truth.SetRotation(*np.radians([2.5, 1.5, -1.0]))
    truth.SetTranslation((3.0, -2.0, 4.0))
    moved = sitk.Resample(sitk_image(plan), sitk_image(plan), truth, sitk.sitkLinear, -1024.0)
    base = CTVolume(sitk.GetArrayFromImage(moved).astype(np.int16), phantom.geometry)
    # Seeds in the post-op scan (its own frame): the planned positions mapped back.
    planned = centre + np.array([[0, 0, 0], [8, 2, 5], [-6, 4, -5], [3, -5, 10.0]])
    inverse = truth.GetInverse()
    seeds_post = np.array([inverse.TransformPoint(tuple(p)) for p in planned])
    post = render_postop_ct(base, PostopScene(seeds_post, np.tile([0.0, -1.0, 0.0], (4, 1))), rng=0)
    result = register_rigid(plan, post, around_mm=centre)
    probe = centre + np.array([[0, 0, 0], [30, 0, 0], [0, 30, 0], [0, 0, 30.0], [-25, 20, -20]])
    expected = np.array([truth.TransformPoint(tuple(p)) for p in probe])
    err = np.linalg.norm(result.transform.apply(probe) - expected, axis=1)
    assert err.max() < 0.5, (err, result.stop_reason)
    # The seeds land back on their planned positions.
    assert np.abs(result.transform.apply(seeds_post) - planned).max() < 0.5


def test_rigid_transform_nudge_and_round_trip() -> None:
    t = RigidTransform().nudged(shift_mm=(1.0, 2.0, 3.0), rotation_deg=(0.0, 0.0, 90.0))
    assert np.allclose(t.apply([1.0, 0.0, 0.0]), [1.0, 3.0, 3.0])
    assert np.allclose(t.apply_vectors([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])
    back = RigidTransform.from_dict(t.to_dict())
    assert np.allclose(back.matrix, t.matrix) and back.translation_mm == t.translation_mm
    with pytest.raises(InputError):
        RigidTransform.from_dict(
            {"rotation": [[2, 0, 0], [0, 1, 0], [0, 0, 1]], "translation_mm": [0, 0, 0]}
        )


def test_hungarian_matching_beats_greedy_and_gates() -> None:
    """Greedy nearest-first would pair implanted 0 with planned 1 and strand planned 0."""
    planned = np.array([[0.0, 0, 0], [4.0, 0, 0], [50.0, 0, 0]])
    implanted = np.array([[3.0, 0, 0], [7.5, 0, 0], [80.0, 0, 0]])
    m = match_seeds(planned, implanted, gate_mm=10.0)
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 0), (1, 1)]
    assert np.allclose(m.distances_mm, [3.0, 3.5])
    assert m.unmatched_planned == [2] and m.unmatched_implanted == [2]
    assert "2 seeds matched" in m.summary()
    with pytest.raises(InputError):
        match_seeds(planned, implanted, gate_mm=0.0)
    with pytest.raises(InputError):
        match_seeds([[np.nan, 0, 0]], implanted)


def test_needle_deviations_depth_and_angle() -> None:
    entry, tip = np.array([0.0, 60.0, 0.0]), np.array([0.0, 0.0, 0.0])
    u = (tip - entry) / np.linalg.norm(tip - entry)
    planned = np.array([tip - u * d for d in (5.0, 15.0, 25.0, 35.0)])
    # Implanted: 3 mm deeper along the needle.
    deeper = planned + 3.0 * u
    m = match_seeds(planned, deeper)
    (dev,) = needle_deviations(m, planned, deeper, ["n1"] * 4, {"n1": (entry, tip)})
    assert dev.depth_mm == pytest.approx(3.0, abs=1e-9)
    assert dev.angle_deg == pytest.approx(0.0, abs=1e-6)
    assert dev.tip_mm == pytest.approx(3.0) and dev.entry_mm == pytest.approx(0.0, abs=1e-6)
    # Implanted: rotated 5° about the tip.
    a = np.radians(5.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    tilted = (planned - tip) @ rot.T + tip
    m2 = match_seeds(planned, tilted)
    (dev2,) = needle_deviations(m2, planned, tilted, ["n1"] * 4, {"n1": (entry, tip)})
    assert dev2.angle_deg == pytest.approx(5.0, abs=1e-6)
    assert dev2.entry_mm == pytest.approx(60.0 * np.sin(a), rel=1e-6)
