"""Where on screen a VTK prop draws: a conservative display rectangle (pixels).

Used by the cached base layer (:mod:`app.gui.vtk_bridge`) to tell whether a 2-D overlay
(text, scale bar, colour bar) shares pixels with anything else. A rectangle is
``(x0, y0, x1, y1)`` in VTK display pixels (origin bottom-left), every pixel the prop can
touch inside it: lines by their width, text by its shadow, plus :data:`MARGIN_PX`.
:data:`EVERYWHERE` is the answer for a prop whose extent is not known.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkRenderingCore import vtkCoordinate, vtkProp, vtkRenderer

__all__ = [
    "EVERYWHERE",
    "MARGIN_PX",
    "Rect",
    "footprint_px",
    "is_overlay_2d",
    "line_width_px",
    "overlap_matrix",
    "overlaps",
    "overlay_rect",
    "rects_from_bounds",
    "world_to_display_matrix",
]

Rect = tuple[float, float, float, float]
#: Extra pixels on every side of a footprint (rounding, line ends, glyph overhang).
MARGIN_PX = 3.0
#: The footprint of a prop whose extent is not known: the whole screen.
EVERYWHERE: Rect = (-math.inf, -math.inf, math.inf, math.inf)

_NORMALIZED_VIEWPORT = 3  # vtkCoordinate::NORMALIZED_VIEWPORT


def world_to_display_matrix(renderer: vtkRenderer) -> NDArray[np.float64]:
    """(4, 4): homogeneous world (LPS mm) → (x_px·w, y_px·w, z, w) of ``renderer``'s
    viewport in its window (VTK display pixels, origin bottom-left)."""
    camera = renderer.GetActiveCamera()
    aspect = renderer.GetTiledAspectRatio()
    elements = [0.0] * 16
    m = camera.GetCompositeProjectionTransformMatrix(aspect, -1.0, 1.0)
    m.DeepCopy(elements, m)
    clip = np.array(elements).reshape(4, 4)
    width, height = renderer.GetRenderWindow().GetSize()
    vx0, vy0, vx1, vy1 = renderer.GetViewport()
    sx, sy = (vx1 - vx0) * width / 2.0, (vy1 - vy0) * height / 2.0
    ndc_to_display = np.array(
        [
            [sx, 0.0, 0.0, sx + vx0 * width],
            [0.0, sy, 0.0, sy + vy0 * height],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return ndc_to_display @ clip


def is_overlay_2d(prop: vtkProp) -> bool:
    """True for props drawn in the overlay pass (text, 2-D actors, scalar bars)."""
    return bool(prop.IsA("vtkActor2D"))


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def overlap_matrix(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """(n, m): whether rectangle ``a[i]`` ((n, 4)) meets rectangle ``b[j]`` ((m, 4))."""
    a, b = a[:, None, :], b[None, :, :]
    return (
        (a[..., 0] <= b[..., 2])
        & (b[..., 0] <= a[..., 2])
        & (a[..., 1] <= b[..., 3])
        & (b[..., 1] <= a[..., 3])
    )


def _grown(x0: float, y0: float, x1: float, y1: float, by_px: float) -> Rect:
    m = by_px + MARGIN_PX
    return (x0 - m, y0 - m, x1 + m, y1 + m)


def line_width_px(prop: vtkProp) -> float:
    """The widest line or point a prop draws (px; 0 without a surface property)."""
    p = prop.GetProperty() if hasattr(prop, "GetProperty") else None
    if p is None or not hasattr(p, "GetLineWidth"):
        return 0.0
    return float(max(p.GetLineWidth(), p.GetPointSize()))


def rects_from_bounds(
    bounds: NDArray[np.float64],
    widths_px: NDArray[np.float64],
    world_to_display: NDArray[np.float64],
) -> NDArray[np.float64]:
    """(n, 4) display rectangles of world boxes ``bounds`` ((n, 6), as ``GetBounds``) drawn
    with lines ``widths_px`` ((n,)) wide; a box behind the eye is everywhere."""
    n = len(bounds)
    if n == 0:
        return np.zeros((0, 4))
    m = widths_px + MARGIN_PX
    if np.array_equal(world_to_display[3], (0.0, 0.0, 0.0, 1.0)):  # parallel: affine
        centre = (bounds[:, 0::2] + bounds[:, 1::2]) / 2.0
        half = (bounds[:, 1::2] - bounds[:, 0::2]) / 2.0
        xy = centre @ world_to_display[:2, :3].T + world_to_display[:2, 3]
        reach = half @ np.abs(world_to_display[:2, :3]).T
        return np.concatenate([xy - reach - m[:, None], xy + reach + m[:, None]], axis=1)
    ix = np.array([[a, b, c] for a in (0, 1) for b in (2, 3) for c in (4, 5)])  # (8, 3)
    corners = np.ones((n, 8, 4))
    corners[:, :, :3] = bounds[:, ix]
    h = corners @ world_to_display.T  # (n, 8, 4)
    w = h[:, :, 3]
    behind = np.any(w <= 0.0, axis=1)
    w = np.where(w <= 0.0, 1.0, w)
    x, y = h[:, :, 0] / w, h[:, :, 1] / w
    rects = np.stack([x.min(1) - m, y.min(1) - m, x.max(1) + m, y.max(1) + m], axis=1)
    rects[behind] = EVERYWHERE
    return rects


def _text_rect(prop: vtkProp, renderer: vtkRenderer) -> Rect:
    """The text's box (its size from ``GetBoundingBox``) placed at its anchor by the text
    property's justification, grown by the shadow offset."""
    box = [0.0, 0.0, 0.0, 0.0]
    prop.GetBoundingBox(renderer, box)  # [x0, x1, y0, y1] relative to the anchor
    width, height = box[1] - box[0], box[3] - box[2]
    ax, ay = prop.GetPositionCoordinate().GetComputedDisplayValue(renderer)
    tp = prop.GetTextProperty()
    dx = (0.0, -width / 2.0, -width)[tp.GetJustification()]
    dy = (0.0, -height / 2.0, -height)[tp.GetVerticalJustification()]
    shadow = max(abs(v) for v in tp.GetShadowOffset()) if tp.GetShadow() else 0
    x0, y0 = ax + dx + min(box[0], 0.0), ay + dy + min(box[2], 0.0)
    return _grown(x0, y0, x0 + width + abs(box[0]), y0 + height + abs(box[2]), shadow + 1.0)


def _scalar_bar_rect(prop: vtkProp, renderer: vtkRenderer) -> Rect:
    x0, y0 = prop.GetPositionCoordinate().GetComputedDisplayValue(renderer)
    x1, y1 = prop.GetPosition2Coordinate().GetComputedDisplayValue(renderer)
    # The labels lie inside the frame; the title can reach a line above it.
    return _grown(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), 16.0)


def _polydata_2d_rect(prop: vtkProp, renderer: vtkRenderer) -> Rect:
    mapper = prop.GetMapper()
    data = mapper.GetInput() if mapper is not None and mapper.IsA("vtkPolyDataMapper2D") else None
    coordinate: vtkCoordinate | None = mapper.GetTransformCoordinate() if data else None
    if (
        data is None
        or coordinate is None
        or coordinate.GetCoordinateSystem() != _NORMALIZED_VIEWPORT
        or coordinate.GetReferenceCoordinate() is not None
        or any(prop.GetPosition())
    ):
        return EVERYWHERE
    if data.GetNumberOfPoints() == 0:
        return (0.0, 0.0, -1.0, -1.0)
    b = data.GetBounds()
    width, height = renderer.GetRenderWindow().GetSize()
    vx0, vy0, vx1, vy1 = renderer.GetViewport()
    sx, sy = (vx1 - vx0) * width, (vy1 - vy0) * height
    x0, x1 = vx0 * width + b[0] * sx, vx0 * width + b[1] * sx
    y0, y1 = vy0 * height + b[2] * sy, vy0 * height + b[3] * sy
    p = prop.GetProperty()
    return _grown(x0, y0, x1, y1, max(p.GetLineWidth(), p.GetPointSize()))


def overlay_rect(prop: vtkProp, renderer: vtkRenderer) -> Rect:
    """The display rectangle a visible 2-D overlay of ``renderer`` can draw in
    (:data:`EVERYWHERE` when its extent is not known)."""
    if prop.IsA("vtkTextActor"):
        return _text_rect(prop, renderer)
    if prop.IsA("vtkScalarBarActor"):
        return _scalar_bar_rect(prop, renderer)
    if prop.GetClassName() in ("vtkActor2D", "vtkOpenGLActor2D"):
        return _polydata_2d_rect(prop, renderer)
    return EVERYWHERE


def footprint_px(
    prop: vtkProp, renderer: vtkRenderer, world_to_display: NDArray[np.float64]
) -> Rect | None:
    """The display rectangle a visible ``prop`` of ``renderer`` can draw in; None when it
    draws nothing; :data:`EVERYWHERE` when its extent is not known."""
    if is_overlay_2d(prop):
        return overlay_rect(prop, renderer)
    if not prop.IsA("vtkProp3D"):
        return EVERYWHERE
    bounds = prop.GetBounds()
    if bounds is None or bounds[0] > bounds[1]:
        return None
    rect = rects_from_bounds(np.array([bounds]), np.array([line_width_px(prop)]), world_to_display)
    return tuple(float(v) for v in rect[0])  # type: ignore[return-value]
