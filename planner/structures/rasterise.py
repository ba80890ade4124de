"""Rasterise contoured structures (RTSTRUCT ROIs): sub-voxel occupancy and DVH sampling.

Public API
----------
``rasterise_roi_on_grid(roi, geometry, *, fine_spacing_mm=0.25, slice_thickness_mm=None)
-> (z, y, x) float32``
    Fractional occupancy (0..1) of a contoured ROI on a given axis-aligned grid (a plan's CT or
    dose grid): the mask for ``dose.dvh_calc.compute_dvh`` / ``dose.metrics`` and for display.
``rasterise_roi(roi, *, spacing_mm=None, slice_thickness_mm=None) -> RasterisedROI``
    The ROI's own stratified sampling cells (see below) for an exact DVH with :func:`roi_dvh`.
``roi_dvh(raster, dose_gy, dose_geometry, *, prescription_gy=None, bin_width_gy=None) -> DVH``
    The DVH of a rasterised ROI in a dose grid (trilinear dose; any dose-grid orientation).

Contours must lie on axial planes; :func:`planner.dicom.rtstruct.read_rtstruct` refuses others and
checks the contour data (see there).

The method (stated once)
------------------------
* **Planes.** Contours are grouped by their z (within 0.01 mm). All contours of one plane form one
  region under the even-odd rule, so holes and separate islands work.
* **End caps (explicit rule, used for volume and dose alike).** Every contour plane stands for a
  slab of its own thickness: half the distance to the neighbouring plane on each side; the first
  and last planes of a run therefore extend by **½ the plane spacing beyond the outermost
  contours** (the "½-slice end-cap" of Nelms et al. 2015, whose analytic volumes include it). A
  gap larger than 1.5 × the median plane spacing breaks the ROI into separate runs, each with its
  own end caps. A single-plane ROI needs ``slice_thickness_mm``. Each contour is extruded over its
  slab (the convention of most planning systems and the one the Nelms analytic end caps model;
  shape-based interpolation was tried and rejected: sphere −4.5 % volume at 3 mm vs −1.6 %).
* **In-plane coverage.** On a fine grid of ``spacing_mm`` (default 0.25 mm, never coarsened) the
  coverage of a pixel is ``clip(0.5 − d/h, 0, 1)``, d the exact signed distance (mm) from its
  centre to the nearest contour edge (exact for straight edges along the grid, unbiased otherwise).
* **Stratified sampling (accuracy independent of structure size).** The fine pixels are grouped in
  4 × 4 blocks (1 mm at the default). A block entirely inside the contour is an *interior column*:
  its slab is cut into cells of ≤ 1 mm along z and each cell gets 4 n-rooks samples (one per
  0.25 mm stratum along every axis, jittered, :mod:`dose.dvh_calc`). Every other pixel with
  coverage > 0 is a *surface column*: cells of ≤ 0.25 mm along z, one jittered sample each, weighed
  by its coverage. Resolution is set by the distance to the surface, never by a sample budget, so
  a lung or a body contour is sampled exactly like a 1 cm³ sphere (cost grows with volume, memory
  with one plane at a time: samples go straight into the histogram).
* **Dmin / Dmax.** Over the samples of fully covered cells, the dose-grid nodes inside the ROI and
  the surface itself: each slab's side walls (every contour edge cut at ≤ 0.25 mm, at z levels
  ≤ 0.25 mm apart from the slab's bottom to its top) and the end-cap faces (pixel centres inside
  the contour at the cap). A trilinear field is linear along each axis inside a dose cell, so its
  extremes over the ROI lie at such nodes or on the surface: Dmin/Dmax are those of the
  interpolated field up to the 0.25 mm surface sampling.
* **Dose grid edge.** Samples outside the dose grid's voxel boxes count at 0 Gy and as volume
  outside the grid — unless every contour vertex (at its slab's bottom and top) lies inside them:
  then the whole ROI does, and surface samples that stray a fraction of a pixel beyond the contour
  are pulled into the grid, so "outside the dose grid" is only ever reported when true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
from numpy.typing import NDArray

from dose.dvh import DVH, default_bin_width_gy
from dose.dvh_calc import HistogramBuilder, _sub_offsets
from dose.dvh_kernels import JITTER, column_samples, points_dose, wall_extremes
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.dicom.rtstruct import PLANE_TOL_MM, ROI

__all__ = ["RasterisedROI", "rasterise_roi", "rasterise_roi_on_grid", "roi_dvh"]

DEFAULT_SPACING_MM = 0.25
#: Fine pixels per interior column side (4 × 0.25 mm = 1 mm) and n-rooks samples per cell.
BLOCK = 4
INTERIOR_SAMPLES = 4


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
            i_lo = max(math.ceil((cuts[c] - x0) / hx), 0)
            i_hi = min(math.floor((cuts[c + 1] - x0) / hx), nx - 1)
            for ix in range(i_lo, i_hi + 1):
                xc = x0 + ix * hx
                if cuts[c] < xc < cuts[c + 1]:
                    inside[jy, ix] = True
    h = math.sqrt(hx * hy)
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


def _poly_arrays(
    polys: list[NDArray[np.float64]],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    vx = np.ascontiguousarray(np.concatenate([q[:, 0] for q in polys]))
    vy = np.ascontiguousarray(np.concatenate([q[:, 1] for q in polys]))
    starts = np.cumsum([0] + [len(q) for q in polys]).astype(np.int64)
    return vx, vy, starts


def _coverage(
    polys: list[NDArray[np.float64]],
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
    hx: float,
    hy: float,
) -> NDArray[np.float32]:
    vx, vy, starts = _poly_arrays(polys)
    return _plane_coverage(
        np.ascontiguousarray(xs), np.ascontiguousarray(ys), vx, vy, starts, hx, hy
    )


# ====================================================================== slabs
@dataclass
class Slabs:
    """Contour planes of an ROI and the slab [lower, upper] (mm) each one fills.

    plane_z (P,) mm; polys: per plane, its contours (n, 3) LPS mm; lower/upper (P,) mm;
    run_id (P,) int: runs of consecutive planes; typical_mm: the median plane spacing.
    """

    plane_z: NDArray[np.float64]
    polys: list[list[NDArray[np.float64]]]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    run_id: NDArray[np.int64]
    typical_mm: float

    def is_first(self, p: int) -> bool:
        return p == 0 or self.run_id[p - 1] != self.run_id[p]

    def is_last(self, p: int) -> bool:
        return p == self.plane_z.size - 1 or self.run_id[p + 1] != self.run_id[p]


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


def slabs_of(roi: ROI, slice_thickness_mm: float | None = None) -> Slabs:
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
        lower[p] = plane_z[p] - 0.5 * (h_prev if h_prev is not None else (h_next or typical))
        upper[p] = plane_z[p] + 0.5 * (h_next if h_next is not None else (h_prev or typical))
    # End caps of neighbouring runs never overlap: meet half-way between the planes.
    for p in range(n_planes - 1):
        if upper[p] > lower[p + 1]:
            upper[p] = lower[p + 1] = 0.5 * (plane_z[p] + plane_z[p + 1])
    return Slabs(plane_z, plane_polys, lower, upper, run_id, typical)


# ====================================================================== occupancy on a grid
def rasterise_roi_on_grid(
    roi: ROI,
    geometry: GridGeometry,
    *,
    fine_spacing_mm: float = DEFAULT_SPACING_MM,
    slice_thickness_mm: float | None = None,
) -> NDArray[np.float32]:
    """Fractional occupancy (z, y, x) float32 in 0..1 of a contoured ROI on a given grid.

    Parameters
    ----------
    roi : the ROI (closed planar axial contours, LPS mm).
    geometry : the target grid (e.g. the plan's CT grid); must have the identity direction
        (axial, rows along +y, columns along +x); other grids raise ValueError.
    fine_spacing_mm : in-plane sub-pixel size (mm) for the coverage of each voxel.
    slice_thickness_mm : slab thickness of a single-plane ROI.

    Each voxel's value is the fraction of its box inside the ROI under the slab / end-cap rule of
    the module docstring: in-plane coverage averaged over ≤ ``fine_spacing_mm`` sub-pixels, times
    the exact overlap of the voxel's z extent with each contour slab. The occupancy integral
    (Σ occupancy × voxel volume) is the ROI volume. Memory: one plane's sub-pixels at a time.
    """
    if not geometry.is_axis_aligned:
        raise ValueError("rasterise_roi_on_grid needs an axis-aligned (identity-direction) grid")
    slabs = slabs_of(roi, slice_thickness_mm)
    out = np.zeros(geometry.shape_zyx, dtype=np.float32)
    all_pts = np.vstack(roi.contours)
    lo = np.array([*all_pts[:, :2].min(axis=0), slabs.lower.min()])
    hi = np.array([*all_pts[:, :2].max(axis=0), slabs.upper.max()])
    ijk_lo = np.maximum(np.floor(geometry.world_to_index(lo) + 0.5).astype(int), 0)
    ijk_hi = np.minimum(
        np.ceil(geometry.world_to_index(hi) - 0.5).astype(int), np.asarray(geometry.shape_xyz) - 1
    )
    if np.any(ijk_hi < ijk_lo):
        return out
    n_c = ijk_hi - ijk_lo + 1
    f = np.maximum(np.ceil(geometry.spacing_mm[:2] / fine_spacing_mm - 1e-9).astype(int), 1)
    hx, hy = (float(v) for v in geometry.spacing_mm[:2] / f)
    first = geometry.index_to_world(np.array([ijk_lo[0], ijk_lo[1], 0]) - 0.5)
    xs = first[0] + (np.arange(n_c[0] * f[0]) + 0.5) * hx
    ys = first[1] + (np.arange(n_c[1] * f[1]) + 0.5) * hy
    dz = float(geometry.spacing_mm[2])
    zc = geometry.index_to_world(
        np.column_stack([np.zeros(n_c[2]), np.zeros(n_c[2]), np.arange(ijk_lo[2], ijk_hi[2] + 1)])
    )[:, 2]
    crop = out[ijk_lo[2] : ijk_hi[2] + 1, ijk_lo[1] : ijk_hi[1] + 1, ijk_lo[0] : ijk_hi[0] + 1]
    for p, polys in enumerate(slabs.polys):
        overlap = np.minimum(slabs.upper[p], zc + 0.5 * dz) - np.maximum(
            slabs.lower[p], zc - 0.5 * dz
        )
        ks = np.flatnonzero(overlap > 1e-9 * dz)
        if ks.size == 0:
            continue
        cov = _coverage(polys, xs, ys, hx, hy)
        block = cov.reshape(n_c[1], f[1], n_c[0], f[0]).mean(axis=(1, 3), dtype=np.float64)
        for k in ks:
            crop[k] += np.float32(min(overlap[k] / dz, 1.0)) * block.astype(np.float32)
    np.minimum(crop, 1.0, out=crop)
    return out


# ====================================================================== stratified cells
@dataclass
class PlaneCells:
    """Sampling columns of one plane's slab on the ROI's fine grid (flat indices, row-major).

    interior : (n,) int64 block indices (block row × n_block_cols + block col), fully inside.
    surface : (m,) int64 fine-pixel indices with 0 < coverage outside fully covered blocks.
    surface_cover : (m,) float32 their coverage. cap_inside : fine-pixel indices with
    coverage ≥ 0.5 on an end-cap plane (empty otherwise).
    """

    interior: NDArray[np.int64]
    surface: NDArray[np.int64]
    surface_cover: NDArray[np.float32]
    cap_inside: NDArray[np.int64]


@dataclass
class RasterisedROI:
    """A contoured ROI as stratified sampling columns (module docstring).

    geometry : the ROI's fine axis-aligned grid (in-plane ``spacing_mm``; along z, plane spacing / n
        ≤ the in-plane spacing): the lattice of the surface columns. boundary_points_mm : (M, 3)
    contour vertices and their end-cap rings (LPS mm). plane_z_mm : (P,) contour planes.
    """

    name: str
    geometry: GridGeometry
    boundary_points_mm: NDArray[np.float64]
    plane_z_mm: NDArray[np.float64]
    slabs: Slabs
    cells: list[PlaneCells]
    xs_mm: NDArray[np.float64]
    ys_mm: NDArray[np.float64]
    h_mm: float
    method: str = ""
    _volume_cm3: float = field(default=0.0, repr=False)

    @property
    def volume_cm3(self) -> float:
        """Σ over slabs of thickness × (interior blocks + covered surface pixels) area."""
        return self._volume_cm3


def rasterise_roi(
    roi: ROI,
    *,
    spacing_mm: float | None = None,
    slice_thickness_mm: float | None = None,
) -> RasterisedROI:
    """Stratified sampling columns of a contoured ROI on its own fine grid (module docstring)."""
    slabs = slabs_of(roi, slice_thickness_mm)
    all_pts = np.vstack(roi.contours)
    h = DEFAULT_SPACING_MM if spacing_mm is None else float(spacing_mm)
    if not h > 0:
        raise ValueError("spacing_mm must be positive")
    xy_lo = all_pts[:, :2].min(axis=0) - 2.0 * h
    xy_hi = all_pts[:, :2].max(axis=0) + 2.0 * h
    n_xy = np.ceil((xy_hi - xy_lo) / h / BLOCK - 1e-9).astype(int) * BLOCK
    nx, ny = int(n_xy[0]), int(n_xy[1])
    n_sub = max(1, math.ceil(slabs.typical_mm / h - 1e-9))
    dz = slabs.typical_mm / n_sub
    z_lo, z_hi = float(slabs.lower.min()), float(slabs.upper.max())
    nz = max(1, math.ceil((z_hi - z_lo) / dz - 1e-6))
    geometry = GridGeometry.axis_aligned(
        (nz, ny, nx), (xy_lo[0] + 0.5 * h, xy_lo[1] + 0.5 * h, z_lo + 0.5 * dz), (h, h, dz)
    )
    xs, ys, _ = geometry.axis_coordinates_mm()
    nbx, nby = nx // BLOCK, ny // BLOCK
    cells: list[PlaneCells] = []
    volume_mm3 = 0.0
    for p, polys in enumerate(slabs.polys):
        cov = _coverage(polys, xs, ys, h, h)
        full = (cov.reshape(nby, BLOCK, nbx, BLOCK) >= 1.0 - 1e-6).all(axis=(1, 3))
        in_full = np.repeat(np.repeat(full, BLOCK, axis=0), BLOCK, axis=1)
        surf = np.flatnonzero(((cov > 0) & ~in_full).ravel())
        cap = np.zeros(0, dtype=np.int64)
        if slabs.is_first(p) or slabs.is_last(p):
            cap = np.flatnonzero((cov >= 0.5).ravel())
        cells.append(PlaneCells(np.flatnonzero(full.ravel()), surf, cov.ravel()[surf].copy(), cap))
        t = float(slabs.upper[p] - slabs.lower[p])
        area = (
            cells[-1].interior.size * (BLOCK * h) ** 2
            + float(cells[-1].surface_cover.sum(dtype=np.float64)) * h * h
        )
        volume_mm3 += t * area
    bpts = [all_pts]
    for p in range(slabs.plane_z.size):
        for c in slabs.polys[p]:
            if slabs.is_first(p):
                bpts.append(np.column_stack([c[:, :2], np.full(len(c), slabs.lower[p])]))
            if slabs.is_last(p):
                bpts.append(np.column_stack([c[:, :2], np.full(len(c), slabs.upper[p])]))
    method = (
        f"contours on a {h:g} mm grid, each filling its slab (½-slice end caps at the first and"
        f" last contour of each run); interior {BLOCK * h:g} mm columns with {INTERIOR_SAMPLES}"
        f" n-rooks samples per ≤ {BLOCK * h:g} mm cell, surface {h:g} mm columns with one sample"
        f" per ≤ {h:g} mm cell; Dmin/Dmax also on the slab walls and end caps"
    )
    return RasterisedROI(
        name=roi.name,
        geometry=geometry,
        boundary_points_mm=np.vstack(bpts),
        plane_z_mm=slabs.plane_z,
        slabs=slabs,
        cells=cells,
        xs_mm=xs,
        ys_mm=ys,
        h_mm=h,
        method=method,
        _volume_cm3=volume_mm3 / 1000.0,
    )


# ====================================================================== dose sampling
def _world_to_dose_affine(g: GridGeometry) -> NDArray[np.float64]:
    """(3, 4): LPS (x, y, z, 1) → dose-grid continuous (k, j, i)."""
    basis = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    mapped = g.world_to_zyx(basis)
    aff = np.empty((3, 4))
    aff[:, 3] = mapped[0]
    aff[:, :3] = (mapped[1:] - mapped[0]).T
    return aff


def _dose_bound_gy(dose: NDArray, dg: GridGeometry, raster: RasterisedROI) -> float:
    """Largest dose-grid value near the ROI (bounds every trilinear sample in it)."""
    a, b = _node_box(raster, dg)
    if np.any(b <= a):
        return 0.0
    return float(np.nanmax(dose[a[0] : b[0], a[1] : b[1], a[2] : b[2]]))


def _inside_dose_box(raster: RasterisedROI, dg: GridGeometry) -> bool:
    """True when the whole ROI (every contour vertex at its slab's bottom and top; the voxel-box
    union of a grid is convex) lies inside the dose grid's voxel boxes."""
    slabs = raster.slabs
    pts = []
    for p, polys in enumerate(slabs.polys):
        for c in polys:
            for z in (slabs.lower[p], slabs.upper[p]):
                pts.append(np.column_stack([c[:, :2], np.full(len(c), z)]))
    kji = dg.world_to_zyx(np.vstack(pts))
    tol = 1e-6
    return bool(np.all(kji >= -0.5 - tol) and np.all(kji <= np.asarray(dg.shape_zyx) - 0.5 + tol))


def _node_box(raster: RasterisedROI, dg: GridGeometry) -> tuple[NDArray, NDArray]:
    """Inclusive-exclusive dose-grid index box (k, j, i) of the nodes near the ROI."""
    lo, hi = raster.geometry.bounds_world_mm()
    dz = raster.geometry.spacing_mm[2]
    corners = np.array(
        [
            [x, y, z]
            for x in (lo[0], hi[0])
            for y in (lo[1], hi[1])
            for z in (lo[2] - dz, hi[2] + dz)
        ]
    )
    kji = dg.world_to_zyx(corners)
    a = np.maximum(np.floor(kji.min(axis=0)).astype(int) - 1, 0)
    b = np.minimum(np.ceil(kji.max(axis=0)).astype(int) + 2, np.asarray(dg.shape_zyx))
    return a, b


def _inside_node_extremes(
    raster: RasterisedROI, dose: NDArray, dg: GridGeometry
) -> tuple[float, float]:
    """Min and max dose-grid value over the grid nodes inside the ROI.

    A trilinear field is linear along each axis inside a dose cell, so its extremes over a region
    lie at grid nodes inside the region or on the region's surface: with the surface sampled
    (walls, caps), these nodes make Dmin/Dmax those of the interpolated field.
    """
    a, b = _node_box(raster, dg)
    if np.any(b <= a):
        return math.inf, -math.inf
    slabs = raster.slabs
    h = raster.h_mm
    nx, ny = raster.xs_mm.size, raster.ys_mm.size
    nbx = nx // BLOCK
    masks: dict[int, NDArray[np.bool_]] = {}
    lo, hi = math.inf, -math.inf
    jj, ii = np.meshgrid(np.arange(a[1], b[1]), np.arange(a[2], b[2]), indexing="ij")
    jj, ii = jj.ravel(), ii.ravel()
    for k in range(a[0], b[0]):  # one dose slice at a time (bounded memory)
        kji = np.column_stack([np.full(jj.size, k), jj, ii])
        xyz = dg.zyx_to_world(kji)
        p = np.searchsorted(slabs.lower, xyz[:, 2], side="right") - 1
        fi = np.floor((xyz[:, 0] - raster.xs_mm[0]) / h + 0.5).astype(np.int64)
        fj = np.floor((xyz[:, 1] - raster.ys_mm[0]) / h + 0.5).astype(np.int64)
        ok = (p >= 0) & (fi >= 0) & (fi < nx) & (fj >= 0) & (fj < ny)
        ok[ok] &= xyz[ok, 2] <= slabs.upper[p[ok]]
        for plane in np.unique(p[ok]):
            sel = np.flatnonzero(ok & (p == plane))
            if int(plane) not in masks:
                cells = raster.cells[int(plane)]
                mask = np.zeros(ny * nx, dtype=np.bool_)
                mask[cells.surface[cells.surface_cover >= 0.5]] = True
                full = np.zeros((ny // BLOCK, nbx), dtype=np.bool_)
                full.ravel()[cells.interior] = True
                mask |= np.repeat(np.repeat(full, BLOCK, axis=0), BLOCK, axis=1).ravel()
                masks = {int(plane): mask}  # planes are visited in order: keep one
            inside = masks[int(plane)][fj[sel] * nx + fi[sel]]
            if np.any(inside):
                vals = dose[k, jj[sel[inside]], ii[sel[inside]]]
                lo, hi = min(lo, float(vals.min())), max(hi, float(vals.max()))
    return lo, hi


def roi_dvh(
    raster: RasterisedROI,
    dose_gy: NDArray[np.floating],
    dose_geometry: GridGeometry,
    *,
    prescription_gy: float | None = None,
    bin_width_gy: float | None = None,
) -> DVH:
    """DVH of a rasterised ROI: trilinear dose (Gy) of ``dose_gy`` (z, y, x) on ``dose_geometry``
    at the stratified samples (module docstring); Dmin/Dmax include slab walls and end caps.
    ``voxel_dmax_gy`` is the largest dose-grid value at a grid node inside the ROI (NaN if no
    node is inside)."""
    dose = np.asarray(dose_gy)
    if dose.dtype not in (np.float32, np.float64):
        dose = dose.astype(np.float64)
    dose = np.ascontiguousarray(dose)
    if tuple(dose.shape) != dose_geometry.shape_zyx:
        raise ValueError("dose shape does not match the dose geometry")
    bw = default_bin_width_gy(prescription_gy) if bin_width_gy is None else float(bin_width_gy)
    builder = HistogramBuilder(bw, _dose_bound_gy(dose, dose_geometry, raster), name=raster.name)
    aff = _world_to_dose_affine(dose_geometry)
    h = raster.h_mm
    big = BLOCK * h
    nx = raster.xs_mm.size
    nbx = nx // BLOCK
    off_int = np.ascontiguousarray(_sub_offsets(INTERIOR_SAMPLES))
    off_one = np.zeros((1, 3))
    slabs = raster.slabs
    surf_lo, surf_hi = np.inf, -np.inf
    x0, y0 = float(raster.xs_mm[0]), float(raster.ys_mm[0])
    inside_box = _inside_dose_box(raster, dose_geometry)
    for p, cells in enumerate(raster.cells):
        z_lo, z_hi = float(slabs.lower[p]), float(slabs.upper[p])
        t = z_hi - z_lo
        if cells.interior.size:
            bj, bi = np.divmod(cells.interior, nbx)
            cx = x0 + (bi * BLOCK + 0.5 * (BLOCK - 1)) * h
            cy = y0 + (bj * BLOCK + 0.5 * (BLOCK - 1)) * h
            m_z = max(1, math.ceil(t / big - 1e-9))
            n_s = m_z * INTERIOR_SAMPLES
            d = np.empty((cx.size, n_s))
            ok = np.empty((cx.size, n_s), dtype=np.bool_)
            column_samples(
                dose,
                aff,
                cx,
                cy,
                big,
                z_lo,
                z_hi,
                m_z,
                off_int,
                0.5 / INTERIOR_SAMPLES,
                JITTER,
                7919 * p,
                inside_box,
                d,
                ok,
            )
            w = np.full(cx.size, big * big * t / 1000.0 / n_s)
            builder.add(d, ok, w, np.ones(cx.size, dtype=np.bool_))
        if cells.surface.size:
            fj, fi = np.divmod(cells.surface, nx)
            cx = x0 + fi * h
            cy = y0 + fj * h
            m_z = max(1, math.ceil(t / h - 1e-9))
            d = np.empty((cx.size, m_z))
            ok = np.empty((cx.size, m_z), dtype=np.bool_)
            column_samples(
                dose,
                aff,
                cx,
                cy,
                h,
                z_lo,
                z_hi,
                m_z,
                off_one,
                0.5,
                JITTER,
                104729 * p + 1,
                inside_box,
                d,
                ok,
            )
            cover = cells.surface_cover.astype(np.float64)
            builder.add(d, ok, cover * (h * h * t / 1000.0 / m_z), cover >= 1.0 - 1e-6)
        # Surface extremes: the slab's side walls …
        vx, vy, starts = _poly_arrays(slabs.polys[p])
        z_levels = np.linspace(z_lo, z_hi, max(1, math.ceil(t / h - 1e-9)) + 1)
        lo, hi = wall_extremes(dose, aff, vx, vy, starts, z_levels, h)
        surf_lo, surf_hi = min(surf_lo, lo), max(surf_hi, hi)
        # … and the end-cap faces.
        if cells.cap_inside.size:
            fj, fi = np.divmod(cells.cap_inside, nx)
            for z_cap, is_cap in ((z_lo, slabs.is_first(p)), (z_hi, slabs.is_last(p))):
                if not is_cap:
                    continue
                pts = np.column_stack([x0 + fi * h, y0 + fj * h, np.full(fi.size, z_cap)])
                kji = pts @ aff[:, :3].T + aff[:, 3]
                if inside_box:
                    kji = np.clip(kji, -0.5, np.asarray(dose.shape) - 0.5)
                kji = np.ascontiguousarray(kji)
                d = np.empty((kji.shape[0], 1))
                ok = np.empty((kji.shape[0], 1), dtype=np.bool_)
                points_dose(dose, kji, d, ok)
                surf_lo, surf_hi = min(surf_lo, float(d.min())), max(surf_hi, float(d.max()))
    node_lo, node_hi = _inside_node_extremes(raster, dose, dose_geometry)
    surf_lo, surf_hi = min(surf_lo, node_lo), max(surf_hi, node_hi)
    extra = np.array([surf_lo, surf_hi]) if math.isfinite(surf_hi) else None
    return builder.build(
        prescription_gy=prescription_gy,
        extra_dose_gy=extra,
        voxel_dmax_gy=node_hi if math.isfinite(node_hi) else math.nan,
        method=raster.method,
    )
