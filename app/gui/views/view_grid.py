"""The four linked views in a 2 × 2 grid; double-click one to fill the grid, again to restore."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from app.gui.views.slice_view import Orientation, SliceView
from app.gui.views.volume_view import VolumeView
from planner.session.session import Session

__all__ = ["ViewFrame", "ViewGrid"]

VOLUME_VIEW_RGB = (0.55, 0.7, 1.0)


class ViewFrame(QFrame):
    """A thin coloured frame around one view (the colour names the view's crosshair line)."""

    def __init__(self, view: QWidget, rgb: tuple[float, float, float]) -> None:
        super().__init__()
        r, g, b = (int(255 * c) for c in rgb)
        self.setObjectName("view_frame")
        self.setStyleSheet(f"#view_frame {{ border: 1px solid rgb({r},{g},{b}); }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(view)


class ViewGrid(QWidget):
    """Axial and sagittal on top, coronal and 3-D below."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axial_view = SliceView(session, Orientation.AXIAL)
        self.sagittal_view = SliceView(session, Orientation.SAGITTAL)
        self.coronal_view = SliceView(session, Orientation.CORONAL)
        self.volume_view = VolumeView(session)
        grid = QGridLayout(self)
        grid.setContentsMargins(3, 3, 3, 3)
        grid.setSpacing(3)
        self.frames: dict[QWidget, ViewFrame] = {
            view: ViewFrame(view, rgb)
            for view, rgb in (
                (self.axial_view, Orientation.AXIAL.spec.color_rgb),
                (self.sagittal_view, Orientation.SAGITTAL.spec.color_rgb),
                (self.coronal_view, Orientation.CORONAL.spec.color_rgb),
                (self.volume_view, VOLUME_VIEW_RGB),
            )
        }
        for n, frame in enumerate(self.frames.values()):
            grid.addWidget(frame, n // 2, n % 2)
        for i in range(2):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self._grid = grid
        self.maximized_view: QWidget | None = None
        for view in self.frames:
            view.installEventFilter(self)

    @property
    def slice_views(self) -> tuple[SliceView, SliceView, SliceView]:
        return (self.axial_view, self.sagittal_view, self.coronal_view)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.MouseButtonDblClick and obj in self.frames:
            self.toggle_maximized(obj)  # type: ignore[arg-type]
            return True
        return super().eventFilter(obj, event)

    def toggle_maximized(self, view: QWidget) -> None:
        """Show ``view`` alone, or all four views again if it already is alone."""
        alone = self.maximized_view is not view
        for other, frame in self.frames.items():
            frame.setVisible(not alone or other is view)
        index = list(self.frames).index(view)
        for i in range(2):  # empty rows/columns must not keep their share of the space
            self._grid.setRowStretch(i, 1 if not alone or i == index // 2 else 0)
            self._grid.setColumnStretch(i, 1 if not alone or i == index % 2 else 0)
        self.maximized_view = view if alone else None
