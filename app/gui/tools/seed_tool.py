"""Direct manipulation on the 2-D views: drag seeds and needle ends, select, add, delete.

Installed as a Qt event filter on each 2-D view; it consumes a mouse press only when it grabs
something, so the view's own navigation (crosshair, pan, window/level) runs otherwise.

* Left-press on a seed drawn on the slice (within ``GRAB_PX``) and drag: a seed on a needle
  moves **along its needle** (the mouse position projected onto the track,
  :class:`~planner.plan.needle_commands.MoveSeedAlongNeedle`); a free seed moves in the plane.
* Left-press on a needle's entry (square) or tip (diamond) handle and drag: that end moves in
  the view's plane (its seeds follow, keeping their distance from the tip).
* A click on a needle's drawn track selects it (and still moves the crosshair).
* Ctrl+left-click on a needle's track adds a seed there (on the needle).
* Delete (Plan → Delete selected): the selected seed, else the selected needle and its seeds.

Each drag is one undo step (``PlanningUI.drag`` → ``PlanDocument.stroke``); the live isodoses
follow every mouse move, the exact dose refreshes once the button is released.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QMouseEvent

from planner.plan.needle_commands import (
    AddSeedOnNeedle,
    DeleteNeedle,
    DeleteSeeds,
    MoveNeedle,
    MoveSeed,
    MoveSeedAlongNeedle,
    distance_from_tip_mm,
)

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from app.gui.views.slice_view import SliceView

__all__ = ["GRAB_PX", "SeedTool", "point_segment_distance_px"]

GRAB_PX = 8.0


def point_segment_distance_px(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    """Distance (px) from point ``p`` to the segment ``a``–``b`` on screen."""
    pa, ba = np.subtract(p, a), np.subtract(b, a)
    denom = float(ba @ ba)
    t = 0.0 if denom < 1e-12 else float(np.clip((pa @ ba) / denom, 0.0, 1.0))
    return float(np.linalg.norm(pa - t * ba))


class SeedTool(QObject):
    """Drags and selection on the 2-D views (module docstring)."""

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__(planning)
        self.planning = planning
        self._grab: dict[str, Any] | None = None
        self._stroke: contextlib.ExitStack | None = None

    # ------------------------------------------------------------------ hit tests
    def seed_at(self, view: SliceView, x: float, y: float) -> str | None:
        layer = self.planning.view_layers[view]["seeds"]
        best, best_d = None, GRAB_PX
        for sid, (sx, sy) in layer.seeds_px.items():
            d = float(np.hypot(sx - x, sy - y))
            if d <= best_d:
                best, best_d = sid, d
        return best

    def handle_at(self, view: SliceView, x: float, y: float) -> tuple[str, str] | None:
        layer = self.planning.view_layers[view]["needles"]
        best, best_d = None, GRAB_PX
        for key, (hx, hy) in layer.handles_px.items():
            d = float(np.hypot(hx - x, hy - y))
            if d <= best_d:
                best, best_d = key, d
        return best

    def needle_at(self, view: SliceView, x: float, y: float) -> str | None:
        layer = self.planning.view_layers[view]["needles"]
        best, best_d = None, 5.0
        plan = self.planning.plan
        if plan is None:
            return None
        for needle in plan.needles:
            ends = layer.track_px.get(needle.id)
            if ends is None:
                continue
            d = point_segment_distance_px((x, y), ends[0], ends[1])
            if d <= best_d:
                best, best_d = needle.id, d
        return best

    # ------------------------------------------------------------------ events
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        planning = self.planning
        if planning.document is None or obj not in planning.view_layers:
            return False
        if planning.any_tool_armed:
            return False  # a placement, measuring or contouring tool has the mouse
        view: SliceView = obj  # type: ignore[assignment]
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress:
            return self._press(view, event)  # type: ignore[arg-type]
        if kind == QEvent.Type.MouseMove and self._grab is not None:
            self._move(view, event)  # type: ignore[arg-type]
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._grab is not None:
            self._release()
            return True
        return False

    def _press(self, view: SliceView, ev: QMouseEvent) -> bool:
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        mods = ev.modifiers()
        if mods & Qt.KeyboardModifier.ShiftModifier:
            return False  # Shift+drag pans
        x, y = ev.position().x(), ev.position().y()
        planning = self.planning
        plan = planning.plan
        assert plan is not None
        if mods & Qt.KeyboardModifier.ControlModifier:
            nid = self.needle_at(view, x, y)
            if nid is None:
                return False
            needle = next(n for n in plan.needles if n.id == nid)
            dist = distance_from_tip_mm(needle, view.display_to_world(x, y))
            cmd = AddSeedOnNeedle(nid, dist)
            if planning.execute(cmd):
                planning.select(nid, cmd.seed_id)
            return True
        sid = self.seed_at(view, x, y)
        handle = self.handle_at(view, x, y)
        if sid is not None and handle is not None:  # the nearer one wins
            sx, sy = self.planning.view_layers[view]["seeds"].seeds_px[sid]
            hx, hy = self.planning.view_layers[view]["needles"].handles_px[handle]
            if np.hypot(hx - x, hy - y) < np.hypot(sx - x, sy - y):
                sid = None
        if sid is not None:
            seed = next(s for s in plan.seeds if s.id == sid)
            planning.select(seed.needle_id, sid)
            self._begin(
                view,
                {
                    "kind": "seed",
                    "id": sid,
                    "free": seed.needle_id is None,
                    "start_mm": np.asarray(seed.position_mm, float),
                    "press_mm": view.display_to_world(x, y),
                },
                "Move seed",
            )
            return True
        if handle is not None:
            nid, end = handle
            needle = next(n for n in plan.needles if n.id == nid)
            planning.select(nid, None)
            start = np.asarray(needle.entry_mm if end == "entry" else needle.tip_mm, float)
            self._begin(
                view,
                {
                    "kind": end,
                    "id": nid,
                    "start_mm": start,
                    "press_mm": view.display_to_world(x, y),
                },
                f"Move needle {end}",
            )
            return True
        nid = self.needle_at(view, x, y)
        if nid is not None:
            planning.select(nid, None)
        return False

    def _begin(self, view: SliceView, grab: dict[str, Any], label: str) -> None:
        self._grab = {**grab, "view": view}
        stack = contextlib.ExitStack()
        stack.enter_context(self.planning.drag(label))
        self._stroke = stack

    def _move(self, view: SliceView, ev: QMouseEvent) -> None:
        g = self._grab
        assert g is not None
        if view is not g["view"]:
            return
        here: NDArray[np.float64] = view.display_to_world(ev.position().x(), ev.position().y())
        delta = here - g["press_mm"]
        target = g["start_mm"] + delta
        p = (float(target[0]), float(target[1]), float(target[2]))
        if g["kind"] == "seed":
            cmd = MoveSeed(g["id"], p) if g["free"] else MoveSeedAlongNeedle(g["id"], position_mm=p)
        elif g["kind"] == "entry":
            cmd = MoveNeedle(g["id"], entry_mm=p, label="Move needle entry")
        else:
            cmd = MoveNeedle(g["id"], tip_mm=p, label="Move needle tip")
        self.planning.execute(cmd)

    def _release(self) -> None:
        self._grab = None
        if self._stroke is not None:
            stroke, self._stroke = self._stroke, None
            stroke.close()

    # ------------------------------------------------------------------ delete
    def delete_selected(self) -> None:
        planning = self.planning
        plan = planning.plan
        if plan is None:
            return
        if planning.selected_seed_id is not None:
            if planning.execute(DeleteSeeds([planning.selected_seed_id], label="Delete seed")):
                planning.select(planning.selected_needle_id, None)
        elif planning.selected_needle_id is not None:
            if planning.execute(DeleteNeedle(planning.selected_needle_id)):
                planning.select(None, None)
        else:
            planning.window.statusBar().showMessage("Select a needle or a seed first", 4000)
