"""Booleans, islands and smoothing (planner.structures.booleans / islands / smoothing)."""

from __future__ import annotations

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.booleans import combine, intersect, subtract, union, xor
from planner.structures.islands import (
    island_volumes_mm3,
    keep_island_at,
    keep_largest_island,
    remove_small_islands,
)
from planner.structures.patch import apply_patch
from planner.structures.smoothing import fill_holes, footprint, smooth

GRID = GridGeometry.axis_aligned((24, 64, 64), (-25.2, -25.2, -30.0), (0.8, 0.8, 2.5))
W = GRID.voxel_centres_world()


def _ball(c: tuple[float, float, float], r: float) -> np.ndarray:
    return np.linalg.norm(W - np.asarray(c), axis=-1) <= r


def test_booleans_against_numpy() -> None:
    a, b, c = _ball((0, 0, 0), 8), _ball((5, 0, 0), 8), _ball((0, 6, 5), 5)
    for fn, ref in (
        (union, a | b | c),
        (intersect, a & b & c),
        (subtract, a & ~b & ~c),
        (xor, a ^ b ^ c),
    ):
        patch = fn(a, GRID, b, c)
        np.testing.assert_array_equal(apply_patch(a, patch), ref)
        box = patch[0]
        changed = np.argwhere(apply_patch(a, patch) != a)
        lo = np.array([s.start for s in box])
        hi = np.array([s.stop for s in box])
        assert np.all(changed >= lo) and np.all(changed < hi)
    # Nothing to change: the empty patch.
    assert union(a, GRID, a)[1].size == 0
    with pytest.raises(InputError, match="unknown boolean"):
        combine("minus", a, GRID, b)
    with pytest.raises(InputError, match="at least one other"):
        union(a, GRID)
    with pytest.raises(InputError, match="operand 1"):
        union(a, GRID, b[:-1])


def _three_islands() -> np.ndarray:
    m = _ball((-10, -10, 0), 6) | _ball((10, 10, 0), 4)
    m[12, 5, 5] = True  # a one-voxel speck
    return m


def test_islands() -> None:
    m = _three_islands()
    vols = island_volumes_mm3(m, GRID)
    assert len(vols) == 3
    assert vols[0] == pytest.approx(4 / 3 * np.pi * 6**3, rel=0.1)
    assert vols[-1] == pytest.approx(GRID.voxel_volume_mm3)
    np.testing.assert_array_equal(
        apply_patch(m, keep_largest_island(m, GRID)), _ball((-10, -10, 0), 6)
    )
    small = _ball((10, 10, 0), 4)
    np.testing.assert_array_equal(apply_patch(m, keep_island_at(m, GRID, (10.0, 10.0, 0.0))), small)
    cleaned = apply_patch(m, remove_small_islands(m, GRID, 10.0))
    speck = np.zeros(m.shape, bool)
    speck[12, 5, 5] = True
    np.testing.assert_array_equal(cleaned, m & ~speck)
    # A threshold between the two balls' volumes keeps only the large one.
    only_big = apply_patch(m, remove_small_islands(m, GRID, float(vols[1]) + 1.0))
    np.testing.assert_array_equal(only_big, _ball((-10, -10, 0), 6))


def test_island_connectivity() -> None:
    m = np.zeros(GRID.shape_zyx, bool)
    m[10, 10, 10] = m[11, 11, 11] = True  # corner neighbours only
    assert len(island_volumes_mm3(m, GRID, connectivity=1)) == 2
    assert len(island_volumes_mm3(m, GRID, connectivity=3)) == 1
    with pytest.raises(InputError, match="connectivity"):
        keep_largest_island(m, GRID, connectivity=4)
    with pytest.raises(InputError, match="not inside"):
        keep_island_at(m, GRID, (0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="outside the CT volume"):
        keep_island_at(m, GRID, (0.0, 0.0, 900.0))
    with pytest.raises(InputError, match="empty"):
        keep_largest_island(np.zeros(GRID.shape_zyx, bool), GRID)


def test_footprint_is_in_mm() -> None:
    fp = footprint(GRID, 5.0)
    # ±2.5 mm: 3 voxels each side in-plane (2.4 mm), one slice each side (2.5 mm).
    assert fp.shape == (3, 7, 7)
    assert fp[1, 3, 0] and fp[0, 3, 3] and not fp[0, 0, 0]
    with pytest.raises(InputError, match="below one voxel"):
        footprint(GRID, 1.0)


def test_smoothing_methods() -> None:
    ball = _ball((0.3, -0.2, 0.4), 9)
    rng = np.random.default_rng(7)
    noisy = ball.copy()
    flips = rng.random(ball.shape) < 0.02
    noisy[flips & (np.linalg.norm(W, axis=-1) < 14)] ^= True
    before = noisy.copy()
    med = apply_patch(noisy, smooth(noisy, GRID, method="median", kernel_mm=3.0))
    np.testing.assert_array_equal(noisy, before)
    assert (med ^ ball).sum() < 0.25 * (noisy ^ ball).sum()
    # Opening removes a thin spike; closing fills a narrow slot; both keep the ball's bulk.
    spiked = ball.copy()
    spiked[12, 32, 32:60] = True  # 1-voxel-thin spike along x
    opened = apply_patch(spiked, smooth(spiked, GRID, method="opening", kernel_mm=3.0))
    assert not opened[12, 32, 50:60].any()
    assert (opened ^ ball).sum() < 0.05 * ball.sum()
    slotted = ball & ~((np.abs(W[..., 1]) < 0.5) & (W[..., 0] > 0))  # a 0.8 mm slot
    closed = apply_patch(slotted, smooth(slotted, GRID, method="closing", kernel_mm=3.0))
    assert (closed ^ ball).sum() < 0.2 * (slotted ^ ball).sum()
    gauss = apply_patch(noisy, smooth(noisy, GRID, method="gaussian", kernel_mm=3.0))
    assert (gauss ^ ball).sum() < 0.5 * (noisy ^ ball).sum()
    with pytest.raises(InputError, match="unknown smoothing"):
        smooth(ball, GRID, method="mean")
    with pytest.raises(InputError, match="empty"):
        smooth(np.zeros(GRID.shape_zyx, bool), GRID)


def test_smoothing_keeps_a_structure_cut_by_the_scan_edge() -> None:
    col = np.zeros(GRID.shape_zyx, bool)
    col[:, 20:40, 20:40] = True
    for method in ("median", "opening", "closing", "gaussian"):
        out = apply_patch(col, smooth(col, GRID, method=method, kernel_mm=3.0))
        assert out[0].sum() == out[-1].sum() == out[12].sum(), method


def test_fill_holes() -> None:
    ring = _ball((0, 0, 0), 9) & ~_ball((0, 0, 0), 4)
    filled = apply_patch(ring, fill_holes(ring, GRID, per_slice=False))
    np.testing.assert_array_equal(filled, _ball((0, 0, 0), 9))
    tube = np.zeros(GRID.shape_zyx, bool)
    tube[:, 20:40, 20:40] = True
    tube[:, 25:35, 25:35] = False  # open at both ends: a 3-D fill leaves it, per slice fills
    assert fill_holes(tube, GRID, per_slice=False)[1].size == 0
    np.testing.assert_array_equal(apply_patch(tube, fill_holes(tube, GRID))[:, 20:40, 20:40], True)


def test_patch_helpers() -> None:
    from planner.structures.patch import (
        bounding_box,
        check_mask,
        empty_patch,
        grow_box,
        patch_from_change,
        point_index,
    )

    labels = np.zeros(GRID.shape_zyx, np.uint8)
    labels[3, 4, 5] = 2
    m = check_mask(labels, GRID)
    assert m.dtype == np.bool_ and m.sum() == 1
    with pytest.raises(InputError, match="boolean label mask"):
        check_mask(labels.astype(float), GRID)
    assert bounding_box(m) == (slice(3, 4), slice(4, 5), slice(5, 6))
    assert bounding_box(np.zeros(GRID.shape_zyx, bool)) is None
    assert grow_box(bounding_box(m), 4, GRID.shape_zyx) == (slice(0, 8), slice(0, 9), slice(1, 10))
    new = m.copy()
    new[10, 20, 30] = True
    box, values = patch_from_change(m, new)
    assert box == (slice(10, 11), slice(20, 21), slice(30, 31)) and values.tolist() == [[[True]]]
    np.testing.assert_array_equal(apply_patch(m, (box, values)), new)
    np.testing.assert_array_equal(apply_patch(m, empty_patch()), m)
    assert point_index(GRID, GRID.zyx_to_world(np.array([3.2, 4.4, 5.6]))) == (3, 4, 6)
    with pytest.raises(InputError, match="three finite"):
        point_index(GRID, (0.0, np.nan, 0.0))
