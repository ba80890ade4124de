"""``seedplan export PLAN --out DIR [--pdf] [--csv] [--rtstruct] [--rtplan] [--rtdose] [--all]
[--force] [--ct CT_PATH]``: the plan's summary PDF, loading sheet, CSVs and DICOM RT.

No kind flag means ``--all``. The CT is the plan's recorded CT path unless ``--ct`` is given; it
must be the plan's CT (patient, frame of reference, grid). Prints one line per written file on
stdout (kind, path, size). A file in DIR that a SeedPlan export did not write is never replaced
without ``--force``. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys

from dose.errors import InputError

KINDS = ("pdf", "csv", "rtstruct", "rtplan", "rtdose")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write the plan summary PDF, loading sheet, CSVs and DICOM RT",
        description="Export a plan: plan summary and needle loading sheet (PDF), seeds, "
        "needles and loading sheet (CSV), metrics (JSON), and DICOM RTSTRUCT, RT Plan (brachy) "
        "and RTDOSE sharing the CT's study and frame of reference. No kind flag: all of them.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan file (.seedplan)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if absent)")
    for kind, what in (
        ("pdf", "plan_summary.pdf and loading_sheet.pdf"),
        ("csv", "seeds.csv, needles.csv, loading_sheet.csv, metrics.json"),
        ("rtstruct", "RTSTRUCT.dcm"),
        ("rtplan", "RTPLAN.dcm (brachy)"),
        ("rtdose", "RTDOSE.dcm"),
    ):
        p.add_argument(f"--{kind}", action="store_true", help=what)
    p.add_argument("--all", action="store_true", help="every export (the default)")
    p.add_argument("--ct", metavar="CT_PATH", default=None, help="the plan's CT, if moved")
    p.add_argument(
        "--force", action="store_true", help="replace files SeedPlan did not write in DIR"
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from planner.export.export import export_plan
    from planner.imaging.ct_loader import load_ct
    from planner.plan.plan_file import load_plan

    kinds = [k for k in KINDS if getattr(args, k)]
    if args.all or not kinds:
        kinds = list(KINDS)
    plan = load_plan(args.plan).plan
    ct_path = args.ct or plan.ct.source_path
    if not ct_path:
        raise InputError("the plan records no CT path; give the CT with --ct", args.plan)
    from pathlib import Path

    if not args.ct and not Path(ct_path).is_absolute():
        ct_path = str(Path(args.plan).resolve().parent / ct_path)  # relative to the plan file
    series = plan.ct.series_instance_uid if Path(ct_path).is_dir() else None
    ct, _report = load_ct(ct_path, series_uid=series or None)
    for w in plan.check_ct(ct, where=ct_path):
        sys.stderr.write(f"seedplan export: warning: {w}\n")
    summary = export_plan(plan, ct, args.out, kinds=kinds, force=args.force, ct_path=ct_path)
    for w in summary.warnings:
        sys.stderr.write(f"seedplan export: warning: {w}\n")
    for line in summary.lines():
        sys.stdout.write(line + "\n")
    return 0
