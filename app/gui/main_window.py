# ruff: noqa: N802  (Qt method names: closeEvent, showEvent)
"""SeedPlan's main window: patient header, four linked views, status bar with LPS/HU readout.

The window composes the parts and observes a Qt-free :class:`~planner.session.session.Session`:

* :mod:`app.gui.panels.header_bar` — patient identification, series geometry, import warnings;
* :mod:`app.gui.views.view_grid` — the axial, sagittal, coronal and 3-D views, each drawing
  through its layer adapters (:mod:`app.gui.layers`);
* :mod:`app.gui.panels.status_panel` — readouts, load progress, dose engine warm-up;
* :mod:`app.gui.dialogs` — series chooser, import report, crash recovery, margin/boolean;
* :mod:`app.gui.plan_controller` — the plan being edited (``window.plan_controller``): new,
  open, save, close, autosave, recovery; title bar with patient, plan, revision, status and an
  unsaved mark; closing with unsaved changes asks;
* :mod:`app.gui.tools` — the contouring tools on the 2-D views (``window.tool_manager``) and the
  structure operations (``window.structure_operations``);
* :mod:`app.gui.panels.structures_panel` — the structure table and tool controls (a dock).

Default layout (View → Reset layout): the four views in the centre; on the right one column with
the Structures and Needles-and-seeds docks tabbed on top, the dose metrics below them and the DVH
at the bottom, so the views, the DVH and the metrics are readable at once (about a third of the
window's width, 400–640 px). The user's arrangement (docks, toolbars, window geometry) is saved
in the settings when the window closes and restored when the next one opens; ``--screenshot``
(``interactive=False``) always uses the default layout and saves nothing.

``open_path`` opens a ``.seedplan`` plan (with its CT) as well as a CT; the demo opens the demo
case's ``plan.seedplan`` when it has one.

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
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QImage, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs.import_report import ImportReportDialog, import_report_text
from app.gui.dialogs.margin import BooleanDialog, MarginDialog
from app.gui.dialogs.series_chooser import SeriesChooserDialog
from app.gui.dose_warmup import DoseEngineWarmUp
from app.gui.layers.base import Subscriptions
from app.gui.panels.header_bar import HeaderBar
from app.gui.panels.menus import WindowMenus
from app.gui.panels.status_panel import StatusPanel
from app.gui.panels.structures_panel import StructuresPanel
from app.gui.plan_controller import PlanController
from app.gui.planning_install import install_planning_ui
from app.gui.screenshot import grab_composited, save_png
from app.gui.settings import Settings
from app.gui.tools.base import ToolManager
from app.gui.tools.brush import BrushTool, EraserTool
from app.gui.tools.click_tools import CanalTool, CordTool, IslandTool
from app.gui.tools.operations import StructureOperations
from app.gui.tools.polygon import PolygonTool
from app.gui.views.slice_view import SliceView
from app.gui.views.view_grid import ViewGrid
from app.gui.views.vtk_data import prepare_display
from app.gui.vtk_bridge import VTKWidget
from app.gui.workers import Worker, start_worker
from app.gui.workflow_ui import install_workflow_ui
from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn
from planner.open_case import OpenedCase, SeriesChoice, open_case_or_choose
from planner.plan.commands import AddStructure, RemoveStructure
from planner.plan.plan_file import PLAN_SUFFIX
from planner.session.session import Session

__all__ = ["MainWindow", "SeriesChooserDialog"]

APP_TITLE = "SeedPlan"
#: Stamped on the saved dock layout (``saveState``): a layout saved for an older default
#: arrangement is not restored (bump it when the default changes).
LAYOUT_VERSION = 2
#: Width of the right-hand dock column: this fraction of the window, clamped to the range (px).
DOCK_WIDTH_FRACTION = 0.34
DOCK_WIDTH_RANGE_PX = (400, 640)
#: Heights in the right-hand column: the Structures/Needles tabs, the metrics, the DVH.
DOCK_HEIGHT_FRACTIONS = (0.34, 0.31, 0.35)
#: How often the default heights are checked and fitted again, and after how long (ms): up to
#: 3 s, since on a loaded machine Qt may lay moved docks out several event-loop turns late.
FIT_ATTEMPTS = 20
FIT_CHECK_MS = 150
#: A dock of the default column is "fitted" within this many pixels of its height (or 3 %).
FIT_TOLERANCE_PX = 8


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
        self._task_worker: Worker | None = None
        self._started = False
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
        self.plan_controller = PlanController(self)
        self.tool_manager = ToolManager(self)
        for tool in (BrushTool, EraserTool, PolygonTool, CanalTool, CordTool, IslandTool):
            self.tool_manager.register(tool)
        self.structure_operations = StructureOperations(self)
        self.menus = WindowMenus(self)
        self.preset_actions = self.menus.preset_actions
        # The patient header spans the whole window (above the views and the docks).
        self.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        header_bar = QToolBar("Patient")
        header_bar.setObjectName("patient_toolbar")
        header_bar.setMovable(False)
        header_bar.setFloatable(False)
        header_bar.toggleViewAction().setEnabled(False)  # identification is never hidden
        header_bar.addWidget(self.header)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, header_bar)
        self.structures_panel = StructuresPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.structures_panel)
        self._subscriptions.listen(self.session.document_changed, self._on_document_changed)
        # The planning and workflow parts install their own layers, tools, docks and menus;
        # they listen to self.session (document_changed) and need nothing else from here.
        install_planning_ui(self)
        install_workflow_ui(self)
        # Help stays the last menu whatever the parts added.
        self.menuBar().removeAction(self.menus.help_action)
        self.menuBar().addAction(self.menus.help_action)
        self.menus.add_layout_menu(self.layout_docks)
        #: The default dock sizes still have to be fitted to the window (see fit_default_docks).
        self._fit_pending = False
        self.apply_default_layout()
        self.resize(1400, 900)
        #: True when the user's saved arrangement was restored (not the default one).
        self.layout_restored = self._restore_layout()
        self._on_volume_changed()

    # ------------------------------------------------------------------ layout
    @property
    def layout_docks(self) -> list[QDockWidget]:
        """The docks of the default column, top to bottom: structures, needles, metrics, DVH."""
        docks: dict[str, QDockWidget] = getattr(getattr(self, "planning", None), "docks", {})
        return [
            self.structures_panel,
            *(docks[k] for k in ("needles", "metrics", "dvh") if k in docks),
        ]

    def apply_default_layout(self) -> None:
        """The default arrangement (View → Reset layout; module docstring): every dock docked
        in the right-hand column, Structures and Needles tabbed (Structures in front)."""
        right = Qt.DockWidgetArea.RightDockWidgetArea
        docks = self.layout_docks
        for dock in docks:
            dock.setFloating(False)
            self.addDockWidget(right, dock, Qt.Orientation.Vertical)
        if len(docks) > 1:
            self.tabifyDockWidget(docks[0], docks[1])
            docks[0].raise_()
        self._fit_pending = True
        if self.isVisible():  # sized once Qt has laid the moved docks out
            QTimer.singleShot(0, self.fit_default_docks)

    def fit_default_docks(self, attempt: int = 0) -> None:
        """Size the default column to the window: its width (``DOCK_WIDTH_FRACTION``) and, once
        the metrics and DVH docks are shown (they appear with a plan), the heights
        (``DOCK_HEIGHT_FRACTIONS``). Does nothing after the user's layout was restored."""
        if not self._fit_pending or self._closing:
            return
        lo, hi = DOCK_WIDTH_RANGE_PX
        width = int(min(max(DOCK_WIDTH_FRACTION * self.width(), lo), hi))
        docks = self.layout_docks
        self.resizeDocks([docks[0]], [width], Qt.Orientation.Horizontal)
        column = [docks[0], *docks[2:]]
        if len(column) < 3 or not all(d.isVisible() for d in column):
            return  # no plan yet: the structures dock has the column; fitted when they show
        height = self.centralWidget().height()
        sizes = [int(f * height) for f in DOCK_HEIGHT_FRACTIONS]
        self.resizeDocks(column, sizes, Qt.Orientation.Vertical)
        self._fit_pending = False
        if attempt < FIT_ATTEMPTS:
            # Docks just moved (Reset layout) may not be laid out yet, and then Qt ignores the
            # sizes (seen on a loaded machine): check once Qt has settled and fit again.
            QTimer.singleShot(FIT_CHECK_MS, lambda: self._check_fit(column, sizes, attempt))

    def _check_fit(self, column: list[QDockWidget], sizes: list[int], attempt: int) -> None:
        """Fit again while the metrics or DVH dock is off its height by more than
        ``FIT_TOLERANCE_PX`` (or 3 %). The Structures dock is left out of the check: it shares
        its place with the Needles tab bar, so it is always that bar shorter than asked, and it
        takes what the other two leave."""
        if self._closing or not all(d.isVisible() for d in column):
            return
        if any(
            abs(d.height() - s) > max(FIT_TOLERANCE_PX, 0.03 * s)
            for d, s in zip(column[1:], sizes[1:], strict=True)
        ):
            self._fit_pending = True
            self.fit_default_docks(attempt + 1)

    def reset_layout(self) -> None:
        """View → Reset layout: the default arrangement and sizes for this window size."""
        self.apply_default_layout()

    def _restore_layout(self) -> bool:
        """The arrangement saved by the last window (interactive only); True when restored."""
        if not self.interactive:
            return False
        geometry, state = self.settings.window_layout()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is None or not self.restoreState(state, LAYOUT_VERSION):
            return False
        self._fit_pending = False
        planning = getattr(self, "planning", None)
        if planning is not None:  # the planning docks are shown only with a plan
            planning.show_docks(self.session.document)
        return True

    def _save_layout(self) -> None:
        """Save the arrangement for the next window. A default layout whose planning docks never
        got their heights (no plan was shown since it was set) is saved as "the default": the
        next window lays it out and fits it again."""
        if not self.interactive:
            return
        state = QByteArray() if self._fit_pending else self.saveState(LAYOUT_VERSION)
        self.settings.set_window_layout(self.saveGeometry(), state)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._fit_pending:
            QTimer.singleShot(0, self.fit_default_docks)

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
        """Start-up work once the first case is shown (``seedplan gui`` calls it): compile the
        dose kernels off-process, load ITK's contour interpolation on a worker (its first load
        costs ~17 s), and offer the autosaves of never-saved plans a crash left."""
        self.dose_engine.start()
        if self._started:
            return
        self._started = True

        def preload_itk(progress: ProgressFn, cancel: CancelFn) -> None:
            from planner.structures.interpolate import preload

            preload()

        start_worker(preload_itk, parent=self)
        if self.interactive:
            QTimer.singleShot(0, self.plan_controller.offer_unsaved_recoveries)

    def run_task(
        self,
        task: Callable[[ProgressFn, CancelFn], Any],
        message: str,
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
    ) -> bool:
        """Run a Qt-free editing task on a worker (one at a time); ``on_done(result)`` or
        ``on_error(one line)`` on the GUI thread. False when another task is running."""
        if self._task_worker is not None:
            on_error("Another operation is still running")
            return False
        self.statusBar().showMessage(message)

        def finished(result: Any) -> None:
            self._task_worker = None
            self.statusBar().clearMessage()
            if not self._closing:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self._task_worker = None
            if isinstance(exc, InputError | ValueError):
                on_error(str(exc))
            else:
                on_error(f"Unexpected error: {type(exc).__name__}: {exc}")

        self._task_worker = start_worker(task, on_finished=finished, on_failed=failed, parent=self)
        return True

    @property
    def task_running(self) -> bool:
        return self._task_worker is not None

    @property
    def closing(self) -> bool:
        """True once the window is closing: late results are dropped and nothing asks."""
        return self._closing

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
        if path.is_file() and path.name.lower().endswith(PLAN_SUFFIX):
            self.plan_controller.open_plan(path)
            return
        if not self.plan_controller.maybe_close():
            return

        def task(progress: ProgressFn, cancel: CancelFn) -> OpenedCase | SeriesChoice:
            result = open_case_or_choose(
                path, series_uid=series_uid, progress=progress, cancel=cancel
            )
            if isinstance(result, OpenedCase):
                progress(1.0, "Preparing the 3-D view…")
                prepare_display(result.volume)  # numpy only: off the GUI thread
            return result

        self.start_load(task, f"Opening {path.name}…", self._on_opened)

    def _on_opened(self, result: OpenedCase | SeriesChoice) -> None:
        if isinstance(result, OpenedCase):
            self.show_case(result)
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
        """Generate the demo case on first use (user cache) and open it: its plan.seedplan
        when it has one (with the CT it names), else the case."""

        def task(progress: ProgressFn, cancel: CancelFn) -> Path:
            from planner.demo.case import ensure_demo_case

            progress(0.0, "Preparing the demo case…")
            case_dir = Path(ensure_demo_case(progress=progress))
            plan = case_dir / f"plan{PLAN_SUFFIX}"
            return plan if plan.is_file() else case_dir

        if self._worker is None:
            self.start_load(task, "Preparing the demo case…", self.open_path)

    def start_load(
        self, task: Callable[..., Any], message: str, on_done: Callable[[Any], None]
    ) -> None:
        """Run a loading ``task(progress, cancel)`` on the window's worker, with the status
        bar's progress and Cancel; ``on_done(result)`` on the GUI thread."""
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

    def show_case(self, case: OpenedCase) -> None:
        """Show an opened case (a plan not of its CT is closed first); ``loaded`` follows."""
        doc = self.session.document
        if doc is not None and doc.plan.ct.mismatches(case.volume)[0]:
            # A plan is never attached to another patient's CT, frame of reference or grid.
            self.plan_controller.set_document(None)
            self.statusBar().showMessage("The plan was closed: the new CT is not its CT", 10000)
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
    def ask_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if folder:
            self.open_path(folder)

    def ask_open_file(self) -> None:
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

    def ask_screenshot(self) -> None:
        file, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", "seedplan.png", "PNG (*.png)"
        )
        if file:
            self.save_screenshot(Path(file))

    def show_about(self) -> None:
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
        self.plan_controller.update_title()
        if volume is None:
            self.status.show_probe(None, float("nan"))
            self.status.show_crosshair(None, float("nan"))
            return
        self._on_crosshair_changed(self.session.crosshair_mm)

    def _on_document_changed(self, _document: object) -> None:
        self.menus.fill_structures_menu()
        doc = self.session.document
        if doc is not None:
            doc.events.changed.connect(self._on_plan_changed)

    def _on_plan_changed(self, event: object) -> None:
        if "structures" in getattr(event, "what", frozenset()):
            self.menus.fill_structures_menu()

    # ------------------------------------------------------------------ contour menu
    def _structure_names(self) -> list[str]:
        doc = self.session.document
        return [s.name for s in doc.plan.structures] if doc is not None else []

    def _current_name(self) -> str:
        s = self.tool_manager.current_structure()
        return s.name if s is not None else ""

    def contour_menu_add_structure(self) -> None:
        doc = self.plan_controller.ensure_editable()
        if doc is None:
            return
        name, ok = QInputDialog.getText(self, "Add structure", "Name:")
        if not ok or not name.strip():
            return
        from planner.plan.new_plan import default_role

        role = default_role(name)
        colours = {"target": (255, 0, 255), "oar": (0, 255, 128), "other": (0, 180, 0)}
        cmd = AddStructure(
            name.strip(),
            np.zeros(doc.plan.geometry.shape_zyx, bool),
            role,
            colours[role],
            label=f"Add {name.strip()}",
        )
        try:
            doc.execute(cmd)
        except (InputError, ValueError) as exc:
            self.structure_operations.fail(str(exc))
            return
        self.tool_manager.set_current(cmd.structure_id)

    def contour_menu_remove_structure(self) -> None:
        doc = self.plan_controller.ensure_editable()
        s = self.tool_manager.current_structure()
        if doc is None or s is None:
            return
        doc.execute(RemoveStructure(s.id, label=f"Delete {s.name}"))

    def contour_menu_margin(self) -> None:
        names = self._structure_names()
        if not names or self.plan_controller.ensure_editable() is None:
            return
        dialog = MarginDialog(names, self._current_name(), self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            source, margin, shrink, target = dialog.values()
            self.structure_operations.margin(source, margin, shrink=shrink, target_name=target)

    def contour_menu_boolean(self) -> None:
        names = self._structure_names()
        if not names or self.plan_controller.ensure_editable() is None:
            return
        dialog = BooleanDialog(names, self._current_name(), self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            op, a, b, target = dialog.values()
            self.structure_operations.boolean(op, a, b, target)

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
        if not self.plan_controller.maybe_close():
            event.ignore()  # the user cancelled: unsaved changes stay open
            return
        self._closing = True
        self._save_layout()
        self.tool_manager.set_active(None)
        self.plan_controller.shutdown()
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
