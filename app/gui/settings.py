"""User settings (recent files, isodose levels, window layout) in an INI file under
``$XDG_CONFIG_HOME/seedplan``.

An explicit file path (rather than Qt's organisation/application lookup) makes the location
predictable on every platform and lets tests redirect it with ``XDG_CONFIG_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

__all__ = ["MAX_RECENT_FILES", "Settings", "settings_path"]

MAX_RECENT_FILES = 10
_RECENT_KEY = "recent/files"
_ISODOSE_KEY = "view/isodose_levels_percent"
_GEOMETRY_KEY = "window/geometry"
_STATE_KEY = "window/state"


def settings_path() -> Path:
    """``$XDG_CONFIG_HOME/seedplan/seedplan.ini`` (``~/.config`` when the variable is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "seedplan" / "seedplan.ini"


class Settings:
    """Typed access to SeedPlan's persistent settings."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def recent_files(self) -> list[Path]:
        """Most recent first; entries that no longer exist are kept (the menu greys them)."""
        value = self._qs.value(_RECENT_KEY, [])
        if isinstance(value, str):  # QSettings returns a bare string for a 1-item list
            value = [value]
        return [Path(v) for v in (value or []) if v]

    def add_recent(self, path: Path | str) -> None:
        entry = str(Path(path).resolve())
        files = [entry] + [str(p) for p in self.recent_files() if str(p) != entry]
        self._qs.setValue(_RECENT_KEY, files[:MAX_RECENT_FILES])
        self._qs.sync()

    def clear_recent(self) -> None:
        self._qs.remove(_RECENT_KEY)
        self._qs.sync()

    def isodose_levels(self) -> tuple[float, ...] | None:
        """The isodose levels (% of PD) the user chose last, None when never set or unreadable."""
        value = self._qs.value(_ISODOSE_KEY, None)
        if value is None or value == "":
            return None
        items = [value] if isinstance(value, str) else list(value)
        try:
            levels = tuple(float(v) for v in items)
        except (TypeError, ValueError):
            return None
        return levels or None

    def set_isodose_levels(self, levels_percent: tuple[float, ...]) -> None:
        self._qs.setValue(_ISODOSE_KEY, [f"{float(p):g}" for p in levels_percent])
        self._qs.sync()

    def window_layout(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, dock state) of the main window as saved last (``QMainWindow.saveGeometry``
        / ``saveState``), None for what was never saved or is unreadable."""

        def read(key: str) -> QByteArray | None:
            value = self._qs.value(key, None)
            return value if isinstance(value, QByteArray) and not value.isEmpty() else None

        return read(_GEOMETRY_KEY), read(_STATE_KEY)

    def set_window_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        self._qs.setValue(_GEOMETRY_KEY, geometry)
        self._qs.setValue(_STATE_KEY, state)
        self._qs.sync()
