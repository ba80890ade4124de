"""Thick bright objects (cement, screws, rods) found before the seed search and set aside."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.progress import CancelFn, check_cancelled
from planner.postop.detection.blobs import ball_footprint, label26


def solid_metal_mask(
    hu: NDArray[np.generic],
    spacing_zyx: NDArray[np.float64],
    solid_hu: float,
    cancel: CancelFn | None,
) -> NDArray[np.bool_]:
    """Voxels of thick bright objects (cement, screws, rods): what survives opening HU ≥
    ``solid_hu`` by a 5 mm ball (a seed is 0.8 mm thick, cortical bone a few mm), dilated 1.5 mm."""
    bright = hu >= solid_hu
    out = np.zeros(hu.shape, dtype=bool)
    ball = ball_footprint(2.5, spacing_zyx)
    grow = ball_footprint(1.5, spacing_zyx)
    pad = np.array(ball.shape) + 2
    labels, objects = label26(bright)
    voxel_mm3 = float(np.prod(spacing_zyx))
    for lab, sl in enumerate(objects, start=1):
        check_cancelled(cancel, "seed detection cancelled")
        if sl is None:
            continue
        extent = np.array([s.stop - s.start for s in sl]) * spacing_zyx
        if np.sort(extent)[-2] < 5.0:  # thinner than the ball in two directions: not solid
            continue
        lo = [max(0, s.start - int(q)) for s, q in zip(sl, pad, strict=True)]
        hi = [min(n, s.stop + int(q)) for s, n, q in zip(sl, hu.shape, pad, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        mine = labels[box] == lab
        if mine.sum() * voxel_mm3 < 60.0:
            continue
        opened = ndi.binary_opening(mine, structure=ball)
        if opened.any():
            out[box] |= ndi.binary_dilation(opened, structure=grow) | (
                mine & ndi.binary_dilation(opened, structure=ball, iterations=2)
            )
    return out
