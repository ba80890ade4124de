"""The patch contract shared by every contouring operation.

Every editing function takes the current mask — a read-only bool array ``(z, y, x)`` on the CT
grid — and the grid's :class:`~dose.geometry.GridGeometry`, and returns a :data:`Patch`
``(box, new_values)``: ``box`` is a tuple of three slices ``(z, y, x)`` bounding the change and
``new_values`` a bool array of the box's shape holding the mask's new content there. The input
is never modified; :func:`apply_patch` makes the edited copy (the plan document stores the patch
and the old box content for undo, so memory grows with the edit, not the volume).

A patch whose box is empty (zero voxels) means "nothing changed".
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry

__all__ = [
    "Box",
    "Patch",
    "apply_patch",
    "bounding_box",
    "check_mask",
    "check_positive_mm",
    "empty_patch",
    "full_box",
    "grow_box",
    "patch_from_change",
    "point_index",
]

Box: TypeAlias = tuple[slice, slice, slice]
Patch: TypeAlias = tuple[Box, NDArray[np.bool_]]


def full_box(shape_zyx: tuple[int, ...]) -> Box:
    """The box covering a whole volume of ``shape_zyx``."""
    return (slice(0, shape_zyx[0]), slice(0, shape_zyx[1]), slice(0, shape_zyx[2]))


def empty_patch() -> Patch:
    """The patch that changes nothing."""
    return (slice(0, 0), slice(0, 0), slice(0, 0)), np.zeros((0, 0, 0), dtype=bool)


def check_mask(mask: ArrayLike, geometry: GridGeometry, what: str = "mask") -> NDArray[np.bool_]:
    """``mask`` as a bool array on ``geometry`` (no copy when it already is one).

    Raises InputError when it is not 3-D or not of the grid's shape."""
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "biu":
            raise InputError(f"{what}: expected a boolean label mask, got dtype {arr.dtype}")
        arr = arr != 0
    if arr.shape != tuple(geometry.shape_zyx):
        raise InputError(
            f"{what}: shape {arr.shape} does not match the CT grid {tuple(geometry.shape_zyx)}"
        )
    return arr


def check_positive_mm(value: float, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float; InputError when it is not finite and positive (or zero)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of millimetres, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "zero or positive" if allow_zero else "positive"
        raise InputError(f"{name} must be {need} (mm), got {value!r}")
    return v


def bounding_box(mask: NDArray[np.bool_]) -> Box | None:
    """Tight box around the True voxels of ``mask``; None when it is empty."""
    boxes = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        boxes.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return boxes[0], boxes[1], boxes[2]


def grow_box(box: Box, pad_zyx: ArrayLike, shape_zyx: tuple[int, ...]) -> Box:
    """``box`` widened by ``pad_zyx`` voxels on each side, clipped to ``shape_zyx``."""
    pad = np.broadcast_to(np.asarray(pad_zyx, dtype=np.int64), (3,))
    out = [
        slice(max(0, s.start - int(p)), min(int(n), s.stop + int(p)))
        for s, p, n in zip(box, pad, shape_zyx, strict=True)
    ]
    return out[0], out[1], out[2]


def patch_from_change(
    old: NDArray[np.bool_], new: NDArray[np.bool_], offset: Box | None = None
) -> Patch:
    """The tight patch turning ``old`` into ``new`` (same shape; both may be crops of the volume
    starting at ``offset``'s starts). Empty when they are equal."""
    diff = old != new
    box = bounding_box(diff)
    if box is None:
        return empty_patch()
    starts = [0, 0, 0] if offset is None else [s.start for s in offset]
    values = new[box].copy()
    shifted = tuple(slice(b.start + o, b.stop + o) for b, o in zip(box, starts, strict=True))
    return (shifted[0], shifted[1], shifted[2]), values


def apply_patch(mask: NDArray[np.bool_], patch: Patch) -> NDArray[np.bool_]:
    """A copy of ``mask`` with the patch applied (``mask`` itself is not modified)."""
    box, values = patch
    out = np.array(mask, dtype=bool, copy=True)
    if values.size:
        out[box] = values
    return out


def point_index(
    geometry: GridGeometry, point_mm: ArrayLike, what: str = "point"
) -> tuple[int, ...]:
    """Nearest voxel ``(k, j, i)`` of an LPS point (mm); InputError when it is outside the grid."""
    p = np.asarray(point_mm, dtype=np.float64).reshape(-1)
    if p.size != 3 or not np.all(np.isfinite(p)):
        raise InputError(f"{what} must be three finite LPS coordinates in mm, got {point_mm!r}")
    kji = np.rint(geometry.world_to_zyx(p)).astype(np.int64)
    if np.any(kji < 0) or np.any(kji >= np.asarray(geometry.shape_zyx)):
        raise InputError(f"{what} {np.round(p, 1).tolist()} mm is outside the CT volume")
    return int(kji[0]), int(kji[1]), int(kji[2])
