"""Plans made from the automatic planner's solutions, measured exactly and ranked, and the
note on where a V100 shortfall lies (:func:`planner.optimise.autoplan.autoplan`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from dose.metrics import OARMetrics, TargetMetrics
from dose.progress import CancelFn
from planner.imaging.volume import CTVolume
from planner.optimise.candidates import Candidate
from planner.optimise.polish import PolishProblem
from planner.optimise.solve import Solution
from planner.plan.commands import SetGoals, SetNeedlesAndSeeds
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Goal, Needle, Plan, Seed, Structure, new_id

if TYPE_CHECKING:
    from planner.optimise.options import AutoplanOptions

__all__ = [
    "COLD_NEAR_CORD_MM",
    "build_plan",
    "cold_note",
    "cord_d0_1cc",
    "exact_plan",
    "plan_key",
    "plan_rank",
    "target_d90",
]


def build_plan(
    plan: Plan, cands: list[Candidate], locked_ids: list[str], sol: Solution, slots
) -> tuple[Plan, list[Needle], list[Seed]]:
    """Needles (locked ones kept, new ones labelled A1, A2 …) and seeds of a solution."""
    n_locked = len(locked_ids)
    chosen = set(int(n) for n in sol.needles)
    needles: list[Needle] = []
    id_of: dict[int, str] = {}
    for c in cands:
        if c.index >= len(cands) - n_locked:  # locked: keep the plan's needle
            nid = locked_ids[c.index - (len(cands) - n_locked)]
            id_of[c.index] = nid
            needles.append(next(n for n in plan.needles if n.id == nid))
        elif c.index in chosen:
            nid = new_id("nd")
            id_of[c.index] = nid
            e, t = c.entry_mm, c.tip_mm
            needles.append(
                Needle(nid, tuple(map(float, e)), tuple(map(float, t)), f"A{len(needles) + 1}")  # type: ignore[arg-type]
            )
    seeds = []
    for s in sol.slots:
        n = int(slots.needle[s])
        p = slots.positions_mm[s]
        a = slots.axes[s]
        seeds.append(Seed(new_id("sd"), tuple(map(float, p)), tuple(map(float, a)), id_of[n]))  # type: ignore[arg-type]
    # Needles without seeds that are not locked are dropped.
    used = {s.needle_id for s in seeds} | set(locked_ids)
    needles = [n for n in needles if n.id in used]
    return plan, needles, seeds


def exact_plan(
    base: Plan,
    ct: CTVolume,
    cands: list[Candidate],
    locked_ids: list[str],
    sol: Solution,
    slots,
    goals: tuple[Goal, ...],
    o: AutoplanOptions,
    cancel: CancelFn | None,
) -> tuple[Plan, PlanDosimetry, list[object]]:
    """The plan of a solution, its exact dosimetry and the commands that make it."""
    _, needles, seeds = build_plan(base, cands, locked_ids, sol, slots)
    cmd1 = SetNeedlesAndSeeds(tuple(needles), tuple(seeds), label="Automatic plan")
    cmd2 = SetGoals(goals, label="Automatic plan goals")
    new_plan = cmd2.apply(cmd1.apply(base)[0])[0]
    dosi = compute_plan_dosimetry(new_plan, ct, cancel=cancel, formalism=o.formalism)
    return new_plan, dosi, [cmd1, cmd2]


def target_d90(dosi: PlanDosimetry, target: Structure) -> float:
    m = dosi.metrics.get(target.name)
    return m.d90_gy if isinstance(m, TargetMetrics) else 0.0


def cord_d0_1cc(dosi: PlanDosimetry, cord: Structure | None) -> float:
    m = dosi.metrics.get(cord.name) if cord is not None else None
    return m.d0_1cc_gy if isinstance(m, OARMetrics) else 0.0


def plan_rank(
    cord_ok: bool, d90: float, v100: float, seeds: int, objective: float, pd: float, o
) -> tuple:
    """The order of plans (larger is better): the cord limit kept, then D90 ≥ PD (else the
    highest D90), then V100 ≥ goal (else the highest V100), then the fewest seeds."""
    if d90 < pd:
        return (cord_ok, False, False, d90)
    if v100 >= o.v100_goal_percent:
        return (cord_ok, True, True, -seeds - 0.01 * objective)
    return (cord_ok, True, False, v100)


def plan_key(
    exact: tuple[Plan, PlanDosimetry, list[object]],
    target: Structure,
    cord: Structure | None,
    pd: float,
    limit: float,
    o: AutoplanOptions,
    sol: Solution,
) -> tuple:
    """:func:`plan_rank` of an exactly measured plan (nominal doses)."""
    new_plan, dosi, _ = exact
    m = dosi.metrics.get(target.name)
    v100 = m.v100_percent if isinstance(m, TargetMetrics) else 0.0
    cord_ok = cord_d0_1cc(dosi, cord) <= limit
    return plan_rank(
        cord_ok, target_d90(dosi, target), v100, len(new_plan.seeds), sol.objective, pd, o
    )


#: Cold target points this close to the cord (mm) are "at the cord" in the V100 note.
COLD_NEAR_CORD_MM = 15.0


def cold_note(
    pp: PolishProblem, inf, slots: NDArray[np.int64], approach: str | tuple[float, ...]
) -> str:
    """Where the target points under PD lie (the polish's sample): the share within
    ``COLD_NEAR_CORD_MM`` of a cord voxel centre, and for the posterior approaches what the
    demo case showed (docs/autoplan-variants.md)."""
    d = pp.target_gy[:, slots].sum(axis=1, dtype=np.float64)
    cold = inf.target_points_mm[d < pp.pd_gy]
    if cold.shape[0] == 0:
        return "every sampled target point is at or above PD (the DVH's voxels are not)"
    dist, _ = cKDTree(inf.oar_points_mm).query(cold)
    near = float(np.mean(dist <= COLD_NEAR_CORD_MM))
    out = (
        f"{100.0 * near:.0f} % of the sampled target points under PD lie within "
        f"{COLD_NEAR_CORD_MM:g} mm of the cord (median {float(np.median(dist)):.1f} mm)"
    )
    if approach in ("posterior", "posterolateral") and near >= 0.9:
        out += (
            ": beside a cord held to its limit; on the demo case V100 95 % was reached only "
            "with lateral entries (70-90° from posterior, e.g. --approach any), not with "
            "any posterolateral candidate set tried (docs/autoplan-variants.md)"
        )
    return out
