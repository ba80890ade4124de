"""The viewing/planning session: a Qt-free model the GUI observes.

A :class:`Session` holds the current CT volume (and anything shown with it: ground-truth masks,
the import report), the crosshair position in LPS mm and the display window/level. The GUI
subscribes to its
:class:`~planner.session.events.Signal` attributes and never polls; scripts and tests
drive the same object without a window.

Signals (all emitted synchronously in the calling thread — the GUI only mutates the session on
its own thread):

* ``volume_changed()``: a new volume (or none) was set; crosshair and window/level reset.
* ``crosshair_changed(xyz_mm)``: the linked crosshair moved, ``(3,)`` LPS mm.
* ``window_level_changed(window_hu, level_hu)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.imaging.volume import CTVolume, Mask
from planner.session.events import Signal

__all__ = ["WINDOW_PRESETS", "Session", "WindowPreset"]


@dataclass(frozen=True)
class WindowPreset:
    """A named CT display window: width and centre in HU."""

    name: str
    window_hu: float
    level_hu: float


# Conventional CT display windows (widely used radiology defaults, e.g. Radiopaedia "Windowing
# (CT)": soft tissue W400/L40, lung W1500/L-600, bone W1800/L400).
WINDOW_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Soft tissue", 400.0, 40.0),
    WindowPreset("Bone", 1800.0, 400.0),
    WindowPreset("Lung", 1500.0, -600.0),
)

_MIN_WINDOW_HU = 1.0


class Session:
    """Current CT, masks, crosshair and window/level, with change signals."""

    def __init__(self) -> None:
        self.volume: CTVolume | None = None
        self.masks: dict[str, Mask] = {}
        self.report_lines: list[str] = []
        self.source_path: Path | None = None
        self._crosshair_mm: NDArray[np.float64] = np.zeros(3)
        self.window_hu: float = WINDOW_PRESETS[0].window_hu
        self.level_hu: float = WINDOW_PRESETS[0].level_hu
        self.volume_changed = Signal()
        self.crosshair_changed = Signal()
        self.window_level_changed = Signal()

    # ------------------------------------------------------------------ volume
    def set_volume(
        self,
        volume: CTVolume | None,
        *,
        masks: dict[str, Mask] | None = None,
        report_lines: list[str] | None = None,
        source_path: Path | str | None = None,
    ) -> None:
        """Show ``volume``; the crosshair goes to the volume centre, window to soft tissue."""
        if volume is not None and masks:
            for mask in masks.values():
                if not mask.geometry.same_as(volume.geometry):
                    raise ValueError(f"mask {mask.name!r} is not on the CT grid")
        self.volume = volume
        self.masks = dict(masks or {})
        self.report_lines = list(report_lines or [])
        self.source_path = Path(source_path) if source_path else None
        if volume is not None:
            # The central voxel's centre: every view starts on a real slice, not between two.
            centre_ijk = np.floor((np.asarray(volume.geometry.shape_xyz) - 1) / 2.0)
            self._crosshair_mm = volume.geometry.index_to_world(centre_ijk)
        else:
            self._crosshair_mm = np.zeros(3)
        preset = WINDOW_PRESETS[0]
        self.window_hu, self.level_hu = preset.window_hu, preset.level_hu
        self.volume_changed.emit()

    def load(
        self,
        path: Path | str,
        *,
        series_uid: str | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> CTVolume:
        """Load a CT (DICOM folder or image file) with the planner's loader and show it.

        Raises :class:`dose.errors.InputError` on refusal. Must run on the thread that owns the
        session's listeners (the GUI loads on a worker with
        :func:`planner.imaging.ct_loader.load_ct`
        and calls :meth:`set_volume` on its own thread).
        """
        from planner.imaging.ct_loader import load_ct

        volume, report = load_ct(
            Path(path), series_uid=series_uid, progress=progress, cancel=cancel
        )
        self.set_volume(volume, report_lines=report.lines(), source_path=path)
        return volume

    @property
    def has_volume(self) -> bool:
        return self.volume is not None

    # ------------------------------------------------------------------ crosshair
    @property
    def crosshair_mm(self) -> NDArray[np.float64]:
        """Crosshair position, ``(3,)`` LPS mm (a copy)."""
        return self._crosshair_mm.copy()

    def set_crosshair(self, xyz_mm: ArrayLike, *, snap: bool = True) -> None:
        """Move the linked crosshair (LPS mm), kept inside the volume.

        With ``snap`` (default) it goes to the nearest voxel centre, so that every 2-D view
        shows an acquired slice rather than one interpolated between two.
        """
        xyz = np.asarray(xyz_mm, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(xyz)):
            raise ValueError("crosshair position must be finite")
        if self.volume is not None:
            geometry = self.volume.geometry
            ijk = geometry.world_to_index(xyz)
            ijk = np.clip(ijk, 0, np.asarray(geometry.shape_xyz) - 1)
            if snap:
                ijk = np.rint(ijk)
            xyz = geometry.index_to_world(ijk)
        if np.allclose(xyz, self._crosshair_mm, atol=1e-9):
            return
        self._crosshair_mm = xyz
        self.crosshair_changed.emit(xyz.copy())

    def crosshair_index_ijk(self) -> NDArray[np.float64]:
        """Crosshair as a continuous (i, j, k) index of the current volume."""
        if self.volume is None:
            raise ValueError("no volume loaded")
        return self.volume.geometry.world_to_index(self._crosshair_mm)

    # ------------------------------------------------------------------ window / level
    def set_window_level(self, window_hu: float, level_hu: float) -> None:
        """Display window width and centre (HU); the width is at least 1 HU."""
        window_hu = max(float(window_hu), _MIN_WINDOW_HU)
        level_hu = float(level_hu)
        if (window_hu, level_hu) == (self.window_hu, self.level_hu):
            return
        self.window_hu, self.level_hu = window_hu, level_hu
        self.window_level_changed.emit(window_hu, level_hu)

    def apply_preset(self, name: str) -> None:
        for preset in WINDOW_PRESETS:
            if preset.name.lower() == name.lower():
                self.set_window_level(preset.window_hu, preset.level_hu)
                return
        raise ValueError(f"unknown window preset {name!r}")

    # ------------------------------------------------------------------ probing
    def hu_at(self, xyz_mm: ArrayLike) -> float:
        """Nearest-voxel HU at an LPS position (mm); NaN outside the volume or with none."""
        if self.volume is None:
            return float("nan")
        return float(self.volume.hu_at_world(np.asarray(xyz_mm, dtype=np.float64)))
