"""Always-visible patient identification (IEC 62083 / UI-3), series geometry and warnings.

Layout, left to right: patient name, ID, study date, the series geometry (matrix, voxel size
in mm, orientation — never cut), the series description (elided to the room left), the import
warnings button (elided; all warnings in its tooltip, and one click opens the import report
listing every warning), the plan (name, revision, status, unsaved mark: :meth:`HeaderBar.set_plan`;
a long plan name is elided in its middle, so its revision, status and unsaved mark stay and the
header never makes the window wider than the screen).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from planner.imaging.orientation import orientation_from_direction, tilt_deg
from planner.imaging.volume import CTVolume

__all__ = ["ElidedLabel", "HeaderBar", "PlanLabel", "geometry_text"]

#: Plan status colours in the header: draft neutral, reviewed blue, approved green.
_STATUS_COLOURS = {"draft": "#e6e9ef", "reviewed": "#6fa8ff", "approved": "#5fd38d"}


def geometry_text(volume: CTVolume) -> str:
    """``"512×512×52 · 0.78×0.78×2.50 mm · axial"`` (oblique: with its angle)."""
    g = volume.geometry
    nx, ny, nz = g.shape_xyz
    sx, sy, sz = g.spacing_mm
    orientation = orientation_from_direction(g.direction)
    if orientation == "oblique":
        angle = tilt_deg(np.cross(g.direction[:, 0], g.direction[:, 1]))
        orientation = f"oblique {angle:.1f}°" if angle is not None else orientation
    return f"{nx}×{ny}×{nz} · {sx:.2f}×{sy:.2f}×{sz:.2f} mm · {orientation}"


class ElidedLabel(QLabel):
    """A one-line label that shows as much of its text as fits, ending in "…"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)

    def set_full_text(self, text: str) -> None:
        self._full_text = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full_text

    def resizeEvent(self, ev: QResizeEvent) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(ev)
        self._elide()

    def _elide(self) -> None:
        metrics = QFontMetrics(self.font())
        self.setText(
            metrics.elidedText(self._full_text, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        )


class WarningButton(QToolButton):
    """ "⚠ N warnings: first warning…" elided to its width; the full list in the tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("warning_label")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warnings: list[str] = []

    def set_warnings(self, warnings: list[str]) -> None:
        self.warnings = list(warnings)
        n = len(self.warnings)
        self.setVisible(n > 0)
        head = f"⚠ {n} import warning{'s' if n != 1 else ''}"
        self.setMinimumWidth(QFontMetrics(self.font()).horizontalAdvance(head + "…") + 24)
        self.setToolTip(
            "\n".join(f"• {w}" for w in self.warnings) + "\n\nClick: the full import report"
            if n
            else ""
        )
        self._elide()

    def resizeEvent(self, ev: QResizeEvent) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(ev)
        self._elide()

    def _elide(self) -> None:
        if not self.warnings:
            self.setText("")
            return
        n = len(self.warnings)
        full = f"⚠ {n} import warning{'s' if n != 1 else ''}: {self.warnings[0]}"
        metrics = QFontMetrics(self.font())
        self.setText(metrics.elidedText(full, Qt.TextElideMode.ElideRight, self.width() - 20))


class PlanLabel(QLabel):
    """ "Plan: <name · rev · status>" and the unsaved mark; the name is elided in its middle
    when the header is short of room (at least ``MIN_WIDTH_PX`` wide)."""

    MIN_WIDTH_PX = 220

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._title = ""
        self._colour = ""
        self._mark = ""
        self._full_hint = QSize()

    def set_plan_text(self, title: str, colour: str, mark_html: str) -> None:
        """The plan ``title`` in bold ``colour`` (empty: "Plan: none"), then ``mark_html``."""
        self._title, self._colour, self._mark = title, colour, mark_html
        self.setText(self._html(title))
        self._full_hint = super().sizeHint()
        self.updateGeometry()
        self._elide()

    def full_title(self) -> str:
        return self._title

    def _html(self, title: str) -> str:
        if not self._colour:
            return "Plan: none"
        return f'Plan: <b style="color:{self._colour}">{title}</b>{self._mark}'

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt)
        return self._full_hint if self._full_hint.isValid() else super().sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt)
        hint = self.sizeHint()
        return QSize(min(hint.width(), self.MIN_WIDTH_PX), hint.height())

    def resizeEvent(self, ev: QResizeEvent) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(ev)
        self._elide()

    def _elide(self) -> None:
        if not self._colour or self.width() >= self._full_hint.width():
            self.setText(self._html(self._title))
            return
        bold = self.font()
        bold.setBold(True)
        excess = self._full_hint.width() - self.width()
        room = QFontMetrics(bold).horizontalAdvance(self._title) - excess
        elided = QFontMetrics(bold).elidedText(
            self._title, Qt.TextElideMode.ElideMiddle, max(room, 1)
        )
        self.setText(self._html(elided))


class HeaderBar(QFrame):
    """Patient, study, series geometry and import warnings of the loaded CT."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("header_bar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        layout.setSpacing(18)
        self.patient_label = QLabel()
        self.patient_label.setObjectName("patient_label")
        self.id_label = QLabel()
        self.id_label.setObjectName("id_label")
        self.study_label = QLabel()
        #: Matrix, voxel size and orientation: its size policy never lets it be cut.
        self.series_label = QLabel()
        self.series_label.setObjectName("series_label")
        self.description_label = ElidedLabel()
        self.description_label.setObjectName("description_label")
        self.warning_label = WarningButton()
        self.plan_label = PlanLabel()
        for w in (self.patient_label, self.id_label, self.study_label, self.series_label):
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            w.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
            layout.addWidget(w)
        layout.addWidget(self.description_label, 1)
        layout.addWidget(self.warning_label, 4)  # the warnings get most of the room left
        self.plan_label.setObjectName("plan_label")
        layout.addWidget(self.plan_label)
        self.set_volume(None)
        self.set_plan(None)

    def set_plan(self, title: str | None, *, status: str = "draft", modified: bool = False) -> None:
        """The plan shown: name, revision and status; an unsaved mark; "none" without one."""
        if title is None:
            self.plan_label.set_plan_text("", "", "")
            self.plan_label.setToolTip("File → New plan (Ctrl+N) or Open plan (Ctrl+Shift+O)")
            return
        colour = _STATUS_COLOURS.get(status, "#e6e9ef")
        mark = ' <span style="color:#f0b429">● unsaved</span>' if modified else ""
        self.plan_label.set_plan_text(title, colour, mark)
        state = (
            "Approved: read-only (editing starts a new revision)"
            if status == "approved"
            else "Unsaved changes (an autosave protects them)"
            if modified
            else "Saved"
        )
        self.plan_label.setToolTip(f"{title}\n{state}")

    def set_volume(self, volume: CTVolume | None) -> None:
        if volume is None:
            self.patient_label.setText("Patient: —")
            self.id_label.setText("ID: —")
            self.study_label.setText("")
            self.series_label.setText("No image loaded")
            self.description_label.set_full_text("")
            self.warning_label.set_warnings([])
            return
        info = volume.info
        name = (info.patient_name or "(no name)").replace("^", ", ")
        self.patient_label.setText(f"Patient: <b>{name}</b>")
        self.id_label.setText(f"ID: <b>{info.patient_id or '(none)'}</b>")
        self.study_label.setText(f"Study date: {info.study_date or 'unknown'}")
        self.series_label.setText(geometry_text(volume))
        description = info.series_description or info.modality or "CT"
        self.series_label.setToolTip(
            f"{description}\n{self.series_label.text()}\nSeries UID {info.series_instance_uid}"
        )
        self.description_label.set_full_text(description)
        self.warning_label.set_warnings(list(volume.warnings))
