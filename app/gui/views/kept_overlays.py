"""Which 2-D overlays of a view may be drawn in its kept base picture, the picture unchanged.

A 2-D view (:class:`app.gui.vtk_bridge.VTKWidget` with a cached base layer) draws the CT on
layer 0, kept between renders, and everything else on layer 1. Its corner text, scale bar,
colour bar and legends rarely change, yet layer 1 drew them on every render (≈ 50 µs of CPU
per text actor with software OpenGL). :class:`KeptOverlays` picks the 2-D overlays that can be
drawn with the CT instead:

* **settled**: none of its modification times (its own, its property's, text property's,
  lookup table's, input's) changed between the end of one render and the start of the next,
  for :data:`SETTLED_RENDERS` renders in a row (what a render changes in it itself does not
  count); its :attr:`~_Overlay.edits` count names its state in the base picture's key;
* **alone**: its footprint (:mod:`app.gui.views.footprints`) meets the footprint of no
  visible prop left in layer 1. Overlays are drawn last, over the 3-D props, in prop order; an
  overlay that shares no pixel with anything drawn after the CT gives the same pixels when
  drawn just after the CT. A prop of an unknown kind keeps every overlay in layer 1.

The choice costs ≈ 0.1–0.2 ms of Python per render for about 40 props: per prop one or two
VTK calls a render, the rest cached until its modification times change.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkRenderingCore import vtkProp, vtkRenderer

from app.gui.views.footprints import (
    Rect,
    line_width_px,
    overlap_matrix,
    overlay_rect,
    rects_from_bounds,
    world_to_display_matrix,
)

__all__ = ["SETTLED_RENDERS", "KeptOverlays"]

#: A 2-D overlay unchanged over this many renders in a row may be drawn in the kept picture.
SETTLED_RENDERS = 3


def _overlay_parts(prop: vtkProp) -> tuple[object, ...]:
    """The objects whose modification times a 2-D overlay's pixels depend on."""
    parts: list[object] = [prop, prop.GetProperty()]
    if prop.IsA("vtkTextActor"):
        parts.append(prop.GetTextProperty())
    elif prop.IsA("vtkScalarBarActor"):
        parts += [prop.GetLabelTextProperty(), prop.GetTitleTextProperty()]
        if prop.GetLookupTable() is not None:
            parts.append(prop.GetLookupTable())
    else:
        mapper = prop.GetMapper()
        if mapper is not None:
            parts.append(mapper)
            if mapper.GetNumberOfInputConnections(0) > 0:
                data = mapper.GetInputDataObject(0, 0)
                if data is not None:
                    parts.append(data)
    return tuple(parts)


class _Overlay:
    """A visible 2-D overlay of layer 1, followed from render to render."""

    __slots__ = ("edits", "mtimes", "parts", "prop", "rect", "rect_key", "steady")

    def __init__(self, prop: vtkProp) -> None:
        self.prop = prop
        self.parts = tuple(part.GetMTime for part in _overlay_parts(prop))  # type: ignore[attr-defined]
        self.edits = 0  # edits seen: names its state in the base picture's key
        self.steady = -1  # renders in a row without an edit
        self.mtimes: tuple[int, ...] | None = None  # at the end of the last render
        self.rect_key: tuple[object, ...] | None = None
        self.rect: Rect = (0.0, 0.0, -1.0, -1.0)

    def current_mtimes(self) -> tuple[int, ...]:
        return tuple([mtime() for mtime in self.parts])

    def start_render(self, renderer: vtkRenderer, size: tuple[int, int]) -> None:
        if self.mtimes != self.current_mtimes():
            # A property or an input may be new.
            self.parts = tuple(part.GetMTime for part in _overlay_parts(self.prop))  # type: ignore[attr-defined]
            self.edits += 1
            self.steady = 0
        else:
            self.steady += 1
        if self.rect_key != (self.edits, size):
            self.rect_key = (self.edits, size)
            self.rect = overlay_rect(self.prop, renderer)


class _Solid:
    """A visible 3-D prop of layer 1: its world bounds and line width, cached while its
    modification times (its own, its mapper's, its property's) stay the same."""

    __slots__ = ("bounds", "data", "data_mtime", "mapper", "mtimes", "prop", "property", "width_px")

    def __init__(self, prop: vtkProp) -> None:
        self.prop = prop
        self.mtimes: tuple[int, ...] | None = None
        self.mapper: object = None
        self.property: object = None
        self.data: object = None  # the data a mapper is fed directly (a trivial producer)
        self.data_mtime = -1
        self.bounds: tuple[float, ...] | None = None
        self.width_px = 0.0

    def _refresh(self) -> None:
        """Its mapper, property and line width, and whether the mapper is fed directly."""
        prop = self.prop
        self.mapper = mapper = prop.GetMapper() if prop.IsA("vtkActor") else None
        self.property = prop.GetProperty() if hasattr(prop, "GetProperty") else None
        self.width_px = line_width_px(prop)
        self.data, self.data_mtime = None, -1
        fed = mapper is not None and mapper.GetNumberOfInputConnections(0) > 0
        if fed and prop.GetIsIdentity():
            producer = mapper.GetInputAlgorithm()
            if producer is not None and producer.IsA("vtkTrivialProducer"):
                self.data = mapper.GetInputDataObject(0, 0)

    def current_bounds(self) -> tuple[float, ...] | None:
        """World bounds (x0, x1, y0, y1, z0, z1); None when it draws nothing."""
        prop, mapper, property_ = self.prop, self.mapper, self.property
        mtimes = (
            prop.GetMTime(),
            0 if mapper is None else mapper.GetMTime(),  # type: ignore[attr-defined]
            0 if property_ is None else property_.GetMTime(),  # type: ignore[attr-defined]
        )
        if mtimes != self.mtimes:
            self._refresh()  # a new mapper or property modifies the prop: looked up again
            mapper, property_ = self.mapper, self.property
            self.mtimes = (
                prop.GetMTime(),
                0 if mapper is None else mapper.GetMTime(),  # type: ignore[attr-defined]
                0 if property_ is None else property_.GetMTime(),  # type: ignore[attr-defined]
            )
        data = self.data
        if data is None:  # fed by a pipeline: the prop updates it, as the render would
            bounds = prop.GetBounds()
            return None if bounds is None or bounds[0] > bounds[1] else tuple(bounds)
        mtime = data.GetMTime()  # type: ignore[attr-defined]
        if mtime != self.data_mtime:
            self.data_mtime = mtime
            empty = data.GetNumberOfPoints() == 0  # type: ignore[attr-defined]
            bounds = None if empty else data.GetBounds()  # type: ignore[attr-defined]
            self.bounds = None if bounds is None or bounds[0] > bounds[1] else tuple(bounds)
        return self.bounds


class KeptOverlays:
    """Follows one layer-1 renderer's props and picks the overlays for the kept picture."""

    def __init__(self) -> None:
        # The renderer's props with their followers (None: a prop of an unknown kind), while
        # its prop collection is unchanged.
        self._props: list[tuple[vtkProp, _Overlay | _Solid | None]] = []
        self._by_id: dict[int, _Overlay | _Solid | None] = {}
        self._collection_mtime = -1

    def edits(self, prop: vtkProp) -> int:
        """How many edits of ``prop`` (an overlay seen by :meth:`choose`) were seen."""
        return self._by_id[id(prop)].edits  # type: ignore[union-attr]

    def _follow(self, renderer: vtkRenderer) -> None:
        """Refresh the prop list when props were added or removed (followers are kept)."""
        collection = renderer.GetViewProps()
        if collection.GetMTime() == self._collection_mtime:
            return
        self._collection_mtime = collection.GetMTime()
        known = {id(p): f for p, f in self._props}
        followed: list[tuple[vtkProp, _Overlay | _Solid | None]] = []
        for i in range(collection.GetNumberOfItems()):
            prop = collection.GetItemAsObject(i)
            follower = known.get(id(prop))
            if follower is None or follower.prop is not prop:
                if prop.IsA("vtkActor2D"):
                    follower = _Overlay(prop)
                else:
                    follower = _Solid(prop) if prop.IsA("vtkProp3D") else None
            followed.append((prop, follower))
        self._props = followed
        self._by_id = {id(p): f for p, f in followed}

    def choose(self, renderer: vtkRenderer) -> list[vtkProp]:
        """Call at the start of every render: the settled, alone overlays (module docstring)
        of ``renderer``, in its prop order."""
        self._follow(renderer)
        size = tuple(renderer.GetRenderWindow().GetSize())
        candidates: list[_Overlay] = []
        blocking: list[Rect] = []
        bounds: list[tuple[float, ...]] = []
        widths: list[float] = []
        for prop, follower in self._props:
            if not prop.GetVisibility():
                if isinstance(follower, _Overlay):
                    follower.steady = -1  # hidden: settles again once shown
                continue
            if follower is None:
                return []  # an unknown kind of prop may draw anywhere
            if isinstance(follower, _Overlay):
                follower.start_render(renderer, size)  # type: ignore[arg-type]
                if follower.steady >= SETTLED_RENDERS:
                    candidates.append(follower)
                else:
                    blocking.append(follower.rect)
            else:
                box = follower.current_bounds()
                if box is not None:
                    bounds.append(box)
                    widths.append(follower.width_px)
        if not candidates:
            return []
        if bounds:
            rects = rects_from_bounds(
                np.array(bounds), np.array(widths), world_to_display_matrix(renderer)
            )
            blocking += rects.tolist()
        rect = np.array([c.rect for c in candidates])
        out = overlap_matrix(rect, np.array(blocking).reshape(-1, 4)).any(axis=1)
        if out.any():
            among = overlap_matrix(rect, rect)
            while True:  # a candidate left in layer 1 blocks the candidates it meets
                more = ~out & among[:, out].any(axis=1)
                if not more.any():
                    break
                out |= more
        return [c.prop for c, o in zip(candidates, out.tolist(), strict=True) if not o]

    def end_render(self) -> None:
        """Call at the end of every render: edits from now on are seen by the next one."""
        for _prop, follower in self._props:
            if isinstance(follower, _Overlay) and follower.steady >= 0:
                follower.mtimes = follower.current_mtimes()

    def clear(self) -> None:
        self._props = []
        self._by_id = {}
        self._collection_mtime = -1
