"""The printed plan summary (PDF, reportlab platypus; all text selectable).

Every page: patient name and ID, plan name and revision, status (a red "NOT APPROVED FOR
TREATMENT" banner unless approved), print date and time, software name and version, "page x of
y". The body follows reference/dicom-and-integrity.md §1.2 E: prescription; source (I-125,
manufacturer and model, S_K per seed in U with mCi and the factor, calibration and implant
dates, decay, half-life), seed count and total S_K; dose formalism and data set with checksum;
metrics with goals and pass/warn/fail; DVH; isodoses on three planes; needle and seed tables
(LPS mm); cord metrics and BED; robustness; the independent check; post-op; signatures.
The needle loading sheet (:func:`loading_sheet_story`) is a page of its own for the theatre.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

__all__ = ["PageIdentity", "Section", "build_pdf", "kv_table", "table"]


def _register_fonts() -> tuple[str, str]:
    """DejaVu Sans (shipped with matplotlib, so always present): the PDF needs ∞, ≥, ², α, Ḋ,
    ½ … which the 14 standard PDF fonts lack. Embedded as TrueType subsets (text selectable)."""
    import matplotlib
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    if "SP-Sans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("SP-Sans", str(ttf / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("SP-Sans-Bold", str(ttf / "DejaVuSans-Bold.ttf")))
        pdfmetrics.registerFont(TTFont("SP-Sans-Oblique", str(ttf / "DejaVuSans-Oblique.ttf")))
        addMapping("SP-Sans", 0, 0, "SP-Sans")
        addMapping("SP-Sans", 1, 0, "SP-Sans-Bold")
        addMapping("SP-Sans", 0, 1, "SP-Sans-Oblique")
        addMapping("SP-Sans", 1, 1, "SP-Sans-Bold")
    return "SP-Sans", "SP-Sans-Bold"


FONT, FONT_BOLD = _register_fonts()
_STYLES = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontName=FONT, fontSize=8.5, leading=10.5)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7, leading=8.5)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7, leading=8.2, alignment=TA_LEFT)
H1 = ParagraphStyle(
    "h1",
    parent=_STYLES["Heading1"],
    fontName=FONT_BOLD,
    fontSize=14,
    spaceAfter=4,
    spaceBefore=2,
)
H2 = ParagraphStyle(
    "h2",
    parent=_STYLES["Heading2"],
    fontName=FONT_BOLD,
    fontSize=10.5,
    spaceBefore=6,
    spaceAfter=3,
)
STATUS_COLORS = {
    "pass": colors.HexColor("#1a7f37"),
    "warn": colors.HexColor("#b07800"),
    "fail": colors.HexColor("#c62828"),
}
PAGE = A4
MARGIN = 14 * mm


@dataclass(frozen=True)
class PageIdentity:
    """What every page carries (header and footer)."""

    patient_name: str
    patient_id: str
    plan_name: str
    revision: int
    status: str  # "draft" | "reviewed" | "approved"
    printed: datetime
    software: str
    title: str = "SeedPlan plan summary"

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@dataclass
class Section:
    """A heading and its flowables."""

    title: str
    flowables: list[Any] = field(default_factory=list)


def esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def para(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(text, style)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    widths_mm: Sequence[float] | None = None,
    status_col: int | None = None,
    font_size: float = 7.0,
) -> Table:
    """A grid table with a bold header row (repeated on every page); cells are Paragraphs."""
    style = ParagraphStyle("c", parent=CELL, fontSize=font_size, leading=font_size * 1.18)
    hstyle = ParagraphStyle("h", parent=style, fontName=FONT_BOLD)
    data = [[Paragraph(esc(h), hstyle) for h in header]]
    for r in rows:
        data.append([Paragraph(esc(c), style) for c in r])
    t = Table(
        data,
        colWidths=None if widths_mm is None else [w * mm for w in widths_mm],
        repeatRows=1,
        hAlign="LEFT",
    )
    ts = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.0),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2.0),
    ]
    if status_col is not None:
        for i, r in enumerate(rows, start=1):
            c = STATUS_COLORS.get(str(r[status_col]).lower())
            if c is not None:
                ts.append(("BACKGROUND", (status_col, i), (status_col, i), c))
                ts.append(("TEXTCOLOR", (status_col, i), (status_col, i), colors.white))
    t.setStyle(TableStyle(ts))
    return t


def kv_table(rows: Sequence[tuple[str, str]], *, key_mm: float = 48.0) -> Table:
    """Two columns: a bold label and its value."""
    key = ParagraphStyle("k", parent=CELL, fontName=FONT_BOLD, fontSize=7.5)
    val = ParagraphStyle("v", parent=CELL, fontSize=7.5, leading=9)
    data = [[Paragraph(esc(k), key), Paragraph(esc(v), val)] for k, v in rows]
    width = PAGE[0] - 2 * MARGIN
    t = Table(data, colWidths=[key_mm * mm, width - key_mm * mm], hAlign="LEFT")
    t.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.2, colors.lightgrey),
                ("TOPPADDING", (0, 0), (-1, -1), 1.0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.0),
            ]
        )
    )
    return t


def image(png: bytes, width_mm: float) -> Image:
    """A PNG scaled to ``width_mm`` (aspect kept)."""
    from reportlab.lib.utils import ImageReader

    reader = ImageReader(io.BytesIO(png))
    w, h = reader.getSize()
    return Image(io.BytesIO(png), width=width_mm * mm, height=width_mm * mm * h / w)


def _numbered_canvas(identity: PageIdentity) -> type[rl_canvas.Canvas]:
    class NumberedCanvas(rl_canvas.Canvas):
        """Draws the header and footer after the whole document is laid out (page x of y)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._saved: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's API)
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                _decorate(self, identity, self._pageNumber, total)
                super().showPage()
            super().save()

    return NumberedCanvas


def _decorate(c: rl_canvas.Canvas, ident: PageIdentity, page: int, total: int) -> None:
    width, height = PAGE
    c.saveState()
    top = height - 8 * mm
    c.setFont(FONT_BOLD, 8.5)
    c.drawString(MARGIN, top, f"{ident.patient_name}   ID {ident.patient_id}")
    c.setFont(FONT, 8)
    c.drawRightString(width - MARGIN, top, f"Plan {ident.plan_name}   revision {ident.revision}")
    if ident.approved:
        c.setFillColor(colors.HexColor("#1a7f37"))
        c.drawString(MARGIN, top - 10, "Status: APPROVED")
    else:
        c.setFillColor(colors.HexColor("#c62828"))
        c.rect(MARGIN, top - 13.5, width - 2 * MARGIN, 11, stroke=0, fill=1)
        c.setFillColor(colors.white)
        c.setFont(FONT_BOLD, 8.5)
        c.drawCentredString(
            width / 2, top - 10.5, f"{ident.status.upper()} — NOT APPROVED FOR TREATMENT"
        )
    c.setFillColor(colors.black)
    c.setStrokeColor(colors.grey)
    c.line(MARGIN, 11 * mm, width - MARGIN, 11 * mm)
    c.setFont(FONT, 7)
    c.drawString(MARGIN, 7 * mm, f"Printed {ident.printed.isoformat(sep=' ', timespec='seconds')}")
    c.drawCentredString(width / 2, 7 * mm, f"{ident.software} — {ident.title}")
    c.drawRightString(width - MARGIN, 7 * mm, f"page {page} of {total}")
    c.restoreState()


def build_pdf(identity: PageIdentity, story: list[Any], *, title: str, subject: str) -> bytes:
    """Lay out ``story`` with the header/footer of :class:`PageIdentity`; returns PDF bytes."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + 8 * mm,
        bottomMargin=MARGIN + 2 * mm,
        title=title,
        author=identity.software,
        subject=subject,
        creator=identity.software,
    )
    doc.build(story, canvasmaker=_numbered_canvas(identity))
    return buf.getvalue()


def heading(text: str, level: int = 2) -> Paragraph:
    return Paragraph(esc(text), H1 if level == 1 else H2)


def section_flowables(sections: Sequence[Section]) -> list[Any]:
    """Headings kept with the start of their content."""
    out: list[Any] = []
    for s in sections:
        out.append(CondPageBreak(30 * mm))
        first = s.flowables[:1]
        out.append(KeepTogether([heading(s.title), *first]))
        out.extend(s.flowables[1:])
    return out


__all__ += ["PageBreak", "Spacer", "esc", "heading", "image", "para", "section_flowables"]
