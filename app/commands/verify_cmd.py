"""``seedplan verify PLAN POSTOP_CT --out DIR [--ct CT] [--intraop PLAN] [--formalism 1d|2d]
[--gate-mm MM] [--migration-mm MM] [--exclude MASK|PLAN:NAME ...] [--reregister]
[--store-registration] [--json] [--force]``.

Post-implant verification (:func:`planner.postop.verify.verify_plan`): detect the seeds on the
post-op CT, register it to the planning CT on bone, match planned and implanted seeds, compute
the post-plan dose and compare every metric. Writes into DIR (an existing or new folder):

- ``detected_seeds.csv``: a ``#`` line with the detection summary (count, clusters, metal, the
  search: ``threshold N HU``, or on slices > 3 mm ``thick-slice shape search (≥ N HU)``) and the
  slice thickness; the detected seeds in the planning frame (DESIGN.md's detected-seeds
  columns, LPS mm), then where each lies: ``location`` (inside | outside | migrated |
  unknown), ``structure`` (the target it is in, or the nearest), ``target_distance_mm`` (0
  inside) and ``track_distance_mm`` (to the nearest planned needle track);
- ``matching.csv``: planned seed id, implanted position, displacement (mm); unmatched seeds;
- ``comparison.csv``: structure, metric, unit, planned, intraop (empty without ``--intraop``),
  post-op, difference (post-op − planned); the seed counts (all, inside the target, outside
  it, migrated) as structure "Seeds";
- ``verification.json``: all of it — the detection with ``threshold_hu``, ``thick_slices``
  (true: slices > 3 mm, searched by shape, ``threshold_hu`` only the lowest HU looked at) and
  ``slice_thickness_mm`` (:func:`planner.postop.verify.detection_dict`) — with the
  registration (and the record stored in the plan copy), needle deviations, seed locations
  and warnings;
- ``postop.seedplan``: a copy of the plan with the implanted seeds, the registration
  (:class:`planner.plan.model.Registration`) and the verification
  (:class:`planner.plan.verification.VerificationRecord`: seed counts, matching, every
  metric planned vs post-op, both DVHs), for the report: ``seedplan export`` of the copy
  computes its dose with the verification's formalism and shows the comparison.

``--exclude`` (repeatable, as for ``seedplan detect``) names a region of the post-op CT never
searched for seeds: a mask image on the post-op CT's grid, or ``PLAN.seedplan:NAME``, a structure
of a plan on that CT.

The planning CT is the one the plan was made on (its recorded path, relative to the plan file
when not absolute) unless ``--ct`` names it. When the plan already carries a registration of
this post-op CT (stored by the GUI's post-op mode, possibly corrected by hand), it is used as it
is and the automatic registration is skipped (said on stderr); ``--reregister`` registers again.
``--store-registration`` also stores the registration used in PLAN itself (the file is
replaced safely, like the GUI's Save), so the next verification of this post-op CT reuses it.
An approved PLAN stays approved: the registration is a post-implant verification record that
may be attached to an approved revision (:mod:`planner.plan.document`), its user and UTC time
recorded; every other field of the plan (status, approval, revision, structures,
prescription, source, needles, seeds, goals) is written back unchanged, so plan.json differs
only in its ``registration`` record. Nothing is rewritten when PLAN already holds this
registration.

``--intraop PLAN``: the intra-operative re-plan (a plan file on the same planning CT — the
revision saved during the procedure) adds its column to the comparison (pre-plan, intra-op,
post-op) and its needles are the tracks migration is measured from. A seed outside the target
farther than ``--migration-mm`` (default 10 mm) from every planned needle track is "migrated".
Existing outputs are replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from dose.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "verify",
        help="post-implant verification of a plan on its post-op CT",
        description="Detect the implanted seeds on the post-op CT, register it to the planning "
        "CT, match the seeds to the plan, recompute the dose and compare every metric.",
    )
    p.add_argument("plan", metavar="PLAN", help="the plan (.seedplan)")
    p.add_argument("postop", metavar="POSTOP_CT_PATH", help="post-op CT: DICOM folder or image")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    p.add_argument(
        "--ct",
        default=None,
        metavar="CT_PATH",
        help="planning CT (default: the path recorded in the plan)",
    )
    p.add_argument(
        "--formalism",
        choices=("1d", "2d"),
        default="1d",
        help="post-op dose formalism: 1d (default, seed orientation uncertain) or 2d "
        "with the detected axes",
    )
    p.add_argument("--gate-mm", type=float, default=10.0, help="matching gate (default 10 mm)")
    p.add_argument(
        "--intraop",
        default=None,
        metavar="PLAN",
        help="the intra-operative re-plan (.seedplan on the same CT): a third comparison column",
    )
    p.add_argument(
        "--migration-mm",
        type=float,
        default=10.0,
        help="a seed outside the target farther than this from every planned needle track is "
        "'migrated' (default 10 mm)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="MASK",
        help="region of the post-op CT never searched for seeds: a mask image on its grid "
        "(nonzero = excluded) or PLAN.seedplan:NAME, a structure of a plan on it (repeatable)",
    )
    p.add_argument(
        "--reregister",
        action="store_true",
        help="register again even when the plan stores a registration of this post-op CT",
    )
    p.add_argument(
        "--store-registration",
        action="store_true",
        help="store the registration in PLAN itself (also an approved plan: a verification "
        "record, the approval unchanged), so the next verification reuses it",
    )
    p.add_argument("--json", action="store_true", help="print the verification as one JSON object")
    p.add_argument("--force", action="store_true", help="replace existing result files")
    p.set_defaults(run=run)
    return p


def _csv(header: str, rows: list[str]) -> str:
    buf = io.StringIO()
    buf.write(header + "\n")
    for r in rows:
        buf.write(r + "\n")
    return buf.getvalue()


def _fmt(v: float | None, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _csv_text(text: str | None) -> str:
    """A CSV field (quoted when it holds a comma or a quote)."""
    if text is None:
        return ""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if ("," in text or '"' in text) else text


def verification_dict(v, plan_path: str, postop_path: str, postop_ct) -> dict:
    """The JSON form of a :class:`planner.postop.verify.Verification` of ``postop_ct``."""
    from planner.plan.schema import registration_to_doc
    from planner.postop.verify import detection_dict

    seeds = v.implanted_plan.seeds
    return {
        "plan": plan_path,
        "postop_ct": postop_path,
        "summary": v.summary(),
        "formalism": v.formalism,
        "detection": detection_dict(v.detection, postop_ct),
        "registration": {
            **v.registration.transform.to_dict(),
            "initialised_by": v.registration.initialised_by,
            "metric_value": v.registration.metric_value,
            "stop_reason": v.registration.stop_reason,
            "stored": registration_to_doc(v.registration_record),
        },
        "implanted_seeds": [
            {"id": s.id, "position_mm": list(s.position_mm), "axis": list(s.axis)} for s in seeds
        ],
        "matching": {
            "gate_mm": v.match.gate_mm,
            "pairs": [
                {"planned": int(i), "implanted": int(j), "displacement_mm": list(map(float, d))}
                for (i, j), d in zip(v.match.pairs, v.match.displacement_mm, strict=True)
            ],
            "unmatched_planned": v.match.unmatched_planned,
            "unmatched_implanted": v.match.unmatched_implanted,
        },
        "needles": [n.__dict__ for n in v.needles],
        "seed_locations": None if v.locations is None else v.locations.to_dict(),
        "planned_seed_locations": None
        if v.planned_locations is None
        else v.planned_locations.to_dict()["counts"],
        "intraop_metrics": None if v.intraop is None else v.intraop.metrics_dict(),
        "comparison": [r.to_dict() for r in v.comparison],
        "planned_metrics": v.planned.metrics_dict(),
        "postop_metrics": v.postop.metrics_dict(),
        "warnings": v.warnings,
    }


def run(args: argparse.Namespace) -> int:
    from app.commands.autoplan_cmd import planning_ct_path
    from app.commands.detect_cmd import exclusion_file, load_exclusion
    from planner.files.safe_write import check_output_folder, write_text
    from planner.imaging.ct_loader import load_ct
    from planner.plan.plan_ct import ct_reference_at
    from planner.plan.plan_file import load_plan, save_plan
    from planner.postop.record import verified_copy
    from planner.postop.verify import verify_plan

    plan_path = Path(args.plan)
    out = check_output_folder(args.out)
    loaded = load_plan(plan_path)
    plan = loaded.plan
    ct_path = planning_ct_path(plan_path, plan.ct.source_path, args.ct)
    intraop = load_plan(args.intraop).plan if args.intraop else None
    inputs = (
        plan_path,
        args.postop,
        ct_path,
        args.intraop,
        *(exclusion_file(e) for e in args.exclude),
    )
    names = (
        "detected_seeds.csv",
        "matching.csv",
        "comparison.csv",
        "verification.json",
        "postop.seedplan",
    )
    if not args.force:
        for name in names:
            if (out / name).exists():
                raise InputError("exists (use --force to replace the results)", out / name)
    planning_ct, _ = load_ct(ct_path)
    postop_ct, _ = load_ct(args.postop)
    exclude = None
    for spec in args.exclude:
        mask = load_exclusion(spec, postop_ct)
        exclude = mask if exclude is None else (exclude | mask)
    stored = plan.registration
    use_stored = stored is not None and not args.reregister and stored.matches(postop_ct)
    if intraop is not None:
        try:
            intraop.check_ct(planning_ct)
        except InputError as exc:
            raise InputError(
                f"the intra-op plan is not on the planning CT: {exc.problem}", args.intraop
            ) from None
    v = verify_plan(
        plan,
        planning_ct,
        postop_ct,
        formalism=args.formalism,
        gate_mm=args.gate_mm,
        registration=stored if use_stored else None,
        intraop=intraop,
        migration_mm=args.migration_mm,
        exclude=exclude,
    )
    if stored is not None and not use_stored and not args.reregister:
        sys.stderr.write(
            "seedplan verify: the registration stored in the plan is of another post-op CT "
            f"(series {stored.postop_series_instance_uid or '(none)'}); registering this one\n"
        )
    if use_stored:
        sys.stderr.write(
            f"seedplan verify: using the registration stored in the plan "
            f"({stored.method}, {stored.registered_utc}"
            f"{', corrected by hand' if stored.nudged else ''}; --reregister to register again)\n"
        )
    out.mkdir(exist_ok=True)
    det = v.detection
    rows = []
    locations = v.locations.seeds if v.locations is not None else (None,) * len(det.seeds)
    for p, s, loc in zip(v.implanted_mm, det.seeds, locations, strict=True):
        a = v.registration.transform.apply_vectors(s.axis)
        where = (
            ",,,"
            if loc is None
            else f"{loc.location},{_csv_text(loc.structure)},{_fmt(loc.distance_to_target_mm, 2)},"
            f"{_fmt(loc.distance_to_track_mm, 2)}"
        )
        rows.append(
            f"{p[0]:.3f},{p[1]:.3f},{p[2]:.3f},{a[0]:.5f},{a[1]:.5f},{a[2]:.5f},{s.confidence:.3f},"
            + where
        )
    slice_mm = float(postop_ct.geometry.spacing_mm[2])
    mig = v.locations.migration_mm if v.locations is not None else args.migration_mm
    write_text(
        out / "detected_seeds.csv",
        "# detected on "
        + str(args.postop)
        + ", mapped into the planning frame\n"
        + f"# {det.summary()}; slices {slice_mm:g} mm\n"
        + f"# location: inside/outside the target; migrated = outside and > {mig:g} mm from "
        "every planned needle track\n"
        + _csv(
            "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence,location,structure,"
            "target_distance_mm,track_distance_mm",
            rows,
        ),
        inputs=inputs,
        force=args.force,
    )
    mrows = []
    for (i, j), d in zip(v.match.pairs, v.match.displacement_mm, strict=True):
        q = v.implanted_mm[j]
        mrows.append(
            f"{plan.seeds[i].id},{q[0]:.3f},{q[1]:.3f},{q[2]:.3f},"
            f"{d[0]:.3f},{d[1]:.3f},{d[2]:.3f},{float((d**2).sum() ** 0.5):.3f}"
        )
    for i in v.match.unmatched_planned:
        mrows.append(f"{plan.seeds[i].id},,,,,,,")
    for j in v.match.unmatched_implanted:
        q = v.implanted_mm[j]
        mrows.append(f",{q[0]:.3f},{q[1]:.3f},{q[2]:.3f},,,,")
    write_text(
        out / "matching.csv",
        _csv("planned_seed,x_mm,y_mm,z_mm,dx_mm,dy_mm,dz_mm,distance_mm", mrows),
        inputs=inputs,
        force=args.force,
    )
    crows = [
        f"{_csv_text(r.structure)},{r.metric},{r.unit},{_fmt(r.planned)},{_fmt(r.intraop)},"
        f"{_fmt(r.postop)},{_fmt(r.difference)}"
        for r in v.comparison
    ]
    write_text(
        out / "comparison.csv",
        _csv("structure,metric,unit,planned,intraop,postop,difference", crows),
        inputs=inputs,
        force=args.force,
    )
    doc = verification_dict(v, str(plan_path), str(args.postop), postop_ct)
    text = json.dumps(doc, indent=1, default=float)
    write_text(out / "verification.json", text + "\n", inputs=inputs, force=args.force)
    copy = out / "postop.seedplan"
    # The copy carries the verification for the report, and lies in another folder: its CT
    # reference must still name the planning CT.
    save_plan(
        ct_reference_at(verified_copy(v, plan, postop_ct), copy, ct_path),
        copy,
        force=args.force,
        inputs=inputs,
    )
    if args.store_registration:
        _store_in_plan(plan, plan_path, v.registration_record, (args.postop, ct_path, args.intraop))
    if args.json:
        sys.stdout.write(json.dumps(doc, default=float) + "\n")
    detection_line, verification_line = v.summary_lines()[:2]
    # The count once: in the detection's line; the verification's says what was matched.
    sys.stderr.write(f"seedplan verify: detection: {detection_line}; slices {slice_mm:g} mm\n")
    sys.stderr.write(f"seedplan verify: {verification_line}\n")
    for w in v.warnings:
        sys.stderr.write(f"seedplan verify: warning: {w}\n")
    return 0


def _store_in_plan(plan, plan_path: Path, record, inputs: tuple) -> None:
    """Attach ``record`` to the plan file ``plan_path`` (one step through the plan document:
    on an approved plan a verification record, its approval unchanged) and save it in place."""
    from planner.plan.document import PlanDocument
    from planner.plan.plan_file import save_plan
    from planner.postop.verify import store_registration

    doc = PlanDocument(plan, path=plan_path)
    if not store_registration(doc, record):
        sys.stderr.write(f"seedplan verify: {plan_path} already holds this registration\n")
        return
    save_plan(doc.plan, plan_path, force=True, inputs=tuple(p for p in inputs if p))
    what = (
        f"approved revision {plan.revision}: a verification record, the approval and the plan "
        "unchanged"
        if plan.is_approved
        else f"{plan.status} revision {plan.revision}"
    )
    sys.stderr.write(
        f"seedplan verify: registration stored in {plan_path} ({what}; by "
        f"{record.registered_by or 'unknown'}, {record.registered_utc})\n"
    )
