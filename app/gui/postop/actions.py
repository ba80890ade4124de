"""One helper for the post-op window's toolbar actions: text, slot, shortcut and tooltip."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence

__all__ = ["make_action"]


def make_action(
    parent: QObject, text: str, slot: Any, shortcut: str | None = None, tip: str = ""
) -> QAction:
    """A QAction calling ``slot`` when triggered; the tooltip names the shortcut."""
    action = QAction(text, parent)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.setToolTip(f"{tip} ({shortcut})" if shortcut and tip else tip or text)
    action.triggered.connect(slot)
    return action
