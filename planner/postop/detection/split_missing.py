"""Thick slices: where the expected count says seeds are missing, the found seeds that are two.

On 5 mm slices two seeds 4–9 mm apart — one above the other, along a steep needle, side by
side — can make one blob that every earlier step takes for one seed placed between them
(:mod:`planner.postop.detection.column_pairs` tells only those whose column is bright enough).
When seeds are still missing from the expected count (the loading sheet's), the found seeds
two seeds' images would explain best (:func:`second_seed_score`) are fitted by the seed image
model (:mod:`planner.postop.detection.seed_fit`) as one seed and
as two (started ``SPLIT_START_MM`` either side of it along the slice normal, its axis and the
direction across both), on the in-plane excess of a box about it, the other found seeds'
images held fixed. The seeds whose two-seed fit is better by the largest margin of its BIC
(``MIN_BIC_GAIN`` or more) are made two, one per seed missing (:func:`split_where_missing`);
the two must be whole seeds (``MIN_AMPLITUDE_FRACTION``), apart as two seeds are on these
slices (``MIN_GAP_MM``; one above the other, as
:func:`planner.postop.detection.column_pairs.apart_on_slices` says), near where the one
was (``MAX_MOVE_MM``) and not on a seed found beside it (``MIN_OTHER_MM``).

Set on the 5 mm freehand scenes rng 0–11, 200–223 and 300–323 of ``benchmarks.bench_detect``
(with the lung spots of session 23: 2777 → 2790/2813 found, 12 → 10 false); on rng 400–823, never
looked at: 4795 → 4812/4872 found with the lung spots, 29 → 27 false. The seeds it split right
gained 277–2014 in BIC.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from planner.postop.detection.column_pairs import apart_on_slices
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.seed_fit import SeedFit, fit_seeds, line_image_at
from planner.postop.detection.thick_fit import FitContext, SeedBoxData, seed_box_data

SPLIT_WHERE_MISSING = True
#: The fitted box: ± this (mm) in-plane and ± ``BOX_SLICES`` slices about the seed.
BOX_MM = 6.0
BOX_SLICES = 2
#: The two-seed fits start this far (mm) either side of the seed.
SPLIT_START_MM = 2.5
#: Two seeds are kept when their fit's BIC is lower than the one seed's by at least this.
MIN_BIC_GAIN = 40.0
#: ... each carries at least this fraction of one seed's amplitude,
MIN_AMPLITUDE_FRACTION = 0.6
#: ... they lie at least this far apart (mm; a single seed fitted as two: 2.2–2.6 mm),
MIN_GAP_MM = 3.0
#: ... each within this (mm) of the seed they replace (the demo post-op CT at 5 mm: a seed
#: 6.0 mm along the normal from the one found beside it, missed with 6 mm),
MAX_MOVE_MM = 7.0
#: ... and no closer than this (mm) to another seed found (it would be that seed's image).
MIN_OTHER_MM = 4.0
#: Only the seeds two seeds would explain best instead (:func:`second_seed_score`: pairs
#: either side of the seed, these half gaps in mm, or the seed and one at these offsets) are
#: fitted: ``SCREEN_PER_MISSING`` per seed missing and ``SCREEN_EXTRA`` more.
SCREEN_HALF_GAPS_MM = (2.0, 3.0, 4.0, 5.0)
SCREEN_OFFSETS_MM = (4.0, 6.0, 8.0)
SCREEN_PER_MISSING = 4
SCREEN_EXTRA = 6
#: Seeds within this (mm) of the fitted one are held fixed in its fit.
NEIGHBOUR_REACH_MM = 14.0


@dataclass(frozen=True)
class SplitCandidate:
    """A found seed (index ``n``) fitted better as two: the BIC gain and the two-seed fit."""

    n: int
    bic_gain: float
    fit: SeedFit


def split_where_missing(
    seeds: list[DetectedSeed],
    ctx: FitContext,
    amplitude: float,
    missing: int,
    normal: NDArray[np.float64],
    thickness_mm: float,
) -> list[DetectedSeed]:
    """``seeds`` with up to ``missing`` of them made two (:func:`split_candidates`, largest
    BIC gain first, no two candidates within ``MAX_MOVE_MM`` of one another);
    ``amplitude`` one seed's (HU·mm³), ``normal`` the unit slice normal, ``thickness_mm``
    the slice thickness. The two get a low axis confidence and cluster size 2."""
    if not SPLIT_WHERE_MISSING or missing <= 0 or len(seeds) < 3:
        return seeds
    screened = SCREEN_PER_MISSING * missing + SCREEN_EXTRA
    cands = sorted(
        split_candidates(seeds, ctx, amplitude, normal, thickness_mm, screened),
        key=lambda c: -c.bic_gain,
    )
    pts = np.array([s.position_mm for s in seeds])
    chosen: list[SplitCandidate] = []
    for c in cands:
        if len(chosen) >= missing:
            break
        if any(np.linalg.norm(pts[c.n] - pts[o.n]) < MAX_MOVE_MM for o in chosen):
            continue  # its neighbour's split explains the same excess
        chosen.append(c)
    if not chosen:
        return seeds
    by_n = {c.n: c for c in chosen}
    out: list[DetectedSeed] = []
    for n, s in enumerate(seeds):
        if n not in by_n:
            out.append(s)
            continue
        fit = by_n[n].fit
        out.extend(
            replace(
                s,
                position_mm=tuple(float(v) for v in p),
                axis=canonical_axis(a),
                confidence=min(s.confidence, 0.3),
                cluster_size=2,
            )
            for p, a in zip(fit.centres_mm, fit.axes, strict=True)
        )
    return out


def split_candidates(
    seeds: list[DetectedSeed],
    ctx: FitContext,
    amplitude: float,
    normal: NDArray[np.float64],
    thickness_mm: float,
    screened: int,
) -> list[SplitCandidate]:
    """The found seeds whose two-seed fit passes the module's tests, with its BIC gain: of
    the ``screened`` seeds two seeds would explain best (:func:`second_seed_score`; the fits
    cost 60 ms a seed, the score 1 ms)."""
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    axes = np.array([s.axis for s in seeds], dtype=np.float64)
    normal = np.asarray(normal, dtype=np.float64)
    boxes = [
        seed_box_data(ctx, pts, axes, n, BOX_MM, BOX_SLICES, amplitude, NEIGHBOUR_REACH_MM)
        for n in range(len(seeds))
    ]
    scores = np.array(
        [
            -np.inf if b is None else second_seed_score(b, pts[n], axes[n], normal, amplitude, ctx)
            for n, b in enumerate(boxes)
        ]
    )
    order = np.argsort(-scores)[:screened]
    out: list[SplitCandidate] = []
    for n in order:
        data = boxes[n]
        if data is None:
            continue
        coords, values, sat, fixed = data
        one = fit_seeds(
            coords, values, pts[n][None], axes[n][None], amplitude, ctx.model, sat, fixed_hu=fixed
        )
        best: SeedFit | None = None
        for d in _start_directions(axes[n], normal):
            starts = np.array([pts[n] - SPLIT_START_MM * d, pts[n] + SPLIT_START_MM * d])
            two = fit_seeds(
                coords,
                values,
                starts,
                np.array([axes[n], axes[n]]),
                amplitude,
                ctx.model,
                sat,
                fixed_hu=fixed,
            )
            if best is None or two.rss < best.rss:
                best = two
        if best is None or one.bic - best.bic < MIN_BIC_GAIN:
            continue
        if _plausible(best, pts, int(n), amplitude, normal, thickness_mm):
            out.append(SplitCandidate(int(n), float(one.bic - best.bic), best))
    return out


def second_seed_score(
    data: SeedBoxData,
    centre_mm: NDArray[np.float64],
    axis: NDArray[np.float64],
    normal: NDArray[np.float64],
    amplitude: float,
    ctx: FitContext,
) -> float:
    """How much better two seeds explain the box of the seed at ``centre_mm``/``axis`` than
    it alone (HU², residual sum of squares): the largest gain over pairs along
    :func:`_start_directions` — either side of it ``SCREEN_HALF_GAPS_MM``, or it and one
    ``SCREEN_OFFSETS_MM`` beside it — each pair's two amplitudes and the one seed's by linear
    least squares on ``data`` (its box, :func:`seed_box_data`) less the other found seeds'
    images, every position as it is (no fit)."""
    coords, values, _, fixed = data
    target = values if fixed is None else values - fixed
    axis = np.asarray(axis, dtype=np.float64)[None]

    def unit(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return line_image_at(coords, p[None], axis, 1.0, ctx.model)

    g0 = unit(np.asarray(centre_mm, dtype=np.float64))
    g0g0 = float(g0 @ g0)
    if g0g0 <= 0:
        return 0.0
    one = float(target @ g0) ** 2 / g0g0  # what the seed alone explains
    best = 0.0
    for d in _start_directions(axis[0], normal):
        pairs = [(centre_mm - h * d, centre_mm + h * d) for h in SCREEN_HALF_GAPS_MM]
        pairs += [(centre_mm, centre_mm + sg * o * d) for o in SCREEN_OFFSETS_MM for sg in (-1, 1)]
        for p1, p2 in pairs:
            g1 = g0 if p1 is centre_mm else unit(p1)
            g2 = unit(p2)
            gram = np.array([[g1 @ g1, g1 @ g2], [g1 @ g2, g2 @ g2]])
            rhs = np.array([target @ g1, target @ g2])
            if np.linalg.det(gram) <= 1e-9 * gram[0, 0] * gram[1, 1]:
                continue
            amps = np.linalg.solve(gram, rhs)
            if amps.min() <= 0:
                continue  # not two seeds
            best = max(best, float(rhs @ amps) - one)
    return best


def _start_directions(
    axis: NDArray[np.float64], normal: NDArray[np.float64]
) -> list[NDArray[np.float64]]:
    """Unit directions the two-seed fits start along: the slice normal, the seed's axis and
    the direction across both (the axis itself where it lies along the normal)."""
    dirs = [normal]
    a = np.asarray(axis, dtype=np.float64)
    if abs(float(a @ normal)) < 0.95:
        dirs.append(a / np.linalg.norm(a))
        cross = np.cross(a, normal)
        dirs.append(cross / np.linalg.norm(cross))
    return dirs


def _plausible(
    fit: SeedFit,
    pts: NDArray[np.float64],
    n: int,
    amplitude: float,
    normal: NDArray[np.float64],
    thickness_mm: float,
) -> bool:
    """Whether the two seeds of ``fit`` may replace seed ``n`` of ``pts``: whole, apart, near
    it and off the other seeds found."""
    a, b = fit.centres_mm
    if float(fit.amplitudes.min()) < MIN_AMPLITUDE_FRACTION * amplitude:
        return False
    if float(np.linalg.norm(b - a)) < MIN_GAP_MM:
        return False
    if not apart_on_slices(a, b, normal, thickness_mm):
        return False  # one above the other less than a slice apart: one seed across two
    if np.linalg.norm(fit.centres_mm - pts[n], axis=1).max() > MAX_MOVE_MM:
        return False
    others = np.delete(pts, n, axis=0)
    if len(others):
        near = np.linalg.norm(fit.centres_mm[:, None] - others[None], axis=-1).min()
        if near < MIN_OTHER_MM:
            return False
    return True
