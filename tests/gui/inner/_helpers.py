"""Helpers for window tests (child process only): waiting, synthetic mouse events, grabbing."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.gui.views.slice_view import SliceView


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Process Qt events until ``predicate()`` is true; AssertionError on timeout."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        app.processEvents()
        time.sleep(0.01)


def settle(n: int = 5) -> None:
    for _ in range(n):
        QApplication.instance().processEvents()


def mouse(
    widget: QWidget,
    kind: QEvent.Type,
    x: float,
    y: float,
    button: Qt.MouseButton = Qt.MouseButton.NoButton,
    buttons: Qt.MouseButton | None = None,
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    """Deliver a mouse event to ``widget`` through Qt (its real event handlers run)."""
    pos = QPointF(x, y)
    held = buttons if buttons is not None else button
    event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, held, modifiers)
    QApplication.sendEvent(widget, event)


def click(widget: QWidget, x: float, y: float, button=Qt.MouseButton.LeftButton) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, x, y, button)
    mouse(widget, QEvent.Type.MouseButtonRelease, x, y, button, Qt.MouseButton.NoButton)


def drag(widget: QWidget, start: tuple[float, float], end: tuple[float, float], button) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, *start, button)
    for t in np.linspace(0.0, 1.0, 6)[1:]:
        x = start[0] + t * (end[0] - start[0])
        y = start[1] + t * (end[1] - start[1])
        mouse(widget, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, button)
    mouse(widget, QEvent.Type.MouseButtonRelease, *end, button, Qt.MouseButton.NoButton)


def wheel(
    widget: QWidget,
    steps: int,
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPointF(0, 0).toPoint(),
        QPointF(0, 120 * steps).toPoint(),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def camera_world_to_widget(view: SliceView, xyz_mm: np.ndarray) -> tuple[float, float]:
    """Independent of ``view.world_to_display``: from the camera's parameters alone.

    Parallel projection: the widget centre shows the focal point, ``2 * parallel_scale`` mm
    span the widget height; screen axes from the camera's view-up and direction of projection.
    """
    camera = view.renderer.GetActiveCamera()
    focal = np.asarray(camera.GetFocalPoint())
    up = np.asarray(camera.GetViewUp())
    forward = np.asarray(camera.GetDirectionOfProjection())
    right = np.cross(forward, up)
    mm_per_px = 2.0 * camera.GetParallelScale() / view.height()
    d = np.asarray(xyz_mm, float) - focal
    return view.width() / 2.0 + (d @ right) / mm_per_px, view.height() / 2.0 - (d @ up) / mm_per_px


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64).mean(axis=-1)
