"""Thick slices, the planning CT's bone taken out: the seed end to end with a seed found.

Two seeds end to end along a needle lying near the slice plane make one bar longer than the
in-plane line openings (:data:`planner.postop.detection.thick_slices.THICK_LINE_MM`), which take it
for bone. Where the openings left one blob between the two,
:mod:`planner.postop.detection.between_pairs` splits it; where they left one of the two (the other's
end reaching past the bar's middle, or its neighbour's image explaining it), the other is missed: on
the 5 mm freehand scenes of ``benchmarks.bench_detect`` 8 of the 14 seeds missed were so, 4.2–6.1 mm
from the next of their needle, whose image they doubled in the dose.

:func:`add_end_to_end_seeds` fits, on the HU above an in-plane disc opening
(:mod:`planner.postop.detection.tophat_fit`), each seed found with one more started
``STARTS_MM`` along its axis on either side (end to end, then a spacer further on), the seeds
around held fixed, against that seed alone. A seed more is kept only where it is what a seed end
to end would be: the fit better by a BIC of ``MIN_BIC_GAIN``; the new seed a seed's worth of
metal (``MIN_AMPLITUDE``) whose image is as sharp as the data (``MIN_PEAK_RATIO``: a seed of the
model absorbing the spread misfit of the seeds around, in a dense implant, is broader than what
it explains); lying along the found seed's axis and parallel to it (``MIN_ALONG_COS``,
``MIN_PARALLEL_COS``: one needle), ``SEPARATION_MM`` from it (further than ``FAR_SEPARATION_MM``
only where no other seed lies within ``FAR_MIN_OTHER_MM``); the found seed moving at most
``MAX_MOVE_MM``. Fits better by BIC alone are not enough: on the dense grid scenes a seed added
beside almost any seed fits better by 100–575. The fits run only where a linear least squares
screen (:func:`_linear_screen`) finds some metal along the axis (``MIN_SCREEN``): 10–15 % of the
seeds' sides.

Measured (5 mm scenes of ``benchmarks.bench_detect``, the planning CT's bone out through a
registration 0.9 mm off): freehand rng 0–11 found 526 → 529 of 535 (false 1 → 1), check rng
100–111 463 → 465 of 468 (false 1 → 2: a seed between a column of two and a seed beside it
taken for a pair), the scenario, held-out and validation sets unchanged (519/524, 938/943,
568/579); the step takes 0.2–0.8 s on a scene (131 seeds: 0.8 s; AMD EPYC, 2 cores).

Session 19: a seed a spacer further on (6.5–8.5 mm from the next of its needle), both tilted
20–30° out of the slice plane, still merges with it into one bar on 5 mm slices; 6 of the 22
misses of the fresh freehand draws rng 200–223 were so (the data hold 0.25–0.35 of a seed
in the in-plane excess; the two seeds' fit started 7 mm along finds each within 0.1 mm at a
BIC gain of 490–1310). The second start ``STARTS_MM[1]`` and separations up to 8.5 mm, the
other seeds kept ``FAR_MIN_OTHER_MM`` away from a far one (without that, on the grid rng 2
scene a fit started at 4.7 mm ended 7.3 mm along, 4.8 mm from any seed: a false seed), and
``MIN_PARALLEL_COS`` 0.85 → 0.7 (the two axes of a true pair of rng 216 fitted 41° apart; one
more seed on rng 200–223, none lost elsewhere): rng 200–223 1100 → 1102 of 1122, freehand
rng 0–11 531 → 533 of 535, rng 300–323 1125 → 1126 of 1156 and rng 400–423 953 → 954 of
971 (measured only before and after), false seeds unchanged on every set (13, 1, 12, 10),
and the check, scenario, held-out and validation sets unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.seed_fit import (
    SeedFit,
    SeedImageModel,
    fit_seeds,
    line_image_at,
    seeds_around_image,
)
from planner.postop.detection.tophat_fit import fit_data, single_amplitude

#: The seed more starts this far (mm) from the one found along its axis (end to end: a seed
#: length, 4.5 mm, and a little gap; then a seed a spacer further on, tilted out of the slice
#: plane: on 5 mm slices its image still merges with the found seed's into one bar).
STARTS_MM = (4.7, 7.0)
#: The fit box: ± this (mm) in-plane and ± ``FIT_SLICES`` slices about the middle of the two.
FIT_REACH_MM = 7.0
FIT_SLICES = 1
#: Seeds this close (mm) to the seed found are held fixed in the fits (their images reach
#: into the box).
NEIGHBOUR_REACH_MM = 15.0
#: A seed more is kept when the two seeds' fit is better by this BIC ...
MIN_BIC_GAIN = 200.0
#: ... the new seed's amplitude is at least this fraction of one seed's, the found seed's at
#: least ``MIN_FOUND_AMPLITUDE`` ...
MIN_AMPLITUDE = 0.75
MIN_FOUND_AMPLITUDE = 0.7
#: ... the data less the other seeds' images, at the new seed's image's upper half, peaks at
#: least this fraction of the image (90th percentiles) ...
MIN_PEAK_RATIO = 0.98
#: ... the line between the two makes at most acos(MIN_ALONG_COS) with the found seed's axis,
#: their axes at most acos(MIN_PARALLEL_COS) with each other ...
MIN_ALONG_COS = 0.85
MIN_PARALLEL_COS = 0.7
#: ... they lie this far apart (mm: a seed length, 4.5 mm, and a gap of up to 2 mm; seeds
#: further apart along a needle leave tissue between them, which the line openings do not
#: bridge) ...
SEPARATION_MM = (3.8, 8.5)
#: ... a seed more lying further than ``FAR_SEPARATION_MM`` (a spacer between them) no closer
#: than ``FAR_MIN_OTHER_MM`` to any other seed (a seed found placed a little off leaves a
#: residual 5–6.6 mm from it that reads like a seed:
#: :data:`planner.postop.detection.residual.MIN_DISTANCE_MM`) ...
FAR_SEPARATION_MM = 6.5
FAR_MIN_OTHER_MM = 6.5
#: ... the found seed moves at most this far (mm: alone in its blob, its partner opened away,
#: it was placed on its own image; seeds found so moved 0.1–1.6 mm on the 5 mm freehand
#: scenes, a seed placed between a column of two and a seed beside it 2.0 mm) ...
MAX_MOVE_MM = 1.8
#: ... and no other seed lies closer than this (mm) to either (seeds end to end lie ≥ 4.2 mm
#: apart).
MIN_OTHER_MM = 4.0
#: The fits run only where a seed 3.8–7.4 mm along the found seed's axis (± 20°) takes at
#: least this fraction of a seed by linear least squares (:func:`_linear_screen`).
MIN_SCREEN = 0.15
#: ... at these distances (mm) along the axis and angles (degrees, in-plane) from it.
SCREEN_ALONG_MM = (3.8, 4.7, 5.6, 6.5, 7.4, 8.3)
SCREEN_ANGLES_DEG = (-15.0, 0.0, 15.0)
#: Evaluations of the one seed's and of the two seeds' fits.
ONE_EVALUATIONS = 15
TWO_EVALUATIONS = 30
#: Confidence of the seeds placed by the fit (their axes come from it).
END_TO_END_CONFIDENCE = 0.3


@dataclass(frozen=True)
class EndToEnd:
    """A seed more end to end with seed ``found`` (index): the two seeds' fit and its BIC gain
    over the found seed alone."""

    found: int
    fit: SeedFit
    bic_gain: float


def add_end_to_end_seeds(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds: list[DetectedSeed],
) -> list[DetectedSeed]:
    """``seeds`` and the seed end to end with each that has one (see the module), the best
    fits first; each such pair placed by its fit (cluster size 2, the found seed's component).
    ``hu`` (the CT less the planning CT's bone) and ``excluded`` are (z, y, x) on
    ``geometry``'s grid."""
    if len(seeds) < 3:
        return seeds
    model = SeedImageModel.for_grid(geometry.spacing_mm, geometry.direction)
    amplitude = single_amplitude(hu, excluded, geometry, model, seeds, FIT_REACH_MM)
    if amplitude is None:
        return seeds
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    axes = np.array([s.axis for s in seeds], dtype=np.float64)
    found = [
        e
        for n in range(len(seeds))
        for sign in (-1.0, 1.0)
        if (e := _first_end_to_end(hu, excluded, geometry, model, pts, axes, n, sign, amplitude))
    ]
    out = list(seeds)
    taken = list(pts)
    paired: set[int] = set()
    for e in sorted(found, key=lambda e: -e.bic_gain):
        others = np.array([p for m, p in enumerate(taken) if m != e.found])
        gaps = np.linalg.norm(others[:, None] - e.fit.centres_mm[None], axis=-1)
        if e.found in paired or gaps.min() < MIN_OTHER_MM:
            continue  # a seed of the pair is another's (placed by a better fit before)
        separation = float(np.linalg.norm(e.fit.centres_mm[1] - e.fit.centres_mm[0]))
        if separation > FAR_SEPARATION_MM and gaps[:, 1].min() < FAR_MIN_OTHER_MM:
            continue  # a spacer further on, beside another seed: that seed's misfit
        paired.add(e.found)
        s = seeds[e.found]
        placed = [
            replace(
                s,
                position_mm=tuple(float(v) for v in c),
                axis=canonical_axis(a),
                confidence=min(s.confidence, END_TO_END_CONFIDENCE),
                cluster_size=2,
            )
            for c, a in zip(e.fit.centres_mm, e.fit.axes, strict=True)
        ]
        out[e.found] = placed[0]
        out.append(placed[1])
        taken[e.found] = e.fit.centres_mm[0]
        taken.append(e.fit.centres_mm[1])
    return out


def _first_end_to_end(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    model: SeedImageModel,
    pts: NDArray[np.float64],
    axes: NDArray[np.float64],
    n: int,
    sign: float,
    amplitude: float,
) -> EndToEnd | None:
    """:func:`end_to_end` from the first start of ``STARTS_MM`` that finds a seed, or None.
    A start whose screen finds no metal along the axis (its box reaches the next start's
    seed: ``SCREEN_ALONG_MM`` up to 8.3 mm), or that a seed sits on, ends the search."""
    for start_mm in STARTS_MM:
        e = end_to_end(hu, excluded, geometry, model, pts, axes, n, sign, amplitude, start_mm)
        if e is None or isinstance(e, EndToEnd):
            return e
    return None


def end_to_end(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    model: SeedImageModel,
    pts: NDArray[np.float64],
    axes: NDArray[np.float64],
    n: int,
    sign: float,
    amplitude: float,
    start_mm: float = STARTS_MM[0],
) -> EndToEnd | bool | None:
    """The seed end to end with seed ``n`` of ``pts``/``axes`` ``(N, 3)`` (LPS mm, unit) on
    the ``sign`` side of it along its axis, the fit started ``start_mm`` along (see the
    module); ``amplitude`` is one seed's on the top-hat (HU·mm³). None where a seed sits at
    the start or the screen finds no metal along the axis, False where the fits found none."""
    along = axes[n] / np.linalg.norm(axes[n])
    start = pts[n] + sign * start_mm * along
    d_start = np.linalg.norm(pts - start, axis=1)
    d_start[n] = np.inf
    if d_start.min() < MIN_OTHER_MM:
        return None  # a seed is there already
    data = fit_data(hu, excluded, geometry, 0.5 * (pts[n] + start), FIT_REACH_MM, FIT_SLICES)
    if data is None:
        return None
    coords, values = data
    fixed = seeds_around_image(coords, pts, axes, n, NEIGHBOUR_REACH_MM, amplitude, model)
    screen = _linear_screen(coords, values, fixed, pts[n], along, sign, amplitude, model)
    if screen < MIN_SCREEN:
        return None  # no seed's worth of metal along the axis: not worth the fits
    two = fit_seeds(
        coords,
        values,
        np.array([pts[n], start]),
        np.array([along, along]),
        amplitude,
        model,
        amplitude_range=(0.1, 1.6),
        fixed_hu=fixed,
        max_evaluations=TWO_EVALUATIONS,
    )
    # The two seeds' own numbers first: most fits fail them, and the one seed's fit is then
    # not needed.
    if not _is_end_to_end(two, pts[n], amplitude):
        return False
    if _peak_ratio(coords, values, fixed, two, model) < MIN_PEAK_RATIO:
        return False
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
    gain = float(one.bic - two.bic)
    return EndToEnd(n, two, gain) if gain >= MIN_BIC_GAIN else False


def _linear_screen(
    coords: NDArray[np.float64],
    values: NDArray[np.float64],
    fixed: NDArray[np.float64] | None,
    found_mm: NDArray[np.float64],
    along: NDArray[np.float64],
    sign: float,
    amplitude: float,
    model: SeedImageModel,
) -> float:
    """Largest amplitude (fraction of one seed) a seed ``SCREEN_ALONG_MM`` from the found one,
    ``SCREEN_ANGLES_DEG`` off its axis, takes by linear least squares beside the found seed's
    image and an offset (normal equations, all starts at once)."""
    target = values - (0.0 if fixed is None else fixed)
    found = line_image_at(coords, found_mm[None], along[None], amplitude, model)
    normal = np.cross(along, model.rot[:, 2])
    normal = normal / max(np.linalg.norm(normal), 1e-9)
    images = []
    for angle in np.radians(SCREEN_ANGLES_DEG):
        u = np.cos(angle) * along + np.sin(angle) * normal
        for t in SCREEN_ALONG_MM:
            images.append(
                line_image_at(coords, (found_mm + sign * t * u)[None], u[None], 1.0, model)
            )
    g = np.array(images)  # (k, M), per unit amplitude
    m = float(len(target))
    ff, f1, ft, t1 = found @ found, found.sum(), found @ target, target.sum()
    gf, g1, gg, gt = g @ found, g.sum(axis=1), np.einsum("km,km->k", g, g), g @ target
    # [[ff, gf, f1], [gf, gg, g1], [f1, g1, m]] (a, b, c) = (ft, gt, t1), one system per start.
    lhs = np.empty((len(g), 3, 3))
    lhs[:, 0] = np.stack([np.full(len(g), ff), gf, np.full(len(g), f1)], 1)
    lhs[:, 1] = np.stack([gf, gg, g1], 1)
    lhs[:, 2] = np.stack([np.full(len(g), f1), g1, np.full(len(g), m)], 1)
    rhs = np.stack([np.full(len(g), ft), gt, np.full(len(g), t1)], 1)
    try:
        sol = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.inf  # degenerate box: let the fits decide
    return float(sol[:, 1].max() / amplitude)


def _is_end_to_end(two: SeedFit, found_mm: NDArray[np.float64], amplitude: float) -> bool:
    """Whether ``two`` (the found seed first) is two seeds end to end by its own numbers."""
    fractions = two.amplitudes / amplitude
    step = two.centres_mm[1] - two.centres_mm[0]
    separation = float(np.linalg.norm(step))
    if separation <= 0:
        return False
    u0, u1 = two.axes
    return bool(
        fractions[1] >= MIN_AMPLITUDE
        and fractions[0] >= MIN_FOUND_AMPLITUDE
        and SEPARATION_MM[0] <= separation <= SEPARATION_MM[1]
        and np.linalg.norm(two.centres_mm[0] - found_mm) <= MAX_MOVE_MM
        and abs(float(step @ u0)) / separation >= MIN_ALONG_COS
        and abs(float(u0 @ u1)) >= MIN_PARALLEL_COS
    )


def _peak_ratio(
    coords: NDArray[np.float64],
    values: NDArray[np.float64],
    fixed: NDArray[np.float64] | None,
    two: SeedFit,
    model: SeedImageModel,
) -> float:
    """90th percentile of the data less the found seed's and the fixed seeds' images (and the
    offset) over the upper half of the new seed's image, over that of the image."""
    found = line_image_at(coords, two.centres_mm[:1], two.axes[:1], two.amplitudes[0], model)
    rest = values - found - two.offset_hu - (0.0 if fixed is None else fixed)
    image = line_image_at(coords, two.centres_mm[1:], two.axes[1:], two.amplitudes[1], model)
    upper = image > 0.5 * image.max()
    return float(np.percentile(rest[upper], 90) / max(np.percentile(image[upper], 90), 1e-9))
