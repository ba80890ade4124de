"""Run Qt-free work (CT loading, scanning) off the GUI thread, with progress and cancel.

The callable receives ``progress(fraction, message)`` and ``cancel() -> bool``; it must not
touch Qt or VTK. Results come back to the GUI thread by queued Qt signals, so slots connected
to a :class:`Worker` run on the GUI thread.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

__all__ = ["Task", "Worker", "start_worker"]

Task = Callable[[Callable[[float, str], None], Callable[[], bool]], Any]


class Worker(QObject):
    """Signals: ``progress(fraction 0–1, message)``, ``finished(result)``, ``failed(exception)``,
    ``cancelled()``. Exactly one of the last three is emitted, then ``done()``."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()

    def __init__(self, task: Task, *, cancel_exceptions: tuple[type[BaseException], ...] = ()):
        super().__init__()
        self._task = task
        self._cancel_event = threading.Event()
        self._cancel_exceptions = cancel_exceptions
        self.traceback_text = ""
        self.is_running = False

    def cancel(self) -> None:
        """Ask the task to stop (it polls ``cancel()``); safe from any thread."""
        self._cancel_event.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_event.is_set()

    def run(self) -> None:
        """Execute the task in the calling (worker) thread."""
        self.is_running = True
        try:
            result = self._task(self._report, self._cancel_event.is_set)
        except self._cancel_exceptions:
            self.cancelled.emit()
        except Exception as exc:
            self.traceback_text = traceback.format_exc()
            if self._cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(exc)
        else:
            if self._cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        finally:
            self.is_running = False
            self.done.emit()

    def _report(self, fraction: float, message: str = "") -> None:
        self.progress.emit(float(min(max(fraction, 0.0), 1.0)), str(message))


class _Runnable(QRunnable):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.setAutoDelete(True)

    def run(self) -> None:
        self.worker.run()


_ACTIVE: set[Worker] = set()  # keeps Python wrappers alive until the task has reported


def start_worker(
    task: Task,
    *,
    on_finished: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    cancel_exceptions: tuple[type[BaseException], ...] = (),
    pool: QThreadPool | None = None,
) -> Worker:
    """Start ``task`` on ``pool`` (the global pool by default); connect the given slots."""
    worker = Worker(task, cancel_exceptions=cancel_exceptions)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    if on_failed is not None:
        worker.failed.connect(on_failed)
    if on_progress is not None:
        worker.progress.connect(on_progress)
    if on_cancelled is not None:
        worker.cancelled.connect(on_cancelled)
    _ACTIVE.add(worker)
    worker.done.connect(lambda: _ACTIVE.discard(worker))
    (pool or QThreadPool.globalInstance()).start(_Runnable(worker))
    return worker
