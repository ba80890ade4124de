"""Thin slices: each single seed's axis and centre by the seed image model.

On slices ≤ 3 mm a seed's blob is measured by the weighted covariance of its voxels above a
quarter of its peak (:mod:`planner.postop.detection.blobs`), corrected for the scanner's blur. The
core of a seed saturates at the scanner's maximum and the cut at a quarter of the peak trims the
blur's tails, and both flatten what the covariance sees: on 2.5 mm slices of freehand implants
(needles tilted out of the axial plane) the axis error was 7.6° median over single seeds,
10.2° for seeds tilted 17–37° out of plane. :func:`refine_seeds` fits the seed image model
(:func:`planner.postop.detection.seed_fit.fit_seeds`: a blurred 4.5 mm line source; saturated voxels
bound it from below only) to the white top-hat of the CT around each single seed, its
neighbours' images held fixed, and keeps the fit's centre and axis when the centre moves less
than ``MAX_MOVE_MM``; the parts of a split cluster are fitted together the same way.

Measured on the freehand scenes of ``benchmarks.bench_detect`` (rng 0–11 / 100–111, seeds
found unchanged): 2.5 mm axis median 7.7° → 1.5° (per scene 4.3–11.9° → 0.8–2.5°; the
check set 4.9–14.0° → 1.1–2.2°), centre RMS 0.42 → 0.28 mm; 1.25 mm axis 1.9° → 0.7°,
RMS 0.20 → 0.10 mm. Cluster parts on 2.5 mm: 11.4° → 3.1°.

Two parts closer than a seed is long (``CLOSE_PAIR_MM``) are also fitted as one seed and
merged unless the pair fits clearly better (``CLOSE_PAIR_MIN_GAIN``): a seed beside bone
weighs up to two seeds and k-means cuts it in two whole-looking parts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from planner.imaging.volume import CTVolume
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.seed_fit import SeedImageModel, fit_seeds, neighbours_image

#: Thin slices: place single seeds by the image model (and the parts of clusters of up to
#: ``MAX_CLUSTER`` seeds, fitted together).
REFINE_SINGLES = True
REFINE_CLUSTERS = True
MAX_CLUSTER = 4
#: The fitted box: ± this (mm) about the seed's centre along every axis.
BOX_REACH_MM = 4.5
#: A fit whose centre moves further than this (mm) keeps the blob's centre and axis.
MAX_MOVE_MM = 1.0
#: Seeds this close (mm) to the box are in the model, held fixed.
NEIGHBOUR_REACH_MM = 8.0
#: Single seeds calibrate the amplitude when no other seed lies within this (mm).
ISOLATED_MM = 12.0
#: The fit sees the voxels of the box above this fraction of its peak top-hat, grown by one
#: voxel (0.03: 1385 of 1521 voxels of a 1.25 mm box, streaks included, and the fits took
#: 3–5 s a scene; 0.1 and 0.2 gave the same seeds within 0.1 mm and 0.3°).
SUPPORT_FRACTION = 0.1
#: Residual evaluations of one seed's fit (20 and 40 gave the same seeds; a cluster's: × n).
MAX_EVALUATIONS = 20
#: Two parts of a cluster closer than this (mm) after the fit keep the split's centres.
MIN_PART_GAP_MM = 2.0
#: A cluster of two parts closer than ``CLOSE_PAIR_MM`` is also fitted as one seed, and
#: stays two only when their fit's BIC is lower by ``CLOSE_PAIR_MIN_GAIN`` or more. Measured
#: on the freehand scenes (2.5 mm, rng 0–11 and 100–111): true pairs side by side gained
#: 164–925, single seeds split in two (a seed beside bone, its mass 1.5–2.2 seeds) 26–48.
CLOSE_PAIR_TEST = True
CLOSE_PAIR_MM = 3.6
CLOSE_PAIR_MIN_GAIN = 100.0
#: Boxes with fewer voxels of seed are not fitted.
MIN_VOXELS = 20


def refine_seeds(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    tophat: NDArray[np.float32],
    labels: NDArray[np.int32],
    excluded: NDArray[np.bool_],
    guess_amplitude: float,
) -> list[DetectedSeed]:
    """``seeds`` with each single seed (cluster size 1, a component of its own), and the parts
    of each cluster of up to ``MAX_CLUSTER`` seeds, placed by the image model fit (module
    docstring; nothing when ``REFINE_SINGLES`` / ``REFINE_CLUSTERS`` are off). ``tophat``
    (HU), ``labels`` and ``excluded`` are (z, y, x) on ``ct``'s grid; ``guess_amplitude``
    (HU·mm³) starts the amplitude fits."""
    singles = [n for n, s in enumerate(seeds) if s.cluster_size == 1 and s.component > 0]
    if not seeds or guess_amplitude <= 0 or not (REFINE_SINGLES or REFINE_CLUSTERS):
        return seeds
    geometry = ct.geometry
    model = SeedImageModel.for_grid(geometry.spacing_mm, geometry.direction)
    top = float(ct.hu.max())
    saturation = top - 1.0 if top >= 3000.0 else np.inf
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    axes = np.array([s.axis for s in seeds], dtype=np.float64)
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    reach = np.ceil(BOX_REACH_MM / sp[::-1]).astype(int)  # (z, y, x) voxels
    shape = np.asarray(ct.hu.shape)

    def data(members: list[int]):
        """(coords, values, saturated) of the box about ``members`` (one component's seeds)."""
        k = np.rint(geometry.world_to_zyx(pts[members])).astype(int)
        lo = np.maximum(k.min(axis=0) - reach, 0)
        hi = np.minimum(k.max(axis=0) + reach + 1, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        lab = labels[box]
        local = tophat[box]
        # The seed and its blur: voxels above a few per cent of the box's peak, grown by one
        # voxel (the rest of the box is noise, and the fit's cost grows with its voxels).
        lit = local >= SUPPORT_FRACTION * float(local.max())
        lit = ndi.binary_dilation(lit, structure=np.ones((3, 3, 3), dtype=bool))
        keep = lit & ~excluded[box] & ((lab == 0) | (lab == seeds[members[0]].component))
        idx = np.argwhere(keep) + lo
        coords = geometry.zyx_to_world(idx.astype(np.float64))
        values = tophat[box][keep].astype(np.float64)
        sat = ct.hu[box][keep] >= saturation
        return coords, values, sat

    def fixed_image(members: list[int], coords: NDArray[np.float64], amplitude: float):
        """The other seeds' image at ``coords`` (those within ``NEIGHBOUR_REACH_MM``)."""
        others = np.ones(len(pts), dtype=bool)
        others[members] = False
        return neighbours_image(
            coords, coords, pts, axes, others, amplitude, model, NEIGHBOUR_REACH_MM
        )

    # One seed's amplitude: the median fit of up to ten isolated single seeds.
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    amps = []
    for n in [n for n in singles if d[n].min() > ISOLATED_MM][:10]:
        coords, values, sat = data([n])
        if len(values) >= MIN_VOXELS:
            f = fit_seeds(
                coords,
                values,
                pts[n][None],
                axes[n][None],
                guess_amplitude,
                model,
                sat,
                amplitude_range=(0.3, 3.0),
            )
            amps.append(float(f.amplitudes[0]))
    amplitude = float(np.median(amps)) if amps else guess_amplitude
    # Single seeds, then each cluster's parts together; every fit sees the other seeds where
    # the components put them.
    groups = [[n] for n in singles] if REFINE_SINGLES else []
    if REFINE_CLUSTERS:
        clusters: dict[int, list[int]] = {}
        for n, s in enumerate(seeds):
            if s.cluster_size > 1 and s.component > 0:
                clusters.setdefault(s.component, []).append(n)
        groups += [m for m in clusters.values() if len(m) <= MAX_CLUSTER]
    out = list(seeds)
    drop: set[int] = set()
    for members in groups:
        coords, values, sat = data(members)
        if len(values) < MIN_VOXELS:
            continue
        fit = fit_seeds(
            coords,
            values,
            pts[members],
            axes[members],
            amplitude,
            model,
            sat,
            fixed_hu=fixed_image(members, coords, amplitude),
            max_evaluations=MAX_EVALUATIONS * len(members),
        )
        moved = np.linalg.norm(fit.centres_mm - pts[members], axis=1)
        gaps = np.linalg.norm(fit.centres_mm[:, None] - fit.centres_mm[None], axis=-1)
        np.fill_diagonal(gaps, np.inf)
        if len(members) == 2 and CLOSE_PAIR_TEST and _close(pts[members]):
            # Two parts closer than a seed is long: one seed cut in two, or two side by side?
            # The pair must explain the voxels clearly better than one seed does.
            middle = pts[members].mean(axis=0)
            one = fit_seeds(
                coords,
                values,
                middle[None],
                axes[members[:1]],
                amplitude,
                model,
                sat,
                fixed_hu=fixed_image(members, coords, amplitude),
                max_evaluations=MAX_EVALUATIONS,
            )
            if one.bic < fit.bic + CLOSE_PAIR_MIN_GAIN:
                placed = np.linalg.norm(one.centres_mm[0] - middle) <= MAX_MOVE_MM
                drop.add(members[1])
                out[members[0]] = replace(
                    seeds[members[0]],
                    position_mm=tuple(float(v) for v in (one.centres_mm[0] if placed else middle)),
                    axis=canonical_axis(one.axes[0] if placed else axes[members[0]]),
                    cluster_size=1,
                )
                continue
        if moved.max() > MAX_MOVE_MM or gaps.min() < MIN_PART_GAP_MM:
            continue
        for q, n in enumerate(members):
            out[n] = replace(
                seeds[n],
                position_mm=tuple(float(v) for v in fit.centres_mm[q]),
                axis=canonical_axis(fit.axes[q]),
            )
    return [s for n, s in enumerate(out) if n not in drop]


def _close(centres_mm: NDArray[np.float64]) -> bool:
    """Whether the two centres ``(2, 3)`` (mm) lie closer than ``CLOSE_PAIR_MM``."""
    return float(np.linalg.norm(centres_mm[0] - centres_mm[1])) < CLOSE_PAIR_MM
