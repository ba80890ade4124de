"""Thick slices: what the seed image model fit of a blob works on.

:class:`FitContext` is what every fit on one CT shares; :func:`blob_data` gives the box around a
blob (in-plane excess, HU above the in-plane line openings:
:func:`planner.postop.detection.thick_slices.compact_excess`) without other components' cores, and
:func:`planner.postop.detection.seed_fit.line_image_at` gives the image of the nearby seeds a fit
holds fixed; the fit itself is
:func:`planner.postop.detection.seed_fit.fit_seeds`. The refit of every single seed
(``refine_component``, ``REFINE_BY_FIT``: drop the weakest seed, add one stacked along the slice
axis) was measured and dropped — 506/524 found but 7 false on the 5 mm scenes — and is in git
history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.blobs import Component
from planner.postop.detection.results import DetectedSeed
from planner.postop.detection.seed_fit import (
    SeedImageModel,
    neighbours_image,
    seeds_around_image,
)

#: A blob's box with fewer usable voxels than this is not fitted (too little to place a seed).
MIN_FIT_VOXELS = 20
#: In-plane margin (mm) of the fitted box around a blob, and slices added on each side.
FIT_MARGIN_MM = 2.5
FIT_MARGIN_SLICES = 1


@dataclass
class FitContext:
    """What every fit on one CT shares: its HU, in-plane excess and candidate labels (z, y, x),
    the voxels not to use (other metal, user exclusion), the saturation HU, the model."""

    hu: NDArray[np.generic]
    inplane_excess: NDArray[np.float32]
    labels: NDArray[np.int32]
    exclude: NDArray[np.bool_]
    geometry: GridGeometry
    model: SeedImageModel
    saturation_hu: float

    @classmethod
    def build(cls, ct, inplane_excess, labels, exclude) -> FitContext:
        top = float(ct.hu.max()) if ct.hu.size else 0.0
        return cls(
            hu=ct.hu,
            inplane_excess=inplane_excess,
            labels=labels,
            exclude=exclude,
            geometry=ct.geometry,
            model=SeedImageModel.for_grid(ct.geometry.spacing_mm, ct.geometry.direction),
            saturation_hu=top - 1.0 if top >= 3000.0 else np.inf,
        )


def blob_data(c: Component, ctx: FitContext):
    """(coords ``(M, 3)`` LPS mm, in-plane excess ``(M,)`` HU, saturated ``(M,)``) of the box
    around component ``c``, without other components' cores and excluded voxels."""
    return blobs_data([c], ctx)


def blobs_data(cs: list[Component], ctx: FitContext):
    """:func:`blob_data` of the box around the components ``cs`` together (their cores kept,
    every other component's taken out)."""
    geo = ctx.geometry
    kji = np.rint(geo.world_to_zyx(np.concatenate([c.coords_mm for c in cs]))).astype(int)
    sp = np.asarray(geo.spacing_mm, dtype=np.float64)
    margin_px = [int(np.ceil(FIT_MARGIN_MM / sp[1])), int(np.ceil(FIT_MARGIN_MM / sp[0]))]
    pad = np.array([FIT_MARGIN_SLICES, *margin_px])
    shape = np.asarray(ctx.hu.shape)
    lo = np.maximum(kji.min(axis=0) - pad, 0)
    hi = np.minimum(kji.max(axis=0) + pad + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    lab = ctx.labels[box]
    keep = ~ctx.exclude[box] & ((lab == 0) | np.isin(lab, [c.label for c in cs]))
    idx = np.argwhere(keep) + lo
    coords = geo.zyx_to_world(idx.astype(np.float64))
    values = ctx.inplane_excess[box][keep].astype(np.float64)
    saturated = ctx.hu[box][keep] >= ctx.saturation_hu
    return coords, values, saturated


def blob_fit_data(
    c: Component,
    ctx: FitContext,
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    labels: NDArray[np.int64],
    amplitude: float,
    reach_mm: float,
):
    """What a fit of the seeds of component ``c`` works on: :func:`blob_data` of its box and
    the image (HU, or None) of the other components' seeds ``centres_mm``/``axes`` ``(m, 3)``
    (``labels`` ``(m,)`` their components) within ``reach_mm`` of it, each of ``amplitude``
    HU·mm³, held fixed — (coords, values, saturated, fixed), or None when the box holds fewer
    than ``MIN_FIT_VOXELS`` voxels."""
    coords, values, sat = blob_data(c, ctx)
    if len(values) < MIN_FIT_VOXELS:
        return None
    fixed = neighbours_image(
        coords, c.coords_mm, centres_mm, axes, labels != c.label, amplitude, ctx.model, reach_mm
    )
    return coords, values, sat, fixed


#: What a fit about one seed works on (:func:`seed_box_data`): coords ``(M, 3)`` LPS mm,
#: in-plane excess ``(M,)`` HU, saturated ``(M,)``, the other seeds' image ``(M,)`` HU or None.
SeedBoxData = tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64] | None
]


def seed_box_data(
    ctx: FitContext,
    pts: NDArray[np.float64],
    axes: NDArray[np.float64],
    n: int,
    half_mm: float,
    half_slices: int,
    amplitude: float,
    reach_mm: float,
) -> SeedBoxData | None:
    """What a fit of seed ``n`` of ``pts``/``axes`` ``(N, 3)`` works on: the box of ± ``half_mm``
    in-plane and ± ``half_slices`` slices about it, every voxel not excluded (a seed's own
    faint core may be a rejected component's), and the image of the other seeds within
    ``reach_mm`` of it at ``amplitude`` HU·mm³, held fixed; None outside the grid or with
    fewer than ``MIN_FIT_VOXELS`` voxels."""
    geo = ctx.geometry
    sp = np.asarray(geo.spacing_mm, dtype=np.float64)
    half = np.array([half_slices, *np.ceil(half_mm / sp[1::-1]).astype(int)])
    kji = np.rint(geo.world_to_zyx(pts[n][None])[0]).astype(int)
    shape = np.asarray(ctx.hu.shape)
    lo = np.maximum(kji - half, 0)
    hi = np.minimum(kji + half + 1, shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    keep = ~ctx.exclude[box]
    if int(keep.sum()) < MIN_FIT_VOXELS:
        return None
    coords = geo.zyx_to_world((np.argwhere(keep) + lo).astype(np.float64))
    values = ctx.inplane_excess[box][keep].astype(np.float64)
    sat = ctx.hu[box][keep] >= ctx.saturation_hu
    fixed = seeds_around_image(coords, pts, axes, n, reach_mm, amplitude, ctx.model)
    return coords, values, sat, fixed


def seeds_by_component(seeds: list[DetectedSeed]) -> dict[int, list[DetectedSeed]]:
    """``seeds`` by the label of the component they were found in (0: found in the residual)."""
    groups: dict[int, list[DetectedSeed]] = {}
    for s in seeds:
        groups.setdefault(s.component, []).append(s)
    return groups
