"""``seedplan autoplan PLAN --out PLAN2 [options] [--json]``: automatic needles and seeds.

Runs :func:`planner.optimise.autoplan.autoplan` on the plan and its planning CT (the path the
plan records, relative to the plan file when not absolute, or ``--ct``), writes the complete new
plan (needles, seeds, goals) to PLAN2 and prints a summary (one JSON object with ``--json``:
needles, seeds, total strength, metrics, time, rejected candidates by reason, goals). A target
that cannot be covered without breaking the cord limit is reported as such (exit 0; the plan
holds the best feasible result and its goals say which failed). Bad input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dose.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "autoplan",
        help="plan needles and seeds automatically",
        description="Choose needle paths and seed positions so that the target D90 reaches the "
        "prescription (V100 ≥ 95 %) with the cord D0.1cm³ under its limit (a hard constraint), "
        "with as few seeds and needles as that allows.",
    )
    p.add_argument("plan", metavar="PLAN", help="the plan (.seedplan)")
    p.add_argument("--out", required=True, metavar="PLAN2", help="the new plan (.seedplan)")
    p.add_argument(
        "--ct", default=None, metavar="CT_PATH", help="planning CT (default: the plan's)"
    )
    p.add_argument("--pd-gy", type=float, default=None, metavar="PD", help="prescription (Gy)")
    p.add_argument(
        "--approach",
        default="posterolateral",
        metavar="posterior|posterolateral|any|X,Y,Z",
        help="needle approach (patient prone), or a direction X,Y,Z (LPS, entry → tip); "
        "default posterolateral",
    )
    p.add_argument("--parallel", action="store_true", help="all needles parallel (a template)")
    p.add_argument(
        "--bone",
        choices=("avoid", "allow"),
        default="allow",
        help="bone along the path: avoid (rejected) or allow up to 25 mm with a penalty "
        "(default allow: transpedicular/costotransverse routes)",
    )
    p.add_argument(
        "--no-pass",
        nargs="+",
        default=[],
        metavar="NAME",
        help="more structures no needle may pass within 5 mm of (cord and canal always)",
    )
    p.add_argument(
        "--keep-needles",
        action="store_true",
        help="keep the plan's needles (locked) and add others only where needed",
    )
    p.add_argument(
        "--seeds-only",
        action="store_true",
        help="keep the plan's needles and optimise only their seeds (intra-operative re-plan)",
    )
    p.add_argument("--needle-spacing-mm", type=float, default=10.0, metavar="S")
    p.add_argument("--seed-spacing-mm", type=float, default=10.0, metavar="S")
    p.add_argument("--max-needles", type=int, default=30, metavar="N")
    p.add_argument(
        "--cord-limit-gy",
        type=float,
        default=None,
        metavar="GY",
        help="cord D0.1cm³ limit (default: the plan's goal, else 45 Gy)",
    )
    p.add_argument(
        "--robust", action="store_true", help="optimise the 5th-percentile D90 under needle errors"
    )
    p.add_argument(
        "--method",
        choices=("greedy", "milp", "auto"),
        default="greedy",
        help="solver (default greedy; milp: HiGHS integer programming)",
    )
    p.add_argument(
        "--v100-bound",
        action="store_true",
        help="also compute an upper bound on V100 under the cord limit and the no-pass rule "
        "(the most any plan can reach; 10-60 s)",
    )
    p.add_argument(
        "--time-budget-s",
        type=float,
        default=10.0,
        metavar="S",
        help="stop refining after S seconds with the best plan so far that keeps the cord "
        "limit (the summary says so; default 10 s)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--force", action="store_true", help="replace an existing PLAN2")
    p.set_defaults(run=run)
    return p


def parse_approach(text: str) -> str | tuple[float, float, float]:
    """``posterior``/``posterolateral``/``any`` or ``X,Y,Z`` (InputError otherwise)."""
    t = text.strip().lower()
    if t in ("posterior", "posterolateral", "any"):
        return t
    parts = t.split(",")
    try:
        v = tuple(float(x) for x in parts)
    except ValueError:
        v = ()
    if len(v) != 3 or not all(math.isfinite(x) for x in v) or not any(v):
        raise InputError(
            f"--approach {text!r}: use posterior, posterolateral, any or a direction X,Y,Z"
        )
    return (v[0], v[1], v[2])


def planning_ct_path(plan_path: Path, recorded: str, given: str | None) -> Path:
    """The CT to load: ``--ct``, else the plan's recorded path (relative to the plan file)."""
    from planner.plan.plan_ct import recorded_ct_path

    if given:
        return Path(given)
    path = recorded_ct_path(recorded, plan_path)
    if path is None:
        raise InputError("the plan records no CT path: name the planning CT with --ct", plan_path)
    return path


def load_plan_and_ct(plan_path: Path, ct_arg: str | None):
    from planner.imaging.ct_loader import load_ct
    from planner.plan.plan_file import load_plan

    plan = load_plan(plan_path).plan
    ct_path = planning_ct_path(plan_path, plan.ct.source_path, ct_arg)
    if not ct_path.exists():
        raise InputError("the plan's CT is not there (name it with --ct)", ct_path)
    ct, _ = load_ct(ct_path)
    plan.check_ct(ct, where=ct_path)
    return plan, ct, ct_path


def _fmt(v: object, unit: str) -> str:
    return "n/a" if not isinstance(v, (int, float)) else f"{v:.1f} {unit}"


def run(args: argparse.Namespace) -> int:
    from planner.optimise.autoplan import AutoplanOptions, autoplan
    from planner.plan.plan_ct import ct_reference_at
    from planner.plan.plan_file import save_plan

    plan_path = Path(args.plan)
    out = Path(args.out)
    if out.suffix.lower() != ".seedplan":
        raise InputError("the output plan's name must end in .seedplan", out)
    if out.exists() and not args.force:
        raise InputError("exists (use --force to replace it)", out)
    if not (math.isfinite(args.time_budget_s) and 0.0 < args.time_budget_s <= 3600.0):
        raise InputError(f"--time-budget-s must be 0-3600 s, got {args.time_budget_s:g}")
    options = AutoplanOptions(
        pd_gy=args.pd_gy,
        approach=parse_approach(args.approach),
        parallel=args.parallel,
        bone=args.bone,
        no_pass=tuple(args.no_pass),
        keep_needles=args.keep_needles or args.seeds_only,
        seeds_only=args.seeds_only,
        needle_spacing_mm=args.needle_spacing_mm,
        seed_spacing_mm=args.seed_spacing_mm,
        max_needles=args.max_needles,
        cord_limit_gy=args.cord_limit_gy,
        method=args.method,
        robust=args.robust,
        v100_bound=args.v100_bound,
        time_budget_s=args.time_budget_s,
    )
    plan, ct, ct_path = load_plan_and_ct(plan_path, args.ct)
    res = autoplan(plan, ct, options=options)
    plan_out = ct_reference_at(res.plan, out, ct_path)  # out may lie in another folder
    save_plan(plan_out, out, force=args.force, inputs=(plan_path, ct_path))
    summary = {"plan": str(out), **res.summary()}
    if args.json:
        sys.stdout.write(json.dumps(summary, default=float) + "\n")
    else:
        w = sys.stdout.write
        w(
            f"automatic plan: {summary['needles']} needles, {summary['seeds']} seeds, "
            f"{summary['total_strength_U']:.2f} U at implant, {res.seconds:.1f} s -> {out}\n"
        )
        if res.budget_cut:
            w(f"  the time budget ({args.time_budget_s:g} s) cut the search short\n")
        for name, m in summary["metrics"].items():  # type: ignore[union-attr]
            w(
                f"  {name}: "
                + ", ".join(
                    f"{k} {_fmt(v, 'Gy' if k.endswith('_gy') else '%')}" for k, v in m.items()
                )
                + "\n"
            )
        for g in summary["goals"]:  # type: ignore[union-attr]
            w(f"  goal {g['label']}: {g['status']} ({_fmt(g['value'], g['unit'])})\n")
        rej = ", ".join(f"{k} {v}" for k, v in summary["rejected"].items() if v) or "none"  # type: ignore[union-attr]
        w(f"  candidates: {summary['candidates']} kept; rejected: {rej}\n")
        vb = summary.get("v100_bound")
        if isinstance(vb, dict):
            w(
                f"  V100 upper bound: {vb['v100_max_percent']:.1f} % "
                f"(cord D0.1cm³ ≤ {vb['cord_limit_gy']:g} Gy; the most any plan can reach)\n"
            )
        rob = summary.get("robustness")
        if isinstance(rob, dict):
            for key, pc in rob["percentiles"].items():
                w(f"  robust {key}: median {pc['median']}, 5th {pc['p5']}, 95th {pc['p95']}\n")
    if not res.feasible:
        sys.stderr.write("seedplan autoplan: goals not met: " + "; ".join(res.failed_goals) + "\n")
    for n in res.notes:
        sys.stderr.write(f"seedplan autoplan: {n}\n")
    return 0
