"""Fixtures for window tests; this folder only runs in a child process (see ../conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.gui.main import create_application
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from app.gui.vtk_bridge import VTKWidget
from tests.gui.conftest import DEMO_ENV
from tests.gui.inner._helpers import settle, wait_until

LOAD_TIMEOUT_S = 90.0


@pytest.fixture(scope="session")
def gui_app() -> QApplication:
    """SeedPlan's QApplication (theme included); pytest-qt's ``qapp`` reuses it."""
    return create_application()


@pytest.fixture(autouse=True, scope="module")
def _no_unfinalized_render_windows(gui_app: QApplication) -> Iterator[None]:
    """Every window a test module opened must be closed (and its VTK views finalized)."""
    before = set(map(id, VTKWidget.unfinalized_instances()))
    yield
    settle()
    leaked = [w.objectName() for w in VTKWidget.unfinalized_instances() if id(w) not in before]
    assert not leaked, f"VTK views left open (close their window): {leaked}"


@pytest.fixture(scope="session")
def demo_ct() -> Path:
    path = os.environ.get(DEMO_ENV)
    if not path:
        pytest.fail(f"{DEMO_ENV} not set: run these tests through tests/gui/test_gui_suite.py")
    return Path(path)


def open_window(
    tmp: Path, path: Path | None = None, *, size: tuple[int, int] = (1200, 800)
) -> MainWindow:
    """A shown main window with its settings in ``tmp``; loads ``path`` and waits."""
    window = MainWindow(settings=Settings(tmp / "seedplan.ini"))
    window.resize(*size)
    window.show()
    settle()
    if path is not None:
        done: list[object] = []
        window.loaded.connect(done.append)
        window.load_failed.connect(done.append)
        window.open_path(path)
        wait_until(lambda: bool(done), LOAD_TIMEOUT_S)
        assert window.session.volume is not None, f"loading {path} failed: {done}"
        settle()
    return window


@pytest.fixture(scope="module")
def demo_window(
    gui_app: QApplication, demo_ct: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    """One window per module with the demo case loaded (loading is the slow part)."""
    window = open_window(tmp_path_factory.mktemp("settings"), demo_ct)
    yield window
    window.close()
    settle()
