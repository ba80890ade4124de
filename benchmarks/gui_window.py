"""What the window benchmarks share (``bench_brush``, ``bench_drag``): a real main window, real
mouse events, and timing of one event end to end.

End to end means: the mouse event is delivered through Qt to the view (its tools, the model,
the layers), then ``QApplication.processEvents()`` runs until no view asked for another
render, so every render the event caused (Qt paint events of the VTK views, other widgets'
repaints) is inside the time. :func:`timed_event` returns the wall time, the process CPU time
(llvmpipe's threads are in this process, the X server is not) and how many times each VTK view
rendered.

The window is 1400 × 900 (each 2-D view about 500 × 390 px): on a machine without a GPU (Xvfb +
Mesa llvmpipe, as CI) the render time grows with the pixels of the views redrawn.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "WINDOW_SIZE",
    "EventTimes",
    "load_average",
    "make_window",
    "mouse_event",
    "pump",
    "set_legacy_rendering",
    "summary",
    "timed_event",
]

WINDOW_SIZE = (1400, 900)


@dataclass
class EventTimes:
    """Per event: wall seconds, CPU seconds, renders per view name."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    renders: list[dict[str, int]] = field(default_factory=list)

    def add(self, wall: float, cpu: float, renders: dict[str, int]) -> None:
        self.wall_s.append(wall)
        self.cpu_s.append(cpu)
        self.renders.append(renders)

    def mean_renders(self) -> dict[str, float]:
        names = sorted({k for r in self.renders for k in r})
        n = max(1, len(self.renders))
        return {k: sum(r.get(k, 0) for r in self.renders) / n for k in names}


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def make_window() -> Any:
    """A shown, non-interactive main window of :data:`WINDOW_SIZE`, settled."""
    from PySide6.QtWidgets import QApplication

    from app.gui.main import create_application
    from app.gui.main_window import MainWindow

    app = QApplication.instance() or create_application()
    window = MainWindow(interactive=False)
    window.resize(*WINDOW_SIZE)
    window.show()
    pump(app)
    return window


def pump(app: Any = None, turns: int = 20) -> None:
    from PySide6.QtWidgets import QApplication

    app = app or QApplication.instance()
    for _ in range(turns):
        app.processEvents()


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def set_legacy_rendering(window: Any, on: bool) -> None:
    """Switch the window's views to the previous rendering (the baseline) or back."""
    from app.gui.vtk_bridge import VTKWidget

    VTKWidget.legacy_rendering = on
    for view in window.vtk_views:
        rw = view.GetRenderWindow()
        if on:
            rw.SetFrameBlitModeToBlitToHardware()
        else:
            rw.SetFrameBlitModeToBlitToCurrent()


def mouse_event(widget: Any, kind: str, x: float, y: float, held: bool = True) -> None:
    """Deliver a left-button mouse event (``press``, ``move``, ``release``) through Qt."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    types = {
        "press": QEvent.Type.MouseButtonPress,
        "move": QEvent.Type.MouseMove,
        "release": QEvent.Type.MouseButtonRelease,
    }
    left = Qt.MouseButton.LeftButton
    button = Qt.MouseButton.NoButton if kind == "move" else left
    buttons = left if held and kind != "release" else Qt.MouseButton.NoButton
    pos = QPointF(x, y)
    event = QMouseEvent(
        types[kind], pos, widget.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, event)


def timed_event(window: Any, deliver: Callable[[], None], times: EventTimes) -> None:
    """Time ``deliver()`` and every render it causes (module docstring)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    views = {v.objectName(): v for v in window.vtk_views}
    before = {k: v.render_count for k, v in views.items()}
    c0 = time.process_time()
    t0 = time.perf_counter()
    deliver()
    app.processEvents()
    app.processEvents()  # a paint that posted another update (none expected) runs here
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    times.add(wall, cpu, {k: v.render_count - before[k] for k, v in views.items()})


def summary(times: EventTimes) -> dict[str, float]:
    """Median and 95th percentile (s) of wall and CPU time."""
    wall, cpu = np.asarray(times.wall_s), np.asarray(times.cpu_s)
    return {
        "median_s": float(statistics.median(wall)),
        "p95_s": float(np.percentile(wall, 95)),
        "cpu_median_s": float(statistics.median(cpu)),
        "cpu_p95_s": float(np.percentile(cpu, 95)),
    }
