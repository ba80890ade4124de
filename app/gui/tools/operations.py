"""Whole-structure operations of the Contour menu, each one undo step.

Fill between slices (ITK's morphological contour interpolation, on a worker: its first use in a
process loads ITK), smoothing, islands, margins in mm, booleans, bone by threshold and the usual
PTV in one click: GTV + :data:`PTV_MARGIN_MM` minus (SpinalCord + :data:`PTV_CORD_MARGIN_MM`).
Refusals (a margin below one voxel, nothing drawn …) are shown in one clear line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtWidgets import QInputDialog, QMessageBox

from app.gui.tools.base import apply_patch
from app.gui.tools.click_tools import ensure_structure
from app.gui.window_protocols import SessionWindow, StatusWindow
from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn
from planner.plan.commands import AddStructure
from planner.plan.document import PlanDocument
from planner.plan.model import Role, Structure
from planner.structures import booleans, islands, margins, smoothing
from planner.structures.interpolate import fill_between_slices
from planner.structures.spine import bone_by_threshold, make_ptv

if TYPE_CHECKING:
    from app.gui.plan_controller import PlanController
    from app.gui.tools.base import ToolManager

__all__ = ["PTV_CORD_MARGIN_MM", "PTV_MARGIN_MM", "OperationsWindow", "StructureOperations"]

PTV_MARGIN_MM = 5.0
PTV_CORD_MARGIN_MM = 2.0

Patch = tuple[tuple[slice, slice, slice], Any]


class OperationsWindow(SessionWindow, StatusWindow, Protocol):
    """What the structure operations use of the window (the main window, their dialogs'
    parent): the session, the plan controller (is the plan editable now?), the tool manager
    (the current structure), a worker for the slow ones, the status bar and whether to ask."""

    plan_controller: PlanController
    tool_manager: ToolManager

    @property
    def closing(self) -> bool: ...

    def run_task(
        self,
        task: Callable[[ProgressFn, CancelFn], Any],
        message: str,
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
    ) -> bool: ...


class StructureOperations:
    """The Contour menu's actions on ``window`` (module docstring)."""

    def __init__(self, window: OperationsWindow) -> None:
        self.window = window
        #: The last refusal (one line), also shown in the status bar and a dialog.
        self.last_error = ""
        self._box: QMessageBox | None = None

    @property
    def manager(self) -> ToolManager:
        return self.window.tool_manager

    def fail(self, message: str) -> None:
        """Show a refusal: status bar and a non-modal dialog (never blocks the event loop)."""
        self.last_error = message
        self.window.statusBar().showMessage(message, 10000)
        if self.window.interactive and not self.window.closing:
            self._box = QMessageBox(
                QMessageBox.Icon.Warning, "Contour", message, parent=self.window
            )
            self._box.open()

    def _current(self) -> tuple[PlanDocument, Structure] | None:
        found = self.manager.editable_structure()
        if found is None and self.window.session.document is not None:
            self.last_error = "no editable current structure"
        return found

    def _run(self, label: str, fn: Callable[[], Patch | None], structure_id: str) -> bool:
        doc = self.window.session.document
        assert doc is not None
        try:
            patch = fn()
        except (InputError, ValueError) as exc:
            self.fail(str(exc))
            return False
        if patch is None or not apply_patch(doc, structure_id, patch, label):
            self.window.statusBar().showMessage(f"{label}: nothing changed", 5000)
            return False
        self.last_error = ""
        return True

    # ------------------------------------------------------------------ fill between slices
    def fill_between(self, *, method: str = "morphological", wait: bool = False) -> None:
        """Fill the empty slices between the drawn ones of the current structure (the slices of
        the view last drawn on: axial k by default). Runs on a worker; one undo step."""
        found = self._current()
        if found is None:
            return
        doc, s = found
        view = self.manager.last_view
        axis = 0
        if view is not None and self.window.session.volume is not None:
            g = self.window.session.volume.geometry
            axis = 2 - int(np.argmax(np.abs(g.direction.T @ view.normal)))
        mask, geometry, state = s.mask, s.geometry, doc.state_counter

        def task(progress: ProgressFn, cancel: CancelFn) -> Patch:
            progress(0.1, "Filling between slices (ITK)…")
            return fill_between_slices(mask, geometry, axis=axis, method=method, name=s.name)

        def done(patch: Patch) -> None:
            if doc is not self.window.session.document or doc.state_counter != state:
                self.fail("The plan changed while filling between slices: run it again")
                return
            if apply_patch(doc, s.id, patch, f"Fill between slices of {s.name}"):
                self.last_error = ""

        self.window.run_task(task, f"Filling between slices of {s.name}…", done, self.fail)

    # ------------------------------------------------------------------ smoothing, islands
    def smooth(self, method: str = "median", kernel_mm: float = 3.0) -> None:
        found = self._current()
        if found is not None:
            _doc, s = found
            self._run(
                f"Smooth {s.name} ({method} {kernel_mm:g} mm)",
                lambda: smoothing.smooth(
                    s.mask, s.geometry, method=method, kernel_mm=kernel_mm, name=s.name
                ),
                s.id,
            )

    def keep_largest(self) -> None:
        found = self._current()
        if found is not None:
            _doc, s = found
            self._run(
                f"Keep largest island of {s.name}",
                lambda: islands.keep_largest_island(s.mask, s.geometry, name=s.name),
                s.id,
            )

    def remove_small(self, min_volume_mm3: float | None = None) -> None:
        found = self._current()
        if found is None:
            return
        _doc, s = found
        if min_volume_mm3 is None:
            value, ok = QInputDialog.getDouble(
                self.window, "Remove small islands", "Smallest island kept (mm³):", 50.0, 0.1,
                1e6, 1,
            )  # fmt: skip
            if not ok:
                return
            min_volume_mm3 = value
        v = float(min_volume_mm3)
        self._run(
            f"Remove islands < {v:g} mm³ from {s.name}",
            lambda: islands.remove_small_islands(s.mask, s.geometry, v, name=s.name),
            s.id,
        )

    # ------------------------------------------------------------------ margins, booleans
    def margin(
        self,
        source_name: str,
        margin_mm: float | tuple[float, float, float],
        *,
        shrink: bool = False,
        target_name: str | None = None,
    ) -> bool:
        """``target`` (default: the source itself; made when missing) = source ± margin (mm;
        one number or (x, y, z) along LPS). A margin below one voxel is refused."""
        doc = self.window.plan_controller.ensure_editable()
        if doc is None:
            return False
        src = doc.plan.structure_named(source_name)
        if src is None:
            self.fail(f"no structure called {source_name!r}")
            return False
        op = margins.shrink if shrink else margins.expand
        verb = "−" if shrink else "+"
        amount = margin_mm if np.isscalar(margin_mm) else "×".join(f"{m:g}" for m in margin_mm)  # type: ignore[union-attr]
        label = f"{target_name or src.name} = {src.name} {verb} {amount} mm"
        try:
            patch = op(src.mask, src.geometry, margin_mm, name=src.name)
        except (InputError, ValueError) as exc:
            self.fail(str(exc))
            return False
        with doc.transaction(label):
            target = src
            if target_name and target_name.strip().lower() != src.name.lower():
                target = self._target(doc, target_name, src.role, src.color_rgb)
                apply_patch(doc, target.id, _replace(target, src.mask), label)
            apply_patch(doc, target.id, patch, label)
        self.last_error = ""
        return True

    def boolean(self, op: str, a_name: str, b_name: str, target_name: str | None = None) -> bool:
        """``target`` (default A) = A op B, op one of union / intersect / subtract / xor."""
        doc = self.window.plan_controller.ensure_editable()
        if doc is None:
            return False
        a, b = doc.plan.structure_named(a_name), doc.plan.structure_named(b_name)
        if a is None or b is None:
            self.fail(f"no structure called {a_name if a is None else b_name!r}")
            return False
        label = f"{target_name or a.name} = {a.name} {op} {b.name}"
        try:
            patch = booleans.combine(op, a.mask, a.geometry, b.mask, name=a.name)
        except (InputError, ValueError) as exc:
            self.fail(str(exc))
            return False
        with doc.transaction(label):
            target = a
            if target_name and target_name.strip().lower() != a.name.lower():
                target = self._target(doc, target_name, a.role, a.color_rgb)
                apply_patch(doc, target.id, _replace(target, a.mask), label)
            apply_patch(doc, target.id, patch, label)
        return True

    def _target(
        self, doc: PlanDocument, name: str, role: Role, color_rgb: tuple[int, int, int]
    ) -> Structure:
        found = doc.plan.structure_named(name)
        if found is not None:
            return found
        cmd = AddStructure(name, np.zeros(doc.plan.geometry.shape_zyx, bool), role, color_rgb)
        doc.execute(cmd)
        return doc.plan.structure(cmd.structure_id)

    # ------------------------------------------------------------------ spine helpers
    def bone(self, hu_min: float = 200.0) -> bool:
        """Structure "Bone" (role other) = HU ≥ ``hu_min``, small islands removed."""
        doc = self.window.plan_controller.ensure_editable()
        volume = self.window.session.volume
        if doc is None or volume is None:
            return False
        with doc.transaction(f"Bone ≥ {hu_min:g} HU"):
            s = ensure_structure(doc, "Bone", "other", (230, 230, 210))
            ok = self._run(
                f"Bone ≥ {hu_min:g} HU",
                lambda: bone_by_threshold(s.mask, s.geometry, volume.hu, hu_min=hu_min),
                s.id,
            )
        return ok

    def make_ptv(
        self, margin_mm: float = PTV_MARGIN_MM, cord_margin_mm: float = PTV_CORD_MARGIN_MM
    ) -> bool:
        """PTV = GTV + ``margin_mm`` minus (SpinalCord + ``cord_margin_mm``), one undo step."""
        doc = self.window.plan_controller.ensure_editable()
        if doc is None:
            return False
        gtv = doc.plan.structure_named("GTV")
        if gtv is None or gtv.voxel_count == 0:
            self.fail("Make PTV: contour the GTV first")
            return False
        cord = doc.plan.structure_named("SpinalCord")
        avoid = cord.mask if cord is not None and cord.voxel_count else None
        label = f"PTV = GTV + {margin_mm:g} mm − (SpinalCord + {cord_margin_mm:g} mm)"
        try:
            with doc.transaction(label):
                ptv = ensure_structure(doc, "PTV", "target", (255, 128, 0))
                patch = make_ptv(
                    ptv.mask,
                    ptv.geometry,
                    gtv.mask,
                    margin_mm=margin_mm,
                    avoid=avoid,
                    avoid_margin_mm=cord_margin_mm,
                )
                apply_patch(doc, ptv.id, patch, label)
        except (InputError, ValueError) as exc:
            self.fail(str(exc))
            return False
        ptv = doc.plan.structure_named("PTV")
        assert ptv is not None
        note = "" if avoid is not None else " (no SpinalCord contoured: nothing subtracted)"
        self.window.statusBar().showMessage(f"PTV {ptv.volume_cm3:.1f} cm³{note}", 8000)
        self.last_error = ""
        return True


def _replace(target: Structure, values: Any) -> Patch:
    """The patch setting ``target`` to the full mask ``values`` (its box and the new extent)."""
    from planner.plan.masks import bounding_box, box_union

    full = np.asarray(values, bool)
    box = bounding_box(full)
    if target.voxel_count:
        box = box_union(box, target.box) if box[0].stop > box[0].start else target.box
    if box[0].stop <= box[0].start:
        return (box, np.zeros((0, 0, 0), bool))
    return (box, full[box].copy())
