"""``seedplan robustness PLAN [--samples N] [--json]``: the plan under needle placement errors.

Samples needle errors (entry 3.4 ± 1.7 mm, angle 2.8 ± 1.7° with its lever capped at 55 mm so
the lateral tip error is the measured 4.4 mm, depth 5.2 ± 4.8 mm, seeds moving with their
needle plus a 1 mm per-seed jitter; :mod:`planner.optimise.robustness`) and prints target D90,
V100 and cord D0.1cm³ as median and 5th/95th percentiles over N samples (default 100), beside
the nominal values; the JSON also holds the DVH percentile bands per target and the cord.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "robustness",
        help="evaluate a plan under needle placement errors",
        description="D90, V100 and cord D0.1cm³ under sampled needle errors: median and "
        "5th/95th percentiles.",
    )
    p.add_argument("plan", metavar="PLAN", help="the plan (.seedplan)")
    p.add_argument("--samples", type=int, default=100, metavar="N", help="samples (default 100)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    # The defaults are NeedleErrorModel's (the measured errors), filled in by run().
    measured = 'default: the measured error model (the JSON\'s "model" shows it)'
    for flag in ("--entry-mm", "--angle-deg", "--depth-mm"):
        p.add_argument(flag, type=float, nargs=2, metavar=("MEAN", "SD"), help=measured)
    p.add_argument("--seed-jitter-mm", type=float, metavar="SD", help=measured)
    p.add_argument(
        "--max-lever-mm",
        type=float,
        metavar="MM",
        help="the angle error moves the tip as on a needle at most this long (CT-checked "
        f"tips; 0: no cap; {measured})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dose.errors import InputError
    from planner.optimise.robustness import NeedleErrorModel, robustness
    from planner.plan.plan_file import load_plan

    default = NeedleErrorModel()
    for name in ("entry_mm", "angle_deg", "depth_mm", "seed_jitter_mm", "max_lever_mm"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(default, name))
    for name in ("entry_mm", "angle_deg", "depth_mm"):
        mean, sd = getattr(args, name)
        if not (mean >= 0 and sd >= 0):
            raise InputError(f"--{name.replace('_', '-')}: mean and SD must be ≥ 0")
    if not args.seed_jitter_mm >= 0:
        raise InputError("--seed-jitter-mm must be ≥ 0")
    if not args.max_lever_mm >= 0:
        raise InputError("--max-lever-mm must be ≥ 0")
    plan = load_plan(Path(args.plan)).plan
    model = NeedleErrorModel(
        tuple(args.entry_mm),
        tuple(args.angle_deg),
        tuple(args.depth_mm),
        args.seed_jitter_mm,
        args.max_lever_mm,
    )
    r = robustness(plan, samples=args.samples, model=model, rng_seed=args.seed)
    doc = {"plan": str(args.plan), **r.to_dict()}
    if args.json:
        sys.stdout.write(json.dumps(doc, default=float) + "\n")
        return 0
    w = sys.stdout.write
    w(f"robustness of {args.plan}: {args.samples} samples, {r.seconds:.1f} s\n")
    units = {"d90_gy": "Gy", "v100_percent": "%", "cord_d0_1cc_gy": "Gy"}
    for key, pc in r.percentiles().items():
        nom = r.nominal.get(key)
        u = units[key]
        w(
            f"  {key}: nominal {nom:.1f} {u}; median {pc['median']:.1f} {u}, "
            f"5th {pc['p5']:.1f} {u}, 95th {pc['p95']:.1f} {u}\n"
        )
    tip = doc["tip_error_mm"]
    w(f"  sampled lateral tip error {tip['mean']:.1f} ± {tip['sd']:.1f} mm\n")  # type: ignore[index]
    return 0
