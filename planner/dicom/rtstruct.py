"""Read DICOM RTSTRUCT contours, checked so that no contour silently changes a volume.

Public API
----------
``read_rtstruct(path) -> StructureSet``
    All ROIs with their closed planar contours (LPS mm) and frame of reference. Point ROIs (only
    POINT contours) are kept but flagged ``is_point_roi``.

Rasterising (occupancy, DVH sampling) lives in :mod:`planner.structures.rasterise`.

What is refused (:class:`InputError`, one line naming the file, the ROI and the contour)
--------------------------------------------------------------------------------------
* ContourData that is not numeric, has a value count that is not a multiple of 3, holds NaN or
  infinite coordinates, or disagrees with NumberOfContourPoints;
* a CLOSED_PLANAR contour that is not on an axial plane (z varies by more than 0.01 mm);
* a self-intersecting contour (a "bow-tie": its inside is ambiguous), and two contours of one
  plane whose edges cross or overlap (identical duplicates included: the even-odd rule would
  cancel them);
* two contour planes of one ROI closer than max(0.05 mm, 10 % of its plane spacing) but not on the
  same plane (a duplicated, re-rounded plane);
* an ROI whose ReferencedFrameOfReferenceUID is not among the structure set's frames.

What is dropped with a warning naming the ROI (it cannot change a volume)
------------------------------------------------------------------------
Closed contours with fewer than 3 distinct points or zero area; OPEN_PLANAR / OPEN_NONPLANAR and
other non-closed contours. Warnings are in :attr:`StructureSet.warnings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from planner.dicom.read import read_dicom_object

__all__ = ["ROI", "StructureSet", "read_rtstruct"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
PLANE_TOL_MM = 0.01
#: A contour with |area| below this (mm²) encloses nothing.
MIN_AREA_MM2 = 1e-6
#: Planes of one ROI closer than this (mm, or this fraction of the plane spacing) are duplicates.
DUPLICATE_PLANE_MM = 0.05
DUPLICATE_PLANE_FRACTION = 0.1


@dataclass
class ROI:
    """One structure of an RTSTRUCT.

    ``contours`` holds the CLOSED_PLANAR contours, each an (n, 3) float array of LPS mm (n ≥ 3,
    consecutive duplicate vertices removed). ``frame_of_reference_uid`` is the ROI's own
    ReferencedFrameOfReferenceUID ("" when the file gives none).
    """

    number: int
    name: str
    interpreted_type: str = ""
    color_rgb: tuple[int, int, int] | None = None
    contours: list[NDArray[np.float64]] = field(default_factory=list)
    n_point_contours: int = 0
    n_ignored_contours: int = 0
    frame_of_reference_uid: str = ""

    @property
    def is_point_roi(self) -> bool:
        """True for markers/points (no closed contour, at least one POINT contour)."""
        return not self.contours and self.n_point_contours > 0

    @property
    def plane_z_mm(self) -> NDArray[np.float64]:
        """(P,) distinct contour plane positions (mm), ascending."""
        zs = np.sort([float(c[0, 2]) for c in self.contours])
        if zs.size == 0:
            return zs
        keep = np.concatenate([[True], np.diff(zs) > PLANE_TOL_MM])
        return zs[keep]


@dataclass
class StructureSet:
    rois: list[ROI]
    frame_of_reference_uid: str = ""
    source_path: str = ""
    #: Every frame of reference the structure set declares (ReferencedFrameOfReferenceSequence).
    frame_of_reference_uids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def contoured(self) -> list[ROI]:
        """ROIs with at least one closed planar contour, in file order."""
        return [r for r in self.rois if r.contours]


# ====================================================================== reading
def read_rtstruct(path: str | Path) -> StructureSet:
    """Read ROIs and contours; raises :class:`InputError` for a file SeedPlan cannot use."""
    path = Path(path)
    ds = read_dicom_object(path, modality="RTSTRUCT", sop_class_uid=RTSTRUCT_SOP_CLASS)
    frames = _declared_frames(ds)
    names: dict[int, str] = {}
    roi_frames: dict[int, str] = {}
    for item in getattr(ds, "StructureSetROISequence", []) or []:
        try:
            number = int(item.ROINumber)
        except (AttributeError, TypeError, ValueError):
            continue
        names[number] = str(getattr(item, "ROIName", "")).strip()
        roi_frames[number] = str(getattr(item, "ReferencedFrameOfReferenceUID", "") or "").strip()
    types: dict[int, str] = {}
    for item in getattr(ds, "RTROIObservationsSequence", []) or []:
        try:
            types[int(item.ReferencedROINumber)] = str(getattr(item, "RTROIInterpretedType", ""))
        except (AttributeError, TypeError, ValueError):
            continue
    warnings: list[str] = []
    rois: list[ROI] = []
    for rc in getattr(ds, "ROIContourSequence", []) or []:
        try:
            number = int(rc.ReferencedROINumber)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError("an ROIContourSequence item has no ReferencedROINumber", path) from exc
        roi = ROI(
            number=number,
            name=names.get(number, f"ROI {number}") or f"ROI {number}",
            interpreted_type=types.get(number, ""),
            color_rgb=_color(getattr(rc, "ROIDisplayColor", None)),
            frame_of_reference_uid=roi_frames.get(number, ""),
        )
        if roi.frame_of_reference_uid and frames and roi.frame_of_reference_uid not in frames:
            raise InputError(
                f"ROI {roi.name!r} references frame of reference {roi.frame_of_reference_uid},"
                " which the structure set does not declare",
                path,
            )
        n_dropped = 0
        for index, c in enumerate(getattr(rc, "ContourSequence", []) or [], start=1):
            kind = str(getattr(c, "ContourGeometricType", "")).upper()
            if kind == "POINT":
                roi.n_point_contours += 1
                continue
            if kind != "CLOSED_PLANAR":
                roi.n_ignored_contours += 1
                continue
            pts = _checked_points(c, roi.name, index, path)
            if pts is None:
                n_dropped += 1
                continue
            roi.contours.append(pts)
        if n_dropped:
            warnings.append(
                f"ROI {roi.name!r}: {n_dropped} closed contour(s) with fewer than 3 distinct"
                " points or zero area ignored (they enclose no volume)"
            )
        if roi.n_ignored_contours:
            warnings.append(
                f"ROI {roi.name!r}: {roi.n_ignored_contours} open or non-planar contour(s)"
                " ignored (only CLOSED_PLANAR contours enclose a volume)"
            )
        _check_planes(roi, path)
        rois.append(roi)
    return StructureSet(
        rois=rois,
        frame_of_reference_uid=frames[0] if frames else str(getattr(ds, "FrameOfReferenceUID", "")),
        source_path=str(path),
        frame_of_reference_uids=frames,
        warnings=warnings,
    )


def _checked_points(
    item: object, roi_name: str, index: int, path: Path
) -> NDArray[np.float64] | None:
    """(n, 3) points of one CLOSED_PLANAR contour, or None if it encloses nothing."""
    where = f"ROI {roi_name!r}, contour {index}"
    data = _contour_values(item)
    if data is None:
        raise InputError(f"{where}: CLOSED_PLANAR contour has no ContourData", path)
    try:
        flat = np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: ContourData is not numeric", path) from exc
    if flat.size % 3:
        raise InputError(
            f"{where}: ContourData has {flat.size} values, not a multiple of 3 (x, y, z)", path
        )
    if not np.all(np.isfinite(flat)):
        raise InputError(f"{where}: ContourData holds NaN or infinite coordinates", path)
    declared = getattr(item, "NumberOfContourPoints", None)
    if declared not in (None, "") and int(declared) != flat.size // 3:
        raise InputError(
            f"{where}: NumberOfContourPoints is {int(declared)} but ContourData holds"
            f" {flat.size // 3} points",
            path,
        )
    pts = flat.reshape(-1, 3)
    spread = float(np.ptp(pts[:, 2])) if pts.size else 0.0
    if spread > PLANE_TOL_MM:
        raise InputError(
            f"{where}: contour is not on an axial plane (z varies by {spread:.3g} mm); only"
            " axial contours are supported",
            path,
        )
    # Drop consecutive duplicate vertices (and a closing copy of the first vertex).
    if len(pts) > 1:
        nxt = np.roll(pts[:, :2], -1, axis=0)
        pts = pts[np.any(np.abs(pts[:, :2] - nxt) > 1e-9, axis=1)]
    if len(pts) < 3:
        return None
    centred = pts[:, :2] - pts[:, :2].mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[1] <= 1e-9 * max(float(sv[0]), 1.0):
        return None  # all points on one line: no inside at all
    pts = np.ascontiguousarray(pts)
    pts[:, 2] = float(np.mean(pts[:, 2]))
    if _first_crossing(pts[:, 0].copy(), pts[:, 1].copy(), np.array([0, len(pts)])) >= 0:
        raise InputError(
            f"{where}: contour at z = {pts[0, 2]:g} mm intersects itself (its inside is ambiguous)",
            path,
        )
    # Only now (a bow-tie's lobes cancel in the signed area): a simple polygon of no area.
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if abs(area) < MIN_AREA_MM2:
        return None
    return pts


def _check_planes(roi: ROI, path: Path) -> None:
    """Refuse crossing contours within a plane and near-duplicate planes."""
    if not roi.contours:
        return
    zs = np.array([float(c[0, 2]) for c in roi.contours])
    order = np.argsort(zs, kind="stable")
    groups: list[list[int]] = []
    for idx in order:
        if groups and abs(zs[idx] - zs[groups[-1][0]]) <= PLANE_TOL_MM:
            groups[-1].append(int(idx))
        else:
            groups.append([int(idx)])
    for g in groups:
        if len(g) < 2:
            continue
        polys = [roi.contours[i] for i in g]
        vx = np.ascontiguousarray(np.concatenate([q[:, 0] for q in polys]))
        vy = np.ascontiguousarray(np.concatenate([q[:, 1] for q in polys]))
        starts = np.cumsum([0] + [len(q) for q in polys]).astype(np.int64)
        if _first_crossing(vx, vy, starts) >= 0:
            raise InputError(
                f"ROI {roi.name!r}: contours on plane z = {zs[g[0]]:g} mm cross or overlap each"
                " other (duplicated or overlapping contours; their union is ambiguous)",
                path,
            )
    planes = np.array([zs[g[0]] for g in groups])
    if planes.size > 2:
        gaps = np.diff(planes)
        limit = max(DUPLICATE_PLANE_MM, DUPLICATE_PLANE_FRACTION * float(np.median(gaps)))
        close = np.flatnonzero(gaps < limit)
        if close.size:
            p = int(close[0])
            raise InputError(
                f"ROI {roi.name!r}: contour planes z = {planes[p]:g} and {planes[p + 1]:g} mm are"
                f" only {gaps[p]:.3g} mm apart (a duplicated plane?)",
                path,
            )


@numba.njit(cache=True)
def _first_crossing(vx: np.ndarray, vy: np.ndarray, starts: np.ndarray) -> int:
    """Index of the first edge that properly crosses, or overlaps collinearly, another edge of
    the polygons (polygon p = vertices starts[p]:starts[p+1], closed); −1 if none. Edges that
    share a vertex in one polygon only touch there and are not counted."""
    n_e = vx.shape[0]
    poly = np.empty(n_e, dtype=np.int64)
    nxt = np.empty(n_e, dtype=np.int64)
    for p in range(starts.shape[0] - 1):
        for e in range(starts[p], starts[p + 1]):
            poly[e] = p
            nxt[e] = e + 1 if e + 1 < starts[p + 1] else starts[p]
    xmin = np.empty(n_e)
    for e in range(n_e):
        xmin[e] = min(vx[e], vx[nxt[e]])
    order = np.argsort(xmin)
    for a in range(n_e):
        e = order[a]
        ax1, ay1, ax2, ay2 = vx[e], vy[e], vx[nxt[e]], vy[nxt[e]]
        exmax = max(ax1, ax2)
        for b in range(a + 1, n_e):
            f = order[b]
            if xmin[f] > exmax:
                break
            if poly[e] == poly[f] and (nxt[e] == f or nxt[f] == e):
                continue
            bx1, by1, bx2, by2 = vx[f], vy[f], vx[nxt[f]], vy[nxt[f]]
            if max(by1, by2) < min(ay1, ay2) or max(ay1, ay2) < min(by1, by2):
                continue
            if _segments_cross(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
                return e
    return -1


@numba.njit(cache=True, inline="always")
def _orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


@numba.njit(cache=True)
def _segments_cross(
    ax1: float, ay1: float, ax2: float, ay2: float, bx1: float, by1: float, bx2: float, by2: float
) -> bool:
    """Proper crossing (interiors intersect at one point) or a collinear overlap of positive
    length; touching at an end point is not a crossing."""
    scale = max(abs(ax2 - ax1) + abs(ay2 - ay1), abs(bx2 - bx1) + abs(by2 - by1), 1e-12)
    eps = 1e-9 * scale * scale
    o1 = _orient(ax1, ay1, ax2, ay2, bx1, by1)
    o2 = _orient(ax1, ay1, ax2, ay2, bx2, by2)
    o3 = _orient(bx1, by1, bx2, by2, ax1, ay1)
    o4 = _orient(bx1, by1, bx2, by2, ax2, ay2)
    if abs(o1) <= eps and abs(o2) <= eps:
        # Collinear: overlap length along the longer direction.
        dx, dy = ax2 - ax1, ay2 - ay1
        ll = dx * dx + dy * dy
        if ll <= 0.0:
            return False
        t1 = ((bx1 - ax1) * dx + (by1 - ay1) * dy) / ll
        t2 = ((bx2 - ax1) * dx + (by2 - ay1) * dy) / ll
        lo = max(min(t1, t2), 0.0)
        hi = min(max(t1, t2), 1.0)
        return hi - lo > 1e-9
    a_splits_b = (o1 > eps and o2 < -eps) or (o1 < -eps and o2 > eps)
    b_splits_a = (o3 > eps and o4 < -eps) or (o3 < -eps and o4 > eps)
    return a_splits_b and b_splits_a


def _contour_values(item: object) -> object:
    """ContourData as floats. Parsing the raw DS bytes directly is ~50× faster than letting
    pydicom build one DSfloat per number (Nelms structures: 1 s → 20 ms per file)."""
    try:
        elem = item.get_item("ContourData")  # type: ignore[attr-defined]
    except (AttributeError, KeyError):
        return None
    if elem is None:
        return None
    raw = elem.value
    if isinstance(raw, (bytes, bytearray)):
        text = raw.decode("ascii", errors="replace").strip(" \x00")
        return [v.strip() for v in text.split("\\")] if text else None
    return getattr(item, "ContourData", None)


def _color(value: object) -> tuple[int, int, int] | None:
    try:
        r, g, b = (int(c) for c in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return (r, g, b)


def _declared_frames(ds: object) -> list[str]:
    out = []
    for item in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []:
        uid = str(getattr(item, "FrameOfReferenceUID", "") or "").strip()
        if uid and uid not in out:
            out.append(uid)
    return out
