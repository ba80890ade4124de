"""Thick slices: seeds placed, split and added by the seed image model.

After :func:`planner.postop.detection.detect.detect_seeds` has classified the components and split
the clusters, :func:`place_by_model` runs, in this order, with the seed image model
(:mod:`planner.postop.detection.seed_fit`: a blurred 4.5 mm line source; a blob's box and its fixed
neighbours from :mod:`planner.postop.detection.thick_fit`):

1. :func:`seed_amplitude`: one seed's amplitude (HU·mm³), for every fit of the scan;
2. :func:`refit_seeds` places the parts of split clusters (``REFIT_CLUSTERS``: counts kept,
   the nearby seeds' images held fixed), or one seed fewer where two parts would overlap, or
   the blob was counted two by its column (``COLUMN_FEWER``), and the fit of one seed fewer is
   better by its BIC (two seeds end to end in-plane weigh 2.7 seeds on 5 mm slices, and were
   split in three);
3. :func:`planner.postop.detection.duplicates.merge_duplicates`: two seeds of different components
   closer than ``DUPLICATE_MM`` are one seed cut in two;
3a. :func:`add_faint_seeds` (with the planning CT's bone taken out): a faint component far
   from every seed is the remnant of a seed end to end with the next of its needle, which the
   in-plane line openings took for a line; placed in step 4 like the residual's seeds, and
   dropped when placed within ``FAINT_ALONE_MM`` of another seed (it was that seed's tail);
4. :func:`add_residual_seeds` (``RESIDUAL_SEEDS``): a found seed that is two stacked along the
   slice axis is split (:func:`planner.postop.detection.residual.stacked_pairs`), and the seeds the
   components missed (the middle seed of a column of three, a seed between two found ones)
   are found in what the found seeds' images leave unexplained
   (:func:`planner.postop.detection.residual.unexplained_seeds`), each then placed by the fit
   (:func:`place_residual_seeds`; the residual's own centre was up to 3.5 mm off along the
   slice axis);
5. :func:`refit_seeds` again for the single seeds of uncertain axis, every other seed (those
   of step 4 too) in the model (axis median 22° → 5° on the grid scenes);
5a. :func:`planner.postop.detection.slice_centroid.refine_along_slice_axis`
   (``SLICE_AXIS_REFINE``): the single seeds of confident axis near the slice plane, placed by
   their blobs' centroids (too near the slice centre), moved along the slice normal to where
   their image fits best;
5b. :func:`refit_columns` (``COLUMN_REFIT``): the seeds stacked along the slice axis
   (:func:`column_pairs`) share a slice whose excess the z-opening removed, and were placed at
   their own slices' centres; each column is fitted as one;
6. :func:`add_lung_seeds` (``LUNG_SEEDS``): seeds in or against lung beside those found, too
   faint in HU for the candidates, found by fitting one seed's image
   (:func:`planner.postop.detection.lung_seeds.lung_seeds`);
7. with the planning CT's bone taken out (``BETWEEN_PAIRS``): a seed found between two seeds
   end to end is those two (:func:`planner.postop.detection.between_pairs.split_between_pairs`);
8. with the planning CT's bone taken out (``END_TO_END``): the seed end to end with a seed
   found, taken for bone with it (:func:`planner.postop.detection.end_to_end.add_end_to_end_seeds`);
9. with the planning CT's bone taken out (``SLICE_AXIS_BESIDE_LUNG``): uncertain seeds beside
   lung placed along the slice axis on the HU above a disc opening
   (:func:`planner.postop.detection.slice_axis.replace_along_slice_axis`).

Positions are LPS mm on the CT's own geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.postop.detection.between_pairs import split_between_pairs
from planner.postop.detection.blobs import Component
from planner.postop.detection.cluster_split import MIN_SPLIT_DISTANCE_MM
from planner.postop.detection.duplicates import merge_duplicates
from planner.postop.detection.end_to_end import add_end_to_end_seeds
from planner.postop.detection.lung_seeds import LungRule, lung_seeds
from planner.postop.detection.residual import stacked_pairs, unexplained_seeds
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.seed_fit import (
    SeedFit,
    fit_seeds,
    neighbours_image,
)
from planner.postop.detection.slice_axis import replace_along_slice_axis
from planner.postop.detection.slice_centroid import refine_along_slice_axis
from planner.postop.detection.thick_fit import (
    MIN_FIT_VOXELS,
    FitContext,
    blob_data,
    blob_fit_data,
    blobs_data,
    seed_box_data,
    seeds_by_component,
)

#: Thick slices: place the parts of split clusters by the image model fit (counts kept).
REFIT_CLUSTERS = True
#: ... and single seeds whose axis is this uncertain (a blob as wide as long: a seed with a
#: neighbour in its blob, or smeared over the slice).
REFIT_BELOW_CONFIDENCE = 0.5
#: ... a part moving further than this (mm) keeps the split's centre (the split on 5 mm
#: slices places parts up to about half a slice off along the slice axis).
CLUSTER_FIT_MAX_MOVE_MM = 4.0
#: Seeds of other components this close (mm) to a blob's box are part of its model.
NEIGHBOUR_REACH_MM = 8.0
#: A split cluster whose parts come too close or would overlap is also fitted with one seed
#: fewer (kept when its BIC is lower).
REFIT_FEWER = True
#: ... and for a blob counted two seeds one above the other by its column of in-plane excess
#: (:data:`planner.postop.detection.column_pairs.COLUMN_PAIRS`): a single seed's column read
#: 2.3 seeds (freehand rng 520, no other seed in it), and one seed fits it better.
COLUMN_FEWER = True
#: Two seeds whose centres lie closer than this (mm) along their axes and within
#: ``OVERLAP_LATERAL_MM`` across them would overlap (end to end they are a seed length,
#: 4.5 mm, apart): a cluster split so is also fitted with one seed fewer.
OVERLAP_ALONG_MM = 3.6
OVERLAP_LATERAL_MM = 1.2

#: Thick slices: look for the seeds the components missed in what the found seeds leave
#: unexplained (:mod:`planner.postop.detection.residual`).
RESIDUAL_SEEDS = True
#: Thick slices: a found seed that is two stacked along the slice axis is split in two
#: (:func:`planner.postop.detection.residual.stacked_pairs`).
STACKED_PAIRS = True
#: Confidence of a seed found in the residual (its axis is the in-plane direction of a blob).
RESIDUAL_CONFIDENCE = 0.3
#: A seed found in the residual is placed by fitting its image to the in-plane excess of a
#: box of ± this (mm in-plane, slices) about it; moving further than
#: ``RESIDUAL_FIT_MAX_MOVE_MM`` it keeps its centre.
RESIDUAL_FIT_BOX_MM = 5.0
RESIDUAL_FIT_SLICES = 1
RESIDUAL_FIT_MAX_MOVE_MM = 3.0

#: A faint component no seed lies this close to (mm) is a seed (``add_faint_seeds``).
FAINT_ALONE_MM = 3.5

#: Thick slices: look for seeds in or against lung beside those found
#: (:mod:`planner.postop.detection.lung_seeds`).
LUNG_SEEDS = True
#: Thick slices with the planning CT's bone taken out: a seed found between two seeds of a
#: needle row is those two (:mod:`planner.postop.detection.between_pairs`).
BETWEEN_PAIRS = True
#: Thick slices with the planning CT's bone taken out: the seed end to end with a seed found,
#: which the in-plane line openings took for bone with it
#: (:mod:`planner.postop.detection.end_to_end`).
END_TO_END = True
#: Thick slices with the planning CT's bone taken out: uncertain seeds beside lung placed along
#: the slice axis on the HU above a disc opening (:mod:`planner.postop.detection.slice_axis`).
SLICE_AXIS_BESIDE_LUNG = True
#: Thick slices: fit the seeds stacked along the slice axis together (:func:`refit_columns`).
#: Two seeds of one in-plane column 1–2 slices apart share a slice, whose excess the 3-slice
#: opening of :func:`planner.postop.detection.thick_slices.compact_excess` takes out: each was
#: placed at its own slice's centre, 0.6–1.3 mm off and pushed apart (5 mm scenes, the planning
#: CT's bone out: slice-axis error RMS 0.44 -> 0.40 mm held-out, 0.46 -> 0.41 mm validation;
#: worst |ΔD90| of the scenario set 6.4 -> 4.6 %; fitted one seed at a time, the others held
#: fixed, 0.41 mm held-out and one seed lost).
COLUMN_REFIT = True
#: Thick slices: confident single seeds near the slice plane placed along the slice axis by
#: the image model (step 5a, :mod:`planner.postop.detection.slice_centroid`).
SLICE_AXIS_REFINE = True
#: Seeds closer than this (mm) across the slice axis and ``COLUMN_SLICES_MIN``–
#: ``COLUMN_SLICES_MAX`` slices apart along it are stacked; a column whose fit moves a seed
#: further than ``COLUMN_MAX_MOVE_SLICES`` slices keeps its centres (0.4–0.5 lose a seed of
#: the dense benchmark, pulled 1.6 mm toward the image of a seed missed beside it).
COLUMN_INPLANE_MM = 3.0
COLUMN_SLICES_MIN = 0.2
COLUMN_SLICES_MAX = 2.2
COLUMN_MAX_MOVE_SLICES = 0.3


def column_pairs(seeds: list[DetectedSeed], geometry: GridGeometry) -> NDArray[np.int64]:
    """Index pairs ``(P, 2)`` (i < j) of the seeds of ``seeds`` stacked along ``geometry``'s
    slice axis: within ``COLUMN_INPLANE_MM`` across it and ``COLUMN_SLICES_MIN``–
    ``COLUMN_SLICES_MAX`` slices apart along it."""
    if len(seeds) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    normal = np.asarray(geometry.slice_normal(), dtype=np.float64)
    d = pts[:, None] - pts[None]
    along_mm = d @ normal
    across_mm = np.linalg.norm(d - along_mm[..., None] * normal, axis=-1)
    along_slices = np.abs(along_mm) / float(geometry.spacing_mm[2])
    stacked = (
        (across_mm < COLUMN_INPLANE_MM)
        & (along_slices > COLUMN_SLICES_MIN)
        & (along_slices < COLUMN_SLICES_MAX)
    )
    return np.argwhere(np.triu(stacked, k=1)).astype(np.int64)


def refit_columns(
    seeds: list[DetectedSeed],
    comps: list[Component],
    ctx: FitContext,
    amplitude: float,
    geometry: GridGeometry,
) -> list[DetectedSeed]:
    """``seeds`` with each column of seeds stacked along the slice axis (:func:`column_pairs`,
    every seed alone in its component) placed by one fit of the seed image model to their
    components together (every other seed nearby held fixed at ``amplitude`` HU·mm³). A seed
    moving more than ``COLUMN_MAX_MOVE_SLICES`` slices, or two closer than
    ``MIN_SPLIT_DISTANCE_MM``, keep the column's centres."""
    pairs = column_pairs(seeds, geometry)
    if len(pairs) == 0:
        return seeds
    by_label = {c.label: c for c in comps}
    groups = seeds_by_component(seeds)
    alone = np.array([len(groups[s.component]) == 1 and s.component in by_label for s in seeds])
    pairs = pairs[alone[pairs[:, 0]] & alone[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (len(seeds),) * 2)
    _, column_of = connected_components(graph, directed=False)
    all_pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    all_axes = np.array([s.axis for s in seeds], dtype=np.float64)
    max_move_mm = COLUMN_MAX_MOVE_SLICES * float(geometry.spacing_mm[2])
    out = list(seeds)
    for column in np.unique(column_of[pairs[:, 0]]):
        members = np.flatnonzero(column_of == column)
        cs = [by_label[seeds[i].component] for i in members]
        coords, values, sat = blobs_data(cs, ctx)
        if len(values) < MIN_FIT_VOXELS:
            continue
        others = np.ones(len(seeds), dtype=bool)
        others[members] = False
        fixed = neighbours_image(
            coords, coords, all_pts, all_axes, others, amplitude, ctx.model, NEIGHBOUR_REACH_MM
        )
        fit = fit_seeds(
            coords,
            values,
            all_pts[members],
            all_axes[members],
            amplitude,
            ctx.model,
            sat,
            fixed_hu=fixed,
        )
        moved = np.linalg.norm(fit.centres_mm - all_pts[members], axis=1)
        if moved.max() > max_move_mm or _min_gap(fit) < MIN_SPLIT_DISTANCE_MM:
            continue
        for i, s in zip(members, _moved([seeds[i] for i in members], fit), strict=True):
            out[i] = s
    return out


def place_by_model(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    comps: list[Component],
    fit_ctx: FitContext,
    inplane_excess: NDArray[np.float32],
    excluded: NDArray[np.bool_],
    floor_hu: float,
    single: float,
    faint: list[Component] | None = None,
    bone_out: bool = False,
) -> list[DetectedSeed]:
    """Steps 1–9 of the module on ``seeds`` as the components ``comps`` gave them: placed,
    split and added to. ``inplane_excess`` (HU) and ``excluded`` are ``(z, y, x)`` on ``ct``'s
    grid, ``floor_hu`` the lowest HU searched, ``single`` one seed's blob mass (HU·mm³),
    ``faint`` the components too faint for a seed that may be a seed's remnant (step 3a),
    ``bone_out`` whether ``ct`` is the CT less the planning CT's bone (step 7)."""
    if REFIT_CLUSTERS:
        # One seed's amplitude in the image model, for every fit of this scan.
        amplitude = seed_amplitude(seeds, comps, fit_ctx, single)
        seeds = refit_seeds(seeds, comps, fit_ctx, amplitude, lambda g: len(g) > 1)
    seeds = merge_duplicates(seeds)
    n_found = len(seeds)
    if faint:
        seeds = add_faint_seeds(seeds, faint)
    from_faint = {s.position_mm for s in seeds[n_found:]}
    if RESIDUAL_SEEDS:
        seeds = add_residual_seeds(ct, seeds, inplane_excess, excluded, floor_hu)
    if REFIT_CLUSTERS and (RESIDUAL_SEEDS or faint):
        is_faint = [s.position_mm in from_faint for s in seeds]
        seeds = place_residual_seeds(seeds, fit_ctx, amplitude)
        # A faint seed placed onto a seed beside it was the tail of that seed.
        kept = [s for s, f in zip(seeds, is_faint, strict=True) if not f]
        for s, f in zip(seeds, is_faint, strict=True):
            if f and not seed_within(kept, s.position_mm, FAINT_ALONE_MM):
                kept.append(s)
        seeds = kept
    if RESIDUAL_SEEDS and REFIT_CLUSTERS:
        # Uncertain single seeds, now with the seeds found in the residual beside them.
        seeds = refit_seeds(
            seeds,
            comps,
            fit_ctx,
            amplitude,
            lambda g: len(g) == 1 and g[0].confidence < REFIT_BELOW_CONFIDENCE,
        )
    if REFIT_CLUSTERS and SLICE_AXIS_REFINE:
        # Confident single seeds, placed by their blobs' centroids: pulled toward slice centres.
        seeds = refine_along_slice_axis(
            seeds, comps, fit_ctx, amplitude, REFIT_BELOW_CONFIDENCE, NEIGHBOUR_REACH_MM
        )
    if REFIT_CLUSTERS and COLUMN_REFIT:
        # Seeds stacked along the slice axis share a slice: fitted together.
        seeds = refit_columns(seeds, comps, fit_ctx, amplitude, ct.geometry)
    if LUNG_SEEDS:
        seeds = add_lung_seeds(ct, seeds, inplane_excess, excluded, floor_hu)
    if bone_out and BETWEEN_PAIRS:
        seeds = split_between_pairs(ct.hu, excluded, ct.geometry, seeds)
    if bone_out and END_TO_END:
        seeds = add_end_to_end_seeds(ct.hu, excluded, ct.geometry, seeds)
    if bone_out and SLICE_AXIS_BESIDE_LUNG:
        seeds = replace_along_slice_axis(ct.hu, excluded, ct.geometry, seeds)
    return seeds


def seed_within(seeds: list[DetectedSeed], point_mm, distance_mm: float) -> bool:
    """Whether a seed of ``seeds`` lies closer than ``distance_mm`` to ``point_mm`` (LPS mm)."""
    if not seeds:
        return False
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    return bool(
        np.linalg.norm(pts - np.asarray(point_mm, dtype=np.float64), axis=1).min() < distance_mm
    )


def add_faint_seeds(seeds: list[DetectedSeed], faint: list[Component]) -> list[DetectedSeed]:
    """``seeds`` and a blobless seed (:func:`blobless_seed`, its axis the component's) at each
    component of ``faint`` that no seed lies within ``FAINT_ALONE_MM`` of, nor one added
    before it (the heaviest first)."""
    out = list(seeds)
    for c in sorted(faint, key=lambda c: -c.n_float):
        if not seed_within(out, c.centre, FAINT_ALONE_MM):
            out.append(blobless_seed(np.asarray(c.centre, dtype=np.float64), c.eigvecs[:, 0]))
    return out


def add_lung_seeds(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    inplane_excess: NDArray[np.float32],
    excluded: NDArray[np.bool_],
    floor_hu: float,
    rule: LungRule | None = None,
    most: int | None = None,
) -> list[DetectedSeed]:
    """``seeds`` and the seeds :func:`planner.postop.detection.lung_seeds.lung_seeds` finds in or
    against lung beside them (confidence ``RESIDUAL_CONFIDENCE``, cluster size 1, component 0:
    no blob of their own); arrays ``(z, y, x)`` on ``ct``'s grid, ``floor_hu`` the lowest HU
    searched; ``rule`` and ``most`` as that function's."""
    if not seeds:
        return seeds
    more = lung_seeds(
        ct.hu,
        inplane_excess,
        (ct.hu >= floor_hu) & ~excluded,
        excluded,
        ct.geometry,
        np.array([s.position_mm for s in seeds]),
        np.array([s.axis for s in seeds]),
        rule,
        most,
    )
    return seeds + [blobless_seed(m.position_mm, m.axis) for m in more]


def blobless_seed(position_mm: NDArray[np.float64], axis: NDArray[np.float64]) -> DetectedSeed:
    """A seed found by the model with no blob of its own (LPS mm, unit axis): confidence
    ``RESIDUAL_CONFIDENCE``, cluster size 1, component 0."""
    return DetectedSeed(
        tuple(float(v) for v in position_mm), canonical_axis(axis), RESIDUAL_CONFIDENCE, 1, 0
    )


def seed_amplitude(
    seeds: list[DetectedSeed], comps: list[Component], ctx: FitContext, single: float
) -> float:
    """Amplitude of one seed (HU·mm³ of the image model): the median fit of the ten single
    seeds whose blobs' masses are nearest one seed's (``single``: one seed's blob mass,
    HU·mm³; the guess is 1.3 of it, and it is the answer when there is no single seed)."""
    groups = seeds_by_component(seeds)
    by_label = {c.label: c for c in comps}
    singles = sorted(
        (by_label[lab] for lab, g in groups.items() if len(g) == 1 and lab in by_label),
        key=lambda c: abs(c.n_float - 1.0),
    )[:10]
    amps = []
    guess = 1.3 * single
    for c in singles:
        coords, values, sat = blob_data(c, ctx)
        g = groups[c.label][0]
        f = fit_seeds(
            coords,
            values,
            np.array([g.position_mm]),
            np.array([g.axis]),
            guess,
            ctx.model,
            sat,
            amplitude_range=(0.3, 3.0),
        )
        amps.append(f.amplitudes[0])
    return float(np.median(amps)) if amps else guess


def refit_seeds(
    seeds: list[DetectedSeed],
    comps: list[Component],
    ctx: FitContext,
    amplitude: float,
    which: Callable[[list[DetectedSeed]], bool],
    max_move_mm: float = CLUSTER_FIT_MAX_MOVE_MM,
) -> list[DetectedSeed]:
    """The seeds of each component ``which(group)`` selects placed by fitting the seed image
    model (as many seeds as the component has; every other seed nearby in the model, held
    fixed, at ``amplitude`` HU·mm³). A seed moving more than ``CLUSTER_FIT_MAX_MOVE_MM``, or
    two closer than ``MIN_SPLIT_DISTANCE_MM``, keep their centres: the fit places seeds, it
    does not count them."""
    by_label = {c.label: c for c in comps}
    groups = seeds_by_component(seeds)
    all_pts = np.array([s.position_mm for s in seeds]).reshape(-1, 3)
    all_axes = np.array([s.axis for s in seeds]).reshape(-1, 3)
    all_labels = np.array([s.component for s in seeds])
    out: list[DetectedSeed] = []
    for lab, g in groups.items():
        if lab not in by_label or not which(g):
            out.extend(g)
            continue
        c = by_label[lab]
        pts = np.array([s.position_mm for s in g])
        data = blob_fit_data(c, ctx, all_pts, all_axes, all_labels, amplitude, NEIGHBOUR_REACH_MM)
        if data is None:
            out.extend(g)
            continue
        coords, values, sat, fixed = data
        fit = fit_seeds(
            coords,
            values,
            pts,
            np.array([s.axis for s in g]),
            amplitude,
            ctx.model,
            sat,
            fixed_hu=fixed,
        )
        if (
            REFIT_FEWER
            and len(g) > 1
            and (
                _min_gap(fit) < MIN_SPLIT_DISTANCE_MM
                or _overlapping(fit)
                or (c.column_pair and COLUMN_FEWER)
            )
        ):
            # Two parts too close, or overlapping along their axes, or a blob counted two by
            # its column: one seed fewer may be it.
            fewer = _fit_fewer(fit, coords, values, amplitude, ctx, sat, fixed)
            if fewer.bic < fit.bic and _placed(fewer, pts):
                c.n_float = float(fewer.n)  # the fit counted: the count check leaves it
                out.extend(_moved(g[: fewer.n], fewer, cluster_size=fewer.n))
                continue
        moved = np.linalg.norm(fit.centres_mm - pts, axis=1)
        if moved.max() > max_move_mm or _min_gap(fit) < MIN_SPLIT_DISTANCE_MM:
            out.extend(g)
            continue
        out.extend(_moved(g, fit))
    return out


def _moved(
    seeds: list[DetectedSeed], fit: SeedFit, cluster_size: int | None = None
) -> list[DetectedSeed]:
    """``seeds`` at the centres and axes of ``fit`` (as many)."""
    return [
        replace(
            s,
            position_mm=tuple(float(v) for v in p),
            axis=canonical_axis(a),
            cluster_size=s.cluster_size if cluster_size is None else cluster_size,
        )
        for s, p, a in zip(seeds, fit.centres_mm, fit.axes, strict=True)
    ]


def _min_gap(fit: SeedFit) -> float:
    """Least distance (mm) between two seeds of ``fit`` (inf for one)."""
    gaps = np.linalg.norm(fit.centres_mm[:, None] - fit.centres_mm[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return float(gaps.min())


def _overlapping(fit: SeedFit) -> bool:
    """Whether two seeds of ``fit`` would overlap: closer than ``OVERLAP_ALONG_MM`` along
    their (mean) axis and than ``OVERLAP_LATERAL_MM`` across it."""
    for a in range(fit.n):
        for b in range(a + 1, fit.n):
            u = fit.axes[a] + np.sign(float(fit.axes[a] @ fit.axes[b]) or 1.0) * fit.axes[b]
            u = u / max(float(np.linalg.norm(u)), 1e-9)
            d = fit.centres_mm[b] - fit.centres_mm[a]
            along = float(d @ u)
            lateral = float(np.linalg.norm(d - along * u))
            if abs(along) < OVERLAP_ALONG_MM and lateral < OVERLAP_LATERAL_MM:
                return True
    return False


def _fit_fewer(
    fit: SeedFit,
    coords: NDArray[np.float64],
    values: NDArray[np.float64],
    amplitude: float,
    ctx: FitContext,
    saturated: NDArray[np.bool_],
    fixed: NDArray[np.float64] | None,
) -> SeedFit:
    """The fit of one seed fewer than ``fit`` (≥ 2 seeds) to the same voxels: its two
    closest seeds started as one at their midpoint."""
    gaps = np.linalg.norm(fit.centres_mm[:, None] - fit.centres_mm[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    a, b = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
    keep = [k for k in range(fit.n) if k not in (a, b)]
    pts = np.vstack([fit.centres_mm[keep], 0.5 * (fit.centres_mm[a] + fit.centres_mm[b])])
    axes = np.vstack([fit.axes[keep], fit.axes[a]])
    return fit_seeds(coords, values, pts, axes, amplitude, ctx.model, saturated, fixed_hu=fixed)


def _placed(fit: SeedFit, start_mm: NDArray[np.float64]) -> bool:
    """Whether every seed of ``fit`` lies within ``CLUSTER_FIT_MAX_MOVE_MM`` of one of the
    start centres ``(k, 3)`` and no two closer than ``MIN_SPLIT_DISTANCE_MM``."""
    d = np.linalg.norm(fit.centres_mm[:, None] - start_mm[None], axis=-1)
    return bool(
        d.min(axis=1).max() <= CLUSTER_FIT_MAX_MOVE_MM and _min_gap(fit) >= MIN_SPLIT_DISTANCE_MM
    )


def add_residual_seeds(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    inplane_excess: NDArray[np.float32],
    excluded: NDArray[np.bool_],
    floor_hu: float,
) -> list[DetectedSeed]:
    """``seeds``, those that are two stacked along the slice axis split (``STACKED_PAIRS``),
    and the seeds :func:`unexplained_seeds` finds beside them; ``inplane_excess`` (HU) and
    ``excluded`` are ``(z, y, x)`` on ``ct``'s grid, ``floor_hu`` the lowest HU searched."""
    if not seeds:
        return seeds
    pts = np.array([s.position_mm for s in seeds])
    axes = np.array([s.axis for s in seeds])
    usable = (ct.hu >= floor_hu) & ~excluded
    if STACKED_PAIRS:
        singles = np.array(
            [n for n, s in enumerate(seeds) if s.cluster_size == 1 and s.component != 0],
            dtype=np.int64,
        )
        pairs = stacked_pairs(inplane_excess, usable, ct.geometry, pts, axes, singles)
        if pairs:
            split: list[DetectedSeed] = []
            for n, s in enumerate(seeds):
                if n not in pairs:
                    split.append(s)
                    continue
                for p in pairs[n]:
                    split.append(
                        replace(
                            s,
                            position_mm=tuple(float(v) for v in p),
                            confidence=RESIDUAL_CONFIDENCE,
                            cluster_size=2,
                        )
                    )
            seeds = split
            pts = np.array([s.position_mm for s in seeds])
            axes = np.array([s.axis for s in seeds])
    more = unexplained_seeds(inplane_excess, usable, ct.geometry, pts, axes)
    return seeds + [blobless_seed(m.position_mm, m.axis) for m in more]


def place_residual_seeds(
    seeds: list[DetectedSeed], ctx: FitContext, amplitude: float
) -> list[DetectedSeed]:
    """Each seed found in the residual (component 0) placed by fitting one seed image (of
    ``amplitude`` HU·mm³) to the in-plane excess of the box of ``RESIDUAL_FIT_BOX_MM`` and
    ``RESIDUAL_FIT_SLICES`` about it, every other seed within reach held fixed in the model."""
    pts = np.array([s.position_mm for s in seeds]).reshape(-1, 3)
    axes = np.array([s.axis for s in seeds]).reshape(-1, 3)
    reach = RESIDUAL_FIT_BOX_MM + NEIGHBOUR_REACH_MM
    out = list(seeds)
    for n, s in enumerate(seeds):
        if s.component != 0:
            continue
        data = seed_box_data(
            ctx, pts, axes, n, RESIDUAL_FIT_BOX_MM, RESIDUAL_FIT_SLICES, amplitude, reach
        )
        if data is None:
            continue
        coords, values, sat, fixed = data
        fit = fit_seeds(
            coords, values, pts[n][None], axes[n][None], amplitude, ctx.model, sat, fixed_hu=fixed
        )
        if float(np.linalg.norm(fit.centres_mm[0] - pts[n])) <= RESIDUAL_FIT_MAX_MOVE_MM:
            out[n] = _moved([s], fit)[0]
    return out
