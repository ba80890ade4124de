"""Incremental slice outlines (:func:`planner.structures.contours.update_slice_loops`): after
random brush-like edits the spliced loops equal a full :func:`slice_loops` of the new slice."""

from __future__ import annotations

import numpy as np
import pytest

from planner.structures.contours import canonical_loops, slice_loops, update_slice_loops


def _same(a, b) -> bool:
    ca, cb = canonical_loops(a), canonical_loops(b)
    if len(ca) != len(cb):
        return False
    return all(
        x.is_hole == y.is_hole
        and x.points_ij.shape == y.points_ij.shape
        and np.allclose(x.points_ij, y.points_ij, atol=1e-9)
        for x, y in zip(ca, cb, strict=True)
    )


def _disc_edit(rng, m, value):
    """Paint (value True) or erase a random disc, optionally noisy; returns the changed box."""
    ny, nx = m.shape
    r = int(rng.integers(1, 6))
    cy, cx = int(rng.integers(0, ny)), int(rng.integers(0, nx))
    box = (slice(max(cy - r, 0), min(cy + r + 1, ny)), slice(max(cx - r, 0), min(cx + r + 1, nx)))
    yy, xx = np.ogrid[box[0], box[1]]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if rng.random() < 0.3:  # ragged: saddles, single pixels, holes
        disc &= rng.random(disc.shape) < 0.6
    m[box][disc] = value
    return box


@pytest.mark.parametrize("seed", range(6))
def test_random_strokes_match_full_recompute(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ny, nx = 40, 50
    m = np.zeros((ny, nx), bool)
    m[10:30, 12:40] = True
    m[18:22, 20:24] = False  # a hole
    if seed % 2:
        m |= rng.random((ny, nx)) < 0.15  # speckle: many parts and saddle corners
    loops = slice_loops(m)
    for _ in range(60):
        box = _disc_edit(rng, m, bool(rng.random() < 0.6))
        loops = update_slice_loops(loops, m, box)
        assert _same(loops, slice_loops(m))


def test_edit_at_the_border_and_emptying() -> None:
    m = np.zeros((12, 12), bool)
    m[0:4, 0:4] = True
    m[8:12, 8:12] = True
    loops = slice_loops(m)
    m[0:4, 0:4] = False  # a part vanishes; the other is kept untouched
    loops = update_slice_loops(loops, m, (slice(0, 4), slice(0, 4)))
    assert _same(loops, slice_loops(m)) and len(loops) == 1
    m[4:8, 4:8] = True  # touches the kept part only at a corner: two separate loops
    loops = update_slice_loops(loops, m, (slice(4, 8), slice(4, 8)))
    assert _same(loops, slice_loops(m)) and len(loops) == 2
    m[:] = False
    assert update_slice_loops(loops, m, (slice(0, 12), slice(0, 12))) == []


def test_far_loop_kept_unchanged_and_bridge_merges() -> None:
    m = np.zeros((20, 30), bool)
    m[2:8, 2:8] = True
    m[2:8, 12:18] = True
    far = np.zeros_like(m)
    far[14:18, 24:28] = True
    m |= far
    loops = slice_loops(m)
    m[4:6, 8:12] = True  # a bridge: the two left parts become one loop
    new = update_slice_loops(loops, m, (slice(4, 6), slice(8, 12)))
    assert _same(new, slice_loops(m)) and len(new) == 2
    far_loop = next(lp for lp in loops if lp.points_ij[:, 0].min() > 20)
    assert any(lp is far_loop for lp in new)  # the untouched loop object is reused
