"""The needle table and loading controls (a dock): one row per needle, the loading summary.

Columns: name (editable: renames the needle, undoable), length, insertion depth (mm), angles
to the axial and sagittal planes (°), entry and tip (LPS mm), seeds on it, warnings (never
blocking: the row is coloured orange, red when the track passes through a structure to avoid;
the full text is in the cell and its tooltip). Selecting a row selects the needle in the views
and moves the crosshair to where it meets the target, or its tip.

Below: loading from the tip (seed spacing 5–15 mm, default 10; margin mm) of the selected
needle or of all needles (:func:`planner.plan.loading.load_needle_seeds`), the template mode
(parallel needles on a grid, spacing mm, default 10, in a chosen direction:
:func:`planner.plan.loading.template_needles`), and the loading summary: seeds per needle,
total seeds and total strength in U and mCi, at calibration and at implant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dose.errors import InputError
from planner.plan.loading import (
    DEFAULT_SEED_SPACING_MM,
    SEED_SPACING_RANGE_MM,
    load_needle_seeds,
    loading_summary,
    template_needles,
)
from planner.plan.needle_commands import AddNeedles, LoadNeedle, RenameNeedle
from planner.session.coordinates import format_lps_point

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI

__all__ = ["COLUMNS", "TEMPLATE_DIRECTIONS", "NeedleTablePanel"]

COLUMNS = (
    "Name",
    "Length (mm)",
    "Depth (mm)",
    "∠ axial (°)",
    "∠ sagittal (°)",
    "Entry (LPS mm)",
    "Tip (LPS mm)",
    "Seeds",
    "Warnings",
)
#: Template directions (entry → tip), LPS unit vectors.
TEMPLATE_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "Posterior → anterior": (0.0, -1.0, 0.0),
    "Left → right": (-1.0, 0.0, 0.0),
    "Right → left": (1.0, 0.0, 0.0),
    "Superior → inferior": (0.0, 0.0, -1.0),
    "Inferior → superior": (0.0, 0.0, 1.0),
    "Anterior → posterior": (0.0, 1.0, 0.0),
}
_WARN_BG = QColor(110, 70, 10)
_DANGER_BG = QColor(120, 25, 25)


def _xyz(p: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.1f}" for v in p)


class NeedleTablePanel(QWidget):
    """Needle table, loading and template controls, loading summary (module docstring)."""

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__()
        self.planning = planning
        self.setObjectName("needle_panel")
        self._filling = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("needle_table")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        layout.addWidget(self.table, 1)

        load_box = QGroupBox("Load seeds from the tip")
        grid = QGridLayout(load_box)
        self.spacing = QDoubleSpinBox()
        self.spacing.setObjectName("seed_spacing")
        self.spacing.setRange(*SEED_SPACING_RANGE_MM)
        self.spacing.setValue(DEFAULT_SEED_SPACING_MM)
        self.spacing.setSuffix(" mm")
        self.spacing.setDecimals(1)
        self.margin = QDoubleSpinBox()
        self.margin.setObjectName("load_margin")
        self.margin.setRange(-10.0, 10.0)
        self.margin.setValue(0.0)
        self.margin.setSuffix(" mm")
        self.margin.setToolTip(
            "Lengthen (+) or shorten (−) the part inside the target at both ends"
        )
        grid.addWidget(QLabel("Spacing"), 0, 0)
        grid.addWidget(self.spacing, 0, 1)
        grid.addWidget(QLabel("Margin"), 0, 2)
        grid.addWidget(self.margin, 0, 3)
        self.load_selected_button = QPushButton("Load selected needle")
        self.load_selected_button.clicked.connect(lambda: self.load(selected_only=True))
        self.load_all_button = QPushButton("Load all needles")
        self.load_all_button.clicked.connect(lambda: self.load(selected_only=False))
        grid.addWidget(self.load_selected_button, 1, 0, 1, 2)
        grid.addWidget(self.load_all_button, 1, 2, 1, 2)
        layout.addWidget(load_box)

        tpl_box = QGroupBox("Template: parallel needles on a grid")
        row = QHBoxLayout(tpl_box)
        self.direction = QComboBox()
        self.direction.setObjectName("template_direction")
        self.direction.addItems(list(TEMPLATE_DIRECTIONS))
        self.needle_spacing = QDoubleSpinBox()
        self.needle_spacing.setObjectName("template_spacing")
        self.needle_spacing.setRange(2.0, 50.0)
        self.needle_spacing.setValue(10.0)
        self.needle_spacing.setSuffix(" mm")
        self.template_button = QPushButton("Add template needles")
        self.template_button.clicked.connect(self.add_template)
        row.addWidget(self.direction, 1)
        row.addWidget(self.needle_spacing)
        row.addWidget(self.template_button)
        layout.addWidget(tpl_box)

        self.summary = QLabel("")
        self.summary.setObjectName("loading_summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        planning.events.warnings_changed.connect(self.refresh)
        planning.events.selection_changed.connect(self._show_selection)
        self.refresh()

    # ------------------------------------------------------------------ model → table
    def refresh(self) -> None:
        planning = self.planning
        plan = planning.plan
        self._filling = True
        try:
            rows = planning.rows if plan is not None else []
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                kinds = {w.kind for w in row.warnings}
                warn_text = "; ".join(w.message for w in row.warnings) or "—"
                values = (
                    row.label,
                    f"{row.length_mm:.1f}",
                    f"{row.insertion_depth_mm:.1f}",
                    f"{row.angle_to_axial_deg:.1f}",
                    f"{row.angle_to_sagittal_deg:.1f}",
                    _xyz(row.entry_mm),
                    _xyz(row.tip_mm),
                    str(row.n_seeds),
                    warn_text,
                )
                for c, text in enumerate(values):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, row.id)
                    flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                    if c == 0:
                        flags |= Qt.ItemFlag.ItemIsEditable
                    item.setFlags(flags)
                    if c in (5, 6):
                        item.setToolTip(format_lps_point(row.entry_mm if c == 5 else row.tip_mm))
                    if c == 8:
                        item.setToolTip(warn_text)
                    if kinds:
                        item.setBackground(_DANGER_BG if "through_avoid" in kinds else _WARN_BG)
                    self.table.setItem(r, c, item)
            self.table.resizeColumnsToContents()
        finally:
            self._filling = False
        self._show_selection()
        self._refresh_summary()
        enabled = plan is not None
        for w in (self.load_selected_button, self.load_all_button, self.template_button):
            w.setEnabled(enabled)

    def _refresh_summary(self) -> None:
        plan = self.planning.plan
        if plan is None:
            self.summary.setText("No plan.")
            return
        s = loading_summary(plan)
        src = plan.source
        per = ", ".join(f"{n.label or n.needle_id}: {n.n_seeds}" for n in s.needles) or "none"
        lines = [
            f"<b>{s.total_seeds} seeds</b> on {len(s.needles)} needles"
            + (f" ({s.free_seeds} free)" if s.free_seeds else "")
            + f" — per needle: {per}",
            f"Total strength {s.total_strength_u:.2f} U ({s.total_activity_mci:.2f} mCi) at "
            "calibration",
        ]
        if src is not None and src.calibration_date is not None:
            lines.append(
                f"{s.total_strength_at_implant_u:.2f} U ({s.total_activity_at_implant_mci:.2f} mCi)"
                f" at implant {src.implant_date.isoformat()} (calibrated "
                f"{src.calibration_date.isoformat()}, decay × {src.decay_factor:.3f})"
            )
        if src is not None:
            per_seed = (
                "no strength set"
                if src.strength_u is None
                else (f"{src.strength_u:.3f} U ({src.activity_mci:.3f} mCi) per seed")
            )
            lines.append(f"Seed model {src.model_id}, {per_seed}")
        else:
            lines.append("No seed model: Plan → Prescription and seeds…")
        if s.missing_strength:
            lines.append(f"{s.missing_strength} seeds have no strength")
        self.summary.setText("<br>".join(lines))

    def _show_selection(self) -> None:
        nid = self.planning.selected_needle_id
        self._filling = True
        try:
            for r in range(self.table.rowCount()):
                item = self.table.item(r, 0)
                if item is not None and item.data(Qt.ItemDataRole.UserRole) == nid:
                    self.table.selectRow(r)
                    break
            else:
                self.table.clearSelection()
        finally:
            self._filling = False

    # ------------------------------------------------------------------ table → model
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        nid = item.data(Qt.ItemDataRole.UserRole)
        if not self.planning.execute(RenameNeedle(nid, item.text())):
            self.refresh()

    def _on_row_selected(self) -> None:
        if self._filling:
            return
        items = self.table.selectedItems()
        if not items:
            return
        nid = items[0].data(Qt.ItemDataRole.UserRole)
        plan = self.planning.plan
        if plan is None:
            return
        self.planning.select(nid, None)
        needle = next((n for n in plan.needles if n.id == nid), None)
        if needle is not None:
            self.planning.session.set_crosshair(np.asarray(needle.tip_mm, dtype=np.float64))

    def selected_needle_id(self) -> str | None:
        return self.planning.selected_needle_id

    # ------------------------------------------------------------------ actions
    def load(self, *, selected_only: bool) -> None:
        planning = self.planning
        plan = planning.plan
        doc = planning.document
        if plan is None or doc is None:
            return
        ids = [planning.selected_needle_id] if selected_only else [n.id for n in plan.needles]
        ids = [i for i in ids if i is not None]
        if not ids:
            planning.window.statusBar().showMessage("Select a needle in the table first", 4000)
            return
        try:
            with doc.transaction("Load needles" if len(ids) > 1 else "Load needle"):
                for nid in ids:
                    seeds = load_needle_seeds(
                        doc.plan,
                        nid,
                        spacing_mm=self.spacing.value(),
                        margin_mm=self.margin.value(),
                    )
                    doc.execute(LoadNeedle(nid, seeds))
        except (InputError, ValueError, KeyError) as exc:
            planning.window.statusBar().showMessage(f"Not loaded: {exc}", 8000)

    def add_template(self) -> None:
        planning = self.planning
        plan = planning.plan
        if plan is None:
            return
        direction = TEMPLATE_DIRECTIONS[self.direction.currentText()]
        ct = planning.session.volume
        if ct is not None and not ct.geometry.same_as(plan.geometry):
            ct = None
        try:
            needles = template_needles(
                plan, direction, spacing_mm=self.needle_spacing.value(), ct=ct
            )
        except (InputError, ValueError, KeyError) as exc:
            planning.window.statusBar().showMessage(f"No template: {exc}", 8000)
            return
        if planning.execute(AddNeedles(needles, label="Add template needles")):
            planning.window.statusBar().showMessage(f"{len(needles)} template needles added", 5000)
