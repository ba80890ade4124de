"""The structure panel (a dock): the plan's structures and the contouring tools.

Table, one row per structure: visibility (with the colour swatch: double-click to change the
colour), name (editable), role (target / organ at risk / other), volume in cm³ (voxel count ×
voxel volume: the one volume rule, the volume under the DVH; during a brush stroke refreshed at
most every 100 ms, exact within 100 ms of its last move), opacity and lock. The selected
row is the current structure the tools edit. Name, role and colour are document state
(undoable edits); visibility, opacity and lock are view state. Under the table: *Fill* (the
2-D outlines filled) and the fill opacity (%, times the structure's own opacity), view state
too (:class:`app.gui.layers.structures.StructureDisplay`).

Below: the tools (navigate, brush, eraser, polygon, grow canal, grow cord, keep island) with the
brush radius (mm), 2-D disc / 3-D sphere and the optional HU window, and the one-click
operations (fill between slices, smooth, PTV …). Every button shows its shortcut in its tooltip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.layers.base import StrokeCoalescer
from app.gui.layers.structures import structure_display
from app.gui.window_protocols import StatusWindow
from dose.errors import InputError
from planner.plan.commands import UpdateStructure

if TYPE_CHECKING:
    from app.gui.panels.menus import WindowMenus
    from app.gui.plan_controller import PlanController
    from app.gui.tools.base import ToolManager

__all__ = ["COLUMNS", "ROLE_LABELS", "StructuresPanel", "StructuresWindow", "scrolling"]

COLUMNS = ("Show", "Name", "Role", "cm³", "Opacity", "Lock")
#: The dock's width (px): the four views keep most of the window.
PANEL_WIDTH_PX = 330
ROLE_LABELS = {"target": "Target", "oar": "Organ at risk", "other": "Other"}
#: Check boxes visible on the dark theme (the default indicator is dark on dark).
_STYLE = """
QCheckBox::indicator, QTableWidget::indicator { width: 12px; height: 12px;
    border: 1px solid #8a93a6; border-radius: 2px; background: #15171c; }
QCheckBox::indicator:checked, QTableWidget::indicator:checked { background: #3f83d8;
    border-color: #6fa8ff; }
QToolButton:checked { background: #3f6fb0; color: #ffffff; }
"""
_SHOW, _NAME, _ROLE, _VOLUME, _OPACITY, _LOCK = range(len(COLUMNS))


class StructuresWindow(StatusWindow, Protocol):
    """What the structure panel uses of its window (the main window, the dock's parent): the
    session, the tool manager (tools, options, the current structure), the plan controller (is
    the plan editable now?), the Contour menu's actions behind its buttons, the add and delete
    commands and the status bar."""

    tool_manager: ToolManager
    plan_controller: PlanController
    menus: WindowMenus

    def contour_menu_add_structure(self) -> None: ...

    def contour_menu_remove_structure(self) -> None: ...


def scrolling(body: QWidget) -> QScrollArea:
    """``body`` in a frameless scroll area that resizes it (scroll bars only when needed)."""
    area = QScrollArea()
    area.setWidget(body)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


class StructuresPanel(QDockWidget):
    """The dock (module docstring); ``window.structures_panel``."""

    def __init__(self, window: StructuresWindow) -> None:
        super().__init__("Structures", window)
        self.setObjectName("structures_panel")
        self.window_ = window
        self.session = window.session
        self.display = structure_display(window.session)
        self._ids: list[str] = []
        self._filling = False
        self._document = None
        #: Structures whose cm³ waits for the brush stroke's coalesced update.
        self._volume_ids: set[str] = set()
        self._volumes = StrokeCoalescer(lambda: self._document, self._flush_volumes)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.empty_label = QLabel("No plan open: File → New plan (Ctrl+N) or Open plan")
        self.empty_label.setObjectName("hint_label")
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("structures_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setHorizontalHeaderItem(_VOLUME, QTableWidgetItem("cm³"))
        self.table.horizontalHeaderItem(_VOLUME).setToolTip(
            "Volume: voxel count × voxel volume (the volume under the DVH)"
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_NAME, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.cellDoubleClicked.connect(self._on_double_click)
        # Four rows at least: in a short dock the tools below scroll, the table stays readable.
        rows_px = 4 * self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + rows_px)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add an empty structure")
        self.add_button.clicked.connect(window.contour_menu_add_structure)
        self.remove_button = QPushButton("Delete")
        self.remove_button.setToolTip("Delete the current structure (undoable)")
        self.remove_button.clicked.connect(window.contour_menu_remove_structure)
        self.fill_check = QCheckBox("Fill")
        self.fill_check.setObjectName("fill_check")
        self.fill_check.setToolTip(
            "Fill the structures inside their outlines on the 2-D views (view state)"
        )
        self.fill_check.setChecked(self.display.fill_2d)
        self.fill_check.toggled.connect(self._on_fill_toggled)
        self.fill_opacity = QSpinBox()
        self.fill_opacity.setObjectName("fill_opacity")
        self.fill_opacity.setRange(5, 100)
        self.fill_opacity.setSingleStep(5)
        self.fill_opacity.setSuffix(" %")
        self.fill_opacity.setValue(round(100 * self.display.fill_opacity))
        self.fill_opacity.setToolTip(
            "Fill opacity, times the structure's own opacity (the Opacity column)"
        )
        self.fill_opacity.setEnabled(self.display.fill_2d)
        self.fill_opacity.valueChanged.connect(lambda v: self.display.set_fill_opacity(v / 100.0))
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        row.addWidget(self.fill_check)
        row.addWidget(self.fill_opacity)
        layout.addLayout(row)
        layout.addWidget(self._tools_box())
        body.setStyleSheet(_STYLE)
        # Scrolls when the dock is short (the default layout shares the column with the
        # metrics and the DVH): the dock never forces the window taller.
        self.setWidget(scrolling(body))
        self.setMinimumWidth(PANEL_WIDTH_PX - 40)
        self.setMaximumWidth(2 * PANEL_WIDTH_PX)
        self.listen_document(self.session.document)
        self.session.document_changed.connect(self.listen_document)
        window.tool_manager.current_changed.connect(self._select_id)
        window.tool_manager.tool_changed.connect(self._on_tool_changed)

    # ------------------------------------------------------------------ tools
    def _tools_box(self) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 4, 0, 0)
        manager = self.window_.tool_manager
        self.tool_buttons: dict[str, QToolButton] = {}
        entries = [("", "Navigate", "Esc", "Left click moves the crosshair (Esc)")]
        entries += [(t.name, t.label, t.shortcut, t.tooltip) for t in manager.tools.values()]
        cols = 4
        for n, (name, label, key, tip) in enumerate(entries):
            button = QToolButton()
            button.setObjectName(f"tool_{name or 'navigate'}")
            button.setText(label)
            button.setCheckable(True)
            button.setToolTip(f"{tip}  [{key}]" if key and key not in tip else tip)
            button.clicked.connect(lambda _=False, t=name: manager.set_active(t or None))
            grid.addWidget(button, n // cols, n % cols)
            self.tool_buttons[name] = button
        self.tool_buttons[""].setChecked(True)
        r = (len(entries) + cols - 1) // cols
        grid.addWidget(QLabel("Radius"), r, 0)
        self.radius = QDoubleSpinBox()
        self.radius.setObjectName("brush_radius")
        self.radius.setRange(0.5, 50.0)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" mm")
        self.radius.setValue(manager.options.radius_mm)
        self.radius.setToolTip("Brush radius in mm ([ and ] change it)")
        self.radius.valueChanged.connect(lambda v: setattr(manager.options, "radius_mm", v))
        grid.addWidget(self.radius, r, 1)
        self.sphere = QCheckBox("3-D")
        self.sphere.setToolTip("Paint a sphere (several slices) instead of a disc on the view")
        self.sphere.toggled.connect(lambda on: setattr(manager.options, "sphere", on))
        grid.addWidget(self.sphere, r, 2, 1, 2)
        self.hu_check = QCheckBox("HU")
        self.hu_check.setToolTip("Paint and erase only voxels whose HU is inside the window")
        self.hu_low = QSpinBox()
        self.hu_high = QSpinBox()
        for spin, value in ((self.hu_low, -100), (self.hu_high, 200)):
            spin.setRange(-1024, 3071)
            spin.setValue(value)
            spin.setSuffix(" HU")
            spin.valueChanged.connect(self._hu_changed)
        self.hu_check.toggled.connect(self._hu_changed)
        grid.addWidget(self.hu_check, r + 1, 0)
        grid.addWidget(self.hu_low, r + 1, 1)
        grid.addWidget(QLabel("–"), r + 1, 2, alignment=Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.hu_high, r + 1, 3)
        ops = self.window_.menus.contour_actions
        short = {
            "fill_between": "Fill between",
            "smooth": "Smooth",
            "keep_largest": "Largest island",
            "make_ptv": "Make PTV",
        }
        for n, key in enumerate(short):
            act = ops[key]
            button = QPushButton(short[key])
            button.setObjectName(f"op_{key}")
            button.setToolTip(act.toolTip())
            button.clicked.connect(act.trigger)
            grid.addWidget(button, r + 2 + n // 2, 2 * (n % 2), 1, 2)
        return box

    def _on_fill_toggled(self, on: bool) -> None:
        self.fill_opacity.setEnabled(on)
        self.display.set_fill(on)

    def _hu_changed(self, *_args: object) -> None:
        opts = self.window_.tool_manager.options
        lo, hi = self.hu_low.value(), self.hu_high.value()
        window = (float(min(lo, hi)), float(max(lo, hi)))
        opts.hu_window = window if self.hu_check.isChecked() else None

    def _on_tool_changed(self, name: str) -> None:
        for key, button in self.tool_buttons.items():
            button.setChecked(key == name)

    # ------------------------------------------------------------------ document → table
    def listen_document(self, document: object) -> None:
        if self._document is not None:
            self._document.events.changed.disconnect(self._on_plan_changed)
        self._document = document
        self._volume_ids.clear()
        self._volumes.stop()
        if document is not None:
            document.events.changed.connect(self._on_plan_changed)  # type: ignore[attr-defined]
        self.refill()

    def _on_plan_changed(self, event: object) -> None:
        """Structures: rebuild the rows; a mask edit: its volume, at most every
        :data:`~app.gui.layers.base.STROKE_COALESCE_MS` during a brush stroke (exact then)."""
        what = getattr(event, "what", frozenset())
        if "structures" in what:
            self._volume_ids.clear()
            self._volumes.stop()
            self.refill()
        elif "masks" in what:
            self._volume_ids.update(getattr(event, "structure_ids", frozenset()))
            self._volumes.request()

    def _flush_volumes(self) -> None:
        ids, self._volume_ids = self._volume_ids, set()
        if ids:
            self.update_volumes(ids)

    def refill(self) -> None:
        """Rebuild the rows from the plan (keeps the current structure selected)."""
        doc = self.session.document
        structures = doc.plan.structures if doc is not None else ()
        manager = self.window_.tool_manager
        self.empty_label.setVisible(doc is None)
        self._filling = True
        try:
            self.table.setRowCount(len(structures))
            self._ids = [s.id for s in structures]
            for row, s in enumerate(structures):
                show = QTableWidgetItem()
                show.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                visible = self.session.view.is_visible(s.name)
                show.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
                show.setBackground(QColor(*s.color_rgb))
                show.setToolTip("Show/hide; double-click to change the colour")
                self.table.setItem(row, _SHOW, show)
                name = QTableWidgetItem(s.name)
                name.setToolTip(f"{s.name} ({s.origin or 'drawn'}); id {s.id}")
                self.table.setItem(row, _NAME, name)
                role = QComboBox()
                for key, text in ROLE_LABELS.items():
                    role.addItem(text, key)
                role.setCurrentIndex(list(ROLE_LABELS).index(s.role))
                role.currentIndexChanged.connect(
                    lambda _i, sid=s.id, box=role: self._set_role(sid, box.currentData())
                )
                self.table.setCellWidget(row, _ROLE, role)
                vol = QTableWidgetItem()
                vol.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                vol.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, _VOLUME, vol)
                opacity = QSpinBox()
                opacity.setRange(0, 100)
                opacity.setSuffix(" %")
                opacity.setValue(round(100 * self.display.opacity_of(s.name)))
                opacity.valueChanged.connect(
                    lambda v, n=s.name: self.display.set_opacity(n, v / 100.0)
                )
                self.table.setCellWidget(row, _OPACITY, opacity)
                lock = QTableWidgetItem()
                lock.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                locked = self.display.is_locked(s.name)
                lock.setCheckState(Qt.CheckState.Checked if locked else Qt.CheckState.Unchecked)
                lock.setToolTip("Locked: no tool changes it")
                self.table.setItem(row, _LOCK, lock)
            self.update_volumes(None)
        finally:
            self._filling = False
        if manager.current_id not in self._ids:
            manager.set_current(self._ids[0] if self._ids else "")
        self._select_id(manager.current_id)

    def update_volumes(self, ids: object) -> None:
        """Refresh the cm³ column (all rows, or only the structures in ``ids``)."""
        doc = self.session.document
        if doc is None:
            return
        wanted = None if ids is None else set(ids)  # type: ignore[call-overload]
        was = self._filling
        self._filling = True
        try:
            for row, s in enumerate(doc.plan.structures):
                if wanted is not None and s.id not in wanted:
                    continue
                item = self.table.item(row, _VOLUME)
                if item is not None:
                    item.setText(f"{s.volume_cm3:.2f} cm³")
        finally:
            self._filling = was

    # ------------------------------------------------------------------ table → document
    def _structure_at(self, row: int):  # -> (document, structure) or (None, None)
        doc = self.session.document
        if doc is None or not 0 <= row < len(self._ids):
            return None, None
        return doc, doc.plan.structure(self._ids[row])

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        doc, s = self._structure_at(item.row())
        if s is None:
            return
        col = item.column()
        if col == _SHOW:
            self.session.view.set_visible(s.name, item.checkState() == Qt.CheckState.Checked)
        elif col == _LOCK:
            self.display.set_locked(s.name, item.checkState() == Qt.CheckState.Checked)
        elif col == _NAME:
            new = item.text().strip()
            if new == s.name:
                return
            if not new or self.window_.plan_controller.ensure_editable() is None:
                self.refill()
                return
            try:
                doc.execute(UpdateStructure(s.id, name=new, label=f"Rename {s.name} to {new}"))
            except (InputError, ValueError) as exc:
                self.window_.statusBar().showMessage(str(exc), 8000)
                self.refill()

    def _set_role(self, structure_id: str, role: str) -> None:
        if self._filling:
            return
        doc = self.window_.plan_controller.ensure_editable()
        if doc is None:
            self.refill()
            return
        s = doc.plan.structure(structure_id)
        if s.role != role:
            doc.execute(UpdateStructure(s.id, role=role, label=f"Role of {s.name}"))  # type: ignore[arg-type]

    def _on_double_click(self, row: int, col: int) -> None:
        if col != _SHOW:
            return
        doc, s = self._structure_at(row)
        if s is None or self.window_.plan_controller.ensure_editable() is None:
            return
        colour = QColorDialog.getColor(QColor(*s.color_rgb), self, f"Colour of {s.name}")
        if colour.isValid():
            rgb = (colour.red(), colour.green(), colour.blue())
            doc.execute(UpdateStructure(s.id, color_rgb=rgb, label=f"Colour of {s.name}"))

    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and 0 <= rows[0].row() < len(self._ids):
            self.window_.tool_manager.set_current(self._ids[rows[0].row()])

    def _select_id(self, structure_id: str) -> None:
        if structure_id in self._ids:
            row = self._ids.index(structure_id)
            if self.table.currentRow() != row:
                self.table.selectRow(row)
