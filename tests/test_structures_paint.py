"""Brush, eraser, threshold painting and polygon fill (planner.structures.paint), checked
voxel by voxel against the voxel centres' LPS positions from the grid itself."""

from __future__ import annotations

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.paint import brush, fill_polygon, stroke
from planner.structures.patch import apply_patch

GRID = GridGeometry.axis_aligned((20, 60, 64), (-25.0, -24.0, -25.0), (0.8, 0.8, 2.5))


def _rotated_grid() -> GridGeometry:
    a, b = np.deg2rad(25.0), np.deg2rad(-15.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    rx = np.array([[1.0, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return GridGeometry(
        (30, 50, 50), np.array([-20.0, -18.0, -30.0]), np.array([0.9, 0.9, 2.0]), rz @ rx
    )


def _empty(g: GridGeometry) -> np.ndarray:
    m = np.zeros(g.shape_zyx, bool)
    m.setflags(write=False)
    return m


def _check_patch(mask: np.ndarray, patch) -> np.ndarray:
    """Apply, checking the contract: box-shaped values, input untouched, no change outside."""
    before = mask.copy()
    box, values = patch
    assert values.dtype == np.bool_
    assert values.shape == tuple(s.stop - s.start for s in box)
    out = apply_patch(mask, patch)
    np.testing.assert_array_equal(mask, before)
    outside = np.ones(mask.shape, bool)
    outside[box] = False
    np.testing.assert_array_equal(out[outside], mask[outside])
    return out


@pytest.mark.parametrize("grid", [GRID, _rotated_grid()], ids=["axial", "rotated"])
def test_sphere_dab_paints_exactly_the_centres_within_the_radius(grid: GridGeometry) -> None:
    mask = _empty(grid)
    centre = grid.zyx_to_world(np.array([12.3, 24.6, 25.2]))
    out = _check_patch(mask, brush(mask, grid, centre, 6.0))
    dist = np.linalg.norm(grid.voxel_centres_world() - centre, axis=-1)
    np.testing.assert_array_equal(out, dist <= 6.0)
    assert out.sum() > 100


def test_disc_on_an_axial_view_paints_one_slice() -> None:
    mask = _empty(GRID)
    centre = GRID.zyx_to_world(np.array([7.0, 30.0, 31.0])) + np.array([0.1, 0.2, 0.4])
    out = _check_patch(mask, brush(mask, GRID, centre, 5.0, plane_normal=(0, 0, 1)))
    assert np.flatnonzero(out.any(axis=(1, 2))).tolist() == [7]
    w = GRID.voxel_centres_world()[7]
    np.testing.assert_array_equal(out[7], np.hypot(*(w[..., :2] - centre[:2]).T).T <= 5.0)
    # Area ≈ π r² (pixel counting, 0.64 mm² pixels).
    assert out.sum() * 0.64 == pytest.approx(np.pi * 25.0, rel=0.05)


def test_disc_on_a_sagittal_view_paints_one_column_plane() -> None:
    mask = _empty(GRID)
    centre = GRID.zyx_to_world(np.array([10.0, 30.0, 20.0]))
    out = _check_patch(mask, brush(mask, GRID, centre, 6.0, plane_normal=(1, 0, 0)))
    assert np.flatnonzero(out.any(axis=(0, 1))).tolist() == [20]
    # In the y-z plane the disc spans ±6 mm: ±2 slices of 2.5 mm, ±7 rows of 0.8 mm.
    ks = np.flatnonzero(out.any(axis=(1, 2)))
    js = np.flatnonzero(out.any(axis=(0, 2)))
    assert (ks[0], ks[-1]) == (8, 12) and (js[0], js[-1]) == (23, 37)


def test_disc_on_an_oblique_view_of_a_rotated_grid() -> None:
    g = _rotated_grid()
    mask = _empty(g)
    centre = g.zyx_to_world(np.array([15.0, 25.0, 25.0]))
    normal = np.array([0.0, 0.0, 1.0])  # an axial view: oblique to this grid
    out = _check_patch(mask, brush(mask, g, centre, 8.0, plane_normal=normal))
    rel = g.voxel_centres_world()[out] - centre
    assert np.all(np.linalg.norm(rel - np.outer(rel @ normal, normal), axis=1) <= 8.0 + 1e-9)
    half = 0.5 * np.sum(g.spacing_mm * np.abs(g.direction.T @ normal))
    assert np.all(np.abs(rel @ normal) <= half + 1e-9)
    # A slab one voxel thick holds about one voxel's worth per in-plane area.
    assert out.sum() * g.voxel_volume_mm3 == pytest.approx(np.pi * 64.0 * 2 * half, rel=0.15)


def test_eraser_and_threshold_limits() -> None:
    rng = np.random.default_rng(3)
    hu = rng.integers(-200, 400, GRID.shape_zyx).astype(np.int16)
    full = np.ones(GRID.shape_zyx, bool)
    centre = GRID.zyx_to_world(np.array([10.0, 30.0, 30.0]))
    dist = np.linalg.norm(GRID.voxel_centres_world() - centre, axis=-1)
    erased = _check_patch(full, brush(full, GRID, centre, 4.1, value=False))
    np.testing.assert_array_equal(erased, dist > 4.1)
    # Threshold-limited paint: only 0..100 HU inside the sphere.
    empty = _empty(GRID)
    out = _check_patch(empty, brush(empty, GRID, centre, 4.1, hu=hu, hu_range=(0, 100)))
    np.testing.assert_array_equal(out, (dist <= 4.1) & (hu >= 0) & (hu <= 100))
    # Editable area: paint only where another structure is not.
    other = np.zeros(GRID.shape_zyx, bool)
    other[:, :30] = True
    out = _check_patch(empty, brush(empty, GRID, centre, 4.1, editable=~other))
    np.testing.assert_array_equal(out, (dist <= 4.1) & ~other)


def test_stroke_leaves_no_gaps_between_mouse_events() -> None:
    mask = _empty(GRID)
    a = GRID.zyx_to_world(np.array([10.0, 10.0, 10.0]))
    b = GRID.zyx_to_world(np.array([10.0, 50.0, 54.0]))
    out = _check_patch(mask, stroke(mask, GRID, np.stack([a, b]), 2.0, plane_normal=(0, 0, 1)))
    w = GRID.voxel_centres_world()[10, :, :, :2]
    t = np.clip(((w - a[:2]) @ (b - a)[:2]) / np.sum((b - a)[:2] ** 2), 0, 1)
    d = np.linalg.norm(w - (a[:2] + t[..., None] * (b - a)[:2]), axis=-1)
    np.testing.assert_array_equal(out[10], d <= 2.0)
    assert out.sum() == out[10].sum()


def test_brush_outside_the_volume_changes_nothing_and_bad_values_are_refused() -> None:
    mask = _empty(GRID)
    _, values = brush(mask, GRID, (500.0, 0.0, 0.0), 5.0)
    assert values.size == 0
    with pytest.raises(InputError, match="radius_mm must be positive"):
        brush(mask, GRID, (0.0, 0.0, 0.0), -1.0)
    with pytest.raises(InputError, match="does not match the CT grid"):
        brush(np.zeros((3, 3, 3), bool), GRID, (0.0, 0.0, 0.0), 2.0)
    with pytest.raises(InputError, match="hu_range"):
        brush(mask, GRID, (0.0, 0.0, 0.0), 2.0, hu=np.zeros(GRID.shape_zyx), hu_range=(100, 0))
    with pytest.raises(InputError, match="both"):
        brush(mask, GRID, (0.0, 0.0, 0.0), 2.0, hu_range=(0, 100))
    with pytest.raises(InputError, match="plane_normal"):
        brush(mask, GRID, (0.0, 0.0, 0.0), 2.0, plane_normal=(0, 0, 0))


def test_polygon_fill_on_an_axial_slice() -> None:
    mask = _empty(GRID)
    z = GRID.zyx_to_world(np.array([6.0, 0.0, 0.0]))[2]
    square = np.array([[-8.1, -6.1, z], [7.9, -6.1, z], [7.9, 9.9, z], [-8.1, 9.9, z]])
    out = _check_patch(mask, fill_polygon(mask, GRID, square, plane_normal=(0, 0, 1)))
    w = GRID.voxel_centres_world()[6]
    inside = (w[..., 0] > -8.1) & (w[..., 0] < 7.9) & (w[..., 1] > -6.1) & (w[..., 1] < 9.9)
    np.testing.assert_array_equal(out[6], inside)
    assert out.sum() == inside.sum() == 20 * 20
    # The normal is found from the vertices when not given.
    np.testing.assert_array_equal(apply_patch(mask, fill_polygon(mask, GRID, square)), out)
    # Clearing a triangle out of it (value=False) removes exactly the triangle's centres.
    tri = np.array([[-8.1, -6.1, z], [7.9, -6.1, z], [-8.1, 9.9, z]])
    cut = _check_patch(out, fill_polygon(out, GRID, tri, value=False))
    x, y = w[..., 0] + 8.1, w[..., 1] + 6.1
    in_tri = (x > 0) & (y > 0) & (x / 16.0 + y / 16.0 < 1.0)
    np.testing.assert_array_equal(cut[6], inside & ~in_tri)


def test_freehand_loop_on_a_coronal_view_and_refusals() -> None:
    mask = _empty(GRID)
    y = GRID.zyx_to_world(np.array([0.0, 30.0, 0.0]))[1]
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    loop = np.stack([10 * np.cos(t), np.full_like(t, y), 12 * np.sin(t)], axis=1)
    out = _check_patch(mask, fill_polygon(mask, GRID, loop))
    assert np.flatnonzero(out.any(axis=(0, 2))).tolist() == [30]
    w = GRID.voxel_centres_world()[:, 30]
    ell = (w[..., 0] / 10) ** 2 + (w[..., 2] / 12) ** 2 < 0.99
    assert np.all(out[:, 30][ell])
    assert out.sum() * 0.8 * 2.5 == pytest.approx(np.pi * 120, rel=0.1)
    bent = loop.copy()
    bent[0, 1] += 5.0
    with pytest.raises(InputError, match="off their plane"):
        fill_polygon(mask, GRID, bent)
    with pytest.raises(InputError, match="collinear"):
        fill_polygon(mask, GRID, [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    with pytest.raises(InputError, match="at least 3"):
        fill_polygon(mask, GRID, [[0, 0, 0], [1, 0, 0]])
