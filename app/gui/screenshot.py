"""Window screenshots with the VTK views in them (``seedplan gui --screenshot``, File menu)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QWidget

from app.gui.vtk_bridge import VTKWidget

__all__ = ["grab_composited", "save_png"]


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
