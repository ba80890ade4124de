"""Margins in mm (planner.structures.margins): analytic spheres on an anisotropic grid, shrink,
per-axis margins, rotated grids and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.booleans import subtract, union
from planner.structures.margins import expand, shrink
from planner.structures.patch import apply_patch

# 0.8 x 0.8 x 2.5 mm voxels: the anisotropy of a clinical CT with thick slices.
GRID = GridGeometry.axis_aligned((40, 96, 96), (-37.6, -37.6, -48.75), (0.8, 0.8, 2.5))
CENTRES = GRID.voxel_centres_world()
#: Surface tolerance: below the in-plane voxel diagonal (1.13 mm), far below a slice (2.5 mm).
SURFACE_TOL_MM = 1.0


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=bool)
    a.setflags(write=False)
    return a


def _sphere(radius_mm: float, centre_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.linalg.norm(CENTRES - centre_mm, axis=-1)
    return _readonly(r <= radius_mm), r


def _check_sphere(result: np.ndarray, r: np.ndarray, radius_mm: float) -> None:
    volume = result.sum() * GRID.voxel_volume_mm3
    analytic = 4.0 / 3.0 * np.pi * radius_mm**3
    assert volume == pytest.approx(analytic, rel=0.05)
    # Every included centre lies within the sphere + tol, every excluded one outside it - tol.
    assert r[result].max() <= radius_mm + SURFACE_TOL_MM
    assert r[~result].min() >= radius_mm - SURFACE_TOL_MM


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sphere_10_expanded_by_5_is_a_15_mm_sphere(seed: int) -> None:
    centre = np.random.default_rng(seed).uniform(-1.5, 1.5, 3)  # off the voxel lattice
    mask, r = _sphere(10.0, centre)
    before = mask.copy()
    patch = expand(mask, GRID, 5.0)
    np.testing.assert_array_equal(mask, before)  # input untouched
    box, values = patch
    assert values.shape == tuple(s.stop - s.start for s in box)
    out = apply_patch(mask, patch)
    assert np.all(out[mask])  # an expansion keeps the original
    _check_sphere(out, r, 15.0)
    # Nothing changes outside the patch box.
    outside = np.ones(GRID.shape_zyx, bool)
    outside[box] = False
    np.testing.assert_array_equal(out[outside], mask[outside])


def test_the_slice_direction_gets_the_same_margin_as_in_plane() -> None:
    """A centre-to-centre distance map would lose up to half a slice (1.25 mm) along z."""
    mask, _ = _sphere(10.0, np.array([0.0, 0.0, 0.0]))
    out = apply_patch(mask, expand(mask, GRID, 5.0))
    z = CENTRES[..., 2][out]
    x = CENTRES[..., 0][out]
    # Slices at z = ±13.75 mm: inside the 15 mm sphere (and its ≤ 1 mm tolerance), so they must
    # be reached; ±16.25 mm must not.
    assert z.max() == pytest.approx(13.75) and z.min() == pytest.approx(-13.75)
    assert x.max() == pytest.approx(14.4) and x.min() == pytest.approx(-14.4)


@pytest.mark.parametrize("seed", [3, 4])
def test_sphere_15_shrunk_by_5_is_a_10_mm_sphere(seed: int) -> None:
    centre = np.random.default_rng(seed).uniform(-1.5, 1.5, 3)
    mask, r = _sphere(15.0, centre)
    out = apply_patch(mask, shrink(mask, GRID, 5.0))
    assert not np.any(out & ~mask)  # a shrink only removes
    _check_sphere(out, r, 10.0)


def test_small_sphere_large_margin() -> None:
    mask, r = _sphere(5.0, np.array([0.3, -0.2, 0.9]))
    _check_sphere(apply_patch(mask, expand(mask, GRID, 10.0)), r, 15.0)


def test_per_axis_margins_on_a_box() -> None:
    """A cuboid grown by (x, y, z) = (4, 2.4, 5) mm grows by exactly that on each face."""
    mask = np.zeros(GRID.shape_zyx, bool)
    mask[18:22, 40:50, 44:52] = True
    out = apply_patch(mask, expand(mask, GRID, (4.0, 2.4, 5.0)))
    ks, js, is_ = (np.flatnonzero(out.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    assert (ks[0], ks[-1]) == (18 - 2, 21 + 2)  # 5 mm / 2.5 mm = 2 slices
    assert (js[0], js[-1]) == (40 - 3, 49 + 3)  # 2.4 mm / 0.8 mm = 3 rows
    assert (is_[0], is_[-1]) == (44 - 5, 51 + 5)  # 4 mm / 0.8 mm = 5 columns
    # Per-axis margins round the edges as an ellipsoid: the far corner is not filled.
    assert not out[16, 37, 39]
    # The x-only margin leaves y and z alone.
    only_x = apply_patch(mask, expand(mask, GRID, (4.0, 0.0, 0.0)))
    np.testing.assert_array_equal(only_x.any(axis=2), mask.any(axis=2))
    assert only_x.sum() == 4 * 10 * (8 + 10)
    # And shrink per axis: x by 1.6 mm (2 columns a side), z by 2.5 mm (1 slice a side).
    thin = apply_patch(mask, shrink(mask, GRID, (1.6, 0.0, 2.5)))
    assert thin.sum() == 2 * 10 * 4


def test_per_axis_ellipsoid_from_a_point() -> None:
    """One voxel grown by semi-axes (6, 8, 12) mm is that ellipsoid."""
    mask = np.zeros(GRID.shape_zyx, bool)
    mask[20, 47, 47] = True
    out = apply_patch(mask, expand(mask, GRID, (6.0, 8.0, 12.0)))
    c = GRID.zyx_to_world(np.array([20, 47, 47]))
    q = (CENTRES - c) / np.array([6.0, 8.0, 12.0])
    ell = np.einsum("...i,...i->...", q, q) <= 1.0
    # The same set up to voxels on the ellipsoid's skin (face-distance of the single voxel).
    assert (out ^ ell).sum() <= 0.25 * ell.sum()
    assert out.sum() * GRID.voxel_volume_mm3 == pytest.approx(4 / 3 * np.pi * 6 * 8 * 12, rel=0.25)


def test_rotated_grid_isotropic_margin_and_per_axis_refused() -> None:
    a = np.deg2rad(30.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    g = GridGeometry((40, 96, 96), np.array([-30.0, -45.0, -48.75]), GRID.spacing_mm, rot)
    centre = g.index_to_world(np.array([47.3, 48.1, 19.6]))
    r = np.linalg.norm(g.voxel_centres_world() - centre, axis=-1)
    mask = r <= 10.0
    out = apply_patch(mask, expand(mask, g, 5.0))
    assert out.sum() * g.voxel_volume_mm3 == pytest.approx(4 / 3 * np.pi * 15.0**3, rel=0.05)
    assert r[out].max() <= 15.0 + SURFACE_TOL_MM
    with pytest.raises(InputError, match="rotated"):
        expand(mask, g, (5.0, 5.0, 2.5))


def test_axis_permuted_grid_takes_per_axis_margins_along_patient_axes() -> None:
    """A sagittal-like grid (index axes along y, z, x): the z margin still goes along LPS z."""
    direction = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])  # i->y, j->z, k->x
    g = GridGeometry((30, 30, 30), np.zeros(3), np.array([1.0, 2.0, 1.5]), direction)
    mask = np.zeros(g.shape_zyx, bool)
    mask[15, 15, 15] = True
    out = apply_patch(mask, expand(mask, g, (0.0, 0.0, 6.0)))
    pts = g.zyx_to_world(np.argwhere(out))
    c = g.zyx_to_world(np.array([15, 15, 15]))
    np.testing.assert_allclose(pts[:, :2], np.broadcast_to(c[:2], (len(pts), 2)))
    assert sorted(np.round(pts[:, 2] - c[2], 6).tolist()) == [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]


def test_refusals_name_the_problem() -> None:
    mask, _ = _sphere(5.0, np.zeros(3))
    with pytest.raises(InputError, match="below one voxel"):
        expand(mask, GRID, 0.5, name="GTV")
    with pytest.raises(InputError, match="GTV: margin must not be negative"):
        expand(mask, GRID, -2.0, name="GTV")
    with pytest.raises(InputError, match="zero"):
        shrink(mask, GRID, 0.0)
    with pytest.raises(InputError, match="empty"):
        expand(np.zeros(GRID.shape_zyx, bool), GRID, 3.0, name="PTV")
    with pytest.raises(InputError, match="does not match the CT grid"):
        expand(mask[:-1], GRID, 3.0)
    with pytest.raises(InputError, match="one number or three"):
        expand(mask, GRID, (1.0, 2.0))


def test_shrink_does_not_eat_in_from_the_scan_edge() -> None:
    """A structure cut by the first/last slice continues beyond it."""
    mask = np.zeros(GRID.shape_zyx, bool)
    mask[:, 30:60, 30:60] = True  # a column through every slice
    out = apply_patch(mask, shrink(mask, GRID, 2.4))
    assert out[0].sum() == out[-1].sum() == 24 * 24
    assert not out[:, 30:33].any()


def test_margins_and_booleans_make_a_ring() -> None:
    """expand(A) − A: the 5 mm shell of a sphere."""
    mask, r = _sphere(8.0, np.array([0.2, 0.1, -0.4]))
    grown = apply_patch(mask, expand(mask, GRID, 5.0))
    ring = apply_patch(grown, subtract(grown, GRID, mask))
    assert not np.any(ring & mask)
    np.testing.assert_array_equal(apply_patch(ring, union(ring, GRID, mask)), grown)
    assert r[ring].min() > 8.0 - SURFACE_TOL_MM and r[ring].max() <= 13.0 + SURFACE_TOL_MM


@pytest.mark.parametrize("margin", [5.0, (3.2, 0.0, 7.5)])
def test_large_masks_in_slabs_give_the_same_result(
    monkeypatch: pytest.MonkeyPatch, margin: float | tuple[float, float, float]
) -> None:
    """Big crops are processed in overlapping slabs along k (bounded memory): same voxels."""
    import planner.structures.margins as margins

    mask, _ = _sphere(14.0, np.array([0.4, -0.3, 0.8]))
    mask = _readonly(mask | _sphere(6.0, np.array([-20.0, 18.0, -30.0]))[0])
    grown = apply_patch(mask, expand(mask, GRID, margin))
    thin = apply_patch(mask, shrink(mask, GRID, margin))
    monkeypatch.setattr(margins, "_MAX_PIECE_VOXELS", 5 * 96 * 96)
    np.testing.assert_array_equal(apply_patch(mask, expand(mask, GRID, margin)), grown)
    np.testing.assert_array_equal(apply_patch(mask, shrink(mask, GRID, margin)), thin)
