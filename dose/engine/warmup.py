"""Compiling the numba kernels before they are needed (Qt-free).

Cold (first run after an install, empty numba cache) the kernels take ~20-30 s to compile, and
compilation holds the GIL for long stretches; from numba's on-disk cache they load in ~1-2 s.
So a GUI never compiles in its own process:

1. At start-up, ``handle = warm_up_in_subprocess(progress=..., on_done=...)`` starts a child
   Python that compiles every kernel into numba's disk cache and returns at once.
2. The caller learns that the compile finished in any of three ways (pick one):

   * ``on_done(ok, message)`` is called exactly once, from a watcher thread, when the child
     has exited (``ok`` True on success; ``message`` is the child's last output lines on
     failure). A Qt GUI forwards it to its GUI thread (a queued signal) before touching widgets.
   * poll ``handle.done`` / ``handle.poll()`` (None while running, the exit status after), e.g.
     from a GUI timer;
   * block with ``handle.wait(timeout)`` (exit status; 0 = success), e.g. in a worker thread.

   ``progress(fraction, message)`` (:data:`dose.progress.ProgressFn`) is also called from the
   watcher thread while the child compiles, e.g. "compiling dose kernels (6711, 2d, fast)".
3. Then call :func:`warm_up` in a worker thread (it loads the cached kernels and builds the
   model tables, ~1-2 s) or simply let the first dose computation do it.

``handle.terminate()`` stops the child (harmless: numba writes its cache files atomically).

``also`` names more compile steps for the same child, ``"package.module:function"`` (each
called with no arguments after the dose kernels): a layer above ``dose`` (the GUI) passes its
own kernels there, e.g. the post-op seed fit's, without ``dose`` importing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from dose.sources import load_model

__all__ = ["DoneFn", "WarmUpProcess", "warm_up", "warm_up_in_subprocess"]

#: ``on_done(ok, message)``: called once when the warm-up child has exited.
DoneFn = Callable[[bool, str], None]

_PROGRESS_TAG = "SEEDPLAN-WARMUP"
_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding dose/


def warm_up(
    models: Sequence[str] = ("6711",),
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> None:
    """Compile (or load from numba's cache) every kernel and build the models' tables.

    Every kernel is compiled for the first model (one set of types serves every model); each
    further model only gets its tables (T and the FAST part tables). ``progress(fraction,
    message)`` is called after each step, ``cancel()`` is polled between steps. ~20-30 s cold,
    ~1-2 s cached; run it in a worker thread, or use :func:`warm_up_in_subprocess` first.
    """
    from dose.engine import kernels as en  # imports numba

    steps = []
    for name in models:
        m = load_model(name)
        for formalism in ("2d", "1d") if m.has_phi_an else ("2d",):
            steps += [(m, formalism, "exact"), (m, formalism, "fast")]
    one = (np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]]), np.ones(1))
    for done, (m, formalism, part) in enumerate(steps):
        check_cancelled(cancel, "warm-up cancelled")
        what = f"compiling dose kernels ({m.model_id}, {formalism}, {part})"
        report(progress, done / len(steps), what)
        fm = en.fast_model(m, formalism)  # type: ignore[arg-type]
        if part == "exact":
            out = np.zeros((2, 3, 4))
            counts = np.zeros(out.shape, dtype=np.int32)
            en.grid_rate_accumulate(fm, out, counts, np.zeros(3), np.eye(3), *one)
            en.points_rate(fm, np.ones((2, 3)), *one)
            continue
        for spec in (en.FAST_GRID_SPEC, en.FAST_SLICE_SPEC):
            lay = en.split_layout((6, 7, 8), np.zeros(3), np.eye(3), spec)
            near = np.zeros(lay.shape_zyx)
            far = lay.zeros_far()
            en.near_accumulate(fm, near, np.zeros(lay.shape_zyx, dtype=np.int32), lay, *one)
            en.far_accumulate(fm, far, lay, *one)
            en.upsample_into(near, near, far, lay)
    from dose.engine.kernels.isolines import CASE_EDGES, iso_segments_into

    # The live isodose lines' marching squares (planner.plan.isolines), drawn on the GUI thread.
    iso_segments_into(np.eye(3), np.array([0.5]), np.eye(3), CASE_EDGES)
    report(progress, 1.0, "dose kernels ready")


def _child_main(models: Sequence[str], also: Sequence[str] = ()) -> None:
    """Entry point of the warm-up child: progress lines on stdout for the parent's watcher."""
    import importlib

    def progress(fraction: float, message: str) -> None:
        print(f"{_PROGRESS_TAG} {fraction:.4f} {message}", flush=True)

    share = 1.0 / (len(also) + 1)  # of the progress bar, per step
    warm_up(models, progress=lambda f, message: progress(f * share, message))
    for done, name in enumerate(also, start=1):
        module, _, function = name.partition(":")
        progress(done * share, f"compiling {module.rsplit('.', 1)[-1]}")
        getattr(importlib.import_module(module), function)()
        progress((done + 1) * share, "kernels ready" if done == len(also) else "")


class WarmUpProcess:
    """Handle of the warm-up child started by :func:`warm_up_in_subprocess` (Popen-like).

    ``poll()`` / ``returncode``: None while running, then the exit status (0 = success);
    ``wait(timeout)`` blocks until the child has exited *and* ``on_done`` has run, and returns
    the exit status (raises :class:`subprocess.TimeoutExpired` on timeout); ``done``, ``ok`` and
    ``message`` describe the outcome; ``terminate()`` / ``kill()`` stop the child. Callbacks run
    on a daemon watcher thread; an exception in a callback is reported on stderr and ignored.
    """

    def __init__(
        self, popen: subprocess.Popen[str], progress: ProgressFn | None, on_done: DoneFn | None
    ) -> None:
        self._popen = popen
        self._progress = progress
        self._on_done = on_done
        self._tail: deque[str] = deque(maxlen=20)
        self._finished = threading.Event()
        self.ok: bool | None = None
        self.message = ""
        self._watcher = threading.Thread(target=self._watch, name="numba-warm-up", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._finished.is_set() else None

    @property
    def done(self) -> bool:
        """True once the child has exited and ``on_done`` has been called."""
        return self._finished.is_set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._finished.wait(timeout):
            raise subprocess.TimeoutExpired(self._popen.args, timeout or 0.0)
        return int(self._popen.returncode)

    def terminate(self) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()

    def _call(self, fn: Callable[..., None] | None, *args: object) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # a failing listener must not kill the watcher
            print(f"seedplan: warm-up callback failed: {exc!r}", file=sys.stderr)

    def _watch(self) -> None:
        try:
            self._read_output()
            rc = self._popen.wait()
        except Exception as exc:  # the pipe broke: judge by the exit status alone
            self._tail.append(f"warm-up output unreadable: {exc!r}")
            rc = self._popen.wait()
        self.ok = rc == 0
        if self.ok:
            self.message = "dose kernels compiled"
        else:
            detail = " | ".join(list(self._tail)[-3:]) or "no output"
            self.message = f"dose kernel warm-up failed (exit status {rc}): {detail}"
        self._call(self._on_done, self.ok, self.message)
        self._finished.set()

    def _read_output(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            text = line.rstrip("\n")
            tag, _, rest = text.partition(" ")
            if tag == _PROGRESS_TAG:
                frac, _, msg = rest.partition(" ")
                try:
                    fraction = float(frac)
                except ValueError:
                    fraction = 0.0
                self._call(self._progress, min(1.0, max(0.0, fraction)), msg)
            elif text.strip():
                self._tail.append(text)
        self._popen.stdout.close()


def warm_up_in_subprocess(
    models: Sequence[str] = ("6711",),
    *,
    also: Sequence[str] = (),
    progress: ProgressFn | None = None,
    on_done: DoneFn | None = None,
) -> WarmUpProcess:
    """Start a background Python that compiles the kernels into numba's disk cache; returns at
    once with a :class:`WarmUpProcess` handle (see the module docstring for how to learn that
    it finished: ``on_done``, ``poll()``/``done`` or ``wait()``). ``also``: more compile steps,
    ``"package.module:function"`` each (module docstring)."""
    for name in also:
        if not all(name.partition(":")[::2]):
            raise ValueError(f"warm-up step {name!r}: expected 'package.module:function'")
    code = (
        f"from dose.engine.warmup import _child_main; _child_main({list(models)!r}, {list(also)!r})"
    )
    env = dict(os.environ)
    root = str(_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    popen = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe, always drained by the watcher: no deadlock
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    return WarmUpProcess(popen, progress, on_done)
