"""The post-op mode's result panels: the planned vs post-op comparison table, both DVHs and
where the seeds lie.

:class:`ComparisonTable` shows one row per metric of every target and organ at risk: planned,
intra-op (when an intra-op plan was given), post-op, and post-op − planned (signed, to the
decimals of the values beside it), each with its unit;
one block per structure — the prescription's reference structure first, then the other
targets, the organs at risk (cord first), the rest
(:func:`planner.postop.verify.comparison_order`) — the metrics a clinician reads first (D90,
V100, D0.1 cm³) first within each block.
:class:`DVHPlot` draws every structure's cumulative DVH of the plan (solid) and of the implant
(dashed) in the structure's colour, with the prescription marked.
:class:`SeedLocationTable` lists every detected seed, those not inside the target first:
migrated (red: outside and far from every planned needle), then outside (orange), each with its
distance to the target and to the nearest planned needle track; the seed counts (all, inside,
outside, migrated) are the comparison's "Seeds" rows.
:class:`MetalTable` lists the non-seed metal the detection excluded (screws, rods, cement,
needles left in): centre (LPS mm), volume (mm³), seed equivalents and why it was excluded;
the view outlines each in magenta, numbered as here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from planner.plan.dosimetry import PlanDosimetry
from planner.plan.verification import (
    ComparisonRow,
    difference_text,
    key_metrics_first,
    metric_label,
    value_text,
)
from planner.postop.detection.detect import MetalObject
from planner.postop.locations import SeedLocations
from planner.postop.record import with_intraop

__all__ = ["ComparisonTable", "DVHPlot", "MetalTable", "SeedLocationTable", "table_rows"]

_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def table_rows(
    comparison: Sequence[ComparisonRow],
    intraop: PlanDosimetry | None = None,
    intraop_counts: Mapping[str, float] | None = None,
    structure_order: Sequence[str] | None = None,
) -> list[tuple[str, str, str, float | None, float | None, float | None, float | None]]:
    """``(structure, metric label, unit, planned, intra-op, post-op, post-op − planned)`` rows,
    the key metrics first (module docstring); intra-op is None without an intra-op plan (its
    dose metrics from ``intraop``, its seed counts, structure "Seeds", from
    ``intraop_counts``). ``structure_order``: the blocks' order (the plan's
    :func:`~planner.postop.verify.comparison_order`); structures it does not name follow in
    the comparison's order."""

    rows = key_metrics_first(with_intraop(comparison, intraop, intraop_counts), structure_order)
    intra = intraop is not None
    return [
        (
            r.structure,
            metric_label(r.metric),
            r.unit,
            r.planned,
            r.intraop if intra else None,
            r.postop,
            r.difference,
        )
        for r in rows
    ]


_LOCATION_COLOURS = {"migrated": "#c0392b", "outside": "#d35400", "unknown": "#7f8c8d"}
_LOCATION_ORDER = {"migrated": 0, "outside": 1, "unknown": 2, "inside": 3}


class SeedLocationTable(QTableWidget):
    """Where every detected seed lies (module docstring); one row per seed, not-inside first."""

    HEADERS = (
        "Seed",
        "Location",
        "Target",
        "To target (mm)",
        "To needle (mm)",
        "Position (LPS mm, planning CT)",
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setObjectName("postop_seed_locations")
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        #: Seed indices in row order (tests and selection read it).
        self.order: list[int] = []

    def show_locations(self, locations: SeedLocations | None) -> None:
        seeds = [] if locations is None else list(locations.seeds)
        seeds.sort(key=lambda s: (_LOCATION_ORDER[s.location], s.index))
        self.order = [s.index for s in seeds]
        self.setRowCount(len(seeds))
        for r, s in enumerate(seeds):
            cells = (
                f"{s.index + 1}",
                s.location,
                s.structure or "—",
                "—" if s.distance_to_target_mm is None else f"{s.distance_to_target_mm:.1f}",
                "—" if s.distance_to_track_mm is None else f"{s.distance_to_track_mm:.1f}",
                ", ".join(f"{v:.1f}" for v in s.position_mm),
            )
            colour = _LOCATION_COLOURS.get(s.location)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (0, 3, 4):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if colour is not None:
                    item.setForeground(QBrush(QColor(colour)))
                self.setItem(r, c, item)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


class MetalTable(QTableWidget):
    """The excluded non-seed metal, one row per object (module docstring)."""

    HEADERS = ("Metal", "Centre (LPS mm)", "Volume (mm³)", "Seed equivalents", "Excluded because")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setObjectName("postop_metal")
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        #: The objects listed, in row order.
        self.objects: list[MetalObject] = []

    def show_metal(self, metal: Sequence[MetalObject] | None) -> None:
        self.objects = list(metal or ())
        self.setRowCount(len(self.objects))
        for r, m in enumerate(self.objects):
            cells = (
                f"M{r + 1}",
                ", ".join(f"{v:.1f}" for v in m.centre_mm),
                f"{m.volume_mm3:.0f}",
                f"{m.seed_equivalents:.1f}",
                m.reason,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (2, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if c == 0:
                    item.setForeground(QBrush(QColor("#c000c0")))
                self.setItem(r, c, item)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


class ComparisonTable(QTableWidget):
    """Planned | intra-op | post-op | difference, one row per metric (module docstring)."""

    HEADERS = ("Structure", "Metric", "Planned", "Intra-op", "Post-op", "Δ post − plan", "Unit")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setObjectName("postop_comparison")
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setColumnHidden(3, True)

    def show_rows(
        self,
        comparison: Sequence[ComparisonRow],
        intraop: PlanDosimetry | None = None,
        intraop_counts: Mapping[str, float] | None = None,
        structure_order: Sequence[str] | None = None,
    ) -> None:
        rows = table_rows(comparison, intraop, intraop_counts, structure_order)
        self.setColumnHidden(3, intraop is None)
        self.setRowCount(len(rows))
        for r, (structure, metric, unit, planned, intra, post, diff) in enumerate(rows):
            cells = (
                structure,
                metric,
                value_text(planned, unit),
                value_text(intra, unit),
                value_text(post, unit),
                difference_text(diff, planned, post, unit),
                unit,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2 and c <= 5:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                # Colour large relative changes of a metric (≥ 10 % of the planned value).
                if c == 5 and diff is not None and planned and abs(diff) >= 0.1 * abs(planned):
                    item.setForeground(QBrush(QColor("#c0392b")))
                self.setItem(r, c, item)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


class DVHPlot(FigureCanvasQTAgg):
    """Cumulative DVHs: plan solid, implant dashed (module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.figure = Figure(figsize=(5.0, 3.2), dpi=90, layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setObjectName("postop_dvh")
        self.axes = self.figure.add_subplot(1, 1, 1)
        #: (structure, "planned" | "postop") of every curve drawn (tests read it).
        self.curves: list[tuple[str, str]] = []
        self._empty()

    def _empty(self) -> None:
        ax = self.axes
        ax.clear()
        ax.set_xlabel("Dose (Gy)")
        ax.set_ylabel("Volume (%)")
        ax.set_ylim(0, 105)
        ax.grid(True, alpha=0.3)

    def show_dvhs(self, planned: PlanDosimetry, postop: PlanDosimetry) -> None:
        self._empty()
        self.curves.clear()
        ax = self.axes
        pd = planned.prescription_gy
        x_max = 0.0
        for n, (name, dvh) in enumerate(planned.dvhs.items()):
            colour = _COLOURS[n % len(_COLOURS)]
            for which, d, style in (("planned", dvh, "-"), ("postop", postop.dvhs.get(name), "--")):
                if d is None:
                    continue
                ax.plot(
                    d.bin_edges_gy,
                    d.cumulative_percent,
                    style,
                    color=colour,
                    lw=1.6,
                    label=f"{name} {'plan' if which == 'planned' else 'post-op'}",
                )
                self.curves.append((name, which))
                x_max = max(x_max, float(d.d_percent(1.0)) if d.volume_cm3 > 0 else 0.0)
        if pd:
            x_max = min(x_max, 3.0 * pd)  # the clinically read range: up to 3 × Rx
            ax.axvline(pd, color="0.4", lw=1.0, ls=":")
            ax.text(pd, 101, f" Rx {pd:g} Gy", fontsize=8, color="0.3", va="bottom")
            x_max = max(x_max, 2.0 * pd)
        ax.set_xlim(0, max(x_max * 1.05, 1.0))
        ax.set_title(
            f"DVH — plan (solid, {planned.formalism.upper()}) vs post-op "
            f"(dashed, {postop.formalism.upper()})",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
        self.draw_idle()
