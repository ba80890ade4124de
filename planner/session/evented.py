"""Model events: psygnal signals whose listeners cannot silence each other.

SeedPlan's Qt-free model objects (the session, its view state, the plan document) announce
changes with `psygnal <https://psygnal.readthedocs.io>`_ signals (napari's event library):
bound methods are held by **weak reference** (a deleted view's listener is dropped, nobody
disconnects by hand), payloads are typed, and signals can be blocked or paused.

psygnal stops an emission at the first listener that raises. For a planning system that is the
wrong trade: one broken overlay must not leave the other views showing a stale crosshair or a
stale dose. :class:`Signal` here is ``psygnal.Signal`` with an emission loop that calls *every*
listener, then re-raises the first error (psygnal wraps it in ``psygnal.EmitLoopError``, whose
``__cause__`` is the listener's exception), so the failure is still reported — in the GUI, by the
exception dialog — and never silent. Further errors of the same emission are logged.

Use it exactly like ``psygnal.Signal``::

    class ViewState:
        crosshair_changed = Signal(object)  # (3,) LPS mm

Listeners run synchronously on the emitting thread; the GUI mutates the model only on its own
thread.
"""

from __future__ import annotations

import logging
from typing import Any

import psygnal
from psygnal import EmitLoopError, SignalInstance

__all__ = ["EmitLoopError", "IsolatingSignalInstance", "Signal"]

_log = logging.getLogger(__name__)


class IsolatingSignalInstance(SignalInstance):
    """A psygnal ``SignalInstance`` that calls every listener even when one raises.

    Overrides psygnal's immediate emission loop (the default reemission mode, the only one
    SeedPlan uses). ``tests/test_session.py`` pins this behaviour, so a psygnal release that
    changes the loop fails the suite instead of silently restoring stop-at-first-error.
    """

    def _run_emit_loop_immediate(self) -> None:
        args = self._emit_queue.popleft()
        first: Exception | None = None
        for caller in list(self._slots):
            if not caller._is_alive():  # weakly held object already collected
                continue
            try:
                caller.cb(args)
            except Exception as exc:  # re-raised below, after the others ran
                if first is None:
                    first = exc
                else:
                    _log.error("listener of %s also failed", self.name, exc_info=exc)
        if first is not None:
            raise first


def Signal(*types: Any, **kwargs: Any) -> psygnal.Signal:  # noqa: N802 (reads like psygnal's)
    """``psygnal.Signal(*types, **kwargs)`` whose instances are :class:`IsolatingSignalInstance`.

    (A factory, not a subclass: psygnal's compiled ``Signal`` cannot be subclassed.)
    """
    kwargs.setdefault("signal_instance_class", IsolatingSignalInstance)
    return psygnal.Signal(*types, **kwargs)
