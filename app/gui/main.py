"""QApplication set-up for SeedPlan: dark clinical theme, exception → dialog, window start-up."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

__all__ = ["apply_dark_theme", "create_application", "install_exception_hook", "run_gui"]

_STYLE_SHEET = """
QMainWindow, QDialog { background: #16181d; }
#header_bar { background: #20242c; border-bottom: 1px solid #3a4150; }
#header_bar QLabel { color: #e6e9ef; font-size: 10.5pt; }
#patient_label { color: #ffffff; }
#warning_label { color: #1b1b1b; background: #f0b429; border: none; border-radius: 3px;
                 padding: 2px 8px; font-weight: bold; }
QStatusBar { background: #20242c; color: #d8dce4; border-top: 1px solid #3a4150; }
QStatusBar QLabel { color: #d8dce4; font-family: "DejaVu Sans Mono", monospace; padding: 0 6px; }
QToolBar { background: #1c1f26; border-bottom: 1px solid #2c313c; spacing: 6px; }
QToolBar QLabel { color: #aab2c0; }
#hint_label { color: #7f8898; }
QPushButton { background: #2b303b; color: #e6e9ef; border: 1px solid #465064;
              border-radius: 3px; padding: 3px 12px; }
QPushButton:hover { background: #353c4a; }
QPushButton:pressed { background: #3f6fb0; }
QPushButton:disabled { background: #22262e; color: #6b7280; border-color: #353b48; }
QProgressBar { border: 1px solid #465064; border-radius: 3px; background: #15171c;
               color: #e6e9ef; text-align: center; height: 14px; }
QProgressBar::chunk { background: #3f83d8; }
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette (low glare in a dim planning room)."""
    app.setStyle("Fusion")
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1c1f26",
        QPalette.ColorRole.WindowText: "#e6e9ef",
        QPalette.ColorRole.Base: "#15171c",
        QPalette.ColorRole.AlternateBase: "#20242c",
        QPalette.ColorRole.ToolTipBase: "#2b303b",
        QPalette.ColorRole.ToolTipText: "#e6e9ef",
        QPalette.ColorRole.Text: "#e6e9ef",
        QPalette.ColorRole.Button: "#2b303b",
        QPalette.ColorRole.ButtonText: "#e6e9ef",
        QPalette.ColorRole.BrightText: "#ff5555",
        QPalette.ColorRole.Highlight: "#3f83d8",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6fa8ff",
        QPalette.ColorRole.PlaceholderText: "#7f8898",
    }
    for role, value in colors.items():
        palette.setColor(role, QColor(value))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7280"))
    app.setPalette(palette)
    app.setStyleSheet(_STYLE_SHEET)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, e.g. under pytest-qt)."""
    from app.gui.pyside_refcounts import protect_singletons

    protect_singletons()  # PySide6 6.12 on Python 3.11 loses references to None/True
    app = QApplication.instance()
    if app is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("SeedPlan")
    app.setOrganizationName("SeedPlan")
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 9.5))
    app.setFont(font)
    apply_dark_theme(app)
    from app.gui.vtk_bridge import VTKWidget

    # A window deleted without being closed still releases its OpenGL windows before exit.
    app.aboutToQuit.connect(VTKWidget.finalize_all)
    return app


def install_exception_hook(
    parent: Callable[[], QWidget | None], *, on_error: Callable[[str], None] | None = None
) -> None:
    """Show uncaught exceptions (from slots and callbacks) in a dialog instead of dying.

    The traceback still goes to stderr. ``parent()`` returns the window to attach the dialog to.
    With ``on_error`` (no user to click a dialog: ``--screenshot``) it is called with one line
    instead of showing the dialog.
    """
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(text)
        # A model listener that failed arrives wrapped (planner.session.evented): name the cause.
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        summary = f"{type(cause).__name__}: {cause}"
        if on_error is not None:
            on_error(summary)
            return
        if QApplication.instance() is None:
            return
        box = QMessageBox(parent())
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("SeedPlan: unexpected error")
        box.setText(summary)
        box.setInformativeText("The operation was abandoned. Please report this problem.")
        box.setDetailedText(text)
        box.exec()

    sys.excepthook = hook


def run_gui(
    path: Path | None,
    *,
    series_uid: str | None = None,
    screenshot: Path | None = None,
    size: tuple[int, int] | None = None,
    postop: Path | None = None,
) -> int:
    """Open the main window on ``path`` (``None``: the demo case) and run the event loop.

    With ``screenshot``: no dialogs; load, render, save the window as PNG and return 0, or
    raise :class:`dose.errors.InputError` when loading failed (the CLI turns it into exit 2).
    With ``postop`` (a post-op CT): the post-op window opens on it once the plan is loaded
    (:mod:`app.gui.postop.launch`); with ``screenshot`` too, it verifies and the PNG is of the
    post-op window.
    """
    from app.gui.main_window import MainWindow
    from dose.errors import InputError

    app = create_application()
    window = MainWindow(interactive=screenshot is None)
    outcome: dict[str, object] = {}

    def unexpected(summary: str) -> None:  # --screenshot: no dialog, exit status 1 (a bug)
        outcome.setdefault("unexpected", summary)
        window.close()
        app.quit()

    install_exception_hook(lambda: window, on_error=unexpected if screenshot else None)
    if size is not None:
        window.resize(*size)
    elif screenshot is not None:
        window.resize(1280, 800)

    if screenshot is not None:

        def grab_and_quit(_path: object = None) -> None:
            # Let pending resizes and repaints settle, then render and grab.
            def finish() -> None:
                try:
                    window.save_screenshot(screenshot)
                except OSError as exc:
                    outcome["error"] = str(exc)
                window.close()
                app.quit()

            def postop_done(message: str) -> None:
                if message:
                    outcome["error"] = message
                window.close()
                app.quit()

            def dose_ready(note: str) -> None:
                if note:
                    sys.stderr.write(f"seedplan gui: {note}\n")
                if postop is not None:
                    from app.gui.postop.launch import open_postop_at_start

                    open_postop_at_start(
                        window, postop, screenshot=screenshot, size=size, done=postop_done
                    )
                    return
                QTimer.singleShot(150, finish)

            # A plan's isodoses appear once the dose engine is ready: wait for them (bounded).
            from app.gui.screenshot import when_dose_drawn

            when_dose_drawn(window, dose_ready)

        def failed(message: str) -> None:
            outcome["error"] = message
            window.close()
            app.quit()

        window.loaded.connect(grab_and_quit)
        window.load_failed.connect(failed)

    elif postop is not None:
        opened: list[bool] = []

        def show_postop(_path: object = None) -> None:
            if not opened:  # the first case loaded (opening another later does not reopen)
                opened.append(True)
                from app.gui.postop.launch import open_postop_once_planned

                open_postop_once_planned(window, postop, size=size)

        window.loaded.connect(show_postop)

    if os.environ.get("SEEDPLAN_TIMING"):

        def rendered(_path: object) -> None:
            for view in window.vtk_views:
                view.render_now()
            _report_timing("demo/CT loaded and all four views rendered")

        window.loaded.connect(rendered)
    if screenshot is None:
        # Compile the dose kernels in a child process (app.gui.dose_warmup) once the first case
        # is on screen (or after 30 s), so the compile never competes with showing the window.
        def warm_up(_arg: object = None) -> None:
            window.start_dose_warm_up()

        window.loaded.connect(warm_up)
        window.load_failed.connect(warm_up)
        QTimer.singleShot(30_000, warm_up)  # a cancelled first load emits neither
        if os.environ.get("SEEDPLAN_TIMING"):
            reported: set[str] = set()

            def engine_timing(state: str, _message: str) -> None:
                if state not in reported:
                    reported.add(state)
                    _report_timing(f"dose engine {state}")

            window.dose_engine.state_changed.connect(engine_timing)
    # Start loading before show(): the worker's imports and file reading overlap with the
    # creation of the OpenGL windows.
    if path is None:
        window.open_demo()
    else:
        window.open_path(path, series_uid=series_uid)
    window.show()
    if os.environ.get("SEEDPLAN_TIMING"):
        _report_timing("window shown")
    status = app.exec()
    if "unexpected" in outcome:
        sys.stderr.write(f"seedplan gui: unexpected error: {outcome['unexpected']}\n")
        return 1
    if "error" in outcome:
        raise InputError(str(outcome["error"]))  # the message already names the file
    return int(status)


def seconds_since_process_start() -> float:
    """Wall-clock seconds since this process started (Linux /proc; NaN elsewhere)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _report_timing(what: str) -> None:
    sys.stderr.write(f"seedplan timing: {what} {seconds_since_process_start():.2f} s after start\n")
