"""``seedplan demo --out DIR [--gui]``: write the synthetic demo case.

DIR receives ``case.json``, the DICOM CT series in ``ct/`` and the ground-truth masks in
``masks/`` (see :mod:`planner.demo.case`). DIR must be new, empty, or a previous demo case (which is
replaced); anything else is refused with exit status 2 so no user data is ever overwritten.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dose.errors import InputError

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
        help="output folder: new, empty, or a previous demo case (replaced)",
    )
    p.add_argument("--gui", action="store_true", help="open the case in the viewer afterwards")
    p.set_defaults(run=run)
    return p


def _check_target(out: Path) -> None:
    from planner.demo.case import foreign_entries, is_demo_case

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", out)
    if not out.is_dir():
        return
    foreign = foreign_entries(out)
    if foreign and not is_demo_case(out):
        raise InputError(
            "folder is not empty and is not a SeedPlan demo case; choose a new or empty folder",
            out,
        )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise InputError(
            f"folder holds a demo case and other files ({shown}) that replacing it would "
            "delete; choose a new or empty folder",
            out,
        )


def run(args: argparse.Namespace) -> int:
    from planner.demo.case import DEMO_MASK_NAMES, write_demo_case_atomically

    out: Path = args.out
    _check_target(out)
    interactive = sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if interactive:
            sys.stderr.write(f"\r{100 * fraction:5.1f} % {message[:60]:<60}")
            sys.stderr.flush()

    t0 = time.perf_counter()
    try:
        case_dir = write_demo_case_atomically(out, progress=progress)
    except PermissionError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", out) from None
    if interactive:
        sys.stderr.write("\n")
    n_ct = len(list((case_dir / "ct").glob("*.dcm")))
    print(
        f"wrote demo case to {case_dir} ({n_ct} CT slices, masks: {', '.join(DEMO_MASK_NAMES)}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if args.gui:
        try:
            from app.commands import gui_cmd
        except ImportError:
            sys.stderr.write("seedplan demo: the viewer is not available in this installation\n")
            return 2
        return int(gui_cmd.open_gui(case_dir) or 0)
    return 0
