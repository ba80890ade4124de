"""Seed layers: seeds on a 2-D view's slice, and every seed in 3-D.

On a 2-D view (:class:`SeedLayer`) a seed whose centre lies within half a slice of the
displayed plane is drawn as its 4.5 mm capsule projected onto the plane (a thick white bar:
it reads on grey CT, and a seed on the slice is also bright on the CT itself); a seed within
``NEAR_MM`` (5 mm) of the plane is drawn as a small grey cross, so neighbouring slices' seeds
are seen without hiding anatomy. The selected seed is cyan. In 3-D (:class:`SeedGlyphLayer`)
each seed is a 4.5 × 0.8 mm cylinder along its axis; during a drag (the 3-D view is not
redrawn until the release) the glyphs are rebuilt once, just before the view's next render.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkGlyph3D
from vtkmodules.vtkFiltersGeneral import vtkTransformFilter
from vtkmodules.vtkFiltersSources import vtkCylinderSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.layers.base import Layer, stroke_open
from app.gui.layers.needles import (
    NEEDLE_OFFSET_MM,
    line_actor,
    polyline_polydata,
)
from app.gui.layers.segments import SegmentArrays
from planner.session.session import Session

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView
    from app.gui.vtk_bridge import VTKWidget

__all__ = ["NEAR_MM", "SEED_LENGTH_MM", "SeedGlyphLayer", "SeedLayer"]

SEED_LENGTH_MM = 4.5
NEAR_MM = 5.0
SEED_RGB = (1.0, 1.0, 1.0)
NEAR_RGB = (0.72, 0.72, 0.72)
SELECTED_RGB = (0.2, 1.0, 1.0)


class SeedLayer(Layer):
    """Seeds near the displayed plane of one 2-D view (module docstring)."""

    def __init__(self, view: SliceView, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.slice_view = view
        self.planning = planning
        self.on_slice = polyline_polydata(np.zeros((0, 3)), [])
        self.near = polyline_polydata(np.zeros((0, 3)), [])
        self.selected = polyline_polydata(np.zeros((0, 3)), [])
        self.on_actor = self.add_prop(line_actor(self.on_slice, SEED_RGB, 5.0))
        self.near_actor = self.add_prop(line_actor(self.near, NEAR_RGB, 1.5))
        self.sel_actor = self.add_prop(line_actor(self.selected, SELECTED_RGB, 6.0))
        #: Seeds drawn on this slice: {seed id: (x_px, y_px)} (what a click can grab).
        self.seeds_px: dict[str, tuple[float, float]] = {}
        self._drawn_key: tuple[object, ...] | None = None
        #: What each polydata holds (S, 2, 3): a drag step refills only the one that changed.
        self._drawn_ends: dict[int, NDArray[np.float64]] = {}
        #: The seeds last projected to the screen: (ids, (M, 3) points drawn, (x_px, y_px)
        #: each), valid for :attr:`_px_camera` (a drag step moves one: one to project).
        self._px_last: tuple[list[str], NDArray[np.float64], list[tuple[float, float]]] | None
        self._px_last = None
        self._px_camera: tuple[object, ...] | None = None
        self._axes: tuple[object, NDArray[np.float64], NDArray[np.float64]] | None = None
        #: VTK arrays of each polydata, refilled in place (:meth:`_segments`).
        self._arrays: dict[int, SegmentArrays] = {}
        self.listen(planning.events.plan_changed, self.update)
        self.listen(planning.events.selection_changed, self.update)
        self.listen(session.crosshair_changed, self.update)
        self.listen(view.camera_changed, self.update)
        self.update()

    def half_thickness_mm(self) -> float:
        """Half the slice spacing along this view's normal (mm)."""
        volume = self.session.volume
        if volume is None:
            return 0.5
        g = volume.geometry
        return 0.5 * float(g.spacing_mm[self.slice_view._slice_axis()])

    def _state_key(self) -> tuple[object, ...]:
        """What the drawing depends on; a mask edit or a needle's rename changes none of it."""
        plan = self.planning.plan
        camera = self.slice_view.renderer.GetActiveCamera()
        return (
            None if plan is None else plan.seeds,  # immutable: compared by identity first
            self.planning.selected_seed_id,
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
        if self._drawn_key is not None and _same_key(key, self._drawn_key):
            return  # nothing it draws changed: no redraw of this view
        self._drawn_key = key
        self.seeds_px = {}
        plan = self.planning.plan
        view = self.slice_view
        if plan is None or not plan.seeds or self.session.volume is None:
            for pd in (self.on_slice, self.near, self.selected):
                self._segments(pd, np.zeros((0, 2, 3)))
            self.render()
            return
        n = view.normal
        here = view.slice_position_mm()
        half = self.half_thickness_mm()
        pos, axes, ids = _seed_arrays(plan.seeds)
        dist = pos @ n - here
        flat = pos + (-dist - NEEDLE_OFFSET_MM - 0.05)[:, None] * n
        ax2 = axes - (axes @ n)[:, None] * n
        norm = np.linalg.norm(ax2, axis=1)
        right, up = self._screen_axes()
        # A seed seen end-on is drawn as a short bar across (still visible, 1.5 mm).
        ax2 = np.where(norm[:, None] > 0.2, ax2 / np.maximum(norm, 1e-9)[:, None], right)
        length = np.where(norm > 0.2, SEED_LENGTH_MM * np.minimum(norm, 1.0), 1.5)
        ends = np.stack(
            [flat - 0.5 * length[:, None] * ax2, flat + 0.5 * length[:, None] * ax2], axis=1
        )
        on = np.abs(dist) <= half
        near = ~on & (np.abs(dist) <= NEAR_MM)
        sel = np.zeros(len(ids), dtype=bool)
        if self.planning.selected_seed_id in ids:
            sel[ids.index(self.planning.selected_seed_id)] = True
        self._segments(self.on_slice, ends[on & ~sel])
        self._segments(self.selected, ends[on & sel])
        mm = view._mm_per_px() * 3.0
        p = flat[near][:, None, :]  # a cross: one segment along screen right, one along up
        arms = np.stack([np.stack([-mm * right, mm * right]), np.stack([-mm * up, mm * up])])
        self._segments(self.near, (p[:, None, :, :] + arms[None]).reshape(-1, 2, 3))
        self._screen_positions(ids, flat, on)
        self.render()

    def _screen_axes(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The view's screen-right and screen-up (LPS), kept while its orientation is."""
        view = self.slice_view
        key = (tuple(view.normal.tolist()), tuple(view.orientation.spec.view_up))
        if self._axes is None or self._axes[0] != key:
            self._axes = (key, *view._screen_axes())
        return self._axes[1], self._axes[2]

    def _screen_positions(
        self, ids: list[str], flat: NDArray[np.float64], on: NDArray[np.bool_]
    ) -> None:
        """Fill :attr:`seeds_px` for the seeds drawn on the slice (``flat``: (N, 3) LPS mm);
        only seeds whose point moved since the last call (same camera) are projected again."""
        view = self.slice_view
        camera = view.renderer.GetActiveCamera()
        state = (
            camera.GetPosition(),
            camera.GetFocalPoint(),
            camera.GetViewUp(),
            camera.GetParallelScale(),
            view.width(),
            view.height(),
        )
        rows = np.flatnonzero(on)
        drawn = flat[rows]
        shown = [ids[i] for i in rows]
        last = self._px_last
        if state == self._px_camera and last is not None and last[0] == shown:
            px = list(last[2])
            for i in np.flatnonzero(np.any(drawn != last[1], axis=1)).tolist():
                px[i] = view.world_to_display(drawn[i])
        else:
            px = [view.world_to_display(p) for p in drawn]
        self._px_camera = state
        self._px_last = (shown, drawn, px)
        self.seeds_px = dict(zip(shown, px, strict=True))

    def _segments(self, pd: vtkPolyData, ends: NDArray[np.float64]) -> None:
        """Fill ``pd`` with line segments ``ends`` (S, 2, 3) LPS mm (nothing to do when it
        already holds them)."""
        ends = np.asarray(ends, dtype=np.float64).reshape(-1, 2, 3)
        drawn = self._drawn_ends.get(id(pd))
        if drawn is not None and drawn.shape == ends.shape and np.array_equal(drawn, ends):
            return
        self._drawn_ends[id(pd)] = ends.copy()
        arrays = self._arrays.get(id(pd))
        if arrays is None:
            arrays = self._arrays[id(pd)] = SegmentArrays(pd)
        arrays.fill(ends.reshape(-1, 3), None)


_ARRAYS: list[tuple[tuple, NDArray[np.float64], NDArray[np.float64], list[str]]] = []


def _seed_arrays(seeds: tuple) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """(N, 3) positions (LPS mm), (N, 3) axes and the ids of the plan's ``seeds`` tuple, made
    once per tuple (immutable) for the three 2-D views' layers (read-only arrays). A tuple
    that differs from the last one only in a few seed objects (a drag step) copies the last
    arrays and converts those seeds (no per-seed work for the other seeds)."""
    if _ARRAYS and _ARRAYS[0][0] is seeds:
        return _ARRAYS[0][1], _ARRAYS[0][2], _ARRAYS[0][3]
    changed = _changed_rows(_ARRAYS[0][0], seeds) if _ARRAYS else None
    if changed is not None:
        pos, axes, ids = _ARRAYS[0][1].copy(), _ARRAYS[0][2].copy(), _ARRAYS[0][3]
        for i in changed:
            pos[i] = seeds[i].position_mm
            axes[i] = seeds[i].axis
    else:
        pos = np.array([s.position_mm for s in seeds], dtype=np.float64).reshape(-1, 3)
        axes = np.array([s.axis for s in seeds], dtype=np.float64).reshape(-1, 3)
        ids = [s.id for s in seeds]
    pos.setflags(write=False)
    axes.setflags(write=False)
    _ARRAYS[:] = [(seeds, pos, axes, ids)]  # holds the tuple: its identity stays valid
    return pos, axes, ids


def _changed_rows(old: tuple, new: tuple) -> list[int] | None:
    """Rows where ``new`` holds another seed object than ``old`` with the same id; None when
    the tuples differ otherwise (length, ids, order) or in more than a few rows."""
    if len(old) != len(new):
        return None
    rows = []
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if a is not b:
            if a.id != b.id or len(rows) >= 8:
                return None
            rows.append(i)
    return rows


def _same_key(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Keys equal, comparing the plan's seed tuple by identity (no per-seed comparison)."""
    return a[0] is b[0] and a[1:] == b[1:]


class SeedGlyphLayer(Layer):
    """Every seed of the plan in 3-D as a cylinder along its axis."""

    def __init__(self, view: VTKWidget, session: Session, planning: PlanningUI) -> None:
        super().__init__(view, session)
        self.planning = planning
        self.points = vtkPolyData()
        cylinder = vtkCylinderSource()
        cylinder.SetRadius(0.4)
        cylinder.SetHeight(SEED_LENGTH_MM)
        cylinder.SetResolution(10)
        # vtkCylinderSource lies along y; vtkGlyph3D orients a glyph's x axis: rotate y → x.
        turn = vtkTransform()
        turn.RotateZ(-90.0)
        along_x = (
            vtkTransformFilter()
        )  # polydata in, polydata out (vtkTransformPolyDataFilter: deprecated)
        along_x.SetInputConnection(cylinder.GetOutputPort())
        along_x.SetTransform(turn)
        glyph = vtkGlyph3D()
        glyph.SetInputData(self.points)
        glyph.SetSourceConnection(along_x.GetOutputPort())
        glyph.SetVectorModeToUseVector()
        glyph.OrientOn()
        glyph.ScalingOff()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(glyph.GetOutputPort())
        mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(0.95, 0.95, 0.85)
        self.actor.GetProperty().SetSpecular(0.6)
        self.actor.PickableOff()
        self.add_prop(self.actor)
        self._drawn: object = ()  # the seed tuple drawn (plans are immutable)
        #: The plan's seeds changed during a drag (or brush stroke) and are not drawn yet.
        self.deferred = False
        #: Glyph rebuilds (tests: none per drag step, one when the drag ends).
        self.rebuilds = 0
        view.add_render_hook(self._before_render)
        self.listen(planning.events.plan_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        """Follow the plan's seeds. During a drag the 3-D view's renders are held until the
        release (:mod:`app.gui.views.volume_view`), so the glyphs are only marked stale and
        rebuilt just before the next render of the view (:meth:`_before_render`): the one
        after the release, or any earlier one (the benchmarks' legacy rendering)."""
        if self.closed:
            return
        plan = self.planning.plan
        seeds = None if plan is None else plan.seeds
        if seeds is self._drawn:
            self.deferred = False
            return  # a mask edit: the seeds did not change, no 3-D redraw
        if stroke_open(self.session.document):
            self.deferred = True
            self.render()  # held by the 3-D view until the stroke ends
            return
        self._rebuild()
        self.render()

    def _before_render(self) -> None:
        if self.deferred and not self.closed:
            self._rebuild()

    def _rebuild(self) -> None:
        """Draw the current plan's seeds (no render request)."""
        self.deferred = False
        plan = self.planning.plan
        self._drawn = None if plan is None else plan.seeds
        self.rebuilds += 1
        if plan is None or not plan.seeds:
            self.actor.VisibilityOff()
            return
        pos = np.array([s.position_mm for s in plan.seeds], dtype=np.float64)
        axes = np.array([s.axis for s in plan.seeds], dtype=np.float64)
        pts = vtkPoints()
        pts.SetData(numpy_to_vtk(pos, deep=True))
        self.points.SetPoints(pts)
        vec = numpy_to_vtk(axes, deep=True)
        vec.SetName("axis")
        self.points.GetPointData().SetVectors(vec)
        self.points.Modified()
        self.actor.VisibilityOn()

    def close(self) -> None:
        self.view.remove_render_hook(self._before_render)
        super().close()
