"""The three orientations of a 2-D view: camera direction, screen-up, side labels, colour (LPS)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

__all__ = ["Orientation", "OrientationSpec"]


@dataclass(frozen=True)
class OrientationSpec:
    title: str
    view_dir: tuple[float, float, float]  # LPS direction the camera looks along
    view_up: tuple[float, float, float]  # LPS direction that points up on screen
    labels: tuple[str, str, str, str]  # screen left, right, top, bottom
    color_rgb: tuple[float, float, float]  # this view's identifying colour (crosshair lines)


class Orientation(Enum):
    AXIAL = OrientationSpec(
        "Axial", (0, 0, 1), (0, -1, 0), ("R", "L", "A", "P"), (0.90, 0.30, 0.30)
    )
    SAGITTAL = OrientationSpec(
        "Sagittal", (-1, 0, 0), (0, 0, 1), ("A", "P", "S", "I"), (0.90, 0.80, 0.25)
    )
    CORONAL = OrientationSpec(
        "Coronal", (0, 1, 0), (0, 0, 1), ("R", "L", "S", "I"), (0.35, 0.80, 0.35)
    )

    @property
    def spec(self) -> OrientationSpec:
        return self.value

    @property
    def normal(self) -> NDArray[np.float64]:
        return np.asarray(self.value.view_dir, dtype=np.float64)
