"""The cohort's one-page PDF (reportlab + matplotlib, A4 portrait).

Contents: title and counts (cases, analysed, refused/failed), the summary table of
:func:`planner.cohort.table.summary_rows` (pre vs post mean ± SD, median (IQR), mean paired
difference, Wilcoxon and paired t-test p), seeds per case (median and range), and two figures:
box plots of target D90 pre-plan vs post-op with each case's pair joined, and seeds per case
(planned, found). Every number carries its unit; failed cases are listed with their reasons
(as many as fit).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_report_pdf"]


def _figure_png(rows: Sequence[Mapping[str, Any]], prescription_gy: float | None) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    ok = [r for r in rows if r.get("status") == "ok"]
    fig = Figure(figsize=(7.2, 2.9), dpi=150)
    ax1, ax2 = fig.subplots(1, 2)
    pairs = [
        (r["pre_d90_gy"], r["post_d90_gy"])
        for r in ok
        if r.get("pre_d90_gy") is not None and r.get("post_d90_gy") is not None
    ]
    if pairs:
        pre = [p[0] for p in pairs]
        post = [p[1] for p in pairs]
        ax1.boxplot([pre, post], widths=0.45)
        ax1.set_xticks([1, 2], ["pre-plan", "post-op"])
        for a, b in pairs:
            ax1.plot([1, 2], [a, b], color="0.6", lw=0.6, marker="o", ms=2.5)
        if prescription_gy:
            ax1.axhline(prescription_gy, color="tab:red", lw=0.8, ls="--")
    ax1.set_ylabel("target D90 (Gy)")
    ax1.set_title(f"D90 pre vs post (n = {len(pairs)})", fontsize=9)
    ids = [str(r.get("case_id")) for r in rows]
    x = list(range(len(rows)))
    planned = [r.get("seeds_planned") or 0 for r in rows]
    found = [r.get("seeds_found") or 0 for r in rows]
    ax2.bar([i - 0.2 for i in x], planned, width=0.4, label="planned")
    ax2.bar([i + 0.2 for i in x], found, width=0.4, label="found")
    step = max(1, len(rows) // 12)
    ax2.set_xticks(x[::step], ids[::step], rotation=60, fontsize=6)
    ax2.set_ylabel("seeds per case")
    ax2.set_title("Seeds per case", fontsize=9)
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _prescription(rows: Sequence[Mapping[str, Any]]) -> float | None:
    v = [r.get("prescription_gy") for r in rows if r.get("prescription_gy")]
    return float(v[0]) if v else None


def write_report_pdf(
    target: str | Path,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    *,
    title: str = "",
    force: bool = True,
) -> Path:
    """Write the one-page report to ``target`` (atomically, :mod:`planner.files.safe_write`)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from planner.cohort.table import summary_rows
    from planner.files.safe_write import write_with

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    png = _figure_png(rows, _prescription(rows))
    n_ok = summary.get("n_analysed", 0)
    status = ", ".join(f"{k} {v}" for k, v in sorted(summary.get("by_status", {}).items()))
    seeds = summary.get("seeds", {})

    def seeds_text(key: str, label: str) -> str:
        s = seeds.get(key) or {}
        if not s.get("n"):
            return f"{label}: –"
        return f"{label}: median {s['median']:g} (range {s['min']:g}–{s['max']:g})"

    story: list[Any] = [
        Paragraph(
            title or "SeedPlan cohort re-analysis: pre-plan vs post-implant", styles["Title"]
        ),
        Paragraph(
            f"{summary.get('n_cases', 0)} cases, {n_ok} analysed ({status}). Generated "
            f"{dt.date.today().isoformat()}. Post-op dose: TG-43U1 from the detected seeds "
            "(formalism per case in the table). Statistics over analysed cases; paired "
            "differences are post − pre.",
            small,
        ),
        Paragraph(
            "; ".join(
                (
                    seeds_text("seeds_planned", "Seeds planned"),
                    seeds_text("seeds_implanted", "implanted"),
                    seeds_text("seeds_found", "found"),
                )
            ),
            small,
        ),
        Spacer(1, 2 * mm),
    ]
    header = [
        "Metric",
        "Unit",
        "Pre mean ± SD",
        "Pre median (IQR)",
        "Post mean ± SD",
        "Post median (IQR)",
        "Δ mean",
        "Wilcoxon p",
        "t-test p",
    ]
    data = [header, *summary_rows(summary)]
    cells = [[Paragraph(str(c), small) for c in row] for row in data]
    widths = [34, 10, 22, 27, 22, 27, 14, 16, 14]
    table = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    story += [table, Spacer(1, 3 * mm)]
    img = ImageReader(io.BytesIO(png))
    iw, ih = img.getSize()
    width = 180 * mm
    story.append(Image(io.BytesIO(png), width=width, height=width * ih / iw))
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        story.append(Spacer(1, 2 * mm))
        story.append(Paragraph("<b>Cases not analysed</b>", small))
        for r in failed[:8]:
            reason = str(r.get("reason") or "").replace("&", "&amp;").replace("<", "&lt;")
            story.append(Paragraph(f"{r.get('case_id')}: {r.get('status')} – {reason}", small))
        if len(failed) > 8:
            story.append(Paragraph(f"… and {len(failed) - 8} more (see cohort_table.csv)", small))

    def write(tmp: Path) -> None:
        doc = SimpleDocTemplate(
            str(tmp),
            pagesize=A4,
            leftMargin=12 * mm,
            rightMargin=12 * mm,
            topMargin=12 * mm,
            bottomMargin=12 * mm,
            title="SeedPlan cohort report",
        )
        doc.build(story)

    return write_with(target, write, force=force)
