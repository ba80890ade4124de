"""Structure masks: read-only bool labelmaps on the CT grid, boxes, patches and packed bits.

A mask is a ``(z, y, x)`` ndarray of bool on the plan's CT grid, never writable (so a plan can
share it with the plan before an edit). An edit of a mask is a *patch*: a box — a tuple of three
``slice`` objects (z, y, x) with step 1 — and the new bool values inside it, shape
``box_shape(box)``. The paint tools (planner/structures) return exactly such ``(box, values)``.

The undo history and plan files keep a box's contents as packed bits (``np.packbits`` of the C-order
ravel, 1 bit per voxel), so their memory follows the size of the edit, not of the volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Box",
    "PackedBox",
    "bounding_box",
    "box_intersection",
    "box_shape",
    "box_size",
    "box_union",
    "normalise_box",
    "patched",
    "readonly_mask",
    "relative_box",
]

#: (z, y, x) slices with integer start/stop and step 1.
Box = tuple[slice, slice, slice]


def readonly_mask(values: ArrayLike, shape_zyx: tuple[int, int, int]) -> NDArray[np.bool_]:
    """A C-contiguous, non-writable bool copy of ``values``; ValueError if its shape is not
    ``shape_zyx``. Values are taken as ``!= 0`` (label images: any label is inside)."""
    arr = np.asarray(values)
    if tuple(arr.shape) != tuple(shape_zyx):
        raise ValueError(f"mask shape {tuple(arr.shape)} is not the grid shape {tuple(shape_zyx)}")
    if arr.dtype != np.bool_:
        arr = arr != 0
    out = np.array(arr, dtype=np.bool_, order="C", copy=True)
    out.setflags(write=False)
    return out


def normalise_box(box: Box | tuple[slice, ...], shape_zyx: tuple[int, int, int]) -> Box:
    """``box`` with explicit, in-range start/stop (ValueError for steps ≠ 1, wrong arity, or a
    box outside the grid). Empty boxes are allowed (start == stop)."""
    if len(box) != 3 or not all(isinstance(s, slice) for s in box):
        raise ValueError("a mask box is a tuple of 3 slices (z, y, x)")
    out = []
    for s, n, axis in zip(box, shape_zyx, "zyx", strict=True):
        if s.step not in (None, 1):
            raise ValueError(f"mask box {axis} slice must have step 1, got {s.step}")
        start = 0 if s.start is None else int(s.start)
        stop = n if s.stop is None else int(s.stop)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"mask box {axis} range {start}:{stop} is outside the grid (0:{n})")
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


def box_shape(box: Box) -> tuple[int, int, int]:
    """Shape (z, y, x) of a normalised box."""
    return (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)


def box_size(box: Box) -> int:
    """Number of voxels in a normalised box."""
    z, y, x = box_shape(box)
    return z * y * x


def box_union(a: Box, b: Box) -> Box:
    """Smallest box holding two normalised boxes (an empty box adds nothing)."""
    if box_size(a) == 0:
        return b
    if box_size(b) == 0:
        return a
    return tuple(  # type: ignore[return-value]
        slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True)
    )


def box_intersection(a: Box, b: Box) -> Box:
    """The voxels two normalised boxes share (an empty box when none)."""
    out = []
    for p, q in zip(a, b, strict=True):
        lo, hi = max(p.start, q.start), min(p.stop, q.stop)
        out.append(slice(lo, max(lo, hi)))
    return (out[0], out[1], out[2])


def relative_box(inner: Box, outer: Box) -> Box:
    """``inner`` (inside ``outer``) in the coordinates of an array holding ``outer``."""
    return tuple(  # type: ignore[return-value]
        slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
    )


def bounding_box(mask: NDArray[np.bool_]) -> Box:
    """Smallest box holding every True voxel; the empty box ``(0:0, 0:0, 0:0)`` if none."""
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return (slice(0, 0), slice(0, 0), slice(0, 0))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return (out[0], out[1], out[2])


@dataclass(frozen=True)
class PackedBox:
    """The bool contents of a box, 1 bit per voxel.

    ``bits``: ``np.packbits(values.ravel())`` (C order, big-endian bit order) as bytes;
    ``count``: number of True voxels.
    """

    box: Box
    bits: bytes
    count: int

    @classmethod
    def pack(cls, box: Box, values: NDArray[np.bool_]) -> PackedBox:
        values = np.asarray(values, dtype=np.bool_)
        if values.shape != box_shape(box):
            raise ValueError(f"values of shape {values.shape} do not fill box {box_shape(box)}")
        return cls(box, np.packbits(values, axis=None).tobytes(), int(np.count_nonzero(values)))

    def unpack(self) -> NDArray[np.bool_]:
        """The box's values, shape ``box_shape(box)``."""
        shape = box_shape(self.box)
        n = shape[0] * shape[1] * shape[2]
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=n)
        return flat.astype(np.bool_).reshape(shape)

    @property
    def nbytes(self) -> int:
        return len(self.bits)


def patched(mask: NDArray[np.bool_], box: Box, values: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A new read-only mask: ``mask`` with ``values`` written into ``box`` (``mask`` unchanged)."""
    out = mask.copy()
    out[box] = values
    out.setflags(write=False)
    return out
