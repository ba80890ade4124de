"""Bad input ends in a dialog (never a crash); series chooser; recent files; clean close."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from app.gui import main_window as main_window_module
from app.gui.main_window import MainWindow
from tests.dicom_builders import write_ct_series, write_junk
from tests.gui.inner._helpers import settle, wait_until
from tests.gui.inner.conftest import open_window


@pytest.fixture
def critical_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record QMessageBox.critical instead of blocking on a modal dialog."""
    calls: list[tuple[str, str]] = []

    def record(parent, title, text, *args, **kwargs):
        calls.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(record))
    return calls


@pytest.fixture(scope="module")
def shared_window(
    gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    window = open_window(tmp_path_factory.mktemp("dialogs"))
    yield window
    window.close()
    settle()


@pytest.fixture
def window(shared_window: MainWindow) -> MainWindow:
    """The shared window, emptied (opening windows is slow with software OpenGL)."""
    shared_window.session.set_volume(None)
    return shared_window


def open_and_wait(window: MainWindow, path: Path) -> object:
    """``open_path`` and wait for ``loaded`` or ``load_failed``; returns what was emitted."""
    outcome: list[object] = []
    window.loaded.connect(outcome.append)
    window.load_failed.connect(outcome.append)
    try:
        window.open_path(path)
        wait_until(lambda: bool(outcome), 60)
    finally:
        window.loaded.disconnect(outcome.append)
        window.load_failed.disconnect(outcome.append)
    settle()
    return outcome[0]


def test_missing_path_shows_dialog(
    window: MainWindow, tmp_path: Path, critical_calls: list
) -> None:
    missing = tmp_path / "nowhere"
    open_and_wait(window, missing)
    assert len(critical_calls) == 1
    assert str(missing) in critical_calls[0][1]
    assert window.session.volume is None


@pytest.mark.parametrize("kind", ["junk_folder", "broken_image_file"])
def test_broken_input_shows_dialog_and_window_survives(
    window: MainWindow, tmp_path: Path, critical_calls: list, kind: str
) -> None:
    if kind == "junk_folder":
        target = tmp_path / "junk"
        for n in range(3):
            write_junk(target / f"IM{n}.dcm")
    else:
        target = tmp_path / "broken.mha"
        target.write_text("ObjectType = Image\nNDims = 3\nthis header is broken\n")
    message = open_and_wait(window, target)
    assert isinstance(message, str) and target.name in message
    assert len(critical_calls) == 1, critical_calls
    assert target.name in critical_calls[0][1]
    assert window.session.volume is None
    assert not window.progress_bar.isVisible()  # busy state cleared
    for view in window.vtk_views:  # views still render (their "no image" state)
        assert view.grab_rgb().shape[0] > 0


def test_series_chooser_opens_the_chosen_series(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, critical_calls: list
) -> None:
    folder = tmp_path / "two-series"
    uid_a, uid_b = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    write_ct_series(folder, n_slices=7, prefix="A", series_uid=uid_a)
    write_ct_series(folder, n_slices=4, prefix="B", series_uid=uid_b)
    shown: list[list[str]] = []

    def choose_smaller(dialog: QDialog) -> int:
        shown.append(list(dialog._keys))
        assert dialog.selected_key() == uid_a  # the largest CT series is preselected
        dialog.table.selectRow(dialog._keys.index(uid_b))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(main_window_module.SeriesChooserDialog, "exec", choose_smaller)
    open_and_wait(window, folder)
    assert not critical_calls, critical_calls
    assert sorted(shown[0]) == [uid_a, uid_b]
    volume = window.session.volume
    assert volume is not None and volume.shape_zyx[0] == 4
    assert volume.info.series_instance_uid == uid_b
    # Recent files remember the folder, most recent first.
    assert window.settings.recent_files()[0] == folder.resolve()


def test_recent_files_persist_in_xdg_config(tmp_path: Path) -> None:
    from app.gui.settings import MAX_RECENT_FILES, Settings, settings_path

    # tests/conftest.py redirects XDG_CONFIG_HOME: the settings file must follow it.
    assert settings_path() == Path(os.environ["XDG_CONFIG_HOME"]) / "seedplan" / "seedplan.ini"
    s = Settings(tmp_path / "a.ini")
    for n in range(MAX_RECENT_FILES + 2):
        s.add_recent(tmp_path / f"f{n}")
    s.add_recent(tmp_path / "f5")  # re-opening moves an entry to the top, no duplicate
    files = Settings(tmp_path / "a.ini").recent_files()
    assert files[0] == (tmp_path / "f5").resolve()
    assert len(files) == MAX_RECENT_FILES and len(set(files)) == MAX_RECENT_FILES


def test_cancel_during_load_leaves_no_error(
    window: MainWindow, demo_ct: Path, critical_calls: list
) -> None:
    window.open_path(demo_ct)
    assert window.cancel_button.isVisible()  # progress bar with cancel while loading
    window.cancel_load()
    wait_until(lambda: window._worker is None, 60)
    settle()
    # Cancelled before the volume arrived (or, on a very fast machine, finished): no dialog.
    assert not critical_calls
    assert not window.progress_bar.isVisible()


def test_close_finalizes_views_and_ignores_late_model_events(
    gui_app: QApplication, tmp_path: Path
) -> None:
    from dose.geometry import GridGeometry
    from planner.imaging.volume import CTVolume

    window = open_window(tmp_path)
    hu = np.random.default_rng(1).normal(0.0, 300.0, (8, 64, 64)).astype(np.int16)
    geometry = GridGeometry.axis_aligned((8, 64, 64), (0.0, 0.0, 0.0), (1.0, 1.0, 2.0))
    window.session.set_volume(CTVolume(hu, geometry))
    settle()
    assert all(view.grab_rgb().std() > 0 for view in window.vtk_views)
    session = window.session
    views = window.vtk_views
    window.close()
    settle()
    assert all(view.is_closed for view in views)
    # The views unsubscribed: driving the model after close touches no dead render window.
    assert len(session.volume_changed) == 0 and len(session.crosshair_changed) == 0
    session.set_crosshair(session.crosshair_mm + np.array([5.0, 0.0, 0.0]))
    session.set_volume(None)
    window.deleteLater()
    settle()


def test_tilted_real_ct_is_flagged_in_the_header(window: MainWindow, critical_calls: list) -> None:
    """UI-4: a resampled gantry-tilt acquisition is warned about prominently, never silently."""
    from tests.conftest import shared_data

    tilted = shared_data("ct-gantry-tilt-ge")
    open_and_wait(window, tilted)
    volume = window.session.volume
    if volume is None:  # the loader may refuse it: then the refusal must be in a dialog
        assert critical_calls and "tilt" in critical_calls[0][1].lower()
        return
    assert not critical_calls
    assert volume.warnings, "a tilted CT must carry a warning"
    assert window.header.warning_label.isVisible()
    assert "tilt" in window.header.warning_label.toolTip().lower()
    assert not window.header.series_label.text().startswith("No image")


def test_uncaught_exception_becomes_a_dialog(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors in slots/callbacks go to a dialog (and stderr) instead of killing the app."""
    import sys

    from app.gui.main import install_exception_hook

    shown: list[tuple[str, str]] = []

    def fake_exec(box: QMessageBox) -> int:
        shown.append((box.windowTitle(), box.text()))
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_exception_hook(lambda: window)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert shown == [("SeedPlan: unexpected error", "RuntimeError: boom in a slot")]
    assert "boom in a slot" in capsys.readouterr().err
