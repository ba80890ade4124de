"""``seedplan detect CT_PATH --out SEEDS.csv [--expected N] [--force]``: seeds on a post-op CT.

Writes the detected seeds (DESIGN.md: ``x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence``, LPS mm,
with ``#`` lines stating the CT, the threshold and the count check) and prints one summary line
on stderr: count, clusters split, non-seed metal excluded, and the count against ``--expected``.
A disagreement with ``--expected`` is reported (exit 0: the CSV holds what was found); bad
input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import io
import sys

from dose.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "detect",
        help="find the implanted seeds on a post-op CT",
        description="Find the seeds on a post-implant CT (centres and axes in LPS mm; clusters "
        "split; screws, rods and cement excluded) and write them as CSV.",
    )
    p.add_argument("ct", metavar="CT_PATH", help="post-op CT: DICOM folder/file or image file")
    p.add_argument("--out", required=True, metavar="SEEDS.csv", help="detected seeds CSV")
    p.add_argument(
        "--expected", type=int, default=None, metavar="N", help="number of seeds implanted"
    )
    p.add_argument("--series", metavar="UID", default=None, help="SeriesInstanceUID to use")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(run=run)
    return p


def _csv_text(result, ct_path: str) -> str:
    buf = io.StringIO()
    buf.write(f"# seeds detected by seedplan detect on {ct_path}\n")
    buf.write(f"# {result.summary()}\n")
    for m in result.metal:
        x, y, z = m.centre_mm
        buf.write(f"# excluded metal at ({x:.1f}, {y:.1f}, {z:.1f}) mm: {m.reason}\n")
    buf.write("x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence\n")
    for s in result.seeds:
        x, y, z = s.position_mm
        a, b, c = s.axis
        buf.write(f"{x:.3f},{y:.3f},{z:.3f},{a:.5f},{b:.5f},{c:.5f},{s.confidence:.3f}\n")
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    from planner.files.safe_write import check_output, write_text
    from planner.imaging.ct_loader import load_ct
    from planner.postop.detect import detect_seeds

    if args.expected is not None and args.expected < 0:
        raise InputError(f"--expected must be ≥ 0, got {args.expected}")
    check_output(args.out, inputs=(args.ct,), force=args.force)
    ct, _report = load_ct(args.ct, series_uid=args.series)
    result = detect_seeds(ct, expected=args.expected)
    write_text(args.out, _csv_text(result, str(args.ct)), inputs=(args.ct,), force=args.force)
    sys.stderr.write(f"seedplan detect: {result.summary()}\n")
    for line in result.messages:
        sys.stderr.write(f"seedplan detect: {line}\n")
    return 0
