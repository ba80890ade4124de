"""Iso-lines of a 2-D field as line segments: marching squares (no assembly).

For drawing, line segments are all a renderer needs (VTK takes them as they are); assembling
them into polylines (as ``skimage.measure.find_contours`` does, in Python) costs most of the
time. One numba pass over the field finds the segments of every level
(:mod:`dose.engine.kernels.isolines`):

    segs = iso_segments(values, level)                  # (S, 2, 2): S segments, 2 ends, (row, col)
    pts, counts = iso_segments_levels(values, levels)   # (2S, 3) ends, (L,) segments per level
    pts, counts = iso_segments_levels(values, levels, affine)   # ends mapped, e.g. to LPS mm

Each end lies on a pixel-centre grid edge where linear interpolation along that edge equals
``level`` (the same points ``find_contours`` returns). A saddle cell (two opposite corners
above the level) is resolved by the mean of its four corners: above the level, the two high
corners are joined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["RC_AFFINE", "iso_segments", "iso_segments_levels"]

#: The affine of :func:`iso_segments_levels` that writes an end as (row, col, 0).
RC_AFFINE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
RC_AFFINE.setflags(write=False)


def iso_segments_levels(
    values: NDArray[np.floating],
    levels: Sequence[float] | NDArray[np.float64],
    affine: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Segments of every level of a (rows, cols) field in one pass.

    Returns ``points`` (2S, 3), segment s from ``points[2s]`` to ``points[2s + 1]``, level by
    level in the order of ``levels`` (``counts[i]`` segments of level i), each end (row, col)
    written as ``affine @ (row, col, 1)`` (``affine`` (3, 3); default :data:`RC_AFFINE`:
    (row, col, 0))."""
    from dose.engine.kernels.isolines import CASE_EDGES, iso_segments_into

    v = np.ascontiguousarray(values, dtype=np.float64)
    lv = np.ascontiguousarray(levels, dtype=np.float64).reshape(-1)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        return np.zeros((0, 3)), np.zeros(len(lv), dtype=np.int64)
    m = RC_AFFINE if affine is None else np.ascontiguousarray(affine, dtype=np.float64)
    return iso_segments_into(v, lv, m, CASE_EDGES)


def iso_segments(values: NDArray[np.floating], level: float) -> NDArray[np.float64]:
    """Segments (S, 2, 2) of the iso-line ``values == level`` of a (rows, cols) field, in
    (row, col) pixel coordinates (module docstring). Empty (0, 2, 2) when there is none."""
    pts, _ = iso_segments_levels(values, [float(level)])
    return pts[:, :2].reshape(-1, 2, 2)
