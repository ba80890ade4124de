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
* :meth:`VTKWidget.cached_base_renderer` gives a view a layer-0 renderer (the 2-D views put
  the CT slice there) whose picture is kept: while its props, the camera, the background and
  the window size are unchanged it is not drawn again but copied back from a framebuffer
  (``glBlitFramebuffer``, a memory copy) under the other props, which draw on layer 1. With
  software OpenGL the textured CT slice is the costliest prop (~6 ms of a ~12 ms render of a
  500 × 400 view); an edit that changes only the overlays no longer pays it. The picture is
  the same pixel for pixel. The 2-D overlays of layer 1 that stay unchanged and share no
  pixel with anything else drawn there (corner text, scale bar, HU bar, legends: chosen per
  render by :class:`app.gui.views.kept_overlays.KeptOverlays`) are drawn in that kept
  picture too, and hidden from layer 1 while it draws, so a drag step redraws only the
  props near what moves — again pixel for pixel the same picture;
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
from vtkmodules.vtkCommonCore import VTK_UNSIGNED_CHAR, vtkObject  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkProp, vtkRenderer, vtkWindowToImageFilter  # noqa: E402
from vtkmodules.vtkRenderingOpenGL2 import vtkOpenGLFramebufferObject  # noqa: E402

from app.gui.views.kept_overlays import KeptOverlays  # noqa: E402

__all__ = ["BACKGROUND_RENDER_MS", "VTKWidget"]

#: While a view is in the foreground, the other views redraw at most this often (ms).
BACKGROUND_RENDER_MS = 100

_GL_READ_FRAMEBUFFER = 0x8CA8
_GL_DRAW_FRAMEBUFFER = 0x8CA9
_GL_COLOR_BUFFER_BIT = 0x4000
_GL_NEAREST = 0x2600


class _CachedBase:
    """A layer-0 renderer of a widget whose picture is kept in a framebuffer object and
    copied back while nothing it shows changed (see the module docstring)."""

    def __init__(self, widget: VTKWidget) -> None:
        self.widget = widget
        window = widget.GetRenderWindow()
        self.renderer = vtkRenderer()
        self.renderer.SetLayer(0)
        self.renderer.InteractiveOff()
        self.renderer.SetActiveCamera(widget.renderer.GetActiveCamera())
        self.renderer.SetBackground(*widget.renderer.GetBackground())
        window.SetNumberOfLayers(max(2, window.GetNumberOfLayers()))
        widget.renderer.SetLayer(1)
        window.AddRenderer(self.renderer)
        self._fbo: vtkOpenGLFramebufferObject | None = None
        self._fbo_size: tuple[int, int] = (0, 0)
        self._fbo_context: object = None
        self._key: tuple[object, ...] | None = None
        self._next_key: tuple[object, ...] | None = None
        self._reuse = False
        #: The overlays drawn in the kept picture (module docstring), in their layer-1 order.
        self.kept: list[vtkProp] = []
        self._overlays = KeptOverlays()
        #: Renders that copied the kept picture instead of drawing it, and renders that drew
        #: it (tests, benchmarks).
        self.reused = 0
        self.drawn = 0
        # Decided at the start of every render of the window, whoever asks for it.
        widget.add_observer(window, "StartEvent", self.before_render)
        widget.add_observer(self.renderer, "EndEvent", self._after_base)
        widget.add_observer(widget.renderer, "StartEvent", self._before_overlay)
        widget.add_observer(widget.renderer, "EndEvent", self._after_overlay)

    def _state_key(self) -> tuple[object, ...]:
        """What the base picture depends on: the props (their inputs, properties and lookup
        tables), the camera, the background, the window size and the GL context. A mapper's
        own settings are not in it: set them before the first render."""
        w = self.widget
        base = self.renderer
        base.SetBackground(*w.renderer.GetBackground())
        window = w.GetRenderWindow()
        camera = base.GetActiveCamera()
        # By value, rounded: a window grab renders with a copy of the camera (float noise).
        view = (
            *camera.GetPosition(),
            *camera.GetFocalPoint(),
            *camera.GetViewUp(),
            camera.GetParallelScale(),
            camera.GetViewAngle(),
            *camera.GetClippingRange(),
            *camera.GetWindowCenter(),
        )
        key: list[object] = [
            tuple(round(v, 5) for v in view),
            camera.GetParallelProjection(),
            tuple(base.GetBackground()),
            tuple(window.GetSize()),
            str(window.GetGenericContext()),
            window.GetDPI(),
        ]
        for prop in self.kept:
            key += [id(prop), self._overlays.edits(prop)]
        kept = {id(prop) for prop in self.kept}
        props = base.GetViewProps()
        for i in range(props.GetNumberOfItems()):
            prop = props.GetItemAsObject(i)
            if id(prop) in kept:
                continue
            key += [id(prop), prop.GetMTime()]
            mapper = prop.GetMapper() if hasattr(prop, "GetMapper") else None
            if mapper is not None:
                connected = mapper.GetNumberOfInputConnections(0) > 0  # else GetInput crashes
                data = mapper.GetInputDataObject(0, 0) if connected else None
                # Not mapper.GetMTime(): an image reslice mapper's crashes before its first
                # render; the mappers here change only by their input.
                key += [id(data), data.GetMTime() if data is not None else 0]
            prop_property = prop.GetProperty() if hasattr(prop, "GetProperty") else None
            if prop_property is not None:
                key.append(prop_property.GetMTime())
                table = getattr(prop_property, "GetLookupTable", lambda: None)()
                key.append(table.GetMTime() if table is not None else 0)
        return tuple(key)

    def _set_kept(self, kept: list[vtkProp]) -> None:
        if [id(p) for p in kept] == [id(p) for p in self.kept]:
            return
        for prop in self.kept:
            self.renderer.RemoveViewProp(prop)
        for prop in kept:  # after the CT, in their layer-1 order
            self.renderer.AddViewProp(prop)
        self.kept = kept

    def before_render(self, *_args: object) -> None:
        """Decide which overlays the kept picture holds, and whether this render draws the
        base layer or copies the kept picture."""
        kept = self._overlays.choose(self.widget.renderer)
        self._set_kept([] if VTKWidget.legacy_rendering else kept)
        self._next_key = self._state_key()
        self._reuse = (
            not VTKWidget.legacy_rendering and self._fbo is not None and self._next_key == self._key
        )
        if bool(self.renderer.GetDraw()) == self._reuse:
            self.renderer.SetDraw(not self._reuse)

    def _blit(self, source: object, target: object) -> None:
        window = self.widget.GetRenderWindow()
        w, h = window.GetSize()
        state = window.GetState()
        state.PushFramebufferBindings()
        try:
            source.Bind(_GL_READ_FRAMEBUFFER)  # type: ignore[attr-defined]
            source.ActivateReadBuffer(0)  # type: ignore[attr-defined]
            target.Bind(_GL_DRAW_FRAMEBUFFER)  # type: ignore[attr-defined]
            target.ActivateDrawBuffer(0)  # type: ignore[attr-defined]
            vtkOpenGLFramebufferObject.Blit(
                (0, w, 0, h), (0, w, 0, h), _GL_COLOR_BUFFER_BIT, _GL_NEAREST
            )
        finally:
            state.PopFramebufferBindings()

    def _after_base(self, *_args: object) -> None:
        """The base layer was drawn: keep its picture."""
        self.drawn += 1
        window = self.widget.GetRenderWindow()
        frame = window.GetRenderFramebuffer()
        if frame is None or VTKWidget.legacy_rendering:
            self._key = None
            return
        size = tuple(window.GetSize())
        context = str(window.GetGenericContext())
        if self._fbo is None or self._fbo_context != context:
            self._fbo = vtkOpenGLFramebufferObject()  # a lost context's FBO is just dropped
            self._fbo.SetContext(window)
            state = window.GetState()
            state.PushFramebufferBindings()
            try:
                self._fbo.PopulateFramebuffer(
                    size[0], size[1], True, 1, VTK_UNSIGNED_CHAR, False, 0, 0
                )
            finally:
                state.PopFramebufferBindings()
            self._fbo_size, self._fbo_context = size, context  # type: ignore[assignment]
        elif self._fbo_size != size:
            self._fbo.Resize(*size)
            self._fbo_size = size  # type: ignore[assignment]
        self._blit(frame, self._fbo)
        self._key = self._next_key

    def _before_overlay(self, *_args: object) -> None:
        """Layer 1 starts: when the base was not drawn, copy its kept picture in; the overlays
        the kept picture holds are hidden from layer 1 until it ends."""
        for prop in self.kept:
            prop.VisibilityOff()
        if not self._reuse or self._fbo is None:
            return
        frame = self.widget.GetRenderWindow().GetRenderFramebuffer()
        if frame is None:
            return
        self._blit(self._fbo, frame)
        self.reused += 1

    def _after_overlay(self, *_args: object) -> None:
        """Layer 1 has ended: show the kept overlays again (as their layers set them) and
        note the overlays' modification times, to see edits made before the next render."""
        for prop in self.kept:
            prop.VisibilityOn()
        self._overlays.end_render()

    def release(self) -> None:
        """Free the framebuffer (before the window is finalized)."""
        if self._fbo is not None:
            window = self.widget.GetRenderWindow()
            window.MakeCurrent()
            self._fbo.ReleaseGraphicsResources(window)
            self._fbo = None
        self._key = None
        self.kept = []
        self._overlays.clear()
        self.renderer.RemoveAllViewProps()
        self.widget.GetRenderWindow().RemoveRenderer(self.renderer)


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
        self._base: _CachedBase | None = None
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

    def cached_base_renderer(self) -> vtkRenderer:
        """The layer-0 renderer whose picture is kept between renders (module docstring);
        made on first use. It shares :attr:`renderer`'s camera and background; props added to
        it are drawn under every prop of :attr:`renderer`."""
        if self._base is None:
            self._base = _CachedBase(self)
        return self._base.renderer

    @property
    def base_reused(self) -> int:
        """Renders that copied the kept base picture instead of drawing it."""
        return 0 if self._base is None else self._base.reused

    @property
    def base_kept(self) -> list[vtkProp]:
        """The 2-D overlays drawn in the kept base picture at the last render (module
        docstring; :mod:`app.gui.views.kept_overlays`)."""
        return [] if self._base is None else list(self._base.kept)

    @property
    def base_drawn(self) -> int:
        """Renders that drew the base layer (its picture changed, or nothing was kept)."""
        return 0 if self._base is None else self._base.drawn

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
        if self._base is not None:
            self._base.release()
            self._base = None
        self.renderer.RemoveAllViewProps()
        self.GetRenderWindow().RemoveRenderer(self.renderer)
        self.GetRenderWindow().Finalize()
