"""Labelmap → contours (planner.structures.contours): exact areas, holes, parts, diagonal
neighbours, single voxels, any direction matrix."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from dose.geometry import GridGeometry
from planner.dicom.rtstruct import _first_crossing
from planner.structures.contours import CORNER_CUT, slice_loops, structure_contours


def _rasterise_even_odd(loops, shape) -> np.ndarray:
    """Voxel centres inside the loops under the even-odd rule (what RT readers do)."""
    ny, nx = shape
    jj, ii = np.mgrid[0:ny, 0:nx]
    centres = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
    inside = np.zeros(ny * nx, dtype=bool)
    for loop in loops:
        inside ^= MplPath(loop).contains_points(centres)
    return inside.reshape(shape)


def _no_crossings(loops) -> bool:
    vx = np.ascontiguousarray(np.concatenate([p[:, 0] for p in loops]))
    vy = np.ascontiguousarray(np.concatenate([p[:, 1] for p in loops]))
    starts = np.cumsum([0] + [len(p) for p in loops]).astype(np.int64)
    return _first_crossing(vx, vy, starts) < 0


def test_square_with_hole_and_island():
    m = np.zeros((10, 10), bool)
    m[1:7, 1:7] = True
    m[3:5, 3:5] = False  # a 2×2 hole
    m[8, 8] = True  # a one-voxel island
    loops = slice_loops(m)
    holes = [lp for lp in loops if lp.is_hole]
    outers = [lp for lp in loops if not lp.is_hole]
    assert len(holes) == 1 and len(outers) == 2
    assert sum(lp.area_px for lp in loops) == pytest.approx(m.sum())
    assert holes[0].area_px == pytest.approx(-4.0)
    single = min(outers, key=lambda lp: lp.area_px)
    assert single.area_px == pytest.approx(1.0)
    assert sorted(map(tuple, single.points_ij)) == [(7.5, 7.5), (7.5, 8.5), (8.5, 7.5), (8.5, 8.5)]
    back = _rasterise_even_odd([lp.points_ij for lp in loops], m.shape)
    assert np.array_equal(back, m)


def test_vertices_on_voxel_edges_not_centres():
    m = np.zeros((6, 6), bool)
    m[2:4, 1:5] = True
    (loop,) = slice_loops(m)
    frac = np.abs(loop.points_ij - np.floor(loop.points_ij) - 0.5)
    assert np.all(frac < 1e-12)  # every vertex at a half-integer index
    assert len(loop.points_ij) == 4  # collinear vertices merged


def test_diagonal_neighbours_are_separate_and_do_not_touch():
    m = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], bool)
    loops = slice_loops(m)
    assert len(loops) == 3 and not any(lp.is_hole for lp in loops)
    pts = [lp.points_ij for lp in loops]
    assert _no_crossings(pts)
    # no two loops share a point
    for a in range(3):
        for b in range(a + 1, 3):
            d = np.linalg.norm(pts[a][:, None, :] - pts[b][None, :, :], axis=2)
            assert d.min() > CORNER_CUT
    assert sum(lp.area_px for lp in loops) == pytest.approx(3.0, abs=1e-3)


def test_checkerboard_and_random_masks_round_trip_exactly():
    rng = np.random.default_rng(7)
    masks = [np.indices((9, 11)).sum(axis=0) % 2 == 0]
    masks += [rng.random((17, 19)) < p for p in (0.2, 0.5, 0.8) for _ in range(5)]
    for m in masks:
        loops = slice_loops(m)
        assert all(len(lp.points_ij) >= 4 for lp in loops)
        assert sum(lp.area_px for lp in loops) == pytest.approx(m.sum(), abs=1e-3 * m.size)
        pts = [lp.points_ij for lp in loops]
        assert _no_crossings(pts)
        assert np.array_equal(_rasterise_even_odd(pts, m.shape), m)


def test_ring_nested_in_hole():
    """An island inside a hole inside a part: three nested contours, even-odd correct."""
    m = np.zeros((13, 13), bool)
    m[1:12, 1:12] = True
    m[3:10, 3:10] = False
    m[5:8, 5:8] = True
    loops = slice_loops(m)
    assert [lp.is_hole for lp in sorted(loops, key=lambda lp: -abs(lp.area_px))] == [
        False,
        True,
        False,
    ]
    assert np.array_equal(_rasterise_even_odd([lp.points_ij for lp in loops], m.shape), m)


@pytest.mark.parametrize("kind", ["axial", "oblique", "sagittal"])
def test_contours_lie_on_slice_planes_for_any_direction(kind):
    if kind == "axial":
        direction = np.eye(3)
    elif kind == "sagittal":  # rows along −z, columns along +y, slices along +x
        direction = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)
    else:
        c, s = np.cos(0.4), np.sin(0.4)
        direction = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array(
            [[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]]
        )
    g = GridGeometry((6, 14, 12), (5.0, -3.0, 20.0), (0.7, 0.9, 2.5), direction)
    m = np.zeros(g.shape_zyx, bool)
    m[1:5, 2:11, 3:9] = True
    m[2:4, 5:8, 5:7] = False  # a hole through two slices
    m[3, 12, 10] = True  # a single voxel
    cs = structure_contours(m, g)
    normal = g.direction[:, 2]
    for c in cs:
        # every point on its slice plane (to 1e-9 mm) and at the slice's index k
        k = g.world_to_index(c.points_mm)[:, 2]
        assert np.allclose(k, c.k, atol=1e-9)
        plane = c.points_mm @ normal
        assert np.ptp(plane) < 1e-9
    for k in range(g.shape_zyx[0]):
        loops = [g.world_to_index(c.points_mm)[:, :2] for c in cs if c.k == k]
        back = _rasterise_even_odd(loops, m.shape[1:]) if loops else np.zeros(m.shape[1:], bool)
        assert np.array_equal(back, m[k])


def test_box_offset_gives_the_same_contours_as_the_full_mask():
    g = GridGeometry.axis_aligned((5, 8, 9), (0, 0, 0), (1, 1, 2))
    m = np.zeros(g.shape_zyx, bool)
    m[1:4, 2:6, 3:7] = True
    full = structure_contours(m, g)
    box = (slice(1, 4), slice(2, 6), slice(3, 7))
    cropped = structure_contours(m[box], g, box=box)
    assert len(full) == len(cropped) == 3
    for a, b in zip(full, cropped, strict=True):
        assert a.k == b.k and np.allclose(a.points_mm, b.points_mm)


def test_empty_and_bad_input():
    assert slice_loops(np.zeros((4, 4), bool)) == []
    with pytest.raises(ValueError, match="2-D"):
        slice_loops(np.zeros((2, 2, 2), bool))
