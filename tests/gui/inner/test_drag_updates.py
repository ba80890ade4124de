"""What a seed drag updates per mouse move, and what waits for the release (issue 11).

A real drag (mouse events on the axial view through the seed tool): the 3-D seed glyphs are
not rebuilt on the drag steps (the 3-D view is not redrawn until the release) and are exactly
the plan's seeds once the release has been drawn; the isodose layer draws the 100 % line on
its own actor and every other level on one shared actor, per-level counts equal to the
model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from vtkmodules.util.numpy_support import vtk_to_numpy

from app.gui.main_window import MainWindow
from tests.gui.inner._helpers import mouse, settle, wait_until
from tests.gui.inner._planning import (
    window_with_loaded_needle,
)


@pytest.fixture()
def window(demo_window: MainWindow, demo_ct: Path) -> MainWindow:
    """The demo window with a fresh plan, one loaded needle through the GTV, crosshair on
    one of its seeds."""
    return window_with_loaded_needle(demo_window, demo_ct)


def _glyph_layer(window: MainWindow):
    return next(
        layer for layer in window.volume_view.layers if type(layer).__name__ == "SeedGlyphLayer"
    )


def _glyph_points(layer) -> np.ndarray:
    return vtk_to_numpy(layer.points.GetPoints().GetData()).copy()


def _plan_points(window: MainWindow) -> np.ndarray:
    return np.array([s.position_mm for s in window.planning.plan.seeds], dtype=np.float64)


def test_3d_glyphs_wait_for_the_release_and_are_current_after_it(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    glyphs = _glyph_layer(window)
    np.testing.assert_allclose(_glyph_points(glyphs), _plan_points(window))
    seeds_layer = planning.view_layers[axial]["seeds"]
    sid, (x, y) = next(iter(seeds_layer.seeds_px.items()))
    before = _glyph_points(glyphs)
    rebuilds = glyphs.rebuilds
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    for k in range(1, 6):
        mouse(
            axial,
            QEvent.Type.MouseMove,
            x,
            y - 3.0 * k,
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
        )
        settle(2)
    # Mid-drag: the seed moved in the plan, the 2-D views followed, the glyphs did not.
    assert planning.dragging
    moved = next(s for s in planning.plan.seeds if s.id == sid)
    assert not np.allclose(_plan_points(window), before)
    assert glyphs.deferred and glyphs.rebuilds == rebuilds
    np.testing.assert_array_equal(_glyph_points(glyphs), before)
    renders = window.volume_view.render_count
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x,
        y - 15.0,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    # The held 3-D render comes once the drag has ended, with the glyphs rebuilt once.
    wait_until(lambda: (settle(2), window.volume_view.render_count > renders)[1], 10.0)
    assert not glyphs.deferred
    assert glyphs.rebuilds == rebuilds + 1
    np.testing.assert_allclose(_glyph_points(glyphs), _plan_points(window))
    i = [s.id for s in planning.plan.seeds].index(sid)
    np.testing.assert_allclose(_glyph_points(glyphs)[i], moved.position_mm)
    # An edit outside a drag redraws the glyphs at once.
    window.findChild(object, "plan_undo").trigger()
    settle()
    assert not glyphs.deferred
    np.testing.assert_allclose(_glyph_points(glyphs), before)


def test_isodose_levels_share_one_actor_besides_the_100_percent(window: MainWindow) -> None:
    planning = window.planning
    live = planning.live
    for view in window.slice_views:
        layer = planning.view_layers[view]["isodoses"]
        thick_pd, thick = layer.lines[100.0]
        others = {id(layer.lines[p][1]) for p in (50.0, 90.0, 150.0, 200.0)}
        assert others == {id(layer.lines[50.0][1])} and id(thick) not in others
        segments = live.isodose_segments(layer.name)
        for p, count in layer.segment_counts.items():
            assert count == len(segments[p]), (view.objectName(), p)
        assert thick_pd.GetNumberOfLines() == layer.segment_counts[100.0]
        thin_pd, thin = layer.lines[50.0]
        assert thin.GetVisibility()
        n_thin = sum(layer.segment_counts[p] for p in (50.0, 90.0, 150.0, 200.0))
        assert thin_pd.GetNumberOfLines() == n_thin > 0
        # Each thin line's colour is its level's (the 50 % blue is there).
        rgb = vtk_to_numpy(thin_pd.GetPointData().GetScalars())
        assert rgb.shape == (thin_pd.GetNumberOfPoints(), 3)
        blue = np.rint(np.array((0.30, 0.55, 1.00)) * 255)
        assert (np.abs(rgb - blue).sum(axis=1) == 0).any()


def _assert_lines_fresh(window: MainWindow) -> None:
    """Every view's isodose polydata (VTK arrays refilled in place per update) hold what a
    fresh contouring of the live dose gives: points, lines and per-point colours."""
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    from app.gui.layers.isodoses import ISODOSE_OFFSET_MM, IsodoseContours, level_rgb

    planning = window.planning
    live = planning.live
    levels = planning.levels_percent
    for view in window.slice_views:
        layer = planning.view_layers[view]["isodoses"]
        fresh: dict[int, vtkPolyData] = {}
        polys = {p: fresh.setdefault(id(layer.lines[p][0]), vtkPolyData()) for p in levels}
        counts = IsodoseContours().update(
            live.region_dose_gy(layer.name),
            live.plane(layer.name).geometry,
            {p: live.prescription_gy * p / 100.0 for p in levels},
            polys,
            -ISODOSE_OFFSET_MM * np.asarray(view.normal, dtype=np.float64),
            {p: level_rgb(p) for p in levels},
        )
        assert counts == layer.segment_counts, view.objectName()
        for p in levels:
            drawn, new = layer.lines[p][0], polys[p]
            if not counts[p]:
                continue
            np.testing.assert_array_equal(
                vtk_to_numpy(drawn.GetPoints().GetData()), vtk_to_numpy(new.GetPoints().GetData())
            )
            assert drawn.GetNumberOfLines() == new.GetNumberOfLines()
            np.testing.assert_array_equal(
                vtk_to_numpy(drawn.GetLines().GetConnectivityArray()),
                vtk_to_numpy(new.GetLines().GetConnectivityArray()),
            )
            a, b = drawn.GetPointData().GetScalars(), new.GetPointData().GetScalars()
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(vtk_to_numpy(a), vtk_to_numpy(b))


def test_isodose_arrays_refilled_in_place_follow_drag_undo_levels_and_slices(
    window: MainWindow,
) -> None:
    planning = window.planning
    axial = window.axial_view
    layer = planning.view_layers[axial]["isodoses"]
    _assert_lines_fresh(window)
    points_array = layer.lines[100.0][0].GetPoints().GetData()
    first = vtk_to_numpy(points_array).copy()
    sid, (x, y) = next(iter(planning.view_layers[axial]["seeds"].seeds_px.items()))
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    for k in range(1, 4):
        mouse(
            axial,
            QEvent.Type.MouseMove,
            x,
            y - 4.0 * k,
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
        )
        settle(2)
        _assert_lines_fresh(window)
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x,
        y - 12.0,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    settle()
    # The same VTK array, refilled: the 100 % line moved with the seed.
    assert layer.lines[100.0][0].GetPoints().GetData() is points_array
    assert not np.array_equal(vtk_to_numpy(points_array), first)
    _assert_lines_fresh(window)
    window.findChild(object, "plan_undo").trigger()  # undo
    settle()
    _assert_lines_fresh(window)
    np.testing.assert_allclose(vtk_to_numpy(points_array), first, rtol=0, atol=1e-9)
    planning.set_levels((60.0, 100.0, 120.0))  # a change of levels
    settle()
    assert set(layer.segment_counts) == {60.0, 100.0, 120.0}
    _assert_lines_fresh(window)
    planning.set_levels((50.0, 90.0, 100.0, 150.0, 200.0))
    settle()
    seed = next(s for s in planning.plan.seeds if s.id == sid)
    window.session.set_crosshair(np.asarray(seed.position_mm) + np.array([2.0, 3.0, 2.5]))
    settle()  # a slice change on every view
    _assert_lines_fresh(window)


def _assert_seeds_fresh(window: MainWindow) -> None:
    """Every view's seed layer (positions and screen points made incrementally from the last
    drag step) draws what it draws from scratch (all caches dropped)."""
    from app.gui.layers import seeds as seeds_module

    for view in window.slice_views:
        layer = window.planning.view_layers[view]["seeds"]
        pds = (layer.on_slice, layer.near, layer.selected)
        drawn = [vtk_to_numpy(pd.GetPoints().GetData()).copy() for pd in pds]
        px = dict(layer.seeds_px)
        seeds_module._ARRAYS.clear()
        layer._drawn_key, layer._px_last, layer._axes = None, None, None
        layer._drawn_ends.clear()
        layer.update()
        assert layer.seeds_px.keys() == px.keys(), view.objectName()
        for sid, (x, y) in px.items():
            assert layer.seeds_px[sid] == pytest.approx((x, y), abs=1e-9)
        for pd, before in zip(pds, drawn, strict=True):
            np.testing.assert_array_equal(vtk_to_numpy(pd.GetPoints().GetData()), before)


def test_seed_layers_drawn_incrementally_equal_a_fresh_drawing(window: MainWindow) -> None:
    planning = window.planning
    axial = window.axial_view
    sid, (x, y) = next(iter(planning.view_layers[axial]["seeds"].seeds_px.items()))
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    for k in range(1, 4):
        mouse(
            axial,
            QEvent.Type.MouseMove,
            x,
            y - 4.0 * k,
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
        )
        settle(2)
        _assert_seeds_fresh(window)
    mouse(
        axial,
        QEvent.Type.MouseButtonRelease,
        x,
        y - 12.0,
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
    )
    settle()
    moved = planning.view_layers[axial]["seeds"].seeds_px[sid]
    assert moved != pytest.approx((x, y), abs=1.0)
    window.findChild(object, "plan_undo").trigger()
    settle()
    _assert_seeds_fresh(window)
    assert planning.view_layers[axial]["seeds"].seeds_px[sid] == pytest.approx((x, y), abs=0.6)
    axial.zoom(1.5)  # a camera change
    settle()
    _assert_seeds_fresh(window)
    seed = next(s for s in planning.plan.seeds if s.id == sid)
    window.session.set_crosshair(np.asarray(seed.position_mm) + np.array([1.0, 2.0, 2.5]))
    settle()  # a slice change
    _assert_seeds_fresh(window)
    axial.reset_camera()
