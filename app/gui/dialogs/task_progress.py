"""A progress bar, message and Cancel button that run one Qt-free task at a time.

:class:`TaskRunner` wraps :func:`app.gui.workers.start_worker` for the workflow dialogs and
the post-op window: ``runner.run(task, on_done, message)`` starts ``task(progress, cancel)`` on
a worker thread; the bar follows its progress, Cancel asks it to stop (it raises
:class:`dose.progress.Cancelled`), and ``on_done(result)`` runs on the GUI thread. A failure
is shown in the message line (one line: an InputError's text) and sent to ``on_failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.gui.workers import Task, Worker, start_worker
from dose.errors import InputError
from dose.progress import Cancelled

__all__ = ["TaskRunner", "failure_text"]


def failure_text(exc: BaseException) -> str:
    """One line for the user: an InputError's or OSError's own text, else the type and text."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, InputError | OSError | ValueError):
        return str(exc)
    return f"Unexpected error: {type(exc).__name__}: {exc}"


class TaskRunner(QWidget):
    """Signals: ``state_changed(busy)``; ``failed(message)``; ``cancelled()``."""

    state_changed = Signal(bool)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.label = QLabel("")
        self.label.setObjectName("task_message")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        layout.addWidget(self.label, 2)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.worker: Worker | None = None
        self.last_fraction = 0.0

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def run(
        self,
        task: Task,
        on_done: Callable[[Any], None],
        message: str,
        *,
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Start ``task``; False (nothing started) while another task runs."""
        if self.worker is not None:
            return False
        self.bar.setValue(0)
        self.last_fraction = 0.0
        self.label.setText(message)
        self.cancel_button.setEnabled(True)

        def finished(result: Any) -> None:
            self._idle("Done")
            on_done(result)

        def failed(exc: BaseException) -> None:
            text = failure_text(exc)
            self._idle(text)
            self.failed.emit(text)
            if on_failed is not None:
                on_failed(exc)

        def cancelled() -> None:
            self._idle("Cancelled")
            self.cancelled.emit()

        self.worker = start_worker(
            task,
            on_finished=finished,
            on_failed=failed,
            on_progress=self._progress,
            on_cancelled=cancelled,
            cancel_exceptions=(Cancelled,),
            parent=self,
        )
        self.state_changed.emit(True)
        return True

    def _progress(self, fraction: float, message: str) -> None:
        self.last_fraction = fraction
        self.bar.setValue(round(1000 * fraction))
        if message:
            self.label.setText(message)

    def _idle(self, message: str) -> None:
        self.worker = None
        self.cancel_button.setEnabled(False)
        self.label.setText(message)
        self.state_changed.emit(False)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.label.setText("Cancelling…")

    def wait(self, timeout_s: float = 10.0) -> None:
        """Cancel and wait for a running task (before the owner closes)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(timeout_s)
