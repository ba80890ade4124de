"""The metrics table: target and cord metrics of the exact dose, coloured by the plan's goals.

Rows, per target: D90, D100 (Gy), V100, V150, V200 (%), CI, EI, HI, BED of D90 (Gy, α/β
10 Gy); per organ at risk: Dmax (D0.03 cm³), D0.1 cm³, D1 cm³ (Gy), minimum seed–structure
distance (mm), BED of D0.1 cm³ (Gy, α/β 2 Gy). A row for which the plan has a goal shows the
goal and is coloured pass (green) / warn (amber) / fail (red)
(:func:`planner.plan.dosimetry.goal_status`); goals on other metrics follow as their own rows.
The panel lists the rows with a goal first (pass/fail readable in the first lines of a short
dock), then the other metrics in the order above.
The header line says whether the numbers are exact and current or being refreshed.

Below, once Workflow → Robustness… has run on the current plan state
(``planning.robustness``), the robustness table: target D90, V100 and cord D0.1 cm³ as
planned and as 5th / median / 95th percentile over the sampled needle errors. Where the plan
has a goal on that metric, the worst-case percentile (5th for a ≥ goal, 95th for a ≤ goal) is
coloured pass / warn / fail against it. The table disappears when the plan is edited (the
result described the plan before the edit).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from dose.metrics import OARMetrics, TargetMetrics
from planner.plan.dosimetry import goal_status

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from planner.optimise.robustness import RobustnessResult
    from planner.plan.dosimetry import PlanDosimetry, PlanGoalResult
    from planner.plan.model import Goal, Plan

__all__ = ["ROBUST_COLUMNS", "STATUS_RGB", "MetricsPanel", "metric_rows", "robustness_rows"]

ROBUST_COLUMNS = ("Structure", "Metric", "Planned", "5th", "Median", "95th")
_ROBUST = {
    "d90_gy": ("D90", "Gy"),
    "v100_percent": ("V100", "%"),
    "cord_d0_1cc_gy": ("D0.1 cm³", "Gy"),
}

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


def robustness_rows(
    result: RobustnessResult, plan: Plan | None
) -> list[tuple[str, str, list[str], int | None, Goal | None, float]]:
    """(structure, metric, [planned, p5, median, p95] texts, column of the worst-case
    percentile checked against a goal (3 = 5th, 5 = 95th) or None, that goal, its value)."""
    goals: dict[tuple[str, str], Goal] = {}
    if plan is not None:
        names = {s.id: s.name for s in plan.structures}
        for g in plan.goals:
            goals[(names.get(g.structure_id, ""), _key(g.metric))] = g
    rows = []
    for key, pct in result.percentiles().items():
        label, unit = _ROBUST.get(key, (key, ""))
        who = (result.cord or "") if key.startswith("cord") else result.target
        values = [result.nominal.get(key, math.nan), pct["p5"], pct["median"], pct["p95"]]
        texts = [_fmt(math.nan if v is None else float(v), unit) for v in values]
        goal = goals.get((who, _key(label.replace(" cm³", "cc"))))
        col: int | None = None
        worst = math.nan
        if goal is not None:
            col = 3 if goal.comparison == ">=" else 5
            v = values[1] if goal.comparison == ">=" else values[3]
            worst = math.nan if v is None else float(v)
        rows.append((who, label, texts, col, goal, worst))
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
        # Compact rows: a dock a third of the window high shows a dozen of them.
        row_px = self.table.fontMetrics().height() + 6
        self.table.verticalHeader().setDefaultSectionSize(row_px)
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + 4 * row_px)
        layout.addWidget(self.table, 1)
        self.robust_header = QLabel("")
        self.robust_header.setObjectName("robustness_header")
        self.robust_header.setWordWrap(True)
        layout.addWidget(self.robust_header)
        self.robust_table = QTableWidget(0, len(ROBUST_COLUMNS))
        self.robust_table.setObjectName("robustness_table")
        self.robust_table.setHorizontalHeaderLabels(ROBUST_COLUMNS)
        self.robust_table.verticalHeader().setVisible(False)
        self.robust_table.horizontalHeader().setStretchLastSection(True)
        self.robust_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.robust_table.verticalHeader().setDefaultSectionSize(row_px)
        layout.addWidget(self.robust_table)
        self.result: PlanDosimetry | None = None
        planning.events.exact_changed.connect(self.show_result)
        planning.events.status_changed.connect(self._on_status)
        planning.events.robustness_changed.connect(self.show_robustness)
        self.show_result(None)
        self.show_robustness(None)

    def robust_value_of(self, structure: str, metric: str, column: str) -> str:
        """The robustness table's text for ``metric`` of ``structure`` in ``column``
        (one of :data:`ROBUST_COLUMNS`); "" when absent."""
        c = ROBUST_COLUMNS.index(column)
        t = self.robust_table
        for r in range(t.rowCount()):
            if t.item(r, 0).text() == structure and t.item(r, 1).text() == metric:
                return t.item(r, c).text()
        return ""

    def show_robustness(self, result: RobustnessResult | None) -> None:
        """The robustness table of ``result`` (None: hidden)."""
        t = self.robust_table
        t.setRowCount(0)
        if result is None:
            self.robust_header.setVisible(False)
            t.setVisible(False)
            return
        rows = robustness_rows(result, self.planning.plan)
        t.setRowCount(len(rows))
        for r, (who, label, texts, col, goal, worst) in enumerate(rows):
            for c, text in enumerate((who, label, *texts)):
                item = QTableWidgetItem(text)
                if goal is not None and c == col:
                    status = goal_status(goal, worst)
                    item.setBackground(QColor(*STATUS_RGB[status]))
                    which = "5th" if col == 3 else "95th"
                    item.setToolTip(
                        f"{which} percentile against the goal {goal.metric} "
                        f"{goal.comparison} {goal.value:g} {goal.unit}: {status.upper()}"
                    )
                t.setItem(r, c, item)
        t.resizeColumnsToContents()
        height = t.horizontalHeader().height() + 2 * t.frameWidth()
        height += sum(t.rowHeight(r) for r in range(t.rowCount()))
        t.setFixedHeight(height)  # every row visible, the metrics keep the rest
        n = int(result.d90_gy.size)
        m = result.model
        self.robust_header.setText(
            f"<b>Robustness</b> — {n} samples of needle placement errors (bands on the DVH)"
        )
        self.robust_header.setToolTip(
            f"Error model: entry {m.entry_mm[0]:g} ± {m.entry_mm[1]:g} mm, angle "
            f"{m.angle_deg[0]:g} ± {m.angle_deg[1]:g}°, depth {m.depth_mm[0]:g} ± "
            f"{m.depth_mm[1]:g} mm, seed jitter {m.seed_jitter_mm:g} mm; exact TG-43 at the "
            "CT voxel centres of the target and the cord"
        )
        self.robust_header.setVisible(True)
        t.setVisible(True)

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
        rows = sorted(metric_rows(result), key=lambda row: row[3] is None)  # goals first
        self.table.setRowCount(len(rows))
        for r, (name, metric, value, goal) in enumerate(rows):
            goal_text = tip = ""
            if goal is not None:
                # The structure is in the first column: the goal cell keeps the limit and status.
                label = goal.label.removeprefix(f"{name} ")
                goal_text = f"{label} — {goal.status.upper()}"
                tip = f"{goal.label} — {goal.status.upper()}"
                if goal.note:
                    goal_text += f" ({goal.note})"
                    tip += f" ({goal.note})"
            for c, text in enumerate((name, metric, value, goal_text)):
                item = QTableWidgetItem(text)
                if goal is not None:
                    item.setBackground(QColor(*STATUS_RGB[goal.status]))
                    item.setToolTip(tip)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        status = result.status.upper()
        warn = ("<br>" + "<br>".join(result.warnings)) if result.warnings else ""
        # One line above the table (the dose engine's details are in the tooltip and the status
        # bar): the table keeps the height of the dock.
        self.header.setText(f"<b>Goals: {status}</b> — exact dose, current{warn}")
        self.header.setToolTip(result.label)

    def _on_status(self, text: str) -> None:
        if self.result is not None and ("pending" in text or "computing" in text):
            self.header.setText("<i>Updating after the edit…</i> (shown: previous exact dose)")
