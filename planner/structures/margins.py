"""Margins in mm: expand and shrink a mask by an isotropic or per-axis distance.

Method: a signed distance on the real voxel spacing (scipy's exact EDT with ``sampling``),
measured to the mask's surface rather than to its voxel centres: the EDT's feature map gives the
offset ``v`` to the nearest voxel on the other side, and the surface lies ``c(v)`` before that
centre — half a voxel along an axis (a flat face sits halfway between centres), little on
oblique offsets (see :func:`_surface_distance_scaled`). This removes the half-voxel bias of a
centre-to-centre distance (1.25 mm along 2.5 mm slices): a sphere of 10 mm expanded by 5 mm on
0.8 × 0.8 × 2.5 mm voxels has the volume of a 15 mm sphere to about 1 %.

* ``expand``: a voxel joins when its centre is within the margin of the mask (≤, ties join).
* ``shrink``: a voxel stays when its centre is at least the margin from the outside.
* Per-axis margins ``(x_mm, y_mm, z_mm)`` are along the patient axes (LPS: right–left,
  anterior–posterior, inferior–superior, each symmetric): the Minkowski sum with an ellipsoid of
  those semi-axes, computed as an EDT with ``sampling = spacing / margin`` thresholded at 1. They
  need a grid whose axes lie along the patient axes (any order or sign); a rotated grid takes
  isotropic margins only (refused with a clear message otherwise). A zero entry leaves that axis
  alone.
* A margin below one voxel (smaller than the finest spacing) is refused; along an axis whose
  spacing is coarser than the margin, the margin is resolved to the nearest voxel face (error
  ≤ half that spacing).
* Outside the grid: an expansion simply stops at the edge; a mask cut by the grid edge is taken
  to continue beyond it (a shrink does not eat in from the edge of the scan).

Both return a patch (see :mod:`planner.structures.patch`) bounding the change.
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
    grow_box,
    patch_from_change,
)

__all__ = ["expand", "index_axis_margins_mm", "shrink"]

_AXIS_NAMES = ("x (right-left)", "y (anterior-posterior)", "z (inferior-superior)")
_TIE = 1e-9


def index_axis_margins_mm(
    geometry: GridGeometry, margin_mm: float | ArrayLike, *, name: str = "structure"
) -> NDArray[np.float64]:
    """The margin along the grid's index axes ``(k, j, i)`` = (z, y, x), mm, after checks.

    ``margin_mm``: one number (isotropic) or three ``(x_mm, y_mm, z_mm)`` along the LPS axes.
    Raises InputError for negative or non-finite values, an all-zero margin, a margin below one
    voxel, or per-axis margins on a rotated grid."""
    arr = np.asarray(margin_mm, dtype=np.float64).reshape(-1)
    if arr.size not in (1, 3) or not np.all(np.isfinite(arr)):
        raise InputError(
            f"{name}: margin must be one number or three (x_mm, y_mm, z_mm), got {margin_mm!r}"
        )
    if np.any(arr < 0):
        raise InputError(f"{name}: margin must not be negative, got {arr.tolist()} mm")
    if not np.any(arr > 0):
        raise InputError(f"{name}: margin is zero: nothing to do")
    finest = float(geometry.spacing_mm.min())
    small = arr[(arr > 0) & (arr < finest - 1e-9)]
    if small.size:
        raise InputError(
            f"{name}: margin {small[0]:g} mm is below one voxel (finest spacing {finest:.2f} mm);"
            " use at least one voxel"
        )
    if arr.size == 1:
        return np.full(3, arr[0])
    # Per-axis: index axis a (i, j, k) must lie along one LPS axis.
    out_ijk = np.zeros(3)
    for a in range(3):
        col = np.abs(geometry.direction[:, a])
        w = int(np.argmax(col))
        if col[w] < 1 - 1e-4:
            raise InputError(
                f"{name}: per-axis margins need a grid aligned with the patient axes; this CT "
                "is rotated: use one isotropic margin"
            )
        out_ijk[a] = arr[w]
    return out_ijk[::-1].copy()


def _surface_distance_scaled(
    features: NDArray[np.bool_], sampling_zyx: NDArray[np.float64]
) -> NDArray[np.float64]:
    """For every voxel, the scaled distance to the surface of the ``features`` voxels (0 on
    them), with ``sampling_zyx`` the per-axis scale (spacing / margin).

    ``|v| - c(v)``: ``v`` the offset to the nearest feature voxel centre (exact EDT feature
    map) and ``c = 1/2 · sum_a s_a · u_a⁴`` (``u = v/|v|``) the distance from that centre to the
    surface: half a voxel along an axis, where a flat face lies halfway between the centres, and
    falling off on oblique offsets, where the staircase's nearest centres lie close to the true
    surface. Calibrated on voxelised spheres (tests/test_structures_margins.py)."""
    idx = ndimage.distance_transform_edt(
        ~features, sampling=sampling_zyx, return_distances=False, return_indices=True
    )
    v = np.empty((3, *features.shape), dtype=np.float64)
    for a in range(3):
        shape = [1, 1, 1]
        shape[a] = features.shape[a]
        here = np.arange(features.shape[a]).reshape(shape)
        v[a] = (idx[a] - here) * sampling_zyx[a]
    del idx
    d = np.sqrt(np.einsum("a...,a...->...", v, v))
    safe = np.where(d > 0, d, 1.0)
    c = np.zeros_like(d)
    for a in range(3):
        c += sampling_zyx[a] * (v[a] / safe) ** 4
    return np.where(d > 0, d - 0.5 * c, 0.0)


#: Largest crop processed in one piece (voxels); bigger ones go in overlapping slabs along k,
#: which bounds memory (~70 B per voxel of a piece, ≤ 0.3 GB) without changing the result.
_MAX_PIECE_VOXELS = 4_000_000


def _near(
    features: NDArray[np.bool_], sampling_zyx: NDArray[np.float64], *, inclusive: bool
) -> NDArray[np.bool_]:
    """Voxels whose scaled surface distance to ``features`` is ≤ 1 (``inclusive``) or < 1."""
    nz = features.shape[0]
    per_slice = max(1, features[0].size)
    # Features farther than the margin along k never matter: 1/sampling_k slices (+1).
    reach = int(min(nz, np.ceil(1.0 / sampling_zyx[0]) + 1))
    slab = max(1, _MAX_PIECE_VOXELS // per_slice - 2 * reach)
    out = np.zeros(features.shape, dtype=bool)
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        lo, hi = max(0, z0 - reach), min(nz, z1 + reach)
        piece = features[lo:hi]
        if not piece.any():
            continue
        d = _surface_distance_scaled(piece, sampling_zyx)[z0 - lo : z1 - lo]
        out[z0:z1] = d <= 1.0 + _TIE if inclusive else d < 1.0 - _TIE
    return out


def _sampling(geometry: GridGeometry, m_zyx: NDArray[np.float64]) -> NDArray[np.float64]:
    spacing_zyx = geometry.spacing_mm[::-1]
    big = 1e6 * float(spacing_zyx.max() / max(m_zyx.max(), 1e-9))
    return np.where(m_zyx > 0, spacing_zyx / np.where(m_zyx > 0, m_zyx, 1.0), big)


def _nonempty_box(mask: NDArray[np.bool_], name: str, verb: str) -> Box:
    box = bounding_box(mask)
    if box is None:
        raise InputError(f"{name}: the mask is empty: nothing to {verb}")
    return box


def expand(
    mask: ArrayLike,
    geometry: GridGeometry,
    margin_mm: float | ArrayLike,
    *,
    name: str = "structure",
) -> Patch:
    """Grow ``mask`` by ``margin_mm`` (one number, or ``(x_mm, y_mm, z_mm)`` along LPS axes).

    Parameters
    ----------
    mask : (z, y, x) bool ndarray on ``geometry``, read only
    margin_mm : float or (3,) float, mm, each >= one voxel (or 0 on an axis for per-axis)
    name : the structure's name for error messages

    Returns
    -------
    Patch bounding the added voxels.
    """
    m = check_mask(mask, geometry, name)
    m_zyx = index_axis_margins_mm(geometry, margin_mm, name=name)
    box = _nonempty_box(m, name, "expand")
    reach = np.ceil(m_zyx / geometry.spacing_mm[::-1]).astype(np.int64) + 1
    crop_box = grow_box(box, reach, geometry.shape_zyx)
    crop = m[crop_box]
    new = crop | _near(crop, _sampling(geometry, m_zyx), inclusive=True)
    return patch_from_change(crop, new, crop_box)


def shrink(
    mask: ArrayLike,
    geometry: GridGeometry,
    margin_mm: float | ArrayLike,
    *,
    name: str = "structure",
) -> Patch:
    """Shrink ``mask`` by ``margin_mm`` (as in :func:`expand`); the patch bounds the removed
    voxels. Shrinking by more than the structure's half-thickness empties it (allowed)."""
    m = check_mask(mask, geometry, name)
    m_zyx = index_axis_margins_mm(geometry, margin_mm, name=name)
    box = _nonempty_box(m, name, "shrink")
    crop_box = grow_box(box, 1, geometry.shape_zyx)
    crop = m[crop_box]
    outside = ~crop
    if not outside.any():  # the mask fills the crop and runs off every grid edge
        return patch_from_change(crop, crop, crop_box)
    new = crop & ~_near(outside, _sampling(geometry, m_zyx), inclusive=False)
    return patch_from_change(crop, new, crop_box)
