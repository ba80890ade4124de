"""The workflow parts of the workstation: post-op verification mode, auto plan, export.

:func:`install_workflow_ui` is called once by :class:`app.gui.main_window.MainWindow` after its
views and menus exist; it adds a **Workflow** menu (Post-op verification…, Auto plan…,
Robustness…, Export…) and keeps its parts on ``window.workflow`` (a :class:`WorkflowUI`); it
listens to ``window.session.document_changed`` to enable what needs a plan; the window knows
nothing else about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenuBar, QMessageBox

from app.gui.layers.base import Subscriptions
from app.gui.window_protocols import SessionWindow

if TYPE_CHECKING:
    from app.gui.postop.window import PostopWindow

__all__ = ["WorkflowUI", "WorkflowWindow", "install_workflow_ui"]


class WorkflowWindow(SessionWindow, Protocol):
    """What the workflow part uses of its window (the main window): the session, a menu of its
    own, and the window's close (the workflow's windows and dialogs close with it)."""

    def menuBar(self) -> QMenuBar: ...  # noqa: N802 (Qt)

    def installEventFilter(self, watcher: QObject) -> None: ...  # noqa: N802 (Qt)


class _CloseWatcher(QObject):
    """Closes the workflow's windows (their VTK views first) when the main window closes."""

    def __init__(self, ui: WorkflowUI) -> None:
        super().__init__(ui.window)
        self._ui = ui

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.Close:
            self._ui.close()
        return False


class WorkflowUI:
    """The Workflow menu and the windows/dialogs it opens (one post-op window at a time)."""

    def __init__(self, window: WorkflowWindow) -> None:
        self.window = window
        self._watcher = _CloseWatcher(self)
        window.installEventFilter(self._watcher)
        self.postop_window: PostopWindow | None = None
        self.dialogs: dict[str, Any] = {}
        menu = window.menuBar().addMenu("&Workflow")
        menu.setObjectName("workflow_menu")
        self.menu = menu
        self.postop_action = self._add("&Post-op verification…", self.open_postop, "Ctrl+Shift+V")
        menu.addSeparator()
        self.autoplan_action = self._add("&Auto plan…", self.open_autoplan, "Ctrl+Shift+A")
        self.robustness_action = self._add("&Robustness…", self.open_robustness, "Ctrl+Shift+R")
        self.export_action = self._add("&Export…", self.open_export, "Ctrl+Shift+E")
        menu.setToolTipsVisible(True)
        self._tips = {
            self.postop_action: "Verify the implanted seeds on the post-op CT",
            self.autoplan_action: "Needles and seeds planned automatically (one undo step)",
            self.robustness_action: (
                "The plan under needle placement errors: percentiles beside the metrics "
                "and bands on the DVH"
            ),
            self.export_action: "PDF, CSV, RTSTRUCT, RTPLAN, RTDOSE",
        }
        self._subscriptions = Subscriptions()
        self._subscriptions.listen(window.session.document_changed, self._on_document)
        self._on_document(window.session.document)

    def _add(self, text: str, slot: Any, shortcut: str) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        self.menu.addAction(action)
        return action

    def _on_document(self, document: object) -> None:
        has_plan = document is not None
        for action, tip in self._tips.items():
            action.setEnabled(has_plan)
            key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} [{key}]" if has_plan else "Open or create a plan first")

    def _need_plan(self) -> bool:
        if self.window.session.document is None or self.window.session.volume is None:
            if self.window.interactive:
                QMessageBox.information(self.window, "No plan", "Open or create a plan first.")
            return False
        return True

    # ------------------------------------------------------------------ parts
    def open_postop(self) -> PostopWindow | None:
        """Show the post-op verification window (created on first use)."""
        if not self._need_plan():
            return None
        if self.postop_window is None:
            from app.gui.postop.window import PostopWindow

            self.postop_window = PostopWindow(self.window)
        self.postop_window.show()
        self.postop_window.raise_()
        return self.postop_window

    def open_autoplan(self) -> Any:
        if not self._need_plan():
            return None
        from app.gui.dialogs.autoplan import AutoplanDialog

        dialog = AutoplanDialog(self.window)
        self.dialogs["autoplan"] = dialog
        dialog.show()
        return dialog

    def open_robustness(self) -> Any:
        if not self._need_plan():
            return None
        from app.gui.dialogs.robustness import RobustnessDialog

        dialog = RobustnessDialog(self.window)
        self.dialogs["robustness"] = dialog
        dialog.show()
        return dialog

    def open_export(self) -> Any:
        if not self._need_plan():
            return None
        from app.gui.dialogs.export import ExportDialog

        dialog = ExportDialog(self.window)
        self.dialogs["export"] = dialog
        dialog.show()
        return dialog

    def close(self) -> None:
        self._subscriptions.close()
        if self.postop_window is not None:
            self.postop_window.close()
        for dialog in self.dialogs.values():
            dialog.close()


def install_workflow_ui(window: WorkflowWindow) -> None:
    """Add the post-op, auto-plan and export parts to ``window`` (as ``window.workflow``)."""
    window.workflow = WorkflowUI(window)  # type: ignore[attr-defined]
