"""The workflow parts of the workstation: post-op verification mode, auto plan, export.

:func:`install_workflow_ui` is called once by :class:`app.gui.main_window.MainWindow` after its
views and menus exist; it adds its own menus, docks and dialogs and listens to
``window.session.document_changed``; the window knows nothing else about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

__all__ = ["install_workflow_ui"]


def install_workflow_ui(window: MainWindow) -> None:
    """Add the post-op, auto-plan and export parts to ``window`` (nothing yet)."""
    del window
