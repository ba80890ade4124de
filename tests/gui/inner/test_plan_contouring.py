"""Contouring in the window, driven by real mouse events on the demo CT (issue 10, GUI half).

Paint with the brush on two axial slices, fill between them, grow the canal and the cord from
one click, expand a margin (and see one below a voxel refused), make the PTV, undo and redo
through the Edit menu, save, reopen the plan file and get identical masks; autosave and the
crash-recovery dialog; a plan refused on another patient's CT.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from app.gui.main_window import MainWindow
from planner.plan.commands import EditMask
from planner.plan.model import Plan
from planner.plan.plan_file import load_plan, save_plan
from planner.plan.recovery import autosave_path, find_recovery
from tests.gui.inner._helpers import mouse, settle, wait_until
from tests.gui.inner.conftest import open_window


@pytest.fixture(autouse=True, scope="module")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Autosaves and locks of never-saved plans go to a temporary state folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def window(gui_app: QApplication, demo_ct: Path, tmp_path_factory) -> Iterator[MainWindow]:
    w = open_window(tmp_path_factory.mktemp("settings"), demo_ct, size=(1400, 900))
    yield w
    doc = w.session.document
    if doc is not None and doc.is_modified and doc.path is not None:
        w.plan_controller.save()
    w.plan_controller.set_document(None)
    w.close()
    settle()


def answer_next_dialog(button: str | QMessageBox.StandardButton) -> list[str]:
    """Click ``button`` (an object name, a text or a standard button) in the next modal dialog;
    returns the texts of the dialogs answered."""
    seen: list[str] = []

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, poll)
            return
        seen.append(f"{box.text()} {box.informativeText()}")
        if isinstance(button, QMessageBox.StandardButton):
            target = box.button(button)
        else:
            target = next(
                (b for b in box.findChildren(QPushButton) if button in (b.objectName(), b.text())),
                None,
            )
        assert target is not None, f"no button {button!r} in {seen[-1]!r}"
        target.click()

    QTimer.singleShot(50, poll)
    return seen


def centroid_mm(window: MainWindow, mask: np.ndarray, k: int | None = None) -> np.ndarray:
    g = window.session.volume.geometry
    kji = np.argwhere(mask if k is None else mask[k]).mean(axis=0)
    if k is not None:
        kji = np.array([k, *kji])
    return g.zyx_to_world(kji)


def show_slice(window: MainWindow, xyz_mm: np.ndarray) -> None:
    window.session.set_crosshair(xyz_mm)
    settle()


def left_drag(view, points_mm: list[np.ndarray], modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first point, move through the others, release at the last (real events)."""
    left = Qt.MouseButton.LeftButton
    px = [view.world_to_display(p) for p in points_mm]
    mouse(view, QEvent.Type.MouseButtonPress, *px[0], left, modifiers=modifiers)
    for x, y in px[1:]:
        mouse(view, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, left, modifiers)
    mouse(view, QEvent.Type.MouseButtonRelease, *px[-1], left, Qt.MouseButton.NoButton, modifiers)
    settle()


def structure(window: MainWindow, name: str):
    s = window.session.document.plan.structure_named(name)
    assert s is not None, f"no structure {name}"
    return s


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def test_contour_undo_save_reopen(window: MainWindow, tmp_path: Path) -> None:
    w = window
    truth = {n: m.voxels for n, m in w.session.masks.items()}
    g = w.session.volume.geometry
    doc = w.plan_controller.new_plan()
    assert doc is not None and w.session.document is doc
    names = [s.name for s in doc.plan.structures]
    assert names == ["GTV", "PTV", "SpinalCord", "SpinalCanal"]
    assert "rev 1" in w.windowTitle() and "draft" in w.windowTitle()
    assert w.structures_panel.table.rowCount() == 4

    # --- brush: a 6 mm disc dragged 8 mm on the axial slice through the GTV's middle
    gtv_truth = truth["GTV"]
    ks = np.flatnonzero(gtv_truth.any(axis=(1, 2)))
    k1 = int(ks[len(ks) // 2 - 2])
    k2 = k1 + 4
    w.tool_manager.set_current(structure(w, "GTV").id)
    w.menus.tool_actions["brush"].trigger()
    assert w.tool_manager.active is not None and w.tool_manager.active.name == "brush"
    w.structures_panel.radius.setValue(6.0)
    steps_before = len(doc.history.undo_steps)
    for k in (k1, k2):
        c = centroid_mm(w, gtv_truth, k)
        show_slice(w, c)
        path = [c + np.array([dx, 0.0, 0.0]) for dx in np.linspace(-4.0, 4.0, 9)]
        left_drag(w.axial_view, path)
    gtv = structure(w, "GTV").mask
    painted = np.flatnonzero(gtv.any(axis=(1, 2)))
    assert painted.tolist() == [k1, k2], "a 2-D disc paints exactly the displayed slice"
    # Area of the swept disc: a 12 mm circle plus an 8 mm x 12 mm band, to within 10 %.
    px_mm2 = g.spacing_mm[0] * g.spacing_mm[1]
    expected = (np.pi * 36.0 + 8.0 * 12.0) / px_mm2
    assert abs(np.count_nonzero(gtv[k1]) / expected - 1.0) < 0.10
    assert len(doc.history.undo_steps) == steps_before + 2, "one undo step per stroke"
    assert doc.history.undo_label == "Paint GTV"
    assert w.menus.undo_action.text() == "&Undo Paint GTV"
    # The axial outline follows the painted slice (drawn from the mask, not from a surface).
    outline = w.axial_view.structure_layer.outlines[structure(w, "GTV").id]
    assert outline.mapper.GetInput().GetNumberOfPoints() > 8

    # --- fill between slices (ITK morphological interpolation on a worker)
    w.menus.contour_actions["fill_between"].trigger()
    wait_until(lambda: not w.task_running, 120)
    gtv2 = structure(w, "GTV").mask
    assert w.structure_operations.last_error == ""
    filled = np.flatnonzero(gtv2.any(axis=(1, 2))).tolist()
    assert filled == list(range(k1, k2 + 1))
    assert np.array_equal(gtv2[k1], gtv[k1]) and np.array_equal(gtv2[k2], gtv[k2])

    # --- canal and cord from one click each, away from the compression
    canal_truth, cord_truth = truth["SpinalCanal"], truth["SpinalCord"]
    kc = int(np.flatnonzero(canal_truth.any(axis=(1, 2)))[5])
    click = centroid_mm(w, canal_truth, kc)
    show_slice(w, click)
    w.menus.tool_actions["canal"].trigger()
    left_drag(w.axial_view, [click])
    canal = structure(w, "SpinalCanal").mask
    assert dice(canal, canal_truth) > 0.85, dice(canal, canal_truth)
    kcord = int(np.flatnonzero(cord_truth.any(axis=(1, 2)))[3])
    click = centroid_mm(w, cord_truth, kcord)
    show_slice(w, click)
    w.menus.tool_actions["cord"].trigger()
    left_drag(w.axial_view, [click])
    cord = structure(w, "SpinalCord").mask
    assert cord.any() and not np.any(cord & ~canal), "the cord lies inside the canal"

    # --- margins: refused below one voxel, 3 mm into a new structure
    assert not w.structure_operations.margin("GTV", 0.3, target_name="GTV_03")
    assert "voxel" in w.structure_operations.last_error
    assert w.session.document.plan.structure_named("GTV_03") is None
    assert w.structure_operations.margin("GTV", 3.0, target_name="GTV_3mm")
    gtv3 = structure(w, "GTV_3mm")
    assert gtv3.voxel_count > structure(w, "GTV").voxel_count
    assert not np.any(gtv2 & ~gtv3.mask), "an expansion contains its source"

    # --- make the PTV in one click: GTV + 5 mm minus (cord + 2 mm)
    steps = len(doc.history.undo_steps)
    w.menus.contour_actions["make_ptv"].trigger()
    ptv = structure(w, "PTV")
    assert len(doc.history.undo_steps) == steps + 1
    assert ptv.voxel_count > gtv3.voxel_count
    assert not np.any(ptv.mask & cord), "the PTV keeps out of the cord"
    before_undo = {s.name: s.mask.copy() for s in doc.plan.structures}

    # --- undo and redo through the Edit menu
    w.menus.undo_action.trigger()
    assert structure(w, "PTV").voxel_count == 0
    w.menus.redo_action.trigger()
    assert np.array_equal(structure(w, "PTV").mask, before_undo["PTV"])

    # --- save, reopen, identical masks
    target = tmp_path / "contoured.seedplan"
    assert w.plan_controller.save_as(target)
    assert target.is_file() and not doc.is_modified and "*" not in w.windowTitle()
    assert w.plan_controller.close_plan() and w.session.document is None
    opened: list[object] = []
    w.plan_controller.plan_opened.connect(opened.append)
    w.open_path(target)
    wait_until(lambda: bool(opened), 60)
    reopened = w.session.document
    assert reopened is not None and reopened.path == target
    after = {s.name: s.mask for s in reopened.plan.structures}
    assert after.keys() == before_undo.keys()
    for name, mask in before_undo.items():
        assert np.array_equal(after[name], mask), name
    assert "contoured" not in w.windowTitle() or "*" not in w.windowTitle()


def test_polygon_fill_and_eraser(window: MainWindow) -> None:
    w = window
    if w.session.document is None:
        w.plan_controller.new_plan()
    doc = w.session.document
    g = w.session.volume.geometry
    s = structure(w, "GTV")
    w.tool_manager.set_current(s.id)
    centre = w.session.crosshair_mm
    k = int(np.rint(g.world_to_zyx(centre)[0]))
    before = s.slice_mask(k).copy()
    # A 20 mm square drawn freehand (press, drag along the sides, release).
    w.menus.tool_actions["polygon"].trigger()
    corners = [centre + d for d in ([-10, -10, 0], [10, -10, 0], [10, 10, 0], [-10, 10, 0])]
    loop = [
        a + t * (b - a)
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True)
        for t in (0, 0.5)
    ]
    left_drag(w.axial_view, [*loop, corners[0]])
    after = structure(w, "GTV").slice_mask(k)
    added = np.count_nonzero(after & ~before)
    area = np.count_nonzero(after) - np.count_nonzero(before & ~after)
    assert added > 0
    square_px = 400.0 / (g.spacing_mm[0] * g.spacing_mm[1])
    assert abs(np.count_nonzero(after) - max(square_px, area)) / square_px < 0.25
    # The eraser with a 4 mm disc at the square's centre clears it there.
    w.menus.tool_actions["eraser"].trigger()
    w.structures_panel.radius.setValue(4.0)
    left_drag(w.axial_view, [centre])
    j, i = np.rint(g.world_to_zyx(centre)[1:]).astype(int)
    assert not structure(w, "GTV").slice_mask(k)[j, i]
    assert doc.history.undo_label == "Erase GTV"
    w.tool_manager.set_active(None)


def test_autosave_and_recovery_restore(window: MainWindow, tmp_path: Path) -> None:
    w = window
    pc = w.plan_controller
    if w.session.document is None:
        pc.new_plan()
    path = tmp_path / "recover.seedplan"
    assert pc.save_as(path)
    doc = w.session.document
    s = structure(w, "GTV")
    box = (slice(0, 1), slice(0, 4), slice(0, 4))
    doc.execute(EditMask(s.id, box, True, "corner"))
    edited = structure(w, "GTV").mask.copy()
    assert doc.is_modified and "*" in w.windowTitle()
    pc.autosaver.delay_s = 0.0
    wait_until(lambda: autosave_path(path).is_file(), 10)
    # A crash: the session ends without saving, its lock vanishes, the autosave stays.
    pc.autosaver.close()
    pc.autosaver = None
    pc.lock.release()
    pc.lock = None
    pc._managed = None
    w.session.set_document(None)
    assert find_recovery(path) is not None
    seen = answer_next_dialog("restore")
    opened: list[object] = []
    pc.plan_opened.connect(opened.append)
    w.open_path(path)
    wait_until(lambda: bool(opened), 60)
    assert seen and "did not close normally" in seen[0]
    restored = w.session.document
    assert np.array_equal(structure(w, "GTV").mask, edited)
    assert restored.is_modified, "a restored autosave is unsaved until saved"
    assert pc.save()
    assert not autosave_path(path).exists(), "saving removes the autosave"


def test_plan_refused_on_another_patients_ct(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = window
    pc = w.plan_controller
    if w.session.document is not None and w.session.document.is_modified:
        pc.save()
    plan = Plan.new(w.session.volume)
    other = plan.evolve(ct=_with_patient(plan, "SOMEONE-ELSE"))
    path = save_plan(other, tmp_path / "other.seedplan")
    assert load_plan(path).plan.ct.patient_id == "SOMEONE-ELSE"
    failed: list[str] = []
    w.load_failed.connect(failed.append)
    seen: list[str] = []

    def record(parent, title, text, *args, **kwargs):
        seen.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(record))
    w.open_path(path)
    wait_until(lambda: bool(failed), 60)
    settle()
    assert "patient ID" in failed[0] and "SOMEONE-ELSE" in failed[0], failed[0]
    doc = w.session.document
    assert doc is None or doc.plan.ct.patient_id != "SOMEONE-ELSE"
    assert seen and "patient ID" in seen[0], "the refusal is shown in a dialog"


def _with_patient(plan: Plan, patient_id: str):
    from dataclasses import replace

    return replace(plan.ct, patient_id=patient_id, source_path=str(plan.ct.source_path))


def test_approved_plan_is_read_only_until_a_new_revision(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planner.plan.commands import SetPrescription
    from planner.plan.model import Prescription

    w = window
    pc = w.plan_controller
    if w.session.document is not None and w.session.document.is_modified:
        pc.save()
    doc = pc.new_plan(from_case_masks=True)
    assert doc is not None and structure(w, "GTV").voxel_count > 0  # the case's own GTV
    doc.execute(SetPrescription(Prescription(110.0, structure(w, "GTV").id)))
    doc.approve(user="physicist")
    assert "approved" in w.windowTitle() and not w.menus.undo_action.isEnabled()
    answers: list[QMessageBox.StandardButton] = [QMessageBox.StandardButton.No]
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    before = structure(w, "GTV").mask.copy()
    w.tool_manager.set_current(structure(w, "GTV").id)
    w.menus.tool_actions["brush"].trigger()
    c = w.session.crosshair_mm
    left_drag(w.axial_view, [c, c + np.array([30.0, 0.0, 0.0])])
    assert asked and "read-only" in asked[0]
    assert np.array_equal(structure(w, "GTV").mask, before), "an approved plan is never edited"
    assert doc.plan.revision == 1 and doc.plan.is_approved
    answers.append(QMessageBox.StandardButton.Yes)
    left_drag(w.axial_view, [c + np.array([60.0, 0.0, 0.0])])
    assert doc.plan.revision == 2 and doc.plan.status == "draft"
    assert "rev 2" in w.windowTitle() and "draft" in w.windowTitle()
    w.tool_manager.set_active(None)
    if w.session.document is not None and w.session.document.is_modified:
        pc.autosaver.remove()
        pc.set_document(None)
