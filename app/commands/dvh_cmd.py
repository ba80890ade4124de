"""``seedplan dvh --rtstruct RS.dcm --rtdose RD.dcm [--json]``: DVH numbers per structure.

For every contoured ROI of the RTSTRUCT (point ROIs are skipped): volume (cm³), Dmin, Dmax,
Dmean, D99, D95, D90, D5, D1 and D0.03cm³ (Gy). ``--json`` prints one JSON object keyed by
structure name with exactly the keys of DESIGN.md; otherwise a table with units.
Method: contours rasterised on a fine grid with ½-slice end caps and dose interpolated trilinearly
(:mod:`planner.structures.rasterise`, :mod:`dose.dvh`).

``seedplan dvh PLAN [--json]``: the plan's exact dose on its 1 mm grid and the DVH of every
structure by the plan's one volume rule (:func:`planner.plan.dosimetry.compute_plan_dosimetry`);
``--json`` holds the same per-structure keys plus ``"metrics"``: prescription, formalism, model
and table checksum, dose grid, targets (D90, D100, V100, V150, V200, CI, EI, HI, BED …), organs
at risk (Dmax, D0.1cm³, D1cm³, minimum seed distance, BED …), every goal with its value and
pass/warn/fail, and warnings.
"""

from __future__ import annotations

import argparse
import json
import sys

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
    p.add_argument(
        "plan", nargs="?", help="a SeedPlan plan file (its dose, DVHs, metrics and goals)"
    )
    p.add_argument("--rtstruct", metavar="RS.dcm", help="DICOM RT Structure Set")
    p.add_argument("--rtdose", metavar="RD.dcm", help="DICOM RT Dose (DoseUnits GY)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    return p


def _check_frames(structures, rd, rtstruct_path: str, rtdose_path: str) -> list[str]:
    """Every ROI must be in the dose's frame of reference; returns warnings."""
    dose_frame = rd.frame_of_reference_uid.strip()
    if not dose_frame:
        raise InputError(
            "RTDOSE has no FrameOfReferenceUID; cannot check that the structures are in its frame",
            rtdose_path,
        )
    declared = structures.frame_of_reference_uids
    warnings = []
    for roi in structures.contoured():
        frame = roi.frame_of_reference_uid
        if not frame:
            if len(declared) != 1:
                raise InputError(
                    f"ROI {roi.name!r} has no ReferencedFrameOfReferenceUID and the structure set"
                    f" declares {len(declared)} frames; cannot tell which frame it is in",
                    rtstruct_path,
                )
            frame = declared[0]
            warnings.append(
                f"ROI {roi.name!r} has no ReferencedFrameOfReferenceUID; using the structure"
                f" set's only frame {frame}"
            )
        if frame != dose_frame:
            raise InputError(
                f"ROI {roi.name!r} is in frame of reference {frame}, the RTDOSE in {dose_frame}",
                rtstruct_path,
            )
    return warnings


def compute_rt_dvhs(rtstruct_path: str, rtdose_path: str) -> tuple[dict[str, dict], list[str]]:
    """DVH summaries keyed by ROI name, and warnings for the user (each names its structure).

    Skipped with a warning: ROIs without closed contours, contoured on a single plane (unknown
    thickness) or entirely outside the dose grid (their numbers would be zeros)."""
    from planner.dicom.rtdose import read_rtdose
    from planner.dicom.rtstruct import read_rtstruct
    from planner.structures.rasterise import rasterise_roi, roi_dvh

    structures = read_rtstruct(rtstruct_path)
    rd = read_rtdose(rtdose_path)
    warnings: list[str] = list(structures.warnings)
    warnings += _check_frames(structures, rd, rtstruct_path, rtdose_path)
    for roi in structures.rois:
        if not roi.contours and not roi.is_point_roi:
            warnings.append(f"ROI {roi.name!r} has no closed contours; skipped")
    out: dict[str, dict] = {}
    for roi in structures.contoured():
        planes = roi.plane_z_mm
        if planes.size < 2:
            warnings.append(
                f"ROI {roi.name!r} is contoured on a single plane (z = {planes[0]:g} mm): its"
                " thickness, hence its volume, is unknown; skipped"
            )
            continue
        raster = rasterise_roi(roi)
        dvh = roi_dvh(raster, rd.dose_gy, rd.geometry)
        name = roi.name if roi.name not in out else f"{roi.name} (ROI {roi.number})"
        outside = dvh.outside_dose_grid_cm3
        if outside >= dvh.volume_cm3 * (1.0 - 1e-9):
            warnings.append(
                f"ROI {roi.name!r} lies entirely outside the dose grid; skipped (no dose to report)"
            )
            continue
        out[name] = {k: float(v) for k, v in dvh.summary().items()}
        if outside > 0.0005:
            warnings.append(
                f"{name}: {outside:.3f} cm³ of {dvh.volume_cm3:.3f} cm³ lies outside the dose grid"
                " (counted at 0 Gy)"
            )
    if not out:
        raise InputError(
            "no ROI with closed planar contours on two or more planes inside the dose grid",
            rtstruct_path,
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
        return _run_plan(args)
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


def _run_plan(args: argparse.Namespace) -> int:
    """``seedplan dvh PLAN [--json]``."""
    from planner.plan.dosimetry import compute_plan_dosimetry
    from planner.plan.plan_ct import find_plan_ct
    from planner.plan.plan_file import load_plan

    if args.rtstruct or args.rtdose:
        raise InputError("give a plan file or --rtstruct/--rtdose, not both", args.plan)
    loaded = load_plan(args.plan)
    ct, _note = find_plan_ct(loaded.plan, loaded.path)
    try:
        d = compute_plan_dosimetry(loaded.plan, ct)
    except InputError as exc:
        raise InputError(exc.problem, args.plan) from None
    for w in d.warnings:
        sys.stderr.write(f"seedplan dvh: warning: {w}\n")
    results: dict[str, object] = {
        name: {k: float(v) for k, v in dvh.summary().items()} for name, dvh in d.dvhs.items()
    }
    if args.json:
        if "metrics" in results:
            raise InputError(
                "a structure is called 'metrics', the key --json keeps for the plan metrics; "
                "rename it",
                args.plan,
            )
        results["metrics"] = d.metrics_dict()
        sys.stdout.write(
            json.dumps(_finite(results), indent=2, allow_nan=False, default=_json_default)
        )
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(f"DVH of {args.plan} ({d.label}; one volume rule; doses in Gy)\n")
    sys.stdout.write(_table({k: v for k, v in results.items() if isinstance(v, dict)}) + "\n")
    if d.goal_results:
        sys.stdout.write("Goals:\n")
        for g in d.goal_results:
            value = "n/a" if g.value != g.value else f"{g.value:.2f}"
            unit = {"cm3": "cm³"}.get(g.goal.unit, g.goal.unit)
            note = f" ({g.note})" if g.note else ""
            sys.stdout.write(f"  {g.status.upper():4s}  {g.label}: {value} {unit}{note}\n")
    return 0


def _finite(value: object) -> object:
    """NaN/inf → None, recursively (valid JSON)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: object) -> object:
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)
