"""The dose-influence matrix: dose (Gy, D∞) per slot at sampled target and organ points.

Points are CT voxel centres (the plan's one volume rule: each voxel of a structure counts
once): the target's voxels (a fixed random subset of at most ``max_target_points``) and the
voxels of each constrained organ at risk within ``oar_window_mm`` of any slot. Each column
is the exact TG-43 dose (numba engine, EXACT mode, every seed-point pair) of one seed of the
plan's strength at implant in that slot, along its needle's axis; D∞ = Ḋ₀·τ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.engine import SeedSet, make_engine, rate_to_dose_gy
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.plan.model import Structure

__all__ = ["Influence", "dose_at_points_gy", "influence_matrix", "structure_points_mm"]


def structure_points_mm(s: Structure) -> NDArray[np.float64]:
    """Voxel centres (M, 3) LPS mm of a structure."""
    kji = np.argwhere(s.crop).astype(np.float64) + [b.start for b in s.box]
    return s.geometry.zyx_to_world(kji)


@dataclass
class Influence:
    """target (Pt, S) and oar (Po, S) dose per slot (Gy); the points (LPS mm) used."""

    target_gy: NDArray[np.float64]
    oar_gy: NDArray[np.float64]
    target_points_mm: NDArray[np.float64]
    oar_points_mm: NDArray[np.float64]
    target_fraction: float  # sampled / all target voxels


def dose_at_points_gy(
    model_id: str,
    formalism: str,
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64] | float,
    points_mm: NDArray[np.float64],
    *,
    cancel: CancelFn | None = None,
) -> NDArray[np.float64]:
    """Total D∞ (Gy) at points (P, 3) from seeds (N, 3) (exact numba engine)."""
    if len(positions_mm) == 0 or len(points_mm) == 0:
        return np.zeros(len(points_mm))
    eng = make_engine(model_id, formalism, "numba")
    seeds = SeedSet.create(positions_mm, axes, strengths_u)
    return rate_to_dose_gy(eng.dose_rate_at_points(seeds, points_mm, cancel=cancel).dose_rate_cgy_h)


def influence_matrix(
    model_id: str,
    formalism: str,
    strength_u: float,
    slot_positions_mm: NDArray[np.float64],
    slot_axes: NDArray[np.float64],
    target: Structure,
    oars: list[Structure],
    *,
    max_target_points: int = 2500,
    oar_window_mm: float = 25.0,
    rng_seed: int = 12,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Influence:
    """The influence matrix (module docstring); ``strength_u`` per seed at implant (U)."""
    tp = structure_points_mm(target)
    frac = 1.0
    if len(tp) > max_target_points:
        idx = np.random.default_rng(rng_seed).choice(len(tp), max_target_points, replace=False)
        frac = max_target_points / len(tp)
        tp = tp[np.sort(idx)]
    op_list = []
    if len(slot_positions_mm):
        lo = slot_positions_mm.min(axis=0) - oar_window_mm
        hi = slot_positions_mm.max(axis=0) + oar_window_mm
        for s in oars:
            p = structure_points_mm(s)
            op_list.append(p[np.all((p >= lo) & (p <= hi), axis=1)])
    op = np.concatenate(op_list) if op_list else np.zeros((0, 3))
    eng = make_engine(model_id, formalism, "numba")
    pts = np.ascontiguousarray(np.concatenate([tp, op]))
    n = len(slot_positions_mm)
    a = np.zeros((len(pts), n))
    # Slots with one axis (parallel needles) share one kernel launch: the dose of a seed at p
    # at point x is that of the same seed at the origin at x - p.
    keys = np.round(slot_axes, 9)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    origin = np.zeros((1, 3))
    done = 0
    for gi in range(int(group.max()) + 1 if n else 0):
        cols = np.flatnonzero(group == gi)
        seed = SeedSet.create(origin, slot_axes[cols[0] : cols[0] + 1], strength_u)
        for c0 in range(0, len(cols), 64):
            check_cancelled(cancel)
            report(progress, done / max(n, 1), "dose influence")
            cc = cols[c0 : c0 + 64]
            rel = (pts[np.newaxis, :, :] - slot_positions_mm[cc][:, np.newaxis, :]).reshape(-1, 3)
            rate = eng.dose_rate_at_points(seed, rel).dose_rate_cgy_h
            a[:, cc] = rate_to_dose_gy(rate).reshape(len(cc), len(pts)).T
            done += len(cc)
    report(progress, 1.0, "dose influence")
    return Influence(a[: len(tp)], a[len(tp) :], tp, op, frac)
