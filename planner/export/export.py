"""The one entry point of the plan exports: :func:`export_plan`.

::

    summary = export_plan(plan, ct, out_dir, kinds={"pdf", "csv", "rtstruct", "rtplan",
                          "rtdose"}, force=False, progress=p, cancel=c)
    summary.files          [(kind, path, sha256)] what was written, in order
    summary.lines()        one line per file for the CLI / the GUI's summary

Kinds and files (fixed names in ``out_dir``):

* ``pdf``: ``plan_summary.pdf`` (the printed plan) and ``loading_sheet.pdf`` (for the theatre);
* ``csv``: ``seeds.csv``, ``needles.csv``, ``loading_sheet.csv``, ``metrics.json``;
* ``rtstruct``: ``RTSTRUCT.dcm``; ``rtplan``: ``RTPLAN.dcm``; ``rtdose``: ``RTDOSE.dcm``
  (one study and frame of reference with the CT; UIDs stable per plan revision and derived
  from :func:`~planner.plan.plan_file.approved_content_sha256` — the plan without its
  post-implant verification record, which no RT object holds — so attaching or changing a
  registration on an approved plan changes no exported UID; :mod:`planner.export.uids`).
* ``export.json``: what this export wrote (file names, sizes, SHA-256, plan UID, revision,
  content hash, time): the audit record of the folder.

Overwrite rule: ``out_dir`` is absent (its parent must exist; it is created) or a folder. A file
of the same name that SeedPlan did not write (not in the folder's ``export.json`` with the same
SHA-256) is never replaced without ``force``; a file of a previous export of SeedPlan,
unchanged since, is replaced. Every file goes through :mod:`planner.files.safe_write` (atomic,
never half-written); all targets are checked before any long work.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.dosimetry import PlanDosimetry
from planner.plan.model import Plan
from planner.plan.verification import VerificationRecord

__all__ = ["ALL_KINDS", "KIND_FILES", "ExportSummary", "export_plan"]

ALL_KINDS = ("pdf", "csv", "rtstruct", "rtplan", "rtdose")
KIND_FILES: dict[str, tuple[str, ...]] = {
    "pdf": ("plan_summary.pdf", "loading_sheet.pdf"),
    "csv": ("seeds.csv", "needles.csv", "loading_sheet.csv", "metrics.json"),
    "rtstruct": ("RTSTRUCT.dcm",),
    "rtplan": ("RTPLAN.dcm",),
    "rtdose": ("RTDOSE.dcm",),
}
MANIFEST = "export.json"
MANIFEST_FORMAT = "seedplan-export"


@dataclass
class ExportSummary:
    """What :func:`export_plan` wrote and how long each part took."""

    out_dir: Path
    files: list[tuple[str, Path, str]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per written file: kind, path and size."""
        out = []
        for kind, path, _sha in self.files:
            size = path.stat().st_size if path.exists() else 0
            out.append(f"{kind:9s} {path}  ({size / 1024:.1f} KiB)")
        return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _previous_outputs(folder: Path) -> dict[str, str]:
    """name → sha256 of the files a previous SeedPlan export wrote into ``folder``."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return {}
    files = doc.get("files", [])
    return {str(f.get("name")): str(f.get("sha256")) for f in files if isinstance(f, dict)}


def _is_export_manifest(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT


def _replace_allowed(folder: Path, names: Iterable[str], force: bool) -> dict[str, bool]:
    """name → may it be replaced; raises OutputExistsError for a foreign existing file."""
    from planner.files.safe_write import OutputExistsError, check_output

    ours = _previous_outputs(folder)
    manifest_is_ours = _is_export_manifest(folder / MANIFEST)
    allowed: dict[str, bool] = {}
    for name in (*names, MANIFEST):
        target = folder / name
        if name == MANIFEST:
            mine = manifest_is_ours
        else:
            mine = target.is_file() and name in ours and _sha256(target) == ours[name]
        try:
            check_output(target, force=force or mine)
        except OutputExistsError:
            raise OutputExistsError(
                "exists and was not written by a SeedPlan export (or was changed since); use "
                "--force to replace it",
                target,
            ) from None
        allowed[name] = force or mine
    return allowed


def _manifest_text(
    plan: Plan, content_sha: str, printed: datetime, folder: Path, entries: Mapping[str, str]
) -> str:
    """The ``export.json`` text: the plan's identity and every file (name → sha256) listed."""
    from planner.export.uids import software_version

    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "software": f"SeedPlan {software_version()}".strip(),
        "written": printed.isoformat(timespec="seconds"),
        "plan": {
            "plan_uid": plan.plan_uid,
            "revision": plan.revision,
            "status": plan.status,
            "content_sha256": content_sha,
            "patient_id": plan.ct.patient_id,
        },
        "files": [
            {"name": n, "sha256": s, "bytes": (folder / n).stat().st_size}
            for n, s in sorted(entries.items())
        ],
    }
    return json.dumps(manifest, indent=2) + "\n"


def _identity_lines(plan: Plan, printed: datetime) -> list[str]:
    return [
        f"SeedPlan export of plan {plan.name or plan.plan_uid} revision {plan.revision} "
        f"({plan.status})",
        f"patient {plan.ct.patient_name} ID {plan.ct.patient_id}",
        f"written {printed.isoformat(timespec='seconds')}",
    ]


def _display_name(dicom_name: str) -> str:
    parts = [p for p in dicom_name.split("^") if p]
    return ", ".join(parts[:2]) + (" " + " ".join(parts[2:]) if len(parts) > 2 else "")


def _checks(plan: Plan, d: Any) -> list[Any]:
    """Independent check points: the target centroid and the hottest voxel of each OAR."""
    from dose.engine import make_engine, rate_to_dose_gy
    from planner.export.report_content import CheckPoint

    if plan.source is None or not len(d.seeds):
        return []
    pts: list[tuple[str, np.ndarray]] = []
    g = plan.geometry
    for s in plan.structures:
        if s.role == "target" and s.voxel_count:
            kji = np.argwhere(s.crop).mean(axis=0) + [b.start for b in s.box]
            pts.append((f"{s.name} centroid", g.zyx_to_world(kji)))
    main = make_engine(plan.source.model_id, d.formalism, "numba")
    for s in plan.structures:
        if s.role == "oar" and s.voxel_count:
            kji = np.argwhere(s.crop) + [b.start for b in s.box]
            world = g.zyx_to_world(kji.astype(float))
            dose = rate_to_dose_gy(main.dose_rate_at_points(d.seeds, world).dose_rate_cgy_h)
            pts.append((f"{s.name} hottest voxel", world[int(np.argmax(dose))]))
    if not pts:
        return []
    ref = make_engine(plan.source.model_id, d.formalism, "reference")
    xyz = np.array([p for _, p in pts])
    a = rate_to_dose_gy(main.dose_rate_at_points(d.seeds, xyz).dose_rate_cgy_h)
    b = rate_to_dose_gy(ref.dose_rate_at_points(d.seeds, xyz).dose_rate_cgy_h)
    return [
        CheckPoint(name, tuple(float(v) for v in p), float(x), float(y))  # type: ignore[arg-type]
        for (name, p), x, y in zip(pts, a, b, strict=True)
    ]


def _figures(
    plan: Plan, ct: CTVolume | None, d: Any, identity: str, short_identity: str
) -> tuple[bytes, list[bytes]]:
    from planner.export.figures import PlaneView, dvh_png, isodose_png

    colors = {s.name: s.color_rgb for s in plan.structures}
    pd = d.prescription_gy
    dvh = dvh_png(d.dvhs, colors, prescription_gy=pd, identity=identity)
    targets = [s for s in plan.structures if s.role == "target" and s.voxel_count]
    if not targets or pd is None:
        return dvh, []
    t = targets[0] if plan.prescription is None else plan.structure(plan.prescription.structure_id)
    kji = np.argwhere(t.crop) + [b.start for b in t.box]
    world = plan.geometry.zyx_to_world(kji.astype(float))
    centre = world.mean(axis=0)
    half = float(np.max(np.ptp(world, axis=0))) / 2.0 + 25.0
    masks = [
        (s.name, s.crop, tuple(int(b.start) for b in s.box), s.color_rgb)
        for s in plan.structures
        if s.voxel_count and s.role in ("target", "oar")
    ]
    seeds = np.asarray(d.seeds.positions_mm).reshape(-1, 3)
    views = [
        PlaneView("Axial", 0, 1, 2, float(centre[2])),
        PlaneView("Coronal", 0, 2, 1, float(centre[1])),
        PlaneView("Sagittal", 1, 2, 0, float(centre[0])),
    ]
    pngs = [
        isodose_png(
            v,
            centre_mm=centre,
            half_width_mm=half,
            ct_hu=None if ct is None else ct.hu,
            ct_geometry=plan.geometry,
            dose_gy=d.dose_gy,
            dose_geometry=d.geometry,
            prescription_gy=pd,
            masks=masks,
            seeds_mm=seeds,
            identity=short_identity,
        )
        for v in views
    ]
    return dvh, pngs


def _verification_figures(
    plan: Plan, record: VerificationRecord, identity: str
) -> tuple[bytes, bytes]:
    """The verification's DVHs (planned vs post-op) and seeds (planned vs implanted)."""
    from planner.export.figures import seed_match_png, verification_dvh_png

    colors = {s.name: s.color_rgb for s in plan.structures}
    rx = plan.prescription
    dvh = verification_dvh_png(
        record.dvhs, colors, prescription_gy=None if rx is None else rx.dose_gy, identity=identity
    )
    seeds = seed_match_png(
        np.asarray(record.planned_mm).reshape(-1, 3),
        np.asarray(record.implanted_mm).reshape(-1, 3),
        record.pairs,
        identity=identity,
    )
    return dvh, seeds


def _verification_doc(record: VerificationRecord) -> dict[str, Any]:
    """metrics.json's summary of the verification the export shows."""
    return {
        "verified_plan_uid": record.verified_plan_uid,
        "verified_revision": record.verified_revision,
        "postop_series_instance_uid": record.postop_series_instance_uid,
        "verified_utc": record.verified_utc,
        "verified_by": record.verified_by,
        "formalism": record.formalism,
        "registration": record.registration,
        "seeds": {
            "expected": record.seeds_expected,
            "detected": record.seeds_detected,
            "after_review": record.seeds_reviewed,
            "clusters_split": record.clusters_split,
            "metal_excluded": record.metal_excluded,
            "matched": len(record.pairs),
            "unmatched_planned": record.unmatched_planned,
            "unmatched_implanted": len(record.unmatched_implanted),
        },
        "matching": record.matching_summary(),
        "comparison": [r.to_dict() for r in record.comparison],
        "warnings": list(record.warnings),
    }


def _metrics_doc(
    plan: Plan,
    d: PlanDosimetry,
    content_sha: str,
    checks: list[Any],
    record: VerificationRecord | None,
) -> dict[str, Any]:
    doc = d.metrics_dict()
    doc["verification"] = None if record is None else _verification_doc(record)
    doc["plan"] = {
        "plan_uid": plan.plan_uid,
        "name": plan.name,
        "revision": plan.revision,
        "status": plan.status,
        "content_sha256": content_sha,
        "patient_id": plan.ct.patient_id,
    }
    doc["dvh"] = {name: dvh.summary() for name, dvh in d.dvhs.items()}
    doc["independent_check"] = [
        {
            "point": c.label,
            "position_mm": list(c.position_mm),
            "planning_engine_gy": c.main_gy,
            "reference_engine_gy": c.reference_gy,
            "difference_percent": c.difference_percent,
        }
        for c in checks
    ]
    return doc


def export_plan(
    plan: Plan,
    ct: CTVolume | None,
    out_dir: str | Path,
    *,
    kinds: Iterable[str] = ALL_KINDS,
    force: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    ct_path: str | Path | None = None,
    dosimetry: Any = None,
    robustness: Mapping[str, Any] | None = None,
    verification: VerificationRecord | None = None,
    now: datetime | None = None,
) -> ExportSummary:
    """Write the chosen exports of ``plan`` into ``out_dir`` (module docstring).

    ct : the plan's CT (figures, dose); ``ct_path`` the DICOM CT for the RT references (default
    ``ct.source_path`` or the plan's). ``dosimetry``: a precomputed PlanDosimetry (else it is
    computed). ``robustness``: label → value, shown in the report when given.
    ``verification``: the post-implant verification the report shows (default: the plan's
    own record, :attr:`planner.plan.model.Plan.verification`; the GUI passes the one its
    post-op mode holds); also summarised in ``metrics.json``.
    ``progress``/``cancel`` follow :mod:`dose.progress` (Cancelled: files already written stay,
    none is half-written). InputError (one line) for bad input or a refused target.
    """
    from planner.files.safe_write import check_output_folder, write_bytes, write_text

    chosen = [k for k in ALL_KINDS if k in set(kinds)]
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        raise InputError(f"unknown export kind(s): {', '.join(sorted(unknown))}")
    if not chosen:
        raise InputError("choose at least one export (pdf, csv, rtstruct, rtplan, rtdose)")
    if ct is not None:
        plan.check_ct(ct)
    shown = verification if verification is not None else plan.verification
    folder = check_output_folder(out_dir)
    names = [n for k in chosen for n in KIND_FILES[k]]
    if folder.is_dir():
        allowed = _replace_allowed(folder, names, force)
    else:
        folder.mkdir()
        allowed = {n: False for n in (*names, MANIFEST)}
    printed = (now or datetime.now(UTC)).astimezone().replace(microsecond=0)
    summary = ExportSummary(folder)
    t0 = time.perf_counter()

    from planner.export.csv_export import loading_csv, metrics_json, needles_csv, seeds_csv
    from planner.export.needle_table import needle_rows, seed_rows
    from planner.export.uids import ct_slices, export_uids, software_version
    from planner.plan.plan_file import approved_content_sha256, plan_content_sha256

    need_dicom = any(k in chosen for k in ("rtstruct", "rtplan", "rtdose"))
    slices = None
    if need_dicom:
        slices = ct_slices(plan, ct_path or (ct.source_path if ct is not None else None))
    content_sha = plan_content_sha256(plan)
    # The DICOM UIDs follow what is exported, which is what an approval covers: a post-implant
    # verification record (an attached registration) changes no UID of an approved plan.
    uids = export_uids(plan, approved_content_sha256(plan))
    check_cancelled(cancel, "export cancelled")

    need_dose = any(k in chosen for k in ("pdf", "csv", "rtdose"))
    d = dosimetry
    if need_dose and d is None:
        from planner.export.plan_dose import export_dosimetry

        d = export_dosimetry(plan, ct, progress=sub_progress(progress, 0.0, 0.5), cancel=cancel)
        summary.timings_s["dosimetry"] = time.perf_counter() - t0
    report(progress, 0.5, "dose computed")
    if d is not None:
        summary.warnings.extend(str(w) for w in getattr(d, "warnings", []) or [])

    written: list[tuple[str, Path, str]] = []
    previous = _previous_outputs(folder)
    manifest_force = [allowed[MANIFEST]]

    def record() -> None:
        """Rewrite ``export.json`` with every file written so far (this run and earlier ones
        still present): a cancelled or failed export leaves a true record, so a re-run into
        the folder may replace the files it wrote."""
        entries = {name: sha for name, sha in previous.items() if (folder / name).is_file()}
        for _kind, path, sha in written:
            entries[path.name] = sha
        write_text(
            folder / MANIFEST,
            _manifest_text(plan, content_sha, printed, folder, entries),
            force=manifest_force[0],
        )
        manifest_force[0] = True  # ours from now on

    def done(kind: str, path: Path) -> None:
        written.append((kind, path, _sha256(path)))
        record()

    model = None
    if plan.source is not None:
        from dose.sources import load_model

        model = load_model(plan.source.model_id)
    seed_length = 4.5 if model is None else 20.0 * model.capsule_half_length_cm
    srows, nrows = seed_rows(plan), needle_rows(plan, seed_length)
    ident_lines = _identity_lines(plan, printed)

    if "csv" in chosen:
        t = time.perf_counter()
        checks = _checks(plan, d)
        texts = {
            "seeds.csv": seeds_csv(srows, ident_lines),
            "needles.csv": needles_csv(nrows, ident_lines),
            "loading_sheet.csv": loading_csv(nrows, ident_lines, seed_length),
            "metrics.json": metrics_json(_metrics_doc(plan, d, content_sha, checks, shown)),
        }
        for name, text in texts.items():
            done("csv", write_text(folder / name, text, force=allowed[name]))
        summary.timings_s["csv"] = time.perf_counter() - t
        report(progress, 0.55, "CSV written")
    check_cancelled(cancel, "export cancelled")

    if "pdf" in chosen:
        if model is None:
            raise InputError("the plan has no source; the report needs the seed model")
        t = time.perf_counter()
        from planner.export.report_content import ReportInputs, loading_sheet_story, report_story
        from planner.export.report_pdf import PageIdentity, build_pdf

        version = software_version()
        identity = PageIdentity(
            patient_name=_display_name(plan.ct.patient_name),
            patient_id=plan.ct.patient_id,
            plan_name=plan.name or plan.plan_uid[:8],
            revision=plan.revision,
            status=plan.status,
            printed=printed,
            software=f"SeedPlan {version}".strip(),
        )
        fig_id = (
            f"{identity.patient_name} ({plan.ct.patient_id}), plan {identity.plan_name} "
            f"rev {plan.revision}"
        )
        short_id = f"{plan.ct.patient_id}, plan {identity.plan_name[:18]} rev {plan.revision}"
        dvh_png, iso_pngs = _figures(plan, ct, d, fig_id, short_id)
        verification_pngs = None if shown is None else _verification_figures(plan, shown, short_id)
        report(progress, 0.7, "figures drawn")
        check_cancelled(cancel, "export cancelled")
        g = plan.geometry
        inputs = ReportInputs(
            plan=plan,
            dosimetry=d,
            model=model,
            identity=identity,
            ct_description=(
                f"series {plan.ct.series_instance_uid}, {' × '.join(map(str, g.shape_xyz))} "
                f"voxels of {' × '.join(f'{v:.3g}' for v in g.spacing_mm)} mm"
            ),
            content_sha256=content_sha,
            needle_rows=nrows,
            seed_rows=srows,
            seed_length_mm=seed_length,
            dvh_png=dvh_png,
            isodose_pngs=iso_pngs,
            checks=_checks(plan, d),
            robustness=robustness,
            verification=shown,
            verification_pngs=verification_pngs,
        )
        pdf = build_pdf(
            identity,
            report_story(inputs),
            title=f"Plan summary {identity.plan_name}",
            subject="SeedPlan plan summary",
        )
        done(
            "pdf", write_bytes(folder / "plan_summary.pdf", pdf, force=allowed["plan_summary.pdf"])
        )
        sheet_ident = PageIdentity(**{**identity.__dict__, "title": "needle loading sheet"})
        sheet = build_pdf(
            sheet_ident,
            loading_sheet_story(inputs),
            title=f"Loading sheet {identity.plan_name}",
            subject="SeedPlan needle loading sheet",
        )
        done(
            "pdf",
            write_bytes(folder / "loading_sheet.pdf", sheet, force=allowed["loading_sheet.pdf"]),
        )
        summary.timings_s["pdf"] = time.perf_counter() - t
        report(progress, 0.8, "PDF written")

    if need_dicom:
        assert slices is not None
        from planner.export.rtdose_write import write_rtdose
        from planner.export.rtplan_write import write_rtplan
        from planner.export.rtstruct_write import write_rtstruct

        when = printed.replace(tzinfo=None)
        if "rtstruct" in chosen:
            t = time.perf_counter()
            check_cancelled(cancel, "export cancelled")
            p = write_rtstruct(
                folder / "RTSTRUCT.dcm",
                plan,
                slices,
                uids,
                when=when,
                force=allowed["RTSTRUCT.dcm"],
                cancel=cancel,
            )
            done("rtstruct", p)
            summary.timings_s["rtstruct"] = time.perf_counter() - t
        report(progress, 0.9, "RTSTRUCT written")
        if "rtplan" in chosen:
            check_cancelled(cancel, "export cancelled")
            done(
                "rtplan",
                write_rtplan(
                    folder / "RTPLAN.dcm",
                    plan,
                    slices,
                    uids,
                    when=when,
                    force=allowed["RTPLAN.dcm"],
                ),
            )
        if "rtdose" in chosen:
            t = time.perf_counter()
            check_cancelled(cancel, "export cancelled")
            label = getattr(d, "label", "") or f"TG-43U1 {d.formalism}"
            done(
                "rtdose",
                write_rtdose(
                    folder / "RTDOSE.dcm",
                    plan,
                    slices,
                    uids,
                    d.dose_gy,
                    d.geometry,
                    when=when,
                    force=allowed["RTDOSE.dcm"],
                    description=str(label),
                    prescription_gy=d.prescription_gy,
                ),
            )
            summary.timings_s["rtdose"] = time.perf_counter() - t

    summary.files = written
    summary.timings_s["total"] = time.perf_counter() - t0
    report(progress, 1.0, "export done")
    return summary
