"""Start-up warm-up of the numba dose kernels, off the GUI thread and mostly off-process.

On a fresh install numba's on-disk cache is empty and the first compile of the TG-43 kernels
takes ~20-30 s, holding the GIL for long stretches. So the GUI never compiles on its thread:

1. after the window is shown, a worker thread imports :mod:`dose.engine` (numba's import alone
   takes ~2 s) and starts :func:`dose.engine.warm_up_in_subprocess`, a child process that
   compiles the kernels into the disk cache (state ``"compiling"``), the post-op seed fit's too
   (``MORE_KERNELS``);
2. a timer on the GUI thread polls the child; when it exits 0, :func:`dose.engine.warm_up`
   loads the cached kernels into this process on a worker thread (``"loading"``);
3. then the state is ``"ready"`` and :meth:`DoseEngineWarmUp.when_ready` callbacks run.

Anything that displays dose (the isodose layer, the DVH panel) must call
:meth:`DoseEngineWarmUp.when_ready` instead of touching the engine directly, so the first dose
display waits without blocking. A failed child is reported (``"failed"``) and the in-process
warm-up is still tried on a worker thread, so the engine works even without a disk cache.
The state and elapsed time are shown in the status bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from app.gui.workers import Worker, start_worker

__all__ = ["DoseEngineWarmUp", "ProcessHandle"]

_POLL_MS = 250


class ProcessHandle(Protocol):
    """What :func:`dose.engine.warm_up_in_subprocess` returns (a ``subprocess.Popen``)."""

    def poll(self) -> int | None: ...


#: Kernels of the layers above ``dose`` compiled in the same child ("module:function"): the
#: post-op seed fit's, whose first fit would otherwise compile on the verify worker.
MORE_KERNELS = ("planner.postop.detection.seed_fit_kernels:warm_up",)


def _start_real_child() -> ProcessHandle:
    from dose.engine import warm_up_in_subprocess

    return warm_up_in_subprocess(also=MORE_KERNELS)


def _warm_up_in_process() -> None:
    from dose.engine import warm_up
    from planner.postop.detection.seed_fit_kernels import warm_up as warm_up_seed_fit

    warm_up()
    warm_up_seed_fit()


class DoseEngineWarmUp(QObject):
    """Signals (GUI thread): ``state_changed(state, message)``; states are ``"idle"``,
    ``"compiling"``, ``"loading"``, ``"ready"`` and ``"failed"`` (compile child failed;
    the in-process warm-up still follows)."""

    state_changed = Signal(str, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        start_child: Callable[[], ProcessHandle] = _start_real_child,
        warm_up_here: Callable[[], None] = _warm_up_in_process,
    ) -> None:
        super().__init__(parent)
        self._start_child = start_child
        self._warm_up_here = warm_up_here
        self.state = "idle"
        self.message = ""
        self.child: ProcessHandle | None = None
        self._worker: Worker | None = None
        self._started_s = 0.0
        self._waiting: list[Callable[[], None]] = []
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.setInterval(_POLL_MS)
        self._timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ API
    @property
    def is_ready(self) -> bool:
        return self.state == "ready"

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started_s if self._started_s else 0.0

    def start(self) -> None:
        """Start the warm-up (once); returns at once."""
        if self.state != "idle":
            return
        self._started_s = time.monotonic()
        self._set("compiling", "Dose engine: preparing kernels…")

        def task(_progress: Any, _cancel: Any) -> ProcessHandle:
            return self._start_child()

        self._worker = start_worker(
            task, on_finished=self._on_child_started, on_failed=self._on_child_failed, parent=self
        )

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the GUI thread once the kernels are loaded (now if they are)."""
        if self.is_ready:
            callback()
        else:
            self._waiting.append(callback)

    def stop(self) -> None:
        """Stop polling (window closing). A running compile child is left to finish: it only
        fills numba's cache, which the next start then loads in ~1 s."""
        self._stopped = True
        self._timer.stop()
        self._waiting.clear()
        if self._worker is not None:
            self._worker.cancel()

    # ------------------------------------------------------------------ steps
    def _on_child_started(self, child: ProcessHandle) -> None:
        self._worker = None
        self.child = child
        if self._stopped:
            return
        self._timer.start()
        self._poll()

    def _on_child_failed(self, exc: BaseException) -> None:
        self._worker = None
        self._set("failed", f"Dose engine: compile process not started ({exc})")
        self._load_here()

    def _poll(self) -> None:
        if self.child is None:
            return
        status = self.child.poll()
        if status is None:
            self._set(
                "compiling",
                f"Dose engine: compiling kernels (first start only)… {self.elapsed_s:.0f} s",
            )
            return
        self._timer.stop()
        if status != 0:
            self._set("failed", f"Dose engine: compile process failed (exit {status})")
        self._load_here()

    def _load_here(self) -> None:
        if self._stopped:
            return
        if self.state != "failed":
            self._set("loading", "Dose engine: loading kernels…")

        def task(_progress: Any, _cancel: Any) -> None:
            self._warm_up_here()

        self._worker = start_worker(
            task, on_finished=self._on_loaded, on_failed=self._on_load_failed, parent=self
        )

    def _on_loaded(self, _result: object) -> None:
        self._worker = None
        self._set("ready", f"Dose engine ready ({self.elapsed_s:.0f} s)")
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()

    def _on_load_failed(self, exc: BaseException) -> None:
        self._worker = None
        self._set("failed", f"Dose engine unavailable: {type(exc).__name__}: {exc}")

    def _set(self, state: str, message: str) -> None:
        if self._stopped:
            return
        self.state, self.message = state, message
        self.state_changed.emit(state, message)
