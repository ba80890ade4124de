"""Thick slices: the seeds the components missed, found in what the found seeds leave unexplained.

On 5 mm slices the 3-slice opening of :func:`planner.postop.detection.thick_slices.compact_excess`
takes seeds stacked along the slice axis (needle rows a slice or two apart) for bone: the middle
seed of three has no slice maximum, a seed between two found ones none of its own. The in-plane
excess (HU above the in-plane line openings alone) still holds every seed.
:func:`unexplained_seeds` subtracts the image of every seed found (the line-source model of
:mod:`planner.postop.detection.seed_fit` at the single-seed amplitude, least squares on the isolated
seeds of the scan, :class:`ModelledSeeds`) and searches what is left, away from each found
seed's own misfit (``MASK_FOUND_MM`` about its segment): a seed more where the residual summed
over a seed's footprint on a slice and the better of its neighbours carries
``MIN_SEED_FRACTION`` of a seed (summed the same way on the isolated seeds), peaks at
``MIN_PEAK_HU`` or more, is compact (``MIN_CORE_FRACTION``: cortex is spread), lies within
``SEARCH_REACH_MM`` of a seed found (bone far from the implant stays out) and ``MIN_DISTANCE_MM``
or more from every seed.

Measured on the 5 mm scenes of ``benchmarks.bench_detect --scenarios``: seeds the step added
0.3–2.0 mm from their true centres; the bone candidates it rejects (the ring of a pedicle, the
laminae) peak at 550–760 HU with a core fraction of 0.12–0.39.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.blobs import FWHM_TO_SIGMA, SEED_LENGTH_MM
from planner.postop.detection.seed_fit import SeedImageModel, line_image_fast
from planner.postop.detection.thick_slices import slice_centre

#: In-plane side (mm) of the square a seed's residual is summed over (a 4.5 mm seed, blurred).
FOOTPRINT_MM = 5.5
#: A residual carrying this fraction of a seed (slice pair sum) is one seed more.
MIN_SEED_FRACTION = 0.53
#: ... when its peak residual is at least this (HU): a seed's worst-sampled peak on 5 mm ≈ 700.
MIN_PEAK_HU = 700.0
#: ... and no seed lies closer than this (mm): a found seed placed a little off leaves a
#: residual 5–6.6 mm from it that reads like a seed (measured on scenes of other random draws:
#: 5.0 mm gave 17 false seeds in 1467, 6.5 mm 14 and one seed fewer found); seeds of a needle
#: row are ≥ 8 mm apart (seeds end to end are one blob: the cluster split finds them).
MIN_DISTANCE_MM = 6.5
#: A seed found is isolated (it calibrates the amplitude) when no other lies within this (mm).
ISOLATED_MM = 12.0
#: Seeds the components missed lie beside those found (a needle row or a column apart): the
#: residual is searched only this close (mm) to a seed found (bone elsewhere stays out).
SEARCH_REACH_MM = 14.0
#: A seed's image is compact: the 3 × 3 pixels about its residual's peak hold at least this
#: fraction of the residual over its footprint on that slice (measured 0.37–0.83 for seeds;
#: the curved cortex of a small ring, spread over the footprint, 0.12–0.39).
MIN_CORE_FRACTION = 0.4
#: The residual closer than this (mm) to a seed found is its misfit, not another seed.
MASK_FOUND_MM = 3.0
#: Half-size of the box (mm in-plane, slices) a seed's model image is drawn in.
MODEL_REACH_MM = 7.0
MODEL_REACH_SLICES = 2


@dataclass(frozen=True)
class ResidualSeed:
    """A seed found in the residual: centre (LPS mm), unit axis (in-plane principal direction,
    low confidence), the fraction of a seed its residual carries."""

    position_mm: NDArray[np.float64]
    axis: NDArray[np.float64]
    seed_fraction: float


def _box(geometry: GridGeometry, shape, centre_mm: NDArray[np.float64]):
    """(slices, (M, 3) LPS voxel centres) of the model box around ``centre_mm``; (None, None)
    outside the CT."""
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    k, j, i = np.rint(geometry.world_to_zyx(centre_mm[None])[0]).astype(int)
    r = round(MODEL_REACH_MM / sp[0])
    lo = np.maximum([k - MODEL_REACH_SLICES, j - r, i - r], 0)
    hi = np.minimum([k + MODEL_REACH_SLICES + 1, j + r + 1, i + r + 1], shape)
    if np.any(hi <= lo):
        return None, None
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return box, voxel_centres(geometry, lo, hi)


def voxel_centres(geometry: GridGeometry, lo, hi) -> NDArray[np.float64]:
    """``(M, 3)`` LPS mm centres of the voxels of the box ``lo``–``hi`` (z, y, x indices, end
    excluded), in C order of the box."""
    grid = np.stack(
        np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"), -1
    ).reshape(-1, 3)
    return geometry.zyx_to_world(grid.astype(np.float64))


class ModelledSeeds:
    """The found seeds' model images over a CT's in-plane excess ``data`` (z, y, x) HU
    (positive, where a seed may be): the single-seed ``amplitude`` (HU·mm³, the median least
    squares fit of the isolated seeds' images) and the sum of every seed's image at it,
    ``predicted`` (z, y, x) HU."""

    def __init__(
        self,
        data: NDArray[np.float32],
        geometry: GridGeometry,
        seeds_mm: NDArray[np.float64],
        axes: NDArray[np.float64],
    ) -> None:
        self.data = data
        self.geometry = geometry
        self.model = SeedImageModel.for_grid(geometry.spacing_mm, geometry.direction)
        self.positions = np.array(seeds_mm, dtype=np.float64).reshape(-1, 3)
        self.axes = np.array(axes, dtype=np.float64).reshape(-1, 3)
        d = np.linalg.norm(self.positions[:, None] - self.positions[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        isolated = np.nonzero(d.min(axis=1, initial=np.inf) > ISOLATED_MM)[0]
        self.isolated = isolated if len(isolated) >= 3 else np.arange(len(self.positions))
        self.units = [self._unit(p, a) for p, a in zip(self.positions, self.axes, strict=True)]
        # The single seed's amplitude: least squares of its unit image on the data, median.
        amps = []
        for n in self.isolated:
            box, u = self.units[n]
            if box is not None and float(u @ u) > 0:
                amps.append(float(u @ data[box].ravel()) / float(u @ u))
        self.amplitude = float(np.median(amps)) if amps else 0.0
        self.predicted = np.zeros(data.shape, dtype=np.float32)
        for n in range(len(self.positions)):
            self._paint(n, 1.0)

    def _unit(self, centre, axis):
        """(box, unit image ``(M,)`` HU of a 1 HU·mm³ seed at ``centre`` along ``axis``)."""
        box, coords = _box(self.geometry, self.data.shape, centre)
        if box is None:
            return None, None
        image = line_image_fast(
            (coords - centre) @ self.model.rot,
            np.zeros((1, 3)),
            np.asarray(axis, dtype=np.float64)[None] @ self.model.rot,
            np.ones(1),
            self.model.sigma_mm,
            self.model.length_mm,
        )
        return box, image

    def split(self, n: int, centres_mm: NDArray[np.float64]) -> None:
        """Seed ``n`` is the seeds ``centres_mm`` ``(m, 3)`` (its axis each): its image goes,
        theirs come (appended)."""
        self._paint(n, -1.0)
        self.units[n] = (None, None)
        for p in centres_mm:
            self.positions = np.vstack([self.positions, p])
            self.axes = np.vstack([self.axes, self.axes[n]])
            self.units.append(self._unit(p, self.axes[n]))
            self._paint(len(self.units) - 1, 1.0)

    def _paint(self, n: int, sign: float) -> None:
        box, u = self.units[n]
        if box is not None:
            view = self.predicted[box]
            view += (sign * self.amplitude * u).reshape(view.shape).astype(np.float32)


def _near_seeds(
    geometry: GridGeometry,
    shape,
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    radius_mm: float,
    length_mm: float = SEED_LENGTH_MM,
) -> NDArray[np.bool_]:
    """(z, y, x) mask of the voxels closer than ``radius_mm`` to any seed, a segment of
    ``length_mm`` along its unit axis about its centre (``(N, 3)`` LPS mm each)."""
    mask = np.zeros(shape, dtype=bool)
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)[::-1]  # z, y, x
    reach = np.ceil((radius_mm + 0.5 * length_mm) / sp).astype(int)
    for p, u in zip(np.atleast_2d(centres_mm), np.atleast_2d(axes), strict=True):
        c = geometry.world_to_zyx(p[None])[0]
        lo = np.maximum(np.floor(c - reach).astype(int), 0)
        hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        d = voxel_centres(geometry, lo, hi) - p
        t = np.clip(d @ u, -0.5 * length_mm, 0.5 * length_mm)
        dist2 = np.sum((d - t[:, None] * u) ** 2, axis=1).reshape(mask[box].shape)
        mask[box] |= dist2 < radius_mm**2
    return mask


def footprint_px(spacing_mm: NDArray[np.float64]) -> int:
    """Odd in-plane side (pixels) of a seed's footprint square (``FOOTPRINT_MM``)."""
    return max(3, 2 * round(0.5 * FOOTPRINT_MM / float(spacing_mm[0])) + 1)


def centre_of(block: NDArray[np.float32], lo, geometry: GridGeometry):
    """(centre LPS mm, in-plane principal axis) of the non-negative excess ``block`` (z, y, x)
    whose first voxel is at index ``lo``: in-plane centroid, and along the slice axis the
    sub-slice centre of its per-slice sums (:func:`slice_centre`). None when empty."""
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    per_slice = block.sum(axis=(1, 2)).astype(np.float64)
    plane = block.sum(axis=0).astype(np.float64)
    tot = float(plane.sum())
    if tot <= 0:
        return None
    kc = slice_centre(per_slice, float(sp[2])) + lo[0]
    jj, ii = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]]
    jc, ic = float((jj * plane).sum() / tot), float((ii * plane).sum() / tot)
    pos = geometry.zyx_to_world(np.array([[kc, jc + lo[1], ic + lo[2]]]))[0]
    dy, dx = (jj - jc) * sp[1], (ii - ic) * sp[0]
    cov = np.array(
        [
            [(plane * dx * dx).sum(), (plane * dx * dy).sum()],
            [(plane * dx * dy).sum(), (plane * dy * dy).sum()],
        ]
    )
    _, vecs = np.linalg.eigh(cov)
    axis = np.asarray(geometry.direction, dtype=np.float64) @ np.array(
        [vecs[0, 1], vecs[1, 1], 0.0]
    )
    return pos, axis / np.linalg.norm(axis)


def _search_box(
    geometry: GridGeometry, seeds_mm: NDArray[np.float64]
) -> tuple[tuple[slice, slice, slice], GridGeometry]:
    """The (z, y, x) box of ``geometry`` within ``SEARCH_REACH_MM`` of ``seeds_mm`` plus the
    filters' reach (a footprint and two slices beyond ``MODEL_REACH_MM``), and its geometry."""
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)[::-1]  # (z, y, x)
    kji = geometry.world_to_zyx(seeds_mm)
    reach_mm = SEARCH_REACH_MM + max(MODEL_REACH_MM, FOOTPRINT_MM)
    pad = np.ceil(reach_mm / sp).astype(int) + np.array([MODEL_REACH_SLICES + 2, 2, 2])
    shape = np.asarray(geometry.shape_zyx)
    lo = np.clip(np.floor(kji.min(axis=0)).astype(int) - pad, 0, shape)
    hi = np.clip(np.ceil(kji.max(axis=0)).astype(int) + pad + 1, lo + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    origin = geometry.zyx_to_world(lo.astype(np.float64))
    sub = GridGeometry(
        tuple(int(n) for n in hi - lo), origin, geometry.spacing_mm, geometry.direction
    )
    return box, sub  # type: ignore[return-value]


def unexplained_seeds(
    inplane_excess: NDArray[np.float32],
    usable: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    *,
    min_fraction: float = MIN_SEED_FRACTION,
    min_peak_hu: float = MIN_PEAK_HU,
    min_distance_mm: float = MIN_DISTANCE_MM,
) -> list[ResidualSeed]:
    """Seeds the found ``seeds_mm``/``axes`` ``(N, 3)`` (LPS mm, unit) do not explain.

    ``inplane_excess`` (z, y, x) HU above the in-plane line openings; ``usable`` (z, y, x)
    where a seed may be (HU above the floor, not excluded, not solid metal). Returns the seeds
    more, strongest first; none when fewer than 3 seeds were found (nothing to learn from)."""
    if len(seeds_mm) < 3:
        return []
    # Only the neighbourhood of the found seeds is searched (``SEARCH_REACH_MM``): work in its
    # box, padded so that every filter sees there what it sees on the whole grid (5 mm
    # dense case: 1.8 s → 0.1 s for the footprint sums of 512 × 512 slices).
    box, geometry = _search_box(geometry, seeds_mm)
    inplane_excess, usable = inplane_excess[box], usable[box]
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    data = np.where(usable, np.maximum(inplane_excess, 0.0), 0.0).astype(np.float32)
    shape = data.shape
    seeds = ModelledSeeds(data, geometry, seeds_mm, axes)
    if seeds.amplitude <= 0:
        return []
    predicted, isolated = seeds.predicted, seeds.isolated
    # Signed: a found seed's misfit (a lobe either side) cancels in the footprint sums.
    residual = np.where(usable, data - predicted, 0.0).astype(np.float32)
    # A found seed's misfit lies about its segment: out of the search, not out of the
    # placing (a seed beside it keeps its share of the slices they both reach).
    searched = np.where(
        _near_seeds(geometry, shape, seeds_mm, axes, MASK_FOUND_MM), 0.0, residual
    ).astype(np.float32)
    w = footprint_px(sp)

    def pair_sum(vol: NDArray[np.float32]) -> NDArray[np.float32]:
        """Sum over a seed's footprint on each slice plus the larger of its neighbours'."""
        s = ndi.uniform_filter(vol, size=(1, w, w), mode="constant") * float(w * w)
        up = np.zeros_like(s)
        down = np.zeros_like(s)
        up[:-1], down[1:] = s[1:], s[:-1]
        return s + np.maximum(up, down)

    s_data = pair_sum(data)
    kji = np.rint(geometry.world_to_zyx(seeds_mm[isolated])).astype(int)
    kji = np.clip(kji, 0, np.array(shape) - 1)
    near_max = ndi.maximum_filter(s_data, size=(1, 3, 3))
    seed_sum = float(np.median(near_max[kji[:, 0], kji[:, 1], kji[:, 2]]))
    if seed_sum <= 0:
        return []
    s_res = pair_sum(searched)
    peak = ndi.maximum_filter(searched, size=(1, w, w))
    # Maxima among the voxels a seed may be centred on: a brighter residual too faint at its
    # peak for a seed (a found seed's spread misfit, cortex) does not hide a seed beside it.
    eligible = np.where(peak >= min_peak_hu, s_res, -np.inf).astype(np.float32)
    local_max = eligible >= ndi.maximum_filter(eligible, size=(3, w, w))
    cand = local_max & (s_res >= min_fraction * seed_sum) & (peak >= min_peak_hu)
    order = np.argwhere(cand)
    order = order[np.argsort(-s_res[cand])]
    if len(order):
        dist = np.min(
            np.linalg.norm(
                geometry.zyx_to_world(order.astype(np.float64))[:, None] - seeds_mm[None], axis=-1
            ),
            axis=1,
        )
        order = order[dist <= SEARCH_REACH_MM]
    taken = [p for p in seeds_mm]
    out: list[ResidualSeed] = []
    half = w // 2
    for k, j, i in order:
        j0, j1 = max(0, j - half), min(shape[1], j + half + 1)
        i0, i1 = max(0, i - half), min(shape[2], i + half + 1)
        k0, k1 = max(0, k - 1), min(shape[0], k + 2)
        block = np.maximum(residual[k0:k1, j0:j1, i0:i1], 0.0)
        plane_k = block[k - k0]
        jp, ip = np.unravel_index(int(np.argmax(plane_k)), plane_k.shape)
        core = plane_k[max(0, jp - 1) : jp + 2, max(0, ip - 1) : ip + 2].sum()
        if core < MIN_CORE_FRACTION * max(float(plane_k.sum()), 1e-9):
            continue  # spread over the footprint: cortex, not a seed
        got = centre_of(block, (k0, j0, i0), geometry)
        if got is None:
            continue
        pos, axis = got
        if taken and np.min(np.linalg.norm(np.asarray(taken) - pos, axis=1)) < min_distance_mm:
            continue
        taken.append(pos)
        out.append(ResidualSeed(pos, axis, float(s_res[k, j, i] / seed_sum)))
    return out


#: A found seed is two stacked along the slice axis when what it has to explain (the data less
#: the other seeds' images, summed over its footprint and ± ``PAIR_REACH_SLICES`` slices) is
#: at least this many seeds (summed the same way on the isolated seeds).
PAIR_MIN_SEEDS = 1.6
PAIR_REACH_SLICES = 3
#: ... and the two halves of its profile along the slice axis lie this many slices apart.
PAIR_MIN_SLICES = 1.2


def stacked_pairs(
    inplane_excess: NDArray[np.float32],
    usable: NDArray[np.bool_],
    geometry: GridGeometry,
    seeds_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    candidates: NDArray[np.int64],
) -> dict[int, NDArray[np.float64]]:
    """The seeds of ``candidates`` (indices into ``seeds_mm``/``axes`` ``(N, 3)``) that are
    two seeds stacked along the slice axis, merged into one blob between them: index →
    ``(2, 3)`` LPS mm centres of the two (the halves of equal excess of the seed's own profile
    along the slice axis, each at its excess-weighted centre)."""
    if len(seeds_mm) < 3 or len(candidates) == 0:
        return {}
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    data = np.where(usable, np.maximum(inplane_excess, 0.0), 0.0).astype(np.float32)
    seeds = ModelledSeeds(data, geometry, seeds_mm, axes)
    if seeds.amplitude <= 0:
        return {}
    half = footprint_px(sp) // 2
    shape = data.shape

    def column(n: int, own: bool):
        k, j, i = np.rint(geometry.world_to_zyx(seeds.positions[n][None])[0]).astype(int)
        lo = np.maximum([k - PAIR_REACH_SLICES, j - half, i - half], 0)
        hi = np.minimum([k + PAIR_REACH_SLICES + 1, j + half + 1, i + half + 1], shape)
        if np.any(hi <= lo):
            return None, lo
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        block = data[box].astype(np.float64)
        if own:
            seeds._paint(n, -1.0)
            block = block - seeds.predicted[box]
            seeds._paint(n, 1.0)
        return np.maximum(block, 0.0), lo

    totals = [column(int(n), own=False)[0] for n in seeds.isolated]
    single = float(np.median([t.sum() for t in totals if t is not None] or [0.0]))
    if single <= 0:
        return {}
    out: dict[int, NDArray[np.float64]] = {}
    left = {int(n) for n in candidates}
    while left:
        # The most over-bright first: its image, once split, explains its neighbours' share.
        owns = {n: column(n, own=True) for n in left}
        counts = {n: (b[0].sum() / single if b[0] is not None else 0.0) for n, b in owns.items()}
        n = max(counts, key=counts.get)
        left.discard(n)
        if counts[n] < PAIR_MIN_SEEDS:
            break
        parts_kji = _halves(*owns[n], float(sp[2]))
        if parts_kji is None:
            continue
        parts_mm = geometry.zyx_to_world(parts_kji)
        others = np.delete(seeds.positions, n, axis=0)
        others = others[[seeds.units[m][0] is not None for m in range(len(seeds.units)) if m != n]]
        if (
            len(others)
            and np.min(np.linalg.norm(parts_mm[:, None] - others[None], axis=-1)) < MIN_DISTANCE_MM
        ):
            continue  # the second seed is another component's seed, already found
        out[n] = parts_mm
        seeds.split(n, parts_mm)
    return out


def _halves(
    block: NDArray[np.float64], lo, thickness_mm: float, iterations: int = 20
) -> NDArray[np.float64] | None:
    """``(2, 3)`` (z, y, x) index centres of two seeds stacked along the slice axis in the
    excess ``block`` (z, y, x, first voxel at ``lo``): its per-slice profile shared between
    two sources under the slice profile (expectation-maximisation from the two halves of
    equal excess; each source's centre the sub-slice centre of its share,
    :func:`slice_centre`), in-plane the centroid of each share. None when they lie closer than
    ``PAIR_MIN_SLICES``."""
    profile = block.sum(axis=(1, 2))
    k = np.arange(len(profile), dtype=np.float64)
    cum = np.cumsum(profile) / profile.sum()
    m = int(np.searchsorted(cum, 0.5))
    z = np.array(
        [
            float((k[: m + 1] * profile[: m + 1]).sum() / max(profile[: m + 1].sum(), 1e-9)),
            float((k[m:] * profile[m:]).sum() / max(profile[m:].sum(), 1e-9)),
        ]
    )
    sigma = FWHM_TO_SIGMA  # the slice profile, in slices
    resp = np.full((2, len(profile)), 0.5)
    for _ in range(iterations):
        g = np.exp(-0.5 * ((k[None, :] - z[:, None]) / sigma) ** 2) + 1e-12
        resp = g / g.sum(axis=0, keepdims=True)
        z = np.array([slice_centre(resp[j] * profile, thickness_mm) for j in range(2)])
        if z[1] - z[0] < 0.5:  # collapsed onto one source
            return None
    parts = []
    for j in range(2):
        sub = block * resp[j][:, None, None]
        plane = sub.sum(axis=0)
        tot = float(plane.sum())
        jj, ii = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]]
        parts.append(
            [z[j] + lo[0], (jj * plane).sum() / tot + lo[1], (ii * plane).sum() / tot + lo[2]]
        )
    parts_kji = np.array(parts, dtype=np.float64)
    if parts_kji[1, 0] - parts_kji[0, 0] < PAIR_MIN_SLICES:
        return None
    return parts_kji
