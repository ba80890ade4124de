# ruff: noqa: N802  (Qt/VTK method names: paintEvent, _getPixelRatio, …)
"""The one VTK–Qt bridge: every VTK widget in SeedPlan is a :class:`VTKWidget`.

This is the only module that selects the Qt binding for ``vtkmodules.qt`` and imports
``QVTKRenderWindowInteractor``. ``QVTKRenderWindowInteractor`` reads ``vtkmodules.qt.PyQtImpl``
once, at import time, so it is set here, before that import, to keep a stray PyQt install from
being picked up.

:class:`VTKWidget` fixes what upstream leaves to the application:

* ``_getPixelRatio`` uses this widget's own ``devicePixelRatioF()`` (upstream returns the DPR of
  the screen under the *mouse cursor*, which is wrong on mixed-DPI set-ups);
* VTK observers added through :meth:`VTKWidget.add_observer` are recorded and removed on close
  (VTK holds strong C++-side references to bound methods, which would pin the widget);
* renders are requested through Qt (``update()``) on the GUI thread only, and skipped once the
  widget is closed or while it is hidden: any number of requests in one event-loop turn is one
  render of that view, and a view nothing asked to redraw is not rendered;
* while one view is the *foreground* (:meth:`VTKWidget.set_foreground`: the view a brush
  stroke paints in), render requests of every other view are coalesced: each redraws at most
  once per :data:`BACKGROUND_RENDER_MS`, and all of them redraw at once when the foreground
  ends, so nothing is left stale after the stroke;
* hooks added with :meth:`VTKWidget.add_render_hook` run just before each render (a layer
  that deferred work for a background view does it there);
* the frame is blitted to the window's back buffer without the depth copy VTK's default
  ``BlitToHardware`` mode makes (a full-window shader pass: ~2 ms per render of a 500 × 400
  view with software OpenGL, Mesa llvmpipe); :data:`VTKWidget.legacy_rendering` restores
  VTK's default (for the benchmarks' baseline);
* :meth:`VTKWidget.finalize` (called by ``MainWindow.closeEvent`` before Qt destroys children)
  disables rendering, removes observers, removes props and finalizes the render window. It is
  idempotent.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import vtkmodules.qt
from numpy.typing import NDArray

vtkmodules.qt.PyQtImpl = "PySide6"

# Factory overrides: without these the modular imports have no OpenGL render window, no
# interactor style and no font rendering.
import vtkmodules.vtkInteractionStyle  # noqa: E402
import vtkmodules.vtkRenderingFreeType  # noqa: E402
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: E402
from PySide6.QtCore import QThread, QTimer  # noqa: E402
from PySide6.QtGui import QCloseEvent, QPaintEvent, QResizeEvent, QShowEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonCore import vtkObject  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkWindowToImageFilter  # noqa: E402

__all__ = ["BACKGROUND_RENDER_MS", "VTKWidget"]

#: While a view is in the foreground, the other views redraw at most this often (ms).
BACKGROUND_RENDER_MS = 100


class VTKWidget(QVTKRenderWindowInteractor):
    """A QWidget hosting one VTK render window with one renderer (``self.renderer``)."""

    _instances: ClassVar[weakref.WeakSet[VTKWidget]] = weakref.WeakSet()
    #: True: the previous rendering, the benchmarks' baseline: VTK's default frame blit (with
    #: the depth copy) for widgets made from now on, and any render request redraws every view
    #: (as when every layer of every view redrew on each plan change).
    legacy_rendering: ClassVar[bool] = False
    _foreground: ClassVar[weakref.ref[VTKWidget] | None] = None
    _deferred: ClassVar[weakref.WeakSet[VTKWidget]] = weakref.WeakSet()
    _background_timer: ClassVar[QTimer | None] = None

    def __init__(self, parent: QWidget | None = None) -> None:
        self._closed = False
        VTKWidget._instances.add(self)
        self._observers: list[tuple[vtkObject, int]] = []
        self._render_hooks: list[Callable[[], None]] = []
        super().__init__(parent)
        self.renderer = vtkRenderer()
        window = self.GetRenderWindow()
        # No multisampling: with software OpenGL (Mesa llvmpipe, Xvfb, remote desktops) MSAA
        # multiplies the fill cost; image views do not need it.
        window.SetMultiSamples(0)
        if not VTKWidget.legacy_rendering:
            # Colour only to the back buffer (nothing reads the window's depth buffer).
            window.SetFrameBlitModeToBlitToCurrent()
        window.AddRenderer(self.renderer)
        self._initialized = False
        #: Renders done (paint events and :meth:`render_now`), for tests and benchmarks.
        self.render_count = 0

    def showEvent(self, ev: QShowEvent) -> None:
        super().showEvent(ev)
        if not self._initialized and not self._closed:
            # Like upstream's example: initialise the interactor once the native window exists.
            self._initialized = True
            self._Iren.Initialize()

    # ------------------------------------------------------------------ upstream fixes
    def _getPixelRatio(self) -> float:  # type: ignore[override]
        """Device pixel ratio of the screen this widget is on (not the one under the cursor)."""
        return float(self.devicePixelRatioF())

    def paintEvent(self, ev: QPaintEvent) -> None:
        if self._closed or not self.isVisible():
            return
        self.render_count += 1
        VTKWidget._deferred.discard(self)
        self._run_render_hooks()
        super().paintEvent(ev)

    def resizeEvent(self, ev: QResizeEvent) -> None:
        if self._closed:
            return
        super().resizeEvent(ev)

    def closeEvent(self, ev: QCloseEvent) -> None:
        self.finalize()
        ev.accept()

    # ------------------------------------------------------------------ API
    @classmethod
    def unfinalized_instances(cls) -> list[VTKWidget]:
        """Live widgets whose render window was not finalized (for leak checks in tests)."""
        return [w for w in list(cls._instances) if not w._closed]

    @classmethod
    def finalize_all(cls) -> None:
        """Finalize every live VTK widget (connected to ``QApplication.aboutToQuit``)."""
        for widget in cls.unfinalized_instances():
            widget.finalize()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def add_render_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` just before every render of this widget (until removed)."""
        self._render_hooks.append(hook)

    def remove_render_hook(self, hook: Callable[[], None]) -> None:
        if hook in self._render_hooks:
            self._render_hooks.remove(hook)

    def _run_render_hooks(self) -> None:
        for hook in list(self._render_hooks):
            hook()

    @classmethod
    def set_foreground(cls, widget: VTKWidget | None) -> None:
        """Make ``widget`` the view being drawn in (None: no view): while one is set, every
        other view's render requests are coalesced to one per :data:`BACKGROUND_RENDER_MS`;
        clearing it redraws at once every view that still waits."""
        cls._foreground = None if widget is None else weakref.ref(widget)
        if widget is None:
            cls._flush_deferred()

    @classmethod
    def foreground(cls) -> VTKWidget | None:
        """The view set by :meth:`set_foreground` (None when none is, or it is closed)."""
        widget = cls._foreground() if cls._foreground is not None else None
        return None if widget is None or widget._closed else widget

    def is_background(self) -> bool:
        """True while another view is in the foreground (this one's renders are coalesced)."""
        if VTKWidget.legacy_rendering:
            return False
        foreground = VTKWidget.foreground()
        return foreground is not None and foreground is not self

    @classmethod
    def _flush_deferred(cls) -> None:
        if cls._background_timer is not None:
            cls._background_timer.stop()
        waiting = [w for w in list(cls._deferred) if not w._closed]
        cls._deferred = weakref.WeakSet()
        for widget in waiting:
            if widget.isVisible():
                widget.update()

    def _defer_render(self) -> None:
        VTKWidget._deferred.add(self)
        timer = VTKWidget._background_timer
        if timer is None:
            timer = VTKWidget._background_timer = QTimer()
            timer.setSingleShot(True)
            timer.setInterval(BACKGROUND_RENDER_MS)
            timer.timeout.connect(VTKWidget._flush_deferred)
        if not timer.isActive():
            timer.start()

    def add_observer(self, obj: vtkObject, event: str, callback: Callable[..., Any]) -> int:
        """``obj.AddObserver(event, callback)``, recorded so that :meth:`finalize` removes it."""
        tag = obj.AddObserver(event, callback)
        self._observers.append((obj, tag))
        return tag

    def request_render(self) -> None:
        """Ask Qt to repaint (and so render) soon; no-op once closed or while hidden. While
        another view is in the foreground (:meth:`set_foreground`) the repaint is coalesced.

        Must be called on the GUI thread: VTK and Qt widgets are never touched from workers.
        """
        if self._closed:
            return
        app = QApplication.instance()
        if app is not None and QThread.currentThread() is not app.thread():
            raise RuntimeError("VTKWidget.request_render() called off the GUI thread")
        if self.isVisible():
            if VTKWidget.legacy_rendering:  # as before: every model event redrew every view
                for widget in VTKWidget.unfinalized_instances():
                    if widget.isVisible():
                        widget.update()
            elif self.is_background():
                self._defer_render()
            else:
                self.update()

    def render_now(self) -> None:
        """Render synchronously (used before grabbing pixels); skipped when closed or hidden."""
        if self._closed or not self.isVisible():
            return
        self.render_count += 1
        self._run_render_hooks()
        self._Iren.Render()

    def grab_rgb(self) -> NDArray[np.uint8]:
        """The rendered image as ``(height, width, 3)`` uint8 RGB, top row first.

        Renders first. Returns an empty ``(0, 0, 3)`` array when the widget cannot render.
        """
        if self._closed or not self.isVisible():
            return np.zeros((0, 0, 3), np.uint8)
        self.render_now()
        w2i = vtkWindowToImageFilter()
        w2i.SetInput(self.GetRenderWindow())
        w2i.SetInputBufferTypeToRGB()
        w2i.ReadFrontBufferOff()
        w2i.Update()
        image = w2i.GetOutput()
        nx, ny, _ = image.GetDimensions()
        scalars = image.GetPointData().GetScalars()
        rgb = vtk_to_numpy(scalars).reshape(ny, nx, -1)[:, :, :3]
        return np.ascontiguousarray(rgb[::-1])  # VTK rows go bottom-up

    def finalize(self) -> None:
        """Stop rendering, remove observers and props, and release the OpenGL window. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._render_hooks.clear()
        VTKWidget._deferred.discard(self)
        for obj, tag in self._observers:
            obj.RemoveObserver(tag)
        self._observers.clear()
        self._Iren.RemoveAllObservers()
        self.GetRenderWindow().RemoveAllObservers()
        self._Timer.stop()
        # pyvista PR #8989: a render into a half-closed window crashes; switch rendering off first.
        self._Iren.EnableRenderOff()
        self.renderer.RemoveAllViewProps()
        self.GetRenderWindow().RemoveRenderer(self.renderer)
        self.GetRenderWindow().Finalize()
