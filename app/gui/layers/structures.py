"""Structure layers: outlines cut by a 2-D view's plane; surfaces and a legend in 3-D.

Both draw every mask of the session's document in its colour, from one surface per mask
(:func:`app.gui.views.vtk_data.mask_surface_cached`, shared by the four views), and honour the
view state's per-structure visibility.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkCommonDataModel import vtkPlane
from vtkmodules.vtkFiltersCore import vtkCutter
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor

from app.gui.layers.base import Layer
from app.gui.views.vtk_data import mask_surface_cached
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["OVERLAY_OFFSET_MM", "StructureOutlineLayer", "StructureSurfaceLayer"]

#: 2-D overlays are drawn this far in front of the image slice (parallel projection: no shift).
OVERLAY_OFFSET_MM = 0.5


def _rgb01(color_rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = (c / 255.0 for c in color_rgb)
    return (r, g, b)


class StructureOutlineLayer(Layer):
    """Each structure's outline on the displayed plane of a 2-D view (normal ``normal``)."""

    def __init__(self, view: VTKWidget, session: Session, normal: NDArray[np.float64]) -> None:
        super().__init__(view, session)
        self.normal = np.asarray(normal, float)
        self.plane = vtkPlane()
        self.plane.SetNormal(*self.normal)
        self.outlines: dict[str, tuple[vtkCutter, vtkActor]] = {}
        self.listen(session.volume_changed, self._on_volume_changed)
        self.listen(session.crosshair_changed, self._on_crosshair_changed)
        self.listen(session.view.visibility_changed, self._on_visibility_changed)
        self._on_volume_changed()

    def _on_volume_changed(self) -> None:
        if self.closed:
            return
        for _, actor in self.outlines.values():
            self.remove_prop(actor)
        self.outlines.clear()
        for name, mask in self.session.masks.items():
            surface = mask_surface_cached(mask)
            if surface.GetNumberOfPoints() == 0:
                continue
            cutter = vtkCutter()
            cutter.SetInputData(surface)
            cutter.SetCutFunction(self.plane)
            mapper = vtkPolyDataMapper()
            mapper.SetInputConnection(cutter.GetOutputPort())
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*_rgb01(mask.color_rgb))
            actor.GetProperty().SetLineWidth(2.0)
            actor.GetProperty().LightingOff()
            actor.PickableOff()
            actor.SetPosition(*(-OVERLAY_OFFSET_MM * self.normal))
            actor.SetVisibility(self.session.view.is_visible(name))
            self.add_prop(actor)
            self.outlines[name] = (cutter, actor)
        self._on_crosshair_changed(self.session.crosshair_mm)

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        if self.closed:
            return
        self.plane.SetOrigin(*np.asarray(xyz_mm, float))
        self.render()

    def _on_visibility_changed(self, name: str, visible: bool) -> None:
        if self.closed or name not in self.outlines:
            return
        self.outlines[name][1].SetVisibility(visible)
        self.render()


class StructureSurfaceLayer(Layer):
    """Each structure's surface in 3-D, with its name in its colour down the top-right corner."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.surfaces: dict[str, vtkActor] = {}
        self.legend: dict[str, vtkTextActor] = {}
        self.listen(session.volume_changed, self._on_volume_changed)
        self.listen(session.view.visibility_changed, self._on_visibility_changed)
        self._on_volume_changed()

    def _on_volume_changed(self) -> None:
        if self.closed:
            return
        for prop in [*self.surfaces.values(), *self.legend.values()]:
            self.remove_prop(prop)
        self.surfaces.clear()
        self.legend.clear()
        for name, mask in self.session.masks.items():
            surface = mask_surface_cached(mask)
            if surface.GetNumberOfPoints() == 0:
                continue
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(surface)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*_rgb01(mask.color_rgb))
            self.add_prop(actor)
            self.surfaces[name] = actor
            self.legend[name] = self.add_prop(self._legend_entry(name, mask.color_rgb))
            self._on_visibility_changed(name, self.session.view.is_visible(name))
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

    def _on_visibility_changed(self, name: str, visible: bool) -> None:
        if self.closed or name not in self.surfaces:
            return
        self.surfaces[name].SetVisibility(visible)
        self.legend[name].GetTextProperty().SetOpacity(1.0 if visible else 0.4)
        self.render()
