"""Naming a slice orientation (axial / coronal / sagittal / oblique) from direction cosines.

One rule for the folder scan, the import report and every label the GUI shows: the slice normal
(row × column, i.e. the grid's k axis) within 1° of a patient axis names the orientation — LPS z:
axial, y: coronal, x: sagittal — whatever the sign of the axes (prone, feet-first and flipped
images keep their name); anything else is oblique, with its angle to the nearest patient axis.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ORIENTATION_TOL_DEG", "orientation_from_direction", "orientation_name", "tilt_deg"]

ORIENTATION_TOL_DEG = 1.0
_NAMES = ("sagittal", "coronal", "axial")  # normal along LPS x, y, z


def _unit_normal(normal: ArrayLike | None) -> np.ndarray | None:
    if normal is None:
        return None
    try:
        n = np.asarray(normal, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if n.shape != (3,) or not np.all(np.isfinite(n)):
        return None
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 1e-6 else None


def tilt_deg(normal: ArrayLike | None) -> float | None:
    """Angle (degrees) between the slice normal and the nearest patient axis; None if unknown."""
    n = _unit_normal(normal)
    if n is None:
        return None
    return math.degrees(math.acos(min(1.0, float(np.max(np.abs(n))))))


def orientation_name(normal: ArrayLike | None) -> str:
    """ "axial" | "coronal" | "sagittal" | "oblique" for a slice normal (LPS, any length);
    "unknown" when it is missing, not finite or zero."""
    n = _unit_normal(normal)
    if n is None:
        return "unknown"
    a = np.abs(n)
    axis = int(np.argmax(a))
    if a[axis] >= math.cos(math.radians(ORIENTATION_TOL_DEG)):
        return _NAMES[axis]
    return "oblique"


def orientation_from_direction(direction: ArrayLike) -> str:
    """Orientation of a grid from its (3, 3) direction matrix (columns = i, j, k axes in LPS).

    The slices are the (i, j) planes: their normal is i × j (the k column for a right-handed
    matrix; the cross product also names left-handed matrices correctly).
    """
    d = np.asarray(direction, dtype=float)
    if d.shape != (3, 3):
        return "unknown"
    return orientation_name(np.cross(d[:, 0], d[:, 1]))
