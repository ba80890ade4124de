"""Thick slices, the planning CT's bone taken out: a seed found between two seeds is those two.

Two seeds end to end along a needle lying near the slice plane make one bar longer than the
in-plane line openings (:data:`planner.postop.detection.thick_slices.THICK_LINE_MM`), which take it
for bone. What the openings leave of it is one blob between the two seeds: it counts as one seed,
placed between them, 2.6–4.7 mm from each, too far to match either. Where the planning CT's
bone has been taken out, the HU above an in-plane disc opening (the seeds are narrower than
the disc; soft tissue is not) holds both seeds whole. :func:`split_between_pairs` fits one
and two seeds' images there (the other seeds held fixed) and takes the two when they fit
better by a BIC of at least ``MIN_BIC_GAIN`` and neither lies within ``MIN_MOVE_MM`` of the
seed found: it was between them.

Measured on the 5 mm scenes of ``benchmarks.bench_detect --scenarios --bone-prior`` (3049
seeds; a ± 6 mm box, the seeds as found before this step): of the two-seed fits better by a
BIC of ≥ 30, 7 put both seeds ≥ 2.5 mm from the one found, each within 2.5 mm of a true seed
that was missed (gains 136–783); no other put both that far with a gain over 73. The fits
that keep one seed where it was and add one beside it are not used: 454 of 475 added a seed
where there was none. With the ± 5 mm box of ``FIT_REACH_MM``: found 3000 → 3014, false
17 → 9; the step takes 1.1–1.4 s on a 131-seed scene (AMD EPYC, 2 cores).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.seed_fit import (
    SeedImageModel,
    fit_seeds,
    line_image_at,
    seeds_around_image,
)
from planner.postop.detection.tophat_fit import fit_data, single_amplitude

#: Two seeds' fit replaces the one found when its BIC is lower by at least this ...
MIN_BIC_GAIN = 100.0
#: ... and both its seeds lie at least this far (mm) from the one found.
MIN_MOVE_MM = 2.5
#: ... or by ``NEAR_BIC_GAIN`` with both this far (mm): a seed found off the middle of its two
#: (5 mm scenes, all five sets of ``bench_detect``: the fits with both seeds 1.5–2.5 mm from
#: the one found that were two seeds missed gained 233 and 1553, those that were not 109–343).
NEAR_MOVE_MM = 1.5
NEAR_BIC_GAIN = 800.0
#: The fit box: ± this (mm) in-plane and ± ``FIT_SLICES`` slices about the seed found.
FIT_REACH_MM = 5.0
FIT_SLICES = 1
#: The two seeds start this far (mm) on either side of the one found, along its axis.
START_OFFSET_MM = 2.6
#: Residual evaluations of the one seed's fit (it starts where the seed was placed: 10 gave
#: the same seeds as 40 on the 5 mm scenes).
ONE_EVALUATIONS = 10
#: Seeds are fitted only where one seed where it was found leaves this much misfit (RMS HU
#: over the box; amplitude and offset by linear least squares, then also after its fit): the
#: seeds found between two left 115–178 HU after the fit on the 5 mm scenes; half of all
#: seeds ≤ 74–94 HU, three quarters ≤ 103–117 HU (per scene set). The step on a 131-seed
#: scene: 2.8 s → 1.1–1.4 s, the same seeds on every set.
MIN_MISFIT_HU = 100.0
#: Confidence of the two seeds placed by the fit (their axes come from it, over one blob).
SPLIT_CONFIDENCE = 0.3


def split_between_pairs(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds: list[DetectedSeed],
) -> list[DetectedSeed]:
    """``seeds`` with each seed found between two seeds replaced by those two (cluster size 2,
    same component). ``hu`` (the CT less the planning CT's bone) and ``excluded`` are (z, y, x)
    on ``geometry``'s grid."""
    if len(seeds) < 2:
        return seeds
    model = SeedImageModel.for_grid(geometry.spacing_mm, geometry.direction)
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    axes = np.array([s.axis for s in seeds], dtype=np.float64)
    amplitude = single_amplitude(hu, excluded, geometry, model, seeds, FIT_REACH_MM)
    if amplitude is None:
        return seeds
    out: list[DetectedSeed] = []
    pairs = [
        _pair_around(hu, excluded, geometry, model, pts, axes, n, amplitude)
        for n in range(len(seeds))
    ]
    for s, pair in zip(seeds, pairs, strict=True):
        if pair is None:
            out.append(s)
            continue
        out.extend(
            replace(
                s,
                position_mm=tuple(float(v) for v in p),
                axis=canonical_axis(a),
                confidence=min(s.confidence, SPLIT_CONFIDENCE),
                cluster_size=2,
            )
            for p, a in zip(pair.centres_mm, pair.axes, strict=True)
        )
    return out


def _pair_around(hu, excluded, geometry, model, pts, axes, n, amplitude):
    """The two seeds' fit replacing seed ``n`` (see the module), or None."""
    data = fit_data(hu, excluded, geometry, pts[n], FIT_REACH_MM, FIT_SLICES)
    if data is None:
        return None
    coords, values = data
    fixed = seeds_around_image(coords, pts, axes, n, FIT_REACH_MM + 8.0, amplitude, model)

    along = axes[n] / np.linalg.norm(axes[n])
    if _misfit_as_found(coords, values, fixed, pts[n], along, amplitude, model) < MIN_MISFIT_HU:
        return None  # one seed where it was found explains the box: the fit would too
    one = fit_seeds(
        coords,
        values,
        pts[n][None],
        along[None],
        amplitude,
        model,
        fixed_hu=fixed,
        max_evaluations=ONE_EVALUATIONS,
    )
    if np.sqrt(one.rss / one.n_points) < MIN_MISFIT_HU:
        return None  # one seed explains the box: no pair to look for
    # The two start on either side along the axis of the one found (starting them across it
    # too found the same seeds on the 5 mm scenes, at half again the time).
    starts = np.array([pts[n] - START_OFFSET_MM * along, pts[n] + START_OFFSET_MM * along])
    two = fit_seeds(
        coords, values, starts, np.array([along, along]), amplitude, model, fixed_hu=fixed
    )
    return two if _between(one, two, pts[n]) else None


def _misfit_as_found(coords, values, fixed, centre_mm, axis, amplitude, model) -> float:
    """RMS misfit (HU) of one seed at ``centre_mm`` along ``axis``, its amplitude (within the
    fit's bounds) and the offset by linear least squares: no less than the one seed's fit
    leaves, which starts there."""
    image = line_image_at(coords, centre_mm[None], axis[None], amplitude, model)
    target = values if fixed is None else values - fixed
    design = np.column_stack([image, np.ones(len(image))])
    (scale, _), *_ = np.linalg.lstsq(design, target, rcond=None)
    scale = float(np.clip(scale, 0.5, 1.6))  # fit_seeds' default amplitude range
    offset = float(np.mean(target - scale * image))
    return float(np.sqrt(np.mean((scale * image + offset - target) ** 2)))


def _between(one, two, found_mm) -> bool:
    """Whether ``two`` beats ``one`` by ``MIN_BIC_GAIN`` of BIC or more with both its seeds
    ``MIN_MOVE_MM`` or more from ``found_mm``, or by ``NEAR_BIC_GAIN`` with both
    ``NEAR_MOVE_MM`` or more from it."""
    moved = float(np.linalg.norm(two.centres_mm - found_mm, axis=1).min())
    gain = one.bic - two.bic
    return bool(
        (gain >= MIN_BIC_GAIN and moved >= MIN_MOVE_MM)
        or (gain >= NEAR_BIC_GAIN and moved >= NEAR_MOVE_MM)
    )
