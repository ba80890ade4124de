"""A minimal, Qt-free observer: model objects emit, the GUI subscribes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Signal"]


class Signal:
    """A list of callbacks. ``connect(cb)``, ``disconnect(cb)``, ``emit(*args)``.

    Callbacks run synchronously in the emitting thread; GUI listeners must marshal to the GUI
    thread themselves (the app does this with a queued Qt signal).
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)

    def __len__(self) -> int:
        return len(self._callbacks)
