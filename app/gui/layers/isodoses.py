"""Isodose layers: live isodose lines (and an optional colour wash) on the 2-D views; the
100 % isodose surface in 3-D.

:class:`IsodoseLayer` draws, on one 2-D view, the isodose lines of the live dose of that view's
CT slice (:meth:`planner.plan.live_dose.LiveDose.region_dose_gy`, default 50/90/100/150/200 %
of the prescription) in two line actors (the 100 % line thicker on its own; the other levels
together, one colour per level by point colours), and a legend in Gy and % PD
(bottom left). The lines are marching-squares segments of the slice dose, all levels in one
numba pass (:func:`planner.plan.isolines.iso_segments_levels`: the same segments as
:meth:`~planner.plan.live_dose.LiveDose.isodose_segments`, about three times faster than
``vtkFlyingEdges2D``, which runs once per level; that matters while a seed is dragged), their
ends written in LPS mm by the plane's geometry (as
:meth:`~planner.plan.live_dose.ViewPlane.rc_to_world_mm`), so they overlay the image exactly.
A view whose plane is not a CT slice of its live view (a resliced plane through a tilted or
rotated CT) gets the live dose of its own plane (:meth:`~planner.plan.live_dose.LiveDose.
set_oblique`: the view's LPS plane through the crosshair, recomputed when the crosshair moves
along the normal), so its lines are exactly on the plane shown. The wash (Plan → Dose colour
wash) is a translucent colour image of the same slice dose, from 50 % PD up, clear below.

:class:`IsodoseSurfaceLayer` draws the prescription isodose surface of the latest exact dose
(:class:`~planner.plan.dosimetry.PlanDosimetry`) in 3-D, labelled "exact"; after an edit it
shows the previous exact dose until the refresh (about 1-2 s) replaces it.

The dose is only ever read from the live dose / exact result the planning controller holds:
nothing here touches the engine (and so nothing compiles on the GUI thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import (
    vtkLookupTable,
    vtkPoints,
)
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageActor,
    vtkPolyDataMapper,
    vtkTextActor,
)

from app.gui.layers.annotations import add_text
from app.gui.layers.base import Layer
from app.gui.layers.segments import SegmentArrays
from app.gui.views.live_views import LIVE_AXIS, live_view_name
from planner.session.session import Session

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView
    from app.gui.vtk_bridge import VTKWidget
    from dose.geometry import GridGeometry
    from planner.plan.dosimetry import PlanDosimetry

__all__ = [
    "ISODOSE_OFFSET_MM",
    "IsodoseContours",
    "IsodoseLayer",
    "IsodoseSurfaceLayer",
    "level_rgb",
    "segments_polydata",
]

#: Isodose lines lie between the structure outlines (0.5 mm) and needles/seeds (0.9 mm).
ISODOSE_OFFSET_MM = 0.7
#: Colours chosen to read on grey CT and to differ from structure colours and seeds.
LEVEL_RGB: dict[float, tuple[float, float, float]] = {
    50.0: (0.30, 0.55, 1.00),
    90.0: (0.20, 0.90, 0.35),
    100.0: (1.00, 0.95, 0.10),
    150.0: (1.00, 0.55, 0.10),
    200.0: (1.00, 0.30, 0.85),
}


def level_rgb(percent: float) -> tuple[float, float, float]:
    """The colour of an isodose level (% of PD).

    The default levels keep their colours; any other level is interpolated (in RGB, by
    percentage) between the two default levels around it, so colours follow the order of the
    levels (120 % lies between the yellow 100 % and the orange 150 %). Below 50 % the 50 %
    blue, above 200 % the 200 % magenta.
    """
    if percent in LEVEL_RGB:
        return LEVEL_RGB[percent]
    levels = np.array(sorted(LEVEL_RGB))
    rgb = np.array([LEVEL_RGB[p] for p in levels])
    r, g, b = (float(np.interp(percent, levels, rgb[:, k])) for k in range(3))
    return (r, g, b)


def segments_polydata(points_mm: NDArray[np.float64], polydata: vtkPolyData) -> None:
    """Fill ``polydata`` with line segments: ``points_mm`` (2S, 3), each pair one segment."""
    pts = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
    n_seg = len(pts) // 2
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(pts, deep=True))
    cells = vtkCellArray()
    offsets = numpy_to_vtkIdTypeArray(np.arange(0, 2 * n_seg + 1, 2, dtype=np.int64), deep=True)
    conn = numpy_to_vtkIdTypeArray(np.arange(2 * n_seg, dtype=np.int64), deep=True)
    cells.SetData(offsets, conn)
    polydata.SetPoints(vpts)
    polydata.SetLines(cells)
    polydata.Modified()


class IsodoseContours:
    """Isodose segments of one view's slice dose as VTK polydata (no window needed).

    One marching-squares pass over the dose finds the segments of every level
    (:func:`planner.plan.isolines.iso_segments_levels`, numba: the same segments as the model's
    :meth:`~planner.plan.live_dose.LiveDose.isodose_segments`), their ends written directly in
    LPS mm by the plane's geometry; :meth:`update` hands each polydata its levels' block of
    points (one array copy, no VTK filter) and returns the segment count per level.
    """

    def __init__(self) -> None:
        self._segments: dict[int, SegmentArrays] = {}  # by id() of the polydata filled

    def _arrays(self, pd: vtkPolyData) -> SegmentArrays:
        found = self._segments.get(id(pd))
        if found is None or found.polydata is not pd:
            found = self._segments[id(pd)] = SegmentArrays(pd)
        return found

    def update(
        self,
        dose_gy: NDArray[np.float64],
        geometry: GridGeometry,
        levels_gy: dict[float, float],
        polydata: dict[float, vtkPolyData],
        offset_mm: NDArray[np.float64] | None = None,
        colors: dict[float, tuple[float, float, float]] | None = None,
    ) -> dict[float, int]:
        """Contour ``dose_gy`` (rows, cols) on the one-slice grid ``geometry`` at ``levels_gy``
        ({key: Gy}); fill ``polydata[key]`` with that level's segments (LPS mm, shifted by
        ``offset_mm`` (3,)); returns {key: segment count}.

        Keys may share one polydata: it then holds the segments of all its levels, with
        per-point RGB (uint8, ``colors`` {key: (r, g, b) in 0-1}) when ``colors`` is given. A
        polydata none of whose levels has a segment (or all at or above the maximum dose) is
        left as it was (counts 0)."""
        from planner.plan.isolines import iso_segments_levels

        dose = np.ascontiguousarray(dose_gy, dtype=np.float64)
        rows, cols = dose.shape
        top = float(dose.max()) if dose.size else 0.0
        counts: dict[float, int] = dict.fromkeys(levels_gy, 0)
        groups: dict[int, list[float]] = {}
        for key, level in levels_gy.items():
            if rows >= 2 and cols >= 2 and level < top:  # else no line
                groups.setdefault(id(polydata[key]), []).append(key)
        if not groups:
            return counts
        keys = [k for group in groups.values() for k in group]  # each group's levels together
        # (row, col) → LPS mm: column along the plane's first axis, row along its second.
        g = geometry
        d, sp = np.asarray(g.direction, dtype=np.float64), np.asarray(g.spacing_mm)
        affine = np.empty((3, 3))
        affine[:, 0] = d[:, 1] * sp[1]
        affine[:, 1] = d[:, 0] * sp[0]
        affine[:, 2] = np.asarray(g.origin_mm, dtype=np.float64)
        if offset_mm is not None:
            affine[:, 2] += np.asarray(offset_mm, dtype=np.float64)
        points, per_level = iso_segments_levels(dose, [levels_gy[k] for k in keys], affine)
        at = 0
        for group_keys in groups.values():
            n_keys = len(group_keys)
            group_counts = per_level[at : at + n_keys]
            start = int(per_level[:at].sum())
            at += n_keys
            n = int(group_counts.sum())
            for key, c in zip(group_keys, group_counts.tolist(), strict=True):
                counts[key] = int(c)
            if n == 0:
                continue
            rgb = None
            if n_keys > 1 and colors is not None:
                table = np.rint(np.array([colors[k] for k in group_keys]) * 255.0)
                rgb = np.repeat(table.astype(np.uint8), 2 * group_counts, axis=0)
            self._arrays(polydata[group_keys[0]]).fill(points[2 * start : 2 * (start + n)], rgb)
        return counts


class IsodoseLayer(Layer):
    """Live isodose lines, legend and optional wash on one 2-D view (module docstring)."""

    def __init__(self, view: SliceView, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.slice_view = view
        self.planning = planning
        self.name = live_view_name(view)
        #: Per level (% PD): the polydata of its segments (LPS mm) and their actor; the 100 %
        #: level has its own, the other levels share one (coloured per point).
        self.lines: dict[float, tuple[vtkPolyData, vtkActor]] = {}
        #: The contouring of the live region dose (one filter per level).
        self.contours = IsodoseContours()
        self._legend_key: tuple[object, ...] | None = None
        self.legend: list[vtkTextActor] = []
        #: Segment count drawn per level at the last update (tests and the benchmark read it).
        self.segment_counts: dict[float, int] = {}
        # Where the legend's first row goes (the note shows only while the legend is hidden):
        # clear of the scale bar and the FOV text in the bottom-right corner.
        self.note = add_text(self, "", (0.015, 0.065), "left", "bottom", 11, (0.8, 0.8, 0.8))
        self.wash_image = vtkImageData()
        self.wash_lut = vtkLookupTable()
        self.wash_actor = vtkImageActor()
        self.wash_actor.GetMapper().SetInputData(self.wash_image)
        self.wash_actor.PickableOff()
        self.wash_actor.VisibilityOff()
        self.add_prop(self.wash_actor)
        self._hidden_note: str | None = None  # the note shown while hidden (None: lines shown)
        self.listen(planning.events.live_changed, self._on_live_changed)
        self.listen(planning.events.plan_changed, self._on_plan_changed)
        self.listen(session.crosshair_changed, self._on_crosshair_changed)
        self.listen(planning.events.status_changed, self._on_status_changed)
        self.update()

    def _on_status_changed(self, _text: str) -> None:
        """Without a live dose the note is the dose status ("waiting for the dose engine…")."""
        if self.planning.live is None:
            self.update()

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        """An oblique view follows the crosshair along its normal (CT-slice views are moved
        by the planning controller's ``set_slice``)."""
        live = self.planning.live
        if live is None or self.closed:
            return
        spec = live.oblique(self.name)  # type: ignore[arg-type]
        if (
            spec is not None
            and abs(spec.position_mm - float(xyz_mm @ self.slice_view.normal)) > 1e-6
        ):
            self.update()

    def _on_live_changed(self, views: frozenset[str]) -> None:
        if not views or self.name in views:
            self.update()

    def _on_plan_changed(self, _plan: object) -> None:
        if self.planning.live is None:
            self.update()

    def aligned(self) -> bool:
        """True when this view shows a CT slice of the live dose's axis (not resliced)."""
        view = self.slice_view
        if self.session.volume is None or view.is_resliced():
            return False
        return view._slice_axis() == LIVE_AXIS[self.name]

    def _place_plane(self, live) -> None:
        """Give the live dose this view's plane: its CT slice, or the oblique LPS plane."""
        name = self.name
        if self.session.volume is None or self.aligned():
            if live.oblique(name) is not None:
                live.clear_oblique(name)
            return
        right, up = self.slice_view._screen_axes()
        live.set_oblique(name, self.slice_view.normal, right, up, self.session.crosshair_mm)

    def _level_actor(self, percent: float) -> tuple[vtkPolyData, vtkActor]:
        """The polydata and actor that draw ``percent``: the prescription (100 %) line has its
        own, thicker one; every other level shares one actor coloured per point (fewer
        filter runs and props per drag step: one contouring for all of them)."""
        if percent not in self.lines:
            thick = percent == 100.0
            shared = (
                None if thick else next((pa for p, pa in self.lines.items() if p != 100.0), None)
            )
            if shared is None:
                pd = vtkPolyData()
                mapper = vtkPolyDataMapper()
                mapper.SetInputData(pd)
                if thick:
                    mapper.ScalarVisibilityOff()
                else:  # colours per point (IsodoseContours.update(colors=...))
                    mapper.ScalarVisibilityOn()
                    mapper.SetScalarModeToUsePointData()
                    mapper.SetColorModeToDirectScalars()
                actor = vtkActor()
                actor.SetMapper(mapper)
                prop = actor.GetProperty()
                prop.SetColor(*level_rgb(percent))  # a lone level draws without point colours
                prop.SetLineWidth(2.6 if thick else 1.7)
                prop.LightingOff()
                actor.PickableOff()
                self.add_prop(actor)
                shared = (pd, actor)
            self.lines[percent] = shared
        return self.lines[percent]

    def _hide(self, note: str = "") -> None:
        """Hide lines, legend and wash, show ``note``; renders only if something changed."""
        if self._hidden_note == note:
            return  # already hidden with this note (e.g. every edit of a plan without dose)
        self._hidden_note = note
        for _, actor in self.lines.values():
            actor.VisibilityOff()
        for t in self.legend:
            t.VisibilityOff()
        self._legend_key = None
        self.wash_actor.VisibilityOff()
        self.note.SetInput(note)
        self.note.SetVisibility(bool(note))  # an empty text actor still costs a draw
        self.segment_counts = {}
        self.render()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        live = self.planning.live
        if live is None or live.prescription_gy is None:
            self._hide(self.planning.exact_status if self.planning.plan is not None else "")
            return
        self._place_plane(live)
        self._hidden_note = None
        self.note.SetInput("")
        self.note.VisibilityOff()
        plane = live.plane(self.name)  # type: ignore[arg-type]
        normal = self.slice_view.normal
        levels = self.planning.levels_percent
        for p in list(self.lines):
            if p not in levels:  # (a shared actor is shown again by _contour)
                self.lines[p][1].VisibilityOff()
        self.segment_counts = self._contour(live, plane, normal, levels)
        self._update_legend(live.prescription_gy, self.segment_counts)
        self._update_wash(live, plane, normal)
        self.render()

    def _contour(
        self, live, plane, normal: NDArray[np.float64], levels: tuple[float, ...]
    ) -> dict[float, int]:
        """Fill each level's polydata with its segments on ``plane`` (drawn in front of the
        image by the isodose offset); returns the segment count per level (0: not drawn)."""
        pd_gy = float(live.prescription_gy)
        actors = {p: self._level_actor(p) for p in levels}
        counts = self.contours.update(
            live.region_dose_gy(self.name),
            plane.geometry,
            {p: pd_gy * p / 100.0 for p in levels},
            {p: pd for p, (pd, _) in actors.items()},
            -ISODOSE_OFFSET_MM * np.asarray(normal, dtype=np.float64),
            {p: level_rgb(p) for p in levels},
        )
        shown: dict[int, bool] = {}
        for p, (_, actor) in actors.items():
            shown[id(actor)] = shown.get(id(actor), False) or counts[p] > 0
            actor.SetVisibility(shown[id(actor)])
        return counts

    def _update_legend(self, pd_gy: float, counts: dict[float, int]) -> None:
        """Legend rows (level, Gy, "(none)" without a line) and title; unchanged text (every
        drag step, mostly) touches no text actor."""
        key = (pd_gy, tuple((p, counts[p] > 0) for p in sorted(counts)))
        if key == self._legend_key:
            return
        self._legend_key = key
        levels = sorted(counts, reverse=True)
        while len(self.legend) < len(levels) + 1:
            self.legend.append(add_text(self, "", (0.015, 0.0), "left", "bottom", 11, (1, 1, 1)))
        for t in self.legend:
            t.VisibilityOff()
        y = 0.065
        for i, p in enumerate(sorted(levels)):
            t = self.legend[i]
            shown = "" if counts[p] else "  (none)"
            t.SetInput(f"{p:g} %  {pd_gy * p / 100.0:.0f} Gy{shown}")
            t.GetTextProperty().SetColor(*level_rgb(p))
            t.GetPositionCoordinate().SetValue(0.015, y)
            t.VisibilityOn()
            y += 0.045
        title = self.legend[len(levels)]
        title.SetInput(f"Isodose (PD {pd_gy:g} Gy, live)")
        title.GetTextProperty().SetColor(0.92, 0.92, 0.92)
        title.GetPositionCoordinate().SetValue(0.015, y)
        title.VisibilityOn()

    def _update_wash(self, live, plane, normal: NDArray[np.float64]) -> None:
        if not self.planning.wash:
            self.wash_actor.VisibilityOff()
            return
        pd_gy = float(live.prescription_gy)
        dose = live.region_dose_gy(self.name)
        g = plane.geometry
        rows, cols = dose.shape
        img = self.wash_image
        img.SetDimensions(cols, rows, 1)
        sp = g.spacing_mm
        img.SetSpacing(float(sp[0]), float(sp[1]), 1.0)
        origin = np.asarray(g.origin_mm) - ISODOSE_OFFSET_MM * 1.2 * normal
        img.SetOrigin(*(float(v) for v in origin))
        m = g.direction
        img.SetDirectionMatrix(*(float(v) for v in m.reshape(-1)))
        arr = numpy_to_vtk(np.ascontiguousarray(dose, dtype=np.float32).reshape(-1), deep=True)
        img.GetPointData().SetScalars(arr)
        img.Modified()
        lut = self.wash_lut
        lut.SetNumberOfTableValues(256)
        lut.SetTableRange(0.5 * pd_gy, 2.0 * pd_gy)
        lut.SetHueRange(0.66, 0.0)
        lut.SetAlphaRange(0.35, 0.45)
        lut.SetBelowRangeColor(0, 0, 0, 0)
        lut.UseBelowRangeColorOn()
        lut.Build()
        prop = self.wash_actor.GetProperty()
        prop.SetLookupTable(lut)
        prop.UseLookupTableScalarRangeOn()
        self.wash_actor.VisibilityOn()


class IsodoseSurfaceLayer(Layer):
    """The 100 % isodose surface of the latest exact dose in 3-D (module docstring)."""

    def __init__(self, view: VTKWidget, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.planning = planning
        self.image = vtkImageData()
        self.contour = vtkFlyingEdges3D()
        self.contour.SetInputData(self.image)
        self.contour.ComputeNormalsOn()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self.contour.GetOutputPort())
        mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(*LEVEL_RGB[100.0])
        self.actor.GetProperty().SetOpacity(0.35)
        self.actor.PickableOff()
        self.actor.VisibilityOff()
        self.add_prop(self.actor)
        self.text = add_text(self, "", (0.015, 0.93), "left", "top", 11, LEVEL_RGB[100.0])
        self.listen(planning.events.exact_changed, self.update)
        self.listen(planning.events.plan_changed, self._on_plan_changed)
        self.update(None)

    def _on_plan_changed(self, plan: object) -> None:
        if plan is None:
            self.update(None)

    def update(self, result: PlanDosimetry | None = None) -> None:
        if self.closed:
            return
        result = self.planning.exact if result is None else result
        if result is None or result.prescription_gy is None or not len(result.seeds):
            self.actor.VisibilityOff()
            self.text.SetInput("")
            self.render()
            return
        g = result.geometry
        nz, ny, nx = g.shape_zyx
        self.image.SetDimensions(nx, ny, nz)
        self.image.SetSpacing(*(float(v) for v in g.spacing_mm))
        self.image.SetOrigin(*(float(v) for v in g.origin_mm))
        self.image.SetDirectionMatrix(*(float(v) for v in g.direction.reshape(-1)))
        arr = numpy_to_vtk(np.ascontiguousarray(result.dose_gy, np.float32).reshape(-1), deep=True)
        self.image.GetPointData().SetScalars(arr)
        self.image.Modified()
        self.contour.SetValue(0, float(result.prescription_gy))
        self.actor.VisibilityOn()
        self.text.SetInput(f"100 % isodose ({result.prescription_gy:g} Gy, exact)")
        self.render()
