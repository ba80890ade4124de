"""``seedplan demo --out DIR [--gui] [--force]``: write the synthetic demo case.

DIR receives ``case.json``, the DICOM CT series in ``ct/`` and the ground-truth masks in
``masks/`` (see :mod:`planner.demo.case`). The output rule (as for every writer,
:mod:`planner.files.safe_write`): DIR is new (its parent folder must exist), empty, or - with
``--force`` - a previous demo case, which is replaced atomically; anything else (a file, a device,
a folder with other files, a missing parent) is refused with exit status 2, so no user data is
ever overwritten. A failed write (full disk, read-only folder) leaves DIR as it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo",
        help="write the synthetic demo case (CT + ground-truth masks)",
        description="Write the deterministic synthetic thoracic-spine demo case: a DICOM CT "
        "series (ct/), ground-truth masks (masks/*.nrrd: GTV, SpinalCord, SpinalCanal, "
        "VertebralBody) and case.json.",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder: new (in an existing folder), empty, or with --force a previous "
        "demo case (replaced)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace a previous demo case in DIR (nothing else)"
    )
    p.add_argument("--gui", action="store_true", help="open the case in the viewer afterwards")
    p.add_argument(
        "--cohort",
        type=int,
        default=None,
        metavar="N",
        help="write N synthetic cohort cases (plans + post-op CTs, for seedplan cohort) instead",
    )
    p.set_defaults(run=run)
    return p


def run_cohort(args: argparse.Namespace) -> int:
    """``--cohort N``: N synthetic cases (:mod:`planner.demo.cohort`)."""
    from dose.errors import InputError
    from planner.demo.cohort import write_cohort

    if args.cohort < 1:
        raise InputError(f"--cohort needs at least 1 case (got {args.cohort})")
    if args.gui:
        raise InputError("--gui cannot be used with --cohort")
    interactive = sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if interactive:
            sys.stderr.write(f"\r{100 * fraction:5.1f} % {message[:60]:<60}")
            sys.stderr.flush()

    t0 = time.perf_counter()
    try:
        paths = write_cohort(args.cohort, args.out, force=args.force, progress=progress)
    finally:
        if interactive:
            sys.stderr.write("\n")
    print(f"wrote {len(paths)} cohort cases to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _export_demo_plan(case_dir: Path) -> str:
    """The demo plan's exports (PDF, CSV, DICOM RT) into ``case_dir/exports``; a summary."""
    from planner.demo.case import DEMO_EXPORTS_SUBDIR
    from planner.export.export import export_plan
    from planner.imaging.ct_loader import load_ct
    from planner.plan.plan_file import load_plan

    plan_path = case_dir / "plan.seedplan"
    if not plan_path.is_file():
        return ""
    plan = load_plan(plan_path).plan
    ct, _ = load_ct(case_dir / "ct")
    summary = export_plan(plan, ct, case_dir / DEMO_EXPORTS_SUBDIR, ct_path=case_dir / "ct")
    return f"{len(summary.files)} files"


def run(args: argparse.Namespace) -> int:
    if getattr(args, "cohort", None) is not None:
        return run_cohort(args)
    from planner.demo.case import (
        DEMO_EXPORTS_SUBDIR,
        DEMO_MASK_NAMES,
        check_demo_target,
        write_demo_case_atomically,
    )

    out: Path = args.out
    check_demo_target(out, force=args.force)  # fail fast, before minutes of generation
    interactive = sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if interactive:
            sys.stderr.write(f"\r{100 * fraction:5.1f} % {message[:60]:<60}")
            sys.stderr.flush()

    t0 = time.perf_counter()
    try:
        case_dir = write_demo_case_atomically(out, progress=progress, force=args.force)
    finally:
        if interactive:
            sys.stderr.write("\n")  # end the progress line (before an error line, too)
    n_ct = len(list((case_dir / "ct").glob("*.dcm")))
    print(
        f"wrote demo case to {case_dir} ({n_ct} CT slices, masks: {', '.join(DEMO_MASK_NAMES)}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    exported = _export_demo_plan(case_dir)
    if exported:
        print(f"wrote the demo plan's exports to {case_dir / DEMO_EXPORTS_SUBDIR} ({exported})")
    if args.gui:
        try:
            from app.commands import gui_cmd
        except ImportError:
            sys.stderr.write("seedplan demo: the viewer is not available in this installation\n")
            return 2
        return int(gui_cmd.open_gui(case_dir) or 0)
    return 0
