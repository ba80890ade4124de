"""``seedplan gui [PATH] --postop POSTOP_CT``: open the post-op window on a CT at start-up.

Once the plan is on the main window (the demo plan without PATH), the post-op verification
window opens and loads ``POSTOP_CT``. With ``--screenshot`` it then runs *Detect & verify*
and the screenshot is of the post-op window (its slice view composited in), which is how the
README's post-op picture is made (``make screenshot``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.gui.screenshot import grab_composited, save_png

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.postop.window import PostopWindow

__all__ = ["PLAN_WAIT_S", "POSTOP_WAIT_S", "open_postop_at_start", "open_postop_once_planned"]

#: ``--screenshot --postop`` waits at most this long for the loading and the verification.
POSTOP_WAIT_S = 600.0
_POLL_MS = 200
#: How long the window waits for the plan after its CT is shown (a plan is set on the session
#: after its CT; the demo's a few hundred ms later).
PLAN_WAIT_S = 30.0


def open_postop_once_planned(
    window: MainWindow, postop_ct: Path, *, size: tuple[int, int] | None = None
) -> None:
    """:func:`open_postop_at_start` once ``window`` has a plan (polled; at most
    ``PLAN_WAIT_S`` without a dialog open, such as the offer to recover unsaved changes: then
    it is called anyway, and says that a plan is needed)."""
    deadline = [time.monotonic() + PLAN_WAIT_S]

    def poll() -> None:
        if window.session.document is None:
            if QApplication.activeModalWidget() is not None:  # the user is asked something
                deadline[0] = time.monotonic() + PLAN_WAIT_S
            if time.monotonic() < deadline[0]:
                QTimer.singleShot(_POLL_MS, poll)
                return
        open_postop_at_start(window, postop_ct, size=size)

    QTimer.singleShot(0, poll)


def open_postop_at_start(
    window: MainWindow,
    postop_ct: Path,
    *,
    screenshot: Path | None = None,
    size: tuple[int, int] | None = None,
    done: Callable[[str], None] | None = None,
) -> PostopWindow | None:
    """Open the post-op window of ``window`` (which has a plan) on ``postop_ct``, ``size``
    (width, height) pixels when given.

    With ``screenshot``: verify, save the post-op window as PNG, then ``done("")``; on any
    failure ``done(message)`` with one line naming the problem. Returns the post-op window
    (None, with ``done`` called, when the main window has no plan)."""
    report = done or (lambda _message: None)
    pw = window.workflow.open_postop()  # type: ignore[attr-defined]
    if pw is None:
        report("--postop needs a plan: open a plan (or the demo case, without PATH)")
        return None
    if size is not None:
        pw.resize(*size)
    if screenshot is None:
        pw.open_postop(str(postop_ct))
        return pw
    deadline = time.monotonic() + POSTOP_WAIT_S
    state = {"verifying": False, "over": False}

    def finish(message: str) -> None:
        if state["over"]:
            return
        state["over"] = True
        if not message:
            try:
                save_png(grab_composited(pw, [pw.view]), screenshot)
            except OSError as exc:
                message = str(exc)
        report(message)

    pw.runner.failed.connect(finish)
    pw.runner.cancelled.connect(lambda: finish("the post-op work was cancelled"))

    def poll() -> None:
        if state["over"]:
            return
        if time.monotonic() > deadline:
            finish(f"{postop_ct}: the verification did not finish within {POSTOP_WAIT_S:.0f} s")
            return
        idle = not pw.runner.busy and not pw._reverify_timer.isActive()
        if idle and pw.postop_ct is not None and not state["verifying"]:
            state["verifying"] = True
            if not pw.run_verification():
                finish(f"{postop_ct}: {pw.runner.label.text()}")
                return
        elif idle and state["verifying"] and pw.review is not None:
            QTimer.singleShot(300, lambda: finish(""))  # let the table and views repaint
            return
        QTimer.singleShot(_POLL_MS, poll)

    pw.open_postop(str(postop_ct))
    QTimer.singleShot(_POLL_MS, poll)
    return pw
