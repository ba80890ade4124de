"""The post-op window's background work: *Detect & verify*, and re-verification after edits.

:class:`VerificationRun` (owned by :class:`app.gui.postop.window.PostopWindow`) runs
:func:`planner.postop.verify.verify_plan` off the GUI thread on the window's
:class:`~app.gui.dialogs.task_progress.TaskRunner` (progress bar and Cancel): detection (with
the painted exclusion region), registration (the plan's stored one when it belongs to this
post-op CT), matching and both doses; the excluded metal's voxels are found in the same task.

After every seed edit or registration nudge the matching and the post-plan dose are
recomputed in the background (:func:`planner.postop.edits.reverify`, a fraction of a second),
250 ms after the last change; a result made for an older state (an older
:attr:`VerificationRun.generation`) is dropped, and a re-verification asked for while another
task runs starts when it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer

from app.gui.postop.case import PostopCase
from app.gui.postop.overlays import MaskRegion, metal_regions
from dose.progress import CancelFn, ProgressFn
from planner.postop.edits import PostopReview, reverify
from planner.postop.verify import Verification, verify_plan

if TYPE_CHECKING:
    from PySide6.QtWidgets import QLabel

    from app.gui.postop.exclusion import ExclusionTools
    from app.gui.postop.registration_tab import RegistrationTab
    from planner.plan.model import Registration

__all__ = ["REVERIFY_DELAY_MS", "VerificationRun", "VerificationWindow"]

#: Re-verify this long after the last edit or nudge.
REVERIFY_DELAY_MS = 250


class VerificationWindow(PostopCase, Protocol):
    """What the verification run uses of the post-op window besides the case: the exclusion
    tools (the region to skip, the metal found), the Registration tab (it stores the result),
    the plan's stored registration, the summary line, and the window's zoom and refresh."""

    exclusion_tools: ExclusionTools
    registration: RegistrationTab
    summary: QLabel

    def stored_registration(self) -> Registration | None: ...

    def focus_view(self, centre_mm: np.ndarray, half_height_mm: float = 45.0) -> None: ...

    def refresh(self) -> None: ...


class VerificationRun(QObject):
    """Detect & verify, and re-verify, for ``window`` (module docstring)."""

    def __init__(self, window: VerificationWindow) -> None:
        super().__init__(window)
        self.window = window
        #: Bumped by every change a running re-verification would not see.
        self.generation = 0
        self._pending_reverify = False
        self.reverify_timer = QTimer(self)
        self.reverify_timer.setSingleShot(True)
        self.reverify_timer.setInterval(REVERIFY_DELAY_MS)
        self.reverify_timer.timeout.connect(self.start_reverify)

    def run(self) -> bool:
        """Detect, register, match and compute both doses in the background; False (and a
        message) when the plan, its CT or the post-op CT is missing or a task is running."""
        w = self.window
        plan, ct, post = w.plan, w.planning_ct, w.postop_ct
        if plan is None or ct is None or post is None:
            missing = (
                "a plan"
                if plan is None
                else "the planning CT"
                if ct is None
                else ("the post-op CT")
            )
            w.runner.label.setText(f"Cannot verify: open {missing} first")
            return False

        stored = w.stored_registration()
        exclude = w.exclusion_tools.mask_for_detection()

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
            w.exclusion_tools.verified_mm3 = excluded_mm3
            self._on_verified(*result)

        return w.runner.run(task, done, "Detecting seeds…")

    def _on_verified(
        self, verification: Verification, metal: list[MaskRegion | None] | None = None
    ) -> None:
        w = self.window
        w.exclusion_tools.set_metal(metal)
        w.review = PostopReview(verification)
        self.generation += 1
        w.registration.store_registration("Store registration")
        if verification.detection.seeds:
            centre = verification.detection.positions_mm.mean(axis=0)
            w.postop_session.set_crosshair(centre)
            w.focus_view(centre)
        w.refresh()

    def schedule_reverify(self) -> None:
        """The seeds or the transform changed: drop older results, re-verify soon."""
        self.generation += 1
        self.reverify_timer.start()

    def start_reverify(self) -> None:
        """Recompute matching and post-op dose for the current seeds and transform."""
        w = self.window
        review, plan, ct = w.review, w.plan, w.planning_ct
        if review is None or plan is None or ct is None:
            return
        if w.runner.busy:
            self._pending_reverify = True
            return
        generation = self.generation
        base, seeds, transform = review.base, review.edits.seeds, review.transform
        nudged = review.nudged

        def task(progress: ProgressFn, cancel: CancelFn) -> Verification:
            return reverify(
                base, plan, ct, seeds, transform, nudged=nudged, progress=progress, cancel=cancel
            )

        def done(v: Verification) -> None:
            if generation == self.generation and w.review is review:
                review.verification = v
                w.refresh()

        def failed(_exc: BaseException) -> None:
            w.summary.setText(w.runner.label.text())

        w.runner.run(task, done, "Recomputing the post-op dose…", on_failed=failed)

    def after_update(self) -> None:
        """The runner may be idle again: start a re-verification that waited for it."""
        if not self.window.runner.busy and self._pending_reverify:
            self._pending_reverify = False
            QTimer.singleShot(0, self.start_reverify)

    def stop(self) -> None:
        self.reverify_timer.stop()
