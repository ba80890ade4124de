"""One-click tools: grow the spinal canal or cord from a click, keep the island under a click.

The canal (:func:`planner.structures.spine.grow_canal`) and the cord
(:func:`~planner.structures.spine.grow_cord`, inside the plan's SpinalCanal when it has one)
replace the content of the structures named SpinalCanal / SpinalCord (made when missing); each
click is one undo step.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.gui.tools.base import Tool, apply_patch
from app.gui.views.slice_view import SliceView
from dose.errors import InputError
from planner.plan.commands import AddStructure
from planner.plan.document import PlanDocument
from planner.plan.model import Role, Structure
from planner.structures.islands import keep_island_at
from planner.structures.spine import grow_canal, grow_cord

__all__ = ["CanalTool", "CordTool", "IslandTool", "ensure_structure"]


def ensure_structure(
    document: PlanDocument, name: str, role: Role, color_rgb: tuple[int, int, int]
) -> Structure:
    """The plan's structure called ``name``, added (empty) when it has none."""
    found = document.plan.structure_named(name)
    if found is not None:
        return found
    geometry = document.plan.geometry
    cmd = AddStructure(name, np.zeros(geometry.shape_zyx, bool), role, color_rgb)
    document.execute(cmd)
    return document.plan.structure(cmd.structure_id)


class _ClickTool(Tool):
    def release(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        return True

    def press(self, view: SliceView, xyz_mm: NDArray[np.float64], ev: QMouseEvent) -> bool:
        doc = self.window.plan_controller.ensure_editable()
        if doc is None:
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.clicked(doc, xyz_mm)
        except (InputError, ValueError) as exc:
            self.manager.report(exc)
        finally:
            QApplication.restoreOverrideCursor()
        return True

    def clicked(self, doc: PlanDocument, xyz_mm: NDArray[np.float64]) -> None:
        raise NotImplementedError


class CanalTool(_ClickTool):
    name = "canal"
    label = "Grow canal"
    shortcut = "C"
    tooltip = "Click inside the spinal canal (C): grows SpinalCanal slice by slice, bounded by bone"

    def clicked(self, doc: PlanDocument, xyz_mm: NDArray[np.float64]) -> None:
        volume = self.window.session.volume
        assert volume is not None
        with doc.transaction("Grow spinal canal"):
            s = ensure_structure(doc, "SpinalCanal", "oar", (0, 200, 255))
            if self._locked(s):
                return
            patch = grow_canal(s.mask, s.geometry, volume.hu, xyz_mm)
            apply_patch(doc, s.id, patch, "Grow spinal canal")
        s = doc.plan.structure(s.id)
        self.manager.set_current(s.id)
        self.manager.message.emit(f"SpinalCanal grown: {s.volume_cm3:.2f} cm³")

    def _locked(self, s: Structure) -> bool:
        from app.gui.layers.structures import structure_display

        if structure_display(self.window.session).is_locked(s.name):
            self.manager.message.emit(f"{s.name} is locked")
            return True
        return False


class CordTool(CanalTool):
    name = "cord"
    label = "Grow cord"
    shortcut = "K"
    tooltip = (
        "Click in the spinal cord where it is clearly seen (K): grows SpinalCord inside the "
        "canal (a starting contour: check it at the compression)"
    )

    def clicked(self, doc: PlanDocument, xyz_mm: NDArray[np.float64]) -> None:
        volume = self.window.session.volume
        assert volume is not None
        canal = doc.plan.structure_named("SpinalCanal")
        with doc.transaction("Grow spinal cord"):
            s = ensure_structure(doc, "SpinalCord", "oar", (255, 255, 0))
            if self._locked(s):
                return
            limit = canal.mask if canal is not None and canal.voxel_count else None
            patch = grow_cord(s.mask, s.geometry, volume.hu, xyz_mm, canal=limit)
            apply_patch(doc, s.id, patch, "Grow spinal cord")
        s = doc.plan.structure(s.id)
        self.manager.set_current(s.id)
        self.manager.message.emit(f"SpinalCord grown: {s.volume_cm3:.2f} cm³")


class IslandTool(_ClickTool):
    name = "island"
    label = "Keep island"
    shortcut = "I"
    tooltip = "Click a part of the current structure (I): keep only that connected piece"

    def clicked(self, doc: PlanDocument, xyz_mm: NDArray[np.float64]) -> None:
        found = self.manager.editable_structure()
        if found is None:
            return
        doc, s = found
        patch = keep_island_at(s.mask, s.geometry, xyz_mm, name=s.name)
        apply_patch(doc, s.id, patch, f"Keep island of {s.name}")
