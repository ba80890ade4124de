"""The main window's menus and window-preset toolbar (actions call the window's methods)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QPushButton, QSizePolicy, QWidget

from planner.session.session import WINDOW_PRESETS

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

__all__ = ["HINT", "WindowMenus"]

HINT = (
    "Left: crosshair · Right-drag: window/level · Wheel: slices · "
    "Ctrl+wheel: zoom · Middle/Shift-drag: pan · Double-click: enlarge  "
)


class WindowMenus:
    """File, View (window presets, structure visibility, reset) and Help; the toolbar."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        w = window
        menu = w.menuBar()
        file_menu = menu.addMenu("&File")
        keys = QKeySequence.StandardKey
        self._action(file_menu, "Open DICOM &folder…", w._ask_open_folder, keys.Open)
        self._action(file_menu, "Open image &file (NIfTI, MHA, NRRD)…", w._ask_open_file)
        self._action(file_menu, "Open &demo case", w.open_demo)
        self.recent_menu: QMenu = file_menu.addMenu("&Recent files")
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        self.fill_recent_menu()
        file_menu.addSeparator()
        self._action(file_menu, "Import &report…", w.show_import_report)
        self._action(file_menu, "Save &screenshot…", w._ask_screenshot)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", w.close, keys.Quit)

        view_menu = menu.addMenu("&View")
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
        help_menu = menu.addMenu("&Help")
        self._action(help_menu, "&About SeedPlan", w._about)

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], key: Any = None) -> QAction:
        act = QAction(text, self.window)
        if key is not None:
            act.setShortcut(QKeySequence(key))
        act.triggered.connect(lambda _=False: slot())
        menu.addAction(act)
        return act

    def fill_structures_menu(self) -> None:
        """One checkable entry per structure: shows or hides it in every view (view state)."""
        view_state = self.window.session.view
        self.structures_menu.clear()
        names = list(self.window.session.masks)
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
