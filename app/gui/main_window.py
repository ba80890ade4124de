# ruff: noqa: N802  (Qt/VTK method names: paintEvent, _getPixelRatio, …)
"""SeedPlan's main window: patient header, four linked views, status bar with HU/LPS readout.

The window observes a Qt-free :class:`~planner.session.session.Session`;
loading (folder scan, CT load,
demo generation) runs on a worker thread through :mod:`app.gui.workers` and the result is handed to
the session on the GUI thread. Every failure the user can cause (missing path, broken or
non-CT files, refused geometry) ends in a dialog, never a crash.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QFontMetrics,
    QImage,
    QKeySequence,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.settings import Settings
from app.gui.views.slice_view import Orientation, SliceView
from app.gui.views.volume_view import VolumeView
from app.gui.vtk_bridge import VTKWidget
from app.gui.workers import Worker, start_worker
from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn
from planner.imaging.volume import CTVolume
from planner.open_case import OpenedCase, SeriesChoice, open_case_or_choose
from planner.session.session import WINDOW_PRESETS, Session

__all__ = ["MainWindow", "SeriesChooserDialog"]

APP_TITLE = "SeedPlan"


# ---------------------------------------------------------------------------------- helpers


def _open_task(path: Path, series_uid: str | None) -> Callable[..., OpenedCase | SeriesChoice]:
    """A Qt-free task for the worker: :func:`planner.open_case.open_case_or_choose`."""

    def task(progress: ProgressFn, cancel: CancelFn) -> OpenedCase | SeriesChoice:
        return open_case_or_choose(path, series_uid=series_uid, progress=progress, cancel=cancel)

    return task


# ---------------------------------------------------------------------------------- widgets


class HeaderBar(QFrame):
    """Always-visible patient identification (IEC 62083 / UI-3) and acquisition warnings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("header_bar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        layout.setSpacing(22)
        self.patient_label = QLabel()
        self.patient_label.setObjectName("patient_label")
        self.id_label = QLabel()
        self.id_label.setObjectName("id_label")
        self.study_label = QLabel()
        self.series_label = QLabel()
        self.plan_label = QLabel()
        # Acquisition warnings (tilt resampled, gaps…): prominent (UI-4), elided to fit, full
        # text in the tooltip; clicking opens the import report.
        self.warning_label = QToolButton()
        self.warning_label.setObjectName("warning_label")
        self.warning_label.setCursor(Qt.CursorShape.PointingHandCursor)
        for w in (self.patient_label, self.id_label, self.study_label, self.series_label):
            layout.addWidget(w)
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The series line takes the room left over (clipped, full text in its tooltip).
        self.series_label.setMinimumWidth(80)
        self.series_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.setStretchFactor(self.series_label, 1)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.plan_label)
        self.set_volume(None)

    def set_volume(self, volume: CTVolume | None) -> None:
        if volume is None:
            self.patient_label.setText("Patient: —")
            self.id_label.setText("ID: —")
            self.study_label.setText("")
            self.series_label.setText("No image loaded")
            self.plan_label.setText("Plan: none")
            self.warning_label.setText("")
            self.warning_label.setVisible(False)
            return
        info = volume.info
        name = (info.patient_name or "(no name)").replace("^", ", ")
        self.patient_label.setText(f"Patient: <b>{name}</b>")
        self.id_label.setText(f"ID: <b>{info.patient_id or '(none)'}</b>")
        self.study_label.setText(f"Study date: {info.study_date or 'unknown'}")
        g = volume.geometry
        nx, ny, nz = g.shape_xyz
        sx, sy, sz = g.spacing_mm
        desc = info.series_description or info.modality or "CT"
        self.series_label.setText(
            f"{desc} · {nx}×{ny}×{nz} · {sx:.2f}×{sy:.2f}×{sz:.2f} mm"
            + ("" if g.is_axis_aligned else " · oblique")
        )
        self.series_label.setToolTip(
            f"{self.series_label.text()}\nSeries UID {info.series_instance_uid}"
        )
        self.plan_label.setText("Plan: none")
        if volume.warnings:
            metrics = QFontMetrics(self.warning_label.font())
            first = metrics.elidedText(volume.warnings[0], Qt.TextElideMode.ElideRight, 330)
            self.warning_label.setText(
                f"⚠ {first}"
                + (f" (+{len(volume.warnings) - 1} more)" if len(volume.warnings) > 1 else "")
            )
            self.warning_label.setToolTip("\n".join(volume.warnings))
            self.warning_label.setVisible(True)
        else:
            self.warning_label.setText("")
            self.warning_label.setVisible(False)


class SeriesChooserDialog(QDialog):
    """Lists every series found in a DICOM folder; only CT series can be chosen."""

    def __init__(self, scan: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.setObjectName("series_chooser")
        self.resize(900, 320)
        layout = QVBoxLayout(self)
        n_skipped = len(getattr(scan, "skipped", []))
        intro = QLabel(
            f"{len(scan.series)} series found in {scan.root}"
            + (f"; {n_skipped} file(s) skipped (see the import report)" if n_skipped else "")
        )
        layout.addWidget(intro)
        self.table = QTableWidget(len(scan.series), 6, self)
        self.table.setHorizontalHeaderLabels(
            ["Modality", "Description", "Size", "Slices", "Orientation", "Series"]
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self._keys: list[str] = []
        largest = scan.largest_ct()
        select_row = 0
        for row, s in enumerate(scan.series):
            size = f"{s.columns}×{s.rows}" if s.rows else "—"
            cells = [s.modality, s.description, size, str(s.n_slices), s.orientation, s.key]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                item.setToolTip(s.summary())
                if not s.is_ct:
                    item.setFlags(Qt.ItemFlag.NoItemFlags)  # listed, not selectable
                self.table.setItem(row, col, item)
            self._keys.append(s.key)
            if largest is not None and s.key == largest.key:
                select_row = row
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectRow(select_row)
        self.table.doubleClicked.connect(self.accept)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def selected_key(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._keys[rows[0].row()] if rows else None


class ViewFrame(QFrame):
    """A thin coloured frame around one view (the colour names the view's crosshair line)."""

    def __init__(self, view: QWidget, rgb: tuple[float, float, float]) -> None:
        super().__init__()
        r, g, b = (int(255 * c) for c in rgb)
        self.setObjectName("view_frame")
        self.setStyleSheet(f"#view_frame {{ border: 1px solid rgb({r},{g},{b}); }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(view)


# ---------------------------------------------------------------------------------- window


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

        self.axial_view = SliceView(self.session, Orientation.AXIAL)
        self.sagittal_view = SliceView(self.session, Orientation.SAGITTAL)
        self.coronal_view = SliceView(self.session, Orientation.CORONAL)
        self.volume_view = VolumeView(self.session)
        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(3, 3, 3, 3)
        grid.setSpacing(3)
        self._frames: dict[QWidget, ViewFrame] = {
            self.axial_view: ViewFrame(self.axial_view, Orientation.AXIAL.spec.color_rgb),
            self.sagittal_view: ViewFrame(self.sagittal_view, Orientation.SAGITTAL.spec.color_rgb),
            self.coronal_view: ViewFrame(self.coronal_view, Orientation.CORONAL.spec.color_rgb),
            self.volume_view: ViewFrame(self.volume_view, (0.55, 0.7, 1.0)),
        }
        for n, frame in enumerate(self._frames.values()):
            grid.addWidget(frame, n // 2, n % 2)
        for i in range(2):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        # Double-click a view: it fills the window; double-click again: back to four views.
        self._grid = grid
        self.maximized_view: QWidget | None = None
        for view in self._frames:
            view.installEventFilter(self)
        outer.addWidget(grid_host, 1)
        self.setCentralWidget(central)

        for view in self.slice_views:
            view.probe.connect(self._on_probe)
        self.session.volume_changed.connect(self._on_volume_changed)
        self.session.crosshair_changed.connect(self._on_crosshair_changed)

        self._build_status_bar()
        self._build_menus()
        self.resize(1400, 900)
        self._on_volume_changed()

    # ------------------------------------------------------------------ construction
    @property
    def slice_views(self) -> tuple[SliceView, SliceView, SliceView]:
        return (self.axial_view, self.sagittal_view, self.coronal_view)

    @property
    def vtk_views(self) -> tuple[VTKWidget, ...]:
        return (*self.slice_views, self.volume_view)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.probe_label = QLabel("")
        self.probe_label.setObjectName("probe_label")
        self.probe_label.setMinimumWidth(520)
        self.crosshair_label = QLabel("")
        self.crosshair_label.setObjectName("crosshair_label")
        bar.addWidget(self.probe_label)
        bar.addWidget(self.crosshair_label, 1)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("load_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFixedWidth(260)
        self.progress_bar.setFormat("%p%")
        self.progress_label = QLabel("")
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setObjectName("cancel_load")
        self.cancel_button.clicked.connect(self.cancel_load)
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(w)
            w.setVisible(False)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        act = QAction("Open DICOM &folder…", self)
        act.setShortcut(QKeySequence.StandardKey.Open)
        act.triggered.connect(self._ask_open_folder)
        file_menu.addAction(act)
        act = QAction("Open image &file (NIfTI, MHA, NRRD)…", self)
        act.triggered.connect(self._ask_open_file)
        file_menu.addAction(act)
        act = QAction("Open &demo case", self)
        act.triggered.connect(self.open_demo)
        file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("&Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addSeparator()
        act = QAction("Import &report…", self)
        act.triggered.connect(self.show_import_report)
        file_menu.addAction(act)
        act = QAction("Save &screenshot…", self)
        act.triggered.connect(self._ask_screenshot)
        file_menu.addAction(act)
        file_menu.addSeparator()
        act = QAction("&Quit", self)
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        file_menu.addAction(act)

        view_menu = menu.addMenu("&View")
        toolbar = self.addToolBar("Window")
        toolbar.setObjectName("window_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(QLabel("  Window: "))
        self.preset_actions: dict[str, QAction] = {}
        for n, preset in enumerate(WINDOW_PRESETS, start=1):
            act = QAction(
                f"{preset.name}  (W {preset.window_hu:.0f} / L {preset.level_hu:.0f} HU)", self
            )
            act.setShortcut(QKeySequence(f"F{n + 1}"))
            act.triggered.connect(lambda _=False, name=preset.name: self.session.apply_preset(name))
            view_menu.addAction(act)
            button = QPushButton(preset.name)
            button.setObjectName(f"preset_{preset.name.lower().replace(' ', '_')}")
            button.setToolTip(act.text())
            button.clicked.connect(act.trigger)
            toolbar.addWidget(button)
            self.preset_actions[preset.name] = act
        view_menu.addSeparator()
        act = QAction("&Reset views", self)
        act.setShortcut(QKeySequence("Ctrl+R"))
        act.triggered.connect(self.reset_views)
        view_menu.addAction(act)
        toolbar.addSeparator()
        reset = QPushButton("Reset views")
        reset.clicked.connect(self.reset_views)
        toolbar.addWidget(reset)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        hint = QLabel(
            "Left: crosshair · Right-drag: window/level · Wheel: slices · "
            "Ctrl+wheel: zoom · Middle/Shift-drag: pan · Double-click: enlarge  "
        )
        hint.setObjectName("hint_label")
        toolbar.addWidget(hint)

        help_menu = menu.addMenu("&Help")
        act = QAction("&About SeedPlan", self)
        act.triggered.connect(self._about)
        help_menu.addAction(act)

    # ------------------------------------------------------------------ opening
    def open_path(self, path: Path | str, *, series_uid: str | None = None) -> None:
        """Open a DICOM folder or an image file in the background (dialogs on failure)."""
        path = Path(path).expanduser()
        if self._worker is not None:
            self._error("Busy", "A load is already running; cancel it first.")
            return
        if not path.exists():
            self._fail(f"{path}: no such file or folder")
            return
        self._start(_open_task(path, series_uid), f"Opening {path.name}…", self._on_opened)

    def _on_opened(self, result: OpenedCase | SeriesChoice) -> None:
        if isinstance(result, SeriesChoice):
            self._on_scanned(result.scan, result.path)
        else:
            self._on_loaded(result)

    def open_demo(self) -> None:
        """Generate the demo case on first use (user cache) and open it."""

        def task(progress: Callable[[float, str], None], cancel: Callable[[], bool]) -> Path:
            from planner.demo.case import ensure_demo_case

            progress(0.0, "Preparing the demo case…")
            return Path(ensure_demo_case(progress=progress))

        if self._worker is not None:
            return
        self._start(task, "Preparing the demo case…", self._on_demo_ready)

    def _on_demo_ready(self, case_dir: Path) -> None:
        self.open_path(case_dir)

    def _on_scanned(self, scan: Any, path: Path) -> None:
        root = Path(scan.root)
        cts = scan.ct_series()
        if not cts:
            kinds = sorted({s.modality or "?" for s in scan.series})
            what = f"only {', '.join(kinds)} series" if kinds else "no DICOM images"
            self._fail(f"{root}: no CT series found ({what}; {len(scan.skipped)} file(s) skipped)")
            return
        key = cts[0].key
        # Non-interactive (--screenshot): the largest CT series, like the command line.
        if len(scan.series) > 1 and self.interactive:
            dialog = SeriesChooserDialog(scan, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                self.statusBar().showMessage("Open cancelled", 4000)
                return
            key = dialog.selected_key() or key
        self._start(_open_task(path, key), f"Loading {root.name}…", self._on_opened)

    def _start(
        self, task: Callable[..., Any], message: str, on_done: Callable[[Any], None]
    ) -> None:
        self._set_busy(True, message)
        self._worker = start_worker(
            task,
            on_finished=lambda result: self._finish(on_done, result),
            on_failed=self._on_worker_failed,
            on_progress=self._on_progress,
            on_cancelled=self._on_cancelled,
            cancel_exceptions=(Cancelled,),
            parent=self,
        )

    def _finish(self, on_done: Callable[[Any], None], result: Any) -> None:
        self._worker = None
        self._set_busy(False)
        if self._closing:
            return
        on_done(result)

    def cancel_load(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.progress_label.setText("Cancelling…")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(round(1000 * fraction))
        if message:
            self.progress_label.setText(message)

    def _on_cancelled(self) -> None:
        self._worker = None
        self._set_busy(False)
        self.statusBar().showMessage("Loading cancelled", 5000)

    def _on_worker_failed(self, exc: BaseException) -> None:
        self._worker = None
        self._set_busy(False)
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

    def _on_loaded(self, result: OpenedCase) -> None:
        self.session.set_case(result)
        with contextlib.suppress(OSError):  # an unwritable config must not stop the viewer
            self.settings.add_recent(result.source_path)
        self.loaded.emit(result.source_path)

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self.progress_bar.setValue(0)
        self.progress_label.setText(message)
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            w.setVisible(busy)

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

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        if not recent:
            empty = self.recent_menu.addAction("(none)")
            empty.setEnabled(False)
            return
        for path in recent:
            act = self.recent_menu.addAction(str(path))
            act.setEnabled(path.exists())
            act.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear list")
        clear.triggered.connect(self.settings.clear_recent)

    def show_import_report(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Import report")
        dialog.resize(760, 420)
        layout = QVBoxLayout(dialog)
        text = QPlainTextEdit()
        text.setReadOnly(True)
        volume = self.session.volume
        lines = list(self.session.report_lines)
        if volume is not None and volume.warnings:
            lines += ["", "Warnings:"] + [f"  {w}" for w in volume.warnings]
        if self.failed_report_lines:
            lines += ["", "Last refused import:"] + [f"  {x}" for x in self.failed_report_lines]
        text.setPlainText("\n".join(lines) if lines else "Nothing loaded yet.")
        layout.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        dialog.exec()

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

    # ------------------------------------------------------------------ model → view
    def _on_volume_changed(self) -> None:
        volume = self.session.volume
        self.header.set_volume(volume)
        if volume is None:
            self.setWindowTitle(APP_TITLE)
            self.probe_label.setText("")
            self.crosshair_label.setText("")
            return
        name = volume.info.patient_name.replace("^", ", ") or "(no name)"
        self.setWindowTitle(f"{APP_TITLE} — {name} ({volume.info.patient_id or 'no ID'})")
        self._on_crosshair_changed(self.session.crosshair_mm)

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        hu = self.session.hu_at(xyz_mm)
        self.crosshair_label.setText("Crosshair  " + self._format_point(xyz_mm, hu))

    @staticmethod
    def _format_point(xyz_mm: NDArray[np.float64], hu: float) -> str:
        x, y, z = (float(v) for v in xyz_mm)
        hu_text = "outside" if math.isnan(hu) else f"{hu:.0f} HU"
        return f"x {x:.1f} mm  y {y:.1f} mm  z {z:.1f} mm (LPS)  ·  {hu_text}"

    def _on_probe(self, xyz_mm: NDArray[np.float64] | None, hu: float) -> None:
        if xyz_mm is None:
            self.probe_label.setText("")
            return
        self.probe_label.setText("Cursor  " + self._format_point(xyz_mm, hu))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseButtonDblClick and obj in self._frames:
            self.toggle_maximized(obj)  # type: ignore[arg-type]
            return True
        return super().eventFilter(obj, event)

    def toggle_maximized(self, view: QWidget) -> None:
        """Show ``view`` alone, or all four views again if it already is alone."""
        alone = self.maximized_view is not view
        for other, frame in self._frames.items():
            frame.setVisible(not alone or other is view)
        index = list(self._frames).index(view)
        for i in range(2):  # empty rows/columns must not keep their share of the space
            self._grid.setRowStretch(i, 1 if not alone or i == index // 2 else 0)
            self._grid.setColumnStretch(i, 1 if not alone or i == index % 2 else 0)
        self.maximized_view = view if alone else None

    def reset_views(self) -> None:
        for view in self.slice_views:
            view.reset_camera()
        self.volume_view.reset_camera()

    # ------------------------------------------------------------------ output
    def grab_composited(self) -> QImage:
        """The whole window as an image, VTK views included.

        ``QWidget.grab()`` cannot see native OpenGL children, so each VTK view's own render
        is painted over its place in the grabbed window.
        """
        for view in self.vtk_views:
            view.render_now()
        pixmap: QPixmap = self.grab()
        dpr = pixmap.devicePixelRatio()
        painter = QPainter(pixmap)
        try:
            for view in self.vtk_views:
                rgb = view.grab_rgb()
                if rgb.size == 0:
                    continue
                h, w, _ = rgb.shape
                image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
                top_left = view.mapTo(self, QPoint(0, 0))
                painter.drawImage(QRect(top_left, view.size()), image)
        finally:
            painter.end()
        image = pixmap.toImage()
        image.setDevicePixelRatio(dpr)
        return image

    def save_screenshot(self, path: Path) -> None:
        """Write the composited window as PNG; raises OSError when it cannot be written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab_composited().save(str(path), "PNG", 0):  # 0: smallest file
            raise OSError(f"cannot write PNG to {path}")

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
        for view in self.slice_views:
            view.probe.disconnect(self._on_probe)
        self.session.volume_changed.disconnect(self._on_volume_changed)
        self.session.crosshair_changed.disconnect(self._on_crosshair_changed)
        for view in self.vtk_views:
            view.finalize()
        super().closeEvent(event)
        # Leave the event loop a chance to deliver a late worker result harmlessly.
        QTimer.singleShot(0, lambda: None)
