"""One progress and cancel contract for all long work (CT loading, dose, planning, detection).

Every long function takes keyword arguments ``progress`` and ``cancel``, both optional:

- ``progress(fraction, message)``: ``fraction`` in [0, 1] of the whole call, ``message`` a short
  human-readable phase ("reading slices", "dose grid"); called from the worker's thread.
- ``cancel()``: returns True when the user asked to stop; the function then raises
  :class:`Cancelled` at its next check and leaves its inputs unchanged.

:func:`sub_progress` maps a sub-task's [0, 1] onto a slice of the caller's range.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CancelFn", "Cancelled", "ProgressFn", "check_cancelled", "report", "sub_progress"]

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):  # noqa: N818 (a cancellation, not an error)
    """The user cancelled long work; nothing was changed."""


def check_cancelled(cancel: CancelFn | None, what: str = "cancelled") -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled(what)


def report(progress: ProgressFn | None, fraction: float, message: str = "") -> None:
    """Call ``progress`` (if any) with ``fraction`` clipped to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def sub_progress(progress: ProgressFn | None, start: float, stop: float) -> ProgressFn | None:
    """A progress function whose [0, 1] covers [start, stop] of ``progress``."""
    if progress is None:
        return None
    span = stop - start

    def inner(fraction: float, message: str = "") -> None:
        progress(start + span * min(1.0, max(0.0, float(fraction))), message)

    return inner
