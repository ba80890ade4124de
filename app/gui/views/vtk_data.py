"""Conversions from the planner's numpy model to VTK data objects (no rendering here).

Positions always come from :class:`dose.geometry.GridGeometry`: either VTK is handed the same
origin/spacing/direction (``vtkImageData`` with a direction matrix, VTK ≥ 9) or index-space
points are mapped with :meth:`GridGeometry.index_to_world`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, Mask

__all__ = [
    "body_extent_ijk",
    "body_image",
    "body_mask",
    "bone_surface_world",
    "downsample_mean",
    "image_from_volume",
    "isosurface_world",
    "mask_surface_cached",
    "mask_surface_world",
    "prepare_display",
    "set_polylines",
]

# id(mask.voxels) → (voxels, surface): the three 2-D views and the 3-D view share one surface.
_SURFACE_CACHE: dict[int, tuple[NDArray[np.bool_], vtkPolyData]] = {}
_SURFACE_CACHE_SIZE = 8
# id(volume.hu) → (hu, geometry, image): shared by all views of the current volume.
_IMAGE_CACHE: dict[int, tuple[NDArray[np.generic], GridGeometry, vtkImageData]] = {}
_IMAGE_CACHE_SIZE = 1  # holds the CT array: keep only the current one


def image_from_volume(volume: CTVolume) -> vtkImageData:
    """A ``vtkImageData`` with the geometry of ``volume`` (scalars: HU, int16 or float32).

    VTK's point order (x fastest) equals C order of the ``(z, y, x)`` array, so no transpose.
    The scalars *share* the volume's memory when it is C-contiguous int16/float32 (the CT is
    never modified in place), and the last few images are cached so that the four views of
    one volume hold one image, not four copies.
    """
    key = id(volume.hu)
    hit = _IMAGE_CACHE.get(key)
    if hit is not None and hit[0] is volume.hu and hit[1] is volume.geometry:
        return hit[2]
    image = _image_from_volume(volume)
    if len(_IMAGE_CACHE) >= _IMAGE_CACHE_SIZE:
        _IMAGE_CACHE.pop(next(iter(_IMAGE_CACHE)))
    _IMAGE_CACHE[key] = (volume.hu, volume.geometry, image)
    return image


def _image_from_volume(volume: CTVolume) -> vtkImageData:
    geometry = volume.geometry
    hu = np.ascontiguousarray(volume.hu)
    if hu.dtype not in (np.int16, np.float32):
        hu = hu.astype(np.float32)
    image = vtkImageData()
    image.SetDimensions(*geometry.shape_xyz)
    image.SetOrigin(*geometry.origin_mm)
    image.SetSpacing(*geometry.spacing_mm)
    image.SetDirectionMatrix(geometry.direction.ravel().tolist())  # row-major 3×3
    # deep=False: VTK keeps a reference to the numpy array (no copy of a 100+ MB CT).
    scalars = numpy_to_vtk(hu.ravel(), deep=False)
    scalars.SetName("HU")
    image.GetPointData().SetScalars(scalars)
    return image


def downsample_mean(
    array_zyx: NDArray[np.generic], max_in_plane: int
) -> tuple[NDArray[np.float32], int]:
    """Block-mean ``(z, y, x)`` by an integer factor in y and x so both are ≤ ``max_in_plane``.

    Returns the float32 array and the factor ``f`` (z is kept: CT slices are already thick).
    Averaging (not striding) also lowers noise before isosurfacing.
    """
    nz, ny, nx = array_zyx.shape
    f = max(1, int(np.ceil(max(ny, nx) / max_in_plane)))
    if f == 1:
        return array_zyx.astype(np.float32, copy=False), 1
    ny2, nx2 = ny // f, nx // f
    cropped = np.asarray(array_zyx[:, : ny2 * f, : nx2 * f], dtype=np.float32)
    return cropped.reshape(nz, ny2, f, nx2, f).mean(axis=(2, 4)), f


def isosurface_world(
    array_zyx: NDArray[np.generic],
    geometry: GridGeometry,
    level: float,
    *,
    index_offset_ijk: tuple[float, float, float] = (0.0, 0.0, 0.0),
    index_scale_ijk: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> vtkPolyData:
    """Isosurface of ``array_zyx`` at ``level`` with points and normals in LPS mm.

    ``array_zyx[k, j, i]`` sits at continuous index ``offset + scale * (i, j, k)`` of
    ``geometry`` (for crops and block-downsampled copies). The surface is extracted in a
    metric (spacing-scaled) frame so the normals are right, then rotated into LPS.
    """
    data = np.ascontiguousarray(array_zyx, dtype=np.float32)
    nz, ny, nx = data.shape
    if min(nz, ny, nx) < 2:  # a flat grid has no 3-D surface (VTK would report an error)
        return vtkPolyData()
    spacing = np.asarray(geometry.spacing_mm)
    scale = np.asarray(index_scale_ijk, float)
    offset = np.asarray(index_offset_ijk, float)
    image = vtkImageData()
    image.SetDimensions(nx, ny, nz)
    image.SetSpacing(*(spacing * scale))
    image.SetOrigin(*(spacing * offset))
    image.GetPointData().SetScalars(numpy_to_vtk(data.ravel(), deep=True))
    fe = vtkFlyingEdges3D()
    fe.SetInputData(image)
    fe.SetValue(0, float(level))
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    surface = vtkPolyData()
    surface.DeepCopy(fe.GetOutput())
    n_points = surface.GetNumberOfPoints()
    if n_points == 0:
        return surface
    metric = vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)
    # metric = spacing * ijk  →  world = origin + direction @ (spacing * ijk)
    world = geometry.origin_mm + metric @ np.asarray(geometry.direction).T
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(world), deep=True))
    surface.SetPoints(points)
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.Update()
    out = vtkPolyData()
    out.DeepCopy(normals.GetOutput())
    return out


def mask_surface_world(mask: Mask, *, max_in_plane: int = 256) -> vtkPolyData:
    """Surface of a binary mask (0.5 level) in LPS mm, computed on its bounding-box crop."""
    voxels = mask.voxels
    if not voxels.any():
        return vtkPolyData()
    nz_idx = np.nonzero(voxels)
    lo = [max(0, int(a.min()) - 1) for a in nz_idx]  # (k, j, i) with a 1-voxel border
    hi = [min(n, int(a.max()) + 2) for a, n in zip(nz_idx, voxels.shape, strict=True)]
    crop = voxels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32)
    crop = np.pad(crop, 1)  # closed surfaces even where the mask touches the crop edge
    f = max(1, int(np.ceil(max(crop.shape[1:]) / max_in_plane)))
    offset = (lo[2] - 1.0, lo[1] - 1.0, lo[0] - 1.0)
    if f > 1:
        crop, f = downsample_mean(crop, max(crop.shape[1:]) // f)
        offset = (offset[0] + (f - 1) / 2.0, offset[1] + (f - 1) / 2.0, offset[2])
    return isosurface_world(
        crop, mask.geometry, 0.5, index_offset_ijk=offset, index_scale_ijk=(f, f, 1.0)
    )


def mask_surface_cached(mask: Mask) -> vtkPolyData:
    """:func:`mask_surface_world`, computed once per mask array (small LRU by identity)."""
    key = id(mask.voxels)
    hit = _SURFACE_CACHE.get(key)
    if hit is not None and hit[0] is mask.voxels:
        return hit[1]
    surface = mask_surface_world(mask)
    if len(_SURFACE_CACHE) >= _SURFACE_CACHE_SIZE:
        _SURFACE_CACHE.pop(next(iter(_SURFACE_CACHE)))
    _SURFACE_CACHE[key] = (mask.voxels, surface)
    return surface


#: HU above which a voxel belongs to the patient (skin, fat, muscle, bone; not air or noise).
BODY_THRESHOLD_HU = -400.0
_MAX_IN_PLANE_VOXELS = 160
_BODY_CACHE: dict[int, tuple[NDArray[np.generic], NDArray[np.bool_], int, NDArray[np.float32]]] = {}


def prepare_display(volume: CTVolume) -> None:
    """Compute (and cache) what the 3-D layers need that costs time — the block-averaged CT
    and the body mask — so a loader's worker thread can do it instead of the GUI thread."""
    _body_crop(volume.hu, 3)


def _body_small(hu_zyx: NDArray[np.generic]) -> tuple[NDArray[np.bool_], int]:
    """The body on a block-averaged copy (factor ``f`` in y and x): the largest connected
    region above :data:`BODY_THRESHOLD_HU`, holes filled (lungs are inside the body)."""
    from scipy import ndimage  # lazily: ~1 s of import at window start

    key = id(hu_zyx)
    hit = _BODY_CACHE.get(key)
    if hit is not None and hit[0] is hu_zyx:
        return hit[1], hit[2]
    small, f = downsample_mean(hu_zyx, _MAX_IN_PLANE_VOXELS)
    labels, n = ndimage.label(small > BODY_THRESHOLD_HU)
    if n == 0:
        body = np.ones(small.shape, bool)
    else:
        sizes = np.bincount(labels.ravel())[1:]
        body = labels == int(np.argmax(sizes)) + 1
        body = np.stack([ndimage.binary_fill_holes(plane) for plane in body])
    _BODY_CACHE.clear()  # one volume at a time
    _BODY_CACHE[key] = (hu_zyx, body, f, small)
    return body, f


def _small_copy(hu_zyx: NDArray[np.generic]) -> NDArray[np.float32]:
    """The block-averaged copy :func:`_body_small` made (cached with it)."""
    _body_small(hu_zyx)
    return _BODY_CACHE[id(hu_zyx)][3]


def body_extent_ijk(hu_zyx: NDArray[np.generic], *, margin_voxels: int = 3) -> tuple[int, ...]:
    """Index box ``(i0, i1, j0, j1, k0, k1)`` (inclusive) of the patient's body, grown by
    ``margin_voxels`` (of the full grid); the whole grid when no body is found."""
    from scipy import ndimage

    nz, ny, nx = hu_zyx.shape
    body, f = _body_small(hu_zyx)
    k_sl, j_sl, i_sl = ndimage.find_objects(body.astype(np.int8))[0]
    m = margin_voxels
    return (
        max(0, i_sl.start * f - m),
        min(nx - 1, i_sl.stop * f - 1 + m),
        max(0, j_sl.start * f - m),
        min(ny - 1, j_sl.stop * f - 1 + m),
        max(0, k_sl.start - m),
        min(nz - 1, k_sl.stop - 1 + m),
    )


def body_mask(hu_zyx: NDArray[np.generic]) -> NDArray[np.bool_]:
    """The body (see :func:`_body_small`) on the full grid ``(z, y, x)``, one block wider."""
    from scipy import ndimage  # lazily: ~1 s of import at window start

    body, f = _body_small(hu_zyx)
    body = ndimage.binary_dilation(body, iterations=1)
    full = np.repeat(np.repeat(body, f, axis=1), f, axis=2)
    out = np.zeros(hu_zyx.shape, bool)
    ny, nx = min(full.shape[1], out.shape[1]), min(full.shape[2], out.shape[2])
    out[:, :ny, :nx] = full[:, :ny, :nx]
    return out


def bone_surface_world(volume: CTVolume, threshold_hu: float) -> vtkPolyData:
    """Bone isosurface (LPS mm) of the body only, from a block-averaged copy (≤ 160 in-plane).

    Averaging keeps it interactive with software OpenGL; outside :func:`body_extent_ijk` the
    copy is set to air, so no couch or stray fragment beside the patient becomes "bone".
    """
    from scipy import ndimage  # lazily: ~1 s of import at window start

    body, f = _body_small(volume.hu)
    small = _small_copy(volume.hu)
    small = np.where(ndimage.binary_dilation(body, iterations=1), small, np.float32(-1000.0))
    offset = ((f - 1) / 2.0, (f - 1) / 2.0, 0.0)
    return isosurface_world(
        small, volume.geometry, threshold_hu, index_offset_ijk=offset, index_scale_ijk=(f, f, 1.0)
    )


_CROP_CACHE: dict[tuple[int, int], tuple[NDArray[np.generic], NDArray[np.generic], tuple[int, ...]]]
_CROP_CACHE = {}


def _body_crop(
    hu_zyx: NDArray[np.generic], margin_voxels: int
) -> tuple[NDArray[np.generic], tuple[int, ...]]:
    """The CT inside :func:`body_extent_ijk`, air (-1000 HU) outside :func:`body_mask`;
    and the crop's first index ``(i0, j0, k0)``. Cached for the current volume."""
    key = (id(hu_zyx), margin_voxels)
    hit = _CROP_CACHE.get(key)
    if hit is not None and hit[0] is hu_zyx:
        return hit[1], hit[2]
    i0, i1, j0, j1, k0, k1 = body_extent_ijk(hu_zyx, margin_voxels=margin_voxels)
    box = np.s_[k0 : k1 + 1, j0 : j1 + 1, i0 : i1 + 1]
    dtype = hu_zyx.dtype if hu_zyx.dtype in (np.int16, np.float32) else np.float32
    crop = np.where(body_mask(hu_zyx)[box], hu_zyx[box], -1000).astype(dtype)
    _CROP_CACHE.clear()
    _CROP_CACHE[key] = (hu_zyx, crop, (i0, j0, k0))
    return crop, (i0, j0, k0)


def body_image(volume: CTVolume, *, margin_voxels: int = 3) -> vtkImageData:
    """``vtkImageData`` of the body only: the CT cropped to :func:`body_extent_ijk`, with
    everything outside :func:`body_mask` (couch, air) set to -1000 HU. The geometry is kept
    exactly: the crop's origin is the world position of its first voxel, same spacing and
    direction."""
    g = volume.geometry
    crop, (i0, j0, k0) = _body_crop(volume.hu, margin_voxels)
    image = vtkImageData()
    image.SetDimensions(crop.shape[2], crop.shape[1], crop.shape[0])
    image.SetOrigin(*g.index_to_world(np.array([i0, j0, k0], float)))
    image.SetSpacing(*g.spacing_mm)
    image.SetDirectionMatrix(g.direction.ravel().tolist())
    scalars = numpy_to_vtk(crop.ravel(), deep=True)
    scalars.SetName("HU")
    image.GetPointData().SetScalars(scalars)
    return image


def set_polylines(
    polydata: vtkPolyData,
    points_mm: NDArray[np.float64],
    offsets: NDArray[np.int64],
    connectivity: NDArray[np.int64],
) -> None:
    """Fill ``polydata`` with ``points_mm`` (M, 3) and the polylines of VTK's cell layout:
    line ``c`` is ``connectivity[offsets[c]:offsets[c + 1]]`` (offsets (L + 1,), from 0)."""
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(np.ascontiguousarray(points_mm, dtype=np.float64), deep=True))
    cells = vtkCellArray()
    cells.SetData(
        numpy_to_vtkIdTypeArray(np.ascontiguousarray(offsets, dtype=np.int64), deep=True),
        numpy_to_vtkIdTypeArray(np.ascontiguousarray(connectivity, dtype=np.int64), deep=True),
    )
    polydata.SetPoints(vpts)
    polydata.SetLines(cells)
    polydata.Modified()
