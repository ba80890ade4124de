"""Brush and eraser: paint the current structure with a disc (2-D, in the view plane) or a
sphere (3-D) of a radius in mm, optionally only where the HU is inside a window.

One press-drag-release is one undo step (``PlanDocument.stroke``). Each mouse move paints the
capsule from the previous position to the new one (:func:`planner.structures.paint.stroke`, so
fast drags leave no gaps) and records only that box (:func:`brush_patch`); the structure layers
then redraw only that structure's outline on the current slice of each view. While a stroke is
open the view painted in is the foreground view (:meth:`VTKWidget.set_foreground`): it redraws
on every move, the other views at most every ``BACKGROUND_RENDER_MS`` and once the stroke ends;
what follows the plan's edits outside the views (the panel's cm³ at most every 100 ms, the
planning listeners and Undo/Redo not at all) catches up on release
(:class:`app.gui.layers.base.StrokeCoalescer`).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import numpy as np
from numpy.typing import NDArray
from PySide6.QtGui import QMouseEvent
from vtkmodules.vtkFiltersSources import vtkRegularPolygonSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.layers.base import StrokeCoalescer
from app.gui.tools.base import Tool, ToolManager, apply_patch
from app.gui.views.slice_view import SliceView
from app.gui.vtk_bridge import VTKWidget
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.plan.model import Structure
from planner.structures.paint import stroke

__all__ = ["BrushTool", "EraserTool", "brush_patch"]


def brush_patch(
    structure: Structure,
    path_mm: NDArray[np.float64],
    radius_mm: float,
    *,
    value: bool,
    plane_normal: NDArray[np.float64] | None,
    hu: NDArray[np.generic] | None = None,
    hu_range: tuple[float, float] | None = None,
) -> tuple[tuple[slice, slice, slice], NDArray[np.bool_]] | None:
    """The patch ``(box, values)`` of one brush segment on ``structure`` (None: no change).

    path_mm : (n, 3) LPS mm. The tool's footprint is computed on an all-False stand-in of the
    full grid (a zero-stride view: no 39 MB mask is ever built per move), then written over the
    structure's own values in that box only.
    """
    geometry: GridGeometry = structure.geometry
    blank = np.broadcast_to(np.False_, geometry.shape_zyx)
    box, footprint = stroke(
        blank,
        geometry,
        path_mm,
        radius_mm,
        value=True,
        plane_normal=plane_normal,
        hu=hu if hu_range is not None else None,
        hu_range=hu_range,
    )
    if footprint.size == 0 or not footprint.any():
        return None
    values = structure.values_in(box)  # type: ignore[arg-type]
    new = values.copy()
    new[footprint] = value
    if np.array_equal(new, values):
        return None
    return box, new  # type: ignore[return-value]


class BrushCursor:
    """The brush outline on one 2-D view: a circle in the view plane (renders only on change)."""

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.source = vtkRegularPolygonSource()
        self.source.SetNumberOfSides(48)
        self.source.GeneratePolygonOff()
        self.source.SetNormal(*view.normal)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self.source.GetOutputPort())
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.actor.GetProperty().LightingOff()
        self.actor.PickableOff()
        self.actor.VisibilityOff()
        view.renderer.AddViewProp(self.actor)
        #: (centre on the plane (LPS mm), radius mm) drawn, or None when hidden.
        self.shown: tuple[tuple[float, float, float], float] | None = None

    def show(self, xyz_mm: NDArray[np.float64] | None, radius_mm: float) -> None:
        """A circle of ``radius_mm`` about ``xyz_mm`` (a point of the view plane); None hides."""
        if self.view.is_closed:
            return
        state = None
        if xyz_mm is not None:
            c = np.asarray(xyz_mm, dtype=np.float64)
            state = ((float(c[0]), float(c[1]), float(c[2])), float(radius_mm))
        if state == self.shown:
            return
        self.shown = state
        if state is None:
            self.actor.VisibilityOff()
        else:
            self.source.SetCenter(*(np.asarray(state[0]) - 0.6 * self.view.normal))
            self.source.SetRadius(state[1])
            self.actor.VisibilityOn()
        self.view.request_render()

    def remove(self) -> None:
        if not self.view.is_closed:
            self.view.renderer.RemoveViewProp(self.actor)
            self.view.request_render()


class BrushTool(Tool):
    name = "brush"
    label = "Brush"
    shortcut = "B"
    tooltip = "Paint the current structure (B); radius, 2-D disc or 3-D sphere and HU window below"
    value = True

    def __init__(self, manager: ToolManager) -> None:
        super().__init__(manager)
        self._stroke: ExitStack | None = None
        self._last: NDArray[np.float64] | None = None
        self._target = ""
        self._cursors: dict[int, BrushCursor] = {}
        #: Seconds spent in each mouse move's model update (for the benchmark and the log).
        self.move_seconds: list[float] = []

    # ------------------------------------------------------------------ painting
    def press(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        found = self.manager.editable_structure()
        if found is None:
            return True
        doc, s = found
        self._finish()
        self._stroke = ExitStack()
        verb = "Paint" if self.value else "Erase"
        self._stroke.enter_context(doc.stroke(f"{verb} {s.name}"))
        self._target = s.id
        self._last = xyz_mm
        VTKWidget.set_foreground(view)
        self._paint(view, np.vstack([xyz_mm, xyz_mm]))
        return True

    def move(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        self.hover(view, xyz_mm)
        if self._stroke is None or self._last is None:
            return True
        self._paint(view, np.vstack([self._last, xyz_mm]))
        self._last = xyz_mm
        return True

    def release(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        if self._stroke is None:
            return True
        self._finish()
        return True

    def _paint(self, view: SliceView, path_mm: NDArray[np.float64]) -> None:
        doc = self.window.session.document
        volume = self.window.session.volume
        if doc is None or volume is None:
            return
        opts = self.manager.options
        t0 = time.perf_counter()
        try:
            s = doc.plan.structure(self._target)
            patch = brush_patch(
                s,
                path_mm,
                opts.radius_mm,
                value=self.value,
                plane_normal=None if opts.sphere else view.normal,
                hu=volume.hu,
                hu_range=opts.hu_window,
            )
            if patch is not None:
                apply_patch(doc, s.id, patch, f"{'Paint' if self.value else 'Erase'} {s.name}")
        except (InputError, KeyError) as exc:
            self.manager.message.emit(str(exc))
            self._finish()
        # Patch, edit and everything the edit's event ran synchronously (outlines, panels).
        self.move_seconds.append(time.perf_counter() - t0)
        del self.move_seconds[:-1000]

    def _finish(self) -> None:
        if self._stroke is not None:
            stack, self._stroke = self._stroke, None
            try:
                stack.close()
            finally:
                VTKWidget.set_foreground(None)  # the other views redraw now
                StrokeCoalescer.flush_all()  # cm³, planning listeners, Undo: exact now
        self._last = None

    def deactivate(self) -> None:
        self._finish()
        for cursor in self._cursors.values():
            cursor.remove()
        self._cursors.clear()

    # ------------------------------------------------------------------ cursor
    def cursor(self, view: SliceView) -> BrushCursor:
        """The brush cursor of ``view`` (made on first use)."""
        found = self._cursors.get(id(view))
        if found is None:
            found = self._cursors[id(view)] = BrushCursor(view)
        return found

    def hover(self, view: SliceView, xyz_mm: NDArray[np.float64] | None) -> None:
        """Show the brush where it paints: the disc in ``view``'s plane; the 3-D sphere's
        section (radius √(r² − d²), d the centre's distance to the plane) in every 2-D view
        whose plane it crosses. None (the mouse left the view) hides the cursors."""
        radius = self.manager.options.radius_mm
        sphere = self.manager.options.sphere
        for other in self.window.slice_views:
            if other is not view and not sphere:
                if id(other) in self._cursors:
                    self._cursors[id(other)].show(None, radius)
                continue
            cursor = self.cursor(other)
            if xyz_mm is None:
                cursor.show(None, radius)
                continue
            p = np.asarray(xyz_mm, dtype=np.float64)
            d = float(p @ other.normal - other.slice_position_mm())
            if other is view or (sphere and abs(d) < radius):
                section = float(np.sqrt(max(radius * radius - d * d, 0.0)))
                cursor.show(p - d * other.normal, radius if other is view else section)
            else:
                cursor.show(None, radius)


class EraserTool(BrushTool):
    name = "eraser"
    label = "Eraser"
    shortcut = "E"
    tooltip = "Erase from the current structure (E); same radius and limits as the brush"
    value = False
