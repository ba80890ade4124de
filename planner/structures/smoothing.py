"""Smoothing a mask: median (majority), opening, closing, Gaussian; filling holes.

Kernels are in mm on the real voxel spacing: an ellipsoid of diameter ``kernel_mm`` (like
Slicer's "kernel size"), so 3 mm means ±1.5 mm in every direction whatever the slice spacing.
Along an axis whose spacing is larger than the kernel the footprint is one voxel thick there; a
kernel smaller than one voxel on every axis is refused. Masks that run off the grid edge are
taken to continue beyond it. Each function returns a patch bounding the change.

* ``median``: a voxel is inside when more than half of its footprint is (removes specks and
  fills pits, keeps edges);
* ``opening`` (erode then dilate): removes protrusions and islands thinner than the kernel;
* ``closing`` (dilate then erode): fills gaps and holes narrower than the kernel;
* ``gaussian``: the mask blurred with σ = ``kernel_mm`` / 4 (mm) and thresholded at 0.5;
* :func:`fill_holes`: fills enclosed cavities (3-D) or enclosed holes in each slice.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.patch import (
    Patch,
    bounding_box,
    check_mask,
    check_positive_mm,
    empty_patch,
    grow_box,
    patch_from_change,
)

__all__ = ["SMOOTHING_METHODS", "fill_holes", "footprint", "smooth"]

SMOOTHING_METHODS = ("median", "opening", "closing", "gaussian")


def footprint(geometry: GridGeometry, kernel_mm: float) -> NDArray[np.bool_]:
    """Ellipsoidal footprint (z, y, x) of diameter ``kernel_mm`` on the grid's spacing."""
    k = check_positive_mm(kernel_mm, "kernel_mm")
    spacing_zyx = geometry.spacing_mm[::-1]
    half = np.floor(0.5 * k / spacing_zyx + 1e-9).astype(np.int64)  # voxels each side
    if not np.any(half > 0):
        raise InputError(
            f"smoothing kernel {k:g} mm is below one voxel (finest spacing "
            f"{float(spacing_zyx.min()):.2f} mm); use at least "
            f"{2 * float(spacing_zyx.min()):.2f} mm"
        )
    grids = np.meshgrid(
        *[np.arange(-h, h + 1) * s for h, s in zip(half, spacing_zyx, strict=True)], indexing="ij"
    )
    r2 = sum(g**2 for g in grids)
    return r2 <= (0.5 * k) ** 2 + 1e-9


def smooth(
    mask: ArrayLike,
    geometry: GridGeometry,
    *,
    method: str = "median",
    kernel_mm: float = 3.0,
    name: str = "structure",
) -> Patch:
    """Smooth ``mask`` with ``method`` (one of :data:`SMOOTHING_METHODS`) and an ellipsoidal
    kernel of diameter ``kernel_mm`` (mm). Returns the patch of the change."""
    if method not in SMOOTHING_METHODS:
        raise InputError(
            f"unknown smoothing method {method!r} (use {', '.join(SMOOTHING_METHODS)})"
        )
    m = check_mask(mask, geometry, name)
    box = bounding_box(m)
    if box is None:
        raise InputError(f"{name}: the mask is empty: nothing to smooth")
    fp = footprint(geometry, kernel_mm)
    half = np.asarray(fp.shape) // 2
    if method == "gaussian":
        sigma_vox = (0.25 * float(kernel_mm)) / geometry.spacing_mm[::-1]
        half = np.maximum(half, np.ceil(4 * sigma_vox).astype(np.int64))
    pad = 2 * half + 1
    crop_box = grow_box(box, pad, geometry.shape_zyx)
    crop = m[crop_box]
    # Beyond the grid the mask continues as its edge voxels (np.pad "edge").
    work = np.pad(crop, [(int(p), int(p)) for p in pad], mode="edge")
    if method == "median":
        count = ndimage.correlate(work.astype(np.int32), fp.astype(np.int32), mode="nearest")
        out = 2 * count > int(fp.sum())
    elif method == "opening":
        out = ndimage.binary_dilation(ndimage.binary_erosion(work, fp, border_value=1), fp)
    elif method == "closing":
        out = ndimage.binary_erosion(ndimage.binary_dilation(work, fp), fp, border_value=1)
    else:
        blurred = ndimage.gaussian_filter(work.astype(np.float32), sigma_vox, mode="nearest")
        out = blurred >= 0.5
    core = tuple(slice(int(p), int(p) + n) for p, n in zip(pad, crop.shape, strict=True))
    return patch_from_change(crop, out[core], crop_box)


def fill_holes(
    mask: ArrayLike,
    geometry: GridGeometry,
    *,
    per_slice: bool = True,
    name: str = "structure",
) -> Patch:
    """Fill enclosed holes: in each axial (k) slice (``per_slice=True``, what a contour on a
    slice means) or enclosed 3-D cavities only. Returns the patch of the added voxels."""
    m = check_mask(mask, geometry, name)
    box = bounding_box(m)
    if box is None:
        return empty_patch()
    crop = m[box]
    if per_slice:
        out = np.stack([ndimage.binary_fill_holes(s) for s in crop])
    else:
        out = ndimage.binary_fill_holes(crop)
    return patch_from_change(crop, out, box)
