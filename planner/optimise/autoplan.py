"""Automatic planning (issue 12): one entry point, :func:`autoplan`.

::

    res = autoplan(plan, ct, options=AutoplanOptions(approach="posterolateral"),
                   progress=p, cancel=c)
    res.plan           the new plan (needles, seeds, goals), made with plan commands
    res.commands       [SetNeedlesAndSeeds, SetGoals]: what the GUI executes (one undo step each)
    res.dosimetry      exact TG-43 dosimetry of res.plan (planner.plan.dosimetry)
    res.summary()      the CLI's JSON: needles, seeds, strength, metrics, time, rejections, goals

Steps: candidate needles (:mod:`planner.optimise.candidates`, rejections counted by reason),
seed slots (:mod:`planner.optimise.slots`), the exact dose-influence matrix on up to
``POLISH_TARGET_POINTS`` target voxel centres (fewer when there are many slots:
``POLISH_MAX_ENTRIES``) and the cord voxels near the slots
(:mod:`planner.optimise.influence`), the selection on ``GREEDY_TARGET_POINTS`` of them
(:mod:`planner.optimise.solve`: coverage dose on 96 % of the points with every cord point
under 95 % of the limit; before a polish the greedy prices the share of the cord's remaining
headroom a slot uses, ``HEADROOM_WEIGHT``, and skips the refill swaps), the exact dosimetry of
the selection's plan (kept as the first best plan; its exact / sampled cord D0.1 cm³ calibrates
the polish's cord limit to ``CALIBRATED_CORD_SAFETY`` of the limit), the polish
(:mod:`planner.optimise.polish`: swaps and adds that raise the number of points ≥ PD up to the
V100 goal with the voxel-centre cord D0.1 cm³ under its limit), then the exact dosimetry of
the result (the reported metrics always are).

D90 first, whatever the machine's speed: the candidates try every direction, the selection's
first pass completes, and the polish does not stop at the deadline before
``D90_POINTS_FRACTION`` of its points are ≥ PD (at most
:data:`planner.optimise.polish.MAX_MOVES_PAST_DEADLINE` moves past it, for a target that
cannot get there); no round is skipped for time while no measured plan has D90 ≥ PD with the
cord limit and that phase has not stalled. Only then does the budget cut the V100 work and the
seed removals. (L3-large at 256², 4 s budget, two CPU hogs: D90 75.8 Gy before, 114.7 Gy
now, the same plan as with 10 s: docs/autoplan-variants.md.)

The polish is checked against the exact dosimetry: when the exact cord D0.1 cm³ is over the
limit its cord limit is lowered in proportion (the next polish first drops the seeds adding most to
the hottest cord voxels); when the exact V100 falls short although the sampled count held, the
polish goal is raised by the shortfall; when the polish stopped short at the cord and the exact
cord dose is under 99.5 % of the limit, its limit is raised towards it; when the exact D90 falls
short although the points held the D90 share, that share rises by 1 %. Without the polish
(``polish=False``, and in robust mode) the rounds adjust the selection instead: the sampled
limit lowered or raised, the coverage dose raised by 3 % when D90 falls short. At most
``max_rounds`` rounds. When no polished plan kept the exact cord limit by then, the selection's
own plan (conservative: every sampled cord point under 95 % of it) and, if needed, plans with
seeds dropped from the hottest cord voxels are tried until one does. The best plan that keeps
the cord limit is kept (then D90 ≥ PD, then
V100 ≥ goal, then fewest seeds, else the highest V100). A target that cannot be covered
without breaking the cord limit gives the best feasible plan; its goals (D90 ≥ PD,
V100 ≥ 95 %, cord D0.1 cm³ ≤ limit, added to the plan when missing) say which failed.

The set-up (inputs checked, the cord limit, the goals, locked needles, the robust mode's sampled
cord influence) is :mod:`planner.optimise.setup`; plans made from solutions, measured exactly
and ranked, and the V100 note, :mod:`planner.optimise.outcome`.

Time budget (``time_budget_s``, default 10 s from the call): past the D90 phase (above) every
phase checks a deadline in its loops: the selection tries no further cord weight and stops
refilling, the polish stops moving, and no new round starts when the time left would not hold
the exact dosimetry. So a slow machine overruns the budget by what the D90 phase needs. When
the budget cut a phase short the result is the best plan found that keeps the cord limit,
``budget_cut`` is true (``time_budget_cut`` in the summary) and a note says so.
``phase_seconds`` (summary ``phase_seconds``) gives the time of each phase.

With ``v100_bound`` an upper bound on V100 under the same rules is computed
(:mod:`planner.optimise.bound`) and the note says whether it rules the V100 goal out; on the
demo case and its variants it does not (the bound is 100 %: docs/autoplan.md), so a V100
shortfall there is the planner's, not proven infeasible. What the polish reaches and where the
shortfall lies (on the demo case 99 % of the target voxels under PD lie within 15 mm of the
cord): docs/autoplan-variants.md.

Locked needles (``keep_needles``: the plan's needles, placed by hand or already in the patient)
are kept as they are and get seeds; with ``seeds_only`` no other needle is added.

``robust``: optimise for the 5th-percentile D90 under needle errors
(:mod:`planner.optimise.robustness`) with the 95th-percentile cord D0.1 cm³ under the limit.
Sampling errors inside the selection would cost minutes, so the selection works on a surrogate:
each slot's dose at the cord points is sampled under 12 needle-error draws (seeds of a needle
move together, :func:`planner.optimise.robustness.perturb_points`) and the cord constraint is
put on mean + ``robust_spread`` × SD of it (default 1 SD; a seed that may land closer to the
cord is counted as such); the coverage dose is raised by 5 %. Each round then samples
``robust_samples`` error sets of the plan found: when the 95th-percentile cord D0.1 cm³ is
over the limit the spread grows in proportion to the excess (4 SD per 100 % over, at least
0.25 SD); when it is well under (< 92 %) and the 5th-percentile D90 short, it shrinks by
0.25 SD (or the coverage dose rises when the coverage already holds). The plan kept is the
best 5th-percentile D90 among those whose nominal and 95th-percentile cord doses keep the
limit. A robust run gets 1.5 × ``time_budget_s``. (The previous surrogate, lowering the cord
limit itself until the 95th percentile held, cost most of the nominal coverage; a cord grown
by a margin was too coarse on the voxel grid: docs/autoplan.md.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.metrics import OARMetrics, TargetMetrics
from dose.progress import CancelFn, ProgressFn, check_cancelled, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.optimise.bound import V100Bound, v100_upper_bound
from planner.optimise.candidates import (
    Candidate,
    CandidateSet,
    CandidateSettings,
    make_candidates,
    needle_conflicts,
)
from planner.optimise.influence import influence_matrix
from planner.optimise.options import AutoplanOptions
from planner.optimise.outcome import (
    cold_note,
    cord_d0_1cc,
    exact_plan,
    plan_key,
    plan_rank,
    target_d90,
)
from planner.optimise.polish import PolishProblem, polish
from planner.optimise.robustness import (
    RobustnessResult,
    cord_structure,
    robustness,
)
from planner.optimise.setup import (
    check_inputs,
    cord_limit,
    locked_candidates,
    organ_window,
    plan_goals,
    sampled_cord_influence,
    slot_target,
)
from planner.optimise.slots import make_slots
from planner.optimise.solve import (
    CORD_WEIGHTS,
    Problem,
    Solution,
    evaluate,
    oar_dose_at_hot_points,
    solve,
)
from planner.plan.commands import SetNeedlesAndSeeds
from planner.plan.dosimetry import PlanDosimetry
from planner.plan.loading import load_needle_seeds
from planner.plan.model import Plan, Seed

__all__ = ["AutoplanOptions", "AutoplanResult", "autoplan", "uniform_loading"]

#: Target points of the selection's problem (a random sample of the target's voxel centres).
GREEDY_TARGET_POINTS = 2500
#: Target points the polish counts (V100 on them has a sampling SD of ~0.25 %).
POLISH_TARGET_POINTS = 8000
#: At most this many target points × slots in the polish's influence (large targets with many
#: slots get fewer points, at least GREEDY_TARGET_POINTS: the matrix costs seconds).
POLISH_MAX_ENTRIES = 8_000_000


def _polish_points(n_slots: int) -> int:
    """Target points the polish counts for ``n_slots`` slots."""
    return int(min(POLISH_TARGET_POINTS, max(GREEDY_TARGET_POINTS, POLISH_MAX_ENTRIES // n_slots)))


#: The polish aims this far above the V100 goal (fraction), for the exact DVH's sub-sampling.
POLISH_GOAL_MARGIN = 0.006
#: The polish keeps the voxel-centre cord D0.1 cm³ under this fraction of the limit first.
POLISH_CORD_SAFETY = 0.985
#: The D90 phase's goal (fraction of the polish's points ≥ PD; 90 % + a margin for the exact
#: DVH), reached before the time budget may stop the polish.
D90_POINTS_FRACTION = 0.915
#: Once the selection's exact cord dose calibrated the sampled one: this fraction of the limit.
CALIBRATED_CORD_SAFETY = 0.99
#: The share of the budget kept free for the exact dosimetry before it was once timed.
DOSIMETRY_RESERVE = 0.15
#: The selection's cord weights before a polish (the polish evens out their differences).
POLISH_CORD_WEIGHTS = (2.0,)
#: The selection's price of the cord headroom a slot uses before a polish
#: (:meth:`planner.optimise.solve._Greedy.headroom_use`).
HEADROOM_WEIGHT = 30.0


@dataclass
class AutoplanResult:
    """The new plan, its exact dosimetry and what the run did (module docstring)."""

    plan: Plan
    commands: list[object]
    dosimetry: PlanDosimetry
    candidates: CandidateSet
    solution: Solution
    seconds: float
    rounds: int
    feasible: bool  # every autoplan goal met
    failed_goals: list[str]
    robust: RobustnessResult | None = None
    notes: list[str] = field(default_factory=list)
    v100_bound: V100Bound | None = None
    budget_cut: bool = False  # time_budget_s stopped the search (the best plan so far is kept)
    phase_seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase

    def summary(self) -> dict[str, object]:
        """The JSON of ``seedplan autoplan --json``."""
        d = self.dosimetry
        metrics: dict[str, object] = {}
        for name, m in d.metrics.items():
            if isinstance(m, TargetMetrics):
                metrics[name] = {
                    "d90_gy": m.d90_gy,
                    "v100_percent": m.v100_percent,
                    "v150_percent": m.v150_percent,
                    "v200_percent": m.v200_percent,
                    "d100_gy": m.d100_gy,
                }
            elif isinstance(m, OARMetrics):
                metrics[name] = {"d0_1cc_gy": m.d0_1cc_gy, "dmax_0_03cc_gy": m.dmax_0_03cc_gy}
        out: dict[str, object] = {
            "needles": len(self.plan.needles),
            "seeds": len(self.plan.seeds),
            "total_strength_U": d.seeds.total_strength_u,
            "prescription_gy": d.prescription_gy,
            "metrics": metrics,
            "goals": [g.to_dict() for g in d.goal_results],
            "failed_goals": list(self.failed_goals),
            "feasible": self.feasible,
            "time_s": self.seconds,
            "time_budget_cut": self.budget_cut,
            "phase_seconds": dict(self.phase_seconds),
            "rounds": self.rounds,
            "method": self.solution.method,
            "candidates": len(self.candidates.candidates),
            "lines_meeting_target": self.candidates.lines_meeting_target,
            "rejected": dict(self.candidates.rejected),
            "no_pass": list(self.candidates.no_pass),
            "dose": d.label,
            "notes": list(self.notes),
        }
        if self.robust is not None:
            out["robustness"] = self.robust.to_dict()
        if self.v100_bound is not None:
            out["v100_bound"] = self.v100_bound.to_dict()
        return out


def autoplan(
    plan: Plan,
    ct: CTVolume | None,
    *,
    options: AutoplanOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> AutoplanResult:
    """Plan needles and seeds automatically (module docstring). InputError for bad input;
    :class:`dose.progress.Cancelled` when ``cancel()`` says so (``plan`` is never changed)."""
    t0 = time.perf_counter()
    o = options or AutoplanOptions()
    base, pd = check_inputs(plan, ct, o)
    assert ct is not None and base.prescription is not None and base.source is not None
    target = base.structure(base.prescription.structure_id)
    cord = cord_structure(base)
    cord_id = None if cord is None else cord.id
    limit = cord_limit(base, cord_id, o)
    where = slot_target(base, target)
    report(progress, 0.0, "candidate needles")
    csettings = CandidateSettings(
        approach=o.approach,
        parallel=o.parallel,
        needle_spacing_mm=o.needle_spacing_mm,
        no_pass_names=tuple(o.no_pass),
        no_pass_margin_mm=o.no_pass_margin_mm,
        bone=o.bone,
    )
    cset = CandidateSet([], {}, np.zeros((0, 3)), (), 0)
    cands: list[Candidate] = []
    if not o.seeds_only:
        # Every direction is tried whatever the time: which needles exist decides whether D90
        # can be reached, and that must not depend on the machine's speed.
        cset = make_candidates(base, ct, where, settings=csettings)
        cands = list(cset.candidates)
        if o.parallel and cands:
            # One direction: the family with the most needle length in the target.
            fams = sorted({c.family for c in cands})
            best = max(fams, key=lambda f: sum(c.in_target_mm for c in cands if c.family == f))
            cands = [c for c in cands if c.family == best]
    check_cancelled(cancel)
    locked_ids = [n.id for n in base.needles] if (o.keep_needles or o.seeds_only) else []
    cands = [replace(c, index=i) for i, c in enumerate(cands)]
    if locked_ids:
        cands += locked_candidates(base, where, len(cands))
    if not cands:
        raise InputError(
            "no candidate needle reaches the target "
            f"(rejected: {', '.join(f'{k} {v}' for k, v in cset.rejected.items() if v) or 'none'})"
        )
    slots = make_slots(
        cands, spacing_mm=o.seed_spacing_mm, margin_mm=o.slot_margin_mm, step_mm=o.slot_step_mm
    )
    if len(slots) == 0:
        raise InputError("no seed slot lies in the target along the candidate needles")
    strength = float(base.source.strength_at_implant_u)  # type: ignore[arg-type]
    use_polish = o.polish and not o.robust
    phases = {"candidates": time.perf_counter() - t0}
    report(progress, 0.1, "dose influence")
    t_inf = time.perf_counter()
    inf = influence_matrix(
        base.source.model_id,
        o.formalism,
        strength,
        slots.positions_mm,
        slots.axes,
        target,
        [cord] if cord is not None else [],
        max_target_points=_polish_points(len(slots)) if use_polish else GREEDY_TARGET_POINTS,
        progress=sub_progress(progress, 0.1, 0.4),
        cancel=cancel,
    )
    phases["influence"] = time.perf_counter() - t_inf
    # The selection works on a sample of the points (its cost grows with them), the polish
    # on all of them.
    t_rows = np.arange(inf.target_gy.shape[0])
    if t_rows.size > GREEDY_TARGET_POINTS:
        pick = np.random.default_rng(12).choice(t_rows.size, GREEDY_TARGET_POINTS, replace=False)
        t_rows = np.sort(pick)
    entries = np.array([c.entry_mm for c in cands])
    tips = np.array([c.tip_mm for c in cands])
    conflicts = needle_conflicts(entries, tips, o.needle_clearance_mm)
    n_locked = len(locked_ids)
    locked = frozenset(range(len(cands) - n_locked, len(cands)))
    cost = np.array([1.0 + 0.05 * c.bone_mm for c in cands])
    cost[list(locked)] = 0.0
    k_hot = math.ceil(100.0 / base.geometry.voxel_volume_mm3 - 1e-9)
    n_conflicts = [(a, b) for a, b in conflicts if not (a in locked and b in locked)]
    problem = Problem(
        inf.target_gy[t_rows],
        inf.oar_gy,
        slots.needle,
        cost,
        pd,
        min(1.0, o.v100_goal_percent / 100.0 + 0.01),
        0.95 * limit,
        slots.conflicts,
        n_conflicts,
        o.max_needles + n_locked,
        oar_hot_points=k_hot,
        locked=locked,
    )
    pp = PolishProblem(
        inf.target_gy.astype(np.float32),
        inf.oar_gy.astype(np.float32),
        slots.needle,
        len(cands),
        pd,
        min(1.0, o.v100_goal_percent / 100.0 + POLISH_GOAL_MARGIN),
        POLISH_CORD_SAFETY * limit,
        k_hot,
        slots.conflicts,
        n_conflicts,
        o.max_needles + n_locked,
        locked,
        slots.positions_mm,
    )
    spread = o.robust_spread
    robust_rows: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    if o.robust and cord is not None:
        robust_rows = sampled_cord_influence(
            base, cord, cands, slots, strength, o, organ_window(cord, slots.positions_mm), cancel
        )
        problem.oar_gy = robust_rows[0] + spread * robust_rows[1]
        problem.coverage_gy = 1.05 * pd
    goals = plan_goals(base, target.id, cord_id, pd, limit, o)
    best: tuple | None = None  # (key, plan, dosimetry, solution, commands, robust)
    rounds = 0
    notes: list[str] = []
    # Each robust round samples needle errors: it gets 1.5 times the budget.
    budget_s = o.time_budget_s * (1.5 if o.robust else 1.0)
    deadline = t0 + budget_s
    cut_short = False
    dosimetry_s = 0.0  # the last exact dosimetry's time: kept free before the deadline
    greedy: Solution | None = None  # the selection, while its problem is unchanged
    greedy_exact: tuple[Plan, PlanDosimetry, list[object]] | None = None  # its exact result
    must = D90_POINTS_FRACTION  # the D90 phase: points ≥ PD the polish reaches whatever the time
    d90_pending = True  # no plan kept the cord limit with D90 ≥ PD yet, and the phase may
    start: NDArray[np.int64] | None = None  # where the next polish starts
    for rounds in range(1, o.max_rounds + 1):
        check_cancelled(cancel)
        d90_done = best is not None and best[0][0] and (best[0][1] or not d90_pending)
        if d90_done and deadline - time.perf_counter() < 1.5 * dosimetry_s:
            cut_short = True  # out of time with a plan that keeps the cord limit (and D90)
            break
        report(progress, 0.4 + 0.5 * (rounds - 1) / o.max_rounds, f"optimising (round {rounds})")
        left = deadline - time.perf_counter()
        if greedy is None:
            greedy = solve(
                problem,
                method=o.method,
                time_limit_s=max(1.0, 0.5 * left),
                deadline=deadline - max(dosimetry_s, DOSIMETRY_RESERVE * budget_s),
                weights=POLISH_CORD_WEIGHTS if use_polish else CORD_WEIGHTS,
                headroom_weight=HEADROOM_WEIGHT if use_polish else 0.0,
                refill_rounds=0 if use_polish else 30,
            )
            cut_short = cut_short or greedy.cut_short
            start = greedy.slots
            phases["selection"] = phases.get("selection", 0.0) + greedy.seconds
        sol = greedy
        pres = None
        if use_polish and greedy_exact is None and cord is not None:
            # D90 first: the selection's plan (every sampled cord point under 95 % of the
            # limit) is measured exactly before the polish spends the rest of the budget, so a
            # budget cut never loses it; its exact / sampled cord dose calibrates the polish.
            td = time.perf_counter()
            greedy_exact = exact_plan(base, ct, cands, locked_ids, greedy, slots, goals, o, cancel)
            dosimetry_s = time.perf_counter() - td
            phases["dosimetry"] = phases.get("dosimetry", 0.0) + dosimetry_s
            g_key = plan_key(greedy_exact, target, cord, pd, limit, o, greedy)
            best = (g_key, greedy_exact[0], greedy_exact[1], greedy, greedy_exact[2], None)
            sampled = oar_dose_at_hot_points(pp.oar_gy[:, greedy.slots].sum(axis=1), k_hot)
            exact_cord = cord_d0_1cc(greedy_exact[1], cord)
            if sampled > 0.0 and exact_cord > 0.0:
                pp.oar_limit_gy = min(CALIBRATED_CORD_SAFETY * limit * sampled / exact_cord, limit)
            notes.append(
                f"round {rounds}: selection D90 "
                f"{target_d90(greedy_exact[1], target):.1f} Gy, exact cord D0.1cc "
                f"{exact_cord:.1f} Gy (sampled {sampled:.1f} Gy): polish cord "
                f"limit {pp.oar_limit_gy:.1f} Gy"
            )
        if use_polish and start is not None:
            reserve = max(dosimetry_s, DOSIMETRY_RESERVE * budget_s)  # for the exact dosimetry
            d90_met = best is not None and best[0][0] and best[0][1]
            pres = polish(
                pp,
                start,
                deadline=deadline - reserve,
                cancel=cancel,
                must_fraction=0.0 if d90_met else must,
            )
            cut_short = cut_short or pres.cut_short
            if pres.coverage < must - 1e-9:
                d90_pending = False  # the D90 phase stalled: this target may not reach it
            phases["polish"] = phases.get("polish", 0.0) + pres.seconds
            notes.append(
                f"round {rounds}: polish "
                + ", ".join(f"{v} {k}" for k, v in pres.moves.items() if v)
                + f" in {pres.seconds:.1f} s: {100.0 * pres.coverage:.1f} % of "
                f"{pp.target_gy.shape[0]} target points ≥ PD, cord {pres.oar_hot_gy:.1f} Gy "
                f"(greedy {greedy.seconds:.1f} s)"
            )
            sol = evaluate(problem, pres.slots, f"{greedy.method}+polish", greedy.seconds)
            sol.notes = list(greedy.notes)
            if pres.cut_short and np.array_equal(pres.slots, start):
                break  # out of time before a move: the plan measured last stays the best
        td = time.perf_counter()
        new_plan, dosi, cmds = exact_plan(base, ct, cands, locked_ids, sol, slots, goals, o, cancel)
        dosimetry_s = time.perf_counter() - td
        phases["dosimetry"] = phases.get("dosimetry", 0.0) + dosimetry_s
        seeds = new_plan.seeds
        tm = dosi.metrics.get(target.name)
        cm = dosi.metrics.get(cord.name) if cord is not None else None
        d90 = tm.d90_gy if isinstance(tm, TargetMetrics) else 0.0
        cord_d = cm.d0_1cc_gy if isinstance(cm, OARMetrics) else 0.0
        cord_ok = cord_d <= limit
        rob = None
        key_d90 = d90
        if o.robust and seeds:
            rob = robustness(new_plan, samples=o.robust_samples, model=o.error_model, cancel=cancel)
            pc = rob.percentiles()
            key_d90 = pc["d90_gy"]["p5"] or 0.0
            if cord is not None:
                cord_ok = cord_ok and (pc["cord_d0_1cc_gy"]["p95"] or 0.0) <= limit
        v100 = tm.v100_percent if isinstance(tm, TargetMetrics) else 0.0
        v100_ok = v100 >= o.v100_goal_percent
        key = plan_rank(cord_ok, key_d90, v100, len(seeds), sol.objective, pd, o)
        if best is None or key > best[0]:
            best = (key, new_plan, dosi, sol, cmds, rob)
        if pres is not None:
            # The polish counts voxel centres against the exact limit less a safety: check it
            # against the exact dosimetry and adjust.
            if cord_d > limit:
                pp.oar_limit_gy *= 0.995 * limit / max(cord_d, 1e-9)
                start = pres.slots
                notes.append(
                    f"round {rounds}: exact cord D0.1cc {cord_d:.1f} Gy over the limit; "
                    f"polish limit lowered to {pp.oar_limit_gy:.1f} Gy"
                )
                continue
            if d90 < pd and pres.coverage >= must - 1e-9 and must < pp.goal_fraction:
                # The points said D90 ≥ PD, the exact DVH not: the D90 phase aims higher.
                must = min(pp.goal_fraction, must + 0.01)
                start = pres.slots
                notes.append(
                    f"round {rounds}: exact D90 {d90:.1f} Gy short; D90 phase aims at "
                    f"{100.0 * must:.1f} % of the points"
                )
                continue
            reached = pres.coverage >= pp.goal_fraction - 1e-9
            if not v100_ok and reached and pp.goal_fraction < 1.0:
                pp.goal_fraction = min(
                    1.0, pp.goal_fraction + (o.v100_goal_percent - v100) / 100.0 + 0.003
                )
                start = pres.slots
                notes.append(
                    f"round {rounds}: exact V100 {v100:.1f} % short; polish goal raised to "
                    f"{100.0 * pp.goal_fraction:.1f} %"
                )
                continue
            if not v100_ok and not reached and cord_d < 0.995 * limit and not pres.cut_short:
                pp.oar_limit_gy *= 0.998 * limit / max(cord_d, 1e-9)
                start = pres.slots
                notes.append(
                    f"round {rounds}: exact cord D0.1cc {cord_d:.1f} Gy under the limit; "
                    f"polish limit raised to {pp.oar_limit_gy:.1f} Gy"
                )
                continue
            break
        if not (cord_d <= limit):
            problem.oar_limit_gy *= 0.97 * limit / max(cord_d, 1e-9)
            greedy = None
            notes.append(
                f"round {rounds}: exact cord D0.1cc {cord_d:.1f} Gy over the limit; "
                f"sampled limit lowered to {problem.oar_limit_gy:.1f} Gy"
            )
            continue
        if rob is not None and robust_rows is not None:
            p95 = rob.percentiles()["cord_d0_1cc_gy"]["p95"] or 0.0
            cord_limited = sol.coverage < problem.coverage_fraction - 1e-9
            if p95 > limit or (key_d90 < pd and cord_limited and p95 < 0.92 * limit):
                # Scale the spread term towards the 95th percentile at the limit.
                # Over: grow in proportion to the excess (at least 0.25 SD); under: shrink.
                step = max(0.25, 4.0 * (p95 / limit - 1.0)) if p95 > limit else -0.25
                spread = max(0.0, spread + step)
                problem.oar_gy = robust_rows[0] + spread * robust_rows[1]
                greedy = None
                notes.append(
                    f"round {rounds}: 95th-percentile cord D0.1cc {p95:.1f} Gy; cord spread "
                    f"term set to {spread:g} SD"
                )
                continue
        short = key_d90 < pd
        cord_limited = sol.coverage < problem.coverage_fraction - 1e-9
        if (short or not v100_ok) and cord_limited and cord_d < 0.985 * limit and rob is None:
            # The exact cord dose left room under the limit: use it.
            problem.oar_limit_gy *= 0.99 * limit / max(cord_d, 1e-9)
            greedy = None
            notes.append(
                f"round {rounds}: exact cord D0.1cc {cord_d:.1f} Gy under the limit; "
                f"sampled limit raised to {problem.oar_limit_gy:.1f} Gy"
            )
            continue
        if short and sol.coverage >= problem.coverage_fraction - 1e-9:
            problem.coverage_gy *= 1.05 if o.robust else 1.03
            greedy = None
            notes.append(
                f"round {rounds}: D90 short; coverage dose raised to {problem.coverage_gy:.1f} Gy"
            )
            continue
        break
    if use_polish and cord is not None and best is not None and not best[0][0]:
        # No polished plan kept the exact cord limit (the rounds ran out): fall back on the
        # selection (its sampled limit is 95 % of the limit on every cord point), then on
        # seeds dropped from the hottest cord voxels, until one does.
        assert greedy is not None
        fallback = [greedy.slots] if greedy_exact is None else []  # else measured already
        for attempt in range(4):
            check_cancelled(cancel)
            if attempt < len(fallback):
                slots_try = fallback[attempt]
            else:
                cord_now = best[2].metrics[cord.name].d0_1cc_gy
                pp.oar_limit_gy *= 0.97 * limit / max(cord_now, 1e-9)
                slots_try = polish(pp, best[3].slots, max_moves=0, cancel=cancel).slots
            sol = evaluate(problem, slots_try, f"{greedy.method} (cord fallback)", 0.0)
            exact = exact_plan(base, ct, cands, locked_ids, sol, slots, goals, o, cancel)
            new_plan, dosi, cmds = exact
            cord_d = cord_d0_1cc(dosi, cord)
            key = plan_key(exact, target, cord, pd, limit, o, sol)
            notes.append(
                f"no polished plan kept the cord limit: fallback {attempt + 1}, exact cord "
                f"D0.1cc {cord_d:.1f} Gy"
            )
            if key > best[0]:
                best = (key, new_plan, dosi, sol, cmds, None)
            if best[0][0]:
                break
    notes = list(cset.notes) + notes
    if cut_short or cset.cut_short:
        notes.append(
            f"the time budget ({budget_s:g} s) cut the optimisation short (round {rounds}): "
            "this is the best plan found in it that keeps the cord limit"
            if best is not None and best[0][0]
            else f"the time budget ({budget_s:g} s) cut the optimisation short (round {rounds})"
        )
    assert best is not None
    _, new_plan, dosi, sol, commands, rob = best
    failed = [g.label for g in dosi.goal_results if g.status == "fail"]
    tm = dosi.metrics.get(target.name)
    if (
        isinstance(tm, TargetMetrics)
        and tm.v100_percent < o.v100_goal_percent
        and sol.coverage < problem.coverage_fraction - 1e-9
    ):
        notes.append(
            f"V100 ≥ {o.v100_goal_percent:g} % was not reached within the cord limit "
            f"(V100 {tm.v100_percent:.1f} %, D90 {tm.d90_gy:.1f} Gy): this is the best plan "
            "found that keeps it"
        )
        if cord is not None and inf.oar_points_mm.shape[0]:
            notes.append(cold_note(pp, inf, sol.slots, o.approach))
    bound = None
    if o.v100_bound and cord is not None and not o.seeds_only:
        report(progress, 0.95, "upper bound on V100")
        bound = v100_upper_bound(
            base, ct, target, cord, pd, limit, csettings, formalism=o.formalism, cancel=cancel
        )
        if isinstance(tm, TargetMetrics) and tm.v100_percent < o.v100_goal_percent:
            if bound.v100_max_percent < o.v100_goal_percent:
                notes.append(
                    f"V100 ≤ {bound.v100_max_percent:.1f} % is the most any plan can reach here "
                    f"(cord D0.1cc ≤ {limit:g} Gy, the no-pass and bone rules): the V100 goal "
                    "is infeasible"
                )
            else:
                notes.append(
                    f"the upper bound V100 ≤ {bound.v100_max_percent:.1f} % does not rule the "
                    "V100 goal out: no single voxel is out of reach, the shortfall comes from "
                    "the cord dose of many seeds together (this plan is the planner's best)"
                )
    report(progress, 1.0, "automatic plan ready")
    return AutoplanResult(
        plan=new_plan,
        commands=commands,
        dosimetry=dosi,
        candidates=cset,
        solution=sol,
        seconds=time.perf_counter() - t0,
        rounds=rounds,
        feasible=not failed,
        failed_goals=failed,
        robust=rob,
        notes=notes + list(sol.notes),
        v100_bound=bound,
        budget_cut=cut_short or cset.cut_short,
        phase_seconds=phases,
    )


def uniform_loading(plan: Plan, *, spacing_mm: float = 10.0) -> Plan:
    """The baseline: the same needles, each loaded uniformly along its in-target parts
    (:func:`planner.plan.loading.load_needle_seeds`)."""
    seeds: list[Seed] = []
    for n in plan.needles:
        seeds += load_needle_seeds(plan, n.id, spacing_mm=spacing_mm)
    return SetNeedlesAndSeeds(plan.needles, tuple(seeds), label="Uniform loading").apply(plan)[0]
