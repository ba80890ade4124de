# ruff: noqa: N802  (Qt method names: closeEvent)
"""SeedPlan's main window: patient header, four linked views, status bar with LPS/HU readout.

The window composes the parts and observes a Qt-free :class:`~planner.session.session.Session`:

* :mod:`app.gui.panels.header_bar` — patient identification, series geometry, import warnings;
* :mod:`app.gui.views.view_grid` — the axial, sagittal, coronal and 3-D views, each drawing
  through its layer adapters (:mod:`app.gui.layers`);
* :mod:`app.gui.panels.status_panel` — readouts, load progress, dose engine warm-up;
* :mod:`app.gui.dialogs` — series chooser and import report.

Opening runs :func:`planner.open_case.open_case_or_choose` (the same function the command line
uses) on a worker thread (:mod:`app.gui.workers`); the result is handed to the session on the
GUI thread. Every failure the user can cause (missing path, broken or non-CT files, refused
geometry) ends in a dialog, never a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QCloseEvent, QImage
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs.import_report import ImportReportDialog, import_report_text
from app.gui.dialogs.series_chooser import SeriesChooserDialog
from app.gui.dose_warmup import DoseEngineWarmUp
from app.gui.layers.base import Subscriptions
from app.gui.panels.header_bar import HeaderBar
from app.gui.panels.menus import WindowMenus
from app.gui.panels.status_panel import StatusPanel
from app.gui.planning_ui import install_planning_ui
from app.gui.screenshot import grab_composited, save_png
from app.gui.settings import Settings
from app.gui.views.slice_view import SliceView
from app.gui.views.view_grid import ViewGrid
from app.gui.views.vtk_data import prepare_display
from app.gui.vtk_bridge import VTKWidget
from app.gui.workers import Worker, start_worker
from app.gui.workflow_ui import install_workflow_ui
from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn
from planner.open_case import OpenedCase, SeriesChoice, open_case_or_choose
from planner.session.session import Session

__all__ = ["MainWindow", "SeriesChooserDialog"]

APP_TITLE = "SeedPlan"


class MainWindow(QMainWindow):
    """Signals: ``loaded(path)`` after a volume is shown; ``load_failed(message)``."""

    loaded = Signal(object)
    load_failed = Signal(str)

    def __init__(
        self,
        session: Session | None = None,
        settings: Settings | None = None,
        *,
        interactive: bool = True,
    ) -> None:
        super().__init__()
        self.session = session or Session()
        self.settings = settings or Settings()
        #: False in --screenshot mode: errors are reported by signal, not by a modal dialog.
        self.interactive = interactive
        self._worker: Worker | None = None
        self._closing = False
        #: Import report of the last refused load (shown by File → Import report).
        self.failed_report_lines: list[str] = []
        self.setWindowTitle(APP_TITLE)
        self.setObjectName("main_window")

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.header = HeaderBar()
        self.header.warning_label.clicked.connect(self.show_import_report)
        outer.addWidget(self.header)
        self.view_grid = ViewGrid(self.session)
        outer.addWidget(self.view_grid, 1)
        self.setCentralWidget(central)
        self.axial_view = self.view_grid.axial_view
        self.sagittal_view = self.view_grid.sagittal_view
        self.coronal_view = self.view_grid.coronal_view
        self.volume_view = self.view_grid.volume_view

        self.status = StatusPanel(self.statusBar())
        self.status.cancel_button.clicked.connect(self.cancel_load)
        self.probe_label = self.status.probe_label
        self.crosshair_label = self.status.crosshair_label
        self.progress_bar = self.status.progress_bar
        self.progress_label = self.status.progress_label
        self.cancel_button = self.status.cancel_button
        self.dose_engine = DoseEngineWarmUp(self)
        self.dose_engine.state_changed.connect(self.status.set_engine_state)

        for view in self.slice_views:
            view.probe.connect(self.status.show_probe)
        self._subscriptions = Subscriptions()
        self._subscriptions.listen(self.session.volume_changed, self._on_volume_changed)
        self._subscriptions.listen(self.session.crosshair_changed, self._on_crosshair_changed)
        self.menus = WindowMenus(self)
        self.preset_actions = self.menus.preset_actions
        # The planning and workflow parts install their own layers, tools, docks and menus;
        # they listen to self.session (document_changed) and need nothing else from here.
        install_planning_ui(self)
        install_workflow_ui(self)
        self.resize(1400, 900)
        self._on_volume_changed()

    # ------------------------------------------------------------------ parts
    @property
    def slice_views(self) -> tuple[SliceView, SliceView, SliceView]:
        return self.view_grid.slice_views

    @property
    def vtk_views(self) -> tuple[VTKWidget, ...]:
        return (*self.slice_views, self.volume_view)

    @property
    def maximized_view(self) -> QWidget | None:
        return self.view_grid.maximized_view

    def toggle_maximized(self, view: QWidget) -> None:
        self.view_grid.toggle_maximized(view)

    def start_dose_warm_up(self) -> None:
        """Compile the dose kernels off-process (``seedplan gui`` calls it once shown)."""
        self.dose_engine.start()

    # ------------------------------------------------------------------ opening
    def open_path(self, path: Path | str, *, series_uid: str | None = None) -> None:
        """Open a DICOM folder, an image file or a demo case in the background."""
        path = Path(path).expanduser()
        if self._worker is not None:
            self._error("Busy", "A load is already running; cancel it first.")
            return
        if not path.exists():
            self._fail(f"{path}: no such file or folder")
            return

        def task(progress: ProgressFn, cancel: CancelFn) -> OpenedCase | SeriesChoice:
            result = open_case_or_choose(
                path, series_uid=series_uid, progress=progress, cancel=cancel
            )
            if isinstance(result, OpenedCase):
                progress(1.0, "Preparing the 3-D view…")
                prepare_display(result.volume)  # numpy only: off the GUI thread
            return result

        self._start(task, f"Opening {path.name}…", self._on_opened)

    def _on_opened(self, result: OpenedCase | SeriesChoice) -> None:
        if isinstance(result, OpenedCase):
            self._on_loaded(result)
            return
        cts = result.scan.ct_series()
        if not cts:
            self._fail(result.no_ct_message())
            return
        key = cts[0].key
        # Non-interactive (--screenshot): the largest CT series, like the command line.
        if len(result.scan.series) > 1 and self.interactive:
            dialog = SeriesChooserDialog(result.scan, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                self.statusBar().showMessage("Open cancelled", 4000)
                return
            key = dialog.selected_key() or key
        self.open_path(result.path, series_uid=key)

    def open_demo(self) -> None:
        """Generate the demo case on first use (user cache) and open it."""

        def task(progress: ProgressFn, cancel: CancelFn) -> Path:
            from planner.demo.case import ensure_demo_case

            progress(0.0, "Preparing the demo case…")
            return Path(ensure_demo_case(progress=progress))

        if self._worker is None:
            self._start(task, "Preparing the demo case…", self.open_path)

    def _start(
        self, task: Callable[..., Any], message: str, on_done: Callable[[Any], None]
    ) -> None:
        self.status.set_busy(True, message)
        self._worker = start_worker(
            task,
            on_finished=lambda result: self._finish(on_done, result),
            on_failed=self._on_worker_failed,
            on_progress=self.status.set_progress,
            on_cancelled=self._on_cancelled,
            cancel_exceptions=(Cancelled,),
            parent=self,
        )

    def _finish(self, on_done: Callable[[Any], None], result: Any) -> None:
        self._worker = None
        self.status.set_busy(False)
        if not self._closing:
            on_done(result)

    def cancel_load(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.progress_label.setText("Cancelling…")

    def _on_cancelled(self) -> None:
        self._worker = None
        self.status.set_busy(False)
        self.statusBar().showMessage("Loading cancelled", 5000)

    def _on_worker_failed(self, exc: BaseException) -> None:
        self._worker = None
        self.status.set_busy(False)
        report = getattr(exc, "report", None)  # CTImportError carries the full import report
        self.failed_report_lines = list(report.lines()) if report is not None else []
        if isinstance(exc, InputError | OSError | ValueError):
            text = str(exc)
            if isinstance(exc, OSError) and exc.filename:
                text = f"{exc.filename}: {exc.strerror or exc}"
            hint = "The full import report is under File → Import report."
            self._fail(text, hint=hint if self.failed_report_lines else "")
        else:
            self._fail(f"Unexpected error while loading: {type(exc).__name__}: {exc}")

    def _on_loaded(self, case: OpenedCase) -> None:
        self.session.set_case(case)
        with contextlib.suppress(OSError):  # an unwritable config must not stop the viewer
            self.settings.add_recent(case.source_path)
        self.loaded.emit(case.source_path)

    def _fail(self, message: str, *, hint: str = "") -> None:
        """Report a failed open: status bar, ``load_failed`` (one line), and a dialog."""
        self.statusBar().showMessage(message, 10000)
        self.load_failed.emit(message)
        self._error("Cannot open", f"{message}\n\n{hint}" if hint else message)

    def _error(self, title: str, message: str) -> None:
        if self.interactive and not self._closing:
            QMessageBox.critical(self, title, message)

    # ------------------------------------------------------------------ dialogs
    def _ask_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if folder:
            self.open_path(folder)

    def _ask_open_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self,
            "Open a CT image file",
            "",
            "CT images (*.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr);;All files (*)",
        )
        if file:
            self.open_path(file)

    def import_report_text(self) -> str:
        volume = self.session.volume
        warnings = list(volume.warnings) if volume is not None else []
        return import_report_text(warnings, self.session.report_lines, self.failed_report_lines)

    def show_import_report(self) -> None:
        """Every warning, then the full import report (one click from the header's button)."""
        ImportReportDialog(self.import_report_text(), self).exec()

    def _ask_screenshot(self) -> None:
        file, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", "seedplan.png", "PNG (*.png)"
        )
        if file:
            self.save_screenshot(Path(file))

    def _about(self) -> None:
        from app import __version__

        QMessageBox.about(
            self,
            "About SeedPlan",
            f"SeedPlan {__version__}\nPlanning for CT-guided permanent I-125 seed implants.\n"
            "Coordinates: DICOM patient (LPS), mm.",
        )

    # ------------------------------------------------------------------ model → window
    def _on_volume_changed(self) -> None:
        volume = self.session.volume
        self.header.set_volume(volume)
        self.menus.fill_structures_menu()
        if volume is None:
            self.setWindowTitle(APP_TITLE)
            self.status.show_probe(None, float("nan"))
            self.status.show_crosshair(None, float("nan"))
            return
        name = volume.info.patient_name.replace("^", ", ") or "(no name)"
        self.setWindowTitle(f"{APP_TITLE} — {name} ({volume.info.patient_id or 'no ID'})")
        self._on_crosshair_changed(self.session.crosshair_mm)

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        self.status.show_crosshair(xyz_mm, self.session.hu_at(xyz_mm))

    def reset_views(self) -> None:
        for view in self.slice_views:
            view.reset_camera()
        self.volume_view.reset_camera()

    # ------------------------------------------------------------------ output
    def grab_composited(self) -> QImage:
        """The whole window as an image, VTK views included (see :mod:`app.gui.screenshot`)."""
        return grab_composited(self, self.vtk_views)

    def save_screenshot(self, path: Path) -> None:
        """Write the composited window as PNG; raises OSError when it cannot be written."""
        save_png(self.grab_composited(), Path(path))

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, event: QCloseEvent) -> None:
        """Finalize VTK views before Qt destroys the children (teardown-crash mitigation)."""
        if self._closing:
            super().closeEvent(event)
            return
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(5.0)  # loaders check cancel() often; do not exit under them
        self.dose_engine.stop()
        self._subscriptions.close()
        for view in self.vtk_views:
            view.finalize()
        super().closeEvent(event)
        # Leave the event loop a chance to deliver a late worker result harmlessly.
        QTimer.singleShot(0, lambda: None)
