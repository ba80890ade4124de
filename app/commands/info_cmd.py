"""``seedplan info PATH [--json] [--series UID]``: what is in a DICOM folder or image file.

For a DICOM folder/file: every series found (modality, description, size, spacing, orientation,
slices, memory), the chosen series' geometry after loading, and everything the loader found
(warnings, reasons it refuses the series, skipped files with reasons). For an image file
(.nii/.nii.gz/.mha/.mhd/.nrrd): its geometry.

Exit status (one contract with DESIGN.md, "Command line"): 0 when the CT can be loaded; 2 for
bad input, with one line on stderr naming the path and the problem. A series the loader refuses
is bad input: the report (with its problems) is still printed on stdout — with --json as the one
JSON object, ``"loaded": false`` — and the status is 2. Unusable input (missing path, empty
folder, no CT series, unknown --series UID, unreadable image file) prints nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from dose.geometry import GridGeometry
from planner.imaging.ct_loader import ImportReport, ImportResult, inspect_ct

HELP_EPILOG = """\
exit status:
  0  the CT can be loaded (warnings, e.g. resampling, are listed in the report)
  2  bad input, with one line on stderr naming the path and the problem:
     - the series is refused: the report is still printed on stdout ("NOT LOADED" and its
       problems; with --json the JSON object with "loaded": false)
     - unusable input (missing path, empty folder, no CT series, unknown --series,
       unreadable file): nothing on stdout
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "info",
        help="CT series / image summary, including geometry problems",
        description="List the series in a DICOM folder (or an image file's geometry), the chosen "
        "CT series' geometry and every problem the loader found.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "path",
        help="DICOM folder or file, .nii/.nii.gz/.mha/.mhd/.nrrd image, or a .seedplan plan",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--series",
        metavar="UID",
        default=None,
        help="SeriesInstanceUID to inspect (default: the largest CT series); a split series "
        "part is UID#N",
    )
    p.set_defaults(run=run)
    return p


def _geometry_dict(g: GridGeometry) -> dict:
    d = g.to_dict()
    lower, upper = g.bounds_world_mm()
    d["size_xyz"] = list(g.shape_xyz)
    d["bounds_lps_mm"] = [lower.tolist(), upper.tolist()]
    d["axis_aligned"] = g.is_axis_aligned
    return d


def _geometry_lines(g: GridGeometry) -> list[str]:
    lower, upper = g.bounds_world_mm()
    lines = [
        f"  size (x×y×z): {'×'.join(str(n) for n in g.shape_xyz)} voxels",
        f"  spacing (x, y, z): {', '.join(f'{v:.4g}' for v in g.spacing_mm)} mm",
        f"  origin (LPS): ({', '.join(f'{v:.3f}' for v in g.origin_mm)}) mm",
        f"  extent (LPS): ({', '.join(f'{v:.1f}' for v in lower)}) … "
        f"({', '.join(f'{v:.1f}' for v in upper)}) mm",
    ]
    if g.is_axis_aligned:
        lines.append("  direction: identity (axial)")
    else:
        for name, col in zip("ijk", g.direction.T, strict=True):
            lines.append(
                f"  direction {name}: ({', '.join(f'{round(v, 4) + 0.0:+.4f}' for v in col)})"
            )
    return lines


def run(args: argparse.Namespace) -> int:
    from app.commands.plan_info import is_plan_file, run_plan_info

    if is_plan_file(args.path):
        return run_plan_info(args.path, as_json=args.json)
    result: ImportResult = inspect_ct(args.path, series_uid=args.series)
    report = result.report
    volume = result.volume
    if args.json:
        out: dict = {
            "path": str(args.path),
            "kind": "dicom" if result.scan is not None else "image",
            "loaded": report.ok,
            "series": [s.to_dict() for s in result.scan.series] if result.scan else [],
            "chosen_series": result.series.key if result.series else None,
            "geometry": _geometry_dict(report.geometry) if report.geometry else None,
            "report": report.to_dict(),
        }
        if volume is not None:
            hu = volume.hu
            out["hu"] = {
                "dtype": str(hu.dtype),
                "min": float(np.min(hu)),
                "max": float(np.max(hu)),
            }
            out["patient"] = {
                "name": volume.info.patient_name,
                "id": volume.info.patient_id,
                "study_date": volume.info.study_date,
                "frame_of_reference_uid": volume.info.frame_of_reference_uid,
            }
        json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return _status(report)

    w = sys.stdout.write
    if result.scan is not None:
        w(
            f"{args.path}: {len(result.scan.series)} series, {len(result.scan.skipped)} file(s) "
            "skipped\n"
        )
        for s in result.scan.series:
            mark = "*" if result.series is not None and s.key == result.series.key else " "
            w(f" {mark} {s.summary()}\n")
        if result.series is not None:
            s = result.series
            w(
                f"Chosen: {s.key}\n  patient {s.patient_name!r} id {s.patient_id!r}, study date "
                f"{s.study_date or 'unknown'}\n"
            )
    else:
        w(f"{args.path}: image file\n")
    if report.geometry is not None:
        w("Geometry (as loaded):\n")
        for line in _geometry_lines(report.geometry):
            w(line + "\n")
    if volume is not None:
        w(
            f"HU: {volume.hu.dtype}, {float(np.min(volume.hu)):.0f} … "
            f"{float(np.max(volume.hu)):.0f}\n"
        )
    w(
        f"Files read: {len(report.files_read)}; estimated memory "
        f"{report.estimated_memory_bytes / 2**20:.1f} MiB\n"
    )
    if report.skipped:
        w(f"Skipped ({len(report.skipped)}):\n")
        for k in report.skipped:
            w(f"  {k.path}: {k.reason}\n")
    if report.warnings:
        w(f"Warnings ({len(report.warnings)}):\n")
        for msg in report.warnings:
            w(f"  - {msg}\n")
    if report.problems:
        w(f"NOT LOADED ({len(report.problems)} problem(s)):\n")
        for msg in report.problems:
            w(f"  - {msg}\n")
    else:
        w("Loadable: yes\n")
    return _status(report)


def _status(report: ImportReport) -> int:
    """0 when loadable; a refused series raises its one-line error (exit 2, stdout kept)."""
    if report.ok:
        return 0
    sys.stdout.flush()  # the report first, then the one line on stderr
    raise report.refusal()
