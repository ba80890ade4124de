"""Isodose levels dialog (Plan → Isodose levels…, Ctrl+Shift+D): which isodose lines the 2-D
views draw, in % of the prescription dose (issue 11: default 50/90/100/150/200 %).

The user types the levels (``50, 90, 100, 150, 200``; commas, semicolons or spaces, an
optional ``%``); the dialog shows each level in % and Gy of the plan's PD with the colour of
its line, and refuses, with one clear line, text that is not a number, a level ≤ 0 or above
1000 %, a level given twice, or more than :data:`MAX_LEVELS` levels (OK stays disabled until
the text is valid). *OK* calls :meth:`app.gui.planning_ui.PlanningUI.set_levels`.

The levels are view state, not part of the plan: no undo step, the plan file is unchanged.
They are kept in the user's settings (``window.settings``, the INI file of
:mod:`app.gui.settings`) and restored when the window opens, so they stay the same across
saving and reopening a plan and across sessions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.layers.isodoses import level_rgb
from planner.plan.live_dose import DEFAULT_LEVELS_PERCENT

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI

__all__ = ["MAX_LEVELS", "MAX_PERCENT", "IsodoseLevelsDialog", "format_levels", "parse_levels"]

#: At most this many isodose lines (more are unreadable on a slice).
MAX_LEVELS = 10
#: Highest level accepted (% of PD).
MAX_PERCENT = 1000.0
_SPLIT = re.compile(r"[,;\s]+")


def format_levels(levels_percent: tuple[float, ...]) -> str:
    """``(50.0, 90.0, 100.0)`` → ``"50, 90, 100"``."""
    return ", ".join(f"{p:g}" for p in levels_percent)


def parse_levels(text: str) -> tuple[float, ...]:
    """Levels (% of PD, ascending) from the user's text; ValueError with one line saying
    what is wrong (not a number, ≤ 0, above 1000 %, duplicate, more than 10, none)."""
    tokens = [t for t in _SPLIT.split(text.strip()) if t]
    if not tokens:
        raise ValueError("give at least one level, e.g. 50, 90, 100, 150, 200")
    values: list[float] = []
    for token in tokens:
        raw = token[:-1] if token.endswith("%") else token
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"“{token}” is not a number (levels are % of PD)") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"“{token}” is not a number (levels are % of PD)")
        if value < 0:
            raise ValueError(f"{value:g} %: a level cannot be negative")
        if value == 0:
            raise ValueError("0 %: a level must be above 0 % of PD")
        if value > MAX_PERCENT:
            raise ValueError(f"{value:g} %: at most {MAX_PERCENT:g} % of PD")
        if value in values:
            raise ValueError(f"{value:g} % is given twice")
        values.append(value)
    if len(values) > MAX_LEVELS:
        raise ValueError(f"at most {MAX_LEVELS} levels ({len(values)} given)")
    return tuple(sorted(values))


class IsodoseLevelsDialog(QDialog):
    """Edit the isodose levels of the views (module docstring)."""

    def __init__(self, planning: PlanningUI, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("isodose_levels_dialog")
        self.setWindowTitle("Isodose levels")
        self.planning = planning
        plan = planning.plan
        rx = plan.prescription if plan is not None else None
        #: The plan's prescription dose (Gy), None without one (the Gy column stays empty).
        self.pd_gy: float | None = rx.dose_gy if rx is not None else None
        layout = QVBoxLayout(self)
        pd_text = f"PD = {self.pd_gy:g} Gy" if self.pd_gy else "the plan has no prescription yet"
        intro = QLabel(
            f"Isodose lines on the 2-D views, in % of the prescription dose ({pd_text}).\n"
            f"Up to {MAX_LEVELS} levels, separated by commas. View setting: not part of "
            "the plan, kept for your next sessions."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.edit = QLineEdit(format_levels(planning.levels_percent))
        self.edit.setObjectName("isodose_levels_edit")
        self.edit.setToolTip("e.g. 50, 90, 100, 150, 200 (% of PD)")
        self.edit.textChanged.connect(self._validate)
        layout.addWidget(self.edit)
        self.error = QLabel("")
        self.error.setObjectName("isodose_levels_error")
        self.error.setStyleSheet("color: #ff6b6b;")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("isodose_levels_table")
        self.table.setHorizontalHeaderLabels(["Line", "% of PD", "Gy"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.reset_button = QPushButton("Defaults (50, 90, 100, 150, 200)")
        self.reset_button.setToolTip("The issue's default levels, % of PD")
        self.reset_button.clicked.connect(
            lambda: self.edit.setText(format_levels(DEFAULT_LEVELS_PERCENT))
        )
        self.buttons.addButton(self.reset_button, QDialogButtonBox.ButtonRole.ResetRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        #: The parsed levels of the current text, None while it is invalid.
        self.levels: tuple[float, ...] | None = None
        self._validate()
        self.resize(380, 420)

    def _validate(self, *_args: object) -> None:
        try:
            self.levels = parse_levels(self.edit.text())
        except ValueError as exc:
            self.levels = None
            self.error.setText(str(exc))
        else:
            self.error.setText("")
        valid = self.levels is not None
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(valid)
        self.table.setEnabled(valid)  # greyed: the last valid levels, not the text's
        if self.levels is not None:
            self._fill_table(self.levels)

    def _fill_table(self, levels: tuple[float, ...]) -> None:
        self.table.setRowCount(len(levels))
        for row, p in enumerate(sorted(levels, reverse=True)):
            swatch = QTableWidgetItem("━━━")
            r, g, b = (round(255 * c) for c in level_rgb(p))
            swatch.setForeground(QColor(r, g, b))
            self.table.setItem(row, 0, swatch)
            self.table.setItem(row, 1, QTableWidgetItem(f"{p:g} %"))
            gy = "—" if not self.pd_gy else f"{self.pd_gy * p / 100.0:.1f} Gy"
            self.table.setItem(row, 2, QTableWidgetItem(gy))

    def accept(self) -> None:
        """Apply the levels to the views and keep them in the settings."""
        if self.levels is None:
            return
        self.planning.set_levels(self.levels)
        settings = getattr(self.planning.window, "settings", None)
        if settings is not None:
            try:
                settings.set_isodose_levels(self.planning.levels_percent)
            except OSError as exc:  # an unwritable config: the views still use the levels
                self.planning.window.statusBar().showMessage(
                    f"Isodose levels not kept for next time: {exc}", 8000
                )
        super().accept()
