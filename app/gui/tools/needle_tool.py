"""Place a needle: click its entry, then its tip, on any 2-D view and slice.

:meth:`NeedleTool.start` (Plan → Place needle, key N) arms the tool: the next left click on a
2-D view sets the entry (on that view's displayed plane, LPS mm); the user may then scroll to
another slice or go to another view (free-hand oblique needles are the norm in spine work)
while a preview line follows the mouse; the second left click sets the tip and adds the needle
(:class:`~planner.plan.needle_commands.AddNeedle`, one undo step). Escape or a right click
cancels. Everything else (wheel, pan, window/level) keeps working while it is armed. It is
armed through the window's one tool manager (:meth:`app.gui.tools.base.ToolManager.arm`):
choosing a contouring tool cancels a placement in progress, and N stops the brush.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QMouseEvent

from planner.plan.model import Needle
from planner.plan.needle_commands import AddNeedle

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView

__all__ = ["NeedleTool"]

_PREVIEW_ID = "nd-preview"


def _vec(p: NDArray[np.float64]) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))


class NeedleTool(QObject):
    """Two-click needle placement (module docstring)."""

    #: Its name in the window's tool manager (``window.tool_manager.armed_name``).
    name = "needle"

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__(planning)
        self.planning = planning
        self.entry_mm: NDArray[np.float64] | None = None
        self.armed = False
        #: The id of the last needle this tool added (tests, table selection).
        self.last_needle_id: str | None = None

    def start(self) -> None:
        planning = self.planning
        if planning.document is None:
            planning.window.statusBar().showMessage("Open or create a plan first", 4000)
            return
        self.armed = True
        self.entry_mm = None
        planning.activate(self)
        planning.window.statusBar().showMessage(
            "Place needle: click the ENTRY point (Esc cancels)", 0
        )

    def stop(self) -> None:
        """Disarm (Escape, right click, or another tool armed)."""
        self.cancel()

    def cancel(self) -> None:
        self.armed = False
        self.entry_mm = None
        planning = self.planning
        planning.release(self)
        if planning.preview_needle is not None:
            planning.preview_needle = None
            planning.events.selection_changed.emit()
        planning.window.statusBar().clearMessage()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if not self.armed or obj not in self.planning.view_layers:
            return False
        view: SliceView = obj  # type: ignore[assignment]
        kind = event.type()
        if kind == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:  # type: ignore[attr-defined]
            self.cancel()
            return True
        if kind == QEvent.Type.MouseButtonPress:
            ev: QMouseEvent = event  # type: ignore[assignment]
            if ev.button() == Qt.MouseButton.RightButton:
                self.cancel()
                return True
            if ev.button() != Qt.MouseButton.LeftButton or (
                ev.modifiers() & Qt.KeyboardModifier.ShiftModifier
            ):
                return False
            self.click(view, ev.position().x(), ev.position().y())
            return True
        if kind == QEvent.Type.MouseButtonRelease:
            return event.button() == Qt.MouseButton.LeftButton  # type: ignore[attr-defined]
        if kind == QEvent.Type.MouseMove and self.entry_mm is not None:
            ev = event  # type: ignore[assignment]
            here = view.display_to_world(ev.position().x(), ev.position().y())
            self.planning.preview_needle = Needle(_PREVIEW_ID, _vec(self.entry_mm), _vec(here))
            self.planning.events.selection_changed.emit()
            return False  # the view still shows the probe
        return False

    def click(self, view: SliceView, x_px: float, y_px: float) -> None:
        """One placement click at widget position (x, y) of ``view``."""
        point = view.display_to_world(x_px, y_px)
        self.click_mm(point)

    def click_mm(self, point_mm: NDArray[np.float64]) -> None:
        """One placement click at an LPS point (mm)."""
        bar = self.planning.window.statusBar()
        if self.entry_mm is None:
            self.entry_mm = np.asarray(point_mm, dtype=np.float64)
            bar.showMessage(
                "Place needle: entry set; scroll or change view if needed, then click the TIP", 0
            )
            return
        entry, tip = self.entry_mm, np.asarray(point_mm, dtype=np.float64)
        cmd = AddNeedle(_vec(entry), _vec(tip))
        self.cancel()
        if self.planning.execute(cmd):
            self.last_needle_id = cmd.needle_id
            self.planning.select(cmd.needle_id, None)
            length = float(np.linalg.norm(tip - entry))
            bar.showMessage(f"Needle added ({length:.1f} mm); Ctrl+Z undoes it", 6000)
