"""The planning half of the workstation: needles, seeds, live isodoses, DVH and metrics.

:func:`install_planning_ui` is called once by :class:`app.gui.main_window.MainWindow` after its
views and menus exist. It adds its own layers (needles, seeds, isodoses), tools, docks and menu
entries, and listens to ``window.session.document_changed`` (a plan opened or closed) and the
document's own events; the window knows nothing else about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

__all__ = ["install_planning_ui"]


def install_planning_ui(window: MainWindow) -> None:
    """Add the planning layers, tools, docks and menus to ``window`` (nothing yet)."""
    del window
