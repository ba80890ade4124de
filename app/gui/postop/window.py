# ruff: noqa: N802  (Qt method names: closeEvent)
"""Post-op verification mode: the post-op CT with its detected seeds, review, registration check.

A window of its own beside the planning views (the plan and its CT stay on the main window):

* left: an axial view of the **post-op CT** (a second :class:`~planner.session.session.Session`
  with its own crosshair) with the detected seeds as a layer
  (:class:`app.gui.postop.seeds_layer.SeedMarkersLayer`), the excluded metal and the painted
  exclusion region (:mod:`app.gui.postop.exclusion`);
* toolbar: open the post-op CT, *Detect & verify* (off the GUI thread with progress and cancel:
  :mod:`app.gui.postop.verification`), the seed edits — add, delete, merge, split, undoable
  (:mod:`app.gui.postop.seed_edits`) — the intra-op plan, and *Save verified copy…* (the plan
  with the implanted seeds and the verification record, :mod:`app.gui.postop.verified_copy`);
  a second toolbar holds the exclusion brush;
* right, in tabs: the **comparison table** (planned, intra-op when an intra-op plan is given,
  post-op, difference), **both DVHs**, the **Seeds** (where every detected seed lies: inside
  the target, outside it, migrated far from every planned needle,
  :mod:`planner.postop.locations`; migrated seeds are drawn red; a click on a row puts the
  crosshair on that seed, selecting it), the **Metal** the detection
  excluded, and the **registration** check with its manual nudge, stored in the plan
  (:mod:`app.gui.postop.registration_tab`).

This module lays the window out and holds what the parts share: the post-op CT, the review
(:class:`planner.postop.edits.PostopReview`), the intra-op column, and :meth:`refresh`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs.task_progress import TaskRunner
from app.gui.layers.base import Subscriptions
from app.gui.postop.actions import make_action
from app.gui.postop.exclusion import ExclusionTools
from app.gui.postop.overlays import ExclusionMask, MaskRegion
from app.gui.postop.panels import ComparisonTable, DVHPlot, SeedLocationTable
from app.gui.postop.registration_tab import RegistrationTab
from app.gui.postop.seed_edits import SeedEditTools
from app.gui.postop.seeds_layer import SeedMarkersLayer
from app.gui.postop.verification import VerificationRun
from app.gui.views.slice_view import Orientation, SliceView
from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn
from planner.imaging.volume import CTVolume
from planner.plan.document import PlanDocument
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan, Registration
from planner.postop.edits import EditedSeeds, PostopReview
from planner.postop.register import RigidTransform
from planner.postop.verify import comparison_order
from planner.session.session import Session

if TYPE_CHECKING:
    from app.gui.window_protocols import SessionWindow

__all__ = ["PostopWindow", "intraop_seed_counts"]


class PostopWindow(QMainWindow):
    """The post-op mode of ``main`` (module docstring)."""

    def __init__(self, main: SessionWindow) -> None:
        super().__init__(main)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setObjectName("postop_window")
        self.setWindowTitle("SeedPlan — post-op verification")
        self.main = main
        self.postop_session = Session()
        self.postop_ct: CTVolume | None = None
        self.review: PostopReview | None = None
        self.intraop: PlanDosimetry | None = None
        #: The intra-op plan's seed counts ("seeds_total", "seeds_inside" …) for the Seeds rows.
        self.intraop_counts: dict[str, float] | None = None
        #: True once the window is closing (listeners ignore late events).
        self.closing = False
        self._subscriptions = Subscriptions()
        self.runner = TaskRunner()
        self.seed_tools = SeedEditTools(self)

        self.view = SliceView(self.postop_session, Orientation.AXIAL)
        self.seeds_layer = SeedMarkersLayer(
            self.view,
            self.postop_session,
            self.view.normal,
            self._seeds,
            self.selected_index,
            self._seed_locations,
        )
        self.view.layers.append(self.seeds_layer)
        self.table = ComparisonTable()
        self.dvh = DVHPlot()
        self.summary = QLabel("Open the post-op CT, then Detect & verify.")
        self.summary.setObjectName("postop_summary")
        self.summary.setWordWrap(True)
        self.runner.state_changed.connect(self.update_actions)
        self.runner.failed.connect(self._task_failed)
        self.verifier = VerificationRun(self)
        self.registration = RegistrationTab(self)
        self._build_toolbar()
        self.exclusion_tools = ExclusionTools(self)
        self._alias_parts()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.legend = QLabel(
            "Post-op CT — seeds: cyan detected, orange edited, red migrated, yellow "
            "selected (nearest the crosshair); magenta outline: non-seed metal excluded "
            "(Metal tab); white hatched: exclusion region painted (never searched)"
        )
        self.legend.setObjectName("postop_legend")
        self.legend.setWordWrap(True)
        left_layout.addWidget(self.legend)
        left_layout.addWidget(self.view, 1)
        self.tabs = QTabWidget()
        table_page = QWidget()
        tl = QVBoxLayout(table_page)
        tl.addWidget(self.summary)
        tl.addWidget(self.table, 1)
        self.tabs.addTab(table_page, "Comparison")
        self.tabs.addTab(self.dvh, "DVH")
        self.locations = SeedLocationTable()
        self.locations.cellClicked.connect(self._on_seed_row_clicked)
        self.tabs.addTab(self.locations, "Seeds")
        self.tabs.addTab(self.exclusion_tools.metal_page, "Metal")
        self.tabs.addTab(self.registration_page, "Registration")
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setSizes([620, 640])
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.addWidget(splitter, 1)
        outer.addWidget(self.runner)
        self.setCentralWidget(central)
        self.postop_session.crosshair_changed.connect(self.update_actions)
        self.resize(1300, 820)
        self._subscriptions.listen(main.session.document_changed, self.registration.on_document)
        self.registration.on_document(main.session.document)
        self.update_actions()

    # ------------------------------------------------------------------ construction
    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Post-op")
        bar.setObjectName("postop_toolbar")
        self.open_action = make_action(self, "Open post-op CT…", self._ask_open, "Ctrl+O")
        self.verify_action = make_action(
            self,
            "Detect && verify",
            self.run_verification,
            "Ctrl+R",
            "Find the seeds, register to the plan, compute the post-plan dose",
        )
        self.intraop_action = make_action(
            self,
            "Intra-op plan…",
            self._ask_intraop,
            None,
            "Add the intra-op plan's column to the comparison",
        )
        self.save_copy_action = make_action(
            self,
            "Save verified copy…",
            lambda: self.save_verified_copy(),
            "Ctrl+Shift+S",
            "Write the plan with the implanted seeds and this verification (for the report)",
        )
        for a in (self.open_action, self.verify_action):
            bar.addAction(a)
        bar.addSeparator()
        for a in self.seed_tools.actions:
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.intraop_action)
        bar.addAction(self.save_copy_action)

    def _alias_parts(self) -> None:
        """The parts' widgets and actions under the window's names (tests and scripts)."""
        edits, ex, reg = self.seed_tools, self.exclusion_tools, self.registration
        self.add_action, self.delete_action = edits.add_action, edits.delete_action
        self.merge_action, self.split_action = edits.merge_action, edits.split_action
        self.undo_action, self.redo_action = edits.undo_action, edits.redo_action
        self.paint_action, self.radius_spin, self.sphere_check = (
            ex.paint_action,
            ex.radius_spin,
            ex.sphere_check,
        )
        self.undo_exclusion_action = ex.undo_action
        self.redo_exclusion_action = ex.redo_action
        self.clear_exclusion_action = ex.clear_action
        self.metal_layer, self.exclusion_layer = ex.metal_layer, ex.exclusion_layer
        self.metal_table = ex.metal_table
        self.registration_page = reg.page
        self.fusion_label, self.fusion_mode = reg.fusion_label, reg.fusion_mode
        self.slice_offset, self.transform_label = reg.slice_offset, reg.transform_label
        self.nudge_buttons = reg.nudge_buttons
        self.undo_nudge_button = reg.undo_nudge_button
        self.reset_nudge_button = reg.reset_nudge_button
        self._reverify_timer = self.verifier.reverify_timer

    # ------------------------------------------------------------------ inputs
    @property
    def plan(self) -> Plan | None:
        doc = self.main.session.document
        return doc.plan if doc is not None else None

    @property
    def planning_ct(self) -> CTVolume | None:
        return self.main.session.volume

    @property
    def document(self) -> PlanDocument | None:
        return self.main.session.document

    def stored_registration(self) -> Registration | None:
        """The plan's stored registration when it belongs to the open post-op CT, else None."""
        plan, post = self.plan, self.postop_ct
        if plan is None or post is None or plan.registration is None:
            return None
        return plan.registration if plan.registration.matches(post) else None

    def _task_failed(self, message: str) -> None:
        """Background work that failed (a post-op CT that cannot be read, a verification
        that cannot run): the message stays on the progress line; a dialog too when a user
        is there to read it (not under ``--screenshot`` or in tests)."""
        if self.main.interactive and not self.closing:
            QMessageBox.warning(self, "Post-op verification", message)

    def _ask_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open the post-op CT (DICOM folder)")
        if folder:
            self.open_postop(folder)

    def open_postop(self, path: str) -> None:
        """Load the post-op CT from ``path`` (DICOM folder or image file) in the background."""
        from planner.imaging.ct_loader import load_ct

        def task(progress: ProgressFn, cancel: CancelFn) -> CTVolume:
            return load_ct(path, progress=progress, cancel=cancel)[0]

        self.runner.run(task, self.set_postop_ct, f"Opening {path}…")

    def set_postop_ct(self, ct: CTVolume) -> None:
        """Show ``ct`` as the post-op CT; any earlier verification is dropped."""
        self.postop_ct = ct
        self.review = None
        self.verifier.generation += 1
        self.exclusion_tools.reset(ct.geometry)
        self.postop_session.set_volume(ct)
        stored = self.stored_registration()
        self.summary.setText(
            "Post-op CT loaded; press Detect & verify."
            + (" The registration stored in the plan is shown." if stored is not None else "")
        )
        self.refresh()

    def _ask_intraop(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Intra-op plan", "", "SeedPlan plans (*.seedplan);;All files (*)"
        )
        if not file:
            return
        from planner.plan.plan_file import load_plan

        ct = self.planning_ct

        def task(progress: ProgressFn, cancel: CancelFn) -> tuple[PlanDosimetry, dict[str, float]]:
            plan = load_plan(file).plan
            if ct is None:
                raise InputError("no planning CT is open")
            plan.check_ct(ct, where=file)
            return (
                compute_plan_dosimetry(plan, ct, progress=progress, cancel=cancel),
                intraop_seed_counts(plan),
            )

        self.runner.run(task, lambda r: self.set_intraop(*r), "Computing the intra-op plan's dose…")

    def set_intraop(
        self, dosimetry: PlanDosimetry | None, counts: dict[str, float] | None = None
    ) -> None:
        """Add (None: remove) the intra-op plan's column to the comparison; ``counts``: its
        seed counts for the "Seeds" rows (:func:`intraop_seed_counts`)."""
        self.intraop = dosimetry
        self.intraop_counts = counts if dosimetry is not None else None
        self.refresh()

    # ------------------------------------------------------------------ the parts, by name
    def run_verification(self) -> bool:
        """Detect & verify in the background (:meth:`VerificationRun.run`)."""
        return self.verifier.run()

    def save_verified_copy(self, path: str | Path | None = None) -> Path | None:
        """Write the verification as a plan file (:mod:`app.gui.postop.verified_copy`)."""
        from app.gui.postop.verified_copy import save_verified_copy

        return save_verified_copy(self, path)

    def start_reverify(self) -> None:
        self.verifier.start_reverify()

    def selected_index(self) -> int | None:
        """The seed nearest the post-op crosshair (within 5 mm), the one edits act on."""
        return self.seed_tools.selected_index()

    def add_seed_at_crosshair(self) -> None:
        self.seed_tools.add_seed_at_crosshair()

    def delete_selected(self) -> None:
        self.seed_tools.delete_selected()

    def merge_selected(self) -> None:
        self.seed_tools.merge_selected()

    def split_selected(self) -> None:
        self.seed_tools.split_selected()

    def undo(self) -> None:
        self.seed_tools.undo()

    def redo(self) -> None:
        self.seed_tools.redo()

    @property
    def exclusion(self) -> ExclusionMask | None:
        """The painted exclusion region (None before a post-op CT is open)."""
        return self.exclusion_tools.mask

    @property
    def metal(self) -> list[MaskRegion | None]:
        """The excluded metal's voxels, one per ``detection.metal`` object."""
        return self.exclusion_tools.metal

    def paint_exclusion(self, path_mm: np.ndarray) -> bool:
        return self.exclusion_tools.paint(path_mm)

    def undo_exclusion(self) -> None:
        self.exclusion_tools.undo()

    def redo_exclusion(self) -> None:
        self.exclusion_tools.redo()

    def clear_exclusion(self) -> None:
        self.exclusion_tools.clear()

    @property
    def store_note(self) -> str:
        """Why the registration is not in the plan ("" when it is, or there is none yet)."""
        return self.registration.store_note

    @property
    def fusion_rgb(self) -> np.ndarray | None:
        """The registration check image last drawn, (h, w, 3) uint8."""
        return self.registration.fusion_rgb

    def fusion_transform(self) -> RigidTransform | None:
        return self.registration.fusion_transform()

    def refresh_fusion(self) -> None:
        self.registration.refresh_fusion()

    def nudge(self, shift_mm: object = (0, 0, 0), rotation_deg: object = (0, 0, 0)) -> None:
        self.registration.nudge(shift_mm, rotation_deg)

    def reset_registration(self) -> bool:
        return self.registration.reset_registration()

    def store_registration(self, label: str) -> bool:
        return self.registration.store_registration(label)

    # ------------------------------------------------------------------ views
    def focus_view(self, centre_mm: np.ndarray, half_height_mm: float = 45.0) -> None:
        """Zoom the post-op view onto ``centre_mm`` (the implant), ± ``half_height_mm``."""
        view = self.view
        view.reset_camera()
        camera = view.renderer.GetActiveCamera()
        fp = np.asarray(camera.GetFocalPoint())
        right = np.cross(view.normal, np.asarray(view.orientation.spec.view_up, float))
        up = np.asarray(view.orientation.spec.view_up, float)
        d = np.asarray(centre_mm, float) - fp
        view.pan_mm(-(d @ right), -(d @ up))
        view.zoom(camera.GetParallelScale() / half_height_mm)

    def _seeds(self) -> EditedSeeds | None:
        return self.review.edits.seeds if self.review is not None else None

    def _seed_locations(self) -> tuple[str, ...] | None:
        """Each reviewed seed's location, when the verification shown is of these seeds."""
        review = self.review
        if review is None or review.verification.locations is None:
            return None
        locs = review.verification.locations.seeds
        if len(locs) != len(review.edits.seeds):
            return None
        return tuple(s.location for s in locs)

    def _on_seed_row_clicked(self, row: int, _column: int) -> None:
        """A Seeds row clicked: the crosshair on that seed (post-op view), which selects it."""
        review = self.review
        if review is None or not 0 <= row < len(self.locations.order):
            return
        i = self.locations.order[row]
        if i < len(review.edits.seeds):
            self.postop_session.set_crosshair(review.edits.seeds.positions_mm[i], snap=False)

    def edited(self) -> None:
        """The seeds or the registration changed: redraw them, re-verify soon."""
        self.seeds_layer.update()
        self.verifier.schedule_reverify()
        self.update_actions()

    def update_actions(self, *_args: object) -> None:
        busy = self.runner.busy
        self.verify_action.setEnabled(not busy)
        self.open_action.setEnabled(not busy)
        self.save_copy_action.setEnabled(not busy and self.review is not None)
        self.seed_tools.update_actions()
        self.registration.update_actions()
        self.exclusion_tools.update_actions()
        self.verifier.after_update()

    def refresh(self) -> None:
        """Show the review: seeds, outlines, summary, every tab."""
        self.seeds_layer.update()
        review = self.review
        v = review.verification if review is not None else None
        self.exclusion_tools.refresh(v.detection.metal if v is not None else None)
        self.update_actions()
        if v is None:
            self.table.setRowCount(0)
            self.locations.show_locations(None)
            self.registration.clear()
            return
        lines = v.summary_lines()  # the seed count said once
        excluded_mm3 = self.exclusion_tools.verified_mm3
        if excluded_mm3 > 0:
            lines.insert(
                1,
                f"exclusion region painted: {excluded_mm3 / 1000.0:.1f} cm³ "
                "never searched for seeds",
            )
        lines += [f"⚠ {w}" for w in v.warnings]
        self.summary.setText("\n".join(lines))
        plan = self.plan
        order = comparison_order(plan) if plan is not None else None
        self.table.show_rows(v.comparison, self.intraop, self.intraop_counts, order)
        self.locations.show_locations(v.locations)
        self.dvh.show_dvhs(v.planned, v.postop)
        self.registration.refresh_fusion()
        self.registration.show_transform()

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.closing:
            self.closing = True
            self.verifier.stop()
            self._subscriptions.close()
            self.registration.close()
            self.runner.wait(10.0)
            self.exclusion_tools.close()
            self.seeds_layer.close()
            self.view.finalize()
        super().closeEvent(event)


def intraop_seed_counts(plan: Plan) -> dict[str, float]:
    """The Seeds rows' values of an intra-op plan: its seeds, and where they lie against its
    own targets and needles (:func:`planner.postop.locations.locate_seeds`)."""
    from planner.postop.locations import locate_seeds

    positions = np.array([s.position_mm for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    counts = locate_seeds(plan, positions).counts()
    out = {"seeds_total": float(len(positions))}
    out.update({f"seeds_{k}": float(counts[k]) for k in ("inside", "outside", "migrated")})
    return out
