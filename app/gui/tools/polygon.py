"""Polygon and freehand fill on a 2-D view: click vertices and double-click (or Enter) to fill,
or press, draw a loop and release to fill it. Ctrl held when closing clears instead of filling.
Esc drops the open polygon. One fill is one undo step.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkPolyLine
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.tools.base import Tool, ToolManager, apply_patch
from app.gui.views.slice_view import SliceView
from dose.errors import InputError
from planner.plan.model import Structure
from planner.structures.paint import fill_polygon

__all__ = ["PolygonTool", "polygon_patch"]

#: A press-drag longer than this (px) is a freehand loop, shorter is a vertex click.
_FREEHAND_PX = 4.0


def polygon_patch(
    structure: Structure,
    vertices_mm: NDArray[np.float64],
    plane_normal: NDArray[np.float64],
    *,
    value: bool = True,
) -> tuple[tuple[slice, slice, slice], NDArray[np.bool_]] | None:
    """The patch filling (or clearing) the polygon on ``structure`` (None: no change)."""
    blank = np.broadcast_to(np.False_, structure.geometry.shape_zyx)
    box, footprint = fill_polygon(
        blank, structure.geometry, vertices_mm, value=True, plane_normal=plane_normal
    )
    if footprint.size == 0 or not footprint.any():
        return None
    values = structure.values_in(box)  # type: ignore[arg-type]
    new = values.copy()
    new[footprint] = value
    return None if np.array_equal(new, values) else (box, new)  # type: ignore[return-value]


class PolygonTool(Tool):
    name = "polygon"
    label = "Polygon"
    shortcut = "P"
    tooltip = (
        "Polygon/freehand fill (P): click vertices, double-click or Enter to fill; or draw a "
        "loop and release. Ctrl: clear instead. Esc: drop"
    )

    def __init__(self, manager: ToolManager) -> None:
        super().__init__(manager)
        self.vertices: list[NDArray[np.float64]] = []
        self.view: SliceView | None = None
        self._press_px: tuple[float, float] | None = None
        self._freehand = False
        self._actor: vtkActor | None = None

    def press(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        if self.view is not None and view is not self.view:
            self._drop()
        self.view = view
        pos = ev.position()
        self._press_px = (pos.x(), pos.y())
        self._freehand = False
        self.vertices.append(xyz_mm)
        self._draw()
        return True

    def move(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        if self._press_px is None or view is not self.view:
            return True
        pos = ev.position()
        if not self._freehand:
            dx, dy = pos.x() - self._press_px[0], pos.y() - self._press_px[1]
            if np.hypot(dx, dy) < _FREEHAND_PX:
                return True
            self._freehand = True
        self.vertices.append(xyz_mm)
        self._draw()
        return True

    def release(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        self._press_px = None
        if self._freehand and len(self.vertices) >= 3:
            ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.close_polygon(value=not ctrl)
        self._freehand = False
        return True

    def double_click(self, view: SliceView, xyz_mm: NDArray[np.float64]) -> bool:
        if len(self.vertices) >= 3:
            self.close_polygon()
        return True

    def key(self, view: SliceView, ev: QKeyEvent) -> bool:
        if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and len(self.vertices) >= 3:
            ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.close_polygon(value=not ctrl)
            return True
        if ev.key() == Qt.Key.Key_Escape and self.vertices:
            self._drop()
            return True
        return False

    def close_polygon(self, *, value: bool = True) -> bool:
        """Fill (``value``) or clear the open polygon in the current structure."""
        view, verts = self.view, self._unique_vertices()
        self._drop()
        if view is None or len(verts) < 3:
            return False
        found = self.manager.editable_structure()
        if found is None:
            return False
        doc, s = found
        try:
            patch = polygon_patch(s, verts, view.normal, value=value)
        except InputError as exc:
            self.manager.report(exc)
            return False
        if patch is None:
            return False
        return apply_patch(doc, s.id, patch, f"{'Fill' if value else 'Clear'} polygon {s.name}")

    def _unique_vertices(self) -> NDArray[np.float64]:
        out: list[NDArray[np.float64]] = []
        for v in self.vertices:
            if not out or np.linalg.norm(v - out[-1]) > 1e-6:
                out.append(v)
        return np.asarray(out, float).reshape(-1, 3)

    def deactivate(self) -> None:
        self._drop()

    # ------------------------------------------------------------------ drawing
    def _drop(self) -> None:
        self.vertices = []
        self._press_px = None
        self._freehand = False
        if self._actor is not None and self.view is not None and not self.view.is_closed:
            self.view.renderer.RemoveViewProp(self._actor)
            self.view.request_render()
        self._actor = None
        self.view = None

    def _draw(self) -> None:
        view = self.view
        if view is None or view.is_closed or not self.vertices:
            return
        pts = np.asarray(self.vertices) - 0.6 * view.normal
        poly = vtkPolyData()
        points = vtkPoints()
        points.SetData(numpy_to_vtk(np.ascontiguousarray(pts), deep=True))
        line = vtkPolyLine()
        line.GetPointIds().SetNumberOfIds(len(pts))
        for n in range(len(pts)):
            line.GetPointIds().SetId(n, n)
        cells = vtkCellArray()
        cells.InsertNextCell(line)
        poly.SetPoints(points)
        poly.SetLines(cells)
        if self._actor is None:
            mapper = vtkPolyDataMapper()
            self._actor = vtkActor()
            self._actor.SetMapper(mapper)
            self._actor.GetProperty().SetColor(1.0, 1.0, 1.0)
            self._actor.GetProperty().SetLineWidth(1.5)
            self._actor.GetProperty().LightingOff()
            self._actor.PickableOff()
            view.renderer.AddViewProp(self._actor)
        self._actor.GetMapper().SetInputData(poly)
        view.request_render()
