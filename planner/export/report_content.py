"""What the plan summary PDF and the loading sheet say: sections built from the plan and its
dosimetry (layout in :mod:`planner.export.report_pdf`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from reportlab.platypus import KeepTogether

from dose.metrics import OARMetrics, TargetMetrics
from dose.sources import SourceModel
from dose.units import I125_HALF_LIFE_DAYS, I125_MEAN_LIFE_H, U_PER_MCI_I125
from planner.export.needle_table import NeedleRow, SeedRow
from planner.export.report_pdf import (
    FONT,
    FONT_BOLD,
    H1,
    SMALL,
    PageIdentity,
    Section,
    Spacer,
    image,
    kv_table,
    para,
    section_flowables,
    table,
)
from planner.export.report_verification import verification_section
from planner.plan.model import Plan
from planner.plan.verification import VerificationRecord

__all__ = ["CheckPoint", "ReportInputs", "loading_sheet_story", "report_story"]


@dataclass(frozen=True)
class CheckPoint:
    """One independent-check point: main (numba, exact) vs reference (pure numpy) engine."""

    label: str
    position_mm: tuple[float, float, float]
    main_gy: float
    reference_gy: float

    @property
    def difference_percent(self) -> float:
        if self.reference_gy == 0:
            return 0.0 if self.main_gy == 0 else math.inf
        return 100.0 * (self.main_gy - self.reference_gy) / self.reference_gy


@dataclass
class ReportInputs:
    """Everything the report shows (assembled by :func:`planner.export.export.export_plan`)."""

    plan: Plan
    dosimetry: Any
    model: SourceModel
    identity: PageIdentity
    ct_description: str
    content_sha256: str
    needle_rows: list[NeedleRow]
    seed_rows: list[SeedRow]
    seed_length_mm: float
    dvh_png: bytes
    isodose_pngs: list[bytes]
    checks: list[CheckPoint]
    robustness: Mapping[str, Any] | None = None
    verification: VerificationRecord | None = None
    #: The verification's figures: DVHs planned vs post-op, seeds planned vs implanted.
    verification_pngs: tuple[bytes, bytes] | None = None
    notes: list[str] = field(default_factory=list)


def _gy(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f} Gy"


def _num(v: float | None, fmt: str = ".2f", unit: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:{fmt}}{(' ' + unit) if unit else ''}"


def _mm3(p: tuple[float, float, float] | Any) -> str:
    return ", ".join(f"{float(v):.1f}" for v in p)


def _source_section(r: ReportInputs) -> Section:
    plan, src, m = r.plan, r.plan.source, r.model
    rows: list[tuple[str, str]] = [("Radionuclide", "I-125 (half-life used 59.40 d)")]
    rows.append(("Manufacturer and model", f"{m.manufacturer}, model {m.model} ({m.model_id})"))
    if src is not None and src.strength_u is not None:
        mci = src.strength_u / U_PER_MCI_I125
        entered = " (entered as mCi)" if src.entered_as == "mCi" else ""
        rows.append(
            (
                "S_K per seed at calibration",
                f"{src.strength_u:.4f} U = {mci:.4f} mCi apparent activity "
                f"(factor {U_PER_MCI_I125:.3f} U/mCi){entered}",
            )
        )
        cal = src.calibration_date.isoformat() if src.calibration_date else "not given"
        imp = src.implant_date.isoformat() if src.implant_date else "not given"
        rows.append(("Calibration (reference) date", cal))
        rows.append(("Implant date", imp))
        at = src.strength_at_implant_u
        rows.append(
            (
                "Decay to implant",
                f"factor {src.decay_factor:.5f} (T½ {I125_HALF_LIFE_DAYS:.2f} d); S_K at implant "
                f"{at:.4f} U = {at / U_PER_MCI_I125:.4f} mCi"
                if at is not None
                else "—",
            )
        )
    else:
        rows.append(("S_K per seed", "not given"))
    seeds = r.dosimetry.seeds
    n = len(plan.seeds)
    per_seed = [sr.strength_u for sr in r.seed_rows]
    total_cal = float(np.nansum(per_seed)) if per_seed else 0.0
    total_imp = float(seeds.total_strength_u) if n else 0.0
    rows.append(("Number of seeds", str(n)))
    rows.append(
        (
            "Total S_K",
            f"{total_cal:.3f} U at calibration; {total_imp:.3f} U at implant "
            f"(= {total_imp / U_PER_MCI_I125:.3f} mCi)",
        )
    )
    on_needles = sum(1 for s in plan.seeds if s.needle_id is not None)
    rows.append(("Seeds on needles / free", f"{on_needles} / {n - on_needles}"))
    return Section("Source", [kv_table(rows)])


def _formalism_section(r: ReportInputs) -> Section:
    d = r.dosimetry
    f = str(d.formalism).lower()
    kind = (
        "2D line-source formalism (g_L(r), F(r, θ))"
        if f == "2d"
        else "1D formalism (point/line source with φ_an(r))"
    )
    g = d.geometry
    rows = [
        ("Formalism", f"AAPM TG-43U1, {kind}"),
        (
            "Dose specification",
            "dose to water in water (D_w,w); no heterogeneity, interseed "
            "attenuation or patient-scatter correction",
        ),
        (
            "Dose quantity",
            f"total permanent-implant dose D∞ = Ḋ₀·τ, τ = T½/ln 2 = {I125_MEAN_LIFE_H:.1f} h",
        ),
        ("Data set", f"{r.model.describe()}; {r.model.provenance.get('summary', '')}"),
        ("Data checksum (SHA-256)", str(d.model_sha256)),
        (
            "Dose grid",
            f"{' × '.join(map(str, g.shape_xyz))} voxels at "
            f"{' × '.join(f'{v:g}' for v in g.spacing_mm)} mm, origin "
            f"({_mm3(g.origin_mm)}) mm LPS; exact evaluation of every seed–voxel pair",
        ),
    ]
    for w in getattr(d, "warnings", []) or []:
        rows.append(("Warning", str(w)))
    return Section("Dose calculation", [kv_table(rows)])


def _metrics_section(r: ReportInputs) -> Section:
    d = r.dosimetry
    rows = []
    for name, m in d.metrics.items():
        if isinstance(m, TargetMetrics):
            rows += [
                (name, "Volume", _num(m.volume_cm3, ".2f", "cm³")),
                (name, "D90", _gy(m.d90_gy)),
                (name, "D100 (Dmin)", _gy(m.d100_gy)),
                (
                    name,
                    "V100 / V150 / V200",
                    f"{m.v100_percent:.1f} / {m.v150_percent:.1f} / {m.v200_percent:.1f} %",
                ),
                (name, "Dmean", _gy(m.dmean_gy)),
                (name, "CI / EI / HI", f"{_num(m.ci)} / {_num(m.ei)} / {_num(m.hi)}"),
            ]
        elif isinstance(m, OARMetrics):
            rows += [
                (name, "Volume", _num(m.volume_cm3, ".2f", "cm³")),
                (
                    name,
                    "Dmax (voxel) / D0.03 cm³",
                    f"{_gy(m.dmax_voxel_gy)} / {_gy(m.dmax_0_03cc_gy)}",
                ),
                (
                    name,
                    "D0.1 cm³ / D1 cm³ / D2 cm³",
                    f"{_gy(m.d0_1cc_gy)} / {_gy(m.d1cc_gy)} / {_gy(m.d2cc_gy)}",
                ),
                (name, "Dmean", _gy(m.dmean_gy)),
                (name, "Nearest seed centre", _num(m.min_seed_distance_mm, ".1f", "mm")),
            ]
    metrics_table = table(["Structure", "Metric", "Value"], rows, widths_mm=(40, 60, 82))
    flow: list[Any] = []
    goals = []
    for g in d.goal_results:
        unit = {"cm3": "cm³"}.get(g.goal.unit, g.goal.unit)
        val = "—" if not math.isfinite(g.value) else f"{g.value:.2f} {unit}"
        goals.append((g.label, val, g.status.upper(), getattr(g, "note", "")))
    if goals:  # the goals first, kept on one page
        goal_table = table(
            ["Goal", "Value", "Result", "Note"], goals, widths_mm=(70, 30, 18, 64), status_col=2
        )
        flow.append(KeepTogether([goal_table, Spacer(1, 4)]))
    else:
        flow.append(para("No planning goals are defined in this plan."))
    flow.append(metrics_table)
    return Section("Goals and metrics", flow)


def _cord_section(r: ReportInputs) -> Section:
    rows = []
    for name, m in r.dosimetry.metrics.items():
        if isinstance(m, OARMetrics):
            ab = f"{m.alpha_beta_gy:g} Gy"
            rows.append(
                (
                    name,
                    ab,
                    "D0.1 cm³",
                    _gy(m.d0_1cc_gy),
                    _gy(m.bed_d0_1cc_gy),
                    _gy(m.eqd2_d0_1cc_gy),
                )
            )
            rows.append(
                (
                    name,
                    ab,
                    "D0.03 cm³ (Dmax)",
                    _gy(m.dmax_0_03cc_gy),
                    _gy(m.bed_dmax_0_03cc_gy),
                    _gy(m.eqd2_dmax_0_03cc_gy),
                )
            )
        elif isinstance(m, TargetMetrics):
            rows.append(
                (
                    name,
                    f"{m.alpha_beta_gy:g} Gy",
                    "D90",
                    _gy(m.d90_gy),
                    _gy(m.bed_d90_gy),
                    _gy(m.eqd2_d90_gy),
                )
            )
    flow: list[Any] = [
        table(
            ["Structure", "α/β", "Metric", "Physical dose", "BED", "EQD2"],
            rows,
            widths_mm=(36, 18, 36, 30, 30, 30),
        ),
        para(
            "BED: Dale's permanent-implant formula BED = D·[1 + λD/((μ + λ)·α/β)], repair "
            "half-time 1.5 h, T½ 59.40 d; EQD2 = BED/(1 + 2/(α/β)).",
            SMALL,
        ),
    ]
    return Section("Organs at risk (cord) and biological dose", flow)


def _needle_section(r: ReportInputs) -> Section:
    rows = []
    for n in r.needle_rows:
        seeds = "; ".join(f"#{s.number} {s.from_tip_mm:.1f}" for s in n.seeds) or "—"
        rows.append(
            (
                n.order,
                n.label,
                _mm3(n.needle.entry_mm),
                _mm3(n.needle.tip_mm),
                f"{n.depth_mm:.1f}",
                f"{n.tilt_deg:+.1f} / {n.axial_angle_deg:+.1f}",
                len(n.seeds),
                seeds,
            )
        )
    flow: list[Any] = [
        para(
            "Coordinates: DICOM patient coordinates (LPS), mm. Depth: entry to tip (mm). "
            "Angles (°): tilt out of the axial plane (+ toward the head) / axial-plane angle "
            "from anterior (+ toward the patient's left). Seeds: number and distance of the "
            "centre from the tip (mm).",
            SMALL,
        ),
        table(
            [
                "#",
                "Needle",
                "Entry x, y, z",
                "Tip x, y, z",
                "Depth",
                "Tilt / axial",
                "Seeds",
                "Seeds from tip (mm)",
            ],
            rows,
            widths_mm=(7, 14, 31, 31, 13, 20, 11, 55),
            font_size=6.5,
        ),
    ]
    if not rows:
        flow = [para("The plan has no needles.")]
    return Section("Needles", flow)


def _seed_section(r: ReportInputs) -> Section:
    rows = []
    for s in r.seed_rows:
        rows.append(
            (
                s.number,
                s.needle_label or "free",
                _mm3(s.seed.position_mm).split(", ")[0],
                f"{s.seed.position_mm[1]:.1f}",
                f"{s.seed.position_mm[2]:.1f}",
                ", ".join(f"{v:.2f}" for v in s.seed.axis),
                f"{s.strength_u:.3f}",
            )
        )
    flow: list[Any] = [
        para(
            "Seed centres in DICOM patient coordinates (LPS), mm; axis: unit vector of the "
            "seed's long axis; S_K at the calibration date (U).",
            SMALL,
        ),
        table(
            ["Seed", "Needle", "x (mm)", "y (mm)", "z (mm)", "Axis", "S_K (U)"],
            rows,
            widths_mm=(12, 18, 22, 22, 22, 40, 18),
            font_size=6.5,
        ),
    ]
    return Section("Seed coordinates", flow)


def _kv_or(title: str, data: Mapping[str, Any] | None, absent: str) -> Section:
    if not data:
        return Section(title, [para(absent)])
    return Section(title, [kv_table([(str(k), str(v)) for k, v in data.items()])])


def _nearest_seed_mm(r: ReportInputs, p: tuple[float, float, float]) -> float:
    pos = np.asarray(r.dosimetry.seeds.positions_mm).reshape(-1, 3)
    return float(np.min(np.linalg.norm(pos - np.asarray(p), axis=1))) if len(pos) else math.nan


def _check_section(r: ReportInputs) -> Section:
    rows = [
        (
            c.label,
            _mm3(c.position_mm),
            _num(_nearest_seed_mm(r, c.position_mm), ".1f", "mm"),
            f"{c.main_gy:.2f} Gy",
            f"{c.reference_gy:.2f} Gy",
            f"{c.difference_percent:+.4f} %",
        )
        for c in r.checks
    ]
    flow: list[Any] = [
        para(
            "Point doses D∞ recomputed by the independent pure-numpy reference engine (same "
            "TG-43U1 data, separate implementation) and by the planning engine (numba, exact "
            "mode)."
        ),
        table(
            [
                "Point",
                "Position x, y, z (mm)",
                "Nearest seed",
                "Planning engine",
                "Reference engine",
                "Difference",
            ],
            rows,
            widths_mm=(40, 38, 22, 28, 28, 26),
        ),
    ]
    if not rows:
        flow = [para("No check point (no target or no seeds).")]
    return Section("Independent check", flow)


def _sign_row(header: list[str]) -> Any:
    """A header row and one empty row tall enough to sign in."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    t = Table(
        [header, [""] * len(header)],
        colWidths=[45 * mm, 45 * mm, 55 * mm, 37 * mm],
        rowHeights=[6 * mm, 12 * mm],
        hAlign="LEFT",
    )
    t.setStyle(
        TableStyle(
            [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("FONT", (0, 0), (-1, -1), FONT_BOLD, 8)]
        )
    )
    return t


def _signatures() -> Section:
    rows = [
        ["Role", "Name", "Signature", "Date"],
        ["Radiation oncologist", "", "", ""],
        ["Medical physicist", "", "", ""],
        ["Independent check by", "", "", ""],
    ]
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    t = Table(
        rows,
        colWidths=[45 * mm, 50 * mm, 55 * mm, 30 * mm],
        rowHeights=[6 * mm] + [12 * mm] * 3,
        hAlign="LEFT",
    )
    t.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("FONT", (0, 0), (-1, 0), FONT_BOLD, 8),
                ("FONT", (0, 1), (-1, -1), FONT, 8),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return Section("Approval", [t])


def report_story(r: ReportInputs) -> list[Any]:
    """The flowables of the plan summary PDF."""
    plan = r.plan
    rx = plan.prescription
    summary = [
        ("Patient", f"{r.identity.patient_name}   (ID {plan.ct.patient_id})"),
        ("CT", r.ct_description),
        ("Plan", f"{plan.name or '(unnamed)'}, revision {plan.revision}, status {plan.status}"),
        ("Plan UID / content SHA-256", f"{plan.plan_uid} / {r.content_sha256[:16]}…"),
        ("Created", plan.created_utc or "—"),
    ]
    if plan.is_approved:
        summary.append(("Approved", f"{plan.approved_by} at {plan.approved_utc}"))
    if rx is not None:
        summary.insert(
            3,
            (
                "Prescription",
                f"{rx.metric} of {plan.structure(rx.structure_id).name} ≥ "
                f"{rx.dose_gy:g} Gy (total permanent-implant dose D∞, TG-43U1)",
            ),
        )
    else:
        summary.insert(3, ("Prescription", "none"))
    story: list[Any] = [
        para(f"<b>{r.identity.title}</b>", H1),
        kv_table(summary),
    ]
    for note in r.notes:
        story.append(para(f"<b>Note:</b> {note}"))
    sections = [
        _source_section(r),
        _formalism_section(r),
        _metrics_section(r),
        Section("Dose-volume histogram", [image(r.dvh_png, 178)]),
    ]
    iso = [image(p, 57) for p in r.isodose_pngs]
    from reportlab.platypus import Table

    if iso:
        grid = Table([iso], hAlign="LEFT")
        sections.append(Section("Isodoses through the target centroid", [grid]))
    else:
        sections.append(Section("Isodoses", [para("No target or prescription: not drawn.")]))
    sections += [
        _needle_section(r),
        _seed_section(r),
        _cord_section(r),
        _kv_or("Robustness", r.robustness, "Robustness was not computed for this plan."),
        _check_section(r),
        verification_section(
            r.verification,
            plan,
            dvh_png=None if r.verification_pngs is None else r.verification_pngs[0],
            seeds_png=None if r.verification_pngs is None else r.verification_pngs[1],
        ),
        _signatures(),
    ]
    story += section_flowables(sections)
    return story


def loading_sheet_story(r: ReportInputs) -> list[Any]:
    """The needle loading sheet (one page per ~20 needles) for the operating room."""
    rows = []
    for n in r.needle_rows:
        rows.append(
            (
                n.order,
                n.label,
                _mm3(n.needle.entry_mm),
                f"{n.depth_mm:.1f}",
                len(n.seeds),
                n.n_spacers,
                f"{n.loaded_length_mm:.1f}",
                n.sequence_text,
            )
        )
    n_seeds = sum(len(n.seeds) for n in r.needle_rows)
    n_spacers = sum(n.n_spacers for n in r.needle_rows)
    free = sum(1 for s in r.plan.seeds if s.needle_id is None)
    src = r.plan.source
    strength = (
        ""
        if src is None or src.strength_u is None
        else (
            f"{src.strength_u:.4f} U ({src.strength_u / U_PER_MCI_I125:.4f} mCi) per seed at "
            f"calibration {src.calibration_date or 'date not given'}"
        )
    )
    story: list[Any] = [
        para("<b>Needle loading sheet</b>", H1),
        kv_table(
            [
                (
                    "Seed",
                    f"{r.model.manufacturer} {r.model.model}, I-125, length "
                    f"{r.seed_length_mm:.2f} mm; {strength}",
                ),
                (
                    "Totals",
                    f"{len(r.needle_rows)} needles, {n_seeds} seeds on needles, "
                    f"{n_spacers} spacers, {free} free seeds; {len(r.plan.seeds)} seeds in all",
                ),
                (
                    "Order",
                    "insert in the order given; load each needle from its tip: the sequence "
                    "lists the items from the tip outward (spacer lengths in mm)",
                ),
            ]
        ),
        Spacer(1, 4),
        table(
            [
                "#",
                "Needle",
                "Entry x, y, z (mm LPS)",
                "Depth (mm)",
                "Seeds",
                "Spacers",
                "Loaded (mm)",
                "Sequence from the tip",
            ],
            rows,
            widths_mm=(7, 13, 30, 14, 10, 14, 14, 80),
            font_size=7,
        ),
        Spacer(1, 8),
        _sign_row(["Loaded by", "Checked by", "Seeds counted (in / out)", "Date"]),
    ]
    return story
