# ruff: noqa: N802  (Qt/VTK method names: paintEvent, _getPixelRatio, …)
"""The 3-D view of a :class:`~planner.session.session.Session`: bone, structures, slice planes.

What it shows is drawn by its layers (:mod:`app.gui.layers`): the bone isosurface of the
patient's body, the three CT planes through the crosshair (air transparent, cropped to the
body), structure surfaces with a legend, and the crosshair position as LPS text. Mouse: left
drag rotates, right drag / wheel zooms, middle drag pans (VTK trackball camera); R resets the
camera.

While a stroke or drag is open on the plan (a brush stroke, a seed or needle drag: one undo
step in progress) the 3-D view does not follow each mouse move: its render requests are held
and it redraws once, at most :data:`HOLD_POLL_MS` after the stroke ends (the 3-D render is the
costliest of the four with software OpenGL, and the 2-D views show the edit as it happens).
Rotating the view with the mouse is never held (VTK's interactor renders it directly).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

from app.gui.layers.annotations import PositionTextLayer, add_text
from app.gui.layers.base import Layer, Subscriptions, stroke_open
from app.gui.layers.ct_image import BONE_THRESHOLD_HU, BoneSurfaceLayer, CTPlanesLayer
from app.gui.layers.structures import StructureSurfaceLayer
from app.gui.views.slice_view import Orientation
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["BONE_THRESHOLD_HU", "VolumeView"]

_TITLE_RGB = (0.55, 0.7, 1.0)
#: While a stroke is open, held render requests are re-checked this often (ms).
HOLD_POLL_MS = 100


class VolumeView(VTKWidget):
    """3-D overview: bone surface, structure surfaces and the three orthogonal slices."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("volume_view")
        self._hold_timer = QTimer(self)
        self._hold_timer.setSingleShot(True)
        self._hold_timer.setInterval(HOLD_POLL_MS)
        self._hold_timer.timeout.connect(self.request_render)
        renderer = self.renderer
        renderer.SetBackground(0.05, 0.06, 0.08)
        renderer.SetBackground2(0.16, 0.18, 0.23)
        renderer.GradientBackgroundOn()
        self._Iren.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.bone_layer = BoneSurfaceLayer(self, session)
        self.planes_layer = CTPlanesLayer(self, session, [o.normal for o in Orientation])
        self.structure_layer = StructureSurfaceLayer(self, session)
        self.position_layer = PositionTextLayer(self, session)
        self.title_layer = Layer(self, session)
        add_text(
            self.title_layer,
            f"3D   bone ≥ {BONE_THRESHOLD_HU:.0f} HU",
            (0.015, 0.985),
            "left",
            "top",
            13,
            _TITLE_RGB,
        )
        self.layers: list[Layer] = [
            self.bone_layer,
            self.planes_layer,
            self.structure_layer,
            self.position_layer,
            self.title_layer,
        ]
        # Connected after the layers: the camera is fitted to the new bone surface.
        self._camera_subscriptions = Subscriptions()
        self._camera_subscriptions.listen(session.volume_changed, self._on_volume_changed)
        if session.volume is not None:
            self.reset_camera()

    @property
    def _planes(self) -> dict[Orientation, tuple[object, object]]:
        """(vtkPlane, vtkImageSlice) of each orientation's plane."""
        return dict(zip(Orientation, self.planes_layer.planes, strict=True))

    def _on_volume_changed(self) -> None:
        self.reset_camera()

    def request_render(self) -> None:
        """Redraw soon, or once the open stroke ends (module docstring)."""
        if self.is_closed:
            return
        if stroke_open(self.session.document) and not VTKWidget.legacy_rendering:
            if not self._hold_timer.isActive():
                self._hold_timer.start()
            return
        super().request_render()

    def reset_camera(self) -> None:
        """Look at the patient from the front-left, superior up (a standard 3-D overview)."""
        volume = self.session.volume
        if volume is None or self.is_closed:
            return
        lower, upper = volume.geometry.bounds_world_mm()
        centre = (lower + upper) / 2.0
        camera = self.renderer.GetActiveCamera()
        # Camera anterior (−P), to the patient's left (+L) and a little above: oblique view.
        view_from = np.array([0.55, -1.0, 0.35])
        view_from /= np.linalg.norm(view_from)
        bounds = np.ravel(np.column_stack([lower, upper]))
        if self.bone_layer.visible:  # fit the patient (bone), not the whole field of view
            bounds = np.asarray(self.bone_layer.actor.GetBounds())
            centre = bounds.reshape(3, 2).mean(axis=1)
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + 800.0 * view_from))
        camera.SetViewUp(0.0, 0.0, 1.0)
        self.renderer.ResetCamera(*bounds)
        camera.Zoom(1.2)
        self.renderer.ResetCameraClippingRange()
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
        self._hold_timer.stop()
        self._camera_subscriptions.close()
        for layer in self.layers:
            layer.close()
        super().finalize()
