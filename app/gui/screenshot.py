"""Window screenshots with the VTK views in them (``seedplan gui --screenshot``, File menu).

:func:`when_dose_drawn` lets ``--screenshot`` wait until what a plan shows has been drawn: with
a plan that has seeds, a source and a prescription, the live isodoses on every 2-D view (the
dose engine compiles its kernels first, tens of seconds on a cold cache) and the exact dose,
DVH and metrics; at most ``timeout_s``, then the window is captured anyway, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRect, QTimer
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QWidget

from app.gui.vtk_bridge import VTKWidget

__all__ = ["DOSE_WAIT_S", "dose_drawn", "grab_composited", "save_png", "when_dose_drawn"]

#: ``--screenshot`` waits at most this long for the dose (a cold numba compile under load).
DOSE_WAIT_S = 240.0
_POLL_MS = 100


def dose_drawn(window: Any) -> bool:
    """True when the window shows all the dose its plan has: no plan, or a plan without seeds,
    source or prescription (nothing to wait for); else live isodoses drawn on every 2-D view
    and the exact dose, DVH and metrics of the current plan arrived."""
    planning = getattr(window, "planning", None)
    document = window.session.document
    if planning is None or document is None:
        return True
    plan = document.plan
    if plan.source is None or plan.prescription is None or not plan.seeds:
        return True
    if planning.live is None or planning.exact is None or planning.exact_pending:
        return False
    layers = [layers.get("isodoses") for layers in planning.view_layers.values()]
    return all(layer is None or layer.segment_counts for layer in layers)


def when_dose_drawn(
    window: Any, done: Callable[[str], None], *, timeout_s: float = DOSE_WAIT_S
) -> None:
    """Call ``done("")`` once :func:`dose_drawn` (polled on the GUI thread), or
    ``done(note)`` after ``timeout_s`` with a one-line note of what is missing."""
    deadline = time.monotonic() + timeout_s
    timer = QTimer(window)
    timer.setInterval(_POLL_MS)

    def poll() -> None:
        if dose_drawn(window):
            timer.stop()
            done("")
        elif time.monotonic() > deadline:
            timer.stop()
            status = getattr(getattr(window, "planning", None), "exact_status", "")
            done(
                f"the dose was not drawn within {timeout_s:.0f} s ({status or 'no status'}); "
                "the screenshot shows the plan without it"
            )

    timer.timeout.connect(poll)
    # First look on a later event-loop turn: ``loaded`` is emitted before a plan being opened
    # with its CT is set on the session.
    timer.start()


def grab_composited(window: QWidget, vtk_views: Sequence[VTKWidget]) -> QImage:
    """``window`` as an image with each VTK view's own render painted over its place.

    ``QWidget.grab()`` cannot see native OpenGL children, hence the compositing.
    """
    for view in vtk_views:
        view.render_now()
    pixmap: QPixmap = window.grab()
    dpr = pixmap.devicePixelRatio()
    painter = QPainter(pixmap)
    try:
        for view in vtk_views:
            rgb = view.grab_rgb()
            if rgb.size == 0:
                continue
            h, w, _ = rgb.shape
            image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            painter.drawImage(QRect(view.mapTo(window, QPoint(0, 0)), view.size()), image)
    finally:
        painter.end()
    image = pixmap.toImage()
    image.setDevicePixelRatio(dpr)
    return image


def save_png(image: QImage, path: Path) -> None:
    """Write ``image`` as PNG (smallest file); OSError naming ``path`` when it cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG", 0):
        raise OSError(f"cannot write PNG to {path}")
