"""Run Qt-free work (CT loading, scanning) off the GUI thread, with progress and cancel.

The task is a plain callable ``task(progress, cancel)``: ``progress(fraction, message)`` and
``cancel() -> bool``; it must not touch Qt or VTK. It runs on a Python worker thread
(``concurrent.futures``), which never touches a Qt object either: progress is stored under a
lock and a QTimer on the GUI thread polls it and the future. So every Qt signal of a
:class:`Worker` is emitted on the GUI thread. (The reference-count corruption once blamed on
cross-thread signals is PySide6 6.12's lost references to None/True on Python 3.11, see
:mod:`app.gui.pyside_refcounts`.)
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

__all__ = ["Task", "Worker", "start_worker"]

Task = Callable[[Callable[[float, str], None], Callable[[], bool]], Any]

_POLL_MS = 25
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="seedplan-worker")


class Worker(QObject):
    """Signals (GUI thread): ``progress(fraction 0–1, message)``, then exactly one of
    ``finished(result)``, ``failed(exception)``, ``cancelled()``, then ``done()``."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()

    def __init__(
        self,
        task: Task,
        *,
        cancel_exceptions: tuple[type[BaseException], ...] = (),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._task = task
        self._cancel_event = threading.Event()
        self._cancel_exceptions = cancel_exceptions
        self._lock = threading.Lock()
        self._progress: tuple[float, str] | None = None  # latest, not yet emitted
        self._future: Future[Any] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(_POLL_MS)
        self._timer.timeout.connect(self._poll)
        self.traceback_text = ""

    # ------------------------------------------------------------------ control (GUI thread)
    def start(self) -> None:
        if self._future is not None:
            raise RuntimeError("a Worker runs once")
        self._future = _EXECUTOR.submit(self._run)
        self._timer.start()

    def cancel(self) -> None:
        """Ask the task to stop (it polls ``cancel()``); safe from any thread."""
        self._cancel_event.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_event.is_set()

    @property
    def is_running(self) -> bool:
        return self._future is not None and not self._future.done()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the task has returned (it keeps running after a cancel until it checks)."""
        if self._future is None:
            return True
        try:
            self._future.exception(timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> Any:
        return self._task(self._report, self._cancel_event.is_set)

    def _report(self, fraction: float, message: str = "") -> None:
        with self._lock:
            self._progress = (float(min(max(fraction, 0.0), 1.0)), str(message))

    # ------------------------------------------------------------------ GUI thread
    def _poll(self) -> None:
        with self._lock:
            update, self._progress = self._progress, None
        if update is not None:
            self.progress.emit(*update)
        future = self._future
        if future is None or not future.done():
            return
        self._timer.stop()
        exc = future.exception()
        if exc is None:
            if self._cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(future.result())
        elif isinstance(exc, self._cancel_exceptions) or self._cancel_event.is_set():
            self.cancelled.emit()
        else:
            self.traceback_text = "".join(traceback.format_exception(exc))
            self.failed.emit(exc)
        self.done.emit()


def start_worker(
    task: Task,
    *,
    on_finished: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    cancel_exceptions: tuple[type[BaseException], ...] = (),
    parent: QObject | None = None,
) -> Worker:
    """Create a :class:`Worker` for ``task``, connect the given slots and start it."""
    worker = Worker(task, cancel_exceptions=cancel_exceptions, parent=parent)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    if on_failed is not None:
        worker.failed.connect(on_failed)
    if on_progress is not None:
        worker.progress.connect(on_progress)
    if on_cancelled is not None:
        worker.cancelled.connect(on_cancelled)
    worker.done.connect(worker.deleteLater)
    worker.start()
    return worker
