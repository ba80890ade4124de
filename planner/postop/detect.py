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
   is long (default 6 mm: a screw, a rod), or longer than its seed count allows (a wire or a
   needle left in) is non-seed metal, reported as such and never as seeds.
5. **Split** clusters with intensity-weighted k-means (scikit-learn) into n seeds; splits whose
   centres come closer than 2.8 mm (a single seed split in two gives 2.2–2.6 mm; the part
   along the slice normal counts less by half a slice), whose lightest part carries less than
   0.6 of a seed's mass, or whose parts are all short (axis confidence < 0.5) out of a blob no
   longer than one seed (a seed cut in pieces) are merged back.
6. **Axis** of each seed: principal axis of its blur-corrected covariance; confidence in [0, 1]
   says how elongated it is (thick slices and clusters give less).
7. **Count reconciliation** with the expected number (from the loading sheet): the clusters
   whose mass is furthest above their integer count are split further while seeds are missing;
   any remaining difference is reported, never hidden.

**Thick slices** (> 3 mm): an in-plane seed smeared over a 5 mm slice reads ≈ 1000 HU, like
cortical bone, so steps 1–3 search by shape instead of HU (:func:`_thick_components`): the
excess of each voxel over the largest of its grey openings by in-plane line segments of 9.5 mm
(24 directions) and by 3 slices along the slice axis — cortex, ribs and streaks are long in some
direction, a seed (≤ 5.5 mm with its blur) in none — is ≥ 700 HU in a seed's core (HU ≥ 250);
weights are that excess over the core and 1.6 mm around it in-plane, and the centre along the
slice axis comes from the two largest per-slice masses under the Gaussian slice profile (the
centroid would be pulled to the slice centres). Components lighter than 0.35 of a seed are
bone fragments. A component whose brightest voxel is connected in-plane to more than
``ATTACHED_MAX_PX`` pixels beyond it of structure as bright as itself (HU ≥ tissue + 0.75 of its
peak excess) is bone, not a seed (:func:`_attached_pixels`): the tightly curved ends of a small
cortical ring (the tip of the sternum) survive every straight line opening, but a seed is
brighter than the bone it touches. A blob one seed too long for its rounded seed count that
carries ``THICK_EXTRA_SEED_FRACTION`` of a seed per seed holds one seed more (seeds along the
slice axis lose mass to the slice profile and the 3-slice opening). Where k-means gives
fewer seeds than the mass asks for, seeds stacked along the slice axis are split one per slice
(:func:`_more_by_slices`), each part carrying 0.9 of a seed; a chain of three or more seeds
k-means cannot split (its middle seed draws both neighbours' centres) is cut into parts of equal
mass along its axis, each part placed on the axis from its in-plane offset
(:func:`_axis_partition`); two seeds of different components closer than ``DUPLICATE_MM`` are
one seed cut in two (:func:`_merge_duplicates`). Known limits on 5 mm slices:
seeds in or against lung, seeds closer than two slices
along the slice axis (the 3-slice opening takes them for bone; the dense benchmark's needles
9 mm apart), seeds lying along cortex.

All positions are LPS mm on the CT's own geometry (any direction matrix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.imaging.volume import CTVolume

__all__ = ["DetectedSeed", "DetectionResult", "MetalObject", "detect_seeds"]

SEED_LENGTH_MM = 4.5
MIN_SPLIT_DISTANCE_MM = 2.8
#: Each part of a split cluster carries at least this fraction of the single-seed mass.
MIN_PART_FRACTION = 0.6
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
INPLANE_PSF_SIGMA_MM = 0.45
#: Slices thicker than this are searched by shape (:func:`_thick_components`), not by HU.
THICK_SLICE_MM = 3.0
THICK_LINE_MM = 9.5  # longer than a seed and its blur (≈ 5.5 mm), shorter than a cortex arc
THICK_LINE_ANGLES = 24
USE_Z_OPENING = True
THICK_FLOOR_HU = 250.0  # a seed in lung on 5 mm slices reads ≈ 500 HU
THICK_EXCESS_HU = 700.0  # an in-plane seed's worst-sampled peak on 5 mm slices ≈ 750 HU
THICK_LOW_HU = 300.0
#: On thick slices a component lighter than this fraction of a seed is a fragment of bone edge
#: (lightest seeds measured ≈ 0.45, bone fragments ≤ 0.3).
THICK_FAINT_FRACTION = 0.35
#: On thick slices a blob too long for its rounded seed count holds one seed more when it
#: carries at least this fraction of a seed's mass per seed.
THICK_EXTRA_SEED_FRACTION = 0.6
#: On thick slices a component is part of bone when the structure connected to its brightest
#: voxel at HU ≥ tissue + this fraction of its peak excess reaches this many pixels beyond it.
ATTACHED_FRACTION = 0.75
ATTACHED_MAX_PX = 8
#: Thick slices, seeds stacked along the slice axis: each slice part of a split carries at
#: least this many times the least part mass (0.9 of a seed: half of one tilted seed is not a
#: seed).
SLICE_PART_FACTOR = 1.5
#: Thick slices: two seeds of different components closer than this (mm) are one seed.
DUPLICATE_MM = 2.0
#: Thick slices: a chain is cut along its axis (:func:`_axis_partition`) only when the axis
#: has at least this in-plane component (the parts' in-plane offsets place them along it).
CHAIN_MIN_INPLANE = 0.5


@dataclass(frozen=True)
class DetectedSeed:
    """One seed found: centre (LPS mm), unit axis, confidence in [0, 1], cluster size (1 alone)."""

    position_mm: tuple[float, float, float]
    axis: tuple[float, float, float]
    confidence: float
    cluster_size: int
    component: int


@dataclass(frozen=True)
class MetalObject:
    """Metal that is not seeds: centre (LPS mm), volume above threshold (mm³), why excluded."""

    centre_mm: tuple[float, float, float]
    volume_mm3: float
    seed_equivalents: float
    reason: str


@dataclass
class DetectionResult:
    """What :func:`detect_seeds` found, and every number a reviewer needs to trust it."""

    seeds: list[DetectedSeed]
    metal: list[MetalObject]
    #: Thin slices: the absolute HU threshold used (adapted to the scan unless given). Thick
    #: slices (``thick_slices``): only the lowest HU the shape search looks at.
    threshold_hu: float
    single_seed_mass: float  # HU·mm³
    clusters_split: int  # components that held more than one seed
    expected: int | None = None
    messages: list[str] = field(default_factory=list)
    #: Slices thicker than ``THICK_SLICE_MM``: searched by shape (``_thick_components``).
    thick_slices: bool = False

    @property
    def positions_mm(self) -> NDArray[np.float64]:
        """``(N, 3)`` seed centres, LPS mm."""
        return np.array([s.position_mm for s in self.seeds], dtype=np.float64).reshape(-1, 3)

    @property
    def axes(self) -> NDArray[np.float64]:
        """``(N, 3)`` unit seed axes."""
        return np.array([s.axis for s in self.seeds], dtype=np.float64).reshape(-1, 3)

    def summary(self) -> str:
        """One line: count, clusters split, metal excluded, how the metal was searched (the
        HU threshold, or on thick slices the shape search and its lowest HU), the count check."""
        search = (
            f"thick-slice shape search (≥ {self.threshold_hu:.0f} HU)"
            if self.thick_slices
            else f"threshold {self.threshold_hu:.0f} HU"
        )
        text = (
            f"{len(self.seeds)} seeds found ({self.clusters_split} clusters split), "
            f"{len(self.metal)} non-seed metal objects excluded, {search}"
        )
        if self.expected is not None:
            diff = len(self.seeds) - self.expected
            if diff == 0:
                text += f"; matches the {self.expected} expected"
            else:
                word = "extra" if diff > 0 else "missing"
                text += f"; expected {self.expected}: {abs(diff)} {word}"
        return text


@dataclass
class _Component:
    label: int
    coords_mm: NDArray[np.float64]  # (M, 3) voxel centres, LPS mm
    weights: NDArray[np.float64]  # (M,) top-hat excess HU
    core_voxels: int
    mass: float = 0.0
    centre: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    eigvals: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    eigvecs: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))
    n_seeds: int = 1
    n_float: float = 1.0
    slice_index: float | None = None  # sub-slice centre along the slice axis, when measured
    #: Thick slices: pixels of as-bright structure attached beyond the component (bone).
    attached_px: int = 0


def _blur_cov_mm2(ct: CTVolume) -> NDArray[np.float64]:
    """Covariance (LPS mm²) the scanner's blur and voxel sampling add to a point."""
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    sig = np.array([INPLANE_PSF_SIGMA_MM, INPLANE_PSF_SIGMA_MM, sp[2] * FWHM_TO_SIGMA])
    var_grid = sig**2 + sp**2 / 12.0
    rot = np.asarray(ct.geometry.direction, dtype=np.float64)
    return rot @ np.diag(var_grid) @ rot.T


def _adaptive_threshold(hu: NDArray[np.generic], exclude: NDArray[np.bool_]) -> float:
    """Absolute metal threshold adapted to this scan: its bright bone (99th percentile of the
    voxels of 200–2900 HU, robust to up to a few hundred seeds) + 300 HU, within [1000, 2200]."""
    step = max(1, hu.size // 2_000_000)
    sample = hu.reshape(-1)[::step]
    keep = (sample > 200) & (sample < 2900) & ~exclude.reshape(-1)[::step]
    if keep.sum() < 100:
        return 1000.0
    bone_top = float(np.percentile(sample[keep].astype(np.float32), 99.0))
    return float(np.clip(bone_top + 300.0, 1000.0, 2200.0))


def _ball(radius_mm: float, spacing_zyx: NDArray[np.float64]) -> NDArray[np.bool_]:
    r = np.maximum(np.floor(radius_mm / spacing_zyx).astype(int), 0)
    grids = np.meshgrid(
        *(np.arange(-a, a + 1) * s for a, s in zip(r, spacing_zyx, strict=True)), indexing="ij"
    )
    return sum(g**2 for g in grids) <= radius_mm**2 + 1e-9


def _bbox(mask: NDArray[np.bool_], pad=(0, 0, 0)) -> tuple[slice, slice, slice] | None:
    """Box (z, y, x slices) around the True voxels of ``mask`` grown by ``pad`` voxels, clipped
    to the volume; None when ``mask`` is empty. Three projections: cheaper than argwhere."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lo = max(0, int(hit[0]) - int(pad[axis]))
        hi = min(mask.shape[axis], int(hit[-1]) + int(pad[axis]) + 1)
        box.append(slice(lo, hi))
    return (box[0], box[1], box[2])


def _label26(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], list]:
    """26-connected labels of ``mask`` (full size) and each label's slices (full-volume
    indices), labelling only the box around the True voxels (metal is sparse)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    box = _bbox(mask)
    if box is None:
        return labels, []
    sub, _ = ndi.label(mask[box], structure=np.ones((3, 3, 3)))
    labels[box] = sub
    objects = [
        None
        if o is None
        else tuple(slice(a.start + b.start, a.stop + b.start) for a, b in zip(o, box, strict=True))
        for o in ndi.find_objects(sub)
    ]
    return labels, objects


def _solid_metal(
    hu: NDArray[np.generic],
    spacing_zyx: NDArray[np.float64],
    solid_hu: float,
    cancel: CancelFn | None,
) -> NDArray[np.bool_]:
    """Voxels of thick bright objects (cement, screws, rods): what survives opening HU ≥
    ``solid_hu`` by a 5 mm ball (a seed is 0.8 mm thick, cortical bone a few mm), dilated 1.5 mm."""
    bright = hu >= solid_hu
    out = np.zeros(hu.shape, dtype=bool)
    ball = _ball(2.5, spacing_zyx)
    grow = _ball(1.5, spacing_zyx)
    pad = np.array(ball.shape) + 2
    labels, objects = _label26(bright)
    voxel_mm3 = float(np.prod(spacing_zyx))
    for lab, sl in enumerate(objects, start=1):
        check_cancelled(cancel, "seed detection cancelled")
        if sl is None:
            continue
        extent = np.array([s.stop - s.start for s in sl]) * spacing_zyx
        if np.sort(extent)[-2] < 5.0:  # thinner than the ball in two directions: not solid
            continue
        lo = [max(0, s.start - int(q)) for s, q in zip(sl, pad, strict=True)]
        hi = [min(n, s.stop + int(q)) for s, n, q in zip(sl, hu.shape, pad, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        mine = labels[box] == lab
        if mine.sum() * voxel_mm3 < 60.0:
            continue
        opened = ndi.binary_opening(mine, structure=ball)
        if opened.any():
            out[box] |= ndi.binary_dilation(opened, structure=grow) | (
                mine & ndi.binary_dilation(opened, structure=ball, iterations=2)
            )
    return out


def _solid_objects(ct: CTVolume, solid: NDArray[np.bool_]) -> list[MetalObject]:
    """One :class:`MetalObject` per connected region of thick metal or cement."""
    labels, objects = _label26(solid)
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


def _lung_candidates(
    hu: NDArray[np.generic],
    exclude: NDArray[np.bool_],
    floor_hu: float,
    size: tuple[int, int, int],
    tophat: NDArray[np.float32],
    cancel: CancelFn | None,
    lung_hu: float = -500.0,
    lung_fraction: float = 0.5,
    low_hu: float = 850.0,
    excess_hu: float = 1700.0,
) -> NDArray[np.bool_]:
    """Seed voxels in or against lung, where partial volume leaves a seed below the absolute
    threshold (≈ 900–1200 HU in 2.5 mm slices): HU ≥ ``low_hu``, at least ``lung_fraction`` of
    the ≈ 9 mm box around it lung (HU < ``lung_hu``), and ≥ ``excess_hu`` above the grey opening.
    On the demo phantom seeds in lung read 1060–1100 HU, 0.63–0.66 lung, 1900 HU of excess;
    the rib and vessel edges that pass the looser 600 HU / 0.35 / 1200 HU read 630–770 HU,
    0.30–0.45 lung, ≤ 1610 HU: the defaults sit between."""
    dim = (hu >= low_hu) & (hu < floor_hu) & ~exclude & (tophat >= excess_hu)
    box = _bbox(dim, size)
    if box is None:
        return dim
    lung = ndi.uniform_filter((hu[box] < lung_hu).astype(np.float32), size=size)
    check_cancelled(cancel, "seed detection cancelled")
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = dim[box] & (lung >= lung_fraction)
    return out


def _components(
    ct: CTVolume,
    floor_hu: float,
    excess_hu: float,
    exclude: NDArray[np.bool_],
    cancel: CancelFn | None,
    relative_level: float = 0.25,
) -> tuple[list[_Component], float]:
    """Candidate metal components, each measured on its own voxels above a local level.

    Candidates are voxels of HU ≥ ``floor_hu`` whose white top-hat (excess over the grey opening
    by a ≈ 9 mm box) is ≥ ``excess_hu``. Weights are HU above the component's local
    background (median of a shell 2–3 voxels out); only voxels above background +
    ``relative_level`` × (peak − background) count, so neighbouring bone and streaks do not
    widen or brighten a seed. Returns the components and the excess threshold used.
    """
    hu = ct.hu
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    bright = (hu >= floor_hu) & ~exclude
    half = np.maximum(np.round(np.array([4.5 / sp[2], 4.5 / sp[1], 4.5 / sp[0]])).astype(int), 1)
    size = (max(1, min(int(2 * half[0] + 1), 3)), int(2 * half[1] + 1), int(2 * half[2] + 1))
    tophat = np.zeros(hu.shape, dtype=np.float32)
    box = _bbox(bright, size)
    if box is not None:
        # One opening over the bounding box of everything bright (bone and metal).
        local = hu[box]
        opened = ndi.grey_opening(local, size=size)
        check_cancelled(cancel, "seed detection cancelled")
        tophat[box] = local.astype(np.float32) - opened.astype(np.float32)
    candidates = bright & (tophat >= excess_hu)
    candidates |= _lung_candidates(hu, exclude, floor_hu, size, tophat, cancel)
    labels, objects = _label26(candidates)
    comps: list[_Component] = []
    g = 3
    shell_in = np.ones((3, 3, 3), dtype=bool)
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        lo = [max(0, s.start - g) for s in sl]
        hi = [min(nn, s.stop + g) for s, nn in zip(sl, hu.shape, strict=True)]
        big = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        core = labels[big] == lab
        local = hu[big].astype(np.float64)
        near = ndi.binary_dilation(core, structure=shell_in, iterations=1)
        shell = ndi.binary_dilation(core, structure=shell_in, iterations=3) & ~ndi.binary_dilation(
            core, structure=shell_in, iterations=2
        )
        shell &= ~candidates[big] & ~exclude[big]
        background = float(np.median(local[shell])) if shell.any() else float(np.median(local))
        peak = float(local[core].max())
        level = background + relative_level * (peak - background)
        region = near & (local >= level) & ((labels[big] == 0) | core)
        w = local[region] - background
        kji = np.argwhere(region) + np.array(lo)
        coords = ct.geometry.zyx_to_world(kji.astype(np.float64))
        comps.append(_Component(lab, coords, w, int(core.sum())))
    return comps, float(excess_hu)


def _line_footprint(length_px: float, angle_rad: float) -> NDArray[np.bool_]:
    """``(1, h, w)`` footprint of an in-plane line segment of ``length_px`` pixels at an angle."""
    half = max(1, round(length_px / 2.0))
    t = np.linspace(-half, half, 4 * half + 1)
    x = np.rint(t * np.cos(angle_rad)).astype(int)
    y = np.rint(t * np.sin(angle_rad)).astype(int)
    r = int(max(np.abs(x).max(), np.abs(y).max()))
    fp = np.zeros((1, 2 * r + 1, 2 * r + 1), dtype=bool)
    fp[0, y + r, x + r] = True
    return fp


def _compact_excess(
    hu: NDArray[np.float32],
    pixel_mm: float,
    line_mm: float = THICK_LINE_MM,
    n_angles: int = THICK_LINE_ANGLES,
) -> NDArray[np.float32]:
    """HU above what any elongated structure explains: ``hu`` minus the largest of its grey
    openings by in-plane line segments of ``line_mm`` (``n_angles`` directions) and by 3 slices
    along the slice axis. Cortical bone, ribs and streaks are long in some direction and
    vanish; a seed (≤ 4.5 mm + blur) is shorter than ``line_mm`` in every direction and stays.
    ``hu`` is a (z, y, x) block; the result has its shape."""
    background = (
        ndi.grey_opening(hu, size=(min(3, hu.shape[0]), 1, 1))
        if USE_Z_OPENING
        else np.full(hu.shape, -np.inf, dtype=np.float32)
    )
    length_px = line_mm / pixel_mm
    for angle in np.arange(n_angles) * np.pi / n_angles:
        np.maximum(
            background,
            ndi.grey_opening(hu, footprint=_line_footprint(length_px, angle)),
            out=background,
        )
    return hu - background


def _thick_components(
    ct: CTVolume,
    exclude: NDArray[np.bool_],
    cancel: CancelFn | None,
    floor_hu: float = THICK_FLOOR_HU,
    excess_hu: float = THICK_EXCESS_HU,
    low_hu: float = THICK_LOW_HU,
    relative_level: float = 0.2,
) -> list[_Component]:
    """Candidate seed components on thick slices (> ``THICK_SLICE_MM``), where an in-plane
    seed smeared over the slice reads ≈ 1000 HU, like cortical bone: no absolute threshold can
    tell them apart, shape can. Candidates are voxels of HU ≥ ``floor_hu`` whose compact excess
    (:func:`_compact_excess`) is ≥ ``excess_hu``; the excess is computed only in the boxes
    around voxels whose box top-hat (an upper bound of it) passes. Each component is weighted
    by its compact excess over the voxels above ``relative_level`` × its peak, one voxel
    around it (the blur tails, not the neighbouring bone)."""
    hu = ct.hu
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    pixel_mm = float(min(sp[0], sp[1]))
    reach = int(np.ceil(THICK_LINE_MM / pixel_mm)) + 2
    grow_px = max(1, int(np.ceil(1.6 / pixel_mm)))
    size = (1, 2 * round(4.5 / sp[1]) + 1, 2 * round(4.5 / sp[0]) + 1)
    bright = (hu >= floor_hu) & ~exclude
    excess = np.zeros(hu.shape, dtype=np.float32)
    box = _bbox(bright, size)
    if box is None:
        return []
    local = hu[box].astype(np.float32)
    upper = local - ndi.grey_opening(local, size=size)
    check_cancelled(cancel, "seed detection cancelled")
    maybe = np.zeros(hu.shape, dtype=bool)
    maybe[box] = bright[box] & (upper >= low_hu)
    # Compact excess only around what may pass: one box per 2-D component of the candidates,
    # grown by the line length (an opening sees that far), all slices of the component ± 1.
    grow = ndi.binary_dilation(maybe, structure=np.ones((3, 1, 1), dtype=bool))
    _, objects = _label26(grow)
    done = np.zeros(hu.shape, dtype=bool)
    for sl in objects:
        check_cancelled(cancel, "seed detection cancelled")
        if sl is None:
            continue
        blk = (
            sl[0],
            slice(max(0, sl[1].start - reach), min(hu.shape[1], sl[1].stop + reach)),
            slice(max(0, sl[2].start - reach), min(hu.shape[2], sl[2].stop + reach)),
        )
        zs = slice(max(0, blk[0].start - 1), min(hu.shape[0], blk[0].stop + 1))
        block = hu[zs, blk[1], blk[2]].astype(np.float32)
        e = _compact_excess(block, pixel_mm)
        inner = slice(blk[0].start - zs.start, blk[0].stop - zs.start)
        target = excess[blk]
        fresh = ~done[blk]
        target[fresh] = e[inner][fresh]
        done[blk] = True
    candidates = bright & (excess >= excess_hu)
    labels, objects = _label26(candidates)
    comps: list[_Component] = []
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        pad = (1, grow_px, grow_px)
        lo_c = [max(0, s.start - q) for s, q in zip(sl, pad, strict=True)]
        hi_c = [min(nn, s.stop + q) for s, nn, q in zip(sl, hu.shape, pad, strict=True)]
        big = tuple(slice(a, b) for a, b in zip(lo_c, hi_c, strict=True))
        core = labels[big] == lab
        e = excess[big]
        peak = float(e[core].max())
        level = max(low_hu, relative_level * peak)
        # The seed's blur tails: up to 1.6 mm in-plane beyond the core, above ``level`` (further
        # would reach into cortical corners), never another component's core. Along the slice
        # axis the core is the seed: a seed's share of the next slice is ≥ ``excess_hu`` or small.
        above = (e >= level) & ((labels[big] == 0) | core) & ~exclude[big]
        region = core | ndi.binary_dilation(
            core, structure=np.ones((1, 3, 3), dtype=bool), iterations=grow_px, mask=above
        )
        kji = np.argwhere(region) + np.array(lo_c)
        coords = ct.geometry.zyx_to_world(kji.astype(np.float64))
        comp = _Component(lab, coords, e[region].astype(np.float64), int(core.sum()))
        footprint = region.any(axis=0)
        per_slice = np.array([float(e[k][footprint].sum()) for k in range(e.shape[0])])
        comp.slice_index = _slice_centre(per_slice, float(sp[2])) + lo_c[0]
        comp.attached_px = _attached_pixels(hu, lab, labels, sl, footprint, lo_c, reach)
        comps.append(comp)
    return comps


def _attached_pixels(
    hu: NDArray[np.generic],
    lab: int,
    labels: NDArray[np.int32],
    sl: tuple[slice, slice, slice],
    footprint: NDArray[np.bool_],
    lo_c: list[int],
    reach: int,
    fraction: float = ATTACHED_FRACTION,
    tissue_hu: float = 40.0,
) -> int:
    """Pixels, beyond a component's own footprint (grown by 2 pixels), of the in-plane
    structure that is as bright as the component and connected to its brightest voxel: HU ≥
    tissue + ``fraction`` × (peak − tissue) on the peak's slice. A seed is brighter than the
    bone it touches (its excess adds to it); the tightly curved end of a small cortical ring,
    which no straight line opening removes, is as bright as the rest of the ring."""
    core = labels[sl] == lab
    local = hu[sl]
    k, j, i = np.unravel_index(int(np.argmax(np.where(core, local, -32768))), core.shape)
    k_abs, j_abs, i_abs = k + sl[0].start, j + sl[1].start, i + sl[2].start
    peak = float(hu[k_abs, j_abs, i_abs])
    j0, j1 = max(0, j_abs - reach), min(hu.shape[1], j_abs + reach + 1)
    i0, i1 = max(0, i_abs - reach), min(hu.shape[2], i_abs + reach + 1)
    plane = hu[k_abs, j0:j1, i0:i1].astype(np.float32)
    bright = plane >= tissue_hu + fraction * (peak - tissue_hu)
    conn, _ = ndi.label(bright, structure=np.ones((3, 3), dtype=bool))
    mine = conn == conn[j_abs - j0, i_abs - i0]
    own = np.zeros(plane.shape, dtype=bool)
    oy, ox = lo_c[1] - j0, lo_c[2] - i0
    ys, xs = np.nonzero(footprint)
    ys, xs = ys + oy, xs + ox
    ok = (ys >= 0) & (ys < plane.shape[0]) & (xs >= 0) & (xs < plane.shape[1])
    own[ys[ok], xs[ok]] = True
    own = ndi.binary_dilation(own, structure=np.ones((3, 3), dtype=bool), iterations=2)
    return int((mine & ~own).sum())


def _slice_centre(per_slice: NDArray[np.float64], thickness_mm: float) -> float:
    """Sub-slice centre (fractional index) of a seed from its excess per slice ``(K,)``.

    With a Gaussian slice profile of FWHM = thickness (σ ≈ 0.42 slices) the two largest
    neighbouring samples m₀ (slice k) and m₁ (slice k ± 1) of a point give its offset exactly:
    d = σ²·ln(m₁/m₀)/Δ + Δ/2 from slice k; the centroid of the samples would be pulled toward
    the slice centres by up to half a slice. Clipped to ± half a slice."""
    k = int(np.argmax(per_slice))
    m0 = float(per_slice[k])
    if m0 <= 0:
        return float(k)
    below = float(per_slice[k - 1]) if k > 0 else 0.0
    above = float(per_slice[k + 1]) if k + 1 < len(per_slice) else 0.0
    step, m1 = (1.0, above) if above >= below else (-1.0, below)
    if m1 <= 0:
        return float(k)
    sigma = thickness_mm * FWHM_TO_SIGMA
    d_mm = sigma**2 * np.log(m1 / m0) / thickness_mm + 0.5 * thickness_mm
    return float(k + step * np.clip(d_mm / thickness_mm, 0.0, 0.5))


def _measure(c: _Component, voxel_mm3: float, blur: NDArray[np.float64], geometry=None) -> None:
    w = c.weights
    c.mass = float(w.sum()) * voxel_mm3
    if w.sum() <= 0:
        c.centre = c.coords_mm.mean(axis=0)
        return
    c.centre = (c.coords_mm * w[:, None]).sum(axis=0) / w.sum()
    if c.slice_index is not None and geometry is not None:
        normal = np.asarray(geometry.slice_normal(), dtype=np.float64)
        at = geometry.zyx_to_world(np.array([c.slice_index, 0.0, 0.0])) @ normal
        c.centre = c.centre + normal * (at - c.centre @ normal)
    d = c.coords_mm - c.centre
    cov = (d * w[:, None]).T @ d / w.sum() - blur
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    c.eigvals = np.clip(vals[order], 0.0, None)
    c.eigvecs = vecs[:, order]


def _axis_confidence(eigvals: NDArray[np.float64]) -> float:
    """How clearly elongated: 1 for a seed-like (L²/12 ≈ 1.7 mm²) line, 0 for a round blob."""
    expected = SEED_LENGTH_MM**2 / 12.0
    return float(np.clip((eigvals[0] - eigvals[1]) / expected, 0.0, 1.0))


def _separation_mm(
    pts: NDArray[np.float64], slice_normal: NDArray[np.float64], thickness_mm: float
) -> float:
    """Smallest distance between split centres, the along-slice part shortened by half a slice
    (the slice profile blurs a seed by about that much along the slice normal)."""
    d = pts[:, None, :] - pts[None, :, :]
    along = d @ slice_normal
    inplane2 = np.sum(d**2, axis=-1) - along**2
    eff = np.sqrt(
        np.maximum(inplane2, 0.0) + np.maximum(np.abs(along) - 0.5 * thickness_mm, 0.0) ** 2
    )
    return float((eff + np.eye(len(pts)) * 1e9).min())


def _split(
    c: _Component,
    n: int,
    voxel_mm3: float,
    blur: NDArray[np.float64],
    slice_normal,
    thickness_mm,
    min_part_mass: float = 0.0,
):
    """Split a component into ``n`` seeds: (centres, axes, confidences), merging close splits
    and splits with a part lighter than ``min_part_mass`` (HU·mm³: a seed's worth of metal;
    a single seed cut in two gives two halves)."""
    from sklearn.cluster import KMeans

    n0 = n
    while n > 1:
        # Deterministic start: n centres spread along the blob's principal axis (chains and
        # side-by-side pairs both split along it); one Lloyd run from there.
        length = float(np.sqrt(12.0 * max(c.eigvals[0], 1e-6)))
        offsets = ((np.arange(n) + 0.5) / n - 0.5) * length
        init = c.centre[None, :] + offsets[:, None] * c.eigvecs[:, 0][None, :]
        km = KMeans(n_clusters=n, init=init, n_init=1, random_state=0)
        lab = km.fit_predict(c.coords_mm, sample_weight=np.maximum(c.weights, 1e-6))
        centres, axes, confs, masses, own = [], [], [], [], []
        for m in range(n):
            sub = _Component(c.label, c.coords_mm[lab == m], c.weights[lab == m], 0)
            _measure(sub, voxel_mm3, blur)
            centres.append(sub.centre)
            masses.append(sub.mass)
            # A sub-cluster's own PCA is cut by the k-means boundary: trust it only if elongated.
            conf = _axis_confidence(sub.eigvals)
            own.append(conf)
            axis = sub.eigvecs[:, 0] if conf >= 0.3 else c.eigvecs[:, 0]
            axes.append(axis)
            confs.append(0.7 * max(conf, 0.3))
        pts = np.array(centres)
        # A seed cut in pieces gives pieces that are not elongated, out of a blob no longer
        # than one seed: not a cluster (each seed of a real cluster is a whole seed).
        halves = max(own) < 0.5 and length <= SEED_LENGTH_MM + 1.5
        if (
            _separation_mm(pts, slice_normal, thickness_mm) >= MIN_SPLIT_DISTANCE_MM
            and min(masses) >= min_part_mass
            and not halves
        ):
            return _more_by_slices(
                c,
                n0,
                pts,
                np.array(axes),
                confs,
                slice_normal,
                thickness_mm,
                min_part_mass,
                voxel_mm3,
            )
        if thickness_mm > THICK_SLICE_MM and n == n0 and n >= 3:
            part = _axis_partition(c, n, voxel_mm3, blur, slice_normal, thickness_mm, min_part_mass)
            if part is not None:
                return part
        n -= 1
    return _more_by_slices(
        c,
        n0,
        c.centre[None, :],
        c.eigvecs[:, 0][None, :],
        [_axis_confidence(c.eigvals)],
        slice_normal,
        thickness_mm,
        min_part_mass,
        voxel_mm3,
    )


def _axis_partition(
    c: _Component,
    n: int,
    voxel_mm3: float,
    blur: NDArray[np.float64],
    slice_normal,
    thickness_mm: float,
    min_part_mass: float,
):
    """Thick slices: a chain of ``n`` ≥ 3 seeds k-means cannot split (its middle seed, smeared
    over the slice, draws both neighbours' centres): cut the blob into ``n`` parts of equal mass
    along its principal axis, then re-assign each voxel to the nearest part centre along that
    axis (twice) and take each part's weighted centroid. Accepted (centres, axes, confidences)
    when every part carries ``min_part_mass`` (HU·mm³) and the centres are at least
    ``MIN_SPLIT_DISTANCE_MM`` apart (slice-aware); else None."""
    axis = c.eigvecs[:, 0]
    t = (c.coords_mm - c.centre) @ axis
    w = np.maximum(c.weights, 1e-9)
    order = np.argsort(t)
    cum = np.cumsum(w[order]) / w.sum()
    lab = np.empty(len(t), dtype=int)
    lab[order] = np.minimum((cum * n).astype(int), n - 1)
    for _ in range(2):
        if len(np.unique(lab)) < n:
            return None
        ct = np.array([(t[lab == m] * w[lab == m]).sum() / w[lab == m].sum() for m in range(n)])
        lab = np.argmin(np.abs(t[:, None] - ct[None, :]), axis=1)
    if len(np.unique(lab)) < n:
        return None
    normal = np.asarray(slice_normal, dtype=np.float64)
    inplane = axis - normal * (axis @ normal)
    if float(inplane @ inplane) < CHAIN_MIN_INPLANE**2:
        return None
    centres, masses = [], []
    for m in range(n):
        sel = lab == m
        p = (c.coords_mm[sel] * w[sel, None]).sum(axis=0) / w[sel].sum()
        # Along the slice normal a part's centroid sits on a slice centre: place it on the
        # chain's axis instead, from its in-plane offset (which the slice does not quantise).
        s_m = float((p - c.centre) @ inplane) / float(inplane @ inplane)
        p = p + normal * ((c.centre + s_m * axis) @ normal - p @ normal)
        centres.append(p)
        masses.append(float(c.weights[sel].sum()) * voxel_mm3)
    pts = np.array(centres)
    if min(masses) < min_part_mass:
        return None
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(n) * 1e9
    if d.min() < MIN_SPLIT_DISTANCE_MM:
        return None
    return pts, np.repeat(axis[None, :], n, axis=0), [0.35] * n


def _more_by_slices(c, n0, pts, axes, confs, slice_normal, thickness_mm, min_part_mass, voxel_mm3):
    """Thick slices: when the split found fewer than the ``n0`` seeds the mass asks for, seeds
    stacked along the slice axis (same in-plane place, neighbouring slices) may be what k-means
    cannot separate (their spread along the slice axis is the slice profile's): one part per
    slice carrying ``SLICE_PART_FACTOR`` × ``min_part_mass`` (HU·mm³), a lighter slice joining
    its heavier neighbour; each part's centre is its weighted centroid (on its slice). Used
    when it gives more parts (at most ``n0``) than the split did; else the split's result."""
    if thickness_mm <= THICK_SLICE_MM or len(pts) >= n0:
        return pts, axes, confs
    normal = np.asarray(slice_normal, dtype=np.float64)
    along = c.coords_mm @ normal
    idx = np.rint((along - along.min()) / thickness_mm).astype(int)
    masses = np.bincount(idx, weights=np.maximum(c.weights, 0.0)) * voxel_mm3
    groups = [[k] for k in range(len(masses)) if masses[k] > 0]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        gm = [masses[g].sum() for g in groups]
        light = int(np.argmin(gm))
        if gm[light] >= SLICE_PART_FACTOR * min_part_mass:
            break
        nb = [j for j in (light - 1, light + 1) if 0 <= j < len(groups)]
        j = max(nb, key=lambda q: gm[q])
        lo, hi = sorted((light, j))
        groups[lo : hi + 1] = [groups[lo] + groups[hi]]
        changed = True
    if not (len(pts) < len(groups) <= n0):
        return pts, axes, confs
    out_pts, out_axes, out_conf = [], [], []
    for g in groups:
        m = np.isin(idx, g)
        w = np.maximum(c.weights[m], 1e-9)
        out_pts.append((c.coords_mm[m] * w[:, None]).sum(axis=0) / w.sum())
        out_axes.append(c.eigvecs[:, 0])
        out_conf.append(0.3)
    return np.array(out_pts), np.array(out_axes), out_conf


def _canonical(axis: NDArray[np.float64]) -> tuple[float, float, float]:
    """A unit axis with a fixed sign (largest |component| positive): seeds have no head/tail."""
    a = axis / np.linalg.norm(axis)
    if a[np.argmax(np.abs(a))] < 0:
        a = -a
    return (float(a[0]), float(a[1]), float(a[2]))


def detect_seeds(
    ct: CTVolume,
    *,
    expected: int | None = None,
    exclude: NDArray[np.bool_] | None = None,
    threshold_hu: float | None = None,
    excess_hu: float = 800.0,
    max_cluster: int = 6,
    max_width_mm: float = 6.0,
    solid_hu: float = 1200.0,
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
        (:func:`_adaptive_threshold`).
    excess_hu : least excess over the local background (white top-hat, HU) of a metal voxel.
    max_cluster, max_width_mm : beyond these a component is non-seed metal.
    progress, cancel : see :mod:`dose.progress`.
    """
    if ct.hu.ndim != 3 or min(ct.hu.shape) < 1:
        raise InputError("post-op CT is empty")
    if exclude is not None and exclude.shape != ct.hu.shape:
        raise InputError(
            f"exclusion mask shape {exclude.shape} does not match the CT {ct.hu.shape}"
        )
    if expected is not None and expected < 0:
        raise InputError(f"expected seed count must be ≥ 0, got {expected}")
    report(progress, 0.0, "thresholding metal")
    sp_zyx = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)[::-1]
    solid = _solid_metal(ct.hu, sp_zyx, solid_hu, cancel)
    excluded = solid if exclude is None else (solid | exclude)
    thick = float(ct.geometry.spacing_mm[2]) > THICK_SLICE_MM
    if thick:
        thr = float(threshold_hu) if threshold_hu is not None else THICK_FLOOR_HU
        comps = _thick_components(ct, excluded, cancel, floor_hu=thr)
    else:
        thr = (
            float(threshold_hu)
            if threshold_hu is not None
            else _adaptive_threshold(ct.hu, excluded)
        )
        comps, _ = _components(ct, thr, excess_hu, excluded, cancel)
    report(progress, 0.5, f"measuring {len(comps)} metal objects")
    voxel_mm3 = float(ct.geometry.voxel_volume_mm3)
    blur = _blur_cov_mm2(ct)
    normal = np.asarray(ct.geometry.slice_normal(), dtype=np.float64)
    thickness = float(ct.geometry.spacing_mm[2])
    for c in comps:
        _measure(c, voxel_mm3, blur, ct.geometry)
    messages: list[str] = []
    masses = np.array([c.mass for c in comps])
    if len(comps) == 0:
        single = 0.0
    else:
        m0 = float(np.median(masses))
        near = masses[(masses > 0.6 * m0) & (masses < 1.45 * m0)]
        single = float(np.median(near)) if near.size else m0
    seeds: list[DetectedSeed] = []
    metal: list[MetalObject] = _solid_objects(ct, solid)
    clusters = 0

    def longest(n: int) -> float:
        """Longest blob (mm) ``n`` seeds make, end to end with their blur."""
        return n * (SEED_LENGTH_MM + 1.0) + 4.0 + (2.0 * thickness if thick else 0.0)

    for n_done, c in enumerate(comps):
        check_cancelled(cancel, "seed detection cancelled")
        c.n_float = c.mass / single if single > 0 else 1.0
        width_mm = 4.0 * float(np.sqrt(c.eigvals[1]))  # ±2σ across the main axis
        length_mm = float(np.sqrt(12.0 * c.eigvals[0]))  # a uniform rod of this variance
        n_guess = max(1, round(c.n_float))
        if (
            thick
            and longest(n_guess) < length_mm <= longest(n_guess + 1)
            and c.n_float >= THICK_EXTRA_SEED_FRACTION * (n_guess + 1)
        ):
            # Thick slices: seeds along the slice axis lose mass to the slice profile and to
            # the 3-slice opening; a blob one seed too long for its mass is one seed more.
            n_guess += 1
        centre = tuple(float(v) for v in c.centre)
        why = ""
        if c.n_float > max_cluster + 0.5:
            why = f"as bright as {c.n_float:.0f} seeds (more than {max_cluster})"
        elif width_mm > max_width_mm:
            why = f"solid metal {width_mm:.1f} mm across (wider than a seed is long)"
        elif length_mm > longest(n_guess):
            why = f"{length_mm:.0f} mm long, too long for {n_guess} seed(s) (wire, needle, rod)"
        elif thick and c.attached_px > ATTACHED_MAX_PX:
            why = "part of a larger structure as bright as itself (bone, not a seed)"
        if why:
            metal.append(MetalObject(centre, c.core_voxels * voxel_mm3, round(c.n_float, 1), why))
            continue
        if c.n_float < (THICK_FAINT_FRACTION if thick else 0.2):
            metal.append(
                MetalObject(
                    centre,
                    c.core_voxels * voxel_mm3,
                    round(c.n_float, 2),
                    "too faint for a seed (fragment or artefact)",
                )
            )
            continue
        c.n_seeds = n_guess
        if c.n_seeds == 1:
            seeds.append(
                DetectedSeed(
                    centre, _canonical(c.eigvecs[:, 0]), _axis_confidence(c.eigvals), 1, c.label
                )
            )
        else:
            pts, axes, confs = _split(
                c, c.n_seeds, voxel_mm3, blur, normal, thickness, MIN_PART_FRACTION * single
            )
            clusters += int(len(pts) > 1)
            for p, a, conf in zip(pts, axes, confs, strict=True):
                seeds.append(
                    DetectedSeed(
                        tuple(float(v) for v in p), _canonical(a), float(conf), len(pts), c.label
                    )
                )
        report(progress, 0.5 + 0.45 * (n_done + 1) / max(1, len(comps)), "classifying")
    if thick:
        seeds = _merge_duplicates(seeds)
    if expected is not None and len(seeds) < expected:
        seeds, clusters = _reconcile(
            seeds, comps, expected, voxel_mm3, blur, clusters, normal, thickness, single
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


def _merge_duplicates(
    seeds: list[DetectedSeed], within_mm: float = DUPLICATE_MM
) -> list[DetectedSeed]:
    """Thick slices: a seed cut in two components (its halves on two slices, or split by a
    streak) gives two seeds closer than ``within_mm``; two real seeds are never that close
    apart in two components (touching seeds are one). Keep the more confident of each pair."""
    if len(seeds) < 2:
        return seeds
    pts = np.array([s.position_mm for s in seeds])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    drop: set[int] = set()
    for i, j in zip(*np.nonzero(np.triu(d < within_mm, k=1)), strict=True):
        if i in drop or j in drop or seeds[i].component == seeds[j].component:
            continue
        drop.add(int(j) if seeds[i].confidence >= seeds[j].confidence else int(i))
    return [s for k, s in enumerate(seeds) if k not in drop]


def _reconcile(seeds, comps, expected, voxel_mm3, blur, clusters, normal, thickness, single):
    """Split the components whose mass most exceeds their count while seeds are missing."""
    by_label = {c.label: c for c in comps}
    counts: dict[int, int] = {}
    for s in seeds:
        counts[s.component] = counts.get(s.component, 0) + 1
    missing = expected - len(seeds)
    while missing > 0:
        excess = {
            lab: by_label[lab].n_float - k
            for lab, k in counts.items()
            if by_label[lab].n_float - k > 0.3
        }
        if not excess:
            break
        lab = max(excess, key=excess.get)
        c = by_label[lab]
        pts, axes, confs = _split(
            c, counts[lab] + 1, voxel_mm3, blur, normal, thickness, MIN_PART_FRACTION * single
        )
        if len(pts) <= counts[lab]:
            c.n_float = counts[lab]  # cannot be split further: stop asking
            continue
        if counts[lab] == 1:
            clusters += 1
        seeds = [s for s in seeds if s.component != lab]
        for p, a, conf in zip(pts, axes, confs, strict=True):
            seeds.append(
                DetectedSeed(tuple(float(v) for v in p), _canonical(a), float(conf), len(pts), lab)
            )
        missing -= len(pts) - counts[lab]
        counts[lab] = len(pts)
    return seeds, clusters
