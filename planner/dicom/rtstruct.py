"""Read DICOM RTSTRUCT contours and rasterise them to a sub-voxel occupancy.

Public API
----------
``read_rtstruct(path) -> StructureSet``
    All ROIs with their closed planar contours (LPS mm). Point ROIs (only POINT contours) are
    kept but flagged ``is_point_roi``; OPEN_PLANAR / OPEN_NONPLANAR contours are ignored.
``rasterise_roi(roi, *, spacing_mm=None, max_samples=4_000_000, slice_thickness_mm=None)
-> RasterisedROI``
    Fractional occupancy (0..1, float32, (z, y, x)) on a fine axis-aligned grid covering the ROI.
``rasterise_roi_on_grid(roi, geometry, *, fine_spacing_mm=0.25, slice_thickness_mm=None)
-> (z, y, x) float32``
    The same rule onto a given axial grid (e.g. a plan's dose or CT grid): each voxel gets the
    average of its fine cells (input for ``dose.dvh.compute_dvh`` / ``dose.metrics``).
``roi_dvh(raster, dose_gy, dose_geometry, *, prescription_gy=None, bin_width_gy=None) -> DVH``
    The DVH of a rasterised ROI in a dose grid (fine-grid samples, trilinear dose).

Contours must lie on axial planes (constant z within 0.01 mm): contours on oblique or sagittal /
coronal planes are refused with an :class:`InputError` rather than mis-rasterised.

Rasterisation (the method, stated once)
---------------------------------------
* **Planes.** Contours are grouped by their z (within 0.01 mm). All contours of one plane form one
  region under the even-odd rule, so holes and separate islands work.
* **End caps (explicit rule, used for volume and dose alike).** Every contour plane stands for a
  slab of its own thickness: half the distance to the neighbouring plane on each side; the first
  and last planes of a run therefore extend by **½ the plane spacing beyond the outermost
  contours** (the "½-slice end-cap" of Nelms et al. 2015, whose analytic volumes include it). A
  gap larger than 1.5 × the median plane spacing breaks the ROI into separate runs, each with its
  own end caps. A single-plane ROI needs ``slice_thickness_mm``.
* **Between planes.** A point takes the cross-section of the contour plane whose slab holds it
  (each contour is extruded over its slab: the convention of most planning systems and the one
  the Nelms analytic end caps model). Shape-based (signed-distance) interpolation between planes
  was tried and rejected: on the Nelms set it is exact for the axial cone but cuts the chord of
  convex ends (sphere −4.5 % volume at 3 mm vs −1.6 % for slabs; more D99/D95 failures).
* **Sub-voxel occupancy.** The fine grid has in-plane spacing ``spacing_mm`` (default 0.25 mm,
  coarser only when the ROI's bounding box would exceed ``max_samples`` fine voxels) and a slice
  thickness of plane spacing / n (≤ the in-plane spacing), aligned so that slab and end-cap
  boundaries fall on fine-slice boundaries for evenly spaced planes. In-plane coverage of a fine
  voxel is ``clip(0.5 − d/h, 0, 1)`` with d the exact signed distance (mm) from its centre to the
  nearest contour edge and h the in-plane spacing (exact for straight edges along the grid,
  unbiased otherwise); a fine slice cut by a slab boundary gets the covered fraction of its
  thickness from each slab.
* **Dose.** :func:`roi_dvh` interpolates the dose trilinearly at one low-discrepancy point inside
  each fine voxel (see :mod:`dose.dvh`), and adds the contour vertices (and their end-cap faces) as
  boundary points for Dmin/Dmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from numpy.typing import NDArray

from dose.dvh import DVH
from dose.dvh_calc import compute_dvh
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.dicom.read import read_dicom_object

__all__ = [
    "ROI",
    "RasterisedROI",
    "StructureSet",
    "rasterise_roi",
    "rasterise_roi_on_grid",
    "read_rtstruct",
    "roi_dvh",
]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
PLANE_TOL_MM = 0.01
DEFAULT_SPACING_MM = 0.25
DEFAULT_MAX_SAMPLES = 4_000_000


@dataclass
class ROI:
    """One structure of an RTSTRUCT.

    ``contours`` holds the CLOSED_PLANAR contours, each an (n, 3) float array of LPS mm.
    """

    number: int
    name: str
    interpreted_type: str = ""
    color_rgb: tuple[int, int, int] | None = None
    contours: list[NDArray[np.float64]] = field(default_factory=list)
    n_point_contours: int = 0
    n_ignored_contours: int = 0

    @property
    def is_point_roi(self) -> bool:
        """True for markers/points (no closed contour, at least one POINT contour)."""
        return not self.contours and self.n_point_contours > 0


@dataclass
class StructureSet:
    rois: list[ROI]
    frame_of_reference_uid: str = ""
    source_path: str = ""

    def contoured(self) -> list[ROI]:
        """ROIs with at least one closed planar contour, in file order."""
        return [r for r in self.rois if r.contours]


@dataclass
class RasterisedROI:
    """A contoured ROI on a fine grid.

    occupancy : (z, y, x) float32 in 0..1 on ``geometry``
    geometry : axis-aligned fine GridGeometry (LPS mm)
    boundary_points_mm : (M, 3) contour vertices and their end-cap faces (LPS mm)
    plane_z_mm : (P,) contour plane positions
    """

    name: str
    occupancy: NDArray[np.float32]
    geometry: GridGeometry
    boundary_points_mm: NDArray[np.float64]
    plane_z_mm: NDArray[np.float64]
    method: str = ""

    @property
    def volume_cm3(self) -> float:
        return float(self.occupancy.sum(dtype=np.float64)) * self.geometry.voxel_volume_mm3 / 1e3


# ====================================================================== reading
def read_rtstruct(path: str | Path) -> StructureSet:
    """Read ROIs and contours; raises :class:`InputError` for a file SeedPlan cannot use."""
    path = Path(path)
    ds = read_dicom_object(path, modality="RTSTRUCT", sop_class_uid=RTSTRUCT_SOP_CLASS)

    names: dict[int, str] = {}
    for item in getattr(ds, "StructureSetROISequence", []) or []:
        try:
            names[int(item.ROINumber)] = str(getattr(item, "ROIName", "")).strip()
        except (AttributeError, TypeError, ValueError):
            continue
    types: dict[int, str] = {}
    for item in getattr(ds, "RTROIObservationsSequence", []) or []:
        try:
            types[int(item.ReferencedROINumber)] = str(getattr(item, "RTROIInterpretedType", ""))
        except (AttributeError, TypeError, ValueError):
            continue
    rois: list[ROI] = []
    for rc in getattr(ds, "ROIContourSequence", []) or []:
        try:
            number = int(rc.ReferencedROINumber)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError("an ROIContourSequence item has no ReferencedROINumber", path) from exc
        color = getattr(rc, "ROIDisplayColor", None)
        roi = ROI(
            number=number,
            name=names.get(number, f"ROI {number}") or f"ROI {number}",
            interpreted_type=types.get(number, ""),
            color_rgb=_color(color),
        )
        for c in getattr(rc, "ContourSequence", []) or []:
            kind = str(getattr(c, "ContourGeometricType", "")).upper()
            data = _contour_values(c)
            if kind == "POINT":
                roi.n_point_contours += 1
                continue
            if kind != "CLOSED_PLANAR" or data is None:
                roi.n_ignored_contours += 1
                continue
            try:
                pts = np.asarray(data, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InputError(f"ROI {roi.name!r}: ContourData is not numeric", path) from exc
            if pts.size % 3 or pts.size < 9 or not np.all(np.isfinite(pts)):
                roi.n_ignored_contours += 1
                continue
            pts = pts.reshape(-1, 3)
            spread = float(np.ptp(pts[:, 2]))
            if spread > PLANE_TOL_MM:
                raise InputError(
                    f"ROI {roi.name!r}: a contour is not on an axial plane (z varies by"
                    f" {spread:.3g} mm); only axial contours are supported",
                    path,
                )
            roi.contours.append(pts)
        rois.append(roi)
    return StructureSet(
        rois=rois,
        frame_of_reference_uid=_frame_of_reference(ds),
        source_path=str(path),
    )


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


def _frame_of_reference(ds: object) -> str:
    for item in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []:
        uid = getattr(item, "FrameOfReferenceUID", None)
        if uid:
            return str(uid)
    return str(getattr(ds, "FrameOfReferenceUID", ""))


# ====================================================================== in-plane coverage
@numba.njit(cache=True)
def _plane_coverage(
    xs: np.ndarray,
    ys: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    starts: np.ndarray,
    hx: float,
    hy: float,
) -> np.ndarray:
    """(ny, nx) fraction of each fine pixel (centres xs, ys; size hx × hy mm) inside the polygons.

    Inside/outside by the even-odd rule (scan lines through the pixel centres); within h/2 of an
    edge the coverage is ``clip(0.5 − d/h, 0, 1)`` with d the signed distance (negative inside)
    from the pixel centre to the nearest edge. vx, vy: concatenated vertices; polygon p is
    vx[starts[p]:starts[p+1]] (implicitly closed).
    """
    ny = ys.shape[0]
    nx = xs.shape[0]
    x0 = xs[0]
    y0 = ys[0]
    n_poly = starts.shape[0] - 1
    inside = np.zeros((ny, nx), dtype=np.bool_)
    xint = np.empty(vx.shape[0])
    for jy in range(ny):
        y = ys[jy]
        m = 0
        for p in range(n_poly):
            a = starts[p]
            n = starts[p + 1] - a
            for e in range(n):
                x1 = vx[a + e]
                y1 = vy[a + e]
                x2 = vx[a + (e + 1) % n]
                y2 = vy[a + (e + 1) % n]
                if (y1 > y) != (y2 > y):
                    xint[m] = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
                    m += 1
        if m < 2:
            continue
        cuts = np.sort(xint[:m])
        for c in range(0, m - 1, 2):
            # pixels with centre in (cuts[c], cuts[c+1]) are inside
            i_lo = max(math.ceil((cuts[c] - x0) / hx), 0)
            i_hi = min(math.floor((cuts[c + 1] - x0) / hx), nx - 1)
            for ix in range(i_lo, i_hi + 1):
                xc = x0 + ix * hx
                if cuts[c] < xc < cuts[c + 1]:
                    inside[jy, ix] = True
    # Distance to the nearest edge, only where it is below h/2 (the anti-aliasing band).
    h = math.sqrt(hx * hy)  # anti-aliasing width (exact for square pixels)
    band = 0.5 * h
    dist = np.full((ny, nx), band)
    for p in range(n_poly):
        a = starts[p]
        n = starts[p + 1] - a
        for e in range(n):
            x1 = vx[a + e]
            y1 = vy[a + e]
            x2 = vx[a + (e + 1) % n]
            y2 = vy[a + (e + 1) % n]
            dx = x2 - x1
            dy = y2 - y1
            ll = dx * dx + dy * dy
            i_lo = max(math.floor((min(x1, x2) - band - x0) / hx), 0)
            i_hi = min(math.ceil((max(x1, x2) + band - x0) / hx), nx - 1)
            j_lo = max(math.floor((min(y1, y2) - band - y0) / hy), 0)
            j_hi = min(math.ceil((max(y1, y2) + band - y0) / hy), ny - 1)
            for jy in range(j_lo, j_hi + 1):
                y = y0 + jy * hy
                for ix in range(i_lo, i_hi + 1):
                    x = x0 + ix * hx
                    t = 0.0
                    if ll > 0.0:
                        t = ((x - x1) * dx + (y - y1) * dy) / ll
                        t = min(max(t, 0.0), 1.0)
                    ex = x1 + t * dx - x
                    ey = y1 + t * dy - y
                    d = math.sqrt(ex * ex + ey * ey)
                    if d < dist[jy, ix]:
                        dist[jy, ix] = d
    out = np.empty((ny, nx), dtype=np.float32)
    for jy in range(ny):
        for ix in range(nx):
            d = dist[jy, ix]
            if inside[jy, ix]:
                out[jy, ix] = min(0.5 + d / h, 1.0)
            else:
                out[jy, ix] = max(0.5 - d / h, 0.0)
    return out


# ====================================================================== rasterisation
def _group_planes(roi: ROI) -> tuple[NDArray[np.float64], list[list[NDArray[np.float64]]]]:
    zs = np.array([float(np.mean(c[:, 2])) for c in roi.contours])
    order = np.argsort(zs, kind="stable")
    planes: list[float] = []
    polys: list[list[NDArray[np.float64]]] = []
    for idx in order:
        z = zs[idx]
        if planes and abs(z - planes[-1]) <= PLANE_TOL_MM:
            polys[-1].append(roi.contours[idx])
        else:
            planes.append(z)
            polys.append([roi.contours[idx]])
    return np.asarray(planes), polys


@dataclass
class _Slabs:
    """Contour planes of an ROI and the slab [lower, upper] (mm) each one fills."""

    plane_z: NDArray[np.float64]
    polys: list[list[NDArray[np.float64]]]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    run_id: NDArray[np.int64]
    typical_mm: float


def _slabs(roi: ROI, slice_thickness_mm: float | None) -> _Slabs:
    """Planes, runs and slabs with ½-slice end caps (the rule in the module docstring)."""
    if not roi.contours:
        raise InputError(f"ROI {roi.name!r} has no closed planar contours")
    plane_z, plane_polys = _group_planes(roi)
    n_planes = plane_z.size
    if n_planes > 1:
        typical = float(np.median(np.diff(plane_z)))
    elif slice_thickness_mm is not None and slice_thickness_mm > 0:
        typical = float(slice_thickness_mm)
    else:
        raise InputError(
            f"ROI {roi.name!r} is contoured on a single plane; its slice thickness is unknown"
        )
    # Runs of consecutive planes; each plane's slab is [lower_p, upper_p].
    breaks = np.flatnonzero(np.diff(plane_z) > 1.5 * typical)
    run_id = np.zeros(n_planes, dtype=np.int64)
    for b in breaks:
        run_id[b + 1 :] += 1
    lower = np.empty(n_planes)
    upper = np.empty(n_planes)
    for p in range(n_planes):
        prev_ok = p > 0 and run_id[p - 1] == run_id[p]
        next_ok = p < n_planes - 1 and run_id[p + 1] == run_id[p]
        h_prev = plane_z[p] - plane_z[p - 1] if prev_ok else None
        h_next = plane_z[p + 1] - plane_z[p] if next_ok else None
        # End cap: ½ of the spacing to the in-run neighbour (or the typical spacing if alone).
        lower[p] = plane_z[p] - 0.5 * (h_prev if h_prev is not None else (h_next or typical))
        upper[p] = plane_z[p] + 0.5 * (h_next if h_next is not None else (h_prev or typical))
    return _Slabs(plane_z, plane_polys, lower, upper, run_id, typical)


def _fill(
    slabs: _Slabs,
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
    zc: NDArray[np.float64],
    hx: float,
    hy: float,
    dz: float,
) -> NDArray[np.float32]:
    """(nz, ny, nx) occupancy of fine voxels centred at (xs, ys, zc) (hx × hy × dz mm): in-plane
    coverage of each plane's contours times the fraction of the fine slice inside its slab."""
    ny, nx = ys.size, xs.size
    cover = np.empty((slabs.plane_z.size, ny, nx), dtype=np.float32)
    for p, polys in enumerate(slabs.polys):
        vx = np.ascontiguousarray(np.concatenate([q[:, 0] for q in polys]))
        vy = np.ascontiguousarray(np.concatenate([q[:, 1] for q in polys]))
        starts = np.cumsum([0] + [len(q) for q in polys]).astype(np.int64)
        cover[p] = _plane_coverage(
            np.ascontiguousarray(xs), np.ascontiguousarray(ys), vx, vy, starts, hx, hy
        )
    occ = np.zeros((zc.size, ny, nx), dtype=np.float32)
    for q in range(zc.size):
        a, b = zc[q] - 0.5 * dz, zc[q] + 0.5 * dz
        # Planes whose slab overlaps this fine slice (by more than a rounding error).
        overlap = np.minimum(slabs.upper, b) - np.maximum(slabs.lower, a)
        for p in np.flatnonzero(overlap > 1e-6 * dz):
            frac = min(float(overlap[p]) / dz, 1.0)
            if frac >= 1.0 - 1e-9:
                occ[q] += cover[p]
            else:
                occ[q] += np.float32(frac) * cover[p]
    np.minimum(occ, 1.0, out=occ)
    return occ


def rasterise_roi(
    roi: ROI,
    *,
    spacing_mm: float | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    slice_thickness_mm: float | None = None,
) -> RasterisedROI:
    """Fractional occupancy of a contoured ROI on its own fine grid (method: module docstring)."""
    slabs = _slabs(roi, slice_thickness_mm)
    typical = slabs.typical_mm
    all_pts = np.vstack(roi.contours)
    xy_lo = all_pts[:, :2].min(axis=0)
    xy_hi = all_pts[:, :2].max(axis=0)
    z_lo, z_hi = float(slabs.lower.min()), float(slabs.upper.max())
    extent = np.array([*(xy_hi - xy_lo), z_hi - z_lo]) + 1e-9
    h = DEFAULT_SPACING_MM if spacing_mm is None else float(spacing_mm)
    h = max(h, float(np.cbrt(np.prod(extent + 2 * h) / max_samples)))
    n_sub = max(1, math.ceil(typical / h - 1e-9))
    dz = typical / n_sub
    margin = 2.0 * h
    nx = math.ceil((extent[0] + 2 * margin) / h) + 1
    ny = math.ceil((extent[1] + 2 * margin) / h) + 1
    nz = max(1, math.ceil((z_hi - z_lo) / dz - 1e-6))
    x0 = float(xy_lo[0] - margin)
    y0 = float(xy_lo[1] - margin)
    # The fine grid; its voxel centres (the only index → mm conversion is GridGeometry's). The
    # coverage kernel relies on xs, ys being evenly spaced by h from xs[0], ys[0].
    geometry = GridGeometry.axis_aligned((nz, ny, nx), (x0, y0, z_lo + 0.5 * dz), (h, h, dz))
    xs, ys, zc = geometry.axis_coordinates_mm()
    occ = _fill(slabs, xs, ys, zc, h, h, dz)

    # Boundary points: vertices on their planes, plus the end-cap faces of each run.
    bpts = [all_pts]
    n_planes = slabs.plane_z.size
    for p in range(n_planes):
        for c in slabs.polys[p]:
            if p == 0 or slabs.run_id[p - 1] != slabs.run_id[p]:
                bpts.append(np.column_stack([c[:, :2], np.full(len(c), slabs.lower[p])]))
            if p == n_planes - 1 or slabs.run_id[p + 1] != slabs.run_id[p]:
                bpts.append(np.column_stack([c[:, :2], np.full(len(c), slabs.upper[p])]))
    method = (
        f"contours rasterised on a {h:g}×{h:g}×{dz:g} mm grid (each contour fills its slab,"
        " ½-slice end caps at the first and last contour of each run)"
    )
    return RasterisedROI(
        name=roi.name,
        occupancy=occ,
        geometry=geometry,
        boundary_points_mm=np.vstack(bpts),
        plane_z_mm=slabs.plane_z,
        method=method,
    )


def rasterise_roi_on_grid(
    roi: ROI,
    geometry: GridGeometry,
    *,
    fine_spacing_mm: float = DEFAULT_SPACING_MM,
    slice_thickness_mm: float | None = None,
) -> NDArray[np.float32]:
    """Fractional occupancy (z, y, x) float32 of a contoured ROI on a given axial grid.

    Each voxel of ``geometry`` near the ROI is split into fine cells (≤ ``fine_spacing_mm``
    along every axis), covered by the same rule as :func:`rasterise_roi` (slabs, ½-slice end
    caps, exact edge distance) and averaged back. ``geometry`` must have the identity direction
    (axial, rows along +y, columns along +x): other grids are refused with a ValueError.
    """
    if not geometry.is_axis_aligned:
        raise ValueError("rasterise_roi_on_grid needs an axis-aligned (identity-direction) grid")
    slabs = _slabs(roi, slice_thickness_mm)
    out = np.zeros(geometry.shape_zyx, dtype=np.float32)
    all_pts = np.vstack(roi.contours)
    lo = np.array([*all_pts[:, :2].min(axis=0), slabs.lower.min()])
    hi = np.array([*all_pts[:, :2].max(axis=0), slabs.upper.max()])
    # Voxel index range (i, j, k) whose boxes can meet the ROI's bounding box.
    ijk_lo = np.floor(geometry.world_to_index(lo) + 0.5).astype(int)
    ijk_hi = np.ceil(geometry.world_to_index(hi) - 0.5).astype(int)
    ijk_lo = np.maximum(ijk_lo, 0)
    ijk_hi = np.minimum(ijk_hi, np.asarray(geometry.shape_xyz) - 1)
    if np.any(ijk_hi < ijk_lo):
        return out
    n_c = ijk_hi - ijk_lo + 1  # (i, j, k) voxel counts of the crop
    f = np.maximum(np.ceil(geometry.spacing_mm / fine_spacing_mm - 1e-9).astype(int), 1)
    fine_spacing = geometry.spacing_mm / f
    # Fine grid: the crop's voxels subdivided f times along each axis.
    first_centre = geometry.index_to_world(ijk_lo - 0.5 + 0.5 / f)
    fine = GridGeometry.axis_aligned(
        (int(n_c[2] * f[2]), int(n_c[1] * f[1]), int(n_c[0] * f[0])), first_centre, fine_spacing
    )
    xs, ys, zc = fine.axis_coordinates_mm()
    hx, hy, dz = (float(v) for v in fine_spacing)
    occ = _fill(slabs, xs, ys, zc, hx, hy, dz)
    block = occ.reshape(n_c[2], f[2], n_c[1], f[1], n_c[0], f[0]).mean(axis=(1, 3, 5))
    out[ijk_lo[2] : ijk_hi[2] + 1, ijk_lo[1] : ijk_hi[1] + 1, ijk_lo[0] : ijk_hi[0] + 1] = block
    return out


def roi_dvh(
    raster: RasterisedROI,
    dose_gy: NDArray[np.floating],
    dose_geometry: GridGeometry,
    *,
    prescription_gy: float | None = None,
    bin_width_gy: float | None = None,
) -> DVH:
    """DVH of a rasterised ROI: trilinear dose at one jittered point per fine voxel."""
    dvh = compute_dvh(
        dose_gy,
        raster.occupancy,
        raster.geometry,
        dose_geometry=dose_geometry,
        samples_per_voxel=1,
        jitter=True,
        bin_width_gy=bin_width_gy,
        name=raster.name,
        prescription_gy=prescription_gy,
        boundary_points_mm=raster.boundary_points_mm,
    )
    return dvh
