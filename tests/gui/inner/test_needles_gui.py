"""Needles and seeds in the window (issue 11): place, drag, load, rename, delete, undo, save.

Every interaction goes through the real widgets: mouse events on the 2-D views (the tools'
event filters and the views' own handlers run), the needle table's cells and buttons, the
Plan menu's actions; the Qt-free document is only read to check the outcome.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt

from app.gui.main_window import MainWindow
from planner.plan.loading import load_needle_seeds
from planner.plan.needle_commands import AddNeedle, distance_from_tip_mm
from planner.plan.needles import needle_direction
from planner.plan.plan_file import load_plan, save_plan
from tests.gui.inner._helpers import click, mouse, settle, wheel
from tests.gui.inner._planning import (
    demo_plan,
    gtv_centre_mm,
    open_plan,
    wait_for_exact,
    wait_for_live,
)


@pytest.fixture()
def window(demo_window: MainWindow, demo_ct: Path) -> MainWindow:
    """The demo window with a fresh plan (no needles) and the crosshair on the GTV."""
    plan = demo_plan(demo_window, demo_ct)
    open_plan(demo_window, plan)
    demo_window.session.set_crosshair(gtv_centre_mm(plan))
    wait_for_live(demo_window)
    settle()
    return demo_window


def _px(view, xyz_mm) -> tuple[float, float]:
    return view.world_to_display(np.asarray(xyz_mm, dtype=float))


def _add_loaded_needle(window: MainWindow) -> str:
    """A posterior-oblique needle through the GTV, loaded from its tip at 10 mm (via widgets)."""
    planning = window.planning
    c = gtv_centre_mm(planning.plan)
    entry = c + np.array([25.0, 60.0, 5.0])
    tip = c - 0.15 * (entry - c)
    cmd = AddNeedle(tuple(entry), tuple(tip))
    assert planning.execute(cmd)
    planning.select(cmd.needle_id, None)
    panel = planning.needle_panel
    panel.spacing.setValue(10.0)
    panel.load_selected_button.click()
    settle()
    return cmd.needle_id


def test_place_a_needle_with_two_clicks_on_different_views_and_slices(window: MainWindow) -> None:
    planning = window.planning
    axial, sagittal, _ = window.slice_views
    doc = planning.document
    window.findChild(object, "plan_needle").trigger()
    assert planning.active_tool is planning.needle_tool
    # Entry: a click on the axial view, 40 px right and 60 px below its centre.
    x0, y0 = axial.width() / 2 + 40, axial.height() / 2 + 60
    entry_expected = axial.display_to_world(x0, y0)
    crosshair_before = window.session.crosshair_mm
    click(axial, x0, y0)
    settle()
    assert window.session.crosshair_mm == pytest.approx(crosshair_before)  # the tool had it
    # Scroll the axial view two slices, then click the tip on the sagittal view.
    wheel(axial, 2)
    settle()
    x1, y1 = sagittal.width() / 2 - 30, sagittal.height() / 2 + 10
    mouse(sagittal, QEvent.Type.MouseMove, x1, y1, Qt.MouseButton.NoButton)
    assert planning.preview_needle is not None
    tip_expected = sagittal.display_to_world(x1, y1)
    click(sagittal, x1, y1)
    settle()
    assert len(doc.plan.needles) == 1
    needle = doc.plan.needles[0]
    np.testing.assert_allclose(needle.entry_mm, entry_expected, atol=1e-6)
    np.testing.assert_allclose(needle.tip_mm, tip_expected, atol=1e-6)
    assert planning.active_tool is None and planning.preview_needle is None
    assert doc.history.undo_label == "Add needle"
    # The table has one row with its length, entry and tip in LPS mm.
    planning.refresh_table()
    table = planning.needle_panel.table
    assert table.rowCount() == 1
    length = float(np.linalg.norm(np.subtract(needle.tip_mm, needle.entry_mm)))
    assert float(table.item(0, 1).text()) == pytest.approx(length, abs=0.06)
    assert table.item(0, 5).text() == ", ".join(f"{v:.1f}" for v in needle.entry_mm)
    # Drawn on the axial view: its track crosses the displayed plane (a needle spanning slices).
    layer = planning.view_layers[axial]["needles"]
    assert (needle.id, "entry") in layer.handles_px
    window.findChild(object, "plan_undo").trigger()
    settle()
    assert doc.plan.needles == ()


def test_escape_cancels_placement(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    planning.needle_tool.start()
    click(axial, axial.width() / 2, axial.height() / 2)
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(
        axial, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
    )
    settle()
    click(axial, axial.width() / 2 + 30, axial.height() / 2)
    assert planning.document.plan.needles == ()
    assert planning.active_tool is None


def test_load_seeds_from_the_tip_and_the_loading_summary(window: MainWindow) -> None:
    planning = window.planning
    nid = _add_loaded_needle(window)
    plan = planning.plan
    seeds = [s for s in plan.seeds if s.needle_id == nid]
    expected = load_needle_seeds(plan, nid, spacing_mm=10.0)
    assert len(seeds) == len(expected) >= 2
    needle = next(n for n in plan.needles if n.id == nid)
    d = needle_direction(needle)
    for s in seeds:  # on the track, axis = needle direction, 10 mm apart
        rel = np.subtract(s.position_mm, needle.tip_mm)
        assert np.linalg.norm(rel - (rel @ d) * d) < 1e-6
        np.testing.assert_allclose(s.axis, d, atol=1e-9)
    dist = sorted(distance_from_tip_mm(needle, s.position_mm) for s in seeds)
    np.testing.assert_allclose(np.diff(dist), 10.0, atol=1e-6)
    assert planning.document.history.undo_label == "Load needle"
    planning.refresh_table()
    summary = planning.needle_panel.summary.text()
    total_u = 0.6 * len(seeds)
    assert f"{len(seeds)} seeds" in summary
    assert f"{total_u:.2f} U ({total_u / 1.270:.2f} mCi)" in summary
    assert planning.needle_panel.table.item(0, 7).text() == str(len(seeds))
    # A wider spacing loads fewer seeds (replacing the needle's seeds, one undo step).
    planning.needle_panel.spacing.setValue(15.0)
    planning.needle_panel.load_selected_button.click()
    settle()
    assert len([s for s in planning.plan.seeds if s.needle_id == nid]) < len(seeds)
    planning.document.undo()
    assert len(planning.plan.seeds) == len(seeds)


def test_drag_a_seed_along_its_needle_moves_isodoses_and_metrics_then_undo(
    window: MainWindow,
) -> None:
    planning = window.planning
    doc = planning.document
    nid = _add_loaded_needle(window)
    wait_for_exact(window)
    d90_before = planning.metrics_panel.value_of("GTV", "D90")
    assert d90_before.endswith("Gy")
    seed = next(s for s in doc.plan.seeds if s.needle_id == nid)
    needle = next(n for n in doc.plan.needles if n.id == nid)
    # Show the seed's axial slice; it is drawn there and can be grabbed.
    window.session.set_crosshair(np.asarray(seed.position_mm))
    settle()
    axial = window.axial_view
    seeds_layer = planning.view_layers[axial]["seeds"]
    assert seed.id in seeds_layer.seeds_px
    iso = planning.view_layers[axial]["isodoses"]
    before = planning.live.isodose_segments("axial")[100.0].copy()
    counts_before = dict(iso.segment_counts)
    assert counts_before[100.0] > 0 and counts_before[50.0] > 0
    n_steps_before = len(doc.history.undo_steps)
    x, y = seeds_layer.seeds_px[seed.id]
    # Drag 25 px towards the needle's entry, in 5 mouse moves.
    ex, ey = _px(axial, needle.entry_mm)
    u = np.array([ex - x, ey - y]) / np.hypot(ex - x, ey - y)
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    generations = []
    for t in np.linspace(5, 25, 5):
        mouse(
            axial,
            QEvent.Type.MouseMove,
            x + t * u[0],
            y + t * u[1],
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
        )
        generations.append(planning.live.generation)
    assert planning.exact_pending is False or planning.dragging  # no exact refresh mid-drag
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x + 25 * u[0],
        y + 25 * u[1],
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    settle()
    assert len(set(generations)) == 5  # the live dose followed every move
    moved = next(s for s in doc.plan.seeds if s.id == seed.id)
    d_old = distance_from_tip_mm(needle, seed.position_mm)
    d_new = distance_from_tip_mm(needle, moved.position_mm)
    assert d_new > d_old + 3.0  # moved towards the entry
    rel = np.subtract(moved.position_mm, needle.tip_mm)
    dvec = needle_direction(needle)
    assert np.linalg.norm(rel - (rel @ dvec) * dvec) < 1e-6  # still on the track
    assert len(doc.history.undo_steps) == n_steps_before + 1  # the drag is one undo step
    after = planning.live.isodose_segments("axial")[100.0]
    assert after.shape != before.shape or not np.allclose(after, before)
    # The exact refresh after the release changes the metrics.
    wait_for_exact(window)
    assert planning.exact.seed_ids == tuple(s.id for s in doc.plan.seeds)
    d90_after = planning.metrics_panel.value_of("GTV", "D90")
    assert d90_after != d90_before
    # Undo: the seed goes back, and so do the isodoses and (after the refresh) the metrics.
    window.findChild(object, "plan_undo").trigger()
    settle()
    back = next(s for s in doc.plan.seeds if s.id == seed.id)
    np.testing.assert_allclose(back.position_mm, seed.position_mm, atol=1e-9)
    np.testing.assert_allclose(planning.live.isodose_segments("axial")[100.0], before, atol=1e-6)
    wait_for_exact(window)
    assert planning.metrics_panel.value_of("GTV", "D90") == d90_before


def test_drag_a_needle_tip_moves_the_needle_and_its_seeds(window: MainWindow) -> None:
    planning = window.planning
    doc = planning.document
    nid = _add_loaded_needle(window)
    needle = next(n for n in doc.plan.needles if n.id == nid)
    seeds_before = {
        s.id: distance_from_tip_mm(needle, s.position_mm)
        for s in doc.plan.seeds
        if s.needle_id == nid
    }
    axial = window.axial_view
    window.session.set_crosshair(np.asarray(needle.tip_mm))
    settle()
    layer = planning.view_layers[axial]["needles"]
    x, y = layer.handles_px[(nid, "tip")]
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    for k in range(1, 4):
        mouse(
            axial,
            QEvent.Type.MouseMove,
            x + 6 * k,
            y,
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
        )
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x + 18,
        y,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    settle()
    moved = next(n for n in doc.plan.needles if n.id == nid)
    assert moved.entry_mm == needle.entry_mm
    shift = np.subtract(moved.tip_mm, needle.tip_mm)
    mm_per_px = axial._mm_per_px()
    assert shift[0] == pytest.approx(18 * mm_per_px, rel=0.05)  # screen right is +L
    assert abs(shift[2]) < 1e-6  # stays in the axial plane it was dragged in
    for s in doc.plan.seeds:
        if s.needle_id == nid:  # seeds keep their distance from the (new) tip
            assert distance_from_tip_mm(moved, s.position_mm) == pytest.approx(
                seeds_before[s.id], abs=1e-6
            )
    assert doc.history.undo_label == "Move needle tip"
    doc.undo()
    assert next(n for n in doc.plan.needles if n.id == nid).tip_mm == needle.tip_mm


def test_rename_in_the_table_delete_and_ctrl_click_adds_a_seed(window: MainWindow) -> None:
    planning = window.planning
    doc = planning.document
    nid = _add_loaded_needle(window)
    planning.refresh_table()
    table = planning.needle_panel.table
    table.item(0, 0).setText("L-post-1")
    settle()
    assert next(n for n in doc.plan.needles if n.id == nid).label == "L-post-1"
    assert doc.history.undo_label == "Rename needle"
    # Ctrl+click on the needle's track (where it crosses the axial slice) adds a seed there.
    axial = window.axial_view
    needle = next(n for n in doc.plan.needles if n.id == nid)
    mid = 0.5 * (np.asarray(needle.entry_mm) + np.asarray(needle.tip_mm))
    window.session.set_crosshair(mid)
    settle()
    cross = planning.view_layers[axial]["needles"].crossings_mm[nid]
    n_before = len(doc.plan.seeds)
    x, y = _px(axial, cross)
    click_mod = Qt.KeyboardModifier.ControlModifier
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton, modifiers=click_mod)
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x,
        y,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
        modifiers=click_mod,
    )
    settle()
    assert len(doc.plan.seeds) == n_before + 1
    new = doc.plan.seeds[-1]
    assert new.needle_id == nid and planning.selected_seed_id == new.id
    # Delete: the selected seed, then (nothing selected but the needle) the needle and seeds.
    window.findChild(object, "plan_delete").trigger()
    assert len(doc.plan.seeds) == n_before
    planning.select(nid, None)
    window.findChild(object, "plan_delete").trigger()
    settle()
    assert doc.plan.needles == () and doc.plan.seeds == ()
    doc.undo()
    assert len(doc.plan.needles) == 1 and len(doc.plan.seeds) == n_before


def test_template_needles_and_warnings_in_the_table(window: MainWindow) -> None:
    planning = window.planning
    panel = planning.needle_panel
    panel.direction.setCurrentText("Posterior → anterior")
    panel.needle_spacing.setValue(10.0)
    panel.template_button.click()
    settle()
    plan = planning.plan
    assert len(plan.needles) >= 2
    d = np.array([needle_direction(n) for n in plan.needles])
    np.testing.assert_allclose(d, np.tile([0.0, -1.0, 0.0], (len(d), 1)), atol=1e-9)  # parallel
    planning.refresh_table()
    table = panel.table
    assert table.rowCount() == len(plan.needles)
    # Straight posterior needles through an epidural tumour pass the cord or canal: the rows
    # say so (never blocking), and the needle is drawn in the warning colour.
    warned = [r for r in range(table.rowCount()) if table.item(r, 8).text() != "—"]
    assert warned, "no needle warnings on posterior needles next to the cord"
    texts = " ".join(table.item(r, 8).text() for r in warned)
    assert "Spinal" in texts and "mm" in texts
    from app.gui.layers.needles import NEEDLE_RGB, needle_rgb

    nid = table.item(warned[0], 0).data(Qt.ItemDataRole.UserRole)
    assert needle_rgb(planning, nid) != NEEDLE_RGB


def test_save_and_reopen_keeps_needles_and_seeds(window: MainWindow, tmp_path: Path) -> None:
    planning = window.planning
    _add_loaded_needle(window)
    plan = planning.plan
    path = save_plan(plan, tmp_path / "needles.seedplan")
    planning.document.mark_saved(path)
    window.session.set_document(None)
    settle()
    assert planning.live is None and planning.plan is None
    reopened = load_plan(path).plan
    open_plan(window, reopened, path)
    wait_for_live(window)
    assert [(n.id, n.entry_mm, n.tip_mm, n.label) for n in planning.plan.needles] == [
        (n.id, n.entry_mm, n.tip_mm, n.label) for n in plan.needles
    ]
    assert [(s.id, s.position_mm, s.needle_id) for s in planning.plan.seeds] == [
        (s.id, s.position_mm, s.needle_id) for s in plan.seeds
    ]
    assert planning.live.n_seeds == len(plan.seeds)
    planning.refresh_table()
    assert planning.needle_panel.table.rowCount() == len(plan.needles)


def test_distance_tool_measures_in_mm(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    window.findChild(object, "plan_distance").trigger()
    a = (axial.width() / 2 - 50, axial.height() / 2)
    b = (axial.width() / 2 + 30, axial.height() / 2 + 60)
    wa, wb = axial.display_to_world(*a), axial.display_to_world(*b)
    mouse(axial, QEvent.Type.MouseButtonPress, *a, Qt.MouseButton.LeftButton)
    mouse(axial, QEvent.Type.MouseMove, *b, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        *b,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    settle()
    tool = planning.distance_tool
    assert tool.distance_mm == pytest.approx(float(np.linalg.norm(wb - wa)), abs=1e-6)
    assert tool.distance_mm == pytest.approx(100 * axial._mm_per_px(), rel=1e-3)  # 80² + 60²
    assert tool.layers[axial].label.GetInput() == f"{tool.distance_mm:.1f} mm"
    assert "mm" in window.statusBar().currentMessage()
    tool.stop()
    assert planning.active_tool is None


def test_needle_names_only_where_a_needle_can_be_told_apart(window: MainWindow) -> None:
    """Two parallel needles in axial planes 20 mm apart: on the axial view of one of them only
    its name is written (the other projects onto the same screen line, 20 mm off the plane);
    selected, the other is named too; on the coronal view both cross the plane: both named."""
    planning = window.planning
    c = gtv_centre_mm(planning.plan)
    ids = []
    for dz in (0.0, 20.0):
        entry, tip = c + np.array([10.0, 50.0, dz]), c + np.array([10.0, -10.0, dz])
        cmd = AddNeedle(tuple(entry), tuple(tip), name=f"z{dz:g}")
        assert planning.execute(cmd)
        ids.append(cmd.needle_id)
    planning.select(None, None)
    window.session.set_crosshair(c)
    settle()
    axial, coronal = window.axial_view, window.coronal_view

    def names(view) -> set[str]:
        layer = planning.view_layers[view]["needles"]
        return {a.GetInput() for a in layer._labels if a.GetVisibility()}

    assert names(axial) == {"z0"}
    assert names(coronal) == {"z0", "z20"}
    planning.select(ids[1], None)
    settle()
    assert names(axial) == {"z0", "z20"}
