"""The post-op mode stores the registration in the plan (issue 13): the automatic result and
every manual nudge are undoable steps of the plan's history; saving and reopening the plan
restores the registration (check image at once, Detect & verify reuses it); undo in the plan
shows the earlier registration; on an approved plan the registration is stored as a
verification record (the plan stays approved, nothing else changes, Edit → Undo/Redo of the
main window work). The Seeds tab
lists a seed that migrated far from every needle first, and the seed layer draws it red."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from app.gui.postop.window import PostopWindow, intraop_seed_counts
from app.gui.settings import Settings
from planner.plan.document import PlanDocument
from planner.plan.plan_file import load_plan, save_plan
from planner.postop.register import RigidTransform
from tests.gui.conftest import image_is_not_blank
from tests.gui.inner._helpers import settle, wait_until
from tests.postop_builders import PostopCase, build_postop_case

VERIFY_TIMEOUT_S = 240.0
MOVED = 5
#: The CTs cut in-plane to the GTV's box + 30 mm (the same scene; verification and drawing
#: several times faster than on the 512 x 512 slices).
CROP_MM = 30.0


@pytest.fixture(scope="module")
def case() -> PostopCase:
    return build_postop_case(moved_mm={MOVED: (0.0, -35.0, 0.0)}, crop_mm=CROP_MM)


@pytest.fixture(scope="module")
def main_window(
    gui_app: QApplication, case: PostopCase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    tmp = tmp_path_factory.mktemp("postop-registration-settings")
    window = MainWindow(settings=Settings(Path(tmp) / "seedplan.ini"), interactive=False)
    window.resize(1200, 800)
    window.show()
    settle()
    window.session.set_volume(case.ct)
    window.session.set_document(PlanDocument(case.plan))
    yield window
    window.close()
    settle()


def _wait_idle(pw: PostopWindow) -> None:
    wait_until(lambda: not pw.runner.busy and not pw._reverify_timer.isActive(), VERIFY_TIMEOUT_S)
    settle()


def _verified(main_window: MainWindow, case: PostopCase) -> PostopWindow:
    pw = PostopWindow(main_window)
    pw.show()
    settle()
    pw.set_postop_ct(case.postop)
    settle()
    assert pw.run_verification()
    wait_until(lambda: pw.review is not None, VERIFY_TIMEOUT_S)
    _wait_idle(pw)
    return pw


def test_registration_is_stored_undoable_and_restored(
    main_window: MainWindow, case: PostopCase, tmp_path: Path
) -> None:
    doc = main_window.session.document
    assert doc is not None and doc.plan.registration is None
    pw = _verified(main_window, case)
    try:
        review = pw.review
        assert review is not None
        # The automatic registration is in the plan, for this post-op CT, one undo step.
        stored = doc.plan.registration
        assert stored is not None and stored.matches(case.postop) and not stored.nudged
        assert stored.method == "mattes-mi-bone" and doc.history.undo_label == "Store registration"
        np.testing.assert_allclose(stored.matrix, np.asarray(review.transform.matrix4()))
        assert "stored in the plan" in pw.transform_label.text()
        # A manual nudge is stored too (nudged), and undo in the plan's history shows the
        # automatic registration again in the post-op window.
        pw.nudge_buttons["L +1 mm"].click()
        _wait_idle(pw)
        nudged = doc.plan.registration
        assert nudged.nudged and doc.history.undo_label == "Correct registration"
        np.testing.assert_allclose(
            nudged.translation_mm - stored.translation_mm, [1.0, 0, 0], atol=1e-9
        )
        nudged_mm = review.verification.implanted_mm.copy()
        assert doc.undo()
        _wait_idle(pw)
        assert doc.plan.registration == stored
        np.testing.assert_allclose(review.transform.matrix4(), stored.matrix, atol=1e-12)
        assert not review.nudged
        np.testing.assert_allclose(
            review.verification.implanted_mm, nudged_mm - [1.0, 0.0, 0.0], atol=1e-9
        )
        assert doc.redo()
        _wait_idle(pw)
        assert doc.plan.registration == nudged and review.nudged
        assert "corrected by hand" in pw.transform_label.text()
        # The Seeds tab: the migrated seed first, in red on the post-op view.
        v = review.verification
        assert v.locations is not None and len(v.locations.of("migrated")) == 1
        table = pw.locations
        assert table.rowCount() == len(v.implanted_mm)
        assert table.cell_text(0, 1) == "migrated" and table.cell_text(0, 2) == "GTV"
        far = table.order[0]
        target = review.edits.seeds.positions_mm[far] + [7.0, 0.0, 0.0]  # not selected
        pw.postop_session.set_crosshair(target, snap=False)
        settle()
        assert pw.seeds_layer.shown["migrated"] == 1
        row = v.row("Seeds", "seeds_migrated")
        assert (row.planned, row.postop) == (0.0, 1.0)
        # The intra-op column (here: the plan itself as the intra-op re-plan) fills the Seeds
        # rows with the intra-op plan's counts.
        pw.set_intraop(v.planned, intraop_seed_counts(case.plan))
        rows = {
            (pw.table.cell_text(r, 0), pw.table.cell_text(r, 1)): r
            for r in range(pw.table.rowCount())
        }
        total = rows[("Seeds", "seeds (all)")]
        n = str(len(case.plan.seeds))
        assert not pw.table.isColumnHidden(3)
        assert pw.table.cell_text(total, 2) == pw.table.cell_text(total, 3) == n
        assert pw.table.cell_text(rows[("Seeds", "migrated (far from every needle)")], 4) == "1"
        pw.set_intraop(None)
        saved = save_plan(doc.plan, tmp_path / "verified.seedplan")
    finally:
        pw.close()
        settle()

    # Reopen: the plan from its file, the same post-op CT.
    reopened = load_plan(saved).plan
    assert reopened.registration == nudged
    main_window.session.set_document(PlanDocument(reopened, path=saved))
    pw2 = PostopWindow(main_window)
    pw2.show()
    settle()
    try:
        pw2.set_postop_ct(case.postop)
        settle()
        pw2.tabs.setCurrentWidget(pw2.registration_page)
        settle()
        # Before any detection: the stored registration on the check image.
        assert pw2.review is None
        t = pw2.fusion_transform()
        assert t is not None
        np.testing.assert_allclose(t.matrix4(), nudged.matrix, atol=1e-12)
        assert image_is_not_blank(pw2.fusion_rgb)
        assert "stored in the plan, corrected by hand" in pw2.transform_label.text()
        assert pw2.run_verification()
        wait_until(lambda: pw2.review is not None, VERIFY_TIMEOUT_S)
        _wait_idle(pw2)
        review2 = pw2.review
        assert review2.base.registration.initialised_by == "stored in the plan"
        assert review2.nudged and review2.transform == RigidTransform.from_matrix4(nudged.matrix)
        # Verifying with the stored registration changes nothing in the plan.
        doc2 = main_window.session.document
        assert not doc2.history.can_undo and doc2.plan.registration == nudged
        # An approved plan: a nudge is stored as a verification record (the approval and
        # everything approved unchanged), said on the label, and undoable in the plan.
        doc2.approve(user="physicist")
        approved = doc2.plan
        pw2.nudge_buttons["S +1 mm"].click()
        _wait_idle(pw2)
        rec = doc2.plan.registration
        assert pw2.store_note == "" and "not stored" not in pw2.transform_label.text()
        assert "stored in the approved plan" in pw2.transform_label.text()
        assert rec != nudged and rec.nudged and rec.matches(case.postop) and rec.registered_by
        np.testing.assert_allclose(
            rec.translation_mm - nudged.translation_mm, [0.0, 0.0, 1.0], atol=1e-9
        )
        plan = doc2.plan
        assert plan.is_approved and plan.approved_by == "physicist"
        assert plan.approved_utc == approved.approved_utc and plan.revision == approved.revision
        for name in ("structures", "prescription", "source", "needles", "seeds", "goals"):
            assert getattr(plan, name) is getattr(approved, name), name
        assert doc2.is_modified and "approved revision" in doc2.history.undo_label
        # Edit -> Undo / Redo of the main window follow the history on an approved plan too.
        menus = main_window.menus  # type: ignore[attr-defined]
        settle()
        assert menus.undo_action.isEnabled() and not menus.redo_action.isEnabled()
        assert "approved revision" in menus.undo_action.text()
        menus.undo_action.trigger()
        _wait_idle(pw2)
        assert doc2.plan.registration == nudged and doc2.plan.is_approved
        assert menus.redo_action.isEnabled()
        menus.redo_action.trigger()
        _wait_idle(pw2)
        assert doc2.plan.registration == rec and doc2.plan.is_approved
        menus.undo_action.trigger()
        _wait_idle(pw2)
        assert doc2.plan.registration == nudged and doc2.plan.is_approved
        np.testing.assert_allclose(pw2.review.transform.matrix4(), nudged.matrix, atol=1e-12)
    finally:
        pw2.close()
        settle()
