"""Brush, eraser, threshold-limited painting and polygon/freehand fill on a label mask.

All functions follow the patch contract of :mod:`planner.structures.patch`: they read the mask
(bool ``(z, y, x)`` on the CT grid), never modify it, and return ``(box, new_values)`` covering
only the voxels the tool can reach. Positions are LPS mm and go through the grid's own
index↔world conversion, so rotated grids (non-identity direction) paint where the user clicked.

A voxel is painted when its **centre** lies inside the tool's shape:

* sphere (3-D brush): within ``radius_mm`` of the centre (or of the stroke's path);
* disc (2-D brush on a view): within ``radius_mm`` in the view plane and inside the one-voxel
  slab around the plane — ``-t < d <= t`` with ``t`` half the voxel's extent along the plane
  normal, so on an axial view of an axial CT exactly one slice is painted;
* polygon / freehand: inside the closed polygon, in the same one-voxel slab.

Optional limits (Slicer's "editable area / intensity range"): ``hu`` + ``hu_range`` paint only
voxels whose HU is within ``[lo, hi]``; ``editable`` (a bool mask) only voxels where it is True.
Limits apply to erasing too (``value=False``).
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.patch import (
    Box,
    Patch,
    bounding_box,
    check_mask,
    check_positive_mm,
    empty_patch,
)

__all__ = ["brush", "fill_polygon", "stroke"]


def _unit(v: ArrayLike, what: str) -> NDArray[np.float64]:
    n = np.asarray(v, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(n)) if n.size == 3 else 0.0
    if n.size != 3 or not np.isfinite(norm) or norm < 1e-9:
        raise InputError(f"{what} must be a non-zero LPS vector of 3 numbers, got {v!r}")
    return n / norm


def _points(points_mm: ArrayLike, what: str, min_count: int = 1) -> NDArray[np.float64]:
    p = np.asarray(points_mm, dtype=np.float64)
    if p.ndim == 1:
        p = p.reshape(1, -1)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < min_count or not np.all(np.isfinite(p)):
        raise InputError(
            f"{what} must be at least {min_count} finite LPS point(s) (n, 3) in mm, "
            f"got shape {np.shape(points_mm)}"
        )
    return p


def _half_slab_mm(geometry: GridGeometry, normal: NDArray[np.float64]) -> float:
    """Half the extent of one voxel along ``normal`` (mm)."""
    return 0.5 * float(np.sum(geometry.spacing_mm * np.abs(geometry.direction.T @ normal)))


def _box_around(
    geometry: GridGeometry,
    points_mm: NDArray[np.float64],
    reach_mm: float,
    normal: NDArray[np.float64] | None = None,
) -> Box:
    """Index box (z, y, x) holding every voxel centre within ``reach_mm`` of the points (or,
    with ``normal``, of a disc of that radius in the plane: its one-voxel slab)."""
    kji = geometry.world_to_zyx(points_mm)  # (n, 3)
    if normal is None:
        reach_ijk = np.full(3, reach_mm)  # a sphere is an axis-aligned ellipsoid in index space
    else:
        cos = np.abs(geometry.direction.T @ normal)  # (i, j, k) axes against the normal
        t = _half_slab_mm(geometry, normal)
        reach_ijk = reach_mm * np.sqrt(np.maximum(0.0, 1.0 - cos**2)) + t * cos
    half = reach_ijk[::-1] / geometry.spacing_mm[::-1]
    lo = np.floor(kji.min(axis=0) - half - 1e-9).astype(np.int64)
    hi = np.ceil(kji.max(axis=0) + half + 1e-9).astype(np.int64) + 1
    shape = np.asarray(geometry.shape_zyx)
    lo = np.clip(lo, 0, shape)
    hi = np.clip(hi, 0, shape)
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def _box_world(geometry: GridGeometry, box: Box) -> NDArray[np.float64]:
    """LPS mm of the voxel centres in ``box``, shape ``(nz, ny, nx, 3)``."""
    k, j, i = np.meshgrid(
        np.arange(box[0].start, box[0].stop),
        np.arange(box[1].start, box[1].stop),
        np.arange(box[2].start, box[2].stop),
        indexing="ij",
    )
    return geometry.zyx_to_world(np.stack([k, j, i], axis=-1))


def _limits(
    box: Box,
    geometry: GridGeometry,
    hu: ArrayLike | None,
    hu_range: tuple[float, float] | None,
    editable: ArrayLike | None,
) -> NDArray[np.bool_] | None:
    """Where in ``box`` the tool may change voxels (None = everywhere)."""
    allowed: NDArray[np.bool_] | None = None
    if (hu is None) != (hu_range is None):
        raise InputError("threshold painting needs both the CT (hu) and hu_range=(low, high)")
    if hu is not None and hu_range is not None:
        hu_arr = np.asarray(hu)
        if hu_arr.shape != tuple(geometry.shape_zyx):
            raise InputError(
                f"hu: shape {hu_arr.shape} does not match the CT grid {geometry.shape_zyx}"
            )
        lo, hi = (float(v) for v in hu_range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise InputError(f"hu_range must be (low, high) HU with low <= high, got {hu_range}")
        sub = hu_arr[box]
        allowed = (sub >= lo) & (sub <= hi)
    if editable is not None:
        ed = check_mask(editable, geometry, "editable area")[box]
        allowed = ed if allowed is None else allowed & ed
    return allowed


def _finish(
    mask: NDArray[np.bool_],
    box: Box,
    shape: NDArray[np.bool_],
    value: bool,
    allowed: NDArray[np.bool_] | None,
) -> Patch:
    if allowed is not None:
        shape = shape & allowed
    tight = bounding_box(shape)  # crop to the tool's footprint (a smaller undo record)
    if tight is None:
        return empty_patch()
    shape = shape[tight]
    box = tuple(slice(b.start + t.start, b.start + t.stop) for b, t in zip(box, tight, strict=True))  # type: ignore[assignment]
    new = mask[box].copy()
    new[shape] = bool(value)
    return box, new


def _segment_distance_mm(
    w: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Distance (mm) from points ``w`` (..., 3) to the segment [a, b]."""
    ab = b - a
    denom = float(ab @ ab)
    rel = w - a
    if denom < 1e-18:
        return np.sqrt(np.einsum("...i,...i->...", rel, rel))
    t = np.clip((rel @ ab) / denom, 0.0, 1.0)
    d = rel - t[..., None] * ab
    return np.sqrt(np.einsum("...i,...i->...", d, d))


def stroke(
    mask: ArrayLike,
    geometry: GridGeometry,
    path_mm: ArrayLike,
    radius_mm: float,
    *,
    value: bool = True,
    plane_normal: ArrayLike | None = None,
    hu: ArrayLike | None = None,
    hu_range: tuple[float, float] | None = None,
    editable: ArrayLike | None = None,
) -> Patch:
    """Paint (``value=True``) or erase along a mouse path: the union of capsules of
    ``radius_mm`` around the segments between consecutive points, so a fast drag leaves no gaps.

    Parameters
    ----------
    mask : (z, y, x) bool ndarray, read only
    geometry : GridGeometry of the CT grid
    path_mm : (n, 3) or (3,) float, LPS mm; one point is a single dab
    radius_mm : brush radius, mm (> 0)
    plane_normal : (3,) LPS vector of the view's normal for a 2-D disc brush on that view (the
        disc lies in the plane through the first point); None paints 3-D spheres
    hu, hu_range : CT HU (z, y, x) and ``(low, high)`` HU: only voxels inside the window change
    editable : (z, y, x) bool: only voxels where it is True change

    Returns
    -------
    Patch ``(box, new_values)``; an empty patch when the brush is entirely outside the grid.
    """
    m = check_mask(mask, geometry)
    r = check_positive_mm(radius_mm, "brush radius_mm")
    path = _points(path_mm, "brush path")
    normal = None if plane_normal is None else _unit(plane_normal, "plane_normal")
    if normal is not None:  # project the path into the plane through its first point
        path = path - np.outer((path - path[0]) @ normal, normal)
    box = _box_around(geometry, path, r, normal)
    if any(s.stop <= s.start for s in box):
        return empty_patch()
    w = _box_world(geometry, box)
    if len(path) == 1:
        path = np.vstack([path, path])
    if normal is not None:
        # Project the path into the plane through its first point; measure distance in-plane.
        rel0 = w - path[0]
        off = rel0 @ normal
        t = _half_slab_mm(geometry, normal)
        in_slab = (off > -t) & (off <= t)
        w = w - off[..., None] * normal
    else:
        in_slab = None
    r2 = r * r
    shape = np.zeros(w.shape[:3], dtype=bool)
    for a, b in itertools.pairwise(path):
        shape |= _segment_distance_mm(w, a, b) ** 2 <= r2 * (1 + 1e-12)
    if in_slab is not None:
        shape &= in_slab
    return _finish(m, box, shape, value, _limits(box, geometry, hu, hu_range, editable))


def brush(
    mask: ArrayLike,
    geometry: GridGeometry,
    centre_mm: ArrayLike,
    radius_mm: float,
    *,
    value: bool = True,
    plane_normal: ArrayLike | None = None,
    hu: ArrayLike | None = None,
    hu_range: tuple[float, float] | None = None,
    editable: ArrayLike | None = None,
) -> Patch:
    """One brush dab (``value=False``: eraser) at ``centre_mm`` (LPS mm): a sphere, or a disc
    in the view plane when ``plane_normal`` is given. See :func:`stroke` for the options."""
    return stroke(
        mask,
        geometry,
        _points(centre_mm, "brush centre"),
        radius_mm,
        value=value,
        plane_normal=plane_normal,
        hu=hu,
        hu_range=hu_range,
        editable=editable,
    )


def _points_in_polygon(uv: NDArray[np.float64], poly: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Even-odd rule: which 2-D points ``uv`` (m, 2) lie inside the polygon ``poly`` (n, 2)."""
    x, y = uv[:, 0], uv[:, 1]
    inside = np.zeros(len(uv), dtype=bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < x_cross)
        xj, yj = xi, yi
    return inside


def fill_polygon(
    mask: ArrayLike,
    geometry: GridGeometry,
    vertices_mm: ArrayLike,
    *,
    value: bool = True,
    plane_normal: ArrayLike | None = None,
    hu: ArrayLike | None = None,
    hu_range: tuple[float, float] | None = None,
    editable: ArrayLike | None = None,
) -> Patch:
    """Fill (or with ``value=False`` clear) a closed polygon or freehand loop drawn on a view.

    Parameters
    ----------
    vertices_mm : (n, 3) float, LPS mm, n >= 3; the loop is closed automatically. The vertices
        must lie in one plane (the view's), to within half a voxel.
    plane_normal : (3,) LPS normal of the view; None fits the plane to the vertices.

    Returns
    -------
    Patch over the polygon's bounding box within the one-voxel slab of the plane.
    """
    m = check_mask(mask, geometry)
    verts = _points(vertices_mm, "polygon", min_count=3)
    centre = verts.mean(axis=0)
    if plane_normal is None:
        _, sv, vt = np.linalg.svd(verts - centre)
        if sv[1] < 1e-6 * max(1.0, sv[0]):
            raise InputError("polygon: the vertices are collinear (no area to fill)")
        normal = vt[2]
    else:
        normal = _unit(plane_normal, "plane_normal")
    t = _half_slab_mm(geometry, normal)
    off_v = (verts - centre) @ normal
    if np.max(np.abs(off_v)) > t + 1e-6:
        raise InputError(
            f"polygon: vertices are up to {np.max(np.abs(off_v)):.2f} mm off their plane "
            f"(allowed {t:.2f} mm); draw it on one view"
        )
    # In-plane basis u, v.
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    poly = np.stack([(verts - centre) @ u, (verts - centre) @ v], axis=1)
    area2 = float(
        np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    )
    if abs(area2) < 1e-9:
        raise InputError("polygon: the loop encloses no area")
    box = _box_around(geometry, verts, t)
    if any(s.stop <= s.start for s in box):
        return empty_patch()
    w = _box_world(geometry, box)
    rel = w - centre
    off = rel @ normal
    in_slab = (off > -t) & (off <= t)
    shape = np.zeros(in_slab.shape, dtype=bool)
    idx = np.nonzero(in_slab)
    if idx[0].size:
        pts = rel[idx]
        shape[idx] = _points_in_polygon(np.stack([pts @ u, pts @ v], axis=1), poly)
    return _finish(m, box, shape, value, _limits(box, geometry, hu, hu_range, editable))
