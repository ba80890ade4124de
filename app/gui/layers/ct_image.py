"""CT image layers: the resliced slice of a 2-D view; the three planes and bone surface in 3-D.

The image is handed to VTK with the CT's origin, spacing and *direction*
(:func:`app.gui.views.vtk_data.image_from_volume`), so every plane shown is a true patient
(LPS) plane whatever the acquisition orientation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QTimer
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkPlane
from vtkmodules.vtkRenderingCore import vtkActor, vtkImageSlice, vtkPolyDataMapper
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from app.gui.layers.base import Layer
from app.gui.views.vtk_data import body_image, bone_surface_world, image_from_volume
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["BONE_THRESHOLD_HU", "BoneSurfaceLayer", "CTPlanesLayer", "CTSliceLayer"]

BONE_THRESHOLD_HU = 250.0  # cortical/trabecular bone edge on a block-averaged CT
_BONE_RGB = (0.93, 0.89, 0.80)
_PLANE_DEFER_MS = 120


class CTSliceLayer(Layer):
    """The CT resliced along a 2-D view's focal plane, shown with the session's window/level.

    The slice is drawn in the view's cached base layer
    (:meth:`app.gui.vtk_bridge.VTKWidget.cached_base_renderer`): a render that changes only
    the overlays (outlines, cursor, isodoses) copies the kept CT picture instead of
    reslicing and texturing it again.
    """

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.mapper = vtkImageResliceMapper()
        self.mapper.SliceFacesCameraOn()
        self.mapper.SliceAtFocalPointOn()
        self.mapper.BorderOff()
        self.image_slice = vtkImageSlice()
        self.image_slice.SetMapper(self.mapper)
        self.image_slice.GetProperty().SetInterpolationTypeToLinear()
        self.image_slice.VisibilityOff()
        self._base = view.cached_base_renderer()
        self._base.AddViewProp(self.image_slice)
        self.listen(session.volume_changed, self._on_volume_changed)
        self.listen(session.window_level_changed, self._on_window_level_changed)
        self._on_window_level_changed(session.window_hu, session.level_hu)
        self._on_volume_changed()

    def _on_volume_changed(self) -> None:
        if self.closed:
            return
        volume = self.session.volume
        if volume is None:
            self.image_slice.VisibilityOff()
        else:
            self.mapper.SetInputData(image_from_volume(volume))
            self.image_slice.VisibilityOn()
        self.render()

    def _on_window_level_changed(self, window_hu: float, level_hu: float) -> None:
        if self.closed:
            return
        prop = self.image_slice.GetProperty()
        prop.SetColorWindow(window_hu)
        prop.SetColorLevel(level_hu)
        self.render()

    def close(self) -> None:
        self.mapper.SetInputData(None)
        self._base.RemoveViewProp(self.image_slice)
        super().close()


class CTPlanesLayer(Layer):
    """The three orthogonal CT planes through the crosshair, in 3-D.

    Air is transparent (the planes do not hide the bone) and each plane is cropped to the
    patient's body (no couch or air fragments floating beside the patient). While the crosshair
    is dragged the planes follow at most every 120 ms: the 3-D render is the slowest of the four
    with software OpenGL.
    """

    def __init__(self, view: VTKWidget, session: Session, normals: list[NDArray[np.float64]]):
        super().__init__(view, session)
        # Grey ramp whose lowest entries are transparent: air around the patient disappears.
        self._lut = vtkLookupTable()
        self._lut.SetNumberOfTableValues(256)
        self._lut.Build()
        for i in range(256):
            v = i / 255.0
            self._lut.SetTableValue(i, v, v, v, 0.0 if i < 4 else 1.0)
        self.planes: list[tuple[vtkPlane, vtkImageSlice]] = []
        for normal in normals:
            plane = vtkPlane()
            plane.SetNormal(*normal)
            mapper = vtkImageResliceMapper()
            mapper.SetSlicePlane(plane)
            mapper.SliceFacesCameraOff()
            mapper.SliceAtFocalPointOff()
            mapper.BorderOff()
            # Reslice at the image's own resolution, not per screen pixel (cheaper in 3-D).
            mapper.ResampleToScreenPixelsOff()
            image_slice = vtkImageSlice()
            image_slice.SetMapper(mapper)
            prop = image_slice.GetProperty()
            prop.SetInterpolationTypeToLinear()
            prop.SetLookupTable(self._lut)
            prop.UseLookupTableScalarRangeOff()  # window/level → range
            image_slice.VisibilityOff()
            self.add_prop(image_slice)
            self.planes.append((plane, image_slice))
        self._pending: NDArray[np.float64] | None = None
        self._timer = QTimer(view)
        self._timer.setSingleShot(True)
        self._timer.setInterval(_PLANE_DEFER_MS)
        self._timer.timeout.connect(self._apply_pending)
        self.listen(session.volume_changed, self._on_volume_changed)
        self.listen(session.crosshair_changed, self._on_crosshair_changed)
        self.listen(session.window_level_changed, self._on_window_level_changed)
        self._on_volume_changed()

    def _on_volume_changed(self) -> None:
        if self.closed:
            return
        volume = self.session.volume
        for _, image_slice in self.planes:
            image_slice.SetVisibility(volume is not None)
        if volume is None:
            self.render()
            return
        image = body_image(volume, margin_voxels=3)
        for _, image_slice in self.planes:
            image_slice.GetMapper().SetInputData(image)
        self._on_window_level_changed(self.session.window_hu, self.session.level_hu)
        self._pending = self.session.crosshair_mm
        self._apply_pending()

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        if self.closed or self.session.volume is None:
            return
        self._pending = np.asarray(xyz_mm, float)
        if not self._timer.isActive():
            self._timer.start()

    def _apply_pending(self) -> None:
        if self.closed or self._pending is None:
            return
        for plane, _ in self.planes:
            plane.SetOrigin(*self._pending)
        self._pending = None
        self.render()

    def _on_window_level_changed(self, window_hu: float, level_hu: float) -> None:
        if self.closed:
            return
        for _, image_slice in self.planes:
            image_slice.GetProperty().SetColorWindow(window_hu)
            image_slice.GetProperty().SetColorLevel(level_hu)
        self.render()

    def close(self) -> None:
        self._timer.stop()
        for _, image_slice in self.planes:
            image_slice.GetMapper().SetInputData(None)
        super().close()


class BoneSurfaceLayer(Layer):
    """The bone isosurface (≥ :data:`BONE_THRESHOLD_HU`) of the patient's body, in 3-D."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        super().__init__(view, session)
        self.mapper = vtkPolyDataMapper()
        self.mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetColor(*_BONE_RGB)
        prop.SetSpecular(0.15)
        prop.SetSpecularPower(20)
        self.actor.VisibilityOff()
        self.add_prop(self.actor)
        self.listen(session.volume_changed, self._on_volume_changed)
        self._on_volume_changed()

    @property
    def visible(self) -> bool:
        return bool(self.actor.GetVisibility())

    def _on_volume_changed(self) -> None:
        if self.closed:
            return
        volume = self.session.volume
        if volume is None:
            self.actor.VisibilityOff()
        else:
            surface = bone_surface_world(volume, BONE_THRESHOLD_HU)
            self.mapper.SetInputData(surface)
            self.actor.SetVisibility(surface.GetNumberOfPoints() > 0)
        self.render()
