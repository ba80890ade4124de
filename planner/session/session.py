"""The viewing/planning session: a Qt-free model the GUI observes.

Two kinds of state, kept in separate objects:

* **document state** — :attr:`Session.case`, an immutable
  :class:`~planner.open_case.OpenedCase` (the CT, its structures and import report: what a plan
  file will hold or reference). Replaced as a whole; only document state will be undoable.
* **view state** — :attr:`Session.view`, a :class:`ViewState` (linked crosshair in LPS mm,
  window/level in HU, structure visibility). Never undoable, never saved in a plan.

Signals (:mod:`planner.session.evented`: psygnal, weak references, every listener runs even
when one raises; emitted synchronously in the calling thread — the GUI mutates the session
only on its own thread):

* ``Session.volume_changed()``: a new case (or none) was set; the view state was reset.
* ``ViewState.crosshair_changed(xyz_mm)``: the crosshair moved, ``(3,)`` LPS mm.
* ``ViewState.window_level_changed(window_hu, level_hu)``.
* ``ViewState.visibility_changed(name, visible)``: a structure was shown or hidden.

For convenience the session forwards the view state's signals and setters
(``session.crosshair_changed`` is ``session.view.crosshair_changed``). Scripts and tests drive
the same object without a window: ``session.set_case(open_case(path))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, Mask
from planner.open_case import OpenedCase
from planner.session.evented import IsolatingSignalInstance, Signal

if TYPE_CHECKING:
    from planner.plan.document import PlanDocument

__all__ = ["WINDOW_PRESETS", "Session", "ViewState", "WindowPreset"]


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


class ViewState:
    """What the views show of the document: crosshair, window/level, structure visibility."""

    crosshair_changed = Signal(object)
    window_level_changed = Signal(float, float)
    visibility_changed = Signal(str, bool)

    def __init__(self) -> None:
        self._geometry: GridGeometry | None = None
        self._crosshair_mm: NDArray[np.float64] = np.zeros(3)
        self.window_hu: float = WINDOW_PRESETS[0].window_hu
        self.level_hu: float = WINDOW_PRESETS[0].level_hu
        self._hidden: set[str] = set()

    def reset(self, geometry: GridGeometry | None) -> None:
        """New document: crosshair on the central voxel, soft-tissue window, all shown.

        Emits nothing (the session announces the new document with ``volume_changed``).
        """
        self._geometry = geometry
        if geometry is not None:
            # The central voxel's centre: every view starts on a real slice, not between two.
            centre_ijk = np.floor((np.asarray(geometry.shape_xyz) - 1) / 2.0)
            self._crosshair_mm = geometry.index_to_world(centre_ijk)
        else:
            self._crosshair_mm = np.zeros(3)
        preset = WINDOW_PRESETS[0]
        self.window_hu, self.level_hu = preset.window_hu, preset.level_hu
        self._hidden.clear()

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
        if self._geometry is not None:
            ijk = self._geometry.world_to_index(xyz)
            ijk = np.clip(ijk, 0, np.asarray(self._geometry.shape_xyz) - 1)
            if snap:
                ijk = np.rint(ijk)
            xyz = self._geometry.index_to_world(ijk)
        if np.allclose(xyz, self._crosshair_mm, atol=1e-9):
            return
        self._crosshair_mm = xyz
        self.crosshair_changed.emit(xyz.copy())

    # ------------------------------------------------------------------ window / level
    def set_window_level(self, window_hu: float, level_hu: float) -> None:
        """Display window width and centre (HU); the width is at least 1 HU."""
        window_hu = max(float(window_hu), _MIN_WINDOW_HU)
        level_hu = float(level_hu)
        if not (np.isfinite(window_hu) and np.isfinite(level_hu)):
            raise ValueError("window and level must be finite")
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

    # ------------------------------------------------------------------ visibility
    def is_visible(self, name: str) -> bool:
        return name not in self._hidden

    def set_visible(self, name: str, visible: bool) -> None:
        """Show or hide the structure ``name`` in every view."""
        if visible == self.is_visible(name):
            return
        (self._hidden.discard if visible else self._hidden.add)(name)
        self.visibility_changed.emit(name, bool(visible))


class Session:
    """The current case (an :class:`OpenedCase` or None), the plan being edited on it (a
    :class:`~planner.plan.document.PlanDocument` or None) and the :class:`ViewState`.

    ``document_changed(document)`` is emitted when a plan is opened, created or closed (None);
    edits inside a plan are the document's own events (``document.events.changed``).
    """

    volume_changed = Signal()
    document_changed = Signal(object)

    def __init__(self) -> None:
        self.case: OpenedCase | None = None
        self.document: PlanDocument | None = None
        self.view = ViewState()

    def set_document(self, document: PlanDocument | None) -> None:
        """Make ``document`` the plan being edited (None: no plan), then ``document_changed``."""
        self.document = document
        self.document_changed.emit(document)

    # ------------------------------------------------------------------ document
    def set_case(self, case: OpenedCase | None) -> None:
        """Show ``case`` (None: nothing); the view state is reset, then ``volume_changed``."""
        self.case = case
        self.view.reset(case.volume.geometry if case is not None else None)
        self.volume_changed.emit()

    def set_volume(
        self,
        volume: CTVolume | None,
        *,
        masks: Mapping[str, Mask] | None = None,
        report_lines: Sequence[str] | None = None,
        source_path: Path | str | None = None,
    ) -> None:
        """Show a volume built in memory (scripts, tests): :meth:`set_case` of an OpenedCase.

        Raises ValueError when a mask is not on the volume's grid.
        """
        if volume is None:
            self.set_case(None)
            return
        source = Path(source_path or volume.source_path or "(in memory)")
        self.set_case(
            OpenedCase(
                volume=volume,
                source_path=source,
                masks=dict(masks or {}),
                report_lines=tuple(report_lines or ()),
                series_uid=volume.info.series_instance_uid,
            )
        )

    @property
    def volume(self) -> CTVolume | None:
        return self.case.volume if self.case is not None else None

    @property
    def masks(self) -> Mapping[str, Mask]:
        return self.case.masks if self.case is not None else {}

    @property
    def report_lines(self) -> tuple[str, ...]:
        return self.case.report_lines if self.case is not None else ()

    @property
    def source_path(self) -> Path | None:
        return self.case.source_path if self.case is not None else None

    @property
    def has_volume(self) -> bool:
        return self.case is not None

    # ------------------------------------------------------------------ view-state shortcuts
    @property
    def crosshair_changed(self) -> IsolatingSignalInstance:
        return self.view.crosshair_changed  # type: ignore[return-value]

    @property
    def window_level_changed(self) -> IsolatingSignalInstance:
        return self.view.window_level_changed  # type: ignore[return-value]

    @property
    def crosshair_mm(self) -> NDArray[np.float64]:
        """Crosshair position, ``(3,)`` LPS mm (a copy)."""
        return self.view.crosshair_mm

    def set_crosshair(self, xyz_mm: ArrayLike, *, snap: bool = True) -> None:
        self.view.set_crosshair(xyz_mm, snap=snap)

    @property
    def window_hu(self) -> float:
        return self.view.window_hu

    @property
    def level_hu(self) -> float:
        return self.view.level_hu

    def set_window_level(self, window_hu: float, level_hu: float) -> None:
        self.view.set_window_level(window_hu, level_hu)

    def apply_preset(self, name: str) -> None:
        self.view.apply_preset(name)

    def crosshair_index_ijk(self) -> NDArray[np.float64]:
        """Crosshair as a continuous (i, j, k) index of the current volume."""
        if self.volume is None:
            raise ValueError("no volume loaded")
        return self.volume.geometry.world_to_index(self.view.crosshair_mm)

    # ------------------------------------------------------------------ probing
    def hu_at(self, xyz_mm: ArrayLike) -> float:
        """Nearest-voxel HU at an LPS position (mm); NaN outside the volume or with none."""
        if self.volume is None:
            return float("nan")
        return float(self.volume.hu_at_world(np.asarray(xyz_mm, dtype=np.float64)))
