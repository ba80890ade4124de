"""The main window's menus and window-preset toolbar (actions call the window's methods).

File (cases, plans: new, open, save, save as, close, new revision), Edit (Undo/Redo bound to the
plan document's own history, labelled with the step they undo), View (window presets, structure
visibility, reset views, Panels to show/hide each dock, Reset layout), Contour (tools and
structure operations, every one with its shortcut shown in the menu and in tooltips) and Help.
Other parts add their own menus with ``window.menuBar().addMenu(...)``; Help stays last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMenu,
    QMenuBar,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from app.gui.layers.structures import displayed_structures
from planner.session.session import WINDOW_PRESETS

if TYPE_CHECKING:
    from app.gui.plan_controller import PlanController
    from app.gui.settings import Settings
    from app.gui.tools.base import ToolManager
    from app.gui.tools.operations import StructureOperations
    from planner.session.session import Session

__all__ = ["HINT", "MenuWindow", "WindowMenus"]

HINT = (
    "Left: crosshair · Right-drag: window/level · Wheel: slices · "
    "Ctrl+wheel: zoom · Middle/Shift-drag: pan · Double-click: enlarge  "
)


class MenuWindow(Protocol):
    """What the menus call on their window (the main window, the actions' parent): its own
    commands, the parts they act on, the session and the settings (recent files), and the menu
    bar and toolbar they fill."""

    session: Session
    settings: Settings
    plan_controller: PlanController
    tool_manager: ToolManager
    structure_operations: StructureOperations

    def menuBar(self) -> QMenuBar: ...  # noqa: N802 (Qt)

    def addToolBar(self, title: str) -> QToolBar: ...  # noqa: N802 (Qt)

    def close(self) -> bool: ...

    # File
    def open_path(self, path: Path | str, *, series_uid: str | None = None) -> None: ...

    def open_demo(self) -> None: ...

    def ask_open_folder(self) -> None: ...

    def ask_open_file(self) -> None: ...

    def show_import_report(self) -> None: ...

    def ask_screenshot(self) -> None: ...

    # View and Help
    def reset_views(self) -> None: ...

    def reset_layout(self) -> None: ...

    def show_about(self) -> None: ...

    # Contour
    def contour_menu_add_structure(self) -> None: ...

    def contour_menu_remove_structure(self) -> None: ...

    def contour_menu_margin(self) -> None: ...

    def contour_menu_boolean(self) -> None: ...


class WindowMenus:
    """File, View (window presets, structure visibility, reset) and Help; the toolbar."""

    def __init__(self, window: MenuWindow) -> None:
        self.window = window
        w = window
        menu = w.menuBar()
        file_menu = menu.addMenu("&File")
        keys = QKeySequence.StandardKey
        self._action(file_menu, "Open DICOM &folder…", w.ask_open_folder, keys.Open)
        self._action(file_menu, "Open image &file (NIfTI, MHA, NRRD)…", w.ask_open_file)
        self._action(file_menu, "Open &demo case", w.open_demo)
        pc = w.plan_controller
        file_menu.addSeparator()
        self.plan_actions: dict[str, QAction] = {
            "new": self._action(file_menu, "&New plan", pc.new_plan, keys.New),
            "new_from_case": self._action(
                file_menu,
                "New plan from the case's structures",
                lambda: pc.new_plan(from_case_masks=True),
            ),
            "open": self._action(file_menu, "Open &plan…", pc.ask_open_plan, "Ctrl+Shift+O"),
            "save": self._action(file_menu, "&Save plan", pc.save, keys.Save),
            "save_as": self._action(file_menu, "Save plan &as…", pc.save_as, "Ctrl+Shift+S"),
            "close": self._action(file_menu, "&Close plan", pc.close_plan, "Ctrl+W"),
            "revision": self._action(file_menu, "Start new &revision", pc.new_revision),
        }
        file_menu.addSeparator()
        self.recent_menu: QMenu = file_menu.addMenu("&Recent files")
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        self.fill_recent_menu()
        file_menu.addSeparator()
        self._action(file_menu, "Import &report…", w.show_import_report)
        self._action(file_menu, "Save &screenshot…", w.ask_screenshot)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", w.close, keys.Quit)

        edit_menu = menu.addMenu("&Edit")
        self.undo_action = self._action(edit_menu, "&Undo", pc.undo, keys.Undo)
        self.redo_action = self._action(edit_menu, "&Redo", pc.redo, keys.Redo)
        w.session.document_changed.connect(self._listen_history)
        self._history_doc = None
        self._listen_history(w.session.document)

        view_menu = menu.addMenu("&View")
        self.view_menu = view_menu
        toolbar = w.addToolBar("Window")
        toolbar.setObjectName("window_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(QLabel("  Window: "))
        self.preset_actions: dict[str, QAction] = {}
        for n, preset in enumerate(WINDOW_PRESETS, start=1):
            text = f"{preset.name}  (W {preset.window_hu:.0f} / L {preset.level_hu:.0f} HU)"
            apply = lambda name=preset.name: w.session.apply_preset(name)  # noqa: E731
            act = self._action(view_menu, text, apply, f"F{n + 1}")
            button = QPushButton(preset.name)
            button.setObjectName(f"preset_{preset.name.lower().replace(' ', '_')}")
            button.setToolTip(act.text())
            button.clicked.connect(act.trigger)
            toolbar.addWidget(button)
            self.preset_actions[preset.name] = act
        view_menu.addSeparator()
        self.structures_menu: QMenu = view_menu.addMenu("&Structures")
        self.fill_structures_menu()
        self._action(view_menu, "&Reset views", w.reset_views, "Ctrl+R")
        toolbar.addSeparator()
        reset = QPushButton("Reset views")
        reset.clicked.connect(w.reset_views)
        toolbar.addWidget(reset)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        hint = QLabel(HINT)
        hint.setObjectName("hint_label")
        toolbar.addWidget(hint)
        self._contour_menu(menu.addMenu("&Contour"))
        help_menu = menu.addMenu("&Help")
        self.help_action = help_menu.menuAction()
        self._action(help_menu, "&About SeedPlan", w.show_about)
        self.update_plan_actions()

    # ------------------------------------------------------------------ layout
    def add_layout_menu(self, docks: list[QDockWidget]) -> None:
        """View → Panels (show or hide each dock) and View → Reset layout (the default
        arrangement: views, DVH and metrics readable at once)."""
        self.view_menu.addSeparator()
        panels = self.view_menu.addMenu("&Panels")
        panels.setObjectName("panels_menu")
        for dock in docks:
            panels.addAction(dock.toggleViewAction())
        self.reset_layout_action = self._action(
            self.view_menu, "Reset &layout", self.window.reset_layout, "Ctrl+Shift+0"
        )
        self.reset_layout_action.setObjectName("reset_layout")
        self.reset_layout_action.setToolTip(
            "Views in the centre; Structures and Needles tabbed, the metrics and the DVH on the "
            f"right [{self.reset_layout_action.shortcut().toString()}]"
        )
        self.view_menu.setToolTipsVisible(True)

    # ------------------------------------------------------------------ contour
    def _contour_menu(self, menu: QMenu) -> None:
        w = self.window
        manager = w.tool_manager
        ops = w.structure_operations
        self.tool_actions: dict[str, QAction] = {}
        # Esc is handled by the tool manager on the views (an open polygon takes it first).
        self._action(menu, "&Navigate (crosshair)\tEsc", lambda: manager.set_active(None))
        for tool in manager.tools.values():
            act = self._action(
                menu, tool.label, lambda n=tool.name: manager.set_active(n), tool.shortcut
            )
            act.setToolTip(f"{tool.tooltip} [{tool.shortcut}]")
            self.tool_actions[tool.name] = act
        self._action(menu, "Brush radius +1 mm", lambda: self._radius(+1.0), "]")
        self._action(menu, "Brush radius −1 mm", lambda: self._radius(-1.0), "[")
        menu.addSeparator()
        entries = [
            ("fill_between", "&Fill between slices", ops.fill_between, "Ctrl+Shift+I",
             "Fill the empty slices between drawn ones (ITK morphological interpolation)"),
            ("smooth", "S&mooth (median 3 mm)", ops.smooth, "Ctrl+Shift+M",
             "Median smoothing of the current structure, 3 mm kernel"),
            ("keep_largest", "Keep &largest island", ops.keep_largest, "Ctrl+Shift+L",
             "Keep only the largest connected piece of the current structure"),
            ("remove_small", "Remove small islands…", ops.remove_small, None,
             "Remove pieces smaller than a volume in mm³"),
            ("margin", "Mar&gin…", w.contour_menu_margin, "Ctrl+Shift+G",
             "Expand or shrink a structure by a margin in mm"),
            ("boolean", "&Boolean…", w.contour_menu_boolean, "Ctrl+Shift+B",
             "Union, intersection, subtraction or xor of two structures"),
            ("bone", "Bone by &threshold (≥ 200 HU)", ops.bone, None,
             "Structure Bone = voxels ≥ 200 HU, islands < 50 mm³ removed"),
            ("make_ptv", "Make &PTV (GTV + 5 mm − cord + 2 mm)", ops.make_ptv, "Ctrl+Shift+P",
             "PTV = GTV + 5 mm minus (SpinalCord + 2 mm), in one step"),
        ]  # fmt: skip
        self.contour_actions: dict[str, QAction] = {}
        for key, text, slot, shortcut, tip in entries:
            act = self._action(menu, text, slot, shortcut)
            act.setToolTip(f"{tip} [{act.shortcut().toString()}]" if shortcut else tip)
            self.contour_actions[key] = act
        menu.addSeparator()
        self._action(menu, "&Add structure…", w.contour_menu_add_structure)
        self._action(menu, "&Delete current structure", w.contour_menu_remove_structure)
        menu.setToolTipsVisible(True)

    def _radius(self, delta_mm: float) -> None:
        panel = getattr(self.window, "structures_panel", None)
        if panel is not None:
            panel.radius.setValue(panel.radius.value() + delta_mm)

    # ------------------------------------------------------------------ plan state
    def _listen_history(self, document: object) -> None:
        if self._history_doc is not None:
            self._history_doc.events.history_changed.disconnect(self.update_plan_actions)
        self._history_doc = document
        if document is not None:
            document.events.history_changed.connect(self.update_plan_actions)  # type: ignore[attr-defined]
        self.update_plan_actions()

    def update_plan_actions(self) -> None:
        """Undo/Redo enabled and labelled from the document's history (also on an approved
        plan, whose history holds only verification-record steps such as an attached
        registration: :mod:`planner.plan.document`); plan actions enabled."""
        doc = self.window.session.document
        history = doc.history if doc is not None else None
        can_undo = bool(history and history.can_undo)
        can_redo = bool(history and history.can_redo)
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
        self.undo_action.setText(f"&Undo {history.undo_label}" if can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {history.redo_label}" if can_redo else "&Redo")
        for key in ("save", "save_as", "close", "revision"):
            self.plan_actions[key].setEnabled(doc is not None)

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], key: Any = None) -> QAction:
        act = QAction(text, self.window)
        if key is not None:
            act.setShortcut(QKeySequence(key))
            shown = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if shown:
                act.setToolTip(f"{text.replace('&', '').rstrip('…')} [{shown}]")
        act.triggered.connect(lambda _=False: slot())
        menu.addAction(act)
        return act

    def fill_structures_menu(self) -> None:
        """One checkable entry per structure: shows or hides it in every view (view state)."""
        view_state = self.window.session.view
        self.structures_menu.clear()
        names = [d.name for d in displayed_structures(self.window.session)]
        self.structures_menu.setEnabled(bool(names))
        for name in names:
            act = self.structures_menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(view_state.is_visible(name))
            act.toggled.connect(lambda on, n=name: view_state.set_visible(n, on))

    def fill_recent_menu(self) -> None:
        settings = self.window.settings
        self.recent_menu.clear()
        recent = settings.recent_files()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
            return
        for path in recent:
            act = self.recent_menu.addAction(str(path))
            act.setEnabled(path.exists())
            act.triggered.connect(lambda _=False, p=path: self.window.open_path(p))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list").triggered.connect(settings.clear_recent)
