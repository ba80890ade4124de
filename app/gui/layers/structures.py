"""Structure layers: outlines on the displayed slice of a 2-D view; surfaces and a legend in 3-D.

What is drawn: the structures of the plan being edited (``session.document``), or, with no
plan open, the case's own masks (the demo's ground truth). Each in its colour and opacity, with
the view state's per-structure visibility and the display options of
:func:`structure_display` (per-structure opacity, optional fill of the 2-D outlines).

2-D outlines are the exact voxel-edge boundaries of the displayed slice
(:func:`planner.structures.contours.slice_loops`, the outline rule of RTSTRUCT export: what is
drawn is exactly the voxels counted in the volume). On a view that shows acquired slices, one
slice is read from the mask (:meth:`planner.plan.model.Structure.values_in`, cropped to the
structure's box), so a brush stroke redraws only the edited structure's outline on the current
slice of each view — never whole-volume VTK data. Each outline keeps its slice and loops: after
an edit only the pixels of the edit's box are read again and only the loops the changed pixels
reach are re-traced (:func:`planner.structures.contours.update_slice_loops`, equal to a full
trace). In a view in the background while another is
painted in (:meth:`app.gui.vtk_bridge.VTKWidget.set_foreground`) that redraw waits for the
view's next, coalesced render. A view resliced through a rotated CT falls back
to cutting the structure's surface with the view plane.

3-D surfaces are rebuilt from the structure's box only, and not while a stroke is painted:
:data:`SURFACE_DELAY_MS` after the last edit once the stroke has ended.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from psygnal import Signal
from PySide6.QtCore import QTimer
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPlane, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkCutter
from vtkmodules.vtkFiltersGeneral import vtkContourTriangulator
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor

from app.gui.layers.base import Layer, stroke_open
from app.gui.layers.serials import serial_of
from app.gui.views.vtk_data import (
    downsample_mean,
    isosurface_world,
    mask_surface_cached,
    set_polylines,
)
from app.gui.vtk_bridge import VTKWidget
from dose.geometry import GridGeometry
from planner.imaging.volume import Mask
from planner.plan.masks import bounding_box, box_union
from planner.plan.model import Structure
from planner.session.session import Session
from planner.structures.contours import SliceLoop, slice_loops, update_slice_loops

__all__ = [
    "OVERLAY_OFFSET_MM",
    "SURFACE_DELAY_MS",
    "DisplayedStructure",
    "StructureDisplay",
    "StructureOutlineLayer",
    "StructureSurfaceLayer",
    "displayed_structures",
    "edit_box",
    "slice_outline_world",
    "structure_display",
    "structure_surface",
]

#: 2-D overlays are drawn this far in front of the image slice (parallel projection: no shift).
OVERLAY_OFFSET_MM = 0.5
#: 3-D surfaces follow edits this long after the last one (a stroke is not re-meshed per move).
SURFACE_DELAY_MS = 250
_ALIGNED_COS = 1.0 - 1e-6


def _rgb01(color_rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = (c / 255.0 for c in color_rgb)
    return (r, g, b)


# ====================================================================== display options
class StructureDisplay:
    """View state of the structures beyond visibility: opacity (0-1), 2-D fill, lock.

    Never saved and never undoable. ``changed(name)`` after a change ("" = all)."""

    changed = Signal(str)

    def __init__(self) -> None:
        self.opacity: dict[str, float] = {}
        self.locked: set[str] = set()
        self.fill_2d = False
        self.fill_opacity = 0.25

    def opacity_of(self, name: str) -> float:
        return self.opacity.get(name, 1.0)

    def set_opacity(self, name: str, opacity: float) -> None:
        self.opacity[name] = float(np.clip(opacity, 0.0, 1.0))
        self.changed.emit(name)

    def is_locked(self, name: str) -> bool:
        return name in self.locked

    def set_locked(self, name: str, locked: bool) -> None:
        (self.locked.add if locked else self.locked.discard)(name)
        self.changed.emit(name)

    def set_fill(self, fill: bool) -> None:
        self.fill_2d = bool(fill)
        self.changed.emit("")

    def set_fill_opacity(self, opacity: float) -> None:
        """The fill's opacity (0-1), times each structure's own opacity."""
        self.fill_opacity = float(np.clip(opacity, 0.0, 1.0))
        self.changed.emit("")


_DISPLAYS: weakref.WeakKeyDictionary[Session, StructureDisplay] = weakref.WeakKeyDictionary()


def structure_display(session: Session) -> StructureDisplay:
    """The session's :class:`StructureDisplay` (one per session, made on first use)."""
    display = _DISPLAYS.get(session)
    if display is None:
        display = _DISPLAYS[session] = StructureDisplay()
    return display


# ====================================================================== what is drawn
@dataclass(frozen=True)
class DisplayedStructure:
    """One structure to draw: a plan structure, or a case mask when no plan is open."""

    key: str  # structure id, or the mask's name for a case mask
    name: str
    color_rgb: tuple[int, int, int]
    structure: Structure | None = None
    mask: Mask | None = field(default=None, compare=False)

    @property
    def geometry(self) -> GridGeometry:
        return self.structure.geometry if self.structure is not None else self.mask.geometry  # type: ignore[union-attr]

    @property
    def version(self) -> int:
        """Changes whenever the voxels change: the serial of the stored array (never reused, as
        an ``id`` is once the old array is freed: :mod:`app.gui.layers.serials`)."""
        voxels = self.structure.crop if self.structure is not None else self.mask.voxels  # type: ignore[union-attr]
        return serial_of(voxels)

    def values_in(self, box: tuple[slice, slice, slice]) -> NDArray[np.bool_]:
        if self.structure is not None:
            return self.structure.values_in(box)
        return np.array(self.mask.voxels[box], dtype=bool)  # type: ignore[union-attr]

    def extent(self) -> tuple[slice, slice, slice] | None:
        """Box of the inside voxels (None when empty)."""
        if self.structure is not None:
            s = self.structure
            return None if s.voxel_count == 0 else s.box  # type: ignore[return-value]
        voxels = self.mask.voxels  # type: ignore[union-attr]
        hit = _EXTENTS.get(id(voxels))
        if hit is None or hit[0] is not voxels:
            if len(_EXTENTS) >= 64:
                _EXTENTS.pop(next(iter(_EXTENTS)))
            hit = _EXTENTS[id(voxels)] = (voxels, bounding_box(voxels))
        box = hit[1]
        return None if any(b.stop <= b.start for b in box) else box


_EXTENTS: dict[int, tuple[NDArray[np.bool_], tuple[slice, slice, slice]]] = {}


def displayed_structures(session: Session) -> list[DisplayedStructure]:
    """The plan's structures when a plan is open, else the case's masks."""
    doc = session.document
    if doc is not None:
        return [DisplayedStructure(s.id, s.name, s.color_rgb, s) for s in doc.plan.structures]
    return [DisplayedStructure(n, n, m.color_rgb, None, m) for n, m in session.masks.items()]


# ====================================================================== 2-D outlines
def edit_box(document: object, event: object) -> tuple[slice, slice, slice] | None:
    """The (z, y, x) box a mask edit changed (None when unknown: redraw everything)."""
    if getattr(event, "kind", "") != "edit" or document is None:
        return None
    if getattr(document, "_txn", None) is not None:
        return None  # inside a transaction: the changes are not in the history yet
    steps = document.history.undo_steps  # type: ignore[attr-defined]
    if not steps or not steps[-1].changes:
        return None
    return getattr(steps[-1].changes[-1], "box", None)


def slice_outline_world(
    item: DisplayedStructure, axis_zyx: int, index: int
) -> list[NDArray[np.float64]]:
    """Closed outlines (each ``(n, 3)`` LPS mm) of slice ``index`` along array axis
    ``axis_zyx`` (0 = k, 1 = j, 2 = i) of ``item``: voxel-edge loops, holes included."""
    extent = item.extent()
    geometry = item.geometry
    if extent is None or not extent[axis_zyx].start <= index < extent[axis_zyx].stop:
        return []
    box = list(extent)
    box[axis_zyx] = slice(index, index + 1)
    values = item.values_in((box[0], box[1], box[2]))
    plane = np.take(values, 0, axis=axis_zyx)  # 2-D: the two other axes in (z, y, x) order
    loops = slice_loops(plane)
    if not loops:
        return []
    others = [a for a in range(3) if a != axis_zyx]  # (row axis, column axis) in zyx
    out = []
    for loop in loops:
        n = loop.points_ij.shape[0]
        kji = np.empty((n, 3), np.float64)
        kji[:, axis_zyx] = index
        kji[:, others[0]] = loop.points_ij[:, 1] + box[others[0]].start
        kji[:, others[1]] = loop.points_ij[:, 0] + box[others[1]].start
        out.append(geometry.zyx_to_world(kji))
    return out


def closed_polylines(
    loops: Iterable[NDArray[np.float64]], offset: NDArray[np.float64]
) -> vtkPolyData:
    """Closed VTK polylines of ``loops`` ((n_i, 3) LPS mm each), shifted by ``offset``."""
    loops = list(loops)
    poly = vtkPolyData()
    if not loops:
        return poly
    pts = np.concatenate(loops) + offset
    sizes = np.array([len(p) for p in loops], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Each loop is closed by repeating its first point: n + 1 ids per cell (vectorised: the
    # running id minus the loop's number, then each loop's last id set to its first).
    offsets = np.concatenate([[0], np.cumsum(sizes + 1)]).astype(np.int64)
    conn = np.arange(offsets[-1], dtype=np.int64) - np.repeat(np.arange(sizes.size), sizes + 1)
    conn[offsets[1:] - 1] = starts
    set_polylines(poly, pts, offsets, conn)
    return poly
    pts = np.concatenate(loops) + offset
    sizes = np.array([len(p) for p in loops], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Each loop is closed by repeating its first point: n + 1 ids per cell (vectorised: the
    # running id minus the loop's number, then each loop's last id set to its first).
    offsets = np.concatenate([[0], np.cumsum(sizes + 1)]).astype(np.int64)
    conn = np.arange(offsets[-1], dtype=np.int64) - np.repeat(np.arange(sizes.size), sizes + 1)
    conn[offsets[1:] - 1] = starts
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(pts), deep=True))
    cells = vtkCellArray()
    cells.SetData(
        numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(conn, deep=True)
    )
    poly.SetPoints(points)
    poly.SetLines(cells)
    return poly


@dataclass
class _SliceCache:
    """The displayed slice of one structure as last outlined: ``position`` (axis zyx, index),
    ``plane`` the full 2-D slice (rows, columns = the other two zyx axes in order) and its
    ``loops`` in (column, row) index coordinates of that plane."""

    position: tuple[int, int]
    plane: NDArray[np.bool_]
    loops: list[SliceLoop]


def _plane_loops(
    item: DisplayedStructure,
    position: tuple[int, int],
    cache: _SliceCache | None,
    dirty: tuple[slice, slice, slice] | None,
) -> _SliceCache:
    """The outline loops of ``item`` on ``position``: from ``cache`` when every change since
    it lies in the (z, y, x) box ``dirty`` (re-tracing only the loops the changed pixels reach,
    :func:`update_slice_loops`), else traced from the structure's box on the slice."""
    axis, index = position
    geometry = item.geometry
    others = [a for a in range(3) if a != axis]
    if cache is not None and cache.position == position and dirty is not None:
        if not dirty[axis].start <= index < dirty[axis].stop:
            return cache  # the changes missed this slice
        box = list(dirty)
        box[axis] = slice(index, index + 1)
        new = np.take(item.values_in((box[0], box[1], box[2])), 0, axis=axis)
        rows, cols = box[others[0]], box[others[1]]
        diff = new != cache.plane[rows, cols]
        if not diff.any():
            return cache
        r, c = np.nonzero(diff)
        changed = (
            slice(rows.start + int(r.min()), rows.start + int(r.max()) + 1),
            slice(cols.start + int(c.min()), cols.start + int(c.max()) + 1),
        )
        cache.plane[rows, cols] = new
        cache.loops = update_slice_loops(cache.loops, cache.plane, changed)
        return cache
    shape = geometry.shape_zyx
    plane = np.zeros((shape[others[0]], shape[others[1]]), dtype=bool)
    extent = item.extent()
    loops: list[SliceLoop] = []
    if extent is not None and extent[axis].start <= index < extent[axis].stop:
        box = list(extent)
        box[axis] = slice(index, index + 1)
        values = np.take(item.values_in((box[0], box[1], box[2])), 0, axis=axis)
        rows, cols = box[others[0]], box[others[1]]
        plane[rows, cols] = values
        shift = np.array([cols.start, rows.start], dtype=np.float64)
        loops = [SliceLoop(lp.points_ij + shift, lp.is_hole) for lp in slice_loops(values)]
    return _SliceCache(position, plane, loops)


def _loops_world(
    geometry: GridGeometry, position: tuple[int, int], loops: list[SliceLoop]
) -> list[NDArray[np.float64]]:
    """``loops`` of the plane at ``position`` as (n, 3) LPS mm arrays (one conversion)."""
    if not loops:
        return []
    axis, index = position
    others = [a for a in range(3) if a != axis]
    pts = np.concatenate([lp.points_ij for lp in loops])
    kji = np.empty((pts.shape[0], 3), np.float64)
    kji[:, axis] = index
    kji[:, others[0]] = pts[:, 1]
    kji[:, others[1]] = pts[:, 0]
    world = geometry.zyx_to_world(kji)
    bounds = np.cumsum([lp.points_ij.shape[0] for lp in loops])[:-1]
    return np.split(world, bounds)


class _Outline:
    """Actors of one structure in one 2-D view: lines (and an optional fill)."""

    def __init__(self, layer: StructureOutlineLayer, item: DisplayedStructure) -> None:
        self.item = item
        self.drawn: tuple[int, int, int] | None = None  # (version, axis, index) drawn
        self.mapper = vtkPolyDataMapper()
        self.mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetLineWidth(2.0)
        prop.LightingOff()
        self.actor.PickableOff()
        self.fill_tri = vtkContourTriangulator()
        self.fill_mapper = vtkPolyDataMapper()
        self.fill_mapper.ScalarVisibilityOff()
        self.fill_mapper.SetInputConnection(self.fill_tri.GetOutputPort())
        self.fill_actor = vtkActor()
        self.fill_actor.SetMapper(self.fill_mapper)
        self.fill_actor.GetProperty().LightingOff()
        self.fill_actor.PickableOff()
        self.cutter: vtkCutter | None = None
        #: The slice last outlined, and the (z, y, x) box holding every mask change since
        #: (None: none; ``self.unknown``: a change of unknown extent, trace afresh).
        self.cache: _SliceCache | None = None
        self.dirty: tuple[slice, slice, slice] | None = None
        self.unknown = True
        layer.add_prop(self.fill_actor)
        layer.add_prop(self.actor)

    def note_edit(self, box: tuple[slice, slice, slice] | None) -> None:
        """The mask changed inside ``box`` (None: anywhere)."""
        if box is None:
            self.unknown = True
        elif self.dirty is None:
            self.dirty = box
        else:
            self.dirty = box_union(self.dirty, box)

    def slice_loops_at(self, position: tuple[int, int]) -> list[SliceLoop]:
        """The outline loops on ``position`` now (incremental while the changes' box is known)."""
        dirty = self.dirty
        if self.unknown:
            self.cache, dirty = None, None
        elif dirty is None:
            dirty = (slice(0, 0), slice(0, 0), slice(0, 0))  # nothing changed since the cache
        self.cache = _plane_loops(self.item, position, self.cache, dirty)
        self.dirty, self.unknown = None, False
        return self.cache.loops

    def __getitem__(self, index: int) -> object:
        """``outline[1]`` is the line actor (``(cutter, actor)`` as the layer once stored)."""
        return (self.cutter, self.actor)[index]


class _PlanLayer(Layer):
    """A layer that follows the session's plan document: ``_on_plan_changed(event)`` for each
    edit of the plan, ``_rebuild()`` when another document (or none) is opened."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self._document: object = None

    def _on_document_changed(self, document: object) -> None:
        if self.closed:
            return
        if self._document is not None:
            self._document.events.changed.disconnect(self._on_plan_changed)  # type: ignore[attr-defined]
        self._document = document
        if document is not None:
            document.events.changed.connect(self._on_plan_changed)  # type: ignore[attr-defined]
        self._rebuild()

    def _on_plan_changed(self, event: object) -> None:
        raise NotImplementedError

    def _rebuild(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._document is not None:
            self._document.events.changed.disconnect(self._on_plan_changed)  # type: ignore[attr-defined]
            self._document = None
        super().close()


class StructureOutlineLayer(_PlanLayer):
    """Each structure's outline on the displayed plane of a 2-D view (normal ``normal``)."""

    def __init__(self, view: VTKWidget, session: Session, normal: NDArray[np.float64]) -> None:
        super().__init__(view, session)
        self.normal = np.asarray(normal, float)
        self.plane = vtkPlane()
        self.plane.SetNormal(*self.normal)
        self.outlines: dict[str, _Outline] = {}
        #: Outlines whose redraw waits for this (background) view's next render.
        self._stale: set[str] = set()
        view.add_render_hook(self._draw_stale)
        self.display = structure_display(session)
        self.listen(session.volume_changed, self._rebuild)
        self.listen(session.document_changed, self._on_document_changed)
        self.listen(session.crosshair_changed, self._on_crosshair_changed)
        self.listen(session.view.visibility_changed, self._on_visibility_changed)
        self.listen(self.display.changed, self._on_display_changed)
        self._on_document_changed(session.document)

    # ------------------------------------------------------------------ model → layer
    def _on_plan_changed(self, event: object) -> None:
        if self.closed:
            return
        what = getattr(event, "what", frozenset())
        if "structures" in what:
            self._sync(None)
        elif "masks" in what:
            self._mask_edit(event)

    def _mask_edit(self, event: object) -> None:
        """A mask edit: keep each outline whose slice the edit's box does not reach (its
        drawing is still right), recompute only the others; render only if one changed."""
        box = edit_box(self._document, event)
        position = self._slice_position()
        changed = False
        ids = getattr(event, "structure_ids", frozenset())
        plan = getattr(event, "plan", None)
        for key, outline in self.outlines.items():
            if key not in ids or plan is None:
                continue
            s = plan.structure(key)
            item = DisplayedStructure(s.id, s.name, s.color_rgb, s)
            outline.item = item
            outline.note_edit(box)
            drawn = outline.drawn
            if (
                key not in self._stale
                and box is not None
                and position is not None
                and drawn is not None
                and drawn[1:] == position
                and not box[position[0]].start <= position[1] < box[position[0]].stop
            ):
                outline.drawn = (item.version, *position)  # the edit missed this slice
                continue
            if position is None and drawn is not None and self._box_misses_plane(box, s):
                continue  # resliced view: the cut is unchanged; the next redraw re-cuts
            if self.view.is_background():
                self._stale.add(key)  # drawn just before this view's next (coalesced) render
            else:
                self._draw(outline, position)
            changed = True
        if changed:
            self.render()

    def _draw_stale(self) -> None:
        """Render hook: redraw the outlines an edit changed while this view was in the
        background (their redraw waited for this view's coalesced render)."""
        if self.closed or not self._stale:
            return
        position = self._slice_position()
        for key in list(self._stale):
            outline = self.outlines.get(key)
            if outline is not None:
                self._draw(outline, position)
        self._stale.clear()

    def _box_misses_plane(self, box: tuple[slice, slice, slice] | None, s: Structure) -> bool:
        """True when the voxels of ``box`` (grown by one voxel, where the surface between
        voxel centres can move) lie entirely on one side of the displayed plane."""
        if box is None:
            return False
        lo = [max(b.start - 1, 0) for b in box]
        hi = [b.stop for b in box]  # stop - 1 + 1
        corners = np.array(
            [[k, j, i] for k in (lo[0], hi[0]) for j in (lo[1], hi[1]) for i in (lo[2], hi[2])],
            dtype=np.float64,
        )
        along = s.geometry.zyx_to_world(corners) @ self.normal
        here = float(self.session.crosshair_mm @ self.normal)
        return bool(here < along.min() or here > along.max())

    def _rebuild(self) -> None:
        if self.closed:
            return
        for outline in self.outlines.values():
            self.remove_prop(outline.actor)
            self.remove_prop(outline.fill_actor)
        self.outlines.clear()
        self._stale.clear()
        self._sync(None)

    def _sync(self, changed_ids: Iterable[str] | None) -> None:
        """Add/remove outlines for the structures now shown; redraw the changed ones."""
        items = {d.key: d for d in displayed_structures(self.session)}
        for key in [k for k in self.outlines if k not in items]:
            outline = self.outlines.pop(key)
            self.remove_prop(outline.actor)
            self.remove_prop(outline.fill_actor)
        for key, item in items.items():
            outline = self.outlines.get(key)
            if outline is None:
                outline = self.outlines[key] = _Outline(self, item)
            if outline.item.version != item.version:
                outline.note_edit(None)  # replaced by a structure change: trace afresh
            outline.item = item
            self._style(outline)
        self._draw_all()

    def _style(self, outline: _Outline) -> None:
        item = outline.item
        rgb = _rgb01(item.color_rgb)
        opacity = self.display.opacity_of(item.name)
        visible = self.session.view.is_visible(item.name)
        outline.actor.GetProperty().SetColor(*rgb)
        outline.actor.GetProperty().SetOpacity(opacity)
        outline.actor.SetVisibility(visible)
        outline.fill_actor.GetProperty().SetColor(*rgb)
        outline.fill_actor.GetProperty().SetOpacity(self.display.fill_opacity * opacity)
        outline.fill_actor.SetVisibility(visible and self.display.fill_2d)

    def _slice_position(self) -> tuple[int, int] | None:
        """(array axis zyx, slice index) of the displayed plane; None when resliced."""
        volume = self.session.volume
        if volume is None:
            return None
        g = volume.geometry
        cos = np.abs(g.direction.T @ self.normal)  # against i, j, k
        axis_ijk = int(np.argmax(cos))
        if cos[axis_ijk] < _ALIGNED_COS:
            return None
        ijk = g.world_to_index(self.session.crosshair_mm)
        index = int(np.rint(ijk[axis_ijk]))
        return 2 - axis_ijk, index

    def _draw_all(self) -> None:
        position = self._slice_position()
        for outline in self.outlines.values():
            self._draw(outline, position)
        self.render()

    def _draw(self, outline: _Outline, position: tuple[int, int] | None) -> None:
        item = outline.item
        self._stale.discard(item.key)
        if position is None:  # resliced view: cut the structure's surface
            if outline.cutter is None:
                outline.cutter = vtkCutter()
                outline.cutter.SetCutFunction(self.plane)
                outline.mapper.SetInputConnection(outline.cutter.GetOutputPort())
                outline.actor.SetPosition(*(-OVERLAY_OFFSET_MM * self.normal))
            if outline.drawn is None or outline.drawn[0] != item.version:
                outline.cutter.SetInputData(structure_surface(item))
                outline.drawn = (item.version, -1, -1)
            outline.fill_actor.SetVisibility(False)
            return
        key = (item.version, *position)
        if outline.drawn == key:
            return
        outline.drawn = key
        loops = _loops_world(item.geometry, position, outline.slice_loops_at(position))
        poly = closed_polylines(loops, -OVERLAY_OFFSET_MM * self.normal)
        outline.mapper.SetInputData(poly)
        outline.fill_tri.SetInputData(poly)

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        if self.closed:
            return
        self.plane.SetOrigin(*np.asarray(xyz_mm, float))
        self._draw_all()

    def close(self) -> None:
        self.view.remove_render_hook(self._draw_stale)
        super().close()

    def _on_visibility_changed(self, name: str, visible: bool) -> None:
        if self.closed:
            return
        for outline in self.outlines.values():
            if outline.item.name == name:
                self._style(outline)
        self.render()

    def _on_display_changed(self, name: str) -> None:
        if self.closed:
            return
        for outline in self.outlines.values():
            if not name or outline.item.name == name:
                self._style(outline)
        self.render()


# ====================================================================== 3-D surfaces
_SURFACES: dict[int, tuple[object, vtkPolyData]] = {}
_SURFACES_MAX = 64


def structure_surface(item: DisplayedStructure, *, max_in_plane: int = 256) -> vtkPolyData:
    """The 0.5-level surface (LPS mm) of a structure, from its box only; cached per version."""
    if item.structure is None:
        return mask_surface_cached(item.mask)  # type: ignore[arg-type]
    s = item.structure
    hit = _SURFACES.get(id(s.crop))
    if hit is not None and hit[0] is s.crop:
        return hit[1]
    if s.voxel_count == 0:
        surface = vtkPolyData()
    else:
        crop = np.pad(s.crop.astype(np.float32), 1)
        k0, j0, i0 = (b.start for b in s.box)
        offset = (i0 - 1.0, j0 - 1.0, k0 - 1.0)
        f = max(1, int(np.ceil(max(crop.shape[1:]) / max_in_plane)))
        if f > 1:
            crop, f = downsample_mean(crop, max(crop.shape[1:]) // f)
            offset = (offset[0] + (f - 1) / 2.0, offset[1] + (f - 1) / 2.0, offset[2])
        surface = isosurface_world(
            crop, s.geometry, 0.5, index_offset_ijk=offset, index_scale_ijk=(f, f, 1.0)
        )
    if len(_SURFACES) >= _SURFACES_MAX:
        _SURFACES.pop(next(iter(_SURFACES)))
    _SURFACES[id(s.crop)] = (s.crop, surface)
    return surface


class StructureSurfaceLayer(_PlanLayer):
    """Each structure's surface in 3-D, with its name in its colour down the top-right corner."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.surfaces: dict[str, vtkActor] = {}
        self.legend: dict[str, vtkTextActor] = {}
        self.versions: dict[str, int] = {}
        self.display = structure_display(session)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(SURFACE_DELAY_MS)
        self._timer.timeout.connect(self._after_edits)
        self.listen(session.volume_changed, self._rebuild)
        self.listen(session.document_changed, self._on_document_changed)
        self.listen(session.view.visibility_changed, self._on_visibility_changed)
        self.listen(self.display.changed, self._on_display_changed)
        self._on_document_changed(session.document)

    def _on_plan_changed(self, event: object) -> None:
        if self.closed:
            return
        what = getattr(event, "what", frozenset())
        if "masks" in what and getattr(event, "kind", "") == "edit":
            self._timer.start()  # re-mesh once the stroke pauses
        elif "structures" in what or "masks" in what:
            self._sync()

    def _after_edits(self) -> None:
        """The edits paused: re-mesh, unless a stroke is still open (a slow machine can take
        longer than the delay per mouse move); then look again after the delay."""
        if stroke_open(self._document):
            self._timer.start()
            return
        self._sync()

    def _rebuild(self) -> None:
        if self.closed:
            return
        for prop in [*self.surfaces.values(), *self.legend.values()]:
            self.remove_prop(prop)
        self.surfaces.clear()
        self.legend.clear()
        self.versions.clear()
        self._sync()

    def _sync(self) -> None:
        if self.closed:
            return
        items = displayed_structures(self.session)
        keys = [d.key for d in items]
        for key in [k for k in self.surfaces if k not in keys]:
            self.remove_prop(self.surfaces.pop(key))
            self.versions.pop(key, None)
        for prop in self.legend.values():
            self.remove_prop(prop)
        self.legend.clear()
        for item in items:
            actor = self.surfaces.get(item.key)
            if actor is None:
                mapper = vtkPolyDataMapper()
                mapper.ScalarVisibilityOff()
                actor = vtkActor()
                actor.SetMapper(mapper)
                self.add_prop(actor)
                self.surfaces[item.key] = actor
            if self.versions.get(item.key) != item.version:
                actor.GetMapper().SetInputData(structure_surface(item))
                self.versions[item.key] = item.version
            actor.GetProperty().SetColor(*_rgb01(item.color_rgb))
            actor.GetProperty().SetOpacity(self.display.opacity_of(item.name))
            self.legend[item.key] = self.add_prop(self._legend_entry(item.name, item.color_rgb))
            self._show(item.key, item.name)
        self.render()

    def _legend_entry(self, name: str, color_rgb: tuple[int, int, int]) -> vtkTextActor:
        entry = vtkTextActor()
        entry.SetInput(name)
        coord = entry.GetPositionCoordinate()
        coord.SetCoordinateSystemToNormalizedViewport()
        coord.SetValue(0.985, 0.985 - 0.06 * len(self.legend))
        tp = entry.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(12)
        tp.SetColor(*_rgb01(color_rgb))
        tp.SetJustificationToRight()
        tp.SetVerticalJustificationToTop()
        tp.ShadowOn()
        return entry

    def _show(self, key: str, name: str) -> None:
        visible = self.session.view.is_visible(name)
        self.surfaces[key].SetVisibility(visible)
        self.legend[key].GetTextProperty().SetOpacity(1.0 if visible else 0.4)

    def _on_visibility_changed(self, name: str, visible: bool) -> None:
        if self.closed:
            return
        for item in displayed_structures(self.session):
            if item.name == name and item.key in self.surfaces:
                self._show(item.key, name)
        self.render()

    def _on_display_changed(self, name: str) -> None:
        if self.closed:
            return
        for item in displayed_structures(self.session):
            if item.key in self.surfaces and (not name or item.name == name):
                self.surfaces[item.key].GetProperty().SetOpacity(self.display.opacity_of(item.name))
        self.render()

    def close(self) -> None:
        self._timer.stop()
        super().close()
