"""The metrics table: target and cord metrics of the exact dose, coloured by the plan's goals.

Rows, per target: D90, D100 (Gy), V100, V150, V200 (%), CI, EI, HI, BED of D90 (Gy, α/β
10 Gy); per organ at risk: Dmax (D0.03 cm³), D0.1 cm³, D1 cm³ (Gy), minimum seed–structure
distance (mm), BED of D0.1 cm³ (Gy, α/β 2 Gy). A row for which the plan has a goal shows the
goal and is coloured pass (green) / warn (amber) / fail (red)
(:func:`planner.plan.dosimetry.goal_status`); goals on other metrics follow as their own rows.
The header line says whether the numbers are exact and current or being refreshed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from dose.metrics import OARMetrics, TargetMetrics

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from planner.plan.dosimetry import PlanDosimetry, PlanGoalResult

__all__ = ["STATUS_RGB", "MetricsPanel", "metric_rows"]

STATUS_RGB = {"pass": (40, 120, 50), "warn": (150, 110, 20), "fail": (150, 35, 35)}
_TARGET = (
    ("D90", "d90_gy", "Gy"),
    ("D100", "d100_gy", "Gy"),
    ("V100", "v100_percent", "%"),
    ("V150", "v150_percent", "%"),
    ("V200", "v200_percent", "%"),
    ("CI", "ci", ""),
    ("EI", "ei", ""),
    ("HI", "hi", ""),
    ("BED", "bed_d90_gy", "Gy"),
)
_OAR = (
    ("Dmax", "dmax_0_03cc_gy", "Gy"),
    ("D0.1cc", "d0_1cc_gy", "Gy"),
    ("D1cc", "d1cc_gy", "Gy"),
    ("MinDist", "min_seed_distance_mm", "mm"),
    ("BED", "bed_d0_1cc_gy", "Gy"),
)
_SHOWN = {
    "D90": "D90",
    "D100": "D100",
    "V100": "V100",
    "V150": "V150",
    "V200": "V200",
    "CI": "CI",
    "EI": "EI",
    "HI": "HI",
    "BED": "BED",
    "Dmax": "Dmax (0.03 cm³)",
    "D0.1cc": "D0.1 cm³",
    "D1cc": "D1 cm³",
    "MinDist": "Min seed distance",
}


def _key(metric: str) -> str:
    k = metric.replace(" ", "").lower().replace("cm3", "cc").replace("cm³", "cc")
    return k.rstrip("%") if k.startswith("d") and not k.endswith("cc") else k


def _fmt(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "—"
    if unit in ("Gy", "mm"):
        return f"{value:.1f} {unit}"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:.2f}"


def metric_rows(result: PlanDosimetry) -> list[tuple[str, str, str, PlanGoalResult | None]]:
    """(structure, metric, value text, matching goal result or None), then unmatched goals."""
    goals = {(g.structure, _key(g.goal.metric)): g for g in result.goal_results}
    used: set[int] = set()
    rows: list[tuple[str, str, str, PlanGoalResult | None]] = []
    for name, m in result.metrics.items():
        spec = (
            _TARGET if isinstance(m, TargetMetrics) else _OAR if isinstance(m, OARMetrics) else ()
        )
        for label, attr, unit in spec:
            value = float(getattr(m, attr))
            g = goals.get((name, _key(label)))
            if g is not None:
                used.add(id(g))
            rows.append((name, _SHOWN[label], _fmt(value, unit), g))
    for g in result.goal_results:
        if id(g) not in used:
            unit = {"cm3": "cm³"}.get(g.goal.unit, g.goal.unit)
            value = "—" if not math.isfinite(g.value) else f"{g.value:.1f} {unit}"
            rows.append((g.structure, g.goal.metric, value, g))
    return rows


class MetricsPanel(QWidget):
    """Metrics and goals of the latest exact dose (module docstring)."""

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__()
        self.planning = planning
        self.setObjectName("metrics_panel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("No plan")
        self.header.setObjectName("metrics_header")
        self.header.setWordWrap(True)
        layout.addWidget(self.header)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("metrics_table")
        self.table.setHorizontalHeaderLabels(["Structure", "Metric", "Value", "Goal"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        self.result: PlanDosimetry | None = None
        planning.events.exact_changed.connect(self.show_result)
        planning.events.status_changed.connect(self._on_status)
        self.show_result(None)

    def value_of(self, structure: str, metric: str) -> str:
        """The value text shown for ``metric`` of ``structure`` ("" when absent)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == structure and self.table.item(r, 1).text() == metric:
                return self.table.item(r, 2).text()
        return ""

    def show_result(self, result: PlanDosimetry | None) -> None:
        self.result = result
        self.table.setRowCount(0)
        if result is None:
            self.header.setText("No plan" if self.planning.plan is None else "No exact dose yet")
            return
        rows = metric_rows(result)
        self.table.setRowCount(len(rows))
        for r, (name, metric, value, goal) in enumerate(rows):
            goal_text = "" if goal is None else f"{goal.label} — {goal.status.upper()}"
            if goal is not None and goal.note:
                goal_text += f" ({goal.note})"
            for c, text in enumerate((name, metric, value, goal_text)):
                item = QTableWidgetItem(text)
                if goal is not None:
                    item.setBackground(QColor(*STATUS_RGB[goal.status]))
                    item.setToolTip(goal_text)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        status = result.status.upper()
        warn = ("<br>" + "<br>".join(result.warnings)) if result.warnings else ""
        self.header.setText(f"<b>Goals: {status}</b> — exact dose, current. {result.label}{warn}")

    def _on_status(self, text: str) -> None:
        if self.result is not None and ("pending" in text or "computing" in text):
            self.header.setText("<i>Updating after the edit…</i> (shown: previous exact dose)")
