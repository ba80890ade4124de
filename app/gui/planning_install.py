"""The planning part of the workstation, installed on the main window: the layers, tools,
docks and Plan menu around one :class:`~app.gui.planning_ui.PlanningUI`.

:func:`install_planning_ui` is called once by :class:`app.gui.main_window.MainWindow` after its
views and menus exist. It adds its own layers (needles, seeds, isodoses), tools, docks and menu
entries, and listens to ``window.session.document_changed`` (a plan opened or closed) and the
document's own events; the window knows nothing else about it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMenuBar, QMessageBox

from app.gui.dialogs.isodose_levels import IsodoseLevelsDialog, parse_levels
from app.gui.dialogs.prescription import PrescriptionDialog
from app.gui.layers.base import StrokeCoalescer
from app.gui.layers.isodoses import IsodoseLayer, IsodoseSurfaceLayer
from app.gui.layers.needles import NeedleLayer, NeedleTrackLayer
from app.gui.layers.seeds import SeedGlyphLayer, SeedLayer
from app.gui.panels.dvh_panel import DVHPanel
from app.gui.panels.metrics_panel import MetricsPanel
from app.gui.panels.needle_table import NeedleTablePanel
from app.gui.panels.structures_panel import scrolling
from app.gui.planning_ui import PlanningUI, PlanningWindow
from app.gui.tools.distance_tool import DistanceTool
from app.gui.tools.needle_tool import NeedleTool
from app.gui.tools.seed_tool import SeedTool

if TYPE_CHECKING:
    from app.gui.settings import Settings
    from app.gui.views.volume_view import VolumeView
    from planner.plan.document import PlanDocument

__all__ = ["PlanningHost", "install_planning_ui"]


class PlanningHost(PlanningWindow, Protocol):
    """What installing the planning part uses of the window besides what the controller does:
    the 3-D view, the settings (the isodose levels chosen last), the menu bar, the docks and
    the fit of the default layout (the window also parents the docks and actions)."""

    volume_view: VolumeView
    settings: Settings

    def menuBar(self) -> QMenuBar: ...  # noqa: N802 (Qt)

    def addDockWidget(self, area: Qt.DockWidgetArea, dock: QDockWidget) -> None: ...  # noqa: N802 (Qt)

    def fit_default_docks(self, attempt: int = 0) -> None: ...


def _has_shortcut(window: QObject, key: QKeySequence) -> bool:
    return any(
        a.shortcut() == key for a in window.findChildren(QAction) if not a.shortcut().isEmpty()
    )


def install_planning_ui(window: PlanningHost) -> None:
    """Add the planning layers, tools, docks and menus to ``window``."""
    planning = PlanningUI(window)
    window.planning = planning  # type: ignore[attr-defined]
    for view in window.slice_views:
        layers = {
            "isodoses": IsodoseLayer(view, window.session, planning),
            "needles": NeedleLayer(view, window.session, planning),
            "seeds": SeedLayer(view, window.session, planning),
        }
        planning.view_layers[view] = layers
        view.layers.extend(layers.values())
    vv = window.volume_view
    vv.layers.extend(
        [
            NeedleTrackLayer(vv, window.session, planning),
            SeedGlyphLayer(vv, window.session, planning),
            IsodoseSurfaceLayer(vv, window.session, planning),
        ]
    )
    # Tools: event filters on the 2-D views (the view's own navigation runs when they pass).
    planning.seed_tool = SeedTool(planning)  # type: ignore[attr-defined]
    planning.needle_tool = NeedleTool(planning)  # type: ignore[attr-defined]
    planning.distance_tool = DistanceTool(planning)  # type: ignore[attr-defined]
    for view in window.slice_views:
        view.installEventFilter(planning.seed_tool)  # type: ignore[attr-defined]
        view.installEventFilter(planning.needle_tool)  # type: ignore[attr-defined]
        view.installEventFilter(planning.distance_tool)  # type: ignore[attr-defined]

    docks: dict[str, QDockWidget] = {}
    for key, title, widget, area in (
        (
            "needles",
            "Needles and seeds",
            NeedleTablePanel(planning),
            Qt.DockWidgetArea.RightDockWidgetArea,
        ),
        (
            "metrics",
            "Dose metrics and goals",
            MetricsPanel(planning),
            Qt.DockWidgetArea.RightDockWidgetArea,
        ),
        ("dvh", "DVH", DVHPanel(planning), Qt.DockWidgetArea.RightDockWidgetArea),
    ):
        dock = QDockWidget(title, window)
        dock.setObjectName(f"{key}_dock")
        # The needle panel scrolls when its dock is short (it shares a tab with the structures).
        dock.setWidget(scrolling(widget) if key == "needles" else widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        window.addDockWidget(area, dock)
        docks[key] = dock
    # Where they go (beside the structures dock, metrics and DVH both visible): the window's
    # default layout (MainWindow.apply_default_layout), applied once every part is installed.
    planning.docks = docks  # type: ignore[attr-defined]
    planning.needle_panel = docks["needles"].widget().widget()  # type: ignore[attr-defined]
    planning.metrics_panel = docks["metrics"].widget()  # type: ignore[attr-defined]
    planning.dvh_panel = docks["dvh"].widget()  # type: ignore[attr-defined]
    for dock in docks.values():
        dock.setVisible(False)

    def show_docks(document: object) -> None:
        """The planning docks are shown while a plan is open (where the layout put them)."""
        for dock in docks.values():
            dock.setVisible(document is not None)
        if document is not None:  # the default column gets its heights once they show
            QTimer.singleShot(0, window.fit_default_docks)

    planning.show_docks = show_docks  # type: ignore[attr-defined]
    planning.subscriptions.listen(window.session.document_changed, show_docks)
    planning.events.status_changed.connect(lambda text: window.statusBar().showMessage(text, 8000))
    _install_menu(window, planning)


def _install_menu(window: PlanningHost, planning: PlanningUI) -> None:
    # The isodose levels the user chose last (view state, kept in the settings).
    saved = window.settings.isodose_levels()
    if saved:
        with contextlib.suppress(ValueError):  # a hand-edited settings file: the defaults
            planning.set_levels(parse_levels(", ".join(f"{p:g}" for p in saved)))

    menu = window.menuBar().addMenu("&Plan")
    menu.setObjectName("plan_menu")
    actions: dict[str, QAction] = {}

    def add(key: str, text: str, slot: Callable[[], Any], shortcut: str | None = None) -> QAction:
        act = QAction(text, window)
        act.setObjectName(f"plan_{key}")
        if shortcut and not _has_shortcut(window, QKeySequence(shortcut)):
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _=False: slot())
        menu.addAction(act)
        actions[key] = act
        return act

    def undo() -> None:
        if planning.document is not None:
            planning.document.undo()

    def redo() -> None:
        if planning.document is not None:
            planning.document.redo()

    def prescription() -> None:
        if planning.document is None:
            QMessageBox.information(window, "Prescription", "Open or create a plan first.")
            return
        PrescriptionDialog(planning, window).exec()

    def isodose_levels() -> None:
        IsodoseLevelsDialog(planning, window).exec()

    add("undo", "&Undo plan edit", undo, "Ctrl+Z")
    add("redo", "&Redo plan edit", redo, "Ctrl+Shift+Z")
    menu.addSeparator()
    add("needle", "Place &needle (click entry, then tip)", planning.needle_tool.start, "N")  # type: ignore[attr-defined]
    add("distance", "Measure &distance", planning.distance_tool.start, "M")  # type: ignore[attr-defined]
    add("delete", "&Delete selected needle or seed", planning.seed_tool.delete_selected, "Del")  # type: ignore[attr-defined]
    menu.addSeparator()
    add("prescription", "&Prescription and seeds…", prescription)
    levels = add("levels", "&Isodose levels…", lambda: isodose_levels(), "Ctrl+Shift+D")
    levels.setToolTip(
        f"Isodose lines shown, in % of PD (default 50, 90, 100, 150, 200) "
        f"[{levels.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}]"
    )
    wash = add("wash", "Dose colour &wash", lambda: None)
    wash.setCheckable(True)
    wash.toggled.connect(planning.set_wash)
    add("exact", "Recompute e&xact dose now", planning.refresh_exact, "F5")
    menu.setToolTipsVisible(True)
    planning.actions = actions  # type: ignore[attr-defined]

    def enable(_doc: object = None) -> None:
        has = planning.document is not None
        for k in ("undo", "redo", "needle", "delete", "prescription", "exact"):
            actions[k].setEnabled(has)
        if planning.document is not None:
            h = planning.document.history
            actions["undo"].setEnabled(h.can_undo)
            actions["redo"].setEnabled(h.can_redo)
            actions["undo"].setText(f"&Undo {h.undo_label}" if h.can_undo else "&Undo")
            actions["redo"].setText(f"&Redo {h.redo_label}" if h.can_redo else "&Redo")

    # A brush stroke changes the history on every move: the actions follow once it has ended.
    actions_after_stroke = StrokeCoalescer(lambda: planning.document, enable, during=False)
    planning.actions_after_stroke = actions_after_stroke  # type: ignore[attr-defined]

    def on_history(_doc: object = None) -> None:
        actions_after_stroke.request()

    def on_doc(doc: PlanDocument | None) -> None:
        if doc is not None:
            doc.events.history_changed.connect(on_history)
        enable()

    planning.subscriptions.listen(window.session.document_changed, on_doc)
    enable()
