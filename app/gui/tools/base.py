"""Interaction tools on the 2-D views, and the one manager that routes mouse events to them.

A :class:`Tool` gets the left-button events of whichever 2-D view they happen on (and mouse
moves without a button, for a cursor). Everything else — right-drag window/level, middle or
Shift-drag pan, the wheel, keys the tool does not use — still reaches the view, so the user can
scroll slices and adjust the window while painting. With no tool active (Esc, or the
"Navigate" button) a left click moves the crosshair as before.

:class:`ToolManager` (``window.tool_manager``) installs one Qt event filter on each slice view
(no change to the views themselves), holds the active tool, the current structure (chosen in
the structure panel) and the shared tool options (:class:`ToolOptions`). The planning part may
register its own tools with :meth:`ToolManager.register`.

**One armed tool at a time.** The manager owns which tool has the left button, for the
contouring tools it routes events to *and* for the planning tools (place needle, measure
distance) that filter their own events: those are armed with :meth:`ToolManager.arm` and
give the mouse back with :meth:`ToolManager.disarm`. Arming any tool disarms the one before
(a needle placement in progress is cancelled when the brush is chosen, and the brush stops
when N is pressed), so a click never reaches two tools. :attr:`ToolManager.armed_name` is
the armed tool's name ("" when navigating); ``tool_changed`` follows it. The seed/needle drag
handler (:class:`app.gui.tools.seed_tool.SeedTool`) only works while nothing is armed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent

from app.gui.layers.structures import structure_display
from app.gui.views.slice_view import SliceView
from app.gui.window_protocols import StatusWindow
from dose.errors import InputError
from planner.plan.commands import EditMask
from planner.plan.document import PlanDocument
from planner.plan.model import Structure

if TYPE_CHECKING:
    from app.gui.plan_controller import PlanController

__all__ = ["ArmableTool", "Tool", "ToolManager", "ToolOptions", "ToolWindow", "apply_patch"]


class ToolWindow(StatusWindow, Protocol):
    """What the tools and their manager use of the window they work in (the main window): its
    2-D views, the session, the plan controller (is the plan editable now?) and the status
    bar."""

    plan_controller: PlanController

    @property
    def slice_views(self) -> tuple[SliceView, SliceView, SliceView]: ...


@dataclass
class ToolOptions:
    """Brush radius (mm), 3-D sphere instead of a 2-D disc, optional HU window (low, high)."""

    radius_mm: float = 5.0
    sphere: bool = False
    hu_window: tuple[float, float] | None = None


class ArmableTool(Protocol):
    """A tool that filters its own view events while armed (the planning tools)."""

    name: str

    def stop(self) -> None:
        """Disarm: drop what is open (a half-placed needle, a measurement in progress)."""


class Tool:
    """Base class: override the handlers you need; return True when the event was used."""

    name = "tool"
    label = "Tool"
    shortcut = ""
    tooltip = ""

    def __init__(self, manager: ToolManager) -> None:
        self.manager = manager

    @property
    def window(self) -> ToolWindow:
        return self.manager.window

    def activate(self) -> None:
        """Called when the tool becomes active."""

    def deactivate(self) -> None:
        """Called when another tool (or none) becomes active: finish or drop what is open."""

    def press(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        return False

    def move(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        return False

    def release(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        return False

    def hover(self, view: SliceView, xyz_mm: NDArray[np.float64] | None) -> None:
        """The mouse moved without a button (None: it left the view)."""

    def double_click(self, view: SliceView, xyz_mm: NDArray[np.float64]) -> bool:
        return False

    def key(self, view: SliceView, ev: QKeyEvent) -> bool:
        return False


def apply_patch(
    document: PlanDocument,
    structure_id: str,
    patch: tuple[tuple[slice, ...], NDArray[np.bool_]],
    label: str,
) -> bool:
    """Run the edit of a paint/structure patch ``(box, values)`` (nothing when it is empty or
    changes nothing); True when the plan changed."""
    box, values = patch
    if values.size == 0:
        return False
    current = document.plan.structure(structure_id).values_in(box)  # type: ignore[arg-type]
    if np.array_equal(current, values):
        return False
    document.execute(EditMask(structure_id, box, values, label))
    return True


class ToolManager(QObject):
    """The active tool, the current structure and the tool options (module docstring).

    Signals: ``tool_changed(name or "")``, ``current_changed(structure id or "")``,
    ``message(text)`` (shown in the status bar).
    """

    tool_changed = Signal(str)
    current_changed = Signal(str)
    message = Signal(str)

    def __init__(self, window: ToolWindow) -> None:
        super().__init__(window)
        self.window = window
        self.options = ToolOptions()
        self.tools: dict[str, Tool] = {}
        self.active: Tool | None = None
        #: An armed planning tool (it filters its own events), or None.
        self.armed_other: ArmableTool | None = None
        self.current_id = ""
        #: The 2-D view a tool was last used on (fill between slices takes its slice axis).
        self.last_view: SliceView | None = None
        for view in window.slice_views:
            view.installEventFilter(self)
        self.message.connect(lambda text: window.statusBar().showMessage(text, 8000))

    # ------------------------------------------------------------------ registry
    def register(self, tool_type: Callable[[ToolManager], Tool]) -> Tool:
        tool = tool_type(self)
        self.tools[tool.name] = tool
        return tool

    @property
    def armed_name(self) -> str:
        """The name of the armed tool (contouring or planning), "" when navigating."""
        if self.active is not None:
            return self.active.name
        return self.armed_other.name if self.armed_other is not None else ""

    def set_active(self, name: str | None) -> None:
        """Make the contouring tool ``name`` active (None or "": navigate); an armed planning
        tool is stopped first."""
        tool = self.tools.get(name or "")
        other_stopped = self._stop_other()
        if tool is self.active:
            if other_stopped:
                self._announce()
            return
        if self.active is not None:
            self.active.deactivate()
        self.active = tool
        if tool is not None:
            tool.activate()
        self._announce()

    def arm(self, tool: ArmableTool) -> None:
        """Give the mouse to a planning tool that filters its own events; the active
        contouring tool (or another planning tool) is disarmed first."""
        if self.armed_other is tool and self.active is None:
            return
        if self.active is not None:
            self.active.deactivate()
            self.active = None
        self._stop_other()
        self.armed_other = tool
        self._announce()

    def disarm(self, tool: ArmableTool) -> None:
        """``tool`` gives the mouse back (it finished or was cancelled); no-op otherwise."""
        if self.armed_other is tool:
            self.armed_other = None
            self._announce()

    def _stop_other(self) -> bool:
        other, self.armed_other = self.armed_other, None
        if other is None:
            return False
        other.stop()
        return True

    def _announce(self) -> None:
        armed = self.active is not None or self.armed_other is not None
        cursor = Qt.CursorShape.CrossCursor if armed else Qt.CursorShape.ArrowCursor
        for view in self.window.slice_views:
            view.setCursor(cursor)
        self.tool_changed.emit(self.armed_name)

    # ------------------------------------------------------------------ current structure
    def set_current(self, structure_id: str) -> None:
        if structure_id != self.current_id:
            self.current_id = structure_id
            self.current_changed.emit(structure_id)

    def current_structure(self) -> Structure | None:
        doc = self.window.session.document
        if doc is None:
            return None
        for s in doc.plan.structures:
            if s.id == self.current_id:
                return s
        return None

    def editable_structure(self) -> tuple[PlanDocument, Structure] | None:
        """The document and the current structure when it may be edited now, else None (and
        the reason in the status bar)."""
        doc = self.window.plan_controller.ensure_editable()
        if doc is None:
            return None
        s = self.current_structure()
        if s is None:
            self.message.emit("Choose a structure in the structure panel first")
            return None
        if structure_display(self.window.session).is_locked(s.name):
            self.message.emit(f"{s.name} is locked (unlock it in the structure panel)")
            return None
        return doc, s

    def structure_named(self, name: str) -> Structure | None:
        doc = self.window.session.document
        return None if doc is None else doc.plan.structure_named(name)

    def report(self, exc: InputError | ValueError) -> None:
        self.message.emit(str(exc))

    # ------------------------------------------------------------------ event routing
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        tool = self.active
        if tool is None or not isinstance(obj, SliceView) or self.window.session.volume is None:
            return False
        t = event.type()
        types = QEvent.Type
        if t in (types.MouseButtonPress, types.MouseButtonRelease, types.MouseMove):
            assert isinstance(event, QMouseEvent)
            pos = event.position()
            xyz = obj.display_to_world(pos.x(), pos.y())
            left = Qt.MouseButton.LeftButton
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            if t == types.MouseButtonPress and event.button() == left and not shift:
                self.last_view = obj
                return tool.press(obj, xyz, event)
            if t == types.MouseButtonRelease and event.button() == left:
                return tool.release(obj, xyz, event)
            if t == types.MouseMove:
                if event.buttons() & left and not shift:
                    return tool.move(obj, xyz, event)
                if event.buttons() == Qt.MouseButton.NoButton:
                    tool.hover(obj, xyz)
            return False
        if t == types.MouseButtonDblClick:
            assert isinstance(event, QMouseEvent)
            pos = event.position()
            return tool.double_click(obj, obj.display_to_world(pos.x(), pos.y()))
        if t == types.Leave:
            tool.hover(obj, None)
            return False
        if t == types.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_Escape:
                if not tool.key(obj, event):
                    self.set_active(None)
                return True
            return tool.key(obj, event)
        return False
