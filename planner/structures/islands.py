"""Islands (connected components): keep the largest, keep the one under a click, remove small.

Connectivity: ``connectivity=1`` joins voxels sharing a face (6 neighbours, the default, like
Slicer's Islands effect), ``2`` also edges (18), ``3`` also corners (26). Volumes are in mm³ on
the real voxel size. Each function returns a patch (:mod:`planner.structures.patch`) bounding
the removed voxels; the mask is never modified.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.patch import (
    Box,
    Patch,
    bounding_box,
    check_mask,
    check_positive_mm,
    patch_from_change,
    point_index,
)

__all__ = ["island_volumes_mm3", "keep_island_at", "keep_largest_island", "remove_small_islands"]


def _labels(
    mask: NDArray[np.bool_], connectivity: int, name: str
) -> tuple[Box, NDArray[np.int32], int]:
    if connectivity not in (1, 2, 3):
        raise InputError(
            f"connectivity must be 1 (faces), 2 (edges) or 3 (corners), got {connectivity!r}"
        )
    box = bounding_box(mask)
    if box is None:
        raise InputError(f"{name}: the mask is empty: no islands")
    structure = ndimage.generate_binary_structure(3, connectivity)
    labels, n = ndimage.label(mask[box], structure=structure)
    return box, labels, int(n)


def island_volumes_mm3(
    mask: ArrayLike, geometry: GridGeometry, *, connectivity: int = 1, name: str = "structure"
) -> NDArray[np.float64]:
    """Volumes (mm³) of the mask's islands, largest first."""
    m = check_mask(mask, geometry, name)
    _, labels, n = _labels(m, connectivity, name)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return np.sort(counts)[::-1] * geometry.voxel_volume_mm3


def keep_largest_island(
    mask: ArrayLike, geometry: GridGeometry, *, connectivity: int = 1, name: str = "structure"
) -> Patch:
    """Keep only the largest island (the first in index order among equals)."""
    m = check_mask(mask, geometry, name)
    box, labels, n = _labels(m, connectivity, name)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    counts[0] = 0
    keep = labels == int(np.argmax(counts))
    return patch_from_change(m[box], keep, box)


def remove_small_islands(
    mask: ArrayLike,
    geometry: GridGeometry,
    min_volume_mm3: float,
    *,
    connectivity: int = 1,
    name: str = "structure",
) -> Patch:
    """Remove every island smaller than ``min_volume_mm3`` (mm³, > 0)."""
    m = check_mask(mask, geometry, name)
    v_min = check_positive_mm(min_volume_mm3, "min_volume_mm3")
    box, labels, n = _labels(m, connectivity, name)
    volumes = np.bincount(labels.ravel(), minlength=n + 1) * geometry.voxel_volume_mm3
    big = volumes >= v_min
    big[0] = False
    return patch_from_change(m[box], big[labels], box)


def keep_island_at(
    mask: ArrayLike,
    geometry: GridGeometry,
    point_mm: ArrayLike,
    *,
    connectivity: int = 1,
    name: str = "structure",
) -> Patch:
    """Keep only the island containing the voxel at ``point_mm`` (LPS mm)."""
    m = check_mask(mask, geometry, name)
    k, j, i = point_index(geometry, point_mm, "click")
    if not m[k, j, i]:
        raise InputError(
            f"{name}: the click at {np.round(point_mm, 1).tolist()} mm is not inside it"
        )
    box, labels, _ = _labels(m, connectivity, name)
    label = labels[k - box[0].start, j - box[1].start, i - box[2].start]
    return patch_from_change(m[box], labels == label, box)
