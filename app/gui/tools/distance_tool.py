"""Measure a distance on the 2-D views: drag from one point to another, or click two points
(on any views and slices: the distance is the 3-D one, LPS mm).

:meth:`DistanceTool.start` (Plan → Measure distance, key M) arms it; the measured line and its
length in mm stay drawn on the view of the second point until the next measurement or Escape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QMouseEvent
from vtkmodules.vtkRenderingCore import vtkTextActor

from app.gui.layers.base import Layer
from app.gui.layers.needles import line_actor, polyline_polydata

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView

__all__ = ["DistanceTool"]

_RGB = (1.0, 0.85, 0.35)
_MIN_DRAG_PX = 4.0


class _RulerLayer(Layer):
    """The measured line and its label on one view."""

    def __init__(self, view: SliceView, planning: PlanningUI) -> None:
        super().__init__(view, planning.session)
        self.slice_view = view
        self.polydata = polyline_polydata(np.zeros((0, 3)), [])
        self.actor = self.add_prop(line_actor(self.polydata, _RGB, 2.0))
        self.label = vtkTextActor()
        self.label.GetPositionCoordinate().SetCoordinateSystemToWorld()
        tp = self.label.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(13)
        tp.SetColor(*_RGB)
        tp.SetBold(True)
        tp.ShadowOn()
        self.add_prop(self.label)
        self.show(None, None)

    def show(self, a: NDArray[np.float64] | None, b: NDArray[np.float64] | None) -> None:
        if self.closed:
            return
        if a is None or b is None:
            polyline_polydata(np.zeros((0, 3)), [], self.polydata)
            self.label.SetVisibility(False)
            self.render()
            return
        n = self.slice_view.normal
        here = self.slice_view.slice_position_mm()
        pa, pb = (p + (here - p @ n - 1.0) * n for p in (a, b))
        polyline_polydata(np.array([pa, pb]), [[0, 1]], self.polydata)
        self.label.SetInput(f"{float(np.linalg.norm(b - a)):.1f} mm")
        self.label.GetPositionCoordinate().SetValue(*(float(v) for v in pb))
        self.label.SetVisibility(True)
        self.render()


class DistanceTool(QObject):
    """Distance measurement (module docstring)."""

    #: Its name in the window's tool manager (``window.tool_manager.armed_name``).
    name = "distance"

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__(planning)
        self.planning = planning
        self.armed = False
        self.a_mm: NDArray[np.float64] | None = None
        self.b_mm: NDArray[np.float64] | None = None
        self._press_px: tuple[float, float] | None = None
        self.layers: dict[object, _RulerLayer] = {}
        for view in planning.window.slice_views:
            layer = _RulerLayer(view, planning)
            view.layers.append(layer)
            self.layers[view] = layer

    @property
    def distance_mm(self) -> float:
        """The last measured distance (mm), NaN before a measurement."""
        if self.a_mm is None or self.b_mm is None:
            return float("nan")
        return float(np.linalg.norm(self.b_mm - self.a_mm))

    def start(self) -> None:
        if self.planning.session.volume is None:
            return
        self.clear()
        self.armed = True
        self.planning.activate(self)
        self.planning.window.statusBar().showMessage(
            "Distance: drag, or click two points (Esc ends)", 0
        )

    def clear(self) -> None:
        self.a_mm = self.b_mm = None
        for layer in self.layers.values():
            layer.show(None, None)

    def stop(self) -> None:
        self.armed = False
        self._press_px = None
        self.planning.release(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if not self.armed or obj not in self.layers:
            return False
        view: SliceView = obj  # type: ignore[assignment]
        kind = event.type()
        if kind == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:  # type: ignore[attr-defined]
            self.stop()
            self.clear()
            return True
        if kind not in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseMove,
            QEvent.Type.MouseButtonRelease,
        ):
            return False
        ev: QMouseEvent = event  # type: ignore[assignment]
        x, y = ev.position().x(), ev.position().y()
        if kind == QEvent.Type.MouseButtonPress:
            if ev.button() != Qt.MouseButton.LeftButton:
                return False
            self._press_px = (x, y)
            p = view.display_to_world(x, y)
            if self.a_mm is None or self.b_mm is not None:
                self.clear()
                self.a_mm = p
            else:
                self._finish(view, p)
            return True
        if kind == QEvent.Type.MouseMove:
            if self._press_px is None or self.a_mm is None or self.b_mm is not None:
                return False
            if np.hypot(x - self._press_px[0], y - self._press_px[1]) >= _MIN_DRAG_PX:
                self.layers[view].show(self.a_mm, view.display_to_world(x, y))
            return True
        # release
        pressed = self._press_px
        if (
            pressed is not None
            and self.a_mm is not None
            and self.b_mm is None
            and np.hypot(x - pressed[0], y - pressed[1]) >= _MIN_DRAG_PX
        ):
            self._finish(view, view.display_to_world(x, y))
        self._press_px = None
        return True

    def _finish(self, view: SliceView, b: NDArray[np.float64]) -> None:
        assert self.a_mm is not None
        self.b_mm = np.asarray(b, dtype=np.float64)
        for layer in self.layers.values():
            layer.show(None, None)
        self.layers[view].show(self.a_mm, self.b_mm)
        self.planning.window.statusBar().showMessage(f"Distance {self.distance_mm:.1f} mm", 0)
