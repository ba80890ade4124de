"""Thick slices: the seeds the components missed, found in what the found seeds leave unexplained.

On 5 mm slices the 3-slice opening of :func:`planner.postop.thick_slices.compact_excess` takes
seeds stacked along the slice axis (a column of seeds a needle row apart) for bone: the middle
seed of three has no slice maximum, a stacked pair becomes one blob. The in-plane excess (HU
above the in-plane line openings alone) still holds every seed. :func:`unexplained_seeds`
subtracts the image of every seed found (the seed image model of
:mod:`planner.postop.seed_fit`, at the single-seed amplitude learned from the isolated seeds
of the scan) and looks at what is left: where the residual's in-plane sum over a seed's
footprint, on a slice and the better of its neighbours, carries at least ``MIN_SEED_FRACTION``
of a seed (measured the same way on the isolated seeds found), and nothing found lies within
``MIN_DISTANCE_MM``, there is one seed more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.seed_fit import SeedImageModel, line_image
from planner.postop.thick_slices import slice_centre

#: In-plane side (mm) of the square a seed's residual is summed over (a 4.5 mm seed, blurred).
FOOTPRINT_MM = 5.5
#: A residual carrying this fraction of a seed (slice pair sum) is one seed more.
MIN_SEED_FRACTION = 0.6
#: ... when its peak residual is at least this (HU): a seed's worst-sampled peak on 5 mm ≈ 700.
MIN_PEAK_HU = 700.0
#: ... and no seed found lies closer than this (mm): residuals of a found seed's model misfit
#: sit within ≈ 3 mm of it; seeds of a needle row are ≥ 5.5 mm apart.
MIN_DISTANCE_MM = 5.0
#: A seed found is isolated (it calibrates the amplitude) when no other lies within this (mm).
ISOLATED_MM = 12.0
#: Seeds the components missed lie beside those found (a needle row or a column apart): the
#: residual is searched only this close (mm) to a seed found (bone elsewhere stays out).
SEARCH_REACH_MM = 14.0
#: A seed is short along the slice axis (≤ 3 slices of 5 mm with its blur): its residual
#: falls below this fraction of its peak within ``COLUMN_SLICES`` slices on both sides. Bone
#: long along the slice axis (a process, the sternum) keeps its residual.
COLUMN_FRACTION = 0.0
COLUMN_SLICES = 2
#: A seed's image is compact: the 3 × 3 pixels about its residual's peak hold at least this
#: fraction of the residual over its footprint on that slice (measured 0.37–0.83 for seeds;
#: the curved cortex of a small ring, spread over the footprint, 0.12–0.39).
MIN_CORE_FRACTION = 0.4
#: Passes of :meth:`ModelledSeeds.rescale` over the found seeds (each its own amplitude).
RESCALE_PASSES = 0
#: Passes of :meth:`ModelledSeeds.recentre` over the found seeds before the residual is read.
RECENTRE_PASSES = 0
#: Half-size of the box (mm in-plane, slices) a seed's model image is drawn in.
MODEL_REACH_MM = 7.0
MODEL_REACH_SLICES = 2


#: Set to a dict to keep the last call's residual volumes (diagnosis only).
_DEBUG: dict | None = None


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
    grid = np.stack(
        np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"), -1
    ).reshape(-1, 3)
    return box, geometry.zyx_to_world(grid.astype(np.float64))


class ModelledSeeds:
    """The found seeds' model images over a CT's in-plane excess: the data (z, y, x) HU
    (positive, where a seed may be), each seed's image at the single-seed amplitude learned
    from the isolated seeds, their sum ``predicted``. Seeds move (:meth:`recentre`) and the
    sum follows."""

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
        self.amplitudes = np.full(len(self.positions), self.amplitude)
        self.predicted = np.zeros(data.shape, dtype=np.float32)
        for n in range(len(self.positions)):
            self._paint(n, 1.0)

    def _unit(self, centre, axis):
        """(box, unit image ``(M,)`` HU of a 1 HU·mm³ seed at ``centre`` along ``axis``)."""
        box, coords = _box(self.geometry, self.data.shape, centre)
        if box is None:
            return None, None
        image = line_image(
            (coords - centre) @ self.model.rot,
            np.zeros((1, 3)),
            np.asarray(axis, dtype=np.float64)[None] @ self.model.rot,
            np.ones(1),
            self.model.sigma_mm,
        )
        return box, image

    def _paint(self, n: int, sign: float) -> None:
        box, u = self.units[n]
        if box is not None:
            view = self.predicted[box]
            view += (sign * self.amplitudes[n] * u).reshape(view.shape).astype(np.float32)

    def own(self, n: int, box) -> NDArray[np.float32]:
        """The data in ``box`` less every other seed's image: what seed ``n`` has to explain."""
        self._paint(n, -1.0)
        out = self.data[box] - self.predicted[box]
        self._paint(n, 1.0)
        return out

    def rescale(self, n: int, bounds: tuple[float, float] = (0.6, 1.3)) -> None:
        """Seed ``n``'s amplitude: least squares of its image on what it has to explain,
        within ``bounds`` × the single seed's (a blob of two seeds must not pass for one)."""
        box, u = self.units[n]
        if box is None or float(u @ u) <= 0:
            return
        target = self.own(n, box).ravel().astype(np.float64)
        a = float(u @ target) / float(u @ u)
        a = float(np.clip(a, bounds[0] * self.amplitude, bounds[1] * self.amplitude))
        self._paint(n, -1.0)
        self.amplitudes[n] = a
        self._paint(n, 1.0)

    def recentre(self, n: int) -> float:
        """Move seed ``n`` to the centre of what it has to explain (:func:`centre_of`) in a
        seed's footprint about it, on its slice and its neighbours; its image follows. Returns
        how far it moved (mm)."""
        sp = np.asarray(self.geometry.spacing_mm, dtype=np.float64)
        half = footprint_px(sp) // 2
        k, j, i = np.rint(self.geometry.world_to_zyx(self.positions[n][None])[0]).astype(int)
        shape = self.data.shape
        lo = np.maximum([k - 1, j - half, i - half], 0)
        hi = np.minimum([k + 2, j + half + 1, i + half + 1], shape)
        if np.any(hi <= lo):
            return 0.0
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        got = centre_of(np.maximum(self.own(n, box), 0.0), lo, self.geometry)
        if got is None:
            return 0.0
        # Kept only when it explains the data about the seed better (a descent step): the
        # centroid of a blend can pull two parts of a cluster onto one another.
        old_box, old_u = self.units[n]
        if old_box is None:
            return 0.0
        coords = _box(self.geometry, self.data.shape, self.positions[n])[1]
        new_u = line_image(
            (coords - got[0]) @ self.model.rot,
            np.zeros((1, 3)),
            self.axes[n][None] @ self.model.rot,
            np.ones(1),
            self.model.sigma_mm,
        )
        target = self.own(n, old_box).ravel().astype(np.float64)
        before = float(np.sum((target - self.amplitudes[n] * old_u) ** 2))
        after = float(np.sum((target - self.amplitudes[n] * new_u) ** 2))
        if after >= before:
            return 0.0
        moved = float(np.linalg.norm(got[0] - self.positions[n]))
        self._paint(n, -1.0)
        self.positions[n] = got[0]
        self.units[n] = self._unit(self.positions[n], self.axes[n])
        self._paint(n, 1.0)
        return moved


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


def _long_along_slices(column: NDArray[np.float32], k: int) -> bool:
    """Whether the footprint residual ``column`` ``(K,)`` stays above ``COLUMN_FRACTION`` of
    its value at slice ``k`` for ``COLUMN_SLICES`` slices on either side (inside the CT)."""
    low = COLUMN_FRACTION * column[k]
    for side in (column[max(0, k - COLUMN_SLICES) : k], column[k + 1 : k + 1 + COLUMN_SLICES]):
        if len(side) == COLUMN_SLICES and not np.any(side < low):
            return True
    return False


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
    recentre: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float64], list[ResidualSeed]]:
    """Seeds the found ``seeds_mm``/``axes`` ``(N, 3)`` (LPS mm, unit) do not explain.

    ``inplane_excess`` (z, y, x) HU above the in-plane line openings; ``usable`` (z, y, x)
    where a seed may be (HU above the floor, not excluded, not solid metal). Returns the seeds
    more, strongest first; none when fewer than 3 seeds were found (nothing to learn from)."""
    if len(seeds_mm) < 3:
        return seeds_mm, []
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    data = np.where(usable, np.maximum(inplane_excess, 0.0), 0.0).astype(np.float32)
    shape = data.shape
    seeds = ModelledSeeds(data, geometry, seeds_mm, axes)
    if seeds.amplitude <= 0:
        return seeds_mm, []
    for _ in range(RESCALE_PASSES):
        for n in range(len(seeds.positions)):
            seeds.rescale(n)
    for _ in range(RECENTRE_PASSES if recentre is not None else 0):
        for n in recentre:
            seeds.recentre(int(n))
    predicted, isolated = seeds.predicted, seeds.isolated
    seeds_mm = seeds.positions
    # Signed: a found seed's misfit (a lobe either side) cancels in the footprint sums.
    residual = np.where(usable, data - predicted, 0.0).astype(np.float32)
    w = footprint_px(sp)

    def footprint_sum(vol: NDArray[np.float32]) -> NDArray[np.float32]:
        return ndi.uniform_filter(vol, size=(1, w, w), mode="constant") * float(w * w)

    def pair_sum(vol: NDArray[np.float32]) -> NDArray[np.float32]:
        s = footprint_sum(vol)
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
        return seeds_mm, []
    b_res = footprint_sum(residual)
    s_res = pair_sum(residual)
    if _DEBUG is not None:  # the benchmark's diagnosis reads these
        _DEBUG.update(residual=residual, s_res=s_res, seed_sum=seed_sum, data=data)
    peak = ndi.maximum_filter(residual, size=(1, w, w))
    local_max = s_res >= ndi.maximum_filter(s_res, size=(3, w, w))
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
        if COLUMN_FRACTION > 0 and _long_along_slices(b_res[:, j, i], int(k)):
            continue  # long along the slice axis: bone
        block = np.maximum(residual[k0:k1, j0:j1, i0:i1], 0.0)
        plane_k = block[k - k0]
        jp, ip = np.unravel_index(int(np.argmax(plane_k)), plane_k.shape)
        core = plane_k[max(0, jp - 1) : jp + 2, max(0, ip - 1) : ip + 2].sum()
        if core < MIN_CORE_FRACTION * max(float(plane_k.sum()), 1e-9):
            if _DEBUG is not None:
                _DEBUG.setdefault("rejected", []).append(
                    ((k, j, i), "core", core / max(float(plane_k.sum()), 1e-9))
                )
            continue  # spread over the footprint: cortex, not a seed
        got = centre_of(block, (k0, j0, i0), geometry)
        if got is None:
            continue
        pos, axis = got
        if taken and np.min(np.linalg.norm(np.asarray(taken) - pos, axis=1)) < min_distance_mm:
            if _DEBUG is not None:
                _DEBUG.setdefault("rejected", []).append(
                    ((k, j, i), "near", np.min(np.linalg.norm(np.asarray(taken) - pos, axis=1)))
                )
            continue
        taken.append(pos)
        out.append(ResidualSeed(pos, axis, float(s_res[k, j, i] / seed_sum)))
    return seeds_mm, out
