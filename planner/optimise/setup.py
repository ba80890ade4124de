"""The automatic planner's set-up (:func:`planner.optimise.autoplan.autoplan`): the inputs
checked (one clear :class:`~dose.errors.InputError` each), the cord limit, where seeds may go,
the goals added to the plan, the locked needles as candidates, and the robust mode's sampled
cord influence."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.metrics import DEFAULT_CORD_D0_1CC_LIMIT_GY
from dose.progress import CancelFn, check_cancelled
from planner.imaging.volume import CTVolume
from planner.optimise.candidates import Candidate
from planner.optimise.influence import influence_matrix, structure_points_mm
from planner.optimise.robustness import perturb_points
from planner.plan.loading import target_parts_mm
from planner.plan.model import Goal, Plan, Prescription, Structure, new_id
from planner.plan.needles import needle_direction

if TYPE_CHECKING:
    from planner.optimise.options import AutoplanOptions

__all__ = [
    "check_inputs",
    "cord_limit",
    "locked_candidates",
    "organ_window",
    "plan_goals",
    "sampled_cord_influence",
    "slot_target",
]


def locked_candidates(plan: Plan, tgt: Structure, start: int) -> list[Candidate]:
    out = []
    for i, n in enumerate(plan.needles):
        try:
            d = needle_direction(n)
        except ValueError:
            continue
        parts = tuple(target_parts_mm(n, tgt))
        out.append(
            Candidate(
                start + i,
                np.asarray(n.entry_mm, float),
                np.asarray(n.tip_mm, float),
                d,
                parts,
                0.0,
                -1,
            )
        )
    return out


def cord_limit(plan: Plan, cord_id: str | None, o: AutoplanOptions) -> float:
    """The cord D0.1 cm³ limit: the option, else the plan's goal, else 45 Gy."""
    if o.cord_limit_gy is not None:
        return float(o.cord_limit_gy)
    for g in plan.goals:
        key = g.metric.replace(" ", "").lower()
        if g.structure_id == cord_id and g.comparison == "<=" and key in ("d0.1cc", "d0.1cm3"):
            return float(g.value)
    return DEFAULT_CORD_D0_1CC_LIMIT_GY


def slot_target(plan: Plan, rx_target: Structure) -> Structure:
    """Where needles end and seeds may go: the union of every target structure (e.g. the
    PTV when the prescription is on a PTV cropped from the cord)."""
    targets = [s for s in plan.structures if s.role == "target" and s.voxel_count > 0]
    if len(targets) <= 1:
        return rx_target
    union = np.zeros(plan.geometry.shape_zyx, dtype=bool)
    for s in targets:
        union[s.box] |= s.crop
    return Structure.from_mask("st-autoplan-targets", "targets", "target", union, plan.geometry)


def sampled_cord_influence(
    plan: Plan,
    cord: Structure,
    cands: list[Candidate],
    slots,
    strength_u: float,
    o: AutoplanOptions,
    window: NDArray[np.bool_],
    cancel: CancelFn | None,
    samples: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and SD (Po, S) of each slot's dose at the cord points (in the organ window) over
    ``samples`` needle-error draws of the error model (seeds of a needle move together)."""
    assert plan.source is not None
    rng = np.random.default_rng(11)
    model = o.error_model
    by_index = {c.index: c for c in cands}
    rows = []
    for _ in range(samples):
        check_cancelled(cancel)
        pos = slots.positions_mm.copy()
        for n in np.unique(slots.needle):
            c = by_index[int(n)]
            sel = slots.needle == n
            pos[sel] = perturb_points(pos[sel], c.entry_mm, c.tip_mm, model, rng)
        inf = influence_matrix(
            plan.source.model_id,
            o.formalism,
            strength_u,
            pos,
            slots.axes,
            cord,
            [],
            max_target_points=10**7,
            cancel=cancel,
        )
        rows.append(inf.target_gy[window])
    stack = np.stack(rows)
    return stack.mean(axis=0), stack.std(axis=0)


def organ_window(s: Structure, slot_positions_mm: NDArray[np.float64], window_mm: float = 25.0):
    """Which voxel centres of ``s`` lie within the slots' box + ``window_mm`` (the influence
    matrix's organ window)."""
    p = structure_points_mm(s)
    lo = slot_positions_mm.min(axis=0) - window_mm
    hi = slot_positions_mm.max(axis=0) + window_mm
    return np.all((p >= lo) & (p <= hi), axis=1)


def plan_goals(
    plan: Plan, target_id: str, cord_id: str | None, pd: float, limit: float, o: AutoplanOptions
):
    wanted = [Goal(new_id("gl"), target_id, "D90", ">=", pd, "Gy")]
    wanted.append(Goal(new_id("gl"), target_id, "V100", ">=", o.v100_goal_percent, "%"))
    if cord_id is not None:
        wanted.append(Goal(new_id("gl"), cord_id, "D0.1cc", "<=", limit, "Gy"))
    have = {(g.structure_id, g.metric.replace(" ", "").lower()) for g in plan.goals}
    goals = list(plan.goals)
    for g in wanted:
        if (g.structure_id, g.metric.lower()) in have:
            goals = [
                replace(x, value=g.value)
                if (x.structure_id, x.metric.replace(" ", "").lower())
                == (g.structure_id, g.metric.lower())
                else x
                for x in goals
            ]
        else:
            goals.append(g)
    return tuple(goals)


def check_inputs(plan: Plan, ct: CTVolume | None, o: AutoplanOptions) -> tuple[Plan, float]:
    if ct is None:
        raise InputError("automatic planning needs the plan's CT (none was loaded)")
    plan.check_ct(ct)
    rx = plan.prescription
    if rx is None:
        targets = [s for s in plan.structures if s.role == "target"]
        if not targets:
            raise InputError("the plan has no target structure to plan for")
        if o.pd_gy is None:
            raise InputError("the plan has no prescription: give --pd-gy")
        rx = Prescription(float(o.pd_gy), targets[0].id, "D90")
    elif o.pd_gy is not None:
        try:
            rx = Prescription(float(o.pd_gy), rx.structure_id, rx.metric)
        except ValueError as exc:
            raise InputError(f"--pd-gy: {exc}") from None
    target = plan.structure(rx.structure_id)
    if target.voxel_count == 0:
        raise InputError(f"the target {target.name!r} is empty")
    hu_in = ct.hu[target.mask]
    if hu_in.size and float(np.mean(hu_in <= -1000)) > 0.5:
        raise InputError(f"the target {target.name!r} lies outside the CT's data (air/padding)")
    if plan.source is None or plan.source.strength_u is None:
        raise InputError("the plan has no seed source strength: set the model and strength")
    if (o.keep_needles or o.seeds_only) and not plan.needles:
        raise InputError("--keep-needles: the plan has no needles to keep")
    return plan.evolve(prescription=rx), float(rx.dose_gy)
