"""The crosshair of a 2-D view: the two other views' planes, each as a line in its colour.

The lines leave a small gap around the crosshair point so the anatomy under it stays visible;
the gap is a fixed fraction of the field of view, so the layer also follows the view's camera.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.layers.base import Layer
from app.gui.layers.structures import OVERLAY_OFFSET_MM
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["CrosshairLayer"]

_GAP_FRACTION_OF_SCALE = 0.025


class CrosshairLayer(Layer):
    """Lines where the other views' planes (``other_normals``, colours ``colors_rgb``) cut
    this view's plane (normal ``normal``)."""

    def __init__(
        self,
        view: VTKWidget,
        session: Session,
        normal: NDArray[np.float64],
        other_normals: list[NDArray[np.float64]],
        colors_rgb: list[tuple[float, float, float]],
    ) -> None:
        super().__init__(view, session)
        self.normal = np.asarray(normal, float)
        self.lines: list[tuple[vtkPolyData, vtkActor, NDArray[np.float64]]] = []
        for other, rgb in zip(other_normals, colors_rgb, strict=True):
            polydata = vtkPolyData()
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(polydata)
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*rgb)
            actor.GetProperty().SetLineWidth(1.2)
            actor.GetProperty().LightingOff()
            actor.PickableOff()
            actor.VisibilityOff()
            self.add_prop(actor)
            self.lines.append((polydata, actor, np.asarray(other, float)))
        self.listen(session.volume_changed, self.update)
        self.listen(session.crosshair_changed, self.update)
        self.listen(view.camera_changed, self.update)  # type: ignore[attr-defined]
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        volume = self.session.volume
        if volume is None:
            for _, actor, _ in self.lines:
                actor.VisibilityOff()
            self.render()
            return
        lower, upper = volume.geometry.bounds_world_mm()
        reach_mm = float(np.linalg.norm(upper - lower)) + 10.0
        scale = self.view.renderer.GetActiveCamera().GetParallelScale()
        gap_mm = _GAP_FRACTION_OF_SCALE * scale
        front = self.session.crosshair_mm - OVERLAY_OFFSET_MM * self.normal
        for polydata, actor, other_normal in self.lines:
            along = np.cross(self.normal, other_normal)  # the other plane cuts this one along it
            along /= np.linalg.norm(along)
            ends = (-reach_mm, -gap_mm, gap_mm, reach_mm)
            points = vtkPoints()
            for t in ends:
                points.InsertNextPoint(*(front + t * along))
            cells = vtkCellArray()
            for a, b in ((0, 1), (2, 3)):
                cells.InsertNextCell(2)
                cells.InsertCellPoint(a)
                cells.InsertCellPoint(b)
            polydata.SetPoints(points)
            polydata.SetLines(cells)
            polydata.Modified()
            actor.VisibilityOn()
        self.render()
