"""Marching squares for several levels in one pass over a 2-D field (numba).

:func:`iso_segments_into` is the kernel behind :func:`planner.plan.isolines.iso_segments` and
the live isodose lines of the 2-D views: one pass over the cells of a (rows, cols) field finds
the segments of every level, grouped by level, each end mapped by an affine map of (row, col)
(so the GUI gets LPS mm without a second pass).

The rules (those of ``skimage.measure.find_contours``): corners are pixel centres; a corner is
"high" when its value ≥ the level; each segment end lies on a cell edge with one high and one
low corner, where the linear interpolation along that edge equals the level (t = (level − p) /
(q − p), clipped to [0, 1]; 0.5 if not finite). A saddle cell (two opposite high corners)
joins its high corners when the mean of its four corners is ≥ the level, else its low ones.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["CASE_EDGES", "iso_segments_into"]

# Edges of a cell with corners a=(r,c), b=(r,c+1), c=(r+1,c+1), d=(r+1,c):
# 0 top a-b, 1 right b-c, 2 bottom d-c, 3 left a-d. Case bits: a=1, b=2, c=4, d=8.
# CASE_EDGES[saddle_high, case, segment] = (edge, edge), -1: no segment.
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
_SADDLE_LOW = {5: ((3, 0), (1, 2)), 10: ((0, 1), (2, 3))}
_SADDLE_HIGH = {5: ((3, 2), (1, 0)), 10: ((0, 3), (2, 1))}


def _table() -> NDArray[np.int64]:
    t = np.full((2, 16, 2, 2), -1, dtype=np.int64)
    for h, saddle in enumerate((_SADDLE_LOW, _SADDLE_HIGH)):
        for k, pairs in {**_CASES, **saddle}.items():
            for i, pair in enumerate(pairs):
                t[h, k, i] = pair
    return t


CASE_EDGES = _table()


@njit(cache=True, nogil=True)
def _crossing(p: float, q: float, level: float) -> float:
    t = (level - p) / (q - p) if q != p else np.inf
    if not np.isfinite(t):
        return 0.5
    return min(max(t, 0.0), 1.0)


@njit(cache=True, nogil=True)
def _edge_point(e: int, r: int, c: int, va: float, vb: float, vc: float, vd: float, level: float):
    if e == 0:
        return float(r), c + _crossing(va, vb, level)
    if e == 1:
        return r + _crossing(vb, vc, level), float(c + 1)
    if e == 2:
        return float(r + 1), c + _crossing(vd, vc, level)
    return r + _crossing(va, vd, level), float(c)


@njit(cache=True, nogil=True)
def _case(va: float, vb: float, vc: float, vd: float, level: float) -> int:
    k = 0
    if va >= level:
        k |= 1
    if vb >= level:
        k |= 2
    if vc >= level:
        k |= 4
    if vd >= level:
        k |= 8
    return k


@njit(cache=True, nogil=True)
def iso_segments_into(
    v: NDArray[np.float64],
    levels: NDArray[np.float64],
    affine: NDArray[np.float64],
    table: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Segments of every level of ``v`` (rows, cols) in one pass (module docstring).

    levels : (L,) values; affine : (3, 3), an end (row, col) is written as
    ``affine[:, 0] * row + affine[:, 1] * col + affine[:, 2]``; table : :data:`CASE_EDGES`.
    Returns points (2S, 3) (segment s is points 2s, 2s + 1), level by level in the order of
    ``levels``, and counts (L,) segments per level."""
    rows, cols = v.shape
    n_lev = levels.shape[0]
    # Each pixel's band: how many levels are <= its value (branch-free, vectorised). A cell
    # crosses a level (one corner >= it, another below) exactly when its corners' bands differ.
    flat = v.ravel()
    band_flat = np.zeros(rows * cols, dtype=np.int32)
    for li in range(n_lev):
        level = levels[li]
        for p in range(rows * cols):
            band_flat[p] += np.int32(flat[p] >= level)
    band = band_flat.reshape((rows, cols))
    counts = np.zeros(n_lev, dtype=np.int64)
    cells = np.empty((rows - 1) * (cols - 1), dtype=np.int64)
    n_cells = 0
    for r in range(rows - 1):
        for c in range(cols - 1):
            b = band[r, c]
            if b == band[r, c + 1] and b == band[r + 1, c] and b == band[r + 1, c + 1]:
                continue
            cells[n_cells] = r * cols + c
            n_cells += 1
            va, vb, vc, vd = v[r, c], v[r, c + 1], v[r + 1, c + 1], v[r + 1, c]
            lo = min(min(va, vb), min(vc, vd))
            hi = max(max(va, vb), max(vc, vd))
            for li in range(n_lev):
                level = levels[li]
                if lo < level <= hi:
                    k = _case(va, vb, vc, vd, level)
                    counts[li] += 2 if (k == 5 or k == 10) else 1
    at = np.zeros(n_lev, dtype=np.int64)
    total = 0
    for li in range(n_lev):
        at[li] = total
        total += counts[li]
    out = np.empty((2 * total, 3), dtype=np.float64)
    for n in range(n_cells):
        r = cells[n] // cols
        c = cells[n] - r * cols
        va, vb, vc, vd = v[r, c], v[r, c + 1], v[r + 1, c + 1], v[r + 1, c]
        lo = min(min(va, vb), min(vc, vd))
        hi = max(max(va, vb), max(vc, vd))
        for li in range(n_lev):
            level = levels[li]
            if not (lo < level <= hi):
                continue
            k = _case(va, vb, vc, vd, level)
            h = 1 if 0.25 * (va + vb + vc + vd) >= level else 0
            for i in range(2):
                e0 = table[h, k, i, 0]
                if e0 < 0:
                    break
                e1 = table[h, k, i, 1]
                s = at[li]
                at[li] = s + 1
                for j in range(2):
                    pr, pc = _edge_point(e0 if j == 0 else e1, r, c, va, vb, vc, vd, level)
                    p = 2 * s + j
                    for d in range(3):
                        out[p, d] = affine[d, 0] * pr + affine[d, 1] * pc + affine[d, 2]
    return out, counts
