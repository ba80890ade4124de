"""``seedplan info PLAN [--json]``: what a ``.seedplan`` file holds (called by info_cmd).

``--json`` prints one object: the file (format version, content hash), the CT reference,
structures (id, name, role, volume_cm3 …), prescription, source (U and mCi), needles (id,
label, entry_mm, tip_mm, length, insertion depth, angles to the axial/sagittal/coronal planes,
seeds, ``warnings``: one line each, and ``warning_details``), the loading summary (seeds per
needle, totals in U and mCi at calibration and implant), seeds, goals, status and revision,
and ``registration``: the post-op CT's registration stored by post-implant verification
(post-op series, frame and geometry checksum, the 4 × 4 LPS matrix post-op → planning,
method, metric value, time, whether it was corrected by hand), or null; ``verification``: the
post-implant verification the plan reports (``seedplan verify``'s copy: which plan and post-op
CT, when and by whom, formalism, seed counts, matching and the planned vs post-op comparison;
:class:`planner.plan.verification.VerificationRecord`), or null.
Needle warnings use the plan's CT when it is found (``planner.plan.plan_ct``; else the bone
and body checks are skipped and ``needle_checks`` says so). Volumes follow the plan's one
volume rule (voxel count × CT voxel volume, the volume its DVHs integrate).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from planner.imaging.volume import CTVolume
from planner.plan.plan_file import LoadedPlan, is_plan_file, load_plan

__all__ = ["is_plan_file", "plan_info_dict", "run_plan_info"]


def plan_info_dict(
    loaded: LoadedPlan, ct: CTVolume | None = None, ct_note: str = ""
) -> dict[str, Any]:
    """The ``info --json`` object of a loaded plan file; ``ct`` (the plan's CT, when found)
    lets the needle warnings include the bone and body checks."""
    from planner.plan.loading import loading_summary
    from planner.plan.needles import needle_table
    from planner.plan.schema import registration_to_doc

    plan = loaded.plan
    rows = {r.id: r for r in needle_table(plan, ct)}
    ct = plan.ct
    names = {s.id: s.name for s in plan.structures}
    rx = plan.prescription
    src = plan.source
    return {
        "path": str(loaded.path),
        "kind": "plan",
        "format_version": loaded.format_version,
        "file_format_version": loaded.read_version,
        "content_sha256": loaded.content_sha256,
        "saved_utc": loaded.saved_utc,
        "app_version": loaded.app_version,
        "plan_uid": plan.plan_uid,
        "name": plan.name,
        "status": plan.status,
        "revision": plan.revision,
        "created_utc": plan.created_utc,
        "approved_by": plan.approved_by,
        "approved_utc": plan.approved_utc,
        "previous_sha256": plan.previous_sha256,
        "ct": {
            "patient_id": ct.patient_id,
            "patient_name": ct.patient_name,
            "study_instance_uid": ct.study_instance_uid,
            "series_instance_uid": ct.series_instance_uid,
            "frame_of_reference_uid": ct.frame_of_reference_uid,
            "geometry": ct.geometry.to_dict(),
            "geometry_sha256": ct.geometry_sha256,
            "source_path": ct.source_path,
        },
        "structures": [
            {
                "id": s.id,
                "name": s.name,
                "role": s.role,
                "volume_cm3": s.volume_cm3,
                "voxel_count": s.voxel_count,
                "color_rgb": list(s.color_rgb),
                "origin": s.origin,
            }
            for s in plan.structures
        ],
        "prescription": None
        if rx is None
        else {
            "dose_gy": rx.dose_gy,
            "metric": rx.metric,
            "structure_id": rx.structure_id,
            "structure": names.get(rx.structure_id, ""),
        },
        "source": None
        if src is None
        else {
            "model": src.model_id,
            "model_sha256": src.model_sha256,
            "isotope": src.isotope,
            "strength_U": src.strength_u,
            "activity_mCi": src.activity_mci,
            "entered_as": src.entered_as,
            "calibration_date": None if src.calibration_date is None else str(src.calibration_date),
            "implant_date": None if src.implant_date is None else str(src.implant_date),
            "decay_factor": src.decay_factor,
            "strength_at_implant_U": src.strength_at_implant_u,
        },
        "needles": [rows[n.id].to_dict() for n in plan.needles],
        "needle_checks": ct_note
        or ("with the plan's CT" if ct is not None else "without the CT: no bone/body checks"),
        "loading": loading_summary(plan).to_dict(),
        "seeds": [
            {
                "id": s.id,
                "needle": s.needle_id,
                "position_mm": list(s.position_mm),
                "axis": list(s.axis),
                "strength_U": s.strength_u
                if s.strength_u is not None
                else (None if src is None else src.strength_u),
            }
            for s in plan.seeds
        ],
        "goals": [
            {
                "id": g.id,
                "structure": names.get(g.structure_id, ""),
                "structure_id": g.structure_id,
                "metric": g.metric,
                "comparison": g.comparison,
                "value": g.value,
                "unit": g.unit,
            }
            for g in plan.goals
        ],
        "registration": registration_to_doc(plan.registration),
        "verification": _verification(plan),
    }


def _verification(plan: Any) -> dict[str, Any] | None:
    """``info --json``'s summary of the plan's verification record (the DVH samples left out:
    ``seedplan export`` draws them)."""
    from planner.plan.schema import verification_to_doc

    doc = verification_to_doc(plan.verification)
    if doc is None:
        return None
    doc.pop("dvhs")
    doc["matching"] = plan.verification.matching_summary()
    return doc


def _text(d: dict[str, Any], out: TextIO) -> None:
    w = out.write
    ct = d["ct"]
    g = ct["geometry"]
    w(f"{d['path']}: SeedPlan plan, format {d['format_version']}")
    if d["file_format_version"] != d["format_version"]:
        w(f" (file is format {d['file_format_version']}, migrated on reading)")
    w("\n")
    w(f"  {d['name'] or '(unnamed)'}: revision {d['revision']}, {d['status']}")
    if d["status"] == "approved":
        w(f" by {d['approved_by']} at {d['approved_utc']}")
    w(f"; created {d['created_utc']}, saved {d['saved_utc']}\n")
    w(f"  content SHA-256 {d['content_sha256']}\n")
    w(f"CT: patient {ct['patient_name']!r} id {ct['patient_id']!r}\n")
    w(f"  study {ct['study_instance_uid']}\n  series {ct['series_instance_uid']}\n")
    w(f"  frame of reference {ct['frame_of_reference_uid']}\n")
    size = "×".join(str(n) for n in reversed(g["shape_zyx"]))
    spacing = "/".join(f"{v:.4g}" for v in g["spacing_mm"])
    w(
        f"  grid {size} voxels (x×y×z), spacing {spacing} mm, geometry SHA-256 "
        f"{ct['geometry_sha256'][:16]}…\n"
    )
    w(f"Structures ({len(d['structures'])}):\n")
    for s in d["structures"]:
        w(f"  {s['name']:<20} {s['role']:<7} {s['volume_cm3']:10.3f} cm³  ({s['origin']})\n")
    rx = d["prescription"]
    w(
        "Prescription: "
        + (
            "none"
            if rx is None
            else f"{rx['metric']} of {rx['structure']} ≥ {rx['dose_gy']:g} Gy (D∞)"
        )
        + "\n"
    )
    src = d["source"]
    if src is None:
        w("Source: none\n")
    else:
        strength = (
            "strength not given"
            if src["strength_U"] is None
            else f"{src['strength_U']:.4g} U = {src['activity_mCi']:.4g} mCi per seed"
        )
        w(f"Source: {src['model']} ({src['isotope']}), {strength}")
        if src["calibration_date"]:
            w(
                f", calibrated {src['calibration_date']}, implant {src['implant_date']} "
                f"(decay factor {src['decay_factor']:.4f})"
            )
        w("\n")
    w(f"Needles: {len(d['needles'])}; seeds: {len(d['seeds'])}; goals: {len(d['goals'])}\n")
    if d["needles"]:
        w(f"  needle checks {d['needle_checks']}\n")
        w(
            f"  {'needle':<8} {'length':>8} {'depth':>8} {'∠axial':>7} {'∠sag':>6} {'seeds':>5}"
            "  warnings\n"
        )
    for n in d["needles"]:
        w(
            f"  {n['label'] or n['id']:<8} {n['length_mm']:6.1f}mm {n['insertion_depth_mm']:6.1f}mm"
            f" {n['angle_to_axial_deg']:6.1f}° {n['angle_to_sagittal_deg']:5.1f}° {n['n_seeds']:5d}"
            f"  {'; '.join(n['warnings']) or '-'}\n"
        )
    reg = d.get("registration")
    if reg is not None:
        m = reg["matrix_lps_mm"]
        shift = ", ".join(f"{row[3]:+.1f}" for row in m[:3])
        metric = "" if reg["metric_value"] is None else f", metric {reg['metric_value']:.4g}"
        w(
            f"Post-op registration: {reg['method']}{metric}, {reg['registered_utc']}"
            f"{', corrected by hand' if reg['nudged'] else ''}; shift ({shift}) mm; post-op "
            f"series {reg['postop_series_instance_uid'] or '(none)'}\n"
        )
    ver = d.get("verification")
    if ver is not None:
        d90 = next(
            (c for c in ver["comparison"] if c["metric"] == "d90_gy" and c["postop"] is not None),
            None,
        )
        dose = (
            ""
            if d90 is None
            else f"; {d90['structure']} D90 {d90['planned']:.1f} Gy planned, "
            f"{d90['postop']:.1f} Gy post-op"
        )
        w(
            f"Post-op verification: of revision {ver['verified_revision']}, "
            f"{ver['verified_utc']} by {ver['verified_by'] or 'unknown'}; "
            f"{len(ver['implanted_mm'])} seeds ({ver['seeds_expected']} expected); "
            f"{ver['matching']}; {ver['formalism'].upper()} formalism{dose}\n"
        )
    ld = d["loading"]
    if ld["total_seeds"]:
        w(
            f"Loading: {ld['total_seeds']} seeds ({ld['free_seeds']} not on a needle), total "
            f"{ld['total_strength_U']:.4g} U = {ld['total_activity_mCi']:.4g} mCi at calibration, "
            f"{ld['total_strength_at_implant_U']:.4g} U = "
            f"{ld['total_activity_at_implant_mCi']:.4g} mCi at implant\n"
        )


def run_plan_info(path: str | Path, *, as_json: bool, out: TextIO | None = None) -> int:
    """Print the plan file's summary (text or one JSON object); InputError for a bad file."""
    from planner.plan.plan_ct import find_plan_ct

    out = out or sys.stdout
    loaded = load_plan(path)
    ct, note = find_plan_ct(loaded.plan, loaded.path)
    d = plan_info_dict(loaded, ct, note)
    if as_json:
        json.dump(d, out, indent=1, ensure_ascii=False)
        out.write("\n")
    else:
        _text(d, out)
    return 0
