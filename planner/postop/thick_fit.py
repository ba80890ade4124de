"""Thick slices: where a blob's seeds are and how many, by fitting the seed image model.

On 5 mm slices the centroid of a blob sits between slice centres and its PCA axis is mostly
the slice profile's. :func:`refine_component` fits the blob's seeds
(:func:`planner.postop.seed_fit.fit_seeds`) to its in-plane excess (HU above the in-plane line
openings, :func:`planner.postop.thick_slices.compact_excess`) in a box around it, with the
images of nearby seeds of other components in the model; the seed of least amplitude is
dropped while the fit without it explains it as well, and one seed more is kept when it
explains its own image (for a single seed: only one stacked along the slice axis, the
needle two slices away that the 3-slice opening merged in).

Measured on the 5 mm scenes (``benchmarks.bench_detect --scenarios``), singles refitted:
centre RMS 0.48 → 0.27 mm (grid rng 2), axis median 22–24° → 2.2–2.6° on the grids, found
503 → 506/524 but false 5 → 7; refitting clusters too lost the triplet's middle seed. Hence
off by default (``planner.postop.detect.REFINE_BY_FIT``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.blobs import Component
from planner.postop.cluster_split import MIN_SPLIT_DISTANCE_MM
from planner.postop.seed_fit import SeedFit, SeedImageModel, fit_seeds, line_image

#: In-plane margin (mm) of the fitted box around a blob, and slices added on each side.
FIT_MARGIN_MM = 2.5
FIT_MARGIN_SLICES = 1
#: A seed is kept when the fit without it is worse by this fraction of its image's energy.
KEEP_GAIN = 0.5
#: One seed more is kept when it lowers the residual by this fraction of its image's energy.
ADD_GAIN = 0.8
#: ... and carries at least this fraction of a seed's amplitude (the fit's bound is 0.5).
ADD_MIN_AMPLITUDE = 0.6
#: A single seed's blob holds a second seed only stacked along the slice axis: at least this
#: many slices away from the first, within this distance (mm) of it in-plane.
COLUMN_MIN_SLICES = 1.4
#: One seed more is tried only where the fit leaves at least this much (HU) unexplained.
ADD_MIN_RESIDUAL_HU = 400.0
COLUMN_MAX_INPLANE_MM = 2.5


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
    geo = ctx.geometry
    kji = np.rint(geo.world_to_zyx(c.coords_mm)).astype(int)
    sp = np.asarray(geo.spacing_mm, dtype=np.float64)
    margin_px = [int(np.ceil(FIT_MARGIN_MM / sp[1])), int(np.ceil(FIT_MARGIN_MM / sp[0]))]
    pad = np.array([FIT_MARGIN_SLICES, *margin_px])
    shape = np.asarray(ctx.hu.shape)
    lo = np.maximum(kji.min(axis=0) - pad, 0)
    hi = np.minimum(kji.max(axis=0) + pad + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    lab = ctx.labels[box]
    keep = ~ctx.exclude[box] & ((lab == 0) | (lab == c.label))
    idx = np.argwhere(keep) + lo
    coords = geo.zyx_to_world(idx.astype(np.float64))
    values = ctx.inplane_excess[box][keep].astype(np.float64)
    saturated = ctx.hu[box][keep] >= ctx.saturation_hu
    return coords, values, saturated


def line_image_at(
    coords: NDArray[np.float64],
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitude: float,
    ctx: FitContext,
) -> NDArray[np.float64]:
    """Image (HU) at ``coords`` ``(M, 3)`` of seeds ``centres_mm``/``axes`` ``(m, 3)`` of one
    ``amplitude`` each (the neighbours a fit holds fixed)."""
    others = SeedFit(centres_mm, axes, np.full(len(centres_mm), amplitude), 0.0, 0.0, 0, 0.0)
    return _images(others, coords, ctx.model)


def seed_energy(fit: SeedFit, j: int, coords: NDArray[np.float64], model: SeedImageModel) -> float:
    """Σ image² (HU²) of seed ``j`` of ``fit`` over the voxels ``coords`` ``(M, 3)``."""
    return float(np.sum(_images(fit, coords, model, [j]) ** 2))


def _images(fit: SeedFit, coords, model: SeedImageModel, which=None) -> NDArray[np.float64]:
    """Model image (HU, no offset) at ``coords`` of the seeds ``which`` (all by default)."""
    sel = np.arange(fit.n) if which is None else np.asarray(which)
    origin = coords.mean(axis=0)
    return line_image(
        (coords - origin) @ model.rot,
        (fit.centres_mm[sel] - origin) @ model.rot,
        fit.axes[sel] @ model.rot,
        fit.amplitudes[sel],
        model.sigma_mm,
    )


def _accept_more(
    best: SeedFit, more: SeedFit, coords, ctx: FitContext, amplitude: float, column_only: bool
) -> bool:
    """Whether ``more`` (``best`` and one seed more, the last) holds a real seed: it explains
    ``ADD_GAIN`` of its own image, carries ``ADD_MIN_AMPLITUDE`` of a seed, and lies a seed
    apart from the others — with ``column_only``, stacked on one of them along the slice axis
    (≥ ``COLUMN_MIN_SLICES`` slices away, within ``COLUMN_MAX_INPLANE_MM`` in-plane)."""
    gain = best.rss - more.rss
    if gain < ADD_GAIN * seed_energy(more, more.n - 1, coords, ctx.model):
        return False
    if more.amplitudes[-1] < ADD_MIN_AMPLITUDE * amplitude:
        return False
    normal = np.asarray(ctx.geometry.slice_normal(), dtype=np.float64)
    thickness = float(ctx.geometry.spacing_mm[2])
    d = more.centres_mm[:-1] - more.centres_mm[-1]
    along = np.abs(d @ normal)
    inplane = np.sqrt(np.maximum(np.sum(d**2, axis=1) - along**2, 0.0))
    if column_only:
        return bool(
            np.any((along >= COLUMN_MIN_SLICES * thickness) & (inplane <= COLUMN_MAX_INPLANE_MM))
        )
    eff = np.sqrt(inplane**2 + np.maximum(along - 0.5 * thickness, 0.0) ** 2)
    return bool(eff.min() >= MIN_SPLIT_DISTANCE_MM)


def refine_component(
    c: Component,
    pts: NDArray[np.float64],
    axes: NDArray[np.float64],
    ctx: FitContext,
    amplitude: float,
    max_seeds: int,
    column_only: bool = False,
    neighbours: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> SeedFit | None:
    """Fit the seeds of component ``c``, started from the split ``pts``/``axes`` ``(k, 3)``:
    the seed of least amplitude is dropped while the fit without it explains its image as
    well as ``KEEP_GAIN`` of it; then (at most ``max_seeds``) one seed more, started where the
    residual is largest, is kept when :func:`_accept_more` says so (``column_only``: only a
    seed stacked along the slice axis). ``neighbours`` (centres, axes ``(m, 3)``): seeds of
    other components whose image (at ``amplitude``) is part of the model, not fitted. None when
    the box holds too few voxels."""
    coords, values, sat = blob_data(c, ctx)
    if len(values) < 20:
        return None
    fixed = None
    if neighbours is not None and len(neighbours[0]):
        fixed = line_image_at(coords, neighbours[0], neighbours[1], amplitude, ctx)

    def fit(p, a):
        return fit_seeds(coords, values, p, a, amplitude, ctx.model, sat, fixed_hu=fixed)

    best = fit(pts, axes)
    while best.n >= 2:
        j = int(np.argmin(best.amplitudes))
        keep = np.delete(np.arange(best.n), j)
        fewer = fit(best.centres_mm[keep], best.axes[keep])
        if fewer.rss - best.rss >= KEEP_GAIN * seed_energy(best, j, coords, ctx.model):
            break
        best = fewer
    if best.n < max_seeds:
        residual = values - _images(best, coords, ctx.model) - best.offset_hu
        if fixed is not None:
            residual -= fixed
        if residual.max() < ADD_MIN_RESIDUAL_HU:
            return best
        start = coords[int(np.argmax(residual))]
        more = fit(np.vstack([best.centres_mm, start]), np.vstack([best.axes, c.eigvecs[:, 0]]))
        if column_only:
            # Also from a pair stacked along the slice axis, two slices apart, about the seed.
            normal = np.asarray(ctx.geometry.slice_normal(), dtype=np.float64)
            half = float(ctx.geometry.spacing_mm[2]) * normal
            pair = fit(best.centres_mm[0] + np.array([-half, half]), np.repeat(best.axes, 2, 0))
            if pair.rss < more.rss:
                more = pair
        if _accept_more(best, more, coords, ctx, amplitude, column_only):
            best = more
    return best
