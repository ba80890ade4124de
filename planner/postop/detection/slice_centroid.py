"""Thick slices: confident single seeds near the slice plane placed along the slice axis by
the seed image model (step 5a of :mod:`planner.postop.detection.thick_model`).

On 5 mm slices a seed lying in the slice plane is placed by its blob's weighted centroid,
which sits too near the slice centre: the next slices hold only the tails of the slice profile
(a Gaussian of FWHM the thickness), and the centroid weighs them by their excess, not by the
profile. :func:`refine_along_slice_axis` tries one seed's image at a few places along the slice
normal about the centroid (the seed's axis and in-plane place kept) and takes the best fit.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from planner.postop.detection.blobs import Component
from planner.postop.detection.results import DetectedSeed
from planner.postop.detection.seed_fit import line_image_at
from planner.postop.detection.thick_fit import FitContext, blob_fit_data, seeds_by_component

#: The places tried: ± this (mm) along the slice normal in ``SLICE_REFINE_STEPS`` steps; a
#: best fit at either end of the window leaves the seed where it was. Measured on the five
#: 5 mm sets of ``benchmarks.bench_detect`` (the planning CT's bone out; a seed 0.5–1 mm off
#: its slice centre had been placed 0.35 mm nearer it): slice-axis RMS 0.39–0.42 → 0.34–0.40
#: mm, |ΔD90| > 2 % in 8 → 6 of 52 scenes, found and false counts unchanged. ± 1.5 mm moved
#: two held-out grid seeds 1.2 → 2.5 mm off (a neighbour's tail in the next slice).
SLICE_REFINE_MAX_MM = 1.0
SLICE_REFINE_STEPS = 9
#: Only seeds this near the slice plane (|axis · normal|) are moved: a tilted seed's own
#: length spreads it over the slices, its centroid is not pulled to a slice centre (slice-axis
#: RMS 0.10–0.12 mm on the held-out grids) and its fit couples the axis error into the move
#: (moved too, one freehand seed 2.4 mm off went to 2.8 mm, out of the match gate).
SLICE_REFINE_MAX_TILT = 0.3


def refine_along_slice_axis(
    seeds: list[DetectedSeed],
    comps: list[Component],
    ctx: FitContext,
    amplitude: float,
    min_confidence: float,
    neighbour_reach_mm: float,
) -> list[DetectedSeed]:
    """``seeds`` with each single seed of confident axis (≥ ``min_confidence``; the others
    were fitted in step 5 of :mod:`planner.postop.detection.thick_model`) within
    ``SLICE_REFINE_MAX_TILT`` of the slice plane moved along the slice normal to where its
    image fits its blob's box best: one seed's image at ``SLICE_REFINE_STEPS`` positions within
    ``± SLICE_REFINE_MAX_MM``, its amplitude and the offset by linear least squares, the
    neighbours' images (``amplitude`` HU·mm³ each) held fixed and saturated voxels left out;
    the best of them refined by a parabola through its neighbours' misfits. Axis and
    in-plane place are kept (the blob placed them well)."""
    by_label = {c.label: c for c in comps}
    groups = seeds_by_component(seeds)
    all_pts = np.array([s.position_mm for s in seeds]).reshape(-1, 3)
    all_axes = np.array([s.axis for s in seeds]).reshape(-1, 3)
    all_labels = np.array([s.component for s in seeds])
    normal = np.asarray(ctx.geometry.slice_normal(), dtype=np.float64)
    steps = np.linspace(-SLICE_REFINE_MAX_MM, SLICE_REFINE_MAX_MM, SLICE_REFINE_STEPS)
    out: list[DetectedSeed] = []
    for s in seeds:
        g = groups.get(s.component, [])
        if (
            s.component not in by_label
            or len(g) != 1
            or s.confidence < min_confidence
            or abs(float(np.asarray(s.axis) @ normal)) > SLICE_REFINE_MAX_TILT
        ):
            out.append(s)
            continue
        data = blob_fit_data(
            by_label[s.component], ctx, all_pts, all_axes, all_labels, amplitude, neighbour_reach_mm
        )
        if data is None:
            out.append(s)
            continue
        coords, values, sat, fixed = data
        keep = ~sat
        target = values[keep] - (0.0 if fixed is None else fixed[keep])
        p0 = np.asarray(s.position_mm)
        axis = np.asarray(s.axis)[None]
        rss = np.empty(len(steps))
        for k, dz in enumerate(steps):
            img = line_image_at(coords[keep], (p0 + dz * normal)[None], axis, 1.0, ctx.model)
            design = np.column_stack([img, np.ones(len(img))])
            coef, *_ = np.linalg.lstsq(design, target, rcond=None)
            rss[k] = float(np.sum((design @ coef - target) ** 2))
        best = int(np.argmin(rss))
        if best in (0, len(steps) - 1):
            out.append(s)
            continue
        r0, r1, r2 = rss[best - 1 : best + 2]
        h = steps[1] - steps[0]
        curv = r0 - 2 * r1 + r2
        dz = steps[best] + (0.5 * h * (r0 - r2) / curv if curv > 0 else 0.0)
        out.append(replace(s, position_mm=tuple(float(v) for v in p0 + dz * normal)))
    return out
