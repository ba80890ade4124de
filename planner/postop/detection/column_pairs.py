"""Thick slices: two seeds one above the other in neighbouring slices, told by their column.

In layered implants two seeds lying near the slice plane, 4–9 mm apart along the slice axis
at one place in-plane, make one column of 3–4 bright slices; the 3-slice opening of
:func:`planner.postop.detection.thick_slices.compact_excess` thins it to one seed's blob (1.2–1.4
of a seed: counted one, placed between them or on one). The in-plane excess of the blob's
column (:func:`planner.postop.detection.thick_slices.column_masses`) holds both: a single seed's
blob whose column holds ``COLUMN_PAIR_SEEDS`` typical blobs' is two
(:func:`column_seeds`, used by the count of :mod:`planner.postop.detection.detect`), started
half a slice above and below it (:func:`pair_starts`) and placed by the model fit of
:mod:`planner.postop.detection.thick_model`. Where the expected count says seeds are still
missing at the end, the blobs whose column comes nearest two are tried the same way, one per
seed missing (:func:`pairs_where_missing`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from planner.postop.detection.blobs import Component
from planner.postop.detection.results import DetectedSeed, canonical_axis
from planner.postop.detection.thick_fit import FitContext, seeds_by_component
from planner.postop.detection.thick_model import refit_seeds, seed_amplitude
from planner.postop.detection.thick_slices import column_masses

#: With the planning CT's bone taken out: a single seed's blob whose column mass
#: (:func:`planner.postop.detection.thick_slices.column_masses`, the in-plane excess not thinned by
#: the 3-slice opening) is at least this many times the typical blob's is two seeds one above
#: the other in neighbouring slices (layered implants, 5 mm: such pairs measured 1.9–2.6,
#: their blobs' masses 1.2–1.4 of a seed; single seeds of rng 200–323 up to 1.8, one of rng
#: 520 2.3: the model fit keeps it one, :data:`planner.postop.detection.thick_model.COLUMN_FEWER`).
COLUMN_PAIRS = True
COLUMN_PAIR_SEEDS = 1.95
#: ... started this many slices above and below the blob (its excess holds one of them, so no
#: split of it finds the other), at this axis confidence; the model fit then places both.
COLUMN_PAIR_START = 0.5
COLUMN_PAIR_CONFIDENCE = 0.3
#: ... and where the expected count says seeds are missing after every other step, the single
#: seeds' blobs whose column holds at least this many (strongest first, one per seed missing,
#: no other seed within ``COLUMN_PAIR_ALONE_MM``) are tried as two the same way (pairs of rng
#: 305 measured 1.3–1.6 in a dense grid, singles up to 1.8 elsewhere: the count is what tells
#: them; 1.7 for every blob gave 2 false seeds more on a fresh draw, rng 700–723, in a scene
#: with no seed missing, and none more found).
COLUMN_PAIRS_WHERE_MISSING = True
COLUMN_PAIR_SEEDS_MISSING = 1.7
COLUMN_PAIR_ALONE_MM = 7.0
#: ... and the two placed by the fit stay two only when this many slices apart along the slice
#: normal or this far (mm) apart in-plane: two at one place in-plane closer along the normal
#: are one seed across two slices (two false seeds of rng 507 and 513 were 3.8–4.1 mm apart
#: along it, 0.9 mm in-plane; pairs found right 6.9–8.1 mm along it, or ≥ 2.2 mm in-plane).
COLUMN_PAIR_MIN_SLICES = 0.9
COLUMN_PAIR_INPLANE_MM = 2.0


def column_seeds(
    comps: list[Component],
    typical: NDArray[np.bool_],
    labels: NDArray[np.int32],
    inplane_excess: NDArray[np.float32],
    hu: NDArray[np.generic],
    floor_hu: float,
    excluded: NDArray[np.bool_],
    voxel_mm3: float,
) -> NDArray[np.float64]:
    """``(len(comps),)`` each component's column mass
    (:func:`planner.postop.detection.thick_slices.column_masses`, same arguments) in typical
    blobs' (the median over the ``typical`` ones, blobs of about one seed's mass)."""
    columns = column_masses(comps, labels, inplane_excess, hu, floor_hu, excluded, voxel_mm3)
    typical_column = float(np.median(columns[typical] if typical.any() else columns))
    return columns / max(typical_column, 1e-9)


def pair_starts(
    c: Component, normal: NDArray[np.float64], thickness_mm: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Starts (centres ``(2, 3)`` LPS mm, axes, confidences) of the two seeds one above the other
    of component ``c``: ``COLUMN_PAIR_START`` slices above and below it along the unit slice
    ``normal`` (its excess holds one of them: no split of it finds the other); the model fit
    places them."""
    step = COLUMN_PAIR_START * thickness_mm * np.asarray(normal, dtype=np.float64)
    centres = np.array([c.centre - step, c.centre + step])
    axes = np.array([c.eigvecs[:, 0], c.eigvecs[:, 0]])
    return centres, axes, np.full(2, COLUMN_PAIR_CONFIDENCE)


def pairs_where_missing(
    seeds: list[DetectedSeed],
    comps: list[Component],
    column_seeds: NDArray[np.float64],
    missing: int,
    fit_ctx: FitContext,
    single: float,
    normal: NDArray[np.float64],
    thickness: float,
) -> list[DetectedSeed]:
    """``seeds`` with up to ``missing`` single seeds made two one above the other: those whose
    blobs' column holds ``COLUMN_PAIR_SEEDS_MISSING`` or more (``column_seeds`` per component,
    in typical blobs'), strongest first, alone within ``COLUMN_PAIR_ALONE_MM``; started as
    :func:`pair_starts` and placed by the model fit, which keeps one where one fits better.
    A pair the fit leaves at its starts, or places too close to be two on these slices
    (:func:`_resolved`), is the one seed it was."""
    if not COLUMN_PAIRS_WHERE_MISSING or len(seeds) < 2:
        return seeds
    groups = seeds_by_component(seeds)
    pts = np.array([s.position_mm for s in seeds])
    order = np.argsort(-column_seeds)
    chosen: set[int] = set()
    for n in order:
        c = comps[int(n)]
        if len(chosen) >= missing or column_seeds[n] < COLUMN_PAIR_SEEDS_MISSING:
            break
        g = groups.get(c.label, [])
        if c.column_pair or len(g) != 1:
            continue
        near = np.linalg.norm(pts - np.asarray(g[0].position_mm), axis=1)
        if np.sum(near < COLUMN_PAIR_ALONE_MM) > 1:
            continue  # another seed beside it: its column holds that one
        chosen.add(c.label)
    if not chosen:
        return seeds
    by_label = {c.label: c for c in comps}
    out: list[DetectedSeed] = []
    for s in seeds:
        if s.component not in chosen:
            out.append(s)
            continue
        c = by_label[s.component]
        c.column_pair = True  # the refit then also tries one seed fewer
        pair_pts, axes, confs = pair_starts(c, normal, thickness)
        out.extend(
            DetectedSeed(tuple(float(v) for v in p), canonical_axis(a), float(f), 2, c.label)
            for p, a, f in zip(pair_pts, axes, confs, strict=True)
        )
    starts = {s.position_mm for s in out if s.component in chosen}
    amplitude = seed_amplitude(out, comps, fit_ctx, single)
    fitted = refit_seeds(out, comps, fit_ctx, amplitude, lambda g: g[0].component in chosen)
    # A pair the fit would not place (it moved too far or came too close: left at its starts)
    # is no evidence of two; two seeds at one place in-plane less than a slice apart along
    # the normal are one seed across two slices, as these slices show it. The seed it was
    # stays.
    placed = seeds_by_component(fitted)
    kept: list[DetectedSeed] = []
    for s in fitted:
        if s.component not in chosen:
            kept.append(s)
            continue
        pair = placed[s.component]
        at_starts = any(q.position_mm in starts for q in pair)
        if len(pair) != 2 or (not at_starts and _resolved(pair, normal, thickness)):
            kept.append(s)
        elif s is pair[0]:
            kept.append(groups[s.component][0])
            by_label[s.component].column_pair = False
    return kept


def _resolved(pair: list[DetectedSeed], normal: NDArray[np.float64], thickness: float) -> bool:
    """:func:`apart_on_slices` of the two seeds of ``pair``."""
    return apart_on_slices(pair[0].position_mm, pair[1].position_mm, normal, thickness)


def apart_on_slices(a_mm, b_mm, normal: NDArray[np.float64], thickness: float) -> bool:
    """Whether two seeds at ``a_mm`` and ``b_mm`` (LPS mm) one above the other are apart enough
    to be two on slices of ``thickness`` mm (unit slice ``normal``): ``COLUMN_PAIR_MIN_SLICES``
    slices along the normal, or ``COLUMN_PAIR_INPLANE_MM`` in-plane."""
    d = np.subtract(b_mm, a_mm)
    along = float(d @ normal)
    in_plane = float(np.linalg.norm(d - along * normal))
    return abs(along) >= COLUMN_PAIR_MIN_SLICES * thickness or in_plane >= COLUMN_PAIR_INPLANE_MM
