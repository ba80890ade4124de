"""GridGeometry: index ↔ LPS world conversion, including non-identity directions."""

from __future__ import annotations

import numpy as np
import pytest

from dose.geometry import GridGeometry


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def test_axis_aligned_index_to_world() -> None:
    g = GridGeometry.axis_aligned(
        (10, 20, 30), origin_mm=(-5.0, 2.0, 100.0), spacing_mm=(0.5, 0.8, 2.5)
    )
    # voxel (i=3, j=4, k=5) → origin + spacing * ijk
    np.testing.assert_allclose(g.index_to_world([3, 4, 5]), [-5 + 1.5, 2 + 3.2, 100 + 12.5])
    np.testing.assert_allclose(g.zyx_to_world([5, 4, 3]), g.index_to_world([3, 4, 5]))
    assert g.shape_xyz == (30, 20, 10)
    assert g.n_voxels == 6000


def test_round_trip_with_oblique_direction() -> None:
    rot = _rotation(np.array([0.3, -1.0, 0.4]), 0.7)
    g = GridGeometry((7, 8, 9), np.array([1.0, 2.0, 3.0]), np.array([0.7, 1.1, 2.0]), rot)
    rng = np.random.default_rng(1)
    ijk = rng.uniform(-2, 10, size=(50, 3))
    np.testing.assert_allclose(g.world_to_index(g.index_to_world(ijk)), ijk, atol=1e-12)
    # distance between neighbours along k equals the k spacing, along the k direction column
    step = g.index_to_world([0, 0, 1]) - g.index_to_world([0, 0, 0])
    np.testing.assert_allclose(step, 2.0 * rot[:, 2], atol=1e-12)


def test_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="spacing"):
        GridGeometry.axis_aligned((2, 2, 2), (0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        GridGeometry((2, 2, 2), np.zeros(3), np.ones(3), np.diag([1.0, 2.0, 1.0]))


def test_covering_box_and_contains() -> None:
    g = GridGeometry.covering_box((-10, -10, -10), (10, 10, 10), 1.0)
    assert g.shape_zyx == (21, 21, 21)
    assert g.contains_world(np.array([10.4, 0, 0]))
    assert not g.contains_world(np.array([10.6, 0, 0]))
    lo, hi = g.bounds_world_mm()
    np.testing.assert_allclose(lo, [-10, -10, -10])
    np.testing.assert_allclose(hi, [10, 10, 10])
