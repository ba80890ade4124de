"""``seedplan plan new``: a new plan file from a CT, an RTSTRUCT and/or mask images.

::

    seedplan plan new --ct CT_PATH [--rtstruct RS.dcm] [--mask NAME=FILE ...]
                      [--role NAME=target|oar|other ...] [--pd-gy PD] [--model M]
                      [--strength-U X | --activity-mCi X]
                      [--calibration-date YYYY-MM-DD --implant-date YYYY-MM-DD]
                      --out PLAN.seedplan [--force]

Structures become labelmaps on the CT grid (see :mod:`planner.plan.new_plan`); roles default
from the names (GTV/CTV/PTV → target, cord/canal → organ at risk). An existing ``--out`` is
refused without ``--force``; with it, it is replaced atomically (and verified by re-reading).
Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from dose.errors import InputError

__all__ = ["add_parser", "run"]


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date (YYYY-MM-DD): {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "plan",
        help="create plan files (plan new)",
        description="Plan files (.seedplan).",
    )
    sub = p.add_subparsers(dest="plan_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(run=_no_action, plan_parser=p)
    n = sub.add_parser(
        "new",
        help="a new plan from a CT, an RTSTRUCT and/or masks",
        description="Create a plan file from a CT (DICOM folder or image file), structures from "
        "an RTSTRUCT (contours rasterised on the CT grid) and/or mask images on the CT grid, "
        "and optionally a prescription and a seed source.",
    )
    n.add_argument(
        "--ct",
        required=True,
        type=Path,
        metavar="CT_PATH",
        help="DICOM folder/file or .nii/.nii.gz/.mha/.nrrd CT",
    )
    n.add_argument(
        "--series",
        metavar="UID",
        default=None,
        help="SeriesInstanceUID to use (default: the largest CT series)",
    )
    n.add_argument(
        "--rtstruct", type=Path, metavar="RS.dcm", help="RTSTRUCT whose contours become structures"
    )
    n.add_argument(
        "--mask",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a structure from a mask image on the CT grid (nonzero = inside)",
    )
    n.add_argument(
        "--role",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=ROLE",
        help="target, oar or other (default from the name: GTV/CTV/PTV → target, cord/canal → oar)",
    )
    n.add_argument(
        "--pd-gy",
        dest="pd_gy",
        type=float,
        metavar="PD",
        help="prescription dose (Gy, total D∞) as D90 of the target",
    )
    n.add_argument("--model", help="seed model (e.g. 6711)")
    s = n.add_mutually_exclusive_group()
    s.add_argument(
        "--strength-U",
        dest="strength_u",
        type=float,
        metavar="X",
        help="air-kerma strength per seed S_K (U) at calibration",
    )
    s.add_argument(
        "--activity-mCi",
        dest="activity_mci",
        type=float,
        metavar="X",
        help="apparent activity per seed (mCi; 1.270 U/mCi)",
    )
    n.add_argument("--calibration-date", type=_iso_date, help="strength calibration date")
    n.add_argument("--implant-date", type=_iso_date, help="implant date")
    n.add_argument("--name", default="", help="a name for the plan")
    n.add_argument(
        "--out", required=True, type=Path, metavar="PLAN", help="plan file to write (.seedplan)"
    )
    n.add_argument("--force", action="store_true", help="replace an existing --out")
    n.set_defaults(run=run)
    return p


def _no_action(args: argparse.Namespace) -> int:
    args.plan_parser.print_usage(sys.stderr)
    sys.stderr.write("seedplan plan: give an action (new)\n")
    return 2


def run(args: argparse.Namespace) -> int:
    from planner.files.safe_write import check_output
    from planner.imaging.ct_loader import load_ct
    from planner.plan.new_plan import new_plan
    from planner.plan.plan_file import PLAN_SUFFIX, save_plan

    out: Path = args.out
    if out.suffix.lower() != PLAN_SUFFIX:
        raise InputError(f"a plan file name must end in {PLAN_SUFFIX}", out)
    inputs = (args.ct, args.rtstruct, *(f for _n, f in args.mask))
    check_output(out, inputs=inputs, force=args.force)  # fail before the long work
    if (args.calibration_date is None) != (args.implant_date is None):
        raise InputError("give both --calibration-date and --implant-date, or neither")
    if not args.rtstruct and not args.mask:
        sys.stderr.write("seedplan plan new: no --rtstruct or --mask: the plan has no structures\n")
    ct, report = load_ct(args.ct, series_uid=args.series)
    for w in report.warnings:
        sys.stderr.write(f"seedplan plan new: CT: {w}\n")
    plan, notes = new_plan(
        ct,
        rtstruct=args.rtstruct,
        masks=args.mask,
        roles=dict(args.role),
        pd_gy=args.pd_gy,
        model=args.model,
        strength_u=args.strength_u,
        activity_mci=args.activity_mci,
        calibration_date=args.calibration_date,
        implant_date=args.implant_date,
        name=args.name,
    )
    for note in notes:
        sys.stderr.write(f"seedplan plan new: {note}\n")
    final = save_plan(plan, out, force=args.force, inputs=inputs)
    w = sys.stdout.write
    w(
        f"wrote {final}: plan of {plan.ct.patient_name!r} (id {plan.ct.patient_id!r}), "
        f"{len(plan.structures)} structure(s)\n"
    )
    for s in plan.structures:
        w(f"  {s.name:<20} {s.role:<7} {s.volume_cm3:10.3f} cm³\n")
    if plan.prescription is not None:
        rx = plan.prescription
        w(
            f"  prescription: {rx.metric} of {plan.structure(rx.structure_id).name} ≥ "
            f"{rx.dose_gy:g} Gy\n"
        )
    if plan.source is not None and plan.source.strength_u is not None:
        src = plan.source
        w(
            f"  source: {src.model_id}, {src.strength_u:.4g} U = {src.activity_mci:.4g} mCi per "
            "seed\n"
        )
    return 0
