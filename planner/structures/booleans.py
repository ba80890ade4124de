"""Boolean operations between masks on one grid: union, intersection, subtraction, xor.

Each takes the current mask (edited) and one or more other masks (read only), all bool
``(z, y, x)`` on the same CT grid, and returns a patch (:mod:`planner.structures.patch`)
bounding the voxels that change (empty when none do).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.patch import Patch, check_mask, patch_from_change

__all__ = ["combine", "intersect", "subtract", "union", "xor"]

_OPS: dict[str, Callable[[NDArray[np.bool_], NDArray[np.bool_]], NDArray[np.bool_]]] = {
    "union": np.logical_or,
    "intersect": np.logical_and,
    "subtract": lambda a, b: a & ~b,
    "xor": np.logical_xor,
}


def combine(
    op: str, mask: ArrayLike, geometry: GridGeometry, *others: ArrayLike, name: str = "structure"
) -> Patch:
    """Apply ``op`` ("union", "intersect", "subtract", "xor") of ``mask`` with each of
    ``others`` in turn; returns the patch turning ``mask`` into the result."""
    if op not in _OPS:
        raise InputError(f"unknown boolean operation {op!r} (use one of {', '.join(_OPS)})")
    if not others:
        raise InputError(f"{name}: {op} needs at least one other structure")
    m = check_mask(mask, geometry, name)
    out = m
    for n, other in enumerate(others, start=1):
        out = _OPS[op](out, check_mask(other, geometry, f"{op} operand {n}"))
    return patch_from_change(m, out)


def union(mask: ArrayLike, geometry: GridGeometry, *others: ArrayLike, name: str = "") -> Patch:
    """``mask ∪ others``."""
    return combine("union", mask, geometry, *others, name=name or "structure")


def intersect(mask: ArrayLike, geometry: GridGeometry, *others: ArrayLike, name: str = "") -> Patch:
    """``mask ∩ others``."""
    return combine("intersect", mask, geometry, *others, name=name or "structure")


def subtract(mask: ArrayLike, geometry: GridGeometry, *others: ArrayLike, name: str = "") -> Patch:
    """``mask`` minus every one of ``others``."""
    return combine("subtract", mask, geometry, *others, name=name or "structure")


def xor(mask: ArrayLike, geometry: GridGeometry, *others: ArrayLike, name: str = "") -> Patch:
    """Voxels in exactly one of ``mask`` and (successively) ``others``."""
    return combine("xor", mask, geometry, *others, name=name or "structure")
