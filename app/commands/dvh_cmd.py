"""``seedplan dvh --rtstruct RS.dcm --rtdose RD.dcm [--json]``: DVH numbers per structure.

For every contoured ROI of the RTSTRUCT (point ROIs are skipped): volume (cm³), Dmin, Dmax,
Dmean, D99, D95, D90, D5, D1 and D0.03cm³ (Gy). ``--json`` prints one JSON object keyed by
structure name with exactly the keys of DESIGN.md; otherwise a table with units.
Method: contours rasterised on a fine grid with ½-slice end caps and dose interpolated trilinearly
(:mod:`planner.dicom.rtstruct`, :mod:`dose.dvh`). ``seedplan dvh PLAN`` is not available yet.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from dose.errors import InputError

#: Table columns: key of DVH.summary() (the JSON keys fixed by DESIGN.md) → header.
COLUMNS = {
    "volume_cm3": "Volume cm³",
    "dmin_gy": "Dmin Gy",
    "dmax_gy": "Dmax Gy",
    "dmean_gy": "Dmean Gy",
    "d99_gy": "D99 Gy",
    "d95_gy": "D95 Gy",
    "d90_gy": "D90 Gy",
    "d5_gy": "D5 Gy",
    "d1_gy": "D1 Gy",
    "d0_03cc_gy": "D0.03cm³ Gy",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dvh",
        help="DVH numbers per structure from an RTSTRUCT and an RTDOSE",
        description=(
            "Per structure: volume (cm³), Dmin, Dmax, Dmean, D99, D95, D90, D5, D1, D0.03cm³ (Gy)."
            " Contours are rasterised on a fine grid with ½-slice end caps; dose is interpolated"
            " trilinearly."
        ),
    )
    p.add_argument("plan", nargs="?", help="a SeedPlan plan file (not supported yet)")
    p.add_argument("--rtstruct", metavar="RS.dcm", help="DICOM RT Structure Set")
    p.add_argument("--rtdose", metavar="RD.dcm", help="DICOM RT Dose (DoseUnits GY)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    return p


def _typical_plane_spacing(rois: list) -> float | None:
    diffs = []
    for roi in rois:
        zs = np.unique(np.round([float(np.mean(c[:, 2])) for c in roi.contours], 2))
        if zs.size > 1:
            diffs.append(np.diff(zs))
    return float(np.median(np.concatenate(diffs))) if diffs else None


def compute_rt_dvhs(rtstruct_path: str, rtdose_path: str) -> tuple[dict[str, dict], list[str]]:
    """DVH summaries keyed by ROI name, and warnings for the user."""
    from planner.dicom.rtdose import read_rtdose
    from planner.dicom.rtstruct import read_rtstruct
    from planner.structures.rasterise import rasterise_roi, roi_dvh

    structures = read_rtstruct(rtstruct_path)
    rd = read_rtdose(rtdose_path)
    warnings: list[str] = []
    if (
        structures.frame_of_reference_uid
        and rd.frame_of_reference_uid
        and structures.frame_of_reference_uid != rd.frame_of_reference_uid
    ):
        raise InputError(
            "RTSTRUCT and RTDOSE have different FrameOfReferenceUIDs "
            f"({structures.frame_of_reference_uid} vs {rd.frame_of_reference_uid})",
            rtdose_path,
        )
    rois = structures.contoured()
    for roi in structures.rois:
        if not roi.contours and not roi.is_point_roi:
            warnings.append(f"ROI {roi.name!r} has no closed contours; skipped")
    if not rois:
        raise InputError("no ROI with closed planar contours", rtstruct_path)
    thickness = _typical_plane_spacing(rois) or float(rd.geometry.spacing_mm[2])
    out: dict[str, dict] = {}
    for roi in rois:
        raster = rasterise_roi(roi, slice_thickness_mm=thickness)
        dvh = roi_dvh(raster, rd.dose_gy, rd.geometry)
        name = roi.name if roi.name not in out else f"{roi.name} (ROI {roi.number})"
        out[name] = {k: float(v) for k, v in dvh.summary().items()}
        if dvh.outside_dose_grid_cm3 > 0.0005:
            warnings.append(
                f"{name}: {dvh.outside_dose_grid_cm3:.3f} cm³ lies outside the dose grid"
                " (counted at 0 Gy)"
            )
    return out, warnings


def _table(results: dict[str, dict]) -> str:
    width = max([len("Structure")] + [len(n) for n in results])
    head = f"{'Structure':<{width}}  " + "  ".join(f"{h:>11}" for h in COLUMNS.values())
    lines = [head, "-" * len(head)]
    for name, vals in results.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{vals[k]:>11.3f}" for k in COLUMNS))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.plan is not None:
        raise InputError(
            "plan files are not supported by 'seedplan dvh' yet; use --rtstruct RS.dcm"
            " --rtdose RD.dcm",
            args.plan,
        )
    if not args.rtstruct or not args.rtdose:
        raise InputError("both --rtstruct RS.dcm and --rtdose RD.dcm are required")
    results, warnings = compute_rt_dvhs(args.rtstruct, args.rtdose)
    for w in warnings:
        sys.stderr.write(f"seedplan dvh: warning: {w}\n")
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        sys.stdout.write(
            "DVH (contours on a fine grid, ½-slice end caps; dose trilinear; doses in Gy)\n"
        )
        sys.stdout.write(_table(results) + "\n")
    return 0
