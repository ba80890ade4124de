"""Thick slices: seeds in or against lung, found by the seed image model.

On 5 mm slices a seed in lung reads −150 to 700 HU (its excess over lung at −800), below the
HU floor of the candidates (:data:`planner.postop.detection.thick_slices.THICK_FLOOR_HU`), and where
the lung ends along the slice axis the 3-slice opening takes the tissue of the next slice as its
background (in-plane excess 820 HU, compact excess 220). Lowering the floor brings in the ribs
and lung edges (647 false seeds on the 20 scenes of ``benchmarks.bench_detect``), and so does
searching the residual in lung (:mod:`planner.postop.detection.residual`: +1 found, +4 false).

:func:`lung_seeds` looks instead where lung is (``LUNG_FRACTION`` of a ≈ 10 mm square below
−500 HU), beside the seeds found (a needle row: ``LUNG_MIN_DISTANCE_MM``–``SEARCH_REACH_MM``),
at the local maxima of what the found seeds' images leave of the in-plane excess (a seed in
lung a slice beside a brighter found one is no maximum of the excess itself:
``SPOTS_ON_RESIDUAL``) where the excess is ≥ ``MIN_PEAK_HU`` (from ``FAINT_PEAK_HU`` where
the fit is as sharp as a seed's), and fits one seed's image
(:func:`planner.postop.detection.seed_fit.fit_seeds`) to what the found seeds' images leave there of
the HU above a disc opening (``TOPHAT_RADIUS_MM``). Thresholds: see ``MIN_AMPLITUDE_FRACTION``.
What a fit must show is a :class:`LungRule`: :data:`SEED_RULE` here, and a looser
:data:`WHERE_MISSING_RULE` the detection applies at its end while the expected count says
seeds are missing (the best fits first, one per seed missing). A small lung vessel crossing
two thick slices obliquely is a thin line 5 mm long of about a seed's excess: on 5 mm slices
the two cannot always be told apart by the image alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.blobs import lung_fraction_map
from planner.postop.detection.residual import (
    SEARCH_REACH_MM,
    ModelledSeeds,
    voxel_centres,
)
from planner.postop.detection.seed_fit import SeedImageModel, fit_seeds

#: Lung is where at least this fraction of a ``LUNG_BOX_MM`` square reads below
#: :data:`~planner.postop.detection.blobs.LUNG_HU`.
LUNG_FRACTION = 0.2
LUNG_BOX_MM = 10.0
#: A lung spot is a local maximum of the in-plane excess of at least this (HU): a seed in lung
#: straddling two slices peaks at 640–1490 HU on the better one.
MIN_PEAK_HU = 500.0
#: ... or of at least this (HU) where the fit is as sharp as a seed's (``SHARP_WIDE_RATIO``,
#: ``SHARP_R2``): a seed in lung far from the slice centre, its excess shared by two slices.
FAINT_PEAK_HU = 250.0
#: ... and not fitted in full when its coarse fit explains less than ``SHARP_R2`` less this of
#: the box's variance: the full fit added at most 0.29 to the coarse fit's R² over the 76
#: faint spots of five 5 mm scenes (held-out grid rng 4, clusters+lung rng 8, freehand rng 2,
#: 5, 10), so such a spot cannot become sharp.
FAINT_R2_GAIN = 0.35
#: Spots of the disc opening's excess (:attr:`LungRule.spots_on_disc`) reach at least this (HU).
DISC_PEAK_HU = 500.0
#: The fit box: ± this (mm) in-plane and ± one slice about the spot.
FIT_REACH_MM = 4.7
#: What the fit sees: the HU above its grey opening by an in-plane disc of this radius (mm).
#: A seed and its blur (≤ 2 mm wide) vanish from the opening in every direction; the lung's
#: level, tissue edges and vessels wider than the disc stay in it. The in-plane excess of the
#: candidates (line openings) takes a train of seeds end to end, or a seed touching tissue,
#: for a line: such seeds in lung fitted at 0.4 of a seed's amplitude on it, 0.9 on this.
TOPHAT_RADIUS_MM = 2.5
#: Spots and seeds closer than this (mm) to a seed found are not looked at: a seed in lung may
#: lie end to end with a found one of its needle train (5.5 mm centre to centre), nearer than
#: the residual's ``MIN_DISTANCE_MM`` (6.5 mm, a found seed's own misfit); the fit takes the
#: found seeds' images out first. 6.5 → 5.0: 502 → 504 found, 14 false, on the 5 mm freehand
#: scenes rng 0–11; 439 → 442, 9 false, on rng 100–111; the 29 needle-grid scenes unchanged.
LUNG_MIN_DISTANCE_MM = 5.0
#: A spot is a seed when one seed's image fits it at this fraction of the single-seed amplitude
#: or more, explaining at least ``MIN_R2`` of the variance in the box (seeds in lung fitted at
#: 0.71–1.62 with R² 0.51–0.83, the phantom's small lung vessels at 0.71–1.14 with R²
#: 0.52–0.70, on the 5 mm freehand scenes rng 0–11 of ``bench_detect``: R² does not tell
#: them apart, the wider line does). 0.55 → 0.4: two isolated seeds in lung with lung
#: structure in their box (fitted at 0.89 and 0.93 of a seed, R² 0.43 and 0.52) are found —
#: scenarios 521 → 522/524 (false 2 → 1), held-out 941 → 942/943, other sets unchanged; with
#: 0.3 each of the 20 fits the amplitude and the wider line let through on the five 5 mm sets
#: lay within 1.5 mm of a true seed that no other seed found was within 2.5 mm of.
MIN_AMPLITUDE_FRACTION = 0.82
MIN_R2 = 0.4
#: ... or at ``SHARP_AMPLITUDE_FRACTION`` or more where the image is as sharp as a seed's: the
#: line ``WIDE_FACTOR`` as wide leaves ``SHARP_WIDE_RATIO`` times the misfit, and R² is at least
#: ``SHARP_R2`` (5 mm scenes of ``bench_detect``, freehand rng 0–11 and 100–111, validation
#: and scenario sets: seeds in lung at ratios 1.19–2.69, mostly ≥ 1.44, fitted at 0.73–0.82
#: with ratios 1.53–2.69; every fit of no seed at 1.36 or less, but one 5.8 mm from a seed).
SHARP_AMPLITUDE_FRACTION = 0.7
SHARP_WIDE_RATIO = 1.45
SHARP_R2 = 0.6
#: ... and fits better than the image of a line this many times as wide in-plane (a lung vessel
#: crossing the slice is a band 2.5–3 mm wide; a seed's image 1–2 pixels).
WIDE_FACTOR = 2.0
#: Spots whose positive residual in the fit box integrates to less than this fraction of one
#: seed's amplitude (HU·mm³) are not fitted (a seed is at least ``MIN_AMPLITUDE_FRACTION``;
#: 0.8 lost a seed of the validation scenes, 0.5 none; the dense case's fits 2.2 s → 1.9 s).
SCREEN_FRACTION = 0.5
#: Spots are the local maxima of the excess less the found seeds' images (else of the excess):
#: 5 mm freehand rng 200–223 1110 → 1112/1122 found, false 4 → 4; rng 0–11 and 300–323
#: unchanged (531/535, 1136/1156).
SPOTS_ON_RESIDUAL = True
#: Each start is fitted this many residual evaluations; the best is then fitted in full (the
#: same seeds on the 29 scenes of ``bench_detect`` as five full fits, in 0.55 of the time).
COARSE_EVALUATIONS = 8
#: Axes the fit starts from (the best of them is kept): a seed's axis is unknown here.
START_AXES = np.array(
    [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0.7071, 0.7071, 0], [0.7071, -0.7071, 0]], dtype=float
)


@dataclass(frozen=True)
class LungSeed:
    """A seed found in lung: centre (LPS mm), unit axis, its fitted amplitude as a fraction of
    one seed's, and the fit's R²."""

    position_mm: NDArray[np.float64]
    axis: NDArray[np.float64]
    amplitude_fraction: float
    r2: float


@dataclass(frozen=True)
class LungFit:
    """One seed's image fitted at a lung spot: the seed it would be, how much wider a line's
    image misfits (``wide_ratio``: its RSS over the seed's; < 1 a vessel), whether the spot was
    faint (in-plane excess < ``MIN_PEAK_HU``) and the lung fraction there."""

    seed: LungSeed
    wide_ratio: float
    faint: bool
    lung_fraction: float


@dataclass(frozen=True)
class LungRule:
    """What a lung spot's fit must show to be a seed (see the module's constants)."""

    lung_fraction: float = LUNG_FRACTION
    min_amplitude_fraction: float = MIN_AMPLITUDE_FRACTION
    min_r2: float = MIN_R2
    sharp_amplitude_fraction: float = SHARP_AMPLITUDE_FRACTION
    sharp_wide_ratio: float = SHARP_WIDE_RATIO
    sharp_r2: float = SHARP_R2
    #: Whether a faint spot's fit (``FAINT_PEAK_HU``–``MIN_PEAK_HU``) must be sharp.
    faint_must_be_sharp: bool = True
    #: Spots closer than this (mm) to a seed found are not fitted (the seeds fitted are kept
    #: ``LUNG_MIN_DISTANCE_MM`` from every seed found whatever this is).
    spot_min_distance_mm: float = LUNG_MIN_DISTANCE_MM
    #: Whether the local maxima of the disc opening's excess less the found seeds' images
    #: (≥ ``DISC_PEAK_HU``) are spots too: a seed in lung end to end with the next of its
    #: needle is part of a line to the line openings, not to the disc.
    spots_on_disc: bool = False

    def accepts(self, fit: LungFit) -> bool:
        """Whether ``fit`` is a seed: whole and explaining its box, or as sharp as a seed."""
        s = fit.seed
        if fit.lung_fraction < self.lung_fraction or fit.wide_ratio < 1.0:
            return False  # not in lung, or a band wider than a seed: a vessel
        if s.amplitude_fraction < self.sharp_amplitude_fraction or s.r2 < self.min_r2:
            return False
        sharp = fit.wide_ratio >= self.sharp_wide_ratio and s.r2 >= self.sharp_r2
        whole = s.amplitude_fraction >= self.min_amplitude_fraction
        return sharp or (whole and not (fit.faint and self.faint_must_be_sharp))


#: The rule of :func:`lung_seeds`.
SEED_RULE = LungRule()
#: The rule where seeds are still missing from the expected count at the end of the detection
#: (:func:`planner.postop.detection.detect.detect_seeds`), the best fits first, one per seed
#: missing: lung in ≥ 0.1 of the box, ≥ 0.62 of a seed's amplitude, R² ≥ 0.33, faint spots
#: too, spots from 3 mm of a seed found (a spot is on a slice centre, the seed may lie half a
#: slice off it), and spots of the disc opening's excess too. Set on the 5 mm freehand scenes
#: rng 0–11, 200–223 and 300–323: the seeds in lung the seed rule missed fitted at 0.70–1.03
#: of a seed (R² 0.37–0.69; lung fraction 0.14–0.75), the fits ≥ 5 mm from every seed found
#: that were no seed at 0.45–0.60 (R² 0.25–0.42; the one at 0.60 a vessel, wide ratio 0.86);
#: 9 seeds more there than the seed rule, none false.
WHERE_MISSING_RULE = LungRule(
    lung_fraction=0.1,
    min_amplitude_fraction=0.62,
    min_r2=0.33,
    sharp_amplitude_fraction=0.62,
    faint_must_be_sharp=False,
    spot_min_distance_mm=3.0,
    spots_on_disc=True,
)


def lung_seeds(
    hu: NDArray[np.generic],
    inplane_excess: NDArray[np.float32],
    usable: NDArray[np.bool_],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    rule: LungRule | None = None,
    most: int | None = None,
) -> list[LungSeed]:
    """Seeds in or against lung beside the found ``seeds_mm``/``axes`` ``(N, 3)`` (LPS mm,
    unit). ``hu``, ``inplane_excess`` (HU above the in-plane line openings), ``usable`` (where
    the found seeds' amplitude is measured: HU above the floor, not excluded) and ``excluded``
    are (z, y, x) on ``geometry``'s grid. Strongest fit first, at most ``most``; those
    ``rule`` accepts (default :data:`SEED_RULE`); none with fewer than 3 seeds."""
    rule = SEED_RULE if rule is None else rule
    fits = lung_fits(hu, inplane_excess, usable, excluded, geometry, seeds_mm, axes, rule)
    found = apart_from([f.seed for f in fits if rule.accepts(f)], seeds_mm, LUNG_MIN_DISTANCE_MM)
    return found if most is None else found[:most]


def apart_from(
    found: list[LungSeed], seeds_mm: NDArray[np.float64], distance_mm: float
) -> list[LungSeed]:
    """``found`` strongest first (amplitude fraction × R²), less those within ``distance_mm``
    of ``seeds_mm`` (N, 3) or of one kept before them: one seed per spot cluster."""
    taken = [np.asarray(p, dtype=np.float64) for p in seeds_mm]
    out: list[LungSeed] = []
    for s in sorted(found, key=lambda s: -s.amplitude_fraction * s.r2):
        nearest = np.linalg.norm(np.asarray(taken) - s.position_mm, axis=1) if taken else [np.inf]
        if np.min(nearest) < distance_mm:
            continue
        taken.append(s.position_mm)
        out.append(s)
    return out


def lung_fits(
    hu: NDArray[np.generic],
    inplane_excess: NDArray[np.float32],
    usable: NDArray[np.bool_],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    rule: LungRule,
) -> list[LungFit]:
    """One seed's image fitted at each lung spot beside the found seeds (arguments as
    :func:`lung_seeds`); spots and fits that cannot pass ``rule`` are not fitted in full."""
    if len(seeds_mm) < 3:
        return []
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    excess = np.maximum(inplane_excess, 0.0).astype(np.float32)
    seeds = ModelledSeeds(
        np.where(usable, excess, 0.0).astype(np.float32), geometry, seeds_mm, axes
    )
    if seeds.amplitude <= 0:
        return []
    box_px = 2 * round(0.5 * LUNG_BOX_MM / float(sp[0])) + 1
    nms_px = 2 * round(2.5 / float(sp[0])) + 1
    # Spots are searched only within SEARCH_REACH_MM of a seed found: the filters run on that
    # box, grown by their own reach so that inside it they read as on the whole volume.
    seeds_kji = geometry.world_to_zyx(np.asarray(seeds_mm, dtype=np.float64))
    reach_kji = np.ceil(SEARCH_REACH_MM / sp[::-1]).astype(int) + np.array([1, box_px, box_px])
    lo_s = np.maximum(np.floor(seeds_kji.min(axis=0)).astype(int) - reach_kji, 0)
    hi_s = np.minimum(np.ceil(seeds_kji.max(axis=0)).astype(int) + reach_kji + 1, hu.shape)
    search = tuple(slice(int(a), int(b)) for a, b in zip(lo_s, hi_s, strict=True))
    local = excess[search]
    lung = lung_fraction_map(hu[search], (1, box_px, box_px))
    # Spots are the maxima of what the found seeds' images leave: a seed in lung a slice
    # beside a found one is no maximum of the excess itself (its neighbour is brighter).
    left = (local - seeds.predicted[search]) if SPOTS_ON_RESIDUAL else local
    spot = (left >= ndi.maximum_filter(left, size=(3, nms_px, nms_px))) & (
        local >= min(MIN_PEAK_HU, FAINT_PEAK_HU)
    )
    above_opening = disc_tophat(hu[search], TOPHAT_RADIUS_MM / float(sp[0]))
    if rule.spots_on_disc:
        disc_left = above_opening - seeds.predicted[search]
        spot |= (disc_left >= ndi.maximum_filter(disc_left, size=(3, nms_px, nms_px))) & (
            disc_left >= DISC_PEAK_HU
        )
    spot &= (lung >= rule.lung_fraction) & ~excluded[search]
    kji = np.argwhere(spot) + lo_s
    if len(kji) == 0:
        return []
    lung_at = lung[tuple((kji - lo_s).T)]
    at_mm = geometry.zyx_to_world(kji.astype(np.float64))
    near = np.min(np.linalg.norm(at_mm[:, None] - seeds_mm[None], axis=-1), axis=1)
    keep = (near >= rule.spot_min_distance_mm) & (near <= SEARCH_REACH_MM)
    model = SeedImageModel.for_grid(geometry.spacing_mm, geometry.direction)
    r = round(FIT_REACH_MM / float(sp[0]))
    voxel_mm3 = float(np.prod(sp))
    wide_model = replace(model, sigma_mm=model.sigma_mm * np.array([WIDE_FACTOR, WIDE_FACTOR, 1.0]))
    fits: list[LungFit] = []
    for (k, j, i), p, lung_here in zip(kji[keep], at_mm[keep], lung_at[keep], strict=True):
        faint = float(excess[k, j, i]) < MIN_PEAK_HU
        lo = np.maximum([k - 1, j - r, i - r], 0)
        hi = np.minimum([k + 2, j + r + 1, i + r + 1], hu.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        coords = voxel_centres(geometry, lo, hi)
        in_search = tuple(
            slice(int(a - o), int(b - o)) for a, b, o in zip(lo, hi, lo_s, strict=True)
        )
        values = (above_opening[in_search] - seeds.predicted[box]).ravel().astype(np.float64)
        if float(np.maximum(values, 0.0).sum()) * voxel_mm3 < SCREEN_FRACTION * seeds.amplitude:
            continue  # too little left here for a seed: not worth the fits
        # The start of least misfit after a few steps, then fitted in full.
        coarse = min(
            (
                fit_seeds(
                    coords,
                    values,
                    p[None],
                    a[None],
                    seeds.amplitude,
                    model,
                    amplitude_range=(0.1, 3.0),
                    max_evaluations=COARSE_EVALUATIONS,
                )
                for a in START_AXES
            ),
            key=lambda f: f.rss,
        )
        tss = float(np.sum((values - values.mean()) ** 2))
        if faint and 1.0 - coarse.rss / max(tss, 1e-9) < rule.sharp_r2 - FAINT_R2_GAIN:
            continue  # a faint spot this far from a seed's image will not be as sharp as one
        best = fit_seeds(
            coords,
            values,
            coarse.centres_mm,
            coarse.axes,
            seeds.amplitude,
            model,
            amplitude_range=(0.1, 3.0),
        )
        r2 = 1.0 - best.rss / max(tss, 1e-9)
        fraction = float(best.amplitudes[0] / seeds.amplitude)
        if fraction < rule.sharp_amplitude_fraction or r2 < rule.min_r2:
            continue  # no rule passes it: the wide fit is not needed
        wide = fit_seeds(
            coords,
            values,
            best.centres_mm,
            best.axes,
            seeds.amplitude,
            wide_model,
            amplitude_range=(0.1, 3.0),
        )
        seed = LungSeed(best.centres_mm[0], best.axes[0], fraction, r2)
        fits.append(LungFit(seed, wide.rss / max(best.rss, 1e-9), faint, float(lung_here)))
    return fits


def disc_tophat(hu: NDArray[np.generic], radius_px: float) -> NDArray[np.float32]:
    """``hu`` (z, y, x) above its grey opening by an in-plane disc of ``radius_px`` pixels."""
    n = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    disc = (yy**2 + xx**2 <= radius_px**2)[None]
    block = hu.astype(np.float32)
    return block - ndi.grey_opening(block, footprint=disc)
