"""The window's default layout: at 1400×900 the 2-D views, the DVH and the metrics table are
readable at once (nothing tabbed behind another, sizes a clinician can read); the user's
arrangement is kept in the settings; View → Reset layout brings the default back.

A blank small CT and a small plan (tests/plan_builders.py): the layout does not depend on the
image, and the docks appear as soon as a plan is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QWidget

from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from tests.gui.inner._helpers import settle, wait_until
from tests.gui.inner._planning import open_plan
from tests.gui.inner.conftest import open_window
from tests.plan_builders import full_plan, small_ct

SIZE = (1400, 900)
RIGHT = Qt.DockWidgetArea.RightDockWidgetArea
LEFT = Qt.DockWidgetArea.LeftDockWidgetArea


def _rect(widget: QWidget, window: MainWindow) -> QRect:
    """``widget``'s rectangle in window coordinates."""
    return QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())


def _docks(window: MainWindow) -> dict[str, QDockWidget]:
    return {"structures": window.structures_panel, **window.planning.docks}


def layout_problems(window: MainWindow) -> list[str]:
    """What keeps the default layout from being readable ([] when it is)."""
    problems = []
    docks = _docks(window)
    for view in (*window.slice_views, window.volume_view):
        if not view.isVisible() or view.width() < 400 or view.height() < 330:
            problems.append(f"{view.objectName()} is {view.width()}×{view.height()} px")
    for key in ("metrics", "dvh", "structures"):
        dock = docks[key]
        if not dock.isVisible() or dock.isFloating() or dock.visibleRegion().isEmpty():
            problems.append(f"{key} dock is not shown")
        if window.dockWidgetArea(dock) != RIGHT:
            problems.append(f"{key} dock is not on the right")
    for a, b in (("metrics", "dvh"), ("structures", "metrics"), ("structures", "dvh")):
        if docks[b] in window.tabifiedDockWidgets(docks[a]):
            problems.append(f"{a} and {b} are tabbed")
    if window.tabifiedDockWidgets(docks["structures"]) != [docks["needles"]]:
        problems.append("structures and needles are not tabbed together")
    canvas = window.planning.dvh_panel.canvas
    if canvas.width() < 380 or canvas.height() < 220:
        problems.append(f"DVH is {canvas.width()}×{canvas.height()} px")
    table = window.planning.metrics_panel.table
    rows = table.viewport().height() // table.verticalHeader().defaultSectionSize()
    if rows < 8:
        problems.append(f"the metrics table shows {rows} rows")
    if docks["structures"].height() < 220:
        problems.append(f"structures dock is {docks['structures'].height()} px high")
    # The views, the metrics and the DVH do not overlap.
    rects = {
        "views": _rect(window.view_grid, window),
        "metrics": _rect(docks["metrics"], window),
        "dvh": _rect(docks["dvh"], window),
        "structures": _rect(docks["structures"], window),
    }
    names = list(rects)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if rects[a].intersects(rects[b]):
                problems.append(f"{a} overlaps {b}")
    return problems


def wait_readable(window: MainWindow) -> None:
    """Until the layout is readable (the docks get their heights once the plan shows them)."""
    with contextlib.suppress(AssertionError):  # the assertion below names what is wrong
        wait_until(lambda: not layout_problems(window), 30.0)
    assert layout_problems(window) == []


def _open_small_plan(window: MainWindow) -> None:
    ct = small_ct(shape=(24, 64, 64), spacing=(1.0, 1.0, 2.5))
    window.session.set_volume(ct)
    open_plan(window, full_plan(ct))


@pytest.fixture(scope="module")
def layout_window(
    gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    window = open_window(tmp_path_factory.mktemp("layout"), size=SIZE)
    _open_small_plan(window)
    yield window
    window.close()
    settle()


def test_default_layout_at_1400x900_shows_views_dvh_and_metrics_at_once(
    layout_window: MainWindow,
) -> None:
    w = layout_window
    assert (w.width(), w.height()) == SIZE, "the window is no wider or taller than asked"
    assert not w.layout_restored
    wait_readable(w)
    action = w.menus.reset_layout_action
    assert action.shortcut().toString() == "Ctrl+Shift+0" and action in w.menus.view_menu.actions()
    panels = [a.text() for a in w.findChild(object, "panels_menu").actions()]
    assert panels == ["Structures", "Needles and seeds", "Dose metrics and goals", "DVH"]


def test_reset_layout_restores_the_default_after_the_docks_were_rearranged(
    layout_window: MainWindow,
) -> None:
    w = layout_window
    docks = _docks(w)
    # The arrangement a clinician complained about: metrics and DVH tabbed, the DVH floating.
    w.tabifyDockWidget(docks["metrics"], docks["dvh"])
    w.resizeDocks([docks["metrics"]], [120], Qt.Orientation.Vertical)
    docks["structures"].setFloating(True)
    settle()
    assert layout_problems(w) != []
    w.menus.reset_layout_action.trigger()
    wait_readable(w)
    assert (w.width(), w.height()) == SIZE


def test_the_arrangement_is_kept_in_the_settings(layout_window: MainWindow) -> None:
    """Runs last: it closes the module's window (the layout is saved when a window closes)."""
    first = layout_window
    settings_path = first.settings.path
    docks = _docks(first)
    first.addDockWidget(LEFT, docks["dvh"])  # the user wants the DVH on the left
    settle()
    assert first.dockWidgetArea(docks["dvh"]) == LEFT
    first.close()
    settle()
    geometry, state = Settings(settings_path).window_layout()
    assert geometry is not None and state is not None
    second = open_window(settings_path.parent, size=SIZE)
    try:
        assert second.layout_restored
        dvh = second.planning.docks["dvh"]
        assert second.dockWidgetArea(dvh) == LEFT
        assert not dvh.isVisible()  # no plan yet: the planning docks wait for one
        _open_small_plan(second)
        wait_until(dvh.isVisible, 10.0)
        assert second.dockWidgetArea(dvh) == LEFT  # where the user put it
        second.menus.reset_layout_action.trigger()
        wait_readable(second)
    finally:
        second.close()
        settle()
    # --screenshot windows (not interactive) always show the default layout (made, not shown).
    shot = MainWindow(settings=Settings(settings_path), interactive=False)
    try:
        assert not shot.layout_restored
        assert shot.dockWidgetArea(shot.planning.docks["dvh"]) == RIGHT
    finally:
        shot.close()
        settle()
