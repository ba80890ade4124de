"""Labelmap → closed planar contours on the CT slices (for RTSTRUCT export and display).

Public API
----------
``slice_loops(mask2d) -> list[SliceLoop]``
    The outlines of one ``(y, x)`` bool slice, in continuous index coordinates ``(i, j)``.
``update_slice_loops(loops, mask2d, changed) -> list[SliceLoop]``
    The outlines after an edit confined to the pixel box ``changed``, from the loops before it:
    only the loops the edit's box (padded by one pixel) reaches are traced again, from a crop
    of the slice; equal to ``slice_loops(mask2d)`` up to the order of the loops and the vertex
    each loop starts at (:func:`canonical_loops`).
``structure_contours(mask, geometry, *, box=None) -> list[PlanarContour]``
    Every slice of a ``(z, y, x)`` labelmap on ``geometry`` (any direction matrix) as closed
    planar contours in LPS mm, on the slice planes (z = k exactly).

The outline rule (stated once)
------------------------------
Each contour is the exact boundary of the union of the inside voxels' squares on its slice: its
vertices lie on voxel *edges* (half-integer indices), never on voxel centres, so the enclosed
area is the voxel count × pixel area and a reader that extrudes each slice's contours over the
slice thickness (½-slice end caps, :mod:`planner.structures.rasterise`) gets back the structure's
voxel-count volume, and a centre-inclusion reader gets back the exact voxels (no centre lies on
an edge). Voxel-centre outlines (marching squares at 0.5) would shrink every structure by
half a voxel row (a 1-voxel part to half its area).

* **Several parts and holes.** Every connected piece of the inside is its own outer contour
  (counter-clockwise in (i, j)), every hole its own inner contour (clockwise); readers combine the
  contours of a plane with the even-odd rule (the DICOM convention for nested contours).
* **Diagonal neighbours.** Inside voxels touching only at a corner are separate parts
  (4-connected inside, 8-connected holes). So that no two contours share a point (readers refuse
  touching or crossing contours), each such corner is cut by :data:`CORNER_CUT` pixels (an area
  change of ``CORNER_CUT²`` pixel per corner, < 1e-4 of a voxel).
* **No degenerate contours.** Collinear vertices are merged; every contour has ≥ 4 vertices and
  a positive area (a single voxel is its square). No 2-point contour is ever produced.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry

__all__ = [
    "CORNER_CUT",
    "PlanarContour",
    "SliceLoop",
    "canonical_loops",
    "slice_loops",
    "structure_contours",
    "update_slice_loops",
]

#: How far (pixels) each contour vertex at a diagonal (saddle) corner is cut back.
CORNER_CUT = 0.01

# Edge directions in (i, j) = (x, y) index coordinates: +i, +j, −i, −j. A left turn is +1.
_DIRS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


@dataclass(frozen=True)
class SliceLoop:
    """One closed outline of a slice: ``points_ij`` (n, 2) float64 continuous (i, j) index
    coordinates (column, row), not repeated at the end; ``is_hole`` for inner contours."""

    points_ij: NDArray[np.float64]
    is_hole: bool

    @property
    def area_px(self) -> float:
        """Signed area (pixels; > 0 outer, < 0 hole) by the shoelace formula."""
        x, y = self.points_ij[:, 0], self.points_ij[:, 1]
        return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@dataclass(frozen=True)
class PlanarContour:
    """A closed planar contour of a structure on CT slice ``k``: ``points_mm`` (n, 3) LPS mm."""

    k: int
    points_mm: NDArray[np.float64]
    is_hole: bool


@numba.njit(cache=True)
def _next_edges(start: np.ndarray, direction: np.ndarray, end: np.ndarray, lookup: np.ndarray):
    """next[e]: the edge leaving e's end vertex, preferring a left turn, then straight, then a
    right turn (a left turn at a saddle keeps diagonal inside pixels apart)."""
    n = start.shape[0]
    nxt = np.full(n, -1, np.int64)
    for e in range(n):
        v = end[e]
        d = direction[e]
        for turn in (1, 0, 3):
            cand = lookup[v * 4 + (d + turn) % 4]
            if cand >= 0:
                nxt[e] = cand
                break
    return nxt


@numba.njit(cache=True)
def _cycles(nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges in cycle order (flat) and the start of each cycle (with a final end index)."""
    n = nxt.shape[0]
    seen = np.zeros(n, np.bool_)
    order = np.empty(n, np.int64)
    starts = np.empty(n + 1, np.int64)
    pos = 0
    n_cycles = 0
    for e0 in range(n):
        if seen[e0]:
            continue
        starts[n_cycles] = pos
        n_cycles += 1
        e = e0
        while not seen[e]:
            seen[e] = True
            order[pos] = e
            pos += 1
            e = nxt[e]
    starts[n_cycles] = pos
    return order, starts[: n_cycles + 1]


def slice_loops(mask2d: NDArray[np.bool_]) -> list[SliceLoop]:
    """Outlines of one ``(ny, nx)`` bool slice (module docstring), in (i, j) index coordinates
    (pixel ``[j, i]`` covers i ± 0.5, j ± 0.5)."""
    m = np.asarray(mask2d, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a slice mask must be 2-D (y, x), got shape {m.shape}")
    if not m.any():
        return []
    ny, nx = m.shape
    p = np.zeros((ny + 2, nx + 2), dtype=bool)
    p[1:-1, 1:-1] = m
    width = nx + 3  # corner lattice: corner (R, C) at index (i, j) = (C − 1.5, R − 1.5)
    inside = p[1:-1, 1:-1]
    r, c = np.nonzero(inside)
    r = r + 1
    c = c + 1
    starts: list[NDArray[np.int64]] = []
    dirs: list[NDArray[np.int64]] = []
    # Counter-clockwise around each inside pixel in (i, j): bottom (+i), right (+j), top (−i),
    # left (−j); an edge is kept where the neighbour across it is outside.
    for d, (dr, dc), (sr, sc) in (
        (0, (-1, 0), (0, 0)),
        (1, (0, 1), (0, 1)),
        (2, (1, 0), (1, 1)),
        (3, (0, -1), (1, 0)),
    ):
        keep = ~p[r + dr, c + dc]
        starts.append((r[keep] + sr) * width + (c[keep] + sc))
        dirs.append(np.full(int(keep.sum()), d, np.int64))
    start = np.concatenate(starts).astype(np.int64)
    direction = np.concatenate(dirs)
    step = _DIRS[direction]
    end = start + step[:, 1] * width + step[:, 0]
    lookup = np.full((ny + 3) * width * 4, -1, np.int64)
    lookup[start * 4 + direction] = np.arange(start.size)
    nxt = _next_edges(start, direction, end, lookup)
    order, bounds = _cycles(nxt)
    loops: list[SliceLoop] = []
    for a, b in itertools.pairwise(bounds):
        edges = order[a:b]
        d_in = direction[edges]
        d_prev = np.roll(d_in, 1)
        corner = d_in != d_prev  # a vertex where the outline turns
        v = start[edges][corner]
        pts = np.stack([v % width - 1.5, v // width - 1.5], axis=1).astype(np.float64)
        d_out = d_in[corner]
        d_before = d_prev[corner]
        # A saddle vertex: the lattice point has two outgoing edges (another loop uses it too).
        two_out = (lookup[v * 4 + (d_before + 3) % 4] >= 0) & ((d_out - d_before) % 4 == 1)
        if np.any(two_out):
            pts = _cut_corners(pts, two_out, _DIRS[d_before], _DIRS[d_out])
        x, y = pts[:, 0], pts[:, 1]
        area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        loops.append(SliceLoop(pts, is_hole=area < 0))
    return loops


def _touches(loop: SliceLoop, x0: float, x1: float, y0: float, y1: float) -> bool:
    """True when a segment of ``loop`` meets the box ``[x0, x1] × [y0, y1]`` (index coords; the
    segments are axis-parallel but for the tiny corner cuts, so their boxes are exact)."""
    p = loop.points_ij
    q = np.roll(p, -1, axis=0)
    lo = np.minimum(p, q)
    hi = np.maximum(p, q)
    tol = 0.05  # > CORNER_CUT: a cut corner of a lattice vertex on the box's edge counts
    return bool(
        np.any(
            (hi[:, 0] >= x0 - tol)
            & (lo[:, 0] <= x1 + tol)
            & (hi[:, 1] >= y0 - tol)
            & (lo[:, 1] <= y1 + tol)
        )
    )


def update_slice_loops(
    loops: list[SliceLoop], mask2d: NDArray[np.bool_], changed: tuple[slice, slice]
) -> list[SliceLoop]:
    """The outlines of the ``(ny, nx)`` slice ``mask2d`` (as :func:`slice_loops`), given its
    ``loops`` before an edit that changed pixels only inside ``changed`` (row, column slices).

    Why it is exact: the outline edges at a lattice vertex depend only on the four pixels
    around it, so a loop with no segment in ``Q`` (the corners of the changed box grown by one
    pixel) is a loop before and after the edit; a loop after the edit that meets ``Q`` follows,
    outside ``Q``, loops of before that met ``Q``. So the loops meeting ``Q`` are traced again
    from a crop covering ``Q`` and those loops (plus one pixel), the others are kept.
    Order and start vertex may differ from a full :func:`slice_loops` (:func:`canonical_loops`).
    """
    m = np.asarray(mask2d, dtype=bool)
    ny, nx = m.shape
    r0, r1 = int(changed[0].start or 0), int(ny if changed[0].stop is None else changed[0].stop)
    c0, c1 = int(changed[1].start or 0), int(nx if changed[1].stop is None else changed[1].stop)
    if r1 <= r0 or c1 <= c0:
        return list(loops)
    # Q: lattice vertices of the changed pixels grown by one pixel, in (i, j) index coords.
    qx0, qx1, qy0, qy1 = c0 - 1.5, c1 + 0.5, r0 - 1.5, r1 + 0.5
    kept: list[SliceLoop] = []
    lo_x, hi_x, lo_y, hi_y = qx0, qx1, qy0, qy1
    for loop in loops:
        if _touches(loop, qx0, qx1, qy0, qy1):
            p = loop.points_ij
            lo_x, hi_x = min(lo_x, float(p[:, 0].min())), max(hi_x, float(p[:, 0].max()))
            lo_y, hi_y = min(lo_y, float(p[:, 1].min())), max(hi_y, float(p[:, 1].max()))
        else:
            kept.append(loop)
    # The crop holds the four pixels around every vertex of Q and of the loops traced again.
    ra, rb = max(int(np.floor(lo_y)), 0), min(int(np.ceil(hi_y)), ny - 1)
    ca, cb = max(int(np.floor(lo_x)), 0), min(int(np.ceil(hi_x)), nx - 1)
    shift = np.array([ca, ra], dtype=np.float64)
    for loop in slice_loops(m[ra : rb + 1, ca : cb + 1]):
        moved = SliceLoop(loop.points_ij + shift, loop.is_hole)
        if _touches(moved, qx0, qx1, qy0, qy1):
            kept.append(moved)
    return kept


def canonical_loops(loops: list[SliceLoop]) -> list[SliceLoop]:
    """``loops`` each started at its lexicographically smallest vertex, sorted by that vertex
    (two outlines of one slice compare equal whatever order they were traced in)."""
    out = []
    for loop in loops:
        p = loop.points_ij
        first = int(np.lexsort((np.round(p[:, 1], 6), np.round(p[:, 0], 6)))[0])
        out.append(SliceLoop(np.roll(p, -first, axis=0), loop.is_hole))
    out.sort(key=lambda lp: (round(lp.points_ij[0, 0], 6), round(lp.points_ij[0, 1], 6)))
    return out


def _cut_corners(
    pts: NDArray[np.float64],
    cut: NDArray[np.bool_],
    d_in: NDArray[np.int64],
    d_out: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Replace each vertex flagged in ``cut`` by two: CORNER_CUT back along the incoming and
    forward along the outgoing edge (so two loops never share a point)."""
    out: list[NDArray[np.float64]] = []
    for n in range(pts.shape[0]):
        if cut[n]:
            out.append(pts[n] - CORNER_CUT * d_in[n])
            out.append(pts[n] + CORNER_CUT * d_out[n])
        else:
            out.append(pts[n])
    return np.asarray(out, dtype=np.float64)


def structure_contours(
    mask: NDArray[np.bool_],
    geometry: GridGeometry,
    *,
    box: tuple[slice, slice, slice] | None = None,
) -> list[PlanarContour]:
    """Closed planar contours (LPS mm) of a ``(z, y, x)`` labelmap on ``geometry``, slice by
    slice (k ascending). ``box``: optional (z, y, x) slices on the grid holding every inside
    voxel (``mask`` is then the crop of that box), to skip empty space."""
    m = np.asarray(mask, dtype=bool)
    if box is None:
        if tuple(m.shape) != geometry.shape_zyx:
            raise ValueError(f"mask shape {m.shape} is not the grid {geometry.shape_zyx}")
        k0 = j0 = i0 = 0
    else:
        k0, j0, i0 = (int(s.start or 0) for s in box)
    out: list[PlanarContour] = []
    for kk in range(m.shape[0]):
        sl = m[kk]
        if not sl.any():
            continue
        for loop in slice_loops(sl):
            n = loop.points_ij.shape[0]
            ijk = np.empty((n, 3), dtype=np.float64)
            ijk[:, 0] = loop.points_ij[:, 0] + i0
            ijk[:, 1] = loop.points_ij[:, 1] + j0
            ijk[:, 2] = kk + k0
            out.append(PlanarContour(kk + k0, geometry.index_to_world(ijk), loop.is_hole))
    return out
