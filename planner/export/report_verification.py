"""The plan summary's "Post-operative verification" section, from the plan's
:class:`~planner.plan.verification.VerificationRecord` (layout in
:mod:`planner.export.report_pdf`): what was verified on which post-op CT, when and by whom;
the detection, registration and matching; every metric planned vs post-op (with the intra-op
column when a re-plan was compared) in the GUI's reading order; both DVHs and the seeds
planned vs implanted as pictures; the verification's warnings."""

from __future__ import annotations

from planner.export.report_pdf import Section, Spacer, image, kv_table, para, table
from planner.plan.model import Plan
from planner.plan.reading_order import comparison_order
from planner.plan.verification import (
    VerificationRecord,
    difference_text,
    key_metrics_first,
    metric_label,
    value_text,
)

__all__ = ["ABSENT", "comparison_table_rows", "verification_section"]

#: What the section says when the plan records no verification.
ABSENT = "No post-operative verification is recorded for this plan."
_FORMALISM = {
    "1d": "TG-43U1 1D point-source formalism (seed orientation uncertain on the post-op CT)",
    "2d": "TG-43U1 2D line-source formalism along the detected seed axes",
}


def comparison_table_rows(record: VerificationRecord, plan: Plan) -> list[tuple[str, ...]]:
    """``(structure, metric, unit, planned, [intra-op,] post-op, difference)`` text rows, key
    metrics first in each structure's block, the plan's structures in its reading order."""
    rows = []
    for r in key_metrics_first(record.comparison, comparison_order(plan)):
        middle = (value_text(r.intraop, r.unit),) if record.has_intraop else ()
        rows.append(
            (
                r.structure,
                metric_label(r.metric),
                {"cm3": "cm³"}.get(r.unit, r.unit),
                value_text(r.planned, r.unit),
                *middle,
                value_text(r.postop, r.unit),
                difference_text(r.difference, r.planned, r.postop, r.unit),
            )
        )
    return rows


def verification_section(
    record: VerificationRecord | None,
    plan: Plan,
    *,
    dvh_png: bytes | None = None,
    seeds_png: bytes | None = None,
) -> Section:
    """The section for ``record`` shown in the report of ``plan`` (the verified plan, or
    ``seedplan verify``'s copy of it with the implanted seeds)."""
    title = "Post-operative verification"
    if record is None:
        return Section(title, [para(ABSENT)])
    detection = (
        f"{record.seeds_detected} seeds found ({record.seeds_expected} expected); "
        f"{record.clusters_split} clusters of touching seeds split; "
        f"{record.metal_excluded} non-seed metal object(s) excluded"
    )
    if record.seeds_reviewed != record.seeds_detected:
        detection += f"; {record.seeds_reviewed} seeds after review"
    same = record.verified_plan_uid == plan.plan_uid
    verified = (
        f"{record.verified_plan_name or '(unnamed)'}, revision {record.verified_revision} "
        f"(plan UID {record.verified_plan_uid[:8]}…"
        + ("" if same else "; not this report's plan")
        + ")"
    )
    rows = [
        ("Verified plan", verified),
        (
            "Post-op CT",
            f"series {record.postop_series_instance_uid or '(none)'}, slices "
            f"{record.slice_thickness_mm:g} mm; {record.postop_source_path or 'path not recorded'}",
        ),
        ("Verified", f"{record.verified_utc or 'undated'} by {record.verified_by or 'unknown'}"),
        ("Registration", record.registration or "—"),
        ("Seed detection", detection),
        ("Matching", record.matching_summary()),
        ("Post-plan dose", _FORMALISM[record.formalism]),
    ]
    if record.unmatched_planned:
        rows.append(("Planned seeds not found", ", ".join(record.unmatched_planned)))
    flow: list = [kv_table(rows)]
    header = ["Structure", "Metric", "Unit", "Planned"]
    header += ["Intra-op"] if record.has_intraop else []
    header += ["Post-op", "Post-op − planned"]
    widths = (36, 42, 12, 20, 20, 20, 28) if record.has_intraop else (40, 50, 14, 22, 22, 30)
    flow += [
        Spacer(1, 4),
        table(header, comparison_table_rows(record, plan), widths_mm=widths, font_size=7),
    ]
    if dvh_png is not None:
        flow += [Spacer(1, 4), image(dvh_png, 178)]
    if seeds_png is not None:
        flow += [Spacer(1, 4), image(seeds_png, 178)]
    for w in record.warnings:
        flow.append(para(f"<b>Warning:</b> {w}"))
    return Section(title, flow)
