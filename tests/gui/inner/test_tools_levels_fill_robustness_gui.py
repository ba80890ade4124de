"""One armed tool at a time, the isodose levels dialog, the structure fill, and the robustness
result beside the metrics and as bands on the DVH (issues 10, 11, 12).

Interactions go through the real widgets: mouse events on the 2-D views (the tools' event
filters and the views' handlers run), the menu actions, the panels' controls and the dialogs'
buttons; the Qt-free document is only read to check the outcome.

Speed: the case is the demo anatomy generated in memory on a small grid (192² × 30 slices,
2.1 × 2.1 × 2.5 mm: the same T9 GTV and cord at about a tenth of the demo CT's voxels, no
DICOM to read) while the dose engine warms up; one window and one plan value (GTV and cord
only) serve every test (each test opens a fresh document of it); every wait is on a condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from app.gui.dialogs.isodose_levels import IsodoseLevelsDialog, parse_levels
from app.gui.dialogs.robustness import RobustnessDialog
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from planner.demo.phantom import generate_phantom
from planner.imaging.volume import CTVolume, Mask, PatientInfo
from planner.plan.model import Goal, Plan, Prescription, SourceSpec, Structure, new_id
from planner.plan.needle_commands import AddNeedle
from tests.gui.inner._helpers import click, settle, wait_until
from tests.gui.inner._planning import ROLES, gtv_centre_mm, open_plan, wait_for_exact, wait_for_live
from tests.gui.inner.conftest import open_window

TASK_TIMEOUT_S = 180.0
#: Robustness samples of the finished run (percentiles and bands need a handful, not 100).
SAMPLES = 8
_COLOURS = {
    "GTV": (255, 0, 0),
    "SpinalCord": (255, 255, 0),
    "SpinalCanal": (0, 200, 255),
    "VertebralBody": (0, 255, 0),
}


@pytest.fixture(scope="module")
def small_window(
    gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    """One window for the module showing the demo phantom on a 192² × 30 grid (generated in
    memory, its masks as the case's). The dose engine warms up while the phantom is made."""
    window = open_window(tmp_path_factory.mktemp("settings"))
    window.dose_engine.start()  # what `seedplan gui` does once a case is shown
    ph = generate_phantom(matrix=192, n_slices=30)
    info = PatientInfo(
        patient_id="GUI-SMALL", patient_name="TEST^SMALL", frame_of_reference_uid="1.2.3"
    )
    masks = {
        name: Mask(name, voxels, ph.geometry, _COLOURS.get(name, (0, 180, 0)))
        for name, voxels in ph.masks.items()
    }
    window.session.set_volume(CTVolume(ph.hu, ph.geometry, info), masks=masks)
    settle()
    yield window
    window.close()
    settle()


@pytest.fixture(scope="module")
def base_plan(small_window: MainWindow) -> Plan:
    """A draft plan on the small CT: the GTV and the cord (the structures the tests use) from
    its masks, PD 110 Gy D90 of the GTV, model 6711 at 0.6 U, goals GTV D90 ≥ 110 Gy and
    SpinalCord D0.1cc ≤ 50 Gy; no needles."""
    from dose.sources import load_model

    volume = small_window.session.volume
    assert volume is not None
    structures = tuple(
        Structure.from_mask(
            new_id("st"), name, ROLES.get(name, "other"), m.voxels, volume.geometry, m.color_rgb
        )
        for name, m in small_window.session.case.masks.items()
        if name in ("GTV", "SpinalCord")
    )
    gtv = next(s for s in structures if s.name == "GTV")
    cord = next(s for s in structures if s.name == "SpinalCord")
    model = load_model("6711")
    return Plan.new(
        volume,
        structures=structures,
        prescription=Prescription(110.0, gtv.id),
        source=SourceSpec(model.model_id, model.checksum, 0.6),
        goals=(
            Goal(new_id("gl"), gtv.id, "D90", ">=", 110.0, "Gy"),
            Goal(new_id("gl"), cord.id, "D0.1cc", "<=", 50.0, "Gy"),
        ),
    )


@pytest.fixture()
def window(small_window: MainWindow, base_plan: Plan) -> MainWindow:
    """The module's window with a fresh document of the plan (no needles), navigating,
    crosshair on the GTV."""
    small_window.tool_manager.set_active(None)
    open_plan(small_window, base_plan)
    small_window.session.set_crosshair(gtv_centre_mm(base_plan))
    wait_for_live(small_window)
    settle()
    return small_window


def _gtv(window: MainWindow):
    return window.session.document.plan.structure_named("GTV")


def _add_loaded_needle(window: MainWindow) -> str:
    """A posterior-oblique needle through the GTV, loaded from its tip at 10 mm (via widgets)."""
    planning = window.planning
    c = gtv_centre_mm(planning.plan)
    entry = c + np.array([25.0, 60.0, 5.0])
    tip = c - 0.15 * (entry - c)
    cmd = AddNeedle(tuple(entry), tuple(tip))
    assert planning.execute(cmd)
    planning.select(cmd.needle_id, None)
    planning.needle_panel.spacing.setValue(10.0)
    planning.needle_panel.load_selected_button.click()
    settle()
    return cmd.needle_id


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel largest channel difference of two RGB grabs."""
    return np.abs(a[..., :3].astype(int) - b[..., :3].astype(int)).max(axis=-1)


def _empty_gtv_pixel(window: MainWindow) -> tuple[float, float]:
    """A pixel of the axial view whose point is inside the CT, 8 mm from any GTV voxel."""
    axial = window.axial_view
    gtv = _gtv(window)
    g = gtv.geometry
    mask = np.zeros(g.shape_zyx, bool)
    mask[gtv.box] = gtv.crop
    for dx in (60, -60, 90, -90, 120):
        x, y = axial.width() / 2 + dx, axial.height() / 2
        p = axial.display_to_world(x, y)
        k, j, i = np.rint(g.world_to_index(p)[::-1]).astype(int)
        r = 6
        window_ = mask[k, max(0, j - r) : j + r + 1, max(0, i - r) : i + r + 1]
        inside = all(0 <= v < n for v, n in zip((k, j, i), g.shape_zyx, strict=True))
        if inside and not window_.any():
            return x, y
    raise AssertionError("no empty pixel found beside the GTV")


# ------------------------------------------------------------------ one tool manager
def test_arming_a_tool_disarms_the_other_and_a_click_reaches_only_the_armed_one(
    window: MainWindow,
) -> None:
    w = window
    manager, planning = w.tool_manager, w.planning
    doc = planning.document
    axial = w.axial_view
    manager.set_current(_gtv(w).id)
    x, y = _empty_gtv_pixel(w)
    mask_before = _gtv(w).mask.copy()

    # Brush armed, then Plan → Place needle (N): the brush is disarmed.
    w.menus.tool_actions["brush"].trigger()
    assert manager.armed_name == "brush"
    assert w.structures_panel.tool_buttons["brush"].isChecked()
    w.findChild(object, "plan_needle").trigger()
    assert manager.armed_name == "needle" and manager.active is None
    assert planning.active_tool is planning.needle_tool
    assert not w.structures_panel.tool_buttons["brush"].isChecked()
    click(axial, x, y)  # goes to the needle tool only: the entry, no paint
    settle()
    assert planning.needle_tool.entry_mm is not None
    assert np.array_equal(_gtv(w).mask, mask_before)
    assert len(doc.history.undo_steps) == 0

    # The brush again (its button): the half-placed needle is cancelled.
    w.structures_panel.tool_buttons["brush"].click()
    assert manager.armed_name == "brush"
    assert planning.active_tool is None and not planning.needle_tool.armed
    assert planning.needle_tool.entry_mm is None and planning.preview_needle is None
    click(axial, x, y)  # paints, and no needle entry is set
    settle()
    assert np.count_nonzero(_gtv(w).mask) > np.count_nonzero(mask_before)
    assert planning.needle_tool.entry_mm is None and doc.plan.needles == ()
    assert doc.history.undo_label == "Paint GTV"
    doc.undo()
    assert np.array_equal(_gtv(w).mask, mask_before)

    # Measure distance (M) disarms the brush; two clicks measure, nothing is painted.
    w.findChild(object, "plan_distance").trigger()
    assert manager.armed_name == "distance" and manager.active is None
    click(axial, x, y)
    click(axial, x + 40, y)
    settle()
    assert planning.distance_tool.distance_mm > 0
    assert np.array_equal(_gtv(w).mask, mask_before)
    # Navigate (Esc button): nothing is armed; a click moves the crosshair.
    w.structures_panel.tool_buttons[""].click()
    assert manager.armed_name == "" and planning.active_tool is None
    assert not planning.distance_tool.armed
    before = w.session.crosshair_mm.copy()
    click(axial, x, y + 30)
    settle()
    assert not np.allclose(w.session.crosshair_mm, before)


def test_with_the_brush_armed_a_click_on_a_seed_paints_and_leaves_the_seed(
    window: MainWindow,
) -> None:
    w = window
    planning = w.planning
    doc = planning.document
    nid = _add_loaded_needle(w)
    seed = next(s for s in doc.plan.seeds if s.needle_id == nid)
    w.session.set_crosshair(np.asarray(seed.position_mm))
    settle()
    axial = w.axial_view
    sx, sy = planning.view_layers[axial]["seeds"].seeds_px[seed.id]
    cord = doc.plan.structure_named("SpinalCord")  # a structure away from the seed
    w.tool_manager.set_current(cord.id)
    w.menus.tool_actions["brush"].trigger()
    cord_before = np.count_nonzero(cord.mask)
    steps = len(doc.history.undo_steps)
    click(axial, sx, sy)
    settle()
    moved = next(s for s in doc.plan.seeds if s.id == seed.id)
    assert moved.position_mm == seed.position_mm  # the seed tool did not grab it
    assert np.count_nonzero(doc.plan.structure(cord.id).mask) > cord_before
    assert len(doc.history.undo_steps) == steps + 1 and doc.history.undo_label.startswith("Paint")
    doc.undo()
    w.tool_manager.set_active(None)


# ------------------------------------------------------------------ isodose levels
def test_isodose_levels_dialog_validates_applies_and_keeps_the_levels(
    window: MainWindow, tmp_path: Path
) -> None:
    w = window
    planning = w.planning
    action = planning.actions["levels"]
    assert action.shortcut().toString() == "Ctrl+Shift+D"
    assert "Ctrl+Shift+D" in action.toolTip() and "% of PD" in action.toolTip()
    assert planning.levels_percent == (50.0, 90.0, 100.0, 150.0, 200.0)
    _add_loaded_needle(w)
    wait_for_live(w)

    dialog = IsodoseLevelsDialog(planning, w)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.edit.text() == "50, 90, 100, 150, 200" and ok.isEnabled()
    assert dialog.table.rowCount() == 5 and dialog.table.item(0, 2).text() == "220.0 Gy"
    for text, words in (
        ("50, abc, 100", "not a number"),
        ("-10, 100", "negative"),
        ("0, 100", "above 0"),
        ("90, 100, 90", "given twice"),
        ("1500", "at most 1000"),
        (", ".join(str(10 * k) for k in range(1, 12)), "at most 10 levels"),
        ("", "at least one level"),
    ):
        dialog.edit.setText(text)
        assert words in dialog.error.text(), (text, dialog.error.text())
        assert not ok.isEnabled() and dialog.levels is None and not dialog.table.isEnabled()
    dialog.edit.setText("30; 60 100% 120")
    assert dialog.error.text() == "" and ok.isEnabled() and dialog.table.isEnabled()
    assert [dialog.table.item(r, 2).text() for r in range(4)] == [
        "132.0 Gy",
        "110.0 Gy",
        "66.0 Gy",
        "33.0 Gy",
    ]
    ok.click()
    settle()
    levels = (30.0, 60.0, 100.0, 120.0)
    assert planning.levels_percent == levels
    assert planning.live.levels_percent == levels
    # The views draw those levels, the legend names them in % and Gy.
    iso = planning.view_layers[w.axial_view]["isodoses"]
    assert set(iso.segment_counts) == set(levels)
    legend = [t.GetInput() for t in iso.legend if t.GetVisibility()]
    assert any(text.startswith("120 %  132 Gy") for text in legend), legend
    assert not any(text.startswith("150 %") for text in legend)
    assert planning.document.history.can_undo  # the needle; the levels made no undo step
    assert planning.document.history.undo_label == "Load needle"
    # Kept in the settings: a new window with the same settings file starts with them.
    assert Settings(w.settings.path).isodose_levels() == levels
    assert _new_window_levels(tmp_path) == (50.0, 90.0, 100.0, 150.0, 200.0)
    assert _new_window_levels(w.settings.path.parent) == levels
    # Defaults back (the reset button), for the other tests.
    dialog = IsodoseLevelsDialog(planning, w)
    dialog.reset_button.click()
    assert dialog.edit.text() == "50, 90, 100, 150, 200"
    dialog.accept()
    assert planning.levels_percent == (50.0, 90.0, 100.0, 150.0, 200.0)
    assert parse_levels("200 50 100") == (50.0, 100.0, 200.0)


def _new_window_levels(settings_dir: Path) -> tuple[float, ...]:
    """The isodose levels a new window with the settings in ``settings_dir`` starts with (made,
    not shown: it reads them when it is made)."""
    other = MainWindow(settings=Settings(settings_dir / "seedplan.ini"))
    try:
        return other.planning.levels_percent
    finally:
        other.close()
        settle()


# ------------------------------------------------------------------ structure fill
def test_structure_fill_and_opacity_change_what_is_drawn(window: MainWindow) -> None:
    w = window
    panel = w.structures_panel
    axial = w.axial_view
    gtv = _gtv(w)
    w.session.set_crosshair(gtv_centre_mm(w.session.document.plan))
    settle()
    outline = axial.structure_layer.outlines[gtv.id]
    row = panel._ids.index(gtv.id)
    opacity_spin = panel.table.cellWidget(row, 4)
    assert not panel.fill_check.isChecked() and not panel.fill_opacity.isEnabled()
    assert not outline.fill_actor.GetVisibility()
    plain = axial.grab_rgb()
    # Fill on: the fill actor is shown at 25 % of the structure's opacity; pixels change.
    panel.fill_check.click()
    settle()
    assert panel.fill_check.isChecked() and panel.fill_opacity.isEnabled()
    assert outline.fill_actor.GetVisibility()
    assert outline.fill_actor.GetProperty().GetOpacity() == pytest.approx(0.25)
    filled = axial.grab_rgb()
    changed = _diff(filled, plain) > 4
    assert changed.sum() > 200, "the fill changes the pixels inside the GTV"
    # Fill opacity 60 %: a stronger fill, a larger change.
    panel.fill_opacity.setValue(60)
    settle()
    assert outline.fill_actor.GetProperty().GetOpacity() == pytest.approx(0.6)
    stronger = axial.grab_rgb()
    assert _diff(stronger, plain)[changed].mean() > 1.5 * _diff(filled, plain)[changed].mean()
    # The structure's own opacity scales the outline and the fill.
    opacity_spin.setValue(50)
    settle()
    assert outline.actor.GetProperty().GetOpacity() == pytest.approx(0.5)
    assert outline.fill_actor.GetProperty().GetOpacity() == pytest.approx(0.3)
    half = axial.grab_rgb()
    assert _diff(half, plain)[changed].mean() < _diff(stronger, plain)[changed].mean()
    # Off again: the GTV looks as it did.
    opacity_spin.setValue(100)
    panel.fill_opacity.setValue(25)
    panel.fill_check.click()
    settle()
    assert not outline.fill_actor.GetVisibility()
    assert _diff(axial.grab_rgb(), plain)[changed].max() <= 2


# ------------------------------------------------------------------ robustness
def _wait(dialog: RobustnessDialog) -> None:
    wait_until(lambda: not dialog.runner.busy, TASK_TIMEOUT_S)
    settle()


def test_robustness_shown_beside_the_metrics_and_as_bands_on_the_dvh(window: MainWindow) -> None:
    w = window
    planning = w.planning
    doc = planning.document
    # A plan without seeds: one line saying so, nothing shown.
    empty = RobustnessDialog(w)
    failures: list[str] = []
    empty.runner.failed.connect(failures.append)
    assert empty.start()
    _wait(empty)
    assert failures and "no seeds" in failures[0] and "\n" not in failures[0]
    assert empty.result is None and planning.robustness is None
    empty.close()
    _add_loaded_needle(w)
    wait_for_exact(w)
    action = w.workflow.robustness_action  # type: ignore[attr-defined]
    assert action.shortcut().toString() == "Ctrl+Shift+R" and "Ctrl+Shift+R" in action.toolTip()
    action.trigger()
    dialog = w.workflow.dialogs["robustness"]  # type: ignore[attr-defined]
    assert isinstance(dialog, RobustnessDialog)
    assert dialog.samples.value() == 100
    assert dialog.model().entry_mm == (3.4, 1.7) and dialog.model().depth_mm == (5.2, 4.8)
    assert dialog.model().max_lever_mm == 55.0
    assert "tip" in dialog.max_lever.toolTip() and dialog.max_lever.suffix() == " mm"
    dialog.max_lever.setValue(0.0)
    assert dialog.model().max_lever_mm == 0.0 and dialog.max_lever.text() == "no cap"
    dialog.max_lever.setValue(70.0)  # the run below uses it
    # Cancel: nothing is shown.
    dialog.samples.setValue(2000)
    assert dialog.start() and dialog.runner.busy  # off the GUI thread
    dialog.runner.cancel()
    _wait(dialog)
    assert dialog.result is None and planning.robustness is None
    assert not planning.metrics_panel.robust_table.isVisibleTo(planning.metrics_panel)
    # A few samples.
    plan_before = doc.plan
    dialog.samples.setValue(SAMPLES)
    assert dialog.start()
    _wait(dialog)
    result = dialog.result
    assert result is not None, dialog.runner.label.text()
    assert doc.plan is plan_before  # nothing in the plan changed
    assert planning.robustness is result and result.d90_gy.size == SAMPLES
    assert result.model.max_lever_mm == 70.0
    assert dialog.runner.last_fraction == pytest.approx(1.0)  # the bar followed the samples
    text = dialog.result_text.toPlainText()
    assert f"{SAMPLES} samples" in text and "GTV D90: planned" in text
    assert "SpinalCord D0.1 cm³" in text
    # Beside the metrics: planned and percentiles; the worst case coloured against the goal.
    mp = planning.metrics_panel
    assert mp.robust_table.isVisibleTo(mp) and f"{SAMPLES} samples" in mp.robust_header.text()
    pct = result.percentiles()
    assert mp.robust_value_of("GTV", "D90", "5th") == f"{pct['d90_gy']['p5']:.1f} Gy"
    assert mp.robust_value_of("GTV", "D90", "Planned") == f"{result.nominal['d90_gy']:.1f} Gy"
    assert mp.robust_value_of("SpinalCord", "D0.1 cm³", "95th").endswith("Gy")
    row = next(
        r for r in range(mp.robust_table.rowCount()) if mp.robust_table.item(r, 1).text() == "D90"
    )
    assert "5th percentile against the goal D90 >= 110" in mp.robust_table.item(row, 3).toolTip()
    # On the DVH: a shaded band and a median per structure with a band.
    dvh = planning.dvh_panel
    assert set(dvh.bands) == set(result.dvh_bands) and "GTV" in dvh.bands
    for dose, p5, p50, p95 in dvh.bands.values():
        assert len(dose) == len(p5) == len(p95) > 10
        assert np.all(p5 <= p50 + 1e-9) and np.all(p50 <= p95 + 1e-9)
    assert len(dvh.axes.collections) >= len(dvh.bands)  # fill_between polygons
    assert "needle-error samples" in dvh.axes.get_title()
    # An edit drops the result: it described the plan before the edit.
    doc.undo()
    settle()
    assert planning.robustness is None and dvh.bands == {}
    assert not mp.robust_table.isVisibleTo(mp)
    # A result for an older plan state is not shown.
    doc.redo()
    assert dialog.start()
    doc.undo()
    _wait(dialog)
    assert dialog.result is not None and planning.robustness is None
    assert "older state" in dialog.runner.label.text()
    dialog.close()
    settle()
