"""The registration check: a planning-CT slice against the post-op CT mapped onto it.

:func:`fusion_slice` samples both CTs on the same plane of the planning frame — an axial plane
of the planning CT (its voxel rows and columns, cropped to a square around a centre) — the
post-op CT through the rigid transform (``x_postop = Rᵀ (x_plan − t)``, trilinear). It returns
an RGB image: a checkerboard (squares alternate between the two scans, the post-op squares
tinted blue (:data:`POSTOP_TINT`) so that the board reads even where the scans agree: edges of
bone that do not continue across squares show a misregistration) or a colour fusion (planning
in green, post-op in magenta: grey where they agree). Both are windowed for bone (W 1800 /
L 400 HU by default), the tissue the registration is made on. Pure numpy/scipy: no Qt here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import ArrayLike, NDArray

from planner.imaging.volume import CTVolume
from planner.postop.register import RigidTransform

__all__ = ["POSTOP_TINT", "FusionMode", "fusion_slice"]

FusionMode = Literal["checkerboard", "fusion"]
#: RGB factors of the checkerboard's post-op squares (the planning squares are plain grey).
POSTOP_TINT = (0.78, 0.88, 1.0)


def _window(hu: NDArray[np.floating], window_hu: float, level_hu: float) -> NDArray[np.float64]:
    return np.clip((hu - (level_hu - window_hu / 2.0)) / window_hu, 0.0, 1.0)


def fusion_slice(
    planning: CTVolume,
    postop: CTVolume,
    transform: RigidTransform,
    centre_mm: ArrayLike,
    *,
    half_width_mm: float = 60.0,
    mode: FusionMode = "checkerboard",
    square_mm: float = 10.0,
    window_hu: float = 1800.0,
    level_hu: float = 400.0,
) -> NDArray[np.uint8]:
    """``(h, w, 3)`` RGB of the planning CT's axial slice nearest ``centre_mm`` (LPS mm),
    ``± half_width_mm`` around it, against the post-op CT (module docstring)."""
    g = planning.geometry
    kji = g.world_to_zyx(np.asarray(centre_mm, dtype=np.float64))
    k = int(np.clip(np.rint(kji[0]), 0, g.shape_zyx[0] - 1))
    sp = np.asarray(g.spacing_mm, dtype=np.float64)  # (x, y, z) spacing
    rj, ri = (int(np.ceil(half_width_mm / s)) for s in (sp[1], sp[0]))
    j0, j1 = max(0, int(kji[1]) - rj), min(g.shape_zyx[1], int(kji[1]) + rj + 1)
    i0, i1 = max(0, int(kji[2]) - ri), min(g.shape_zyx[2], int(kji[2]) + ri + 1)
    fixed = planning.hu[k, j0:j1, i0:i1].astype(np.float64)
    jj, ii = np.mgrid[j0:j1, i0:i1]
    zyx = np.stack([np.full(jj.shape, k, dtype=np.float64), jj, ii], axis=-1).reshape(-1, 3)
    world = g.zyx_to_world(zyx)
    rot = transform.matrix
    in_post = (world - np.asarray(transform.translation_mm)) @ rot  # Rᵀ (x − t), row form
    post_zyx = postop.geometry.world_to_zyx(in_post)
    moving = ndi.map_coordinates(
        postop.hu, post_zyx.T, order=1, mode="constant", cval=-1024.0, prefilter=False
    ).reshape(fixed.shape)
    a = _window(fixed, window_hu, level_hu)
    b = _window(moving, window_hu, level_hu)
    if mode == "checkerboard":
        y_mm = (jj - j0) * sp[1]
        x_mm = (ii - i0) * sp[0]
        board = ((np.floor(y_mm / square_mm) + np.floor(x_mm / square_mm)) % 2).astype(bool)
        tint = np.where(board[..., None], np.asarray(POSTOP_TINT), 1.0)
        grey = np.where(board, b, a)
        rgb = grey[..., None] * tint
    elif mode == "fusion":
        rgb = np.stack([b, a, b], axis=-1)
    else:
        raise ValueError(f"unknown fusion mode {mode!r}")
    return np.ascontiguousarray((rgb * 255.0 + 0.5).astype(np.uint8))
