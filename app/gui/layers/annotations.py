"""View annotations: orientation letters and position text, a scale bar, an HU colour bar.

Every coordinate written here comes from :mod:`planner.session.coordinates` (LPS mm with the
anatomical side), never from a projection on a view's normal.
"""

from __future__ import annotations

import math
from typing import Protocol, cast

from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import (
    vtkActor2D,
    vtkCoordinate,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
)

from app.gui.layers.base import Layer
from app.gui.views.orientation import Orientation
from app.gui.vtk_bridge import VTKWidget
from planner.session.coordinates import format_lps_coordinate, format_lps_point
from planner.session.evented import Signal as ModelSignal
from planner.session.session import Session


class PlaneView(Protocol):
    """What the 2-D annotation layers read of their view (an
    :class:`app.gui.views.slice_view.SliceView`, which builds them: typed by what they use,
    the layers need not import the view that imports them)."""

    orientation: Orientation
    camera_changed: ModelSignal
    renderer: vtkRenderer

    @property
    def position_axis(self) -> int: ...

    def slice_counter(self) -> tuple[int, int, bool]: ...

    def width(self) -> int: ...

    def height(self) -> int: ...


__all__ = [
    "HUColourBarLayer",
    "PositionTextLayer",
    "ScaleBarLayer",
    "SliceAnnotationsLayer",
    "add_text",
    "nice_length_mm",
]

TEXT_RGB = (0.92, 0.92, 0.92)
LABEL_RGB = (1.0, 0.85, 0.35)
_BAR_FRACTION = 0.22  # the scale bar is at most this share of the view width


def add_text(
    layer: Layer,
    text: str,
    pos: tuple[float, float],
    hjust: str,
    vjust: str,
    size_pt: int,
    rgb: tuple[float, float, float],
    *,
    bold: bool = False,
) -> vtkTextActor:
    """A text actor at a normalized-viewport position, owned by ``layer``."""
    actor = vtkTextActor()
    actor.SetInput(text)
    coord = actor.GetPositionCoordinate()
    coord.SetCoordinateSystemToNormalizedViewport()
    coord.SetValue(*pos)
    tp = actor.GetTextProperty()
    tp.SetFontFamilyToArial()
    tp.SetFontSize(size_pt)
    tp.SetColor(*rgb)
    tp.SetBold(bold)
    tp.ShadowOn()
    {"left": tp.SetJustificationToLeft, "right": tp.SetJustificationToRight}.get(
        hjust, tp.SetJustificationToCentered
    )()
    {"top": tp.SetVerticalJustificationToTop, "bottom": tp.SetVerticalJustificationToBottom}.get(
        vjust, tp.SetVerticalJustificationToCentered
    )()
    actor.PickableOff()
    layer.add_prop(actor)
    return actor


def nice_length_mm(max_mm: float) -> float:
    """The largest 1-2-5 × 10ⁿ length (mm) not above ``max_mm`` (≥ 1 mm)."""
    if not math.isfinite(max_mm) or max_mm < 1.0:
        return 1.0
    decade = 10.0 ** math.floor(math.log10(max_mm))
    for step in (5.0, 2.0, 1.0):
        if step * decade <= max_mm:
            return step * decade
    return decade


class SliceAnnotationsLayer(Layer):
    """Orientation letters, title, slice counter with the plane's LPS position, W/L and FOV."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.slice_view = cast(PlaneView, view)
        spec = self.slice_view.orientation.spec
        left, right, top, bottom = spec.labels
        self.text: dict[str, vtkTextActor] = {}
        for key, label, pos, hjust, vjust in (
            ("left", left, (0.012, 0.5), "left", "center"),
            ("right", right, (0.988, 0.5), "right", "center"),
            ("top", top, (0.5, 0.985), "center", "top"),
            ("bottom", bottom, (0.5, 0.015), "center", "bottom"),
        ):
            self.text[key] = add_text(self, label, pos, hjust, vjust, 15, LABEL_RGB, bold=True)
        self.text["title"] = add_text(
            self, spec.title, (0.015, 0.985), "left", "top", 13, spec.color_rgb
        )
        self.text["slice"] = add_text(self, "", (0.015, 0.93), "left", "top", 11, TEXT_RGB)
        self.text["wl"] = add_text(self, "", (0.015, 0.015), "left", "bottom", 11, TEXT_RGB)
        self.text["zoom"] = add_text(self, "", (0.985, 0.015), "right", "bottom", 11, TEXT_RGB)
        self.text["empty"] = add_text(
            self, "No image loaded", (0.5, 0.5), "center", "center", 14, (0.55, 0.55, 0.55)
        )
        self.listen(session.volume_changed, self.update)
        self.listen(session.crosshair_changed, self.update)
        self.listen(session.window_level_changed, self.update)
        self.listen(self.slice_view.camera_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        s = self.session
        self.text["wl"].SetInput(f"W {s.window_hu:.0f} HU   L {s.level_hu:.0f} HU")
        self.text["empty"].SetVisibility(s.volume is None)
        if s.volume is None:
            self.text["slice"].SetInput("")
            self.text["zoom"].SetInput("")
            self.render()
            return
        view = self.slice_view
        index, count, resliced = view.slice_counter()
        what = "Plane" if resliced else "Slice"
        axis = view.position_axis
        position = format_lps_coordinate(axis, float(s.crosshair_mm[axis]))
        self.text["slice"].SetInput(
            f"{what} {index + 1}/{count}{' (resliced)' if resliced else ''}   {position}"
        )
        # Field of view height on screen, so the user can judge sizes.
        fov_mm = 2.0 * view.renderer.GetActiveCamera().GetParallelScale()
        self.text["zoom"].SetInput(f"FOV {fov_mm:.0f} mm")
        self.render()


class PositionTextLayer(Layer):
    """The crosshair's LPS position as text (the 3-D view's bottom-left corner)."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.text = add_text(self, "", (0.015, 0.015), "left", "bottom", 11, TEXT_RGB)
        self.listen(session.volume_changed, self.update)
        self.listen(session.crosshair_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        has = self.session.volume is not None
        self.text.SetInput(
            "Crosshair  " + format_lps_point(self.session.crosshair_mm) if has else ""
        )
        self.render()


class ScaleBarLayer(Layer):
    """A horizontal bar of a round length (1-2-5 mm steps) with its length written above it."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.slice_view = cast(PlaneView, view)
        self.length_mm = 0.0
        self._points = vtkPoints()
        polydata = vtkPolyData()
        polydata.SetPoints(self._points)
        cells = vtkCellArray()
        for a, b in ((0, 1), (0, 2), (1, 3)):  # bar and two end ticks
            cells.InsertNextCell(2)
            cells.InsertCellPoint(a)
            cells.InsertCellPoint(b)
        polydata.SetLines(cells)
        self._polydata = polydata
        coordinate = vtkCoordinate()
        coordinate.SetCoordinateSystemToNormalizedViewport()
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(polydata)
        mapper.SetTransformCoordinate(coordinate)
        self.bar = vtkActor2D()
        self.bar.SetMapper(mapper)
        self.bar.GetProperty().SetColor(*TEXT_RGB)
        self.bar.GetProperty().SetLineWidth(2.0)
        self.add_prop(self.bar)
        self.label = add_text(self, "", (0.985, 0.085), "right", "bottom", 11, TEXT_RGB)
        self.listen(session.volume_changed, self.update)
        self.listen(self.slice_view.camera_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        view = self.slice_view
        visible = self.session.volume is not None and view.height() > 0 and view.width() > 0
        self.bar.SetVisibility(visible)
        self.label.SetVisibility(visible)
        if not visible:
            self.render()
            return
        height_mm = 2.0 * view.renderer.GetActiveCamera().GetParallelScale()
        width_mm = height_mm * view.width() / view.height()
        self.length_mm = nice_length_mm(_BAR_FRACTION * width_mm)
        fraction = self.length_mm / width_mm
        right, y, tick = 0.985, 0.075, 0.012
        for n, (x, yy) in enumerate(
            ((right - fraction, y), (right, y), (right - fraction, y + tick), (right, y + tick))
        ):
            self._points.InsertPoint(n, x, yy, 0.0)
        self._points.Modified()
        self._polydata.Modified()
        self.label.SetInput(f"{self.length_mm:g} mm")
        self.render()


class HUColourBarLayer(Layer):
    """The grey scale of the current window/level, labelled in HU (top-right corner)."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.lut = vtkLookupTable()
        self.lut.SetNumberOfTableValues(256)
        self.lut.SetSaturationRange(0.0, 0.0)
        self.lut.SetValueRange(0.0, 1.0)
        self.lut.SetHueRange(0.0, 0.0)
        self.lut.Build()
        self.bar = vtkScalarBarActor()
        self.bar.SetLookupTable(self.lut)
        self.bar.SetTitle("HU")
        self.bar.SetNumberOfLabels(3)
        self.bar.SetLabelFormat("%.0f")
        self.bar.SetBarRatio(0.25)
        self.bar.SetOrientationToVertical()
        self.bar.SetTextPositionToPrecedeScalarBar()
        self.bar.UnconstrainedFontSizeOn()
        for tp in (self.bar.GetLabelTextProperty(), self.bar.GetTitleTextProperty()):
            tp.SetFontFamilyToArial()
            tp.SetFontSize(11)
            tp.SetColor(*TEXT_RGB)
            tp.SetBold(False)
            tp.SetItalic(False)
            tp.ShadowOn()
        coord = self.bar.GetPositionCoordinate()
        coord.SetCoordinateSystemToNormalizedViewport()
        coord.SetValue(0.89, 0.62)
        self.bar.SetWidth(0.095)
        self.bar.SetHeight(0.32)
        self.bar.PickableOff()
        self.add_prop(self.bar)
        self.listen(session.volume_changed, self.update)
        self.listen(session.window_level_changed, self.update)
        self.update()

    @property
    def range_hu(self) -> tuple[float, float]:
        low, high = self.lut.GetTableRange()
        return float(low), float(high)

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        s = self.session
        self.bar.SetVisibility(s.volume is not None)
        self.lut.SetTableRange(s.level_hu - s.window_hu / 2.0, s.level_hu + s.window_hu / 2.0)
        self.lut.Build()
        self.render()
