"""Find the implanted seeds on a post-op CT: centres and axes, clusters split, other metal excluded.

Pipeline (after Nguyen, Fouard & Troccaz, IEEE TBME 2015; ../shared/reference/clinical.md §3.2):

1. **Candidates.** Thick metal and cement (what survives a 5 mm binary opening of HU ≥ 1200) is
   set aside first and reported. A seed is then what is far brighter than its neighbourhood: a
   white top-hat (the CT minus its grey opening by a box of about 9 mm in-plane) removes bone
   and other wide structures (excess ≥ 800 HU), and an absolute threshold adapted to the scan
   (its bright bone + 300 HU, because HU saturate and differ between scanners) keeps the edges
   of ribs against lung out.
2. **Components.** 3-D connected components (26-connectivity) of the candidate voxels.
3. **Measure** each component on its 1–2-voxel neighbourhood, weighting every voxel by its
   top-hat excess (HU above the local background): integrated excess ("mass", HU·mm³), centre
   of mass, and the covariance of the mass distribution with the scanner's blur (in-plane PSF and
   slice profile, estimated from the spacing) removed.
4. **Classify.** The single-seed mass is learned from the scan itself (median over components
   whose mass is near the overall median); each component's seed count is n = round(mass /
   single mass). A component brighter than ``max_cluster`` seeds (default 6), wider than a seed
   is long (default 6.5 mm: a screw, a rod; a bright seed of the demo post-op CT measures
   6.0 mm across on 2.5 mm slices now that the blur correction no longer takes a voxel's box
   variance off as well), or longer than its seed count allows (a wire or a needle left in) is
   non-seed metal, reported as such and never as seeds. On thin slices two checks bound n by
   the shape: a component whose mass is more than ``MASS_CORE_RATIO`` times what its voxels
   above the threshold say (a seed against the pleura: the tissue beside it stands above the
   lung background) is counted by those voxels; a line-thin component (≤ ``LINE_WIDTH_MM``
   across) holds its seeds end to end, at most ⌊(length + ``LINE_SLACK_MM``) / 4.5 mm⌋.
5. **Split** clusters with intensity-weighted k-means (scikit-learn) into n seeds; splits whose
   centres come closer than 2.8 mm (a single seed split in two gives 2.2–2.6 mm; the part
   along the slice normal counts less by half a slice), whose lightest part carries less than
   0.6 of a seed's mass, or whose parts are all short (axis confidence < 0.5) out of a blob no
   longer than one seed (a seed cut in pieces) are merged back — on thin slices not when every
   part is a whole seed (0.9 of a seed's mass, elongated) 1.5 mm apart or more: two seeds side
   by side (:data:`planner.postop.detection.cluster_split.MIN_WHOLE_SPLIT_DISTANCE_MM`). On thin
   slices the image model then places every seed (:mod:`planner.postop.detection.thin_fit`; two
   parts closer than 3.6 mm stay two only when they fit clearly better than one seed), two seeds of
   different components closer than 2 mm are one, and so are the two halves of a seed that
   fell apart into two light components (:mod:`planner.postop.detection.duplicates`).
6. **Axis** of each seed: principal axis of its blur-corrected covariance; confidence in [0, 1]
   says how elongated it is (thick slices and clusters give less).
7. **Count reconciliation** with the expected number (from the loading sheet): the clusters
   whose mass is furthest above their integer count are split further while seeds are missing;
   on thick slices, the found seeds the image model fits better as two are then made two, the
   best first, one per seed still missing (:mod:`planner.postop.detection.split_missing`), and
   seeds in or against lung are looked for by a looser rule
   (:data:`planner.postop.detection.lung_seeds.WHERE_MISSING_RULE`), the best fits first, one
   per seed still missing; any remaining difference is reported, never hidden.

**Thick slices** (> 3 mm): an in-plane seed smeared over a 5 mm slice reads ≈ 1000 HU, like
cortical bone, so steps 1–3 search by shape instead of HU (:func:`thick_components`): the
excess of each voxel over the largest of its grey openings by in-plane line segments of 9.5 mm
(24 directions) and by 3 slices along the slice axis — cortex, ribs and streaks are long in some
direction, a seed (≤ 5.5 mm with its blur) in none — is ≥ 700 HU in a seed's core (HU ≥ 250);
weights are that excess over the core and 1.6 mm around it in-plane, and the centre along the
slice axis comes from the two largest per-slice masses under the Gaussian slice profile (the
centroid would be pulled to the slice centres). Components lighter than 0.35 of a seed are
bone fragments. A component whose brightest voxel is connected in-plane to more than
``ATTACHED_MAX_PX`` pixels beyond it of structure as bright as itself (HU ≥ tissue + 0.75 of its
peak excess) is bone, not a seed (:func:`attached_pixels`): the tightly curved ends of a small
cortical ring (the tip of the sternum) survive every straight line opening, but a seed is
brighter than the bone it touches. A blob one seed too long for its rounded seed count that
carries ``THICK_EXTRA_SEED_FRACTION`` of a seed per seed holds one seed more (seeds along the
slice axis lose mass to the slice profile and the 3-slice opening); a single seed's blob
longer than ``THICK_STACKED_LENGTH_MM`` carrying 1.1 seeds is two stacked along the slice axis
(its lighter part may carry as little as a fragment's share). With the planning CT's bone
taken out, a single seed's blob whose column of in-plane excess (the excess over the line
openings alone, on its footprint and its slices ± 1: :func:`column_masses`) holds
1.95 seeds is two seeds one above the other in neighbouring slices, which the 3-slice opening
thinned to one; they start half a slice above and below it and the model fit places them, or
keeps one where one seed fits it better; where the expected count says seeds are still
missing at the end, the single seeds' blobs whose column holds 1.7 or more are tried as two
the same way, strongest first, one per seed missing
(:mod:`planner.postop.detection.column_pairs`). Where k-means gives
fewer seeds than the mass asks for, seeds stacked along the slice axis are split one per slice
(:func:`more_by_slices`), each part carrying 0.9 of a seed; a chain of three or more seeds
k-means cannot split (its middle seed draws both neighbours' centres) is cut into parts of equal
mass along its axis, each part placed on the axis from its in-plane offset
(:func:`axis_partition`). Then :func:`planner.postop.detection.thick_model.place_by_model` places,
splits and adds seeds by the seed image model (a blurred 4.5 mm line source): the parts of split
clusters placed (or one seed fewer, where two parts would overlap), a seed cut in two
components (closer than ``DUPLICATE_MM``) merged, a found seed that is two stacked along the
slice axis split, the seeds the components missed found in what the found seeds' images leave
unexplained and placed by the fit, the single seeds of uncertain axis placed (axis median
22° → 5° on the grid scenes), and the seeds in or against lung beside them found by fitting one
seed's image (:mod:`planner.postop.detection.lung_seeds`). Given the registered planning CT's bone
(``bone_hu``, :mod:`planner.postop.detection.bone_prior`; ``verify_plan`` does), thick slices are
searched on the CT less that bone: cortex the openings keep is gone, and false seeds fall from
41 to 17 on the 5 mm scenes (3049 seeds). Measured on the 5 mm scenes of
``benchmarks.bench_detect --scenarios``: 520/524 found, 4 false; on the twelve scenes of
``--heldout``, 935/943, 6 false; on the nine of ``--validation`` (drawn after every rule was
set), 561/579, 8 false (session 12; with the planning CT's bone 518/524, 2; 935/943, 2;
569/579, 3). Known limits on 5 mm slices: two seeds a slice or two apart along the
slice axis placed as one between them where their column holds fewer than 1.95 seeds (1.7
where seeds are missing),
seeds in lung beside bone (a seed against the pleura reads ≈ 170–900 HU, and the line openings
take the chest wall beside it for part of it), seeds lying along cortex.

All positions are LPS mm on the CT's own geometry (any direction matrix).

Modules: this one classifies components and reconciles the count;
:mod:`planner.postop.detection.results` the result types;
:mod:`planner.postop.detection.solid_metal` (step 1, thick metal),
:mod:`planner.postop.detection.thin_slices` and :mod:`planner.postop.detection.thick_slices` (steps
1–2 by HU or by shape), :mod:`planner.postop.detection.blobs` (step 3, components and their
measures),
:mod:`planner.postop.detection.cluster_split` (step 5); on thick slices
:mod:`planner.postop.detection.thick_model` (the image model steps), with
:mod:`planner.postop.detection.thick_fit` (a blob's data for the fit),
:mod:`planner.postop.detection.residual` (stacked pairs, seeds in the residual) and
:mod:`planner.postop.detection.column_pairs` (two seeds one above the other) and
:mod:`planner.postop.detection.split_missing` (a found seed that is two, where seeds are
missing); on thin slices
:mod:`planner.postop.detection.thin_fit` (the image model);
:mod:`planner.postop.detection.duplicates` (one seed found twice).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.imaging.volume import CTVolume
from planner.postop.detection import column_pairs, lung_seeds
from planner.postop.detection.blobs import (
    SEED_LENGTH_MM,
    Component,
    axis_confidence,
    blur_cov_mm2,
    label26,
    measure,
)
from planner.postop.detection.bone_prior import SPOT_FRACTION, bone_spots
from planner.postop.detection.cluster_split import split_cluster
from planner.postop.detection.duplicates import merge_duplicates, merge_halves
from planner.postop.detection.results import (
    DetectedSeed,
    DetectionResult,
    MetalObject,
    canonical_axis,
)
from planner.postop.detection.solid_metal import solid_metal_mask
from planner.postop.detection.split_missing import split_where_missing
from planner.postop.detection.thick_fit import FitContext
from planner.postop.detection.thick_model import (
    FAINT_ALONE_MM,
    add_lung_seeds,
    place_by_model,
    seed_amplitude,
    seed_within,
)
from planner.postop.detection.thick_slices import (
    ATTACHED_MAX_PX,
    THICK_FLOOR_HU,
    THICK_SLICE_MM,
    thick_components,
)
from planner.postop.detection.thin_fit import refine_seeds
from planner.postop.detection.thin_slices import adaptive_threshold, thin_components

#: Each part of a split cluster carries at least this fraction of the single-seed mass.
MIN_PART_FRACTION = 0.6
#: On thick slices a component lighter than this fraction of a seed is a fragment of bone edge
#: (lightest seeds measured ≈ 0.45, bone fragments ≤ 0.3).
THICK_FAINT_FRACTION = 0.35
#: Thick slices with the planning CT's bone taken out: a faint component (≥
#: ``FAINT_SEED_FRACTION`` of a seed, below ``THICK_FAINT_FRACTION``) that no seed lies within
#: :data:`planner.postop.detection.thick_model.FAINT_ALONE_MM` of is what the in-plane line openings
#: left of a seed end to end with the next seed of its needle (the pair is longer than the
#: line): a seed, placed by the model fit
#: (:func:`planner.postop.detection.thick_model.add_faint_seeds`). Measured on the 5 mm scenes of
#: ``bench_detect --scenarios --bone-prior`` (3049 seeds): 64 seeds added, 58 on a seed (0.0–2.3
#: mm), 6 within 2.8–4.3 mm of one; found 2981 → 3000, false 17 → 17. Without the prior (bone left
#: in) it added as many false seeds as true ones.
FAINT_SEEDS = True
FAINT_SEED_FRACTION = 0.2
#: Thick slices with the planning CT's bone taken out, seeds still missing from the expected
#: count at the end: seeds in or against lung by the looser
#: :data:`planner.postop.detection.lung_seeds.WHERE_MISSING_RULE`, the best fits first, one per
#: seed missing. (Not with the bone left in: there it takes ribs against lung for seeds, and
#: ``verify``'s detection without the prior, run where the prior finds too many, would come
#: nearer the count by false seeds.)
LUNG_WHERE_MISSING = True
#: On thick slices a blob too long for its rounded seed count holds one seed more when it
#: carries at least this fraction of a seed's mass per seed (two seeds stacked 10 mm apart
#: along the slice axis measured 1.2 seeds: the 3-slice opening takes up to half of each; 0.6
#: called them a 20 mm wire; 0.50–0.55 gave the same seeds on every scene measured).
THICK_EXTRA_SEED_FRACTION = 0.55
#: On thick slices a single seed's blob longer than this (mm, blur-corrected: a uniform rod
#: of its variance) carrying 1.1 seeds or more is two seeds stacked along the slice axis
#: (two 9 mm apart measured 11.8–13.1 mm and 1.23–1.36 seeds; single seeds ≤ 6 mm but for
#: one of 13.5 mm and 0.86 seed).
THICK_STACKED_LENGTH_MM = 10.0
#: Thick slices searched without the planning CT's bone (``bone_hu``): what the user can do.
WITHOUT_BONE_PRIOR = (
    "searched without the planning CT: verifying against it (registered) takes its bone out "
    "first and finds fewer false seeds on thick slices"
)
#: Thin slices: a component no wider than this (mm, ±2σ across its axis, blur-corrected) is
#: a line, its seeds end to end; n seeds in a line span at least n seed lengths, so a line of
#: length ℓ holds at most ⌊(ℓ + ``LINE_SLACK_MM``) / L⌋ of them. Applied from three seeds
#: up: two seeds stacked along the slice axis can measure as a short line (one pair on 2.5 mm
#: slices: 6.7 mm long, 0 mm wide). Measured on the thin scenes (old, held-out, validation,
#: freehand, 1.25 and 2.5 mm): pairs end to end split in three measured 10.5–11.1 mm long and
#: 1.1–2.3 mm wide (n from the mass 2.5–3.0: the partial volume between them adds mass);
#: true triplets end to end 13.3–14.5 mm; a triplet side by side 3.3 mm wide.
LINE_WIDTH_MM = 2.5
LINE_SLACK_MM = 2.0
#: Thin slices: a component whose mass is more than this many times what its voxels above
#: the threshold (its core) say is counted by its core (over the thin scenes, singles'
#: mass/core ratio 0.75–1.96 (1st–99th percentile), pairs' 0.66–1.37, triplets' 0.87–1.85;
#: above 2 only components at the lung edge, up to 6.8).
MASS_CORE_RATIO = 2.0


def _solid_objects(ct: CTVolume, solid: NDArray[np.bool_]) -> list[MetalObject]:
    """One :class:`MetalObject` per connected region of thick metal or cement."""
    labels, objects = label26(solid)
    out: list[MetalObject] = []
    voxel_mm3 = float(ct.geometry.voxel_volume_mm3)
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        kji = np.argwhere(labels[sl] == lab) + np.array([s.start for s in sl])
        xyz = ct.geometry.zyx_to_world(kji.mean(axis=0))
        out.append(
            MetalObject(
                tuple(float(v) for v in xyz),
                float(len(kji)) * voxel_mm3,
                0.0,
                "solid metal or cement (≥ 5 mm thick: screw, rod, vertebroplasty)",
            )
        )
    return out


def detect_seeds(
    ct: CTVolume,
    *,
    expected: int | None = None,
    exclude: NDArray[np.bool_] | None = None,
    threshold_hu: float | None = None,
    excess_hu: float = 800.0,
    max_cluster: int = 6,
    max_width_mm: float = 6.5,
    solid_hu: float = 1200.0,
    bone_hu: NDArray[np.float32] | None = None,
    bone_at: Callable[[NDArray[np.int64]], NDArray[np.float32]] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> DetectionResult:
    """Find the seeds on a post-op CT.

    Parameters
    ----------
    ct : the post-op CT (HU, any geometry; slices 1–5 mm).
    expected : number of seeds implanted (from the loading sheet), for the count check.
    exclude : optional (z, y, x) bool mask on ``ct``'s grid of regions never to search (user-
        painted hardware, a needle left in).
    threshold_hu : absolute metal threshold (HU); default adapted to the scan's bone
        (:func:`adaptive_threshold`).
    excess_hu : least excess over the local background (white top-hat, HU) of a metal voxel.
    max_cluster, max_width_mm : beyond these a component is non-seed metal.
    bone_hu : optional (z, y, x) float array on ``ct``'s grid: the registered planning CT's
        bone as this scan sees it (:func:`planner.postop.detection.bone_prior.planning_bone_hu`). On
        thick slices it is subtracted before the search by shape; ignored on thin slices.
    bone_at : optional, thin slices: ``bone_at(voxels (M, 3) z, y, x) -> (M,)`` that bone at
        voxels of ``ct`` (:func:`planner.postop.detection.bone_prior.planning_bone_at`); a seed
        found on it and exceeding it by too little for a seed is cortex brightened by streaks
        (:func:`planner.postop.detection.bone_prior.bone_spots`), listed with the non-seed metal.
    progress, cancel : see :mod:`dose.progress`.
    """
    if ct.hu.ndim != 3 or min(ct.hu.shape) < 1:
        raise InputError("post-op CT is empty")
    if exclude is not None and exclude.shape != ct.hu.shape:
        raise InputError(
            f"exclusion mask shape {exclude.shape} does not match the CT {ct.hu.shape}"
        )
    if bone_hu is not None and bone_hu.shape != ct.hu.shape:
        raise InputError(f"bone prior shape {bone_hu.shape} does not match the CT {ct.hu.shape}")
    if expected is not None and expected < 0:
        raise InputError(f"expected seed count must be ≥ 0, got {expected}")
    report(progress, 0.0, "thresholding metal")
    sp_zyx = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)[::-1]
    solid = solid_metal_mask(ct.hu, sp_zyx, solid_hu, cancel)
    excluded = solid if exclude is None else (solid | exclude)
    thick = float(ct.geometry.spacing_mm[2]) > THICK_SLICE_MM
    messages: list[str] = []
    # Thick slices are searched on ``search``: the CT, less the planning CT's bone if given.
    search = _less_bone(ct, bone_hu) if thick and bone_hu is not None else ct
    if search is not ct:
        messages.append(
            "searched with the planning CT's bone taken out through the registration: check "
            "the registration (a wrong one leaves edges of bone that may read as seeds)"
        )
    if thick:
        thr = float(threshold_hu) if threshold_hu is not None else THICK_FLOOR_HU
        comps, inplane_excess, labels = thick_components(search, excluded, cancel, floor_hu=thr)
        fit_ctx = FitContext.build(search, inplane_excess, labels, excluded)
    else:
        thr = (
            float(threshold_hu) if threshold_hu is not None else adaptive_threshold(ct.hu, excluded)
        )
        comps, thin_tophat, thin_labels = thin_components(ct, thr, excess_hu, excluded, cancel)
    report(progress, 0.5, f"measuring {len(comps)} metal objects")
    voxel_mm3 = float(ct.geometry.voxel_volume_mm3)
    blur = blur_cov_mm2(ct, voxel_box=thick)
    normal = np.asarray(ct.geometry.slice_normal(), dtype=np.float64)
    thickness = float(ct.geometry.spacing_mm[2])
    for c in comps:
        measure(c, voxel_mm3, blur, ct.geometry)
    single, single_core, typical = _typical_seed(comps)
    column_seeds = np.zeros(len(comps))
    if thick and bone_hu is not None and column_pairs.COLUMN_PAIRS and len(comps):
        column_seeds = column_pairs.column_seeds(
            comps, typical, labels, inplane_excess, search.hu, thr, excluded, voxel_mm3
        )
    seeds: list[DetectedSeed] = []
    metal: list[MetalObject] = _solid_objects(ct, solid)
    clusters = 0
    faint: list[tuple[Component, MetalObject]] = []

    for n_done, c in enumerate(comps):
        check_cancelled(cancel, "seed detection cancelled")
        n_guess, part_fraction = _count(
            c, single, single_core, thickness, thick, float(column_seeds[n_done])
        )
        min_part = part_fraction * single
        centre = tuple(float(v) for v in c.centre)
        why = _not_a_seed(c, n_guess, max_cluster, max_width_mm, thickness, thick)
        if why:
            metal.append(MetalObject(centre, c.core_voxels * voxel_mm3, round(c.n_float, 1), why))
            continue
        if c.n_float < (THICK_FAINT_FRACTION if thick else 0.2):
            too_faint = MetalObject(
                centre,
                c.core_voxels * voxel_mm3,
                round(c.n_float, 2),
                "too faint for a seed (fragment or artefact)",
            )
            if thick and bone_hu is not None and FAINT_SEEDS and c.n_float >= FAINT_SEED_FRACTION:
                faint.append((c, too_faint))  # a seed's remnant, or listed below
            else:
                metal.append(too_faint)
            continue
        c.n_seeds = n_guess
        found = _seeds_of(c, voxel_mm3, blur, normal, thickness, min_part, single)
        clusters += int(len(found) > 1)
        seeds.extend(found)
        report(progress, 0.5 + 0.45 * (n_done + 1) / max(1, len(comps)), "classifying")
    if thick:
        seeds, more_metal = _placed_on_thick(
            search, seeds, comps, fit_ctx, inplane_excess, excluded, thr, single, faint, bone_hu
        )
        messages.append(thick_slice_caveat(thickness))
        if bone_hu is None:
            messages.append(WITHOUT_BONE_PRIOR)
    else:
        seeds, more_metal = _placed_on_thin(
            ct, seeds, comps, thin_tophat, thin_labels, excluded, single, bone_at, thr
        )
    metal.extend(more_metal)
    if expected is not None and len(seeds) < expected:
        seeds, clusters = _reconcile(
            seeds, comps, expected, voxel_mm3, blur, clusters, normal, thickness, single
        )
    if thick and expected is not None and len(seeds) < expected and column_seeds.any():
        n_before = len(seeds)
        seeds = column_pairs.pairs_where_missing(
            seeds, comps, column_seeds, expected - len(seeds), fit_ctx, single, normal, thickness
        )
        clusters += len(seeds) - n_before  # each pair made adds one seed
        if len(seeds) > n_before:
            messages.append(
                f"{len(seeds) - n_before} seed(s) added where a seed's column on these thick "
                "slices held nearly two and seeds were missing from the expected count: "
                "review them (low axis confidence)"
            )
    if thick and expected is not None and len(seeds) < expected:
        n_before = len(seeds)
        amplitude = seed_amplitude(seeds, comps, fit_ctx, single)
        seeds = split_where_missing(
            seeds, fit_ctx, amplitude, expected - len(seeds), normal, thickness
        )
        clusters += len(seeds) - n_before
        if len(seeds) > n_before:
            messages.append(
                f"{len(seeds) - n_before} seed(s) made two where the image model fits two "
                "better and seeds were missing from the expected count: review them (low "
                "axis confidence)"
            )
    lung_missing = LUNG_WHERE_MISSING and thick and bone_hu is not None
    if lung_missing and expected is not None and len(seeds) < expected:
        n_before = len(seeds)
        seeds = add_lung_seeds(
            search,
            seeds,
            inplane_excess,
            excluded,
            thr,
            lung_seeds.WHERE_MISSING_RULE,
            expected - n_before,
        )
        if len(seeds) > n_before:
            messages.append(
                f"{len(seeds) - n_before} seed(s) in lung added by a looser fit where seeds "
                "were missing from the expected count: review them (low axis confidence)"
            )
    if expected is not None and len(seeds) != expected:
        diff = len(seeds) - expected
        messages.append(
            f"expected {expected} seeds, found {len(seeds)}: "
            f"{abs(diff)} {'extra' if diff > 0 else 'missing'} — review the detection"
        )
    report(progress, 1.0, "done")
    return DetectionResult(
        seeds, metal, thr, single, clusters, expected, messages, thick_slices=thick
    )


def _less_bone(ct: CTVolume, bone_hu: NDArray[np.float32]) -> CTVolume:
    """``ct`` less ``bone_hu`` (z, y, x HU on its grid), in the CT's own type (int16 HU: the
    grey openings run twice as fast on it)."""
    less_bone = np.rint(ct.hu - bone_hu) if ct.hu.dtype.kind in "iu" else ct.hu - bone_hu
    return CTVolume(less_bone.astype(ct.hu.dtype), ct.geometry, ct.info)


def _typical_seed(comps: list[Component]) -> tuple[float, float, NDArray[np.bool_]]:
    """(one seed's mass HU·mm³, its core voxels, which of ``comps`` are about one seed): the
    medians over the components whose mass lies near the median of all (single seeds, mostly)."""
    masses = np.array([c.mass for c in comps], dtype=np.float64)
    if len(comps) == 0:
        return 0.0, 0.0, np.zeros(0, dtype=bool)
    m0 = float(np.median(masses))
    typical = (masses > 0.6 * m0) & (masses < 1.45 * m0)
    cores = np.array([c.core_voxels for c in comps], dtype=np.float64)
    single = float(np.median(masses[typical])) if typical.any() else m0
    single_core = float(np.median(cores[typical] if typical.any() else cores))
    return single, single_core, typical


def _seeds_of(
    c: Component,
    voxel_mm3: float,
    blur: NDArray[np.float64],
    normal: NDArray[np.float64],
    thickness: float,
    min_part: float,
    single: float,
) -> list[DetectedSeed]:
    """The ``c.n_seeds`` seeds of component ``c``: itself, a column pair started about it, or
    its split (parts of at least ``min_part`` HU·mm³; ``single`` one seed's mass)."""
    if c.n_seeds == 1:
        centre = tuple(float(v) for v in c.centre)
        axis = canonical_axis(c.eigvecs[:, 0])
        return [DetectedSeed(centre, axis, axis_confidence(c.eigvals), 1, c.label)]
    pts, axes, confs = (
        column_pairs.pair_starts(c, normal, thickness)
        if c.column_pair
        else split_cluster(c, c.n_seeds, voxel_mm3, blur, normal, thickness, min_part, single)
    )
    return [
        DetectedSeed(tuple(float(v) for v in p), canonical_axis(a), float(conf), len(pts), c.label)
        for p, a, conf in zip(pts, axes, confs, strict=True)
    ]


def _placed_on_thick(
    search: CTVolume,
    seeds: list[DetectedSeed],
    comps: list[Component],
    fit_ctx: FitContext,
    inplane_excess: NDArray[np.float32],
    excluded: NDArray[np.bool_],
    floor_hu: float,
    single: float,
    faint: list[tuple[Component, MetalObject]],
    bone_hu: NDArray[np.float32] | None,
) -> tuple[list[DetectedSeed], list[MetalObject]]:
    """Thick slices: ``seeds`` placed, split and added to by the image model
    (:func:`planner.postop.detection.thick_model.place_by_model`) on ``search`` (the CT, less
    ``bone_hu`` if given), and the ``faint`` components no seed lies on, as metal."""
    seeds = place_by_model(
        search,
        seeds,
        comps,
        fit_ctx,
        inplane_excess,
        excluded,
        floor_hu,
        single,
        [c for c, _ in faint],
        bone_out=bone_hu is not None,
    )
    # A faint component with a seed on it now is part of that seed, not metal.
    return seeds, [m for c, m in faint if not seed_within(seeds, c.centre, FAINT_ALONE_MM)]


def _placed_on_thin(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    comps: list[Component],
    tophat: NDArray[np.float32],
    labels: NDArray[np.int32],
    excluded: NDArray[np.bool_],
    single: float,
    bone_at: Callable[[NDArray[np.int64]], NDArray[np.float32]] | None,
    threshold_hu: float,
) -> tuple[list[DetectedSeed], list[MetalObject]]:
    """Thin slices: ``seeds`` placed by the seed image model, one seed found twice or in two
    halves made one, and (given ``bone_at``) those on the planning CT's bone brightened by
    streaks taken out as metal."""
    # Single seeds and cluster parts placed by the seed image model (axis 7.7° → 1.5°
    # median on 2.5 mm freehand scenes: planner/postop/detection/thin_fit.py).
    seeds = refine_seeds(ct, seeds, tophat, labels, excluded, 1.3 * single)
    seeds = merge_halves(merge_duplicates(seeds), comps, single)
    if bone_at is None or not seeds:
        return seeds, []
    # Cortex brightened by the seeds' streaks over the threshold: bone, not a seed.
    return _without_bone_spots(ct, seeds, bone_at, threshold_hu)


def _extent_mm(c: Component) -> tuple[float, float]:
    """(width ±2σ across its main axis, length of a uniform rod of its variance) of ``c``, mm
    (blur-corrected)."""
    return 4.0 * float(np.sqrt(c.eigvals[1])), float(np.sqrt(12.0 * c.eigvals[0]))


def _longest_mm(n: int, thickness_mm: float, thick: bool) -> float:
    """Longest blob (mm) ``n`` seeds make, end to end with their blur."""
    return n * (SEED_LENGTH_MM + 1.0) + 4.0 + (2.0 * thickness_mm if thick else 0.0)


def _count(
    c: Component,
    single: float,
    single_core: float,
    thickness_mm: float,
    thick: bool,
    column_seeds: float,
) -> tuple[int, float]:
    """Seed count of component ``c`` (step 4) and the least mass of a part of its split, as a
    fraction of ``single`` (one seed's mass, HU·mm³; ``single_core`` its core voxels on thin
    slices). ``column_seeds``: its column mass in typical blobs' (0: not measured). Sets
    ``c.n_float``, ``c.column_pair`` and, for a thin line, ``c.max_seeds``."""
    c.n_float = c.mass / single if single > 0 else 1.0
    if not thick and single_core > 0:
        n_core = c.core_voxels / single_core
        if c.n_float > MASS_CORE_RATIO * n_core:
            # A seed against the pleura: the tissue beside it stands ~1100 HU above the
            # lung background and its mass counts it (two seeds measured 7.5 seeds and
            # were called non-seed metal); its voxels above the threshold do not.
            c.n_float = max(n_core, 1.0)
    width_mm, length_mm = _extent_mm(c)
    n_guess = max(1, round(c.n_float))
    part_fraction = MIN_PART_FRACTION
    if (
        thick
        and _longest_mm(n_guess, thickness_mm, thick)
        < length_mm
        <= _longest_mm(n_guess + 1, thickness_mm, thick)
        and c.n_float >= THICK_EXTRA_SEED_FRACTION * (n_guess + 1)
    ):
        # Thick slices: seeds along the slice axis lose mass to the slice profile and to
        # the 3-slice opening; a blob one seed too long for its mass is one seed more.
        n_guess += 1
    elif (
        thick
        and n_guess == 1
        and length_mm > THICK_STACKED_LENGTH_MM
        and c.n_float >= THICK_EXTRA_SEED_FRACTION * 2
    ):
        # Two seeds stacked along the slice axis a slice or two apart make one blob
        # longer than any single seed and too bright for one; the 3-slice opening takes
        # up to half of one of them (parts measured 0.5 and 0.86 of a seed).
        n_guess = 2
        part_fraction = THICK_FAINT_FRACTION
    c.column_pair = n_guess == 1 and column_seeds >= column_pairs.COLUMN_PAIR_SEEDS
    if c.column_pair:
        # Two seeds one above the other in neighbouring slices: the 3-slice opening left
        # about one of them (a column of 3–4 bright slices); the in-plane excess holds both.
        n_guess = 2
    if not thick and n_guess >= 3 and width_mm <= LINE_WIDTH_MM:
        c.max_seeds = max(2, int((length_mm + LINE_SLACK_MM) // SEED_LENGTH_MM))
        n_guess = min(n_guess, c.max_seeds)
    return n_guess, part_fraction


def _not_a_seed(
    c: Component,
    n_guess: int,
    max_cluster: int,
    max_width_mm: float,
    thickness_mm: float,
    thick: bool,
) -> str:
    """Why component ``c``, counted ``n_guess`` seeds, is non-seed metal (step 4), or ``""``."""
    width_mm, length_mm = _extent_mm(c)
    if c.n_float > max_cluster + 0.5:
        return f"as bright as {c.n_float:.0f} seeds (more than {max_cluster})"
    if width_mm > max_width_mm:
        return f"solid metal {width_mm:.1f} mm across (wider than a seed is long)"
    if length_mm > _longest_mm(n_guess, thickness_mm, thick):
        return f"{length_mm:.0f} mm long, too long for {n_guess} seed(s) (wire, needle, rod)"
    if thick and c.attached_px > ATTACHED_MAX_PX:
        return "part of a larger structure as bright as itself (bone, not a seed)"
    return ""


def thick_slice_caveat(thickness_mm: float) -> str:
    """What a detection on slices thicker than ``THICK_SLICE_MM`` cannot promise (a line of
    the CLI's stderr and of the post-op window's warnings)."""
    return (
        f"{thickness_mm:g} mm slices: seeds stacked along the slice axis (needles about 1 cm "
        "apart in z) or lying in lung can be merged or missed, a few per cent of an implant; "
        f"review those, or scan at ≤ {THICK_SLICE_MM:g} mm for post-implant dosimetry"
    )


def _without_bone_spots(
    ct: CTVolume,
    seeds: list[DetectedSeed],
    bone_at: Callable[[NDArray[np.int64]], NDArray[np.float32]],
    threshold_hu: float,
) -> tuple[list[DetectedSeed], list[MetalObject]]:
    """Thin slices: ``seeds`` less those on the planning CT's bone that exceed it by too little
    for a seed (:func:`planner.postop.detection.bone_prior.bone_spots`), and those as non-seed
    objects."""
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64)
    kji = np.rint(ct.geometry.world_to_zyx(pts)).astype(np.int64)
    spot, excess = bone_spots(ct.hu, bone_at, kji, threshold_hu)
    kept = [s for s, b in zip(seeds, spot, strict=True) if not b]
    limit = SPOT_FRACTION * threshold_hu
    on_bone = [
        MetalObject(
            s.position_mm,
            0.0,
            0.0,
            f"bone of the planning CT brightened by streaks: {e:.0f} HU above it "
            f"(a seed reads {limit:.0f} or more)",
        )
        for s, b, e in zip(seeds, spot, excess, strict=True)
        if b
    ]
    return kept, on_bone


def _reconcile(seeds, comps, expected, voxel_mm3, blur, clusters, normal, thickness, single):
    """Split the components whose mass most exceeds their count while seeds are missing."""
    by_label = {c.label: c for c in comps}
    counts: dict[int, int] = {}
    for s in seeds:
        if s.component in by_label:  # not the seeds found in the residual (component 0)
            counts[s.component] = counts.get(s.component, 0) + 1
    missing = expected - len(seeds)
    while missing > 0:
        excess = {
            lab: by_label[lab].n_float - k
            for lab, k in counts.items()
            if by_label[lab].n_float - k > 0.3 and k < by_label[lab].max_seeds
        }
        if not excess:
            break
        lab = max(excess, key=excess.get)
        c = by_label[lab]
        pts, axes, confs = split_cluster(
            c,
            counts[lab] + 1,
            voxel_mm3,
            blur,
            normal,
            thickness,
            MIN_PART_FRACTION * single,
            single,
        )
        if len(pts) <= counts[lab]:
            c.n_float = counts[lab]  # cannot be split further: stop asking
            continue
        if counts[lab] == 1:
            clusters += 1
        seeds = [s for s in seeds if s.component != lab]
        for p, a, conf in zip(pts, axes, confs, strict=True):
            seeds.append(
                DetectedSeed(
                    tuple(float(v) for v in p), canonical_axis(a), float(conf), len(pts), lab
                )
            )
        missing -= len(pts) - counts[lab]
        counts[lab] = len(pts)
    return seeds, clusters
