"""Post-op verification mode in the GUI (issue 13): the Workflow menu opens a window with the
post-op CT and its detected seeds; detection/verification runs off the GUI thread with progress
and cancel; seeds are added, deleted, merged and split (undoable); the registration is checked
on a checkerboard and nudged by hand; the comparison table and both DVHs follow."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.gui.layers.seeds import SEED_LENGTH_MM, SeedGlyphLayer
from app.gui.main_window import MainWindow
from app.gui.postop.window import PostopWindow
from app.gui.settings import Settings
from planner.plan.document import PlanDocument
from tests.gui.conftest import image_is_not_blank
from tests.gui.inner._helpers import settle, wait_until
from tests.postop_builders import PostopCase, build_postop_case

VERIFY_TIMEOUT_S = 180.0
#: The CTs cut in-plane to the GTV's box + 30 mm (the same scene; verification and drawing
#: several times faster than on the 512 x 512 slices).
CROP_MM = 30.0


@pytest.fixture(scope="module")
def case() -> PostopCase:
    return build_postop_case(crop_mm=CROP_MM)


@pytest.fixture(scope="module")
def main_window(
    gui_app: QApplication, case: PostopCase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    tmp = tmp_path_factory.mktemp("postop-settings")
    window = MainWindow(settings=Settings(Path(tmp) / "seedplan.ini"), interactive=False)
    window.resize(1200, 800)
    window.show()
    settle()
    yield window
    window.close()
    settle()


def _wait_idle(pw: PostopWindow) -> None:
    wait_until(lambda: not pw.runner.busy and not pw._reverify_timer.isActive(), VERIFY_TIMEOUT_S)
    settle()


def test_workflow_menu_needs_a_plan(main_window: MainWindow, case: PostopCase) -> None:
    ui = main_window.workflow  # type: ignore[attr-defined]
    titles = [a.text() for a in main_window.menuBar().actions()]
    assert "&Workflow" in titles
    assert not ui.postop_action.isEnabled() and ui.open_postop() is None
    main_window.session.set_volume(case.ct)
    main_window.session.set_document(PlanDocument(case.plan))
    assert ui.postop_action.isEnabled() and ui.export_action.isEnabled()


@pytest.fixture(scope="module")
def postop(main_window: MainWindow, case: PostopCase) -> PostopWindow:
    if main_window.session.document is None:
        main_window.session.set_volume(case.ct)
        main_window.session.set_document(PlanDocument(case.plan))
    pw = main_window.workflow.open_postop()  # type: ignore[attr-defined]
    assert pw is not None
    settle()
    pw.set_postop_ct(case.postop)
    settle()
    return pw


def test_verification_can_be_cancelled(postop: PostopWindow) -> None:
    cancelled: list[bool] = []
    postop.runner.cancelled.connect(lambda: cancelled.append(True))
    assert postop.run_verification()
    assert postop.runner.busy  # off the GUI thread: we are back before it finishes
    postop.runner.cancel()
    wait_until(lambda: not postop.runner.busy, VERIFY_TIMEOUT_S)
    assert cancelled and postop.review is None
    assert postop.runner.label.text() == "Cancelled"


def test_verification_shows_seeds_table_and_dvhs(postop: PostopWindow, case: PostopCase) -> None:
    fractions: list[float] = []
    postop.runner.worker = None
    assert postop.run_verification()
    postop.runner.worker.progress.connect(lambda f, _m: fractions.append(f))  # type: ignore[union-attr]
    wait_until(lambda: postop.review is not None, VERIFY_TIMEOUT_S)
    _wait_idle(postop)
    assert fractions and max(fractions) > 0.3 and fractions == sorted(fractions)
    v = postop.review.verification  # type: ignore[union-attr]
    n = len(case.plan.seeds)
    assert len(v.implanted_mm) == n and len(v.match.pairs) == n
    # Detected seeds, in the planning frame, land on the true implanted positions.
    d = np.linalg.norm(v.implanted_mm[:, None] - case.implanted_mm[None], axis=-1).min(axis=1)
    assert np.sqrt(np.mean(d**2)) < 0.7
    # The view is on the implant: seeds are drawn on its plane, the nearest one selected.
    shown = postop.seeds_layer.shown
    assert shown["detected"] + shown["selected"] >= 1
    # Comparison table: D90 of the GTV first, planned and post-op as the verification says.
    table = postop.table
    assert table.rowCount() == len([r for r in v.comparison if r.metric != "prescription_gy"])
    assert (table.cell_text(0, 0), table.cell_text(0, 1)) == ("GTV", "D90")
    row = v.row("GTV", "d90_gy")
    assert row.planned >= 10.0 and row.postop >= 10.0  # shown to 0.1 Gy
    assert float(table.cell_text(0, 2)) == pytest.approx(row.planned, abs=0.05 + 1e-9)
    assert float(table.cell_text(0, 4)) == pytest.approx(row.postop, abs=0.05 + 1e-9)
    # The difference: signed, to the decimals of the two values beside it.
    delta = table.cell_text(0, 5)
    assert float(delta) == pytest.approx(row.difference, abs=0.05 + 1e-9)
    assert len(delta.split(".")[1]) == 1 and (delta[0] in "+-" or float(delta) == 0.0)
    assert table.isColumnHidden(3)  # no intra-op plan
    assert ("GTV", "planned") in postop.dvh.curves and ("GTV", "postop") in postop.dvh.curves
    assert ("SpinalCord", "postop") in postop.dvh.curves
    assert "seeds matched" in postop.summary.text()
    # A click on a Seeds row puts the post-op crosshair on that seed: it is the selected one.
    last = postop.locations.rowCount() - 1
    seed = postop.locations.order[last]
    postop.locations.cellClicked.emit(last, 0)
    settle()
    np.testing.assert_allclose(
        postop.postop_session.crosshair_mm, postop.review.edits.seeds.positions_mm[seed]
    )
    assert postop.selected_index() == seed


def test_seed_edits_are_undoable_and_reverified(postop: PostopWindow) -> None:
    review = postop.review
    assert review is not None
    n = len(review.edits.seeds)
    # The seed farthest from its neighbours: its two split halves merge with each other.
    p = review.edits.seeds.positions_mm
    gaps_mm = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.diag(np.full(n, np.inf))
    lone = int(np.argmax(gaps_mm.min(axis=1)))
    postop.postop_session.set_crosshair(p[lone], snap=False)
    settle()
    i = postop.selected_index()
    assert i == lone
    target = review.edits.seeds.positions_mm[i].copy()
    postop.delete_selected()
    _wait_idle(postop)
    assert len(review.verification.implanted_mm) == n - 1
    assert len(review.verification.match.unmatched_planned) == 1
    assert postop.undo_action.isEnabled()
    postop.undo()
    _wait_idle(postop)
    assert len(review.verification.implanted_mm) == n
    # Split the seed at the crosshair, then merge the two halves back: one seed again.
    postop.postop_session.set_crosshair(target, snap=False)
    postop.split_selected()
    assert len(review.edits.seeds) == n + 1
    postop.merge_selected()
    _wait_idle(postop)
    assert len(review.edits.seeds) == n
    np.testing.assert_allclose(review.edits.seeds.positions_mm[-1], target, atol=1e-9)
    assert review.edits.seeds.origin[-1] == "merged"
    assert any("reviewed by hand" in w for w in review.verification.warnings)
    # Add a seed at the crosshair (a seed the detector missed): drawn and selected.
    postop.add_seed_at_crosshair()
    _wait_idle(postop)
    assert len(review.verification.implanted_mm) == n + 1
    assert postop.seeds_layer.shown["selected"] == 1
    for _ in range(4):
        postop.undo()
    _wait_idle(postop)
    assert len(review.edits.seeds) == n and not review.edits.can_undo


def test_registration_nudge_changes_fusion_and_dose(postop: PostopWindow) -> None:
    review = postop.review
    assert review is not None
    postop.tabs.setCurrentWidget(postop.registration_page)
    settle()
    postop.refresh_fusion()
    before_rgb = postop.fusion_rgb.copy()
    assert image_is_not_blank(before_rgb)
    t0 = review.transform
    before_mm = review.verification.implanted_mm.copy()
    postop.nudge_buttons["L +1 mm"].click()
    _wait_idle(postop)
    np.testing.assert_allclose(
        np.subtract(review.transform.translation_mm, t0.translation_mm), [1.0, 0.0, 0.0], atol=1e-9
    )
    np.testing.assert_allclose(
        review.verification.implanted_mm - before_mm, [[1.0, 0, 0]] * len(before_mm), atol=1e-9
    )
    assert not np.array_equal(postop.fusion_rgb, before_rgb)
    assert "corrected by hand" in postop.transform_label.text()
    postop.fusion_mode.setCurrentText("fusion")
    settle()
    rgb = postop.fusion_rgb
    assert rgb.shape[-1] == 3 and not np.array_equal(rgb[..., 0], rgb[..., 1])  # colour overlay
    postop.reset_nudge_button.click()
    _wait_idle(postop)
    assert review.transform == t0 and not review.nudged
    np.testing.assert_allclose(review.verification.implanted_mm, before_mm, atol=1e-9)


def test_export_reports_the_reviewed_verification(
    main_window: MainWindow, postop: PostopWindow, tmp_path: Path
) -> None:
    """The Export dialog reports the verification the post-op mode holds, review edits
    included (metrics.json's summary; the PDF's section is built from the same record)."""
    import json

    review = postop.review
    assert review is not None
    n = len(review.edits.seeds)
    postop.postop_session.set_crosshair(review.edits.seeds.positions_mm[0], snap=False)
    settle()
    postop.delete_selected()
    _wait_idle(postop)
    dialog = main_window.workflow.open_export()  # type: ignore[attr-defined]
    out = tmp_path / "export"
    dialog.folder_edit.setText(str(out))
    dialog.set_kinds(["csv"])
    assert dialog.start_export()
    wait_until(lambda: not dialog.runner.busy, VERIFY_TIMEOUT_S)
    settle()
    v = json.loads((out / "metrics.json").read_text())["verification"]
    assert v["seeds"]["detected"] == n and v["seeds"]["after_review"] == n - 1
    assert len(v["seeds"]["unmatched_planned"]) == 1
    assert v["comparison"] == [r.to_dict() for r in review.verification.comparison]
    dialog.close()
    # Save verified copy…: the same record in a plan file with the reviewed seeds; never over
    # the open plan's own file.
    from planner.plan.plan_file import load_plan, save_plan

    assert postop.save_copy_action.isEnabled()
    copy = load_plan(postop.save_verified_copy(tmp_path / "copy.seedplan")).plan
    assert len(copy.seeds) == n - 1 and copy.verification is not None
    assert copy.verification.seeds_reviewed == n - 1 and copy.verification.seeds_detected == n
    assert copy.registration == review.verification.registration_record
    doc = main_window.session.document
    own = save_plan(doc.plan, tmp_path / "plan.seedplan")
    before, doc.path = own.read_bytes(), own
    try:
        assert postop.save_verified_copy(own) is None
        assert "is an input" in postop.runner.label.text()
        assert own.read_bytes() == before
    finally:
        doc.path = None
    postop.undo()
    _wait_idle(postop)
    assert len(review.verification.implanted_mm) == n


def test_intraop_column_and_screenshot(postop: PostopWindow, tmp_path: Path) -> None:
    review = postop.review
    assert review is not None
    postop.set_intraop(review.verification.planned)  # the intra-op plan = the plan here
    assert not postop.table.isColumnHidden(3)
    assert postop.table.cell_text(0, 3) == postop.table.cell_text(0, 2)
    postop.set_intraop(None)
    assert postop.table.isColumnHidden(3)
    from app.gui.screenshot import grab_composited

    postop.tabs.setCurrentIndex(0)
    settle(10)
    image = grab_composited(postop, [postop.view])
    assert image.width() > 600
    rgb = postop.view.grab_rgb()
    assert image_is_not_blank(rgb)


def test_seed_glyphs_use_no_deprecated_vtk_filter(main_window: MainWindow) -> None:
    """The 3-D seed glyph (a cylinder turned onto x) is built without VTK 9.7's deprecated
    vtkTransformPolyDataFilter, and is still a 4.5 mm x 0.8 mm cylinder along x."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = SeedGlyphLayer(main_window.volume_view, main_window.session, main_window.planning)
    try:
        assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
        glyph = layer.actor.GetMapper().GetInputAlgorithm()
        turned = glyph.GetInputAlgorithm(1, 0)
        turned.Update()
        out = turned.GetOutputDataObject(0)
        assert out.IsA("vtkPolyData") and out.GetPointData().GetNormals() is not None
        x0, x1, y0, y1, z0, z1 = out.GetBounds()
        assert (x0, x1) == pytest.approx((-SEED_LENGTH_MM / 2, SEED_LENGTH_MM / 2))
        assert (y0, y1) == pytest.approx((-0.4, 0.4))
        assert max(abs(z0), abs(z1)) <= 0.4 + 1e-6
    finally:
        layer.close()
