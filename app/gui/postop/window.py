# ruff: noqa: N802  (Qt method names: closeEvent)
"""Post-op verification mode: the post-op CT with its detected seeds, review, registration check.

A window of its own beside the planning views (the plan and its CT stay on the main window):

* left: an axial view of the **post-op CT** (a second :class:`~planner.session.session.Session`
  with its own crosshair) with the detected seeds as a layer
  (:class:`app.gui.postop.seeds_layer.SeedMarkersLayer`);
* toolbar: open the post-op CT, *Detect & verify* (:func:`planner.postop.verify.verify_plan`
  off the GUI thread, with progress and cancel), and the seed edits — add a seed at the
  crosshair, delete / split the seed nearest it, merge it with its nearest neighbour — undoable
  (:class:`planner.postop.edits.SeedEdits`);
* right, in tabs: the **comparison table** (planned, intra-op when an intra-op plan is given,
  post-op, difference), **both DVHs**, and the **registration**: a checkerboard or colour fusion
  of the planning CT against the post-op CT mapped through the transform, with shift (1 mm) and
  rotate (0.5°, about the target centre) buttons.

After every edit or nudge the matching and the post-plan dose are recomputed in the background
(:func:`planner.postop.edits.reverify`, a fraction of a second); a result made for an older
state is dropped.

The registration lives in the plan (:class:`planner.plan.model.Registration`): the automatic
result and every manual correction are stored in the plan document by
:class:`planner.plan.commands.SetRegistration` (one undoable step each, in the plan's history),
so saving and reopening the plan restores it — opening the same post-op CT shows the stored
registration on the check image at once, and *Detect & verify* uses it instead of registering
again (*Automatic registration* registers anew). The window listens to the document: undoing
or redoing a stored registration in the plan shows it here. On an approved plan the
registration is stored too: it is a post-implant verification record, attached to the approved
revision without changing what was approved (status, approval, revision, structures, needles,
seeds and prescription stay as they are; the rule is :mod:`planner.plan.document`'s), with the
user and UTC time in the record, undoable like any other step; the transform label says
"stored in the approved plan (verification record)".
The **Seeds** tab lists where every detected seed lies (inside the target, outside it, migrated
far from every planned needle; :mod:`planner.postop.locations`); migrated seeds are drawn red.

**Non-seed metal** the detection excluded (pedicle screws, rods, cement, needles left in) is
outlined magenta on the view, numbered M1, M2 … as in the **Metal** tab (centre LPS mm,
volume mm³, seed equivalents, why excluded; a click on a row moves the crosshair there); its
voxels are found by :func:`app.gui.postop.overlays.metal_regions` in the background after the
detection. **Exclusion region**: *Paint exclusion* (E) turns the left button on the view into a
brush (radius in mm; a disc in the view plane, or a sphere) painting a region never searched
for seeds (:class:`app.gui.postop.overlays.ExclusionMask`, the planning brush's footprint
:func:`planner.structures.paint.stroke`); it is drawn white and hatched, each stroke and each
*Clear exclusion* is one step of its own undo (*Undo exclusion* / *Redo exclusion*), and
*Detect & verify* passes it to the detection (``verify_plan(..., exclude=mask)``): seeds found
inside it before are gone after the next detection. The exclusion region is view state of this
window (not stored in the plan) and is dropped when another post-op CT is opened.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QImage, QKeySequence, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs.task_progress import TaskRunner
from app.gui.layers.base import Subscriptions
from app.gui.postop.fusion import fusion_slice
from app.gui.postop.overlays import ExclusionMask, MaskOutlineLayer, MaskRegion, metal_regions
from app.gui.postop.panels import ComparisonTable, DVHPlot, MetalTable, SeedLocationTable
from app.gui.postop.seeds_layer import SeedMarkersLayer
from app.gui.tools.brush import BrushCursor
from app.gui.views.slice_view import Orientation, SliceView
from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn
from planner.imaging.volume import CTVolume
from planner.plan.commands import SetRegistration
from planner.plan.document import PlanChanged, PlanDocument, PlanLockedError
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan, Registration
from planner.postop.edits import EditedSeeds, PostopReview, reverify
from planner.postop.register import RegistrationResult, RigidTransform, register_rigid
from planner.postop.verify import (
    Verification,
    _target_centre_mm,
    comparison_order,
    registration_record,
    same_registration,
    verify_plan,
)
from planner.session.session import Session

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

__all__ = ["PostopWindow"]

#: Seeds farther than this from the crosshair are never "the selected seed".
SELECT_MM = 5.0
#: A merge takes the selected seed and its nearest neighbour if it is this close.
MERGE_MM = 6.0
NUDGE_MM = 1.0
NUDGE_DEG = 0.5
#: Colours (RGB 0-1) of the excluded metal's outline and of the painted exclusion region.
METAL_RGB = (1.0, 0.2, 1.0)
EXCLUSION_RGB = (1.0, 1.0, 1.0)


class PostopWindow(QMainWindow):
    """The post-op mode of ``main`` (module docstring)."""

    def __init__(self, main: MainWindow) -> None:
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
        self._generation = 0
        self._pending_reverify = False
        self._closing = False
        #: Why the registration is not in the plan ("" when it is, or there is none yet).
        self.store_note = ""
        self._storing = False
        self._document_subscriptions = Subscriptions()
        self._subscriptions = Subscriptions()
        #: The painted exclusion region (on the post-op CT's grid; None before a CT is open).
        self.exclusion: ExclusionMask | None = None
        #: The excluded metal's voxels, one per ``detection.metal`` object (None: not found).
        self.metal: list[MaskRegion | None] = []
        self._painting_last: np.ndarray | None = None
        #: Volume (mm³) of the exclusion region the verification shown was detected with.
        self.verified_exclusion_mm3 = 0.0

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
        self.metal_layer = MaskOutlineLayer(
            self.view, self.postop_session, lambda: self.metal, METAL_RGB, line_width=2.5
        )
        self.view.layers.append(self.metal_layer)
        self.exclusion_layer = MaskOutlineLayer(
            self.view,
            self.postop_session,
            lambda: [self.exclusion.region() if self.exclusion is not None else None],
            EXCLUSION_RGB,
            hatch=True,
            line_width=1.5,
        )
        self.view.layers.append(self.exclusion_layer)
        self._brush_cursor = BrushCursor(self.view)
        self.table = ComparisonTable()
        self.dvh = DVHPlot()
        self.summary = QLabel("Open the post-op CT, then Detect & verify.")
        self.summary.setObjectName("postop_summary")
        self.summary.setWordWrap(True)
        self.runner = TaskRunner()
        self.runner.state_changed.connect(self._update_actions)
        self._build_registration_tab()

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
        self.tabs.addTab(self.locations, "Seeds")
        self.metal_table = MetalTable()
        self.metal_table.cellClicked.connect(self._on_metal_clicked)
        self.tabs.addTab(self.metal_table, "Metal")
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
        self._build_toolbar()
        self.view.installEventFilter(self)
        self.postop_session.crosshair_changed.connect(self._on_postop_crosshair)
        self._reverify_timer = QTimer(self)
        self._reverify_timer.setSingleShot(True)
        self._reverify_timer.setInterval(250)
        self._reverify_timer.timeout.connect(self.start_reverify)
        self.resize(1300, 820)
        self._subscriptions.listen(main.session.document_changed, self._on_document)
        self._on_document(main.session.document)
        self._update_actions()

    # ------------------------------------------------------------------ construction
    def _action(self, text: str, slot: Any, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({shortcut})" if shortcut and tip else tip or text)
        action.triggered.connect(slot)
        return action

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Post-op")
        bar.setObjectName("postop_toolbar")
        self.open_action = self._action("Open post-op CT…", self._ask_open, "Ctrl+O")
        self.verify_action = self._action(
            "Detect && verify",
            self.run_verification,
            "Ctrl+R",
            "Find the seeds, register to the plan, compute the post-plan dose",
        )
        self.add_action = self._action(
            "Add seed", self.add_seed_at_crosshair, "A", "Add a seed at the crosshair"
        )
        self.delete_action = self._action(
            "Delete seed", self.delete_selected, "D", "Delete the seed nearest the crosshair"
        )
        self.merge_action = self._action(
            "Merge", self.merge_selected, "M", "Merge the selected seed with its nearest neighbour"
        )
        self.split_action = self._action(
            "Split", self.split_selected, "S", "Split the selected seed in two along its axis"
        )
        self.undo_action = self._action("Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action("Redo", self.redo, "Ctrl+Shift+Z")
        self.intraop_action = self._action(
            "Intra-op plan…",
            self._ask_intraop,
            None,
            "Add the intra-op plan's column to the comparison",
        )
        for a in (self.open_action, self.verify_action):
            bar.addAction(a)
        bar.addSeparator()
        for a in (
            self.add_action,
            self.delete_action,
            self.merge_action,
            self.split_action,
            self.undo_action,
            self.redo_action,
        ):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.intraop_action)
        self._build_exclusion_toolbar()

    def _build_exclusion_toolbar(self) -> None:
        bar = self.addToolBar("Exclusion region")
        bar.setObjectName("postop_exclusion_toolbar")
        self.paint_action = self._action(
            "Paint exclusion",
            lambda: self._update_actions(),
            "E",
            "Left button paints a region never searched for seeds (a screw, a needle left in)",
        )
        self.paint_action.setCheckable(True)
        self.paint_action.toggled.connect(self._paint_toggled)
        self.radius_spin = QDoubleSpinBox()
        self.radius_spin.setObjectName("postop_exclusion_radius")
        self.radius_spin.setRange(0.5, 50.0)
        self.radius_spin.setValue(5.0)
        self.radius_spin.setSingleStep(0.5)
        self.radius_spin.setSuffix(" mm")
        self.radius_spin.setToolTip("Exclusion brush radius")
        self.sphere_check = QCheckBox("Sphere")
        self.sphere_check.setToolTip("Paint a 3-D sphere instead of a disc in the view plane")
        self.undo_exclusion_action = self._action(
            "Undo exclusion", self.undo_exclusion, None, "Undo the last exclusion stroke or clear"
        )
        self.redo_exclusion_action = self._action(
            "Redo exclusion", self.redo_exclusion, None, "Redo the exclusion stroke undone"
        )
        self.clear_exclusion_action = self._action(
            "Clear exclusion", self.clear_exclusion, None, "Remove the painted exclusion region"
        )
        bar.addAction(self.paint_action)
        bar.addWidget(self.radius_spin)
        bar.addWidget(self.sphere_check)
        for a in (
            self.undo_exclusion_action,
            self.redo_exclusion_action,
            self.clear_exclusion_action,
        ):
            bar.addAction(a)

    def _build_registration_tab(self) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.fusion_label = QLabel("No registration yet")
        self.fusion_label.setObjectName("postop_fusion")
        self.fusion_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.fusion_label.setMinimumSize(360, 360)
        self.fusion_mode = QComboBox()
        self.fusion_mode.addItems(["checkerboard", "fusion"])
        self.fusion_mode.setToolTip(
            "Checkerboard: squares alternate planning / post-op CT. "
            "Fusion: planning green, post-op magenta, grey = agree."
        )
        self.fusion_mode.currentTextChanged.connect(lambda _t: self.refresh_fusion())
        self.slice_offset = QDoubleSpinBox()
        self.slice_offset.setRange(-80.0, 80.0)
        self.slice_offset.setSuffix(" mm (S+)")
        self.slice_offset.setSingleStep(2.0)
        self.slice_offset.setToolTip("Axial plane shown, relative to the target centre")
        self.slice_offset.valueChanged.connect(lambda _v: self.refresh_fusion())
        self.transform_label = QLabel("")
        self.transform_label.setObjectName("postop_transform")
        self.transform_label.setWordWrap(True)
        nudge = QGroupBox("Manual correction of the post-op CT (planning frame, LPS)")
        grid = QGridLayout(nudge)
        self.nudge_buttons: dict[str, QPushButton] = {}
        moves = [
            ("R −1 mm", (-NUDGE_MM, 0, 0), (0, 0, 0)),
            ("L +1 mm", (NUDGE_MM, 0, 0), (0, 0, 0)),
            ("A −1 mm", (0, -NUDGE_MM, 0), (0, 0, 0)),
            ("P +1 mm", (0, NUDGE_MM, 0), (0, 0, 0)),
            ("I −1 mm", (0, 0, -NUDGE_MM), (0, 0, 0)),
            ("S +1 mm", (0, 0, NUDGE_MM), (0, 0, 0)),
            ("rot x −0.5°", (0, 0, 0), (-NUDGE_DEG, 0, 0)),
            ("rot x +0.5°", (0, 0, 0), (NUDGE_DEG, 0, 0)),
            ("rot y −0.5°", (0, 0, 0), (0, -NUDGE_DEG, 0)),
            ("rot y +0.5°", (0, 0, 0), (0, NUDGE_DEG, 0)),
            ("rot z −0.5°", (0, 0, 0), (0, 0, -NUDGE_DEG)),
            ("rot z +0.5°", (0, 0, 0), (0, 0, NUDGE_DEG)),
        ]
        for n, (text, shift, rot) in enumerate(moves):
            button = QPushButton(text)
            button.clicked.connect(lambda _c=False, s=shift, r=rot: self.nudge(s, r))
            grid.addWidget(button, n // 2, n % 2)
            self.nudge_buttons[text] = button
        self.undo_nudge_button = QPushButton("Undo correction")
        self.undo_nudge_button.clicked.connect(self.undo_nudge)
        self.reset_nudge_button = QPushButton("Automatic registration")
        self.reset_nudge_button.clicked.connect(self.reset_registration)
        grid.addWidget(self.undo_nudge_button, 6, 0)
        grid.addWidget(self.reset_nudge_button, 6, 1)
        row = QWidget()
        rl = QGridLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("View"), 0, 0)
        rl.addWidget(self.fusion_mode, 0, 1)
        rl.addWidget(QLabel("Plane"), 0, 2)
        rl.addWidget(self.slice_offset, 0, 3)
        layout.addWidget(row)
        layout.addWidget(self.fusion_label, 1)
        layout.addWidget(self.transform_label)
        layout.addWidget(nudge)
        self.registration_page = page

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
        self._generation += 1
        self.exclusion = ExclusionMask(ct.geometry)
        self.metal = []
        self.postop_session.set_volume(ct)
        stored = self.stored_registration()
        self.summary.setText(
            "Post-op CT loaded; press Detect & verify."
            + (" The registration stored in the plan is shown." if stored is not None else "")
        )
        self._refresh()

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
        self._refresh()

    # ------------------------------------------------------------------ verification
    def run_verification(self) -> bool:
        """Detect, register, match and compute both doses in the background; False (and a
        message) when the plan, its CT or the post-op CT is missing or a task is running."""
        plan, ct, post = self.plan, self.planning_ct, self.postop_ct
        if plan is None or ct is None or post is None:
            missing = (
                "a plan"
                if plan is None
                else "the planning CT"
                if ct is None
                else ("the post-op CT")
            )
            self.runner.label.setText(f"Cannot verify: open {missing} first")
            return False

        stored = self.stored_registration()
        ex = self.exclusion
        painted = ex is not None and ex.mask is not None and not ex.is_empty
        exclude = ex.mask.copy() if painted else None  # type: ignore[union-attr]

        def task(
            progress: ProgressFn, cancel: CancelFn
        ) -> tuple[Verification, list[MaskRegion | None]]:
            v = verify_plan(
                plan,
                ct,
                post,
                registration=stored,
                exclude=exclude,
                progress=progress,
                cancel=cancel,
            )
            return v, metal_regions(post, v.detection)

        voxel_mm3 = float(np.prod(post.geometry.spacing_mm))
        excluded_mm3 = 0.0 if exclude is None else float(exclude.sum()) * voxel_mm3

        def done(result: tuple[Verification, list[MaskRegion | None]]) -> None:
            self.verified_exclusion_mm3 = excluded_mm3
            self._on_verified(*result)

        return self.runner.run(task, done, "Detecting seeds…")

    def _on_verified(
        self, verification: Verification, metal: list[MaskRegion | None] | None = None
    ) -> None:
        self.metal = list(metal) if metal is not None else []
        self.review = PostopReview(verification)
        self._generation += 1
        self.store_registration("Store registration")
        if verification.detection.seeds:
            centre = verification.detection.positions_mm.mean(axis=0)
            self.postop_session.set_crosshair(centre)
            self.focus_view(centre)
        self._refresh()

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

    def selected_index(self) -> int | None:
        """The seed nearest the post-op crosshair (within 5 mm), the one edits act on."""
        if self.review is None:
            return None
        return self.review.edits.nearest(self.postop_session.crosshair_mm, within_mm=SELECT_MM)

    # ------------------------------------------------------------------ seed edits
    def _edited(self) -> None:
        self._generation += 1
        self.seeds_layer.update()
        self._update_actions()
        self._reverify_timer.start()

    def add_seed_at_crosshair(self) -> None:
        if self.review is None:
            return
        seeds = self.review.edits.seeds
        axis = np.median(seeds.axes, axis=0) if len(seeds) else np.array([0.0, 0.0, 1.0])
        if not np.linalg.norm(axis) > 1e-6:
            axis = np.array([0.0, 0.0, 1.0])
        self.review.edits.add(self.postop_session.crosshair_mm, axis)
        self._edited()

    def delete_selected(self) -> None:
        i = self.selected_index()
        if self.review is not None and i is not None:
            self.review.edits.delete([i])
            self._edited()

    def merge_selected(self) -> None:
        i = self.selected_index()
        if self.review is None or i is None:
            return
        p = self.review.edits.seeds.positions_mm
        d = np.linalg.norm(p - p[i], axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        if not d[j] <= MERGE_MM:
            self.runner.label.setText(f"No other seed within {MERGE_MM:g} mm to merge with")
            return
        self.review.edits.merge([i, j])
        self._edited()

    def split_selected(self) -> None:
        i = self.selected_index()
        if self.review is not None and i is not None:
            self.review.edits.split(i)
            self._edited()

    def undo(self) -> None:
        if self.review is not None and self.review.edits.undo():
            self._edited()

    def redo(self) -> None:
        if self.review is not None and self.review.edits.redo():
            self._edited()

    # ------------------------------------------------------------------ exclusion region
    def _exclusion_changed(self) -> None:
        self.exclusion_layer.update()
        self._update_actions()

    def undo_exclusion(self) -> None:
        if self.exclusion is not None and self.exclusion.undo():
            self._exclusion_changed()

    def redo_exclusion(self) -> None:
        if self.exclusion is not None and self.exclusion.redo():
            self._exclusion_changed()

    def clear_exclusion(self) -> None:
        if self.exclusion is not None and self.exclusion.clear():
            self._exclusion_changed()

    def _paint_toggled(self, on: bool) -> None:
        if not on:
            self._painting_last = None
            if self.exclusion is not None:
                self.exclusion.end_stroke()
            self._brush_cursor.show(None, self.radius_spin.value())
        self._update_actions()

    def paint_exclusion(self, path_mm: np.ndarray) -> bool:
        """Paint the exclusion brush along ``path_mm`` ``(n, 3)`` LPS mm (a disc in the view
        plane, or spheres); True when a voxel changed."""
        ex = self.exclusion
        if ex is None:
            return False
        normal = None if self.sphere_check.isChecked() else self.view.normal
        changed = ex.paint(path_mm, self.radius_spin.value(), plane_normal=normal)
        if changed:
            self._exclusion_changed()
        return changed

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """While *Paint exclusion* is on, the left button on the view paints (press, drag,
        release = one undo step); everything else reaches the view."""
        if watched is not self.view or not self.paint_action.isChecked():
            return super().eventFilter(watched, event)
        kind = event.type()
        if kind not in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseMove,
            QEvent.Type.MouseButtonRelease,
        ):
            return super().eventFilter(watched, event)
        assert isinstance(event, QMouseEvent)
        if self.postop_session.volume is None or self.exclusion is None:
            return False
        pos = event.position()
        xyz = self.view.display_to_world(pos.x(), pos.y())
        left = Qt.MouseButton.LeftButton
        if kind == QEvent.Type.MouseMove:
            self._brush_cursor.show(xyz, self.radius_spin.value())
            if self._painting_last is None or not event.buttons() & left:
                return False  # a hover, or another button's drag: the view's
            self.paint_exclusion(np.vstack([self._painting_last, xyz]))
            self._painting_last = xyz
            return True
        if event.button() != left or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False
        if kind == QEvent.Type.MouseButtonPress:
            self.exclusion.begin_stroke()
            self._painting_last = xyz
            self.paint_exclusion(np.vstack([xyz, xyz]))
        else:
            self._painting_last = None
            self.exclusion.end_stroke()
            self._update_actions()
        return True

    def _on_metal_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self.metal_table.objects):
            centre = np.asarray(self.metal_table.objects[row].centre_mm, float)
            self.postop_session.set_crosshair(centre, snap=False)

    # ------------------------------------------------------------------ registration
    def _target_centre(self) -> np.ndarray:
        plan = self.plan
        c = _target_centre_mm(plan) if plan is not None else None
        if c is None and self.review is not None:
            c = self.review.implanted_mm().mean(axis=0)
        return np.zeros(3) if c is None else np.asarray(c, dtype=np.float64)

    def nudge(self, shift_mm: Any = (0, 0, 0), rotation_deg: Any = (0, 0, 0)) -> None:
        """Correct the registration by hand (rotations about the target centre)."""
        if self.review is None:
            return
        self.review.nudge(shift_mm, rotation_deg, about_mm=self._target_centre())
        self._registration_changed()

    def undo_nudge(self) -> None:
        if self.review is not None and self.review.undo_nudge():
            self._registration_changed()

    def reset_registration(self) -> bool:
        """Back to the automatic registration; when the review started from the plan's stored
        registration, register again (in the background). False when nothing was started."""
        review, ct, post, plan = self.review, self.planning_ct, self.postop_ct, self.plan
        if review is None:
            return False
        if review.base.registration.initialised_by != "stored in the plan":
            review.reset_registration()
            self._registration_changed("Automatic registration")
            return True
        if ct is None or post is None or plan is None:
            return False
        centre = _target_centre_mm(plan)

        def task(progress: ProgressFn, cancel: CancelFn) -> RegistrationResult:
            return register_rigid(ct, post, around_mm=centre, progress=progress, cancel=cancel)

        def done(result: RegistrationResult) -> None:
            if self.review is not review or self.postop_ct is not post:
                return
            record = registration_record(result.transform, post, metric_value=result.metric_value)
            review.base = replace(
                review.base,
                registration=result,
                implanted_plan=review.base.implanted_plan.evolve(registration=record),
            )
            review.set_automatic(result.transform)
            self._registration_changed("Automatic registration")

        return self.runner.run(task, done, "Registering the post-op CT on bone…")

    def _registration_changed(self, label: str = "Correct registration") -> None:
        self.store_registration(label)
        self.refresh_fusion()
        self._show_transform()
        self._edited()

    # ------------------------------------------------------------------ the plan's record
    def current_record(self) -> Registration | None:
        """The registration shown, as the plan stores it (None before a verification)."""
        review, post = self.review, self.postop_ct
        if review is None or post is None:
            return None
        base = review.base.registration_record
        if base is not None and review.transform == review.automatic:
            return replace(base, nudged=review.nudged)
        r = review.base.registration
        return registration_record(
            review.transform,
            post,
            method=base.method if base is not None else "mattes-mi-bone",
            metric_value=r.metric_value,
            nudged=review.nudged,
        )

    def store_registration(self, label: str) -> bool:
        """Store the registration shown in the plan document (one undoable step; on an
        approved plan a verification record, its approval unchanged); False, with the reason
        in :attr:`store_note`, when there is no document."""
        doc, record = self.document, self.current_record()
        if record is None:
            return False
        if doc is None:
            self.store_note = "not stored: no plan document"
            return False
        current = doc.plan.registration
        if current is not None and same_registration(current, record):
            self.store_note = ""
            return True
        self._storing = True
        try:
            doc.execute(SetRegistration(record, label=label))
        except PlanLockedError as exc:  # not expected: a registration is a verification record
            self.store_note = f"not stored in the plan: {exc.problem}"
            return False
        finally:
            self._storing = False
        self.store_note = ""
        return True

    def _on_document(self, document: PlanDocument | None) -> None:
        self._document_subscriptions.close()
        if document is not None:
            self._document_subscriptions.listen(document.events.changed, self._on_plan_changed)

    def _on_plan_changed(self, change: PlanChanged) -> None:
        """The plan's registration changed (undo/redo in the plan's history, a load): show it."""
        if self._storing or self._closing:
            return
        if "registration" not in change.what:
            return
        review, post = self.review, self.postop_ct
        rec = change.plan.registration
        if review is None or post is None:
            self.refresh_fusion()
            return
        if rec is None or not rec.matches(post):
            self.store_note = "not stored in the plan (undone there)"
            self._show_transform()
            return
        if review.set_transform(RigidTransform.from_matrix4(rec.matrix), nudged=rec.nudged):
            self.store_note = ""
            self.refresh_fusion()
            self._show_transform()
            self._edited()

    # ------------------------------------------------------------------ re-verification
    def start_reverify(self) -> None:
        """Recompute matching and post-op dose for the current seeds and transform."""
        review, plan, ct = self.review, self.plan, self.planning_ct
        if review is None or plan is None or ct is None:
            return
        if self.runner.busy:
            self._pending_reverify = True
            return
        generation = self._generation
        base, seeds, transform = review.base, review.edits.seeds, review.transform

        nudged = review.nudged

        def task(progress: ProgressFn, cancel: CancelFn) -> Verification:
            return reverify(
                base, plan, ct, seeds, transform, nudged=nudged, progress=progress, cancel=cancel
            )

        def done(v: Verification) -> None:
            if generation == self._generation and self.review is review:
                review.verification = v
                self._refresh()

        def failed(_exc: BaseException) -> None:
            self.summary.setText(self.runner.label.text())

        self.runner.run(task, done, "Recomputing the post-op dose…", on_failed=failed)

    # ------------------------------------------------------------------ views
    def _on_postop_crosshair(self, *_args: object) -> None:
        self._update_actions()

    def _update_actions(self, *_args: object) -> None:
        busy = self.runner.busy
        has = self.review is not None
        selected = self.selected_index() is not None
        self.verify_action.setEnabled(not busy)
        self.open_action.setEnabled(not busy)
        self.add_action.setEnabled(has)
        for a in (self.delete_action, self.merge_action, self.split_action):
            a.setEnabled(has and selected)
        self.undo_action.setEnabled(has and self.review.edits.can_undo)  # type: ignore[union-attr]
        self.redo_action.setEnabled(has and self.review.edits.can_redo)  # type: ignore[union-attr]
        if has:
            assert self.review is not None
            self.undo_action.setText(f"Undo {self.review.edits.undo_label}".strip())
        for b in (*self.nudge_buttons.values(), self.undo_nudge_button, self.reset_nudge_button):
            b.setEnabled(has)
        ex = self.exclusion
        self.paint_action.setEnabled(ex is not None)
        self.undo_exclusion_action.setEnabled(ex is not None and ex.can_undo)
        self.redo_exclusion_action.setEnabled(ex is not None and ex.can_redo)
        self.clear_exclusion_action.setEnabled(ex is not None and not ex.is_empty)
        if not busy and self._pending_reverify:
            self._pending_reverify = False
            QTimer.singleShot(0, self.start_reverify)

    def _refresh(self) -> None:
        self.seeds_layer.update()
        self.metal_layer.update()
        self.exclusion_layer.update()
        self._update_actions()
        review = self.review
        if review is None:
            self.table.setRowCount(0)
            self.locations.show_locations(None)
            self.metal_table.show_metal(None)
            self.fusion_label.setText("No registration yet")
            self.refresh_fusion()
            self._show_transform()
            return
        v = review.verification
        lines = [v.detection.summary(), v.summary()]
        if self.verified_exclusion_mm3 > 0:
            lines.insert(
                1,
                f"exclusion region painted: {self.verified_exclusion_mm3 / 1000.0:.1f} cm³ "
                "never searched for seeds",
            )
        lines += [f"⚠ {w}" for w in v.warnings]
        self.summary.setText("\n".join(lines))
        plan = self.plan
        order = comparison_order(plan) if plan is not None else None
        self.table.show_rows(v.comparison, self.intraop, self.intraop_counts, order)
        self.locations.show_locations(v.locations)
        self.metal_table.show_metal(v.detection.metal)
        self.dvh.show_dvhs(v.planned, v.postop)
        self.refresh_fusion()
        self._show_transform()

    def _show_transform(self) -> None:
        if self.review is None:
            stored = self.stored_registration()
            if stored is None:
                self.transform_label.setText("")
                return
            t = RigidTransform.from_matrix4(stored.matrix)
            state = "stored in the plan" + (", corrected by hand" if stored.nudged else "")
            tail = f"; {stored.method}, {stored.registered_utc}"
        else:
            t = self.review.transform
            state = (
                "corrected by hand"
                if self.review.nudged
                else "automatic (bone, mutual information)"
            )
            r = self.review.verification.registration
            tail = f"; initialised by {r.initialised_by}, {r.iterations} iterations"
            tail += f"; {self.store_note}" if self.store_note else f"; {self._stored_where()}"
        angles = _euler_deg(t.matrix)
        self.transform_label.setText(
            f"Post-op → planning, {state}: shift "
            + ", ".join(f"{v:+.1f}" for v in t.translation_mm)
            + " mm (x, y, z LPS); rotation "
            + ", ".join(f"{v:+.2f}" for v in angles)
            + "° about x, y, z"
            + tail
        )

    def _stored_where(self) -> str:
        plan = self.plan
        if plan is not None and plan.is_approved:
            return (
                f"stored in the approved plan (revision {plan.revision}) as a verification "
                "record; its approval is unchanged"
            )
        return "stored in the plan"

    def fusion_transform(self) -> RigidTransform | None:
        """The transform the check image uses: the review's, else the plan's stored one."""
        if self.review is not None:
            return self.review.transform
        stored = self.stored_registration()
        return None if stored is None else RigidTransform.from_matrix4(stored.matrix)

    def refresh_fusion(self) -> None:
        """Redraw the registration check image (checkerboard or fusion)."""
        transform = self.fusion_transform()
        if transform is None or self.planning_ct is None or self.postop_ct is None:
            return
        centre = self._target_centre() + np.array([0.0, 0.0, self.slice_offset.value()])
        rgb = fusion_slice(
            self.planning_ct,
            self.postop_ct,
            transform,
            centre,
            mode=self.fusion_mode.currentText(),  # type: ignore[arg-type]
        )
        self.fusion_rgb = rgb
        h, w, _ = rgb.shape
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        side = max(200, min(self.fusion_label.width(), self.fusion_label.height()) - 4)
        self.fusion_label.setPixmap(
            QPixmap.fromImage(image).scaled(
                side,
                side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._reverify_timer.stop()
            self._subscriptions.close()
            self._document_subscriptions.close()
            self.runner.wait(10.0)
            self.view.removeEventFilter(self)
            self._brush_cursor.remove()
            self.exclusion_layer.close()
            self.metal_layer.close()
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


def _euler_deg(rot: np.ndarray) -> tuple[float, float, float]:
    """Angles (degrees) about x, y, z of ``rot = Rz Ry Rx``."""
    ry = float(np.degrees(np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))))
    rx = float(np.degrees(np.arctan2(rot[2, 1], rot[2, 2])))
    rz = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    return rx, ry, rz
