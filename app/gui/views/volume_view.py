# ruff: noqa: N802  (Qt/VTK method names: paintEvent, _getPixelRatio, …)
"""The 3-D view of a :class:`~planner.session.session.Session`: bone isosurface,
structures, slice planes.

The bone surface is extracted with ``vtkFlyingEdges3D`` from a block-averaged copy of the CT
(≤ 160 voxels in-plane) so that it stays interactive with software OpenGL; the three slice
planes follow the linked crosshair. Mouse: left drag rotates, right drag / wheel zooms, middle
drag pans (VTK trackball camera); R resets the camera.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPlane
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageSlice,
    vtkPolyDataMapper,
    vtkTextActor,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from app.gui.views.slice_view import Orientation
from app.gui.views.vtk_data import (
    downsample_mean,
    image_from_volume,
    isosurface_world,
    mask_surface_cached,
)
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["VolumeView"]

BONE_THRESHOLD_HU = 250.0  # cortical/trabecular bone edge on a block-averaged CT
_MAX_IN_PLANE_VOXELS = 160
_BONE_RGB = (0.93, 0.89, 0.80)


class VolumeView(VTKWidget):
    """3-D overview: bone surface, structure surfaces and the three orthogonal slices."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("volume_view")
        renderer = self.renderer
        renderer.SetBackground(0.05, 0.06, 0.08)
        renderer.SetBackground2(0.16, 0.18, 0.23)
        renderer.GradientBackgroundOn()
        self._Iren.SetInteractorStyle(vtkInteractorStyleTrackballCamera())

        self._image: vtkImageData | None = None
        self._bone = vtkActor()
        self._bone_mapper = vtkPolyDataMapper()
        self._bone_mapper.ScalarVisibilityOff()
        self._bone.SetMapper(self._bone_mapper)
        prop = self._bone.GetProperty()
        prop.SetColor(*_BONE_RGB)
        prop.SetSpecular(0.15)
        prop.SetSpecularPower(20)
        self._bone.VisibilityOff()
        renderer.AddViewProp(self._bone)

        # Grey ramp whose lowest entries are transparent: air around the patient disappears,
        # so the slice planes do not hide the bone surface.
        self._air_clear_lut = vtkLookupTable()
        self._air_clear_lut.SetNumberOfTableValues(256)
        self._air_clear_lut.Build()
        for i in range(256):
            v = i / 255.0
            self._air_clear_lut.SetTableValue(i, v, v, v, 0.0 if i < 4 else 1.0)
        self._planes: dict[Orientation, tuple[vtkPlane, vtkImageSlice]] = {}
        for orientation in Orientation:
            plane = vtkPlane()
            plane.SetNormal(*orientation.normal)
            mapper = vtkImageResliceMapper()
            mapper.SetSlicePlane(plane)
            mapper.SliceFacesCameraOff()
            mapper.SliceAtFocalPointOff()
            mapper.BorderOn()
            # Reslice at the image's own resolution, not per screen pixel (cheaper in 3-D).
            mapper.ResampleToScreenPixelsOff()
            image_slice = vtkImageSlice()
            image_slice.SetMapper(mapper)
            image_slice.GetProperty().SetInterpolationTypeToLinear()
            image_slice.GetProperty().SetLookupTable(self._air_clear_lut)
            image_slice.GetProperty().UseLookupTableScalarRangeOff()  # window/level → range
            image_slice.VisibilityOff()
            renderer.AddViewProp(image_slice)
            self._planes[orientation] = (plane, image_slice)

        self._structures: list[vtkActor] = []
        self._legend: list[vtkTextActor] = []
        self._pending_crosshair: NDArray[np.float64] | None = None
        self._plane_timer = QTimer(self)
        self._plane_timer.setSingleShot(True)
        self._plane_timer.setInterval(120)
        self._plane_timer.timeout.connect(self._apply_pending_crosshair)
        self._title = vtkTextActor()
        self._title.SetInput(f"3D   bone ≥ {BONE_THRESHOLD_HU:.0f} HU")
        coord = self._title.GetPositionCoordinate()
        coord.SetCoordinateSystemToNormalizedViewport()
        coord.SetValue(0.015, 0.985)
        tp = self._title.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(13)
        tp.SetColor(0.55, 0.7, 1.0)
        tp.SetVerticalJustificationToTop()
        tp.ShadowOn()
        renderer.AddViewProp(self._title)

        session.volume_changed.connect(self._on_volume_changed)
        session.crosshair_changed.connect(self._on_crosshair_changed)
        session.window_level_changed.connect(self._on_window_level_changed)
        if session.volume is not None:
            self._on_volume_changed()

    # ------------------------------------------------------------------ model → view
    def _on_volume_changed(self) -> None:
        if self.is_closed:
            return
        for actor in [*self._structures, *self._legend]:
            self.renderer.RemoveViewProp(actor)
        self._structures.clear()
        self._legend.clear()
        volume = self.session.volume
        if volume is None:
            self._image = None
            self._bone.VisibilityOff()
            for _, image_slice in self._planes.values():
                image_slice.VisibilityOff()
            self.request_render()
            return
        small, f = downsample_mean(volume.hu, _MAX_IN_PLANE_VOXELS)
        offset = ((f - 1) / 2.0, (f - 1) / 2.0, 0.0)
        bone = isosurface_world(
            small,
            volume.geometry,
            BONE_THRESHOLD_HU,
            index_offset_ijk=offset,
            index_scale_ijk=(f, f, 1.0),
        )
        self._bone_mapper.SetInputData(bone)
        self._bone.SetVisibility(bone.GetNumberOfPoints() > 0)

        self._image = image_from_volume(volume)
        for _, image_slice in self._planes.values():
            image_slice.GetMapper().SetInputData(self._image)
            image_slice.VisibilityOn()
        for mask in self.session.masks.values():
            surface = mask_surface_cached(mask)
            if surface.GetNumberOfPoints() == 0:
                continue
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(surface)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*(c / 255.0 for c in mask.color_rgb))
            self.renderer.AddViewProp(actor)
            self._structures.append(actor)
            self._add_legend_entry(mask.name, mask.color_rgb)
        self._on_window_level_changed(self.session.window_hu, self.session.level_hu)
        self._pending_crosshair = self.session.crosshair_mm
        self._apply_pending_crosshair()
        self.reset_camera()

    def _add_legend_entry(self, name: str, color_rgb: tuple[int, int, int]) -> None:
        """Structure name in its contour colour, listed down the top-right corner."""
        entry = vtkTextActor()
        entry.SetInput(name)
        coord = entry.GetPositionCoordinate()
        coord.SetCoordinateSystemToNormalizedViewport()
        coord.SetValue(0.985, 0.985 - 0.06 * len(self._legend))
        tp = entry.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetFontSize(12)
        tp.SetColor(*(c / 255.0 for c in color_rgb))
        tp.SetJustificationToRight()
        tp.SetVerticalJustificationToTop()
        tp.ShadowOn()
        self.renderer.AddViewProp(entry)
        self._legend.append(entry)

    def reset_camera(self) -> None:
        """Look at the patient from the front-left, superior up (a standard 3-D overview)."""
        volume = self.session.volume
        if volume is None:
            return
        lower, upper = volume.geometry.bounds_world_mm()
        centre = (lower + upper) / 2.0
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        # Camera anterior (−P), to the patient's left (+L) and a little above: oblique view.
        view_from = np.array([0.55, -1.0, 0.35])
        camera.SetPosition(*(centre + 800.0 * view_from / np.linalg.norm(view_from)))
        camera.SetViewUp(0.0, 0.0, 1.0)
        bounds = np.ravel(np.column_stack([lower, upper]))
        if self._bone.GetVisibility():  # fit the patient (bone), not the whole field of view
            bounds = np.asarray(self._bone.GetBounds())
            centre = bounds.reshape(3, 2).mean(axis=1)
            camera.SetFocalPoint(*centre)
            camera.SetPosition(*(centre + 800.0 * view_from / np.linalg.norm(view_from)))
        self.renderer.ResetCamera(*bounds)
        camera.Zoom(1.2)
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        """Move the three planes; while the crosshair is dragged, at most every 120 ms.

        The 3-D render is the slowest of the four with software OpenGL; deferring it keeps the
        2-D views fluid during a drag and the 3-D view catches up.
        """
        if self.is_closed or self.session.volume is None:
            return
        self._pending_crosshair = np.asarray(xyz_mm, float)
        if not self._plane_timer.isActive():
            self._plane_timer.start()

    def _apply_pending_crosshair(self) -> None:
        if self.is_closed or self._pending_crosshair is None:
            return
        for plane, _ in self._planes.values():
            plane.SetOrigin(*self._pending_crosshair)
        self._pending_crosshair = None
        self.request_render()

    def _on_window_level_changed(self, window_hu: float, level_hu: float) -> None:
        if self.is_closed:
            return
        for _, image_slice in self._planes.values():
            image_slice.GetProperty().SetColorWindow(window_hu)
            image_slice.GetProperty().SetColorLevel(level_hu)
        self.request_render()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.text().lower() == "r":
            self.reset_camera()
            return
        # VTK's own key bindings (e/q exit, w wireframe, 3 stereo…) are not forwarded.
        ev.ignore()

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        ev.ignore()

    # ------------------------------------------------------------------ teardown
    def finalize(self) -> None:
        if self.is_closed:
            return
        self.session.volume_changed.disconnect(self._on_volume_changed)
        self.session.crosshair_changed.disconnect(self._on_crosshair_changed)
        self.session.window_level_changed.disconnect(self._on_window_level_changed)
        self._plane_timer.stop()
        self._structures.clear()
        self._legend.clear()
        self._image = None
        super().finalize()
