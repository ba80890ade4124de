"""What the dialogs and windows opened from the main window read of it (typing only).

:class:`app.gui.main_window.MainWindow` builds the parts below it and hands itself to them.
Each part is typed by a small protocol of what it uses (here when several parts share it, else
next to the part), so that no part imports the window that imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStatusBar

    from planner.session.session import Session

__all__ = ["SessionWindow", "StatusWindow"]


class SessionWindow(Protocol):
    """A window showing one session: the dialogs and windows it opens read the plan and the CT
    there, and take the window as their Qt parent."""

    session: Session
    #: False in ``--screenshot`` mode: errors are reported without a modal dialog.
    interactive: bool


class StatusWindow(Protocol):
    """A window showing one session whose parts report in its status bar."""

    session: Session

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 (Qt)
