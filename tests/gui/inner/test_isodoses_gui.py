"""Live isodoses in the window: lines on the three 2-D views, legend in Gy and %, levels,
wash, the 100 % surface in 3-D, and dose waits for the engine (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.gui.layers.isodoses import LEVEL_RGB
from app.gui.main_window import MainWindow
from planner.plan.loading import load_needle_seeds
from planner.plan.needle_commands import AddNeedle, LoadNeedle
from tests.gui.inner._helpers import settle
from tests.gui.inner._planning import (
    demo_plan,
    gtv_centre_mm,
    open_plan,
    wait_for_exact,
    wait_for_live,
)


@pytest.fixture()
def window(demo_window: MainWindow, demo_ct: Path) -> MainWindow:
    """The demo window with a plan of two loaded needles through the GTV."""
    plan = demo_plan(demo_window, demo_ct)
    doc = open_plan(demo_window, plan)
    c = gtv_centre_mm(plan)
    demo_window.session.set_crosshair(c)
    wait_for_live(demo_window)
    for dx in (-6.0, 6.0):
        entry = c + np.array([dx + 20.0, 60.0, 0.0])
        tip = c + np.array([dx - 3.0, -8.0, 0.0])
        cmd = AddNeedle(tuple(entry), tuple(tip))
        doc.execute(cmd)
        doc.execute(LoadNeedle(cmd.needle_id, load_needle_seeds(doc.plan, cmd.needle_id)))
    settle()
    return demo_window


def test_isodose_lines_on_every_2d_view_lie_on_its_slice(window: MainWindow) -> None:
    planning = window.planning
    live = planning.live
    assert live is not None and live.n_seeds == len(planning.plan.seeds) >= 4
    for view in window.slice_views:
        layer = planning.view_layers[view]["isodoses"]
        assert layer.aligned()
        assert layer.segment_counts[100.0] > 0 and layer.segment_counts[50.0] > 0
        pd, actor = layer.lines[100.0]
        assert actor.GetVisibility()
        pts = np.array([pd.GetPoint(i) for i in range(pd.GetNumberOfPoints())])
        # On the displayed plane (drawn 0.7 mm in front of it, towards the camera).
        offset = pts @ view.normal - view.slice_position_mm()
        np.testing.assert_allclose(offset, -0.7, atol=1e-6)
        # The line follows the live dose: each point lies on a pixel-grid edge of the view's
        # region, where the dose interpolated along that edge is the 100 % level (110 Gy) …
        name = layer.name
        region = live.region_dose_gy(name)
        plane = live.plane(name)
        kji = plane.geometry.world_to_zyx(pts + 0.7 * view.normal)
        np.testing.assert_allclose(kji[:, 0], 0.0, atol=1e-6)
        rc = kji[:, 1:]
        on_edge = np.min(np.abs(rc - np.rint(rc)), axis=1)
        assert on_edge.max() < 1e-3
        from scipy.ndimage import map_coordinates

        np.testing.assert_allclose(map_coordinates(region, rc.T, order=1), 110.0, atol=0.05)
        # … and it has as many segments as the model's own marching squares finds.
        assert layer.segment_counts[100.0] == len(live.isodose_segments(name)[100.0])
        assert pd.GetNumberOfLines() == layer.segment_counts[100.0]


def test_legend_in_gy_and_percent_and_colours_on_screen(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    layer = planning.view_layers[axial]["isodoses"]
    texts = [t.GetInput() for t in layer.legend if t.GetVisibility()]
    assert "100 %  110 Gy" in texts and "50 %  55 Gy" in texts and "200 %  220 Gy" in texts
    assert any("PD 110 Gy" in t for t in texts)
    # Zoom onto the target: the 100 % line's yellow is on screen.
    axial.zoom(3.0)
    window.session.set_crosshair(gtv_centre_mm(planning.plan))
    settle()
    rgb = axial.grab_rgb().astype(int)
    yellow = np.array(LEVEL_RGB[100.0]) * 255
    close = np.abs(rgb - yellow).sum(axis=-1) < 60
    assert close.sum() > 50, "no 100 % isodose pixels on the axial view"
    axial.reset_camera()


def test_levels_are_configurable_and_wash_toggles(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    layer = planning.view_layers[axial]["isodoses"]
    planning.set_levels((80.0, 120.0))
    settle()
    assert set(layer.segment_counts) == {80.0, 120.0}
    assert not layer.lines[100.0][1].GetVisibility()
    planning.set_levels((50.0, 90.0, 100.0, 150.0, 200.0))
    window.findChild(object, "plan_wash").setChecked(True)
    settle()
    assert layer.wash_actor.GetVisibility()
    dims = layer.wash_image.GetDimensions()
    region = planning.live.region_dose_gy("axial")
    assert (dims[1], dims[0]) == region.shape
    window.findChild(object, "plan_wash").setChecked(False)
    settle()
    assert not layer.wash_actor.GetVisibility()


def test_exact_refresh_shows_the_100_percent_surface_and_metrics(window: MainWindow) -> None:
    planning = window.planning
    wait_for_exact(window)
    surface = next(
        layer
        for layer in window.volume_view.layers
        if type(layer).__name__ == "IsodoseSurfaceLayer"
    )
    assert surface.actor.GetVisibility()
    surface.contour.Update()
    assert surface.contour.GetOutput().GetNumberOfPoints() > 100
    assert "exact" in surface.text.GetInput()
    exact = planning.exact
    assert exact.seed_ids == tuple(s.id for s in planning.plan.seeds)
    panel = planning.metrics_panel
    d90 = exact.metrics["GTV"].d90_gy
    assert panel.value_of("GTV", "D90") == f"{d90:.1f} Gy"
    assert panel.value_of("SpinalCord", "Min seed distance").endswith("mm")
    assert "GTV" in planning.dvh_panel.curves and "SpinalCord" in planning.dvh_panel.curves


def test_a_stale_exact_result_never_overwrites_a_newer_one(window: MainWindow) -> None:
    planning = window.planning
    doc = planning.document
    wait_for_exact(window)
    first = planning.exact
    planning.refresh_exact()  # a refresh is running …
    seed = doc.plan.seeds[0]
    from planner.plan.needle_commands import MoveSeedAlongNeedle

    doc.execute(MoveSeedAlongNeedle(seed.id, distance_mm=3.0))  # … and an edit arrives
    wait_for_exact(window)
    assert planning.exact is not first
    moved = next(s for s in doc.plan.seeds if s.id == seed.id)
    i = planning.exact.seed_ids.index(seed.id)
    np.testing.assert_allclose(planning.exact.seeds.positions_mm[i], moved.position_mm, atol=1e-9)


def test_no_plan_no_lines(window: MainWindow) -> None:
    window.session.set_document(None)
    settle()
    for view in window.slice_views:
        layer = window.planning.view_layers[view]["isodoses"]
        assert not any(a.GetVisibility() for _, a in layer.lines.values())
    assert window.planning.live is None


def test_the_dvh_never_redraws_for_pending_statuses(window: MainWindow) -> None:
    """A drag sets "pending" statuses over and over: a banner over the DVH says the curves
    are being updated, and the figure (a 0.3–0.9 s full matplotlib redraw) is not drawn at
    all; the next exact result removes the banner."""
    from app.gui.panels.dvh_panel import PENDING_TEXT

    planning = window.planning
    wait_for_exact(window)
    panel = planning.dvh_panel
    assert panel.curves and not panel.pending
    title = panel.axes.get_title()
    draws: list[str] = []
    canvas = panel.canvas
    real_draw, real_idle = canvas.draw, canvas.draw_idle
    canvas.draw = lambda: (draws.append("draw"), real_draw())[1]  # type: ignore[method-assign]
    canvas.draw_idle = lambda: (draws.append("idle"), real_idle())[1]  # type: ignore[method-assign]
    try:
        for text in ("dose: live (fast) — exact refresh pending",) * 3 + ("exact pending",) * 2:
            planning.events.status_changed.emit(text)
            settle()
        assert panel.pending and panel.pending_label.text() == PENDING_TEXT
        assert panel.axes.get_title() == title  # still the exact dose the curves are of
        assert draws == []
        planning.refresh_exact()
        wait_for_exact(window)
        assert not panel.pending and draws  # the new result: drawn, banner gone
    finally:
        canvas.draw, canvas.draw_idle = real_draw, real_idle
