"""The base of every layer adapter: VTK props in one view, fed by model events.

A layer adapter (napari's ``VispyBaseLayer`` idea) draws one kind of thing — the CT slice,
structure outlines, the crosshair, later needles, seeds and isodoses — into one view's
renderer. It subscribes to the Qt-free model's psygnal events in ``__init__`` through
:meth:`Layer.listen` (weak references: a layer that is gone stops listening by itself; one
layer that raises does not stop the others) and requests renders through its view, on the GUI
thread. :meth:`Layer.close` (called by the view's ``finalize``) removes its props and its
subscriptions, so a closed view is never drawn into.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from psygnal import SignalInstance
from PySide6.QtCore import QTimer
from vtkmodules.vtkRenderingCore import vtkProp

from app.gui.vtk_bridge import VTKWidget
from planner.session.session import Session

__all__ = ["STROKE_COALESCE_MS", "Layer", "StrokeCoalescer", "Subscriptions", "stroke_open"]

#: Work a stroke's edits would run per mouse move runs at most this often (ms) while it is open.
STROKE_COALESCE_MS = 100


def stroke_open(document: object) -> bool:
    """True while ``document`` (a :class:`~planner.plan.document.PlanDocument` or None) is
    inside :meth:`~planner.plan.document.PlanDocument.stroke` (a drag or a brush stroke): work
    that can wait for the end of the stroke (3-D re-meshing, 3-D renders) waits."""
    return getattr(document, "_stroke_key", None) is not None


class StrokeCoalescer:
    """Runs ``callback()`` for edits of a stroke at most once per ``interval_ms`` (``during``
    True) or once when the stroke has ended (``during`` False): :meth:`request` runs it at
    once outside a stroke of ``document()``; inside one it starts a single-shot timer that
    runs it (or, ``during`` False and the stroke still open, waits another interval). Whoever
    ends a stroke calls :meth:`flush_all` (the brush on release, the planning drag): what waited
    runs at once, so it is exact when the stroke has ended."""

    _instances: ClassVar[weakref.WeakSet[StrokeCoalescer]] = weakref.WeakSet()

    def __init__(
        self,
        document: Callable[[], object],
        callback: Callable[[], None],
        *,
        during: bool = True,
        interval_ms: int = STROKE_COALESCE_MS,
    ) -> None:
        self._document = document
        self._callback = callback
        self._during = during
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._fire)
        StrokeCoalescer._instances.add(self)

    @classmethod
    def flush_all(cls) -> None:
        """Run now every waiting callback whose document is no longer inside a stroke."""
        for c in list(cls._instances):
            if c.timer.isActive() and not stroke_open(c._document()):
                c.timer.stop()
                c._callback()

    @property
    def pending(self) -> bool:
        return self.timer.isActive()

    def request(self) -> None:
        if stroke_open(self._document()):
            if not self.timer.isActive():
                self.timer.start()
            return
        self.timer.stop()
        self._callback()

    def _fire(self) -> None:
        if not self._during and stroke_open(self._document()):
            self.timer.start()
            return
        self._callback()

    def stop(self) -> None:
        self.timer.stop()


class Subscriptions:
    """Model-signal connections made by one GUI object, all dropped by :meth:`close`.

    psygnal already holds bound methods weakly (an object that is gone stops listening); this
    also lets a closed-but-alive view stop listening at once, in one place.
    """

    def __init__(self) -> None:
        self._connections: list[tuple[SignalInstance, Callable[..., Any]]] = []

    def listen(self, signal: SignalInstance, callback: Callable[..., Any]) -> None:
        signal.connect(callback)
        self._connections.append((signal, callback))

    def close(self) -> None:
        for signal, callback in self._connections:
            signal.disconnect(callback, missing_ok=True)
        self._connections.clear()


class Layer:
    """Props of one kind of thing drawn in ``view``; subclasses fill :attr:`props`."""

    def __init__(self, view: VTKWidget, session: Session) -> None:
        self.view = view
        self.session = session
        self.props: list[vtkProp] = []
        self._subscriptions = Subscriptions()
        self._closed = False

    # ------------------------------------------------------------------ for subclasses
    def listen(self, signal: SignalInstance, callback: Callable[..., Any]) -> None:
        """Connect ``callback`` (a bound method of this layer) to a model signal."""
        self._subscriptions.listen(signal, callback)

    def add_prop(self, prop: vtkProp) -> vtkProp:
        """Add ``prop`` to the view's renderer and own it."""
        self.view.renderer.AddViewProp(prop)
        self.props.append(prop)
        return prop

    def remove_prop(self, prop: vtkProp) -> None:
        self.view.renderer.RemoveViewProp(prop)
        if prop in self.props:
            self.props.remove(prop)

    def render(self) -> None:
        """Ask the view to redraw (merged by Qt; nothing once the view is closed)."""
        if not self.closed:
            self.view.request_render()

    @property
    def closed(self) -> bool:
        return self._closed or self.view.is_closed

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Remove this layer's props and subscriptions. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._subscriptions.close()
        for prop in list(self.props):
            self.view.renderer.RemoveViewProp(prop)
        self.props.clear()
