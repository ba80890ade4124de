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
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPlane, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkCutter
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageSlice,
    vtkPolyDataMapper,
    vtkTextActor,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from app.gui.views.vtk_data import image_from_volume, mask_surface_cached
from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["Orientation", "SliceView"]

_BACKGROUND_RGB = (0.0, 0.0, 0.0)
_TEXT_RGB = (0.92, 0.92, 0.92)
_LABEL_RGB = (1.0, 0.85, 0.35)


@dataclass(frozen=True)
class _Spec:
    title: str
    view_dir: tuple[float, float, float]  # LPS direction the camera looks along
    view_up: tuple[float, float, float]  # LPS direction that points up on screen
    labels: tuple[str, str, str, str]  # screen left, right, top, bottom
    color_rgb: tuple[float, float, float]  # this view's identifying colour (crosshair lines)


class Orientation(Enum):
    AXIAL = _Spec("Axial", (0, 0, 1), (0, -1, 0), ("R", "L", "A", "P"), (0.90, 0.30, 0.30))
    SAGITTAL = _Spec("Sagittal", (-1, 0, 0), (0, 0, 1), ("A", "P", "S", "I"), (0.90, 0.80, 0.25))
    CORONAL = _Spec("Coronal", (0, 1, 0), (0, 0, 1), ("R", "L", "S", "I"), (0.35, 0.80, 0.35))

    @property
    def spec(self) -> _Spec:
        return self.value

    @property
    def normal(self) -> NDArray[np.float64]:
        return np.asarray(self.value.view_dir, dtype=np.float64)


_CAMERA_DISTANCE_MM = 1000.0
_OVERLAY_OFFSET_MM = 0.5  # crosshair/contours drawn this far in front of the slice


class SliceView(VTKWidget):
    """A 2-D view. Emits ``probe(xyz_mm or None, hu)`` as the mouse moves over the image."""

    probe = Signal(object, float)

    def __init__(
        self, session: Session, orientation: Orientation, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.orientation = orientation
        self.setObjectName(f"{orientation.spec.title.lower()}_view")
        self._image: vtkImageData | None = None
        self._drag: tuple[str, QPointF, tuple[float, ...]] | None = None
        self._wheel_accum = 0
        self._auto_fit = True  # re-fit on resize until the user zooms or pans

        renderer = self.renderer
        renderer.SetBackground(*_BACKGROUND_RGB)
        camera = renderer.GetActiveCamera()
        camera.ParallelProjectionOn()

        self._mapper = vtkImageResliceMapper()
        self._mapper.SliceFacesCameraOn()
        self._mapper.SliceAtFocalPointOn()
        self._mapper.BorderOff()
        self._slice = vtkImageSlice()
        self._slice.SetMapper(self._mapper)
        prop = self._slice.GetProperty()
        prop.SetInterpolationTypeToLinear()
        prop.SetColorWindow(session.window_hu)
        prop.SetColorLevel(session.level_hu)
        self._slice.VisibilityOff()
        renderer.AddViewProp(self._slice)

        # Crosshair: one line for each of the two other views' planes, in their colours.
        self._cross_lines: list[tuple[vtkPolyData, vtkActor, NDArray[np.float64]]] = []
        for other in Orientation:
            if other is orientation:
                continue
            polydata = vtkPolyData()
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(polydata)
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*other.spec.color_rgb)
            actor.GetProperty().SetLineWidth(1.2)
            actor.GetProperty().LightingOff()
            actor.PickableOff()
            actor.VisibilityOff()
            renderer.AddViewProp(actor)
            self._cross_lines.append((polydata, actor, other.normal))

        self._contours: list[tuple[vtkCutter, vtkActor]] = []
        self._plane = vtkPlane()

        self._text: dict[str, vtkTextActor] = {}
        left, right, top, bottom = orientation.spec.labels
        for key, text, pos, hjust, vjust in (
            ("left", left, (0.012, 0.5), "left", "center"),
            ("right", right, (0.988, 0.5), "right", "center"),
            ("top", top, (0.5, 0.985), "center", "top"),
            ("bottom", bottom, (0.5, 0.015), "center", "bottom"),
        ):
            self._text[key] = self._add_text(text, pos, hjust, vjust, 15, _LABEL_RGB, bold=True)
        self._text["title"] = self._add_text(
            orientation.spec.title, (0.015, 0.985), "left", "top", 13, orientation.spec.color_rgb
        )
        self._text["slice"] = self._add_text("", (0.015, 0.93), "left", "top", 11, _TEXT_RGB)
        self._text["wl"] = self._add_text("", (0.015, 0.015), "left", "bottom", 11, _TEXT_RGB)
        self._text["zoom"] = self._add_text("", (0.985, 0.015), "right", "bottom", 11, _TEXT_RGB)
        self._text["empty"] = self._add_text(
            "No image loaded", (0.5, 0.5), "center", "center", 14, (0.55, 0.55, 0.55)
        )

        session.volume_changed.connect(self._on_volume_changed)
        session.crosshair_changed.connect(self._on_crosshair_changed)
        session.window_level_changed.connect(self._on_window_level_changed)
        self._on_window_level_changed(session.window_hu, session.level_hu)
        if session.volume is not None:
            self._on_volume_changed()

    # ------------------------------------------------------------------ construction helpers
    def _add_text(
        self,
        text: str,
        pos: tuple[float, float],
        hjust: str,
        vjust: str,
        size_pt: int,
        rgb: tuple[float, float, float],
        *,
        bold: bool = False,
    ) -> vtkTextActor:
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
        {
            "top": tp.SetVerticalJustificationToTop,
            "bottom": tp.SetVerticalJustificationToBottom,
        }.get(vjust, tp.SetVerticalJustificationToCentered)()
        actor.PickableOff()
        self.renderer.AddViewProp(actor)
        return actor

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

    def _slice_axis(self) -> int:
        """The volume index axis (0=i, 1=j, 2=k) closest to the slice normal."""
        assert self.session.volume is not None
        direction = self.session.volume.geometry.direction
        return int(np.argmax(np.abs(direction.T @ self.normal)))

    def slice_position_mm(self) -> float:
        """Position of the displayed plane along the view normal (LPS mm, ``n · x``)."""
        fp = np.asarray(self.renderer.GetActiveCamera().GetFocalPoint())
        return float(fp @ self.normal)

    def slice_index(self) -> int:
        """Index (along the volume axis closest to the normal) of the displayed slice."""
        volume = self.session.volume
        if volume is None:
            return -1
        ijk = volume.geometry.world_to_index(self.session.crosshair_mm)
        return int(np.rint(ijk[self._slice_axis()]))

    def n_slices(self) -> int:
        volume = self.session.volume
        if volume is None:
            return 0
        return int(volume.geometry.shape_xyz[self._slice_axis()])

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
        volume = self.session.volume
        for _cutter, actor in self._contours:
            self.renderer.RemoveViewProp(actor)
        self._contours.clear()
        if volume is None:
            self._image = None
            self._slice.VisibilityOff()
            for _, actor, _ in self._cross_lines:
                actor.VisibilityOff()
            self._text["empty"].VisibilityOn()
            self.request_render()
            return
        self._image = image_from_volume(volume)
        self._mapper.SetInputData(self._image)
        self._slice.VisibilityOn()
        self._text["empty"].VisibilityOff()
        for mask in self.session.masks.values():
            self._add_contour(mask_surface_cached(mask), mask.color_rgb)
        self.reset_camera()
        self._on_crosshair_changed(self.session.crosshair_mm)

    def _add_contour(self, surface: vtkPolyData, color_rgb: tuple[int, int, int]) -> None:
        if surface.GetNumberOfPoints() == 0:
            return
        cutter = vtkCutter()
        cutter.SetInputData(surface)
        cutter.SetCutFunction(self._plane)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(cutter.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*(c / 255.0 for c in color_rgb))
        actor.GetProperty().SetLineWidth(2.0)
        actor.GetProperty().LightingOff()
        actor.PickableOff()
        # Draw in front of the image slice (parallel projection: no visible shift).
        actor.SetPosition(*(-_OVERLAY_OFFSET_MM * self.normal))
        self.renderer.AddViewProp(actor)
        self._contours.append((cutter, actor))

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
        self._update_texts()
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
        if self.is_closed or self.session.volume is None:
            return
        xyz_mm = np.asarray(xyz_mm, dtype=np.float64)
        n = self.normal
        camera = self.renderer.GetActiveCamera()
        fp = np.asarray(camera.GetFocalPoint())
        fp = fp + (xyz_mm @ n - fp @ n) * n
        camera.SetFocalPoint(*fp)
        camera.SetPosition(*(fp - _CAMERA_DISTANCE_MM * n))
        self._plane.SetOrigin(*xyz_mm)
        self._plane.SetNormal(*n)
        self._update_crosshair_lines(xyz_mm)
        self._update_clipping()
        self._update_texts()
        self.request_render()

    def _update_crosshair_lines(self, xyz_mm: NDArray[np.float64]) -> None:
        volume = self.session.volume
        assert volume is not None
        lower, upper = volume.geometry.bounds_world_mm()
        reach_mm = float(np.linalg.norm(upper - lower)) + 10.0
        gap_mm = 0.025 * self.renderer.GetActiveCamera().GetParallelScale()
        front = xyz_mm - _OVERLAY_OFFSET_MM * self.normal
        for polydata, actor, other_normal in self._cross_lines:
            # The other view's plane cuts this one along n × n_other.
            along = np.cross(self.normal, other_normal)
            along /= np.linalg.norm(along)
            pts = np.array(
                [
                    front - reach_mm * along,
                    front - gap_mm * along,
                    front + gap_mm * along,
                    front + reach_mm * along,
                ]
            )
            points = vtkPoints()
            for p in pts:
                points.InsertNextPoint(*p)
            lines = vtkCellArray()
            for a, b in ((0, 1), (2, 3)):
                lines.InsertNextCell(2)
                lines.InsertCellPoint(a)
                lines.InsertCellPoint(b)
            polydata.SetPoints(points)
            polydata.SetLines(lines)
            polydata.Modified()
            actor.VisibilityOn()

    def _on_window_level_changed(self, window_hu: float, level_hu: float) -> None:
        if self.is_closed:
            return
        prop = self._slice.GetProperty()
        prop.SetColorWindow(window_hu)
        prop.SetColorLevel(level_hu)
        self._update_texts()
        self.request_render()

    def _update_texts(self) -> None:
        s = self.session
        self._text["wl"].SetInput(f"W {s.window_hu:.0f} HU   L {s.level_hu:.0f} HU")
        if s.volume is None:
            for key in ("slice", "zoom"):
                self._text[key].SetInput("")
            return
        axis_name = "LPS"[int(np.argmax(np.abs(self.normal)))]
        self._text["slice"].SetInput(
            f"Slice {self.slice_index() + 1}/{self.n_slices()}   "
            f"{axis_name} = {self.slice_position_mm():.1f} mm"
        )
        # Field of view height on screen, so the user can judge sizes.
        fov_mm = 2.0 * self.renderer.GetActiveCamera().GetParallelScale()
        self._text["zoom"].SetInput(f"FOV {fov_mm:.0f} mm")

    # ------------------------------------------------------------------ interaction
    def scroll_slices(self, n_steps: int) -> None:
        """Move the crosshair ``n_steps`` slices along the view normal (snapped to voxels)."""
        volume = self.session.volume
        if volume is None or n_steps == 0:
            return
        geometry = volume.geometry
        axis = self._slice_axis()
        c = self.session.crosshair_mm
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
        self._update_crosshair_lines(self.session.crosshair_mm)
        self._update_texts()
        self.request_render()

    def pan_mm(self, right_mm: float, up_mm: float) -> None:
        """Move the view content by (right, up) mm on screen."""
        camera = self.renderer.GetActiveCamera()
        right, up = self._screen_axes()
        shift = -(right_mm * right + up_mm * up)
        self._auto_fit = False
        camera.SetFocalPoint(*(np.asarray(camera.GetFocalPoint()) + shift))
        camera.SetPosition(*(np.asarray(camera.GetPosition()) + shift))
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
        if self._auto_fit and not self.is_closed and self.session.volume is not None:
            self.reset_camera()

    # ------------------------------------------------------------------ teardown
    def finalize(self) -> None:
        if self.is_closed:
            return
        self.session.volume_changed.disconnect(self._on_volume_changed)
        self.session.crosshair_changed.disconnect(self._on_crosshair_changed)
        self.session.window_level_changed.disconnect(self._on_window_level_changed)
        self._contours.clear()
        self._mapper.SetInputData(None)
        self._image = None
        super().finalize()
