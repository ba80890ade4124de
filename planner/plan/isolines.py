"""Iso-lines of a 2-D field as line segments: vectorised marching squares (no assembly).

For drawing, line segments are all a renderer needs (VTK takes them as they are); assembling
them into polylines (as ``skimage.measure.find_contours`` does, in Python) costs most of the
time. :func:`iso_segments` returns every segment at once:

    segs = iso_segments(values, level)     # (S, 2, 2): S segments, 2 ends, (row, col)

Each end lies on a pixel-centre grid edge where linear interpolation along that edge equals
``level`` (the same points ``find_contours`` returns). A saddle cell (two opposite corners
above the level) is resolved by the mean of its four corners: above the level, the two high
corners are joined.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["iso_segments"]

# Edges of a cell with corners a=(r,c), b=(r,c+1), c=(r+1,c+1), d=(r+1,c):
# 0 top a-b, 1 right b-c, 2 bottom d-c, 3 left a-d.
# Case bits: a=1, b=2, c=4, d=8 (corner ≥ level). Segments per case (edge pairs, -1 = none).
_CASES: dict[int, tuple[tuple[int, int], ...]] = {
    1: ((3, 0),),
    2: ((0, 1),),
    3: ((3, 1),),
    4: ((1, 2),),
    6: ((0, 2),),
    7: ((3, 2),),
    8: ((2, 3),),
    9: ((2, 0),),
    11: ((2, 1),),
    12: ((1, 3),),
    13: ((1, 0),),
    14: ((0, 3),),
}
# Saddles: 5 (a, c high) and 10 (b, d high); a high centre joins the high corners' regions.
_SADDLE_LOW = {5: ((3, 0), (1, 2)), 10: ((0, 1), (2, 3))}
_SADDLE_HIGH = {5: ((3, 2), (1, 0)), 10: ((0, 3), (2, 1))}


def _table(saddle: dict[int, tuple[tuple[int, int], ...]]) -> NDArray[np.intp]:
    t = np.full((16, 2, 2), -1, dtype=np.intp)
    for k, pairs in {**_CASES, **saddle}.items():
        for i, pair in enumerate(pairs):
            t[k, i] = pair
    return t


_TABLE_LOW = _table(_SADDLE_LOW)
_TABLE_HIGH = _table(_SADDLE_HIGH)


def _crossing(p: NDArray, q: NDArray, level: float) -> NDArray[np.float64]:
    """Fraction t in [0, 1] along p → q where the linear interpolation equals ``level``."""
    denom = q - p  # never 0 on an active edge (one end ≥ level > the other)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (level - p) / denom
    return np.where(np.isfinite(t), np.clip(t, 0.0, 1.0), 0.5)


def iso_segments(values: NDArray[np.floating], level: float) -> NDArray[np.float64]:
    """Segments (S, 2, 2) of the iso-line ``values == level`` of a (rows, cols) field, in
    (row, col) pixel coordinates (module docstring). Empty (0, 2, 2) when there is none."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        return np.zeros((0, 2, 2))
    above = v >= level
    rows = np.flatnonzero(above.any(axis=1))
    if rows.size == 0:
        return np.zeros((0, 2, 2))
    cols = np.flatnonzero(above.any(axis=0))
    # Every cell with a corner above the level lies in the box of those pixels ± 1.
    r0, r1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, v.shape[0])
    c0, c1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, v.shape[1])
    if r1 - r0 < 2 or c1 - c0 < 2:
        return np.zeros((0, 2, 2))
    segs = _segments(v[r0:r1, c0:c1], above[r0:r1, c0:c1], level)
    segs[..., 0] += r0
    segs[..., 1] += c0
    return segs


def _segments(v: NDArray[np.float64], above: NDArray[np.bool_], level: float) -> NDArray:
    hi = above.astype(np.uint8)
    case = hi[:-1, :-1] | (hi[:-1, 1:] << 1) | (hi[1:, 1:] << 2) | (hi[1:, :-1] << 3)
    r, c = np.nonzero((case != 0) & (case != 15))
    if r.size == 0:
        return np.zeros((0, 2, 2))
    k = case[r, c]
    va, vb, vc, vd = v[r, c], v[r, c + 1], v[r + 1, c + 1], v[r + 1, c]
    rf, cf = r.astype(np.float64), c.astype(np.float64)
    pts = np.empty((r.size, 4, 2))
    pts[:, 0, 0], pts[:, 0, 1] = rf, cf + _crossing(va, vb, level)  # top
    pts[:, 1, 0], pts[:, 1, 1] = rf + _crossing(vb, vc, level), cf + 1.0  # right
    pts[:, 2, 0], pts[:, 2, 1] = rf + 1.0, cf + _crossing(vd, vc, level)  # bottom
    pts[:, 3, 0], pts[:, 3, 1] = rf + _crossing(va, vd, level), cf  # left
    high_centre = 0.25 * (va + vb + vc + vd) >= level
    edges = np.where(high_centre[:, None, None], _TABLE_HIGH[k], _TABLE_LOW[k])  # (n, 2, 2)
    out = []
    n = np.arange(r.size)
    for i in range(2):
        e = edges[:, i, :]
        ok = e[:, 0] >= 0
        if ok.any():
            out.append(np.stack([pts[n[ok], e[ok, 0]], pts[n[ok], e[ok, 1]]], axis=1))
    return np.concatenate(out, axis=0)
