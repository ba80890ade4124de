"""Planned ↔ implanted seeds: one-to-one matching, displacements, needle deviations.

After registration (both seed sets in the planning frame, LPS mm), planned and implanted seeds
are matched by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on Euclidean
distance; a pair farther apart than the gating distance (default 10 mm) is not a match, and both
its seeds are listed as unmatched (a seed that migrated, or one the detector missed or invented).

Per needle (the JRR 2021 categories for CT-guided template implants: entry, tip, depth, angle),
from the implanted seeds matched to that needle's planned seeds:

- ``depth_mm``: mean signed displacement along the planned needle direction (positive: deeper);
- ``angle_deg``: angle between the planned direction and the line fitted through the implanted
  seeds (needs ≥ 2 seeds spanning ≥ 3 mm);
- ``tip_mm``: displacement of the seed nearest the tip;
- ``entry_mm``: distance from the planned entry point to the fitted implanted line, extended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from dose.errors import InputError
from planner.plan.verification import matching_line

__all__ = ["MatchResult", "NeedleDeviation", "match_seeds", "needle_deviations"]


@dataclass(frozen=True)
class NeedleDeviation:
    """How far the implanted seeds of one needle lie from its plan (mm, degrees)."""

    needle_id: str
    n_matched: int
    depth_mm: float
    tip_mm: float
    entry_mm: float | None
    angle_deg: float | None


@dataclass
class MatchResult:
    """``pairs`` (planned index, implanted index); displacements (implanted − planned, mm)."""

    pairs: NDArray[np.int64]  # (M, 2)
    displacement_mm: NDArray[np.float64]  # (M, 3)
    unmatched_planned: list[int] = field(default_factory=list)
    unmatched_implanted: list[int] = field(default_factory=list)
    gate_mm: float = 10.0

    @property
    def distances_mm(self) -> NDArray[np.float64]:
        return np.linalg.norm(self.displacement_mm, axis=1)

    def summary(self) -> str:
        return matching_line(
            self.distances_mm,
            self.gate_mm,
            len(self.unmatched_planned),
            len(self.unmatched_implanted),
        )


def match_seeds(
    planned_mm: ArrayLike, implanted_mm: ArrayLike, *, gate_mm: float = 10.0
) -> MatchResult:
    """Match ``planned_mm`` ``(N, 3)`` to ``implanted_mm`` ``(M, 3)`` (both in one frame)."""
    p = np.asarray(planned_mm, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(implanted_mm, dtype=np.float64).reshape(-1, 3)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise InputError("seed positions for matching must be finite")
    if not gate_mm > 0:
        raise InputError(f"gating distance must be > 0 mm, got {gate_mm}")
    if len(p) == 0 or len(q) == 0:
        return MatchResult(
            np.zeros((0, 2), np.int64),
            np.zeros((0, 3)),
            list(range(len(p))),
            list(range(len(q))),
            gate_mm,
        )
    dist = np.linalg.norm(p[:, None, :] - q[None, :, :], axis=-1)
    # Pairs beyond the gate cost more than any gated pair, so the assignment never trades a
    # good match for two bad ones; they are dropped afterwards.
    cost = np.where(dist <= gate_mm, dist, 1e6 + dist)
    r, c = linear_sum_assignment(cost)
    ok = dist[r, c] <= gate_mm
    pairs = np.stack([r[ok], c[ok]], axis=1).astype(np.int64)
    return MatchResult(
        pairs,
        q[pairs[:, 1]] - p[pairs[:, 0]],
        sorted(set(range(len(p))) - set(pairs[:, 0].tolist())),
        sorted(set(range(len(q))) - set(pairs[:, 1].tolist())),
        gate_mm,
    )


def needle_deviations(
    match: MatchResult,
    planned_mm: ArrayLike,
    implanted_mm: ArrayLike,
    seed_needle_ids: list[str | None],
    needles: dict[str, tuple[ArrayLike, ArrayLike]],
) -> list[NeedleDeviation]:
    """Per-needle deviations (module docstring). ``seed_needle_ids[i]`` is planned seed i's
    needle; ``needles[id] = (entry_mm, tip_mm)``."""
    p = np.asarray(planned_mm, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(implanted_mm, dtype=np.float64).reshape(-1, 3)
    out: list[NeedleDeviation] = []
    for nid, (entry, tip) in needles.items():
        entry = np.asarray(entry, dtype=np.float64)
        tip = np.asarray(tip, dtype=np.float64)
        u = tip - entry
        length = float(np.linalg.norm(u))
        if length == 0:
            continue
        u /= length
        rows = [k for k, (i, _) in enumerate(match.pairs) if seed_needle_ids[i] == nid]
        if not rows:
            continue
        pi = match.pairs[rows, 0]
        qi = match.pairs[rows, 1]
        disp = q[qi] - p[pi]
        depth = float(np.mean(disp @ u))
        nearest_tip = int(np.argmax(p[pi] @ u))
        tip_dev = float(np.linalg.norm(disp[nearest_tip]))
        angle = entry_dev = None
        pts = q[qi]
        if len(pts) >= 2:
            centre = pts.mean(axis=0)
            _, _, vt = np.linalg.svd(pts - centre)
            span = float(np.ptp((pts - centre) @ vt[0]))
            if span >= 3.0:
                v = vt[0] if vt[0] @ u >= 0 else -vt[0]
                angle = float(np.degrees(np.arccos(np.clip(v @ u, -1.0, 1.0))))
                w = entry - centre
                entry_dev = float(np.linalg.norm(w - (w @ v) * v))
        out.append(NeedleDeviation(nid, len(rows), depth, tip_dev, entry_dev, angle))
    return out
