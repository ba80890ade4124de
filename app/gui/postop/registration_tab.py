"""The post-op window's Registration tab: the check image, the manual nudge, the plan's record.

:class:`RegistrationTab` (owned by :class:`app.gui.postop.window.PostopWindow`) shows a
checkerboard or colour fusion of the planning CT against the post-op CT mapped through the
transform (:func:`app.gui.postop.fusion.fusion_slice`), with shift (1 mm) and rotate (0.5°,
about the target centre) buttons.

The registration lives in the plan (:class:`planner.plan.model.Registration`): the automatic
result and every manual correction are stored in the plan document by
:class:`planner.plan.commands.SetRegistration` (one undoable step each, in the plan's history),
so saving and reopening the plan restores it — opening the same post-op CT shows the stored
registration on the check image at once, and *Detect & verify* uses it instead of registering
again (*Automatic registration* registers anew). The tab listens to the document: undoing
or redoing a stored registration in the plan shows it here. On an approved plan the
registration is stored too: it is a post-implant verification record, attached to the approved
revision without changing what was approved (status, approval, revision, structures, needles,
seeds and prescription stay as they are; the rule is :mod:`planner.plan.document`'s), with the
user and UTC time in the record, undoable like any other step; the transform label says
"stored in the approved plan (verification record)".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.layers.base import Subscriptions
from app.gui.postop.case import PostopCase
from app.gui.postop.fusion import fusion_slice
from dose.progress import CancelFn, ProgressFn
from planner.plan.commands import SetRegistration
from planner.plan.document import PlanChanged, PlanDocument, PlanLockedError
from planner.plan.model import Registration
from planner.postop.register import RegistrationResult, RigidTransform, register_rigid
from planner.postop.verify import _target_centre_mm, registration_record, same_registration

__all__ = ["NUDGE_DEG", "NUDGE_MM", "RegistrationTab", "RegistrationWindow"]

NUDGE_MM = 1.0
NUDGE_DEG = 0.5
#: What the check image shows, per mode (under the image).
_CAPTIONS = {
    "checkerboard": "Checkerboard of 10 mm squares: planning CT grey, post-op CT (mapped onto "
    "it) blue-tinted; bone edges run on across the squares when the registration is right.",
    "fusion": "Fusion: planning CT green, post-op CT magenta; grey where they agree, coloured "
    "fringes where they do not.",
}


class RegistrationWindow(PostopCase, Protocol):
    """What the Registration tab uses of the post-op window besides the case: the plan's
    stored registration for this post-op CT, the redraw and re-verification after a nudge, and
    whether the window is closing."""

    #: True once the window is closing (late events are ignored).
    closing: bool

    def stored_registration(self) -> Registration | None: ...

    def edited(self) -> None: ...


class RegistrationTab(QObject):
    """The Registration tab of ``window``: :attr:`page` (module docstring)."""

    def __init__(self, window: RegistrationWindow) -> None:
        super().__init__(window)
        self.window = window
        #: Why the registration is not in the plan ("" when it is, or there is none yet).
        self.store_note = ""
        #: The check image last drawn, (h, w, 3) uint8.
        self.fusion_rgb: np.ndarray | None = None
        self._storing = False
        self._document_subscriptions = Subscriptions()
        self._build_page()

    def _build_page(self) -> None:
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
        self.fusion_mode.currentTextChanged.connect(self._mode_changed)
        self.slice_offset = QDoubleSpinBox()
        self.slice_offset.setRange(-80.0, 80.0)
        self.slice_offset.setSuffix(" mm (S+)")
        self.slice_offset.setSingleStep(2.0)
        self.slice_offset.setToolTip("Axial plane shown, relative to the target centre")
        self.slice_offset.valueChanged.connect(lambda _v: self.refresh_fusion())
        self.fusion_caption = QLabel(_CAPTIONS["checkerboard"])
        self.fusion_caption.setObjectName("postop_fusion_caption")
        self.fusion_caption.setWordWrap(True)
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
        rl.addWidget(QLabel("Axial plane, from the target centre"), 0, 2)
        rl.addWidget(self.slice_offset, 0, 3)
        layout.addWidget(row)
        layout.addWidget(self.fusion_label, 1)
        layout.addWidget(self.fusion_caption)
        layout.addWidget(self.transform_label)
        layout.addWidget(nudge)
        self.page = page

    def _mode_changed(self, mode: str) -> None:
        self.fusion_caption.setText(_CAPTIONS.get(mode, ""))
        self.refresh_fusion()

    def update_actions(self) -> None:
        has = self.window.review is not None
        for b in (*self.nudge_buttons.values(), self.undo_nudge_button, self.reset_nudge_button):
            b.setEnabled(has)

    # ------------------------------------------------------------------ nudge
    def _target_centre(self) -> np.ndarray:
        plan, review = self.window.plan, self.window.review
        c = _target_centre_mm(plan) if plan is not None else None
        if c is None and review is not None:
            c = review.implanted_mm().mean(axis=0)
        return np.zeros(3) if c is None else np.asarray(c, dtype=np.float64)

    def nudge(self, shift_mm: Any = (0, 0, 0), rotation_deg: Any = (0, 0, 0)) -> None:
        """Correct the registration by hand (rotations about the target centre)."""
        review = self.window.review
        if review is None:
            return
        review.nudge(shift_mm, rotation_deg, about_mm=self._target_centre())
        self._registration_changed()

    def undo_nudge(self) -> None:
        review = self.window.review
        if review is not None and review.undo_nudge():
            self._registration_changed()

    def reset_registration(self) -> bool:
        """Back to the automatic registration; when the review started from the plan's stored
        registration, register again (in the background). False when nothing was started."""
        w = self.window
        review, ct, post, plan = w.review, w.planning_ct, w.postop_ct, w.plan
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
            if w.review is not review or w.postop_ct is not post:
                return
            record = registration_record(result.transform, post, metric_value=result.metric_value)
            review.base = replace(
                review.base,
                registration=result,
                implanted_plan=review.base.implanted_plan.evolve(registration=record),
            )
            review.set_automatic(result.transform)
            self._registration_changed("Automatic registration")

        return w.runner.run(task, done, "Registering the post-op CT on bone…")

    def _registration_changed(self, label: str = "Correct registration") -> None:
        self.store_registration(label)
        self.refresh_fusion()
        self.show_transform()
        self.window.edited()

    # ------------------------------------------------------------------ the plan's record
    def current_record(self) -> Registration | None:
        """The registration shown, as the plan stores it (None before a verification)."""
        review, post = self.window.review, self.window.postop_ct
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
        doc, record = self.window.document, self.current_record()
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

    def on_document(self, document: PlanDocument | None) -> None:
        """The main window's plan document changed: listen to the new one."""
        self._document_subscriptions.close()
        if document is not None:
            self._document_subscriptions.listen(document.events.changed, self._on_plan_changed)

    def _on_plan_changed(self, change: PlanChanged) -> None:
        """The plan's registration changed (undo/redo in the plan's history, a load): show it."""
        w = self.window
        if self._storing or w.closing:
            return
        if "registration" not in change.what:
            return
        review, post = w.review, w.postop_ct
        rec = change.plan.registration
        if review is None or post is None:
            self.refresh_fusion()
            return
        if rec is None or not rec.matches(post):
            self.store_note = "not stored in the plan (undone there)"
            self.show_transform()
            return
        if review.set_transform(RigidTransform.from_matrix4(rec.matrix), nudged=rec.nudged):
            self.store_note = ""
            self.refresh_fusion()
            self.show_transform()
            w.edited()

    # ------------------------------------------------------------------ showing it
    def show_transform(self) -> None:
        review = self.window.review
        if review is None:
            stored = self.window.stored_registration()
            if stored is None:
                self.transform_label.setText("")
                return
            t = RigidTransform.from_matrix4(stored.matrix)
            state = "stored in the plan" + (", corrected by hand" if stored.nudged else "")
            tail = f"; {stored.method}, {stored.registered_utc}"
        else:
            t = review.transform
            state = "corrected by hand" if review.nudged else "automatic (bone, mutual information)"
            r = review.verification.registration
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
        plan = self.window.plan
        if plan is not None and plan.is_approved:
            return (
                f"stored in the approved plan (revision {plan.revision}) as a verification "
                "record; its approval is unchanged"
            )
        return "stored in the plan"

    def fusion_transform(self) -> RigidTransform | None:
        """The transform the check image uses: the review's, else the plan's stored one."""
        if self.window.review is not None:
            return self.window.review.transform
        stored = self.window.stored_registration()
        return None if stored is None else RigidTransform.from_matrix4(stored.matrix)

    def refresh_fusion(self) -> None:
        """Redraw the registration check image (checkerboard or fusion)."""
        transform = self.fusion_transform()
        planning, post = self.window.planning_ct, self.window.postop_ct
        if transform is None or planning is None or post is None:
            return
        centre = self._target_centre() + np.array([0.0, 0.0, self.slice_offset.value()])
        rgb = fusion_slice(
            planning,
            post,
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

    def clear(self) -> None:
        """No verification: the check image of the stored registration, if any."""
        self.fusion_label.setText("No registration yet")
        self.refresh_fusion()
        self.show_transform()

    def close(self) -> None:
        self._document_subscriptions.close()


def _euler_deg(rot: np.ndarray) -> tuple[float, float, float]:
    """Angles (degrees) about x, y, z of ``rot = Rz Ry Rx``."""
    ry = float(np.degrees(np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))))
    rx = float(np.degrees(np.arctan2(rot[2, 1], rot[2, 2])))
    rz = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    return rx, ry, rz
