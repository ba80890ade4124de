"""``seedplan gui PLAN --postop POSTOP_CT`` without ``--screenshot`` (app/gui/postop/launch.py):
the post-op window opens on the post-op CT once the plan, which is set on the session after its
CT, is there; without a plan it says that one is needed and opens nothing."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

import app.gui.postop.launch as launch
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from tests.gui.inner._helpers import settle, wait_until


def _window(tmp_path: Path) -> MainWindow:
    window = MainWindow(settings=Settings(tmp_path / "seedplan.ini"), interactive=False)
    window.resize(1000, 700)
    window.show()
    settle()
    return window


def test_the_postop_window_opens_once_the_plan_is_loaded(
    gui_app: QApplication, demo_case_dir: Path, tmp_path: Path
) -> None:
    window = _window(tmp_path)
    try:
        window.open_path(demo_case_dir / "plan.seedplan")
        assert window.session.document is None  # the plan loads in the background
        launch.open_postop_once_planned(window, demo_case_dir / "postop", size=(1500, 1000))
        wait_until(lambda: window.workflow.postop_window is not None, 120.0)  # type: ignore[attr-defined]
        pw = window.workflow.postop_window  # type: ignore[attr-defined]
        wait_until(lambda: pw.postop_ct is not None and not pw.runner.busy, 120.0)
        assert window.session.document is not None
        assert pw.isVisible() and (pw.width(), pw.height()) == (1500, 1000)
        assert pw.postop_ct.hu.shape[0] == 52  # the demo's day-0 CT: 52 slices
    finally:
        window.close()
        settle()


def test_without_a_plan_nothing_opens(
    gui_app: QApplication, demo_case_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(launch, "PLAN_WAIT_S", 0.5)
    window = _window(tmp_path)
    said: list[str] = []
    try:
        assert (
            launch.open_postop_at_start(window, demo_case_dir / "postop", done=said.append) is None
        )
        assert said and "needs a plan" in said[0]
        launch.open_postop_once_planned(window, demo_case_dir / "postop")
        end = time.monotonic() + 2.0  # past PLAN_WAIT_S: it has given up
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.05)
        assert window.workflow.postop_window is None  # type: ignore[attr-defined]
    finally:
        window.close()
        settle()
