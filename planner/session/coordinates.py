"""The one way a position is written for a user: LPS millimetres with the anatomical side.

Every coordinate SeedPlan shows (view labels, cursor readout, status bar, 3-D view) comes from
:func:`format_lps_coordinate` / :func:`format_lps_point`, so a sign can never be flipped by a
view-specific projection. DICOM patient coordinates (LPS): +x = patient left (L), +y =
posterior (P), +z = superior (S); negative values are right (R), anterior (A), inferior (I)::

    >>> format_lps_coordinate(0, 49.6)
    'x = 49.6 mm (L)'
    >>> format_lps_coordinate(0, -49.6)
    'x = -49.6 mm (R)'
    >>> format_lps_point([1.0, -2.25, 0.0])
    'x = 1.0 mm (L)  y = -2.2 mm (A)  z = 0.0 mm'

The value is the coordinate itself (never a projection on a view normal); the letter names its
side and is left out when the value rounds to zero. The minus sign is ASCII so that a copied
value pastes into any tool.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["AXIS_NAMES", "format_lps_coordinate", "format_lps_point", "lps_side"]

AXIS_NAMES = ("x", "y", "z")
_POSITIVE_SIDE = ("L", "P", "S")
_NEGATIVE_SIDE = ("R", "A", "I")


def lps_side(axis: int, value_mm: float, *, decimals: int = 1) -> str:
    """ "L"/"R", "P"/"A" or "S"/"I" for ``value_mm`` on LPS ``axis`` (0, 1, 2); "" at zero."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}")
    rounded = round(float(value_mm), decimals)
    if not math.isfinite(rounded) or rounded == 0.0:
        return ""
    return _POSITIVE_SIDE[axis] if rounded > 0 else _NEGATIVE_SIDE[axis]


def format_lps_coordinate(axis: int, value_mm: float, *, decimals: int = 1) -> str:
    """``"x = 49.6 mm (L)"``: one LPS coordinate in mm with its anatomical side."""
    name = AXIS_NAMES[axis] if axis in (0, 1, 2) else None
    if name is None:
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}")
    value = float(value_mm)
    if not math.isfinite(value):
        return f"{name} = undefined"
    rounded = round(value, decimals)
    text = f"{0.0 if rounded == 0.0 else rounded:.{decimals}f}"  # never "-0.0"
    side = lps_side(axis, value, decimals=decimals)
    return f"{name} = {text} mm" + (f" ({side})" if side else "")


def format_lps_point(xyz_mm: ArrayLike, *, decimals: int = 1, separator: str = "  ") -> str:
    """``"x = … mm (L)  y = … mm (P)  z = … mm (S)"`` for a ``(3,)`` LPS position in mm."""
    xyz = np.asarray(xyz_mm, dtype=np.float64).reshape(-1)
    if xyz.shape != (3,):
        raise ValueError(f"a position has 3 coordinates, got {xyz.size}")
    return separator.join(
        format_lps_coordinate(axis, float(xyz[axis]), decimals=decimals) for axis in range(3)
    )
