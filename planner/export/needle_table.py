"""Needle and seed tables shared by the PDF report, the loading sheet and the CSVs.

Conventions: LPS millimetres (DICOM patient coordinates). A needle runs from its ``entry_mm``
(skin) to its ``tip_mm``; its insertion *depth* is the entry-to-tip length and its *loaded
length* the length of the seed train measured from the tip (tip gap, seeds and spacers).
Angles of the entry → tip direction u = (ux, uy, uz):

* ``tilt_deg``: angle out of the axial plane, asin(uz); + toward the head (S), − toward the feet.
* ``axial_angle_deg``: in the axial plane, the angle of (ux, uy) from the anterior direction
  (−y), + toward the patient's left (+x); a posterior entry aimed straight anterior is 0°, a
  lateral-left entry aimed to the right is −90°.

Seeds are listed from the tip outward, each with its distance from the tip along the needle
(mm). The loading sequence (from the tip) alternates seeds and spacers: the spacer between two
seeds is their centre gap minus one seed length; the first item is the tip gap (tip to the
first seed's near end) when larger than :data:`MIN_SPACER_MM`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner.plan.model import Needle, Plan, Seed

__all__ = ["MIN_SPACER_MM", "NeedleRow", "SeedRow", "needle_rows", "seed_rows"]

#: Gaps shorter than this (mm) are not loaded as a spacer (a seed touching the next).
MIN_SPACER_MM = 0.3


@dataclass(frozen=True)
class SeedRow:
    """One seed: 1-based number in the plan, position (LPS mm), axis, strength (U)."""

    number: int
    seed: Seed
    needle_label: str
    from_tip_mm: float | None
    strength_u: float  # at calibration (the plan source's reference date)


@dataclass(frozen=True)
class NeedleRow:
    """One needle with its geometry and loading."""

    order: int
    needle: Needle
    label: str
    depth_mm: float  # entry → tip
    loaded_length_mm: float  # tip → far end of the last seed
    tilt_deg: float
    axial_angle_deg: float
    seeds: tuple[SeedRow, ...]
    sequence: tuple[tuple[str, float], ...]  # ("spacer", length mm) / ("seed", its number)

    @property
    def sequence_text(self) -> str:
        """E.g. ``tip | spacer 2.8 mm | seed 1 | spacer 5.5 mm | seed 2``."""
        parts = ["tip"]
        for kind, value in self.sequence:
            parts.append(f"spacer {value:.1f} mm" if kind == "spacer" else f"seed {int(value)}")
        return " | ".join(parts)

    @property
    def n_spacers(self) -> int:
        return sum(1 for kind, _ in self.sequence if kind == "spacer")


def _strength(plan: Plan, s: Seed) -> float:
    if s.strength_u is not None:
        return float(s.strength_u)
    if plan.source is not None and plan.source.strength_u is not None:
        return float(plan.source.strength_u)
    return math.nan


def seed_rows(plan: Plan) -> list[SeedRow]:
    """Every seed in plan order, numbered 1 … N, with its needle and distance from the tip."""
    needles = {n.id: n for n in plan.needles}
    rows = []
    for i, s in enumerate(plan.seeds, start=1):
        n = needles.get(s.needle_id or "")
        from_tip = None
        label = ""
        if n is not None:
            label = n.label or n.id
            u = np.asarray(n.entry_mm) - np.asarray(n.tip_mm)
            length = float(np.linalg.norm(u))
            rel = np.asarray(s.position_mm) - np.asarray(n.tip_mm)
            from_tip = float(rel @ u / length) if length > 0 else float(np.linalg.norm(rel))
        rows.append(SeedRow(i, s, label, from_tip, _strength(plan, s)))
    return rows


def needle_rows(plan: Plan, seed_length_mm: float) -> list[NeedleRow]:
    """Every needle in plan order (its insertion order), with geometry and loading sequence."""
    by_needle: dict[str, list[SeedRow]] = {}
    for r in seed_rows(plan):
        if r.seed.needle_id is not None:
            by_needle.setdefault(r.seed.needle_id, []).append(r)
    rows = []
    for order, n in enumerate(plan.needles, start=1):
        entry, tip = np.asarray(n.entry_mm), np.asarray(n.tip_mm)
        v = tip - entry
        length = float(np.linalg.norm(v))
        u = v / length if length > 0 else np.array([0.0, -1.0, 0.0])
        tilt = math.degrees(math.asin(max(-1.0, min(1.0, float(u[2])))))
        axial = math.degrees(math.atan2(float(u[0]), float(-u[1])))
        seeds = sorted(by_needle.get(n.id, []), key=lambda r: r.from_tip_mm or 0.0)
        seq: list[tuple[str, float]] = []
        edge = 0.0  # distance from the tip of the last loaded item's far end
        for r in seeds:
            near = float(r.from_tip_mm or 0.0) - seed_length_mm / 2.0
            gap = near - edge
            if gap >= MIN_SPACER_MM:
                seq.append(("spacer", gap))
            seq.append(("seed", float(r.number)))
            edge = near + seed_length_mm
        rows.append(
            NeedleRow(
                order, n, n.label or n.id, length, edge, tilt, axial, tuple(seeds), tuple(seq)
            )
        )
    return rows
