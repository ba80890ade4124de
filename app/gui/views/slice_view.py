# ruff: noqa: N802  (Qt/VTK method names: paintEvent, _getPixelRatio, …)
"""One 2-D CT view (axial, sagittal or coronal) of a :class:`planner.session.session.Session`.

The image is resliced by VTK along the camera's focal plane (``vtkImageResliceMapper``) from a
``vtkImageData`` carrying the CT's origin, spacing and *direction*, so the view is a true plane
of the patient (LPS) whatever the acquisition orientation. Camera orientations follow the
radiological convention:

========  ==============  ============  ===========  =====================
view      looks along     screen right  screen up    patient seen from
========  ==============  ============  ===========  =====================
axial     +S (feet→head)  +L            −P (= A)     the feet
sagittal  −L              +P            +S           the patient's left
coronal   +P              +L            +S           the front
========  ==============  ============  ===========  =====================

Mouse: left click/drag moves the linked crosshair; right drag changes window (x) and level (y);
middle drag or Shift+left drag pans; wheel (or PgUp/PgDn, ↑/↓) scrolls slices; Ctrl+wheel
(or +/−) zooms; R resets zoom and pan.

The view owns the camera and the interaction; what it shows is drawn by its layers
(:mod:`app.gui.layers`): CT slice, structure outlines, crosshair, annotations (orientation
letters, slice counter and LPS position), scale bar and HU colour bar.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QWidget

from app.gui.layers.annotations import HUColourBarLayer, ScaleBarLayer, SliceAnnotationsLayer
from app.gui.layers.base import Layer, Subscriptions
from app.gui.layers.crosshair import CrosshairLayer
from app.gui.layers.ct_image import CTSliceLayer
from app.gui.layers.structures import StructureOutlineLayer
from app.gui.views.orientation import Orientation
from app.gui.vtk_bridge import VTKWidget
from planner.session.evented import Signal as ModelSignal
from planner.session.session import Session

__all__ = ["Orientation", "SliceView"]

_BACKGROUND_RGB = (0.0, 0.0, 0.0)
#: |cos| between a view normal and a volume axis above which the view shows acquired slices.
_ALIGNED_COS = 1.0 - 1e-6


_CAMERA_DISTANCE_MM = 1000.0


class SliceView(VTKWidget):
    """A 2-D view: camera and interaction; what it shows is drawn by its :attr:`layers`.

    Emits the Qt signal ``probe(xyz_mm or None, hu)`` as the mouse moves over the image, and
    the model-style signal ``camera_changed()`` after every zoom, pan, slice move or resize
    (layers that depend on the field of view listen to it).
    """

    probe = Signal(object, float)
    camera_changed = ModelSignal()

    def __init__(
        self, session: Session, orientation: Orientation, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.orientation = orientation
        self.setObjectName(f"{orientation.spec.title.lower()}_view")
        self._drag: tuple[str, QPointF, tuple[float, ...]] | None = None
        self._wheel_accum = 0
        self._auto_fit = True  # re-fit on resize until the user zooms or pans
        self.renderer.SetBackground(*_BACKGROUND_RGB)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        # The camera follows the model first; the layers (connected after) see the new camera.
        self._camera_subscriptions = Subscriptions()
        self._camera_subscriptions.listen(session.volume_changed, self._on_volume_changed)
        self._camera_subscriptions.listen(session.crosshair_changed, self._on_crosshair_changed)
        self.layers: list[Layer] = []
        self._build_layers()
        if session.volume is not None:
            self._on_volume_changed()

    def _build_layers(self) -> None:
        others = [o for o in Orientation if o is not self.orientation]
        self.ct_layer = CTSliceLayer(self, self.session)
        self.structure_layer = StructureOutlineLayer(self, self.session, self.normal)
        self.crosshair_layer = CrosshairLayer(
            self,
            self.session,
            self.normal,
            [o.normal for o in others],
            [o.spec.color_rgb for o in others],
        )
        self.annotations = SliceAnnotationsLayer(self, self.session)
        self.scale_bar = ScaleBarLayer(self, self.session)
        self.colour_bar = HUColourBarLayer(self, self.session)
        self.layers = [
            self.ct_layer,
            self.structure_layer,
            self.crosshair_layer,
            self.annotations,
            self.scale_bar,
            self.colour_bar,
        ]

    @property
    def _text(self) -> dict[str, object]:
        """The annotation text actors by name (left, right, top, bottom, title, slice, …)."""
        return self.annotations.text  # type: ignore[return-value]

    # ------------------------------------------------------------------ geometry helpers
    @property
    def normal(self) -> NDArray[np.float64]:
        """Unit LPS vector the camera looks along (the slice normal)."""
        return self.orientation.normal

    def _screen_axes(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """LPS unit vectors pointing screen-right and screen-up."""
        up = np.asarray(self.orientation.spec.view_up, dtype=np.float64)
        right = np.cross(self.normal, up)
        return right, up

    @property
    def position_axis(self) -> int:
        """The LPS axis (0 = x, 1 = y, 2 = z) along which this view's plane is positioned."""
        return int(np.argmax(np.abs(self.normal)))

    def _slice_axis(self) -> int:
        """The volume index axis (0=i, 1=j, 2=k) closest to the slice normal."""
        assert self.session.volume is not None
        direction = self.session.volume.geometry.direction
        return int(np.argmax(np.abs(direction.T @ self.normal)))

    def is_resliced(self) -> bool:
        """True when the view's plane is not an acquired slice (no volume axis along it)."""
        volume = self.session.volume
        if volume is None:
            return False
        cosines = np.abs(volume.geometry.direction.T @ self.normal)
        return bool(cosines.max() < _ALIGNED_COS)

    def _plane_range_mm(self) -> tuple[float, float, float]:
        """For a resliced view: (lowest, highest) ``n · x`` over the voxel centres, and the
        step between planes (the spacing of the volume axis closest to the normal), mm."""
        volume = self.session.volume
        assert volume is not None
        g = volume.geometry
        nx, ny, nz = g.shape_xyz
        corners = np.array(
            [[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], float
        )
        along = g.index_to_world(corners) @ self.normal
        step = float(g.spacing_mm[self._slice_axis()])
        return float(along.min()), float(along.max()), step

    def slice_position_mm(self) -> float:
        """Position of the displayed plane along the view normal (LPS mm, ``n · x``)."""
        fp = np.asarray(self.renderer.GetActiveCamera().GetFocalPoint())
        return float(fp @ self.normal)

    def slice_index(self) -> int:
        """0-based number of the displayed plane: the volume slice index when the view shows
        acquired slices, else the plane number along the normal (see :meth:`slice_counter`)."""
        return self.slice_counter()[0]

    def n_slices(self) -> int:
        return self.slice_counter()[1]

    def slice_counter(self) -> tuple[int, int, bool]:
        """(index, count, resliced) for the slice text and scrolling.

        Acquired slices: the index along the volume axis along the normal, of that axis' size.
        Resliced (a tilted or oblique volume): planes one step apart along the view normal
        across the volume — a tilted volume's rows are never counted as slices.
        """
        volume = self.session.volume
        if volume is None:
            return -1, 0, False
        if not self.is_resliced():
            ijk = volume.geometry.world_to_index(self.session.crosshair_mm)
            axis = self._slice_axis()
            return int(np.rint(ijk[axis])), int(volume.geometry.shape_xyz[axis]), False
        low, high, step = self._plane_range_mm()
        here = float(self.session.crosshair_mm @ self.normal)
        count = int(np.floor((high - low) / step + 1e-6)) + 1
        index = int(np.clip(np.rint((here - low) / step), 0, count - 1))
        return index, count, True

    def display_to_world(self, x_px: float, y_px: float) -> NDArray[np.float64]:
        """Qt widget coordinates (logical px, origin top-left) → LPS mm on the slice plane."""
        scale = self._getPixelRatio()
        renderer = self.renderer
        renderer.SetDisplayPoint(x_px * scale, (self.height() - y_px - 1) * scale, 0.0)
        renderer.DisplayToWorld()
        xyzw = np.asarray(renderer.GetWorldPoint(), dtype=np.float64)
        point = xyzw[:3] / xyzw[3] if xyzw[3] != 0 else xyzw[:3]
        # Parallel projection: move along the view ray onto the displayed plane.
        n = self.normal
        return point + (self.slice_position_mm() - point @ n) * n

    def world_to_display(self, xyz_mm: NDArray[np.float64]) -> tuple[float, float]:
        """LPS mm → Qt widget coordinates (logical px, origin top-left)."""
        scale = self._getPixelRatio()
        renderer = self.renderer
        renderer.SetWorldPoint(*np.asarray(xyz_mm, float), 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        return x / scale, self.height() - 1 - y / scale

    # ------------------------------------------------------------------ model → view
    def _on_volume_changed(self) -> None:
        if self.is_closed:
            return
        if self.session.volume is not None:
            self.reset_camera()
            self._on_crosshair_changed(self.session.crosshair_mm)
        else:
            self.camera_changed.emit()
        self.request_render()

    def reset_camera(self) -> None:
        """Fit the whole volume in the view (zoom and pan reset), keeping the slice position."""
        volume = self.session.volume
        if volume is None:
            return
        lower, upper = volume.geometry.bounds_world_mm()
        centre = (lower + upper) / 2.0
        centre = centre + (self.session.crosshair_mm @ self.normal - centre @ self.normal) * (
            self.normal
        )
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre - _CAMERA_DISTANCE_MM * self.normal))
        camera.SetViewUp(*self.orientation.spec.view_up)
        right, up = self._screen_axes()
        half_extent_mm = self._half_extent(volume.geometry, right, up)
        aspect = max(self.width(), 1) / max(self.height(), 1)
        camera.SetParallelScale(1.04 * max(half_extent_mm[1], half_extent_mm[0] / aspect))
        self._auto_fit = True
        self._update_clipping()
        self.camera_changed.emit()
        self.request_render()

    @staticmethod
    def _half_extent(geometry, right: NDArray[np.float64], up: NDArray[np.float64]):
        nx, ny, nz = geometry.shape_xyz
        corners = np.array(
            [
                [i, j, k]
                for i in (-0.5, nx - 0.5)
                for j in (-0.5, ny - 0.5)
                for k in (-0.5, nz - 0.5)
            ]
        )
        world = geometry.index_to_world(corners)
        r, u = world @ right, world @ up
        return np.array([(r.max() - r.min()) / 2.0, (u.max() - u.min()) / 2.0])

    def _update_clipping(self) -> None:
        camera = self.renderer.GetActiveCamera()
        camera.SetClippingRange(_CAMERA_DISTANCE_MM - 50.0, _CAMERA_DISTANCE_MM + 50.0)

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        """Move the focal plane onto the crosshair (the view's content is drawn by layers)."""
        if self.is_closed or self.session.volume is None:
            return
        xyz_mm = np.asarray(xyz_mm, dtype=np.float64)
        n = self.normal
        camera = self.renderer.GetActiveCamera()
        fp = np.asarray(camera.GetFocalPoint())
        fp = fp + (xyz_mm @ n - fp @ n) * n
        camera.SetFocalPoint(*fp)
        camera.SetPosition(*(fp - _CAMERA_DISTANCE_MM * n))
        self._update_clipping()
        self.request_render()

    # ------------------------------------------------------------------ interaction
    def scroll_slices(self, n_steps: int) -> None:
        """Move the crosshair ``n_steps`` slices along the view normal.

        Acquired slices: to the next voxel centres along the volume axis. Resliced view: one
        step (see :meth:`slice_counter`) along the normal, keeping the in-plane position.
        """
        volume = self.session.volume
        if volume is None or n_steps == 0:
            return
        geometry = volume.geometry
        c = self.session.crosshair_mm
        if self.is_resliced():
            low, high, step = self._plane_range_mm()
            here = float(c @ self.normal)
            target = float(np.clip(here + n_steps * step, low, high))
            self.session.set_crosshair(c + (target - here) * self.normal, snap=False)
            return
        axis = self._slice_axis()
        ijk = geometry.world_to_index(c)
        sign = float(np.sign(geometry.direction[:, axis] @ self.normal)) or 1.0
        new_index = np.rint(ijk[axis]) + sign * n_steps
        new_index = float(np.clip(new_index, 0, geometry.shape_xyz[axis] - 1))
        ijk[axis] = new_index
        self.session.set_crosshair(geometry.index_to_world(ijk))

    def zoom(self, factor: float) -> None:
        """Magnify by ``factor`` (> 1 zooms in) about the view centre."""
        camera = self.renderer.GetActiveCamera()
        camera.SetParallelScale(camera.GetParallelScale() / factor)
        self._auto_fit = False
        self.camera_changed.emit()
        self.request_render()

    def pan_mm(self, right_mm: float, up_mm: float) -> None:
        """Move the view content by (right, up) mm on screen."""
        camera = self.renderer.GetActiveCamera()
        right, up = self._screen_axes()
        shift = -(right_mm * right + up_mm * up)
        self._auto_fit = False
        camera.SetFocalPoint(*(np.asarray(camera.GetFocalPoint()) + shift))
        camera.SetPosition(*(np.asarray(camera.GetPosition()) + shift))
        self.camera_changed.emit()
        self.request_render()

    def _mm_per_px(self) -> float:
        return 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / max(self.height(), 1)

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if self.session.volume is None:
            return
        pos = ev.position()
        button = ev.button()
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.LeftButton and not shift:
            self._drag = ("cross", pos, ())
            self._set_crosshair_at(pos)
        elif button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and shift
        ):
            self._drag = ("pan", pos, ())
        elif button == Qt.MouseButton.RightButton:
            self._drag = ("wl", pos, (self.session.window_hu, self.session.level_hu))

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self.session.volume is None:
            return
        if self._drag is not None:
            kind, start, values = self._drag
            if kind == "cross":
                self._set_crosshair_at(pos)
            elif kind == "pan":
                mm = self._mm_per_px()
                self.pan_mm((pos.x() - start.x()) * mm, -(pos.y() - start.y()) * mm)
                self._drag = ("pan", pos, ())
            elif kind == "wl":
                window0, level0 = values
                # ~4 HU per pixel: a full-width drag spans a bone window.
                dx, dy = pos.x() - start.x(), pos.y() - start.y()
                self.session.set_window_level(window0 + 4.0 * dx, level0 - 2.0 * dy)
        xyz = self.display_to_world(pos.x(), pos.y())
        self.probe.emit(xyz, self.session.hu_at(xyz))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        self._drag = None

    def leaveEvent(self, ev) -> None:
        self.probe.emit(None, float("nan"))

    def enterEvent(self, ev) -> None:
        pass

    def _set_crosshair_at(self, pos: QPointF) -> None:
        self.session.set_crosshair(self.display_to_world(pos.x(), pos.y()))

    def wheelEvent(self, ev: QWheelEvent) -> None:
        self._wheel_accum += ev.angleDelta().y()
        steps = int(self._wheel_accum / 120)
        if steps == 0:
            return
        self._wheel_accum -= steps * 120
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.15**steps)
        else:
            self.scroll_slices(steps)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        k = Qt.Key
        # Shift+PgUp/PgDn jumps 10 slices.
        big = 10 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
        if key in (k.Key_PageUp, k.Key_Up):
            self.scroll_slices(big)
        elif key in (k.Key_PageDown, k.Key_Down):
            self.scroll_slices(-big)
        elif key in (k.Key_Plus, k.Key_Equal):
            self.zoom(1.25)
        elif key == k.Key_Minus:
            self.zoom(1 / 1.25)
        elif key == k.Key_R:
            self.reset_camera()
        else:
            ev.ignore()

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        ev.ignore()

    def resizeEvent(self, ev: QResizeEvent) -> None:
        super().resizeEvent(ev)
        if self.is_closed:
            return
        if self._auto_fit and self.session.volume is not None:
            self.reset_camera()
        else:
            self.camera_changed.emit()  # mm per pixel changed: the scale bar follows

    # ------------------------------------------------------------------ teardown
    def finalize(self) -> None:
        if self.is_closed:
            return
        self._camera_subscriptions.close()
        for layer in self.layers:
            layer.close()
        super().finalize()
