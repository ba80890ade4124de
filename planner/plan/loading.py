"""Seed loading along a needle, template (parallel) needles, and the loading summary.

Loading a needle (:func:`load_needle_seeds`): the needle's track is sampled every 0.25 mm from
the tip back to the entry; the parts inside the target (its CT voxels), each lengthened at both
ends by ``margin_mm`` (negative: shortened, to keep seeds that far inside), get seeds
``spacing_mm`` apart (default 10 mm, 5–15 mm; clinical.md §2.2), centred in each part so the
first and last seed are equally far from its ends; a part shorter than the spacing gets one
seed at its middle, a part shorter than ``min_part_mm`` (default 2 mm) none. Every seed lies on
the track, its axis the needle direction (tip − entry), its strength the plan's source strength
(``Seed.strength_u`` None).

Template mode (:func:`template_needles`): parallel needles along ``direction`` on a square grid
(``spacing_mm``, default 10 mm) in the plane perpendicular to it through the target centroid;
a grid line becomes a needle when it meets the target; its tip is ``tip_margin_mm`` (default
5 mm) beyond the target's deepest point and its entry where the line enters the body (the CT
above −400 HU) coming from the entry side, or ``standoff_mm`` (default 60 mm) before the
target's first point without a CT, clipped to the CT.

Loading summary (:func:`loading_summary`): seeds per needle, free seeds, total seeds and total
strength at calibration and at implant in U and mCi (1.270 U/mCi).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.units import U_PER_MCI_I125
from planner.imaging.volume import CTVolume
from planner.plan.model import Needle, Plan, Seed, Structure, new_id
from planner.plan.needles import (
    _in_structure,
    _inside_grid,
    _slice_body,
    needle_direction,
    needle_length_mm,
    track_samples_mm,
)

__all__ = [
    "DEFAULT_SEED_SPACING_MM",
    "SEED_SPACING_RANGE_MM",
    "LoadingSummary",
    "NeedleLoading",
    "check_seed_spacing",
    "load_needle_seeds",
    "loading_summary",
    "target_parts_mm",
    "template_needles",
]

DEFAULT_SEED_SPACING_MM = 10.0
SEED_SPACING_RANGE_MM = (5.0, 15.0)
DEFAULT_NEEDLE_SPACING_MM = 10.0
_STEP_MM = 0.25


def check_seed_spacing(spacing_mm: float) -> float:
    """``spacing_mm`` if it is in 5–15 mm, else InputError."""
    lo, hi = SEED_SPACING_RANGE_MM
    if not (math.isfinite(spacing_mm) and lo <= spacing_mm <= hi):
        raise InputError(f"seed spacing must be {lo:g}-{hi:g} mm, got {spacing_mm:g} mm")
    return float(spacing_mm)


def target_parts_mm(
    needle: Needle, target: Structure, *, margin_mm: float = 0.0
) -> list[tuple[float, float]]:
    """Parts of the track inside ``target``, as (start, stop) distances from the tip (mm,
    start < stop), each lengthened by ``margin_mm`` at both ends and clipped to the track."""
    length = needle_length_mm(needle)
    if length < 1e-6:
        return []
    pts = track_samples_mm(needle, _STEP_MM)[::-1]  # tip first
    step = length / (len(pts) - 1)
    inside, kji = _inside_grid(target.geometry, pts)
    hit = np.zeros(len(pts), dtype=bool)
    hit[inside] = _in_structure(target, kji[inside])
    f = np.concatenate([[False], hit, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(f))
    parts = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        # Samples a..b-1 are inside: the part spans half a step beyond each end sample.
        lo = max(0.0, (a - 0.5) * step - margin_mm)
        hi = min(length, (b - 0.5) * step + margin_mm)
        if hi > lo:
            parts.append((lo, hi))
    # Margins may make neighbouring parts overlap: merge them.
    merged: list[tuple[float, float]] = []
    for lo, hi in parts:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def load_needle_seeds(
    plan: Plan,
    needle_id: str,
    *,
    target_id: str | None = None,
    spacing_mm: float = DEFAULT_SEED_SPACING_MM,
    margin_mm: float = 0.0,
    min_part_mm: float = 2.0,
) -> list[Seed]:
    """New seeds (fresh ids) along needle ``needle_id`` inside the target (module docstring).

    target_id : default the prescription's structure (InputError when there is none)."""
    spacing = check_seed_spacing(spacing_mm)
    needle = next((n for n in plan.needles if n.id == needle_id), None)
    if needle is None:
        raise KeyError(f"no needle with id {needle_id!r} in the plan")
    if target_id is None:
        if plan.prescription is None:
            raise InputError("loading a needle needs a target: set the prescription first")
        target_id = plan.prescription.structure_id
    target = plan.structure(target_id)
    if needle_length_mm(needle) < 1e-6:
        return []
    axis = tuple(float(v) for v in needle_direction(needle))
    seeds: list[Seed] = []
    tip = np.asarray(needle.tip_mm, dtype=np.float64)
    d = needle_direction(needle)
    for lo, hi in target_parts_mm(needle, target, margin_mm=margin_mm):
        span = hi - lo
        if span < min_part_mm:
            continue
        n = math.floor(span / spacing + 1e-9) + 1
        first = lo + 0.5 * (span - (n - 1) * spacing)
        for i in range(n):
            p = tip - (first + i * spacing) * d
            seeds.append(
                Seed(new_id("sd"), (float(p[0]), float(p[1]), float(p[2])), axis, needle.id)  # type: ignore[arg-type]
            )
    return seeds


# ====================================================================== template mode
def _orthonormal(direction: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    return u, v


def template_needles(
    plan: Plan,
    direction: ArrayLike,
    *,
    target_id: str | None = None,
    spacing_mm: float = DEFAULT_NEEDLE_SPACING_MM,
    ct: CTVolume | None = None,
    tip_margin_mm: float = 5.0,
    standoff_mm: float = 60.0,
    body_hu: float = -400.0,
    offset_mm: tuple[float, float] = (0.0, 0.0),
    label_prefix: str = "T",
) -> list[Needle]:
    """Parallel needles along ``direction`` (3,) (entry → tip) on a square grid through the
    target (module docstring). ``offset_mm`` shifts the grid in its plane."""
    if not (math.isfinite(spacing_mm) and 2.0 <= spacing_mm <= 50.0):
        raise InputError(f"needle spacing must be 2-50 mm, got {spacing_mm:g} mm")
    d = np.asarray(direction, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(d)) or np.linalg.norm(d) < 1e-9:
        raise InputError("the template direction must be a non-zero vector")
    d = d / np.linalg.norm(d)
    if target_id is None:
        if plan.prescription is None:
            raise InputError("template needles need a target: set the prescription first")
        target_id = plan.prescription.structure_id
    target = plan.structure(target_id)
    if target.voxel_count == 0:
        raise InputError(f"the target {target.name!r} is empty")
    g = plan.geometry
    kji = np.argwhere(target.crop) + [b.start for b in target.box]
    pts = g.zyx_to_world(kji.astype(np.float64))
    centre = pts.mean(axis=0)
    u, v = _orthonormal(d)
    rel = pts - centre
    pu, pv, pd = rel @ u, rel @ v, rel @ d
    half = 0.5 * float(np.max(g.spacing_mm))
    iu = np.arange(
        math.floor((pu.min() - offset_mm[0]) / spacing_mm) - 1,
        math.ceil((pu.max() - offset_mm[0]) / spacing_mm) + 2,
    )
    iv = np.arange(
        math.floor((pv.min() - offset_mm[1]) / spacing_mm) - 1,
        math.ceil((pv.max() - offset_mm[1]) / spacing_mm) + 2,
    )
    lo_ct, hi_ct = g.bounds_world_mm()
    needles: list[Needle] = []
    for a in iu:
        for b in iv:
            cu = a * spacing_mm + offset_mm[0]
            cv = b * spacing_mm + offset_mm[1]
            # Target voxels whose centre is within half a voxel of this line.
            near = (np.abs(pu - cu) <= half) & (np.abs(pv - cv) <= half)
            if not near.any():
                continue
            base = centre + cu * u + cv * v
            t_first, t_last = float(pd[near].min()), float(pd[near].max())
            tip = base + (t_last + tip_margin_mm) * d
            entry = base + (t_first - standoff_mm) * d
            entry = _clip_to_box(entry, tip, lo_ct, hi_ct)
            if ct is not None:
                entry = _skin_entry(ct, entry, tip, body_hu)
            label = f"{label_prefix}{len(needles) + 1}"
            needles.append(Needle(new_id("nd"), _t(entry), _t(tip), label))
    return needles


def _t(p: NDArray[np.float64]) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))


def _clip_to_box(entry: NDArray, tip: NDArray, lo: NDArray, hi: NDArray) -> NDArray:
    """Move ``entry`` towards ``tip`` until it is inside the box [lo, hi] (tip assumed inside)."""
    d = entry - tip
    s = 1.0
    for c in range(3):
        if d[c] > 1e-12 and tip[c] + d[c] > hi[c]:
            s = min(s, (hi[c] - tip[c]) / d[c])
        elif d[c] < -1e-12 and tip[c] + d[c] < lo[c]:
            s = min(s, (lo[c] - tip[c]) / d[c])
    return tip + max(s, 0.0) * d


def _skin_entry(ct: CTVolume, entry: NDArray, tip: NDArray, body_hu: float) -> NDArray:
    """The first point from ``entry`` towards ``tip`` inside the body (or ``entry``)."""
    needle = Needle("nd-tmp", _t(entry), _t(tip))
    pts = track_samples_mm(needle, _STEP_MM)
    inside, kji = _inside_grid(ct.geometry, pts)
    slices: dict[int, NDArray[np.bool_]] = {}
    for i in np.flatnonzero(inside):
        k = int(kji[i, 0])
        if k not in slices:
            slices[k] = _slice_body(ct.hu, k, body_hu)
        if slices[k][kji[i, 1], kji[i, 2]]:
            return pts[i]
    return entry


# ====================================================================== summary
@dataclass(frozen=True)
class NeedleLoading:
    needle_id: str
    label: str
    n_seeds: int
    strength_u: float  # total at calibration (U)


@dataclass(frozen=True)
class LoadingSummary:
    """Seeds per needle and totals; strengths S_K in U (mCi = U / 1.270), at calibration and
    at implant (decayed; equal when the plan has no dates)."""

    needles: tuple[NeedleLoading, ...]
    free_seeds: int
    total_seeds: int
    total_strength_u: float
    total_strength_at_implant_u: float
    missing_strength: int  # seeds with no strength (not counted in the totals)

    @property
    def total_activity_mci(self) -> float:
        return self.total_strength_u / U_PER_MCI_I125

    @property
    def total_activity_at_implant_mci(self) -> float:
        return self.total_strength_at_implant_u / U_PER_MCI_I125

    def to_dict(self) -> dict[str, object]:
        return {
            "needles": [
                {
                    "id": n.needle_id,
                    "label": n.label,
                    "n_seeds": n.n_seeds,
                    "strength_U": n.strength_u,
                    "activity_mCi": n.strength_u / U_PER_MCI_I125,
                }
                for n in self.needles
            ],
            "free_seeds": self.free_seeds,
            "total_seeds": self.total_seeds,
            "total_strength_U": self.total_strength_u,
            "total_activity_mCi": self.total_activity_mci,
            "total_strength_at_implant_U": self.total_strength_at_implant_u,
            "total_activity_at_implant_mCi": self.total_activity_at_implant_mci,
            "seeds_without_strength": self.missing_strength,
        }


def loading_summary(plan: Plan, needles: Sequence[Needle] | None = None) -> LoadingSummary:
    """The loading summary of ``plan`` (module docstring)."""
    src = plan.source
    default_u = None if src is None else src.strength_u
    decay = 1.0 if src is None else src.decay_factor
    rows = []
    total = 0.0
    missing = 0
    for n in plan.needles if needles is None else needles:
        on = [s for s in plan.seeds if s.needle_id == n.id]
        st = [s.strength_u if s.strength_u is not None else default_u for s in on]
        rows.append(NeedleLoading(n.id, n.label, len(on), float(sum(x for x in st if x))))
    for s in plan.seeds:
        u = s.strength_u if s.strength_u is not None else default_u
        if u is None:
            missing += 1
        else:
            total += u
    free = sum(1 for s in plan.seeds if s.needle_id is None)
    return LoadingSummary(tuple(rows), free, len(plan.seeds), total, total * decay, missing)
