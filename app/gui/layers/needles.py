"""Needle layers: on a 2-D view the needle's projection, its ends and where it crosses the
slice; in 3-D the needle as a tube.

A needle is a line in 3-D (entry → tip, LPS mm). On a 2-D view (:class:`NeedleLayer`) it is
drawn as its projection onto the displayed plane (thin, dimmed: most of an oblique needle is
off the slice), a small square at the entry and a diamond at the tip (the handles a drag
grabs, :mod:`app.gui.tools.seed_tool`; shown for the selected needle and for ends within
5 mm of the plane, so a plan of many needles does not bury the anatomy in handles), and a
bright ring where the track crosses the displayed plane
(:func:`planner.plan.needles.plane_crossing_mm`). A needle with warnings is drawn orange (red
when it passes through a structure to avoid); the selected one is thicker.
The name is written beside the entry of the needles that can be told apart on the view: the
selected one, those with a drawn handle and those crossing the displayed plane (parallel
needles off the plane project onto one line, where their names would overprint).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTubeFilter
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor

from app.gui.layers.base import Layer
from app.gui.views.vtk_data import set_polylines
from planner.plan.needles import plane_crossing_mm
from planner.session.session import Session

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView
    from app.gui.vtk_bridge import VTKWidget
    from planner.plan.model import Needle

__all__ = [
    "NEEDLE_OFFSET_MM",
    "NeedleLayer",
    "NeedleTrackLayer",
    "line_actor",
    "needle_rgb",
    "polyline_polydata",
]

#: Needles and seeds are drawn this far in front of the image (isodoses and outlines behind).
NEEDLE_OFFSET_MM = 0.9
NEEDLE_RGB = (0.45, 0.85, 1.0)
WARN_RGB = (1.0, 0.6, 0.15)
DANGER_RGB = (1.0, 0.25, 0.2)
SELECTED_RGB = (1.0, 1.0, 1.0)
_HANDLE_PX = 5.0
#: A needle end this close to the displayed plane (mm) shows its drag handle.
HANDLE_NEAR_MM = 5.0
_RING_PX = 6.0


def needle_rgb(planning: PlanningUI, needle_id: str) -> tuple[float, float, float]:
    """Colour of a needle: red through a structure to avoid, orange with other warnings."""
    kinds = {w.kind for w in planning.warnings.get(needle_id, ())}
    if "through_avoid" in kinds:
        return DANGER_RGB
    return WARN_RGB if kinds else NEEDLE_RGB


def polyline_polydata(
    points_mm: NDArray[np.float64], lines: list[list[int]], polydata: vtkPolyData | None = None
) -> vtkPolyData:
    """A vtkPolyData of ``points_mm`` (M, 3) and polylines (lists of point indices); filled
    into ``polydata`` when given. The arrays are built in numpy and handed to VTK at once (no
    per-point VTK call: a layer redrawn on every drag step fills several of these)."""
    pd = polydata if polydata is not None else vtkPolyData()
    pts = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
    sizes = np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines))
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    conn = np.fromiter(chain.from_iterable(lines), dtype=np.int64, count=int(offsets[-1]))
    set_polylines(pd, pts, offsets, conn)
    return pd


def line_actor(pd: vtkPolyData, rgb: tuple[float, float, float], width: float) -> vtkActor:
    """A 2-D line actor of ``pd`` in one colour (RGB 0-1) and width (px); shared by the needle,
    seed and distance layers."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(pd)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*rgb)
    prop.SetLineWidth(width)
    prop.LightingOff()
    actor.PickableOff()
    return actor


class NeedleLayer(Layer):
    """Needles of the plan on one 2-D view (module docstring)."""

    def __init__(self, view: SliceView, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.slice_view = view
        self.planning = planning
        #: One line actor per (width, opacity) for all needles, colours per cell: with software
        #: OpenGL each actor costs ~0.3 ms per render, so 14 needles drawn as 3 actors each
        #: would cost ~13 ms per view and frame.
        self._groups: dict[tuple[float, float], tuple[vtkPolyData, vtkActor]] = {}
        self._labels: list[vtkTextActor] = []
        #: Screen handles drawn last: {(needle id, "entry" | "tip"): (x_px, y_px)}.
        self.handles_px: dict[tuple[str, str], tuple[float, float]] = {}
        #: Where each needle crosses the displayed plane (LPS mm), for tests and tools.
        self.crossings_mm: dict[str, NDArray[np.float64]] = {}
        self.track_px: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        self.listen(planning.events.plan_changed, self.update)
        self.listen(planning.events.selection_changed, self.update)
        self.listen(planning.events.warnings_changed, self.update)
        self.listen(session.crosshair_changed, self.update)
        self.listen(view.camera_changed, self.update)  # handle sizes are in pixels
        self.update()

    def _clear(self) -> None:
        for prop in self._labels:
            self.remove_prop(prop)
        for _, actor in self._groups.values():
            actor.VisibilityOff()
        self._labels.clear()
        self.handles_px.clear()
        self.crossings_mm.clear()
        self.track_px.clear()

    def _state_key(self) -> tuple[object, ...]:
        """What the drawing depends on; a seed drag changes none of it (needles unchanged)."""
        plan = self.planning.plan
        camera = self.slice_view.renderer.GetActiveCamera()
        warned = self.planning.warnings
        return (
            # The needles themselves (compared by value), not their id: a freed tuple's id is
            # soon another's, and the layer would keep a stale drawing.
            None if plan is None else plan.needles,
            self.planning.selected_needle_id,
            # Colours depend on the warnings' kinds only (a new table refresh, same kinds: same
            # drawing); a plan without needles draws nothing whatever the warnings.
            ()
            if plan is None or not plan.needles
            else tuple(sorted((k, tuple(sorted({w.kind for w in v}))) for k, v in warned.items())),
            self.planning.preview_needle,
            camera.GetFocalPoint(),
            camera.GetParallelScale(),
            self.slice_view.width(),
            self.slice_view.height(),
            self.session.volume is None,
        )

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        key = self._state_key()
        if key == getattr(self, "_drawn_key", None):
            return
        self._drawn_key = key
        self._clear()
        plan = self.planning.plan
        view = self.slice_view
        if plan is None or self.session.volume is None or not plan.needles:
            self.render()
            return
        n = view.normal
        here = view.slice_position_mm()
        mm_per_px = view._mm_per_px()
        right, up = view._screen_axes()
        # (width, opacity) → (points, polylines, one RGB per polyline)
        groups: dict[tuple[float, float], tuple[list, list, list]] = {}

        def add(key: tuple[float, float], pts: list, loops: list[list[int]], rgb) -> None:
            points, lines, colours = groups.setdefault(key, ([], [], []))
            base = len(points)
            points.extend(pts)
            lines.extend([[base + i for i in loop] for loop in loops])
            colours.extend([rgb] * len(loops))

        preview = getattr(self.planning, "preview_needle", None)
        needles: list[Needle] = list(plan.needles)
        if preview is not None:
            needles.append(preview)
        for needle in needles:
            entry = np.asarray(needle.entry_mm, dtype=np.float64)
            tip = np.asarray(needle.tip_mm, dtype=np.float64)
            selected = needle.id == self.planning.selected_needle_id
            rgb = (
                SELECTED_RGB
                if selected
                else NEEDLE_RGB
                if needle is preview
                else needle_rgb(self.planning, needle.id)
            )

            def onto(p: NDArray[np.float64]) -> NDArray[np.float64]:
                return p + (here - p @ n - NEEDLE_OFFSET_MM) * n

            e2, t2 = onto(entry), onto(tip)
            # Opaque (a translucent prop costs every render of the view a full-window
            # order-independent-transparency pass with software OpenGL): a dimmer colour
            # instead of 70 % opacity for the projection, most of which is off the slice.
            dim = rgb if selected else tuple(0.75 * c for c in rgb)
            add((3.0, 1.0) if selected else (1.6, 1.0), [e2, t2], [[0, 1]], dim)
            h = _HANDLE_PX * mm_per_px
            # Handles (what a drag grabs) only where they can be seen for what they are: the
            # selected needle's, and ends within HANDLE_NEAR_MM of the displayed plane.
            show_entry = selected or abs(entry @ n - here) <= HANDLE_NEAR_MM
            show_tip = selected or abs(tip @ n - here) <= HANDLE_NEAR_MM
            loops, pts_list = [], []
            if show_entry:
                corners = ((-1, -1), (1, -1), (1, 1), (-1, 1))
                pts_list += [e2 + h * (sx * right + sy * up) for sx, sy in corners]
                loops.append([0, 1, 2, 3, 0])
            if show_tip:
                k = len(pts_list)
                pts_list += [t2 + h * 1.3 * v for v in (right, up, -right, -up)]
                loops.append([k, k + 1, k + 2, k + 3, k])
            if loops:
                add((2.0, 1.0), pts_list, loops, rgb)
            if needle is not preview:
                if show_entry:
                    self.handles_px[(needle.id, "entry")] = view.world_to_display(e2)
                if show_tip:
                    self.handles_px[(needle.id, "tip")] = view.world_to_display(t2)
                # Both ends on screen (hit tests on the track), drawn or not.
                self.track_px[needle.id] = (view.world_to_display(e2), view.world_to_display(t2))
            cross = plane_crossing_mm(entry, tip, n * here, n)
            if cross is not None:
                self.crossings_mm[needle.id] = cross
                c2 = onto(cross)
                r = _RING_PX * mm_per_px
                ang = np.linspace(0.0, 2 * np.pi, 17)
                ring = c2 + r * (np.cos(ang)[:, None] * right + np.sin(ang)[:, None] * up)
                add((2.5, 1.0), list(ring), [list(range(len(ring)))], rgb)
            # The name where the needle can be told apart on this view: the selected one,
            # one with an end near the plane or crossing it. Parallel needles off the plane
            # project onto the same line (their names would overprint each other), and each
            # label costs every render of the view a text draw (~0.15 ms with software
            # OpenGL: 21 names were a third of a 2-D view's frame during a seed drag).
            named = selected or show_entry or show_tip or cross is not None
            if needle.label and needle is not preview and named:
                self._labels.append(self._label(needle.label, e2 + 2.5 * h * (right + up), rgb))
        for key, (points, lines, colours) in groups.items():
            self._group(key, points, lines, colours)
        self.render()

    def _group(self, key: tuple[float, float], points: list, lines: list, colours: list) -> None:
        """Fill (and show) the actor of lines of width and opacity ``key``."""
        found = self._groups.get(key)
        if found is None:
            pd = vtkPolyData()
            actor = line_actor(pd, (1.0, 1.0, 1.0), key[0])
            actor.GetProperty().SetOpacity(key[1])
            mapper = actor.GetMapper()
            mapper.ScalarVisibilityOn()
            mapper.SetScalarModeToUseCellData()
            mapper.SetColorModeToDirectScalars()
            self.add_prop(actor)
            found = self._groups[key] = (pd, actor)
        pd, actor = found
        polyline_polydata(np.asarray(points, dtype=np.float64), lines, pd)
        rgb = np.clip(np.rint(np.asarray(colours, dtype=np.float64) * 255.0), 0, 255)
        scalars = numpy_to_vtk(rgb.astype(np.uint8), deep=True)
        scalars.SetName("rgb")
        pd.GetCellData().SetScalars(scalars)
        pd.Modified()
        actor.VisibilityOn()

    def _label(self, text: str, at_mm: NDArray[np.float64], rgb) -> vtkTextActor:
        actor = vtkTextActor()
        actor.SetInput(text)
        coord = actor.GetPositionCoordinate()
        coord.SetCoordinateSystemToWorld()
        coord.SetValue(*(float(v) for v in at_mm))
        tp = actor.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(11)
        tp.SetColor(*rgb)
        tp.ShadowOn()
        actor.PickableOff()
        self.add_prop(actor)
        return actor


class NeedleTrackLayer(Layer):
    """Needles of the plan in 3-D: tubes of 0.6 mm radius (an 18-gauge needle is 1.27 mm)."""

    def __init__(self, view: VTKWidget, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.planning = planning
        self.polydata = vtkPolyData()
        tube = vtkTubeFilter()
        tube.SetInputData(self.polydata)
        tube.SetRadius(0.6)
        tube.SetNumberOfSides(10)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(tube.GetOutputPort())
        mapper.ScalarVisibilityOff()
        self.tube = tube
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(*NEEDLE_RGB)
        self.actor.PickableOff()
        self.add_prop(self.actor)
        self._drawn: object = None  # the needle tuple drawn (plans are immutable)
        self.listen(planning.events.plan_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        plan = self.planning.plan
        needles = () if plan is None else plan.needles
        if needles is self._drawn:
            return  # a seed drag or a mask edit: the needles did not change, no 3-D redraw
        self._drawn = needles
        if not needles:
            self.actor.VisibilityOff()
            self.render()
            return
        pts = np.array([p for nd in needles for p in (nd.entry_mm, nd.tip_mm)], dtype=float)
        polyline_polydata(pts, [[2 * i, 2 * i + 1] for i in range(len(needles))], self.polydata)
        self.actor.VisibilityOn()
        self.render()
