"""Seed slots: the places a seed may go along each candidate needle.

Slots lie in each in-target part of a candidate (lengthened by ``margin_mm`` at both ends,
clipped to the track), ``spacing_mm / 2`` apart, centred in the part. Two slots on one needle
closer than ``spacing_mm`` conflict (the solver takes at most one of them), so the chosen
seeds are at least ``spacing_mm`` apart while their phase along the needle stays free (half a
spacing resolution). A part shorter than the slot step gets one slot at its middle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from planner.optimise.candidates import Candidate

__all__ = ["SlotSet", "make_slots"]


@dataclass
class SlotSet:
    """Slots of all candidates.

    positions_mm (S, 3) LPS mm; axes (S, 3) unit (the needle direction); needle (S,) the
    candidate index; from_tip_mm (S,) distance from the needle's tip; conflicts: (a, b) slot
    pairs on one needle closer than the seed spacing.
    """

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    needle: NDArray[np.int64]
    from_tip_mm: NDArray[np.float64]
    conflicts: list[tuple[int, int]]
    spacing_mm: float

    def __len__(self) -> int:
        return int(self.positions_mm.shape[0])


def make_slots(
    candidates: Sequence[Candidate],
    *,
    spacing_mm: float = 10.0,
    margin_mm: float = 0.0,
    step_mm: float | None = None,
) -> SlotSet:
    """Slots along ``candidates`` (module docstring); ``step_mm`` (default half the spacing)
    is the phase resolution."""
    if not (math.isfinite(spacing_mm) and 5.0 <= spacing_mm <= 15.0):
        raise InputError(f"seed spacing must be 5-15 mm, got {spacing_mm:g} mm")
    step = 0.5 * spacing_mm if step_mm is None else float(step_mm)
    pos, axes, nd, ft = [], [], [], []
    conflicts: list[tuple[int, int]] = []
    for c in candidates:
        length = c.length_mm
        dists: list[float] = []
        for lo, hi in c.target_parts_mm:
            lo, hi = max(0.0, lo - margin_mm), min(length, hi + margin_mm)
            span = hi - lo
            n = math.floor(span / step + 1e-9) + 1 if span >= step else 1
            first = lo + 0.5 * (span - (n - 1) * step)
            dists += [first + i * step for i in range(n)]
        dists = sorted(set(round(x, 6) for x in dists))
        start = len(pos)
        for x in dists:
            pos.append(c.tip_mm - x * c.direction)
            axes.append(c.direction)
            nd.append(c.index)
            ft.append(x)
        for i in range(len(dists)):
            for j in range(i + 1, len(dists)):
                if dists[j] - dists[i] < spacing_mm - 1e-6:
                    conflicts.append((start + i, start + j))
                else:
                    break
    return SlotSet(
        np.asarray(pos, dtype=np.float64).reshape(-1, 3),
        np.asarray(axes, dtype=np.float64).reshape(-1, 3),
        np.asarray(nd, dtype=np.int64),
        np.asarray(ft, dtype=np.float64),
        conflicts,
        float(spacing_mm),
    )
