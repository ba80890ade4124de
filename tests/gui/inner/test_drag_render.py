"""The drag render path: the 2-D overlays that neither change nor share a pixel with anything
else are drawn in the kept base picture, and every frame of a seed drag is the same, pixel
for pixel, as the frame drawn from scratch (the previous rendering)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt

from app.gui.main_window import MainWindow
from app.gui.views.footprints import footprint_px, world_to_display_matrix
from app.gui.vtk_bridge import VTKWidget
from tests.gui.inner._helpers import mouse, settle
from tests.gui.inner._planning import (
    window_with_loaded_needle,
)


@pytest.fixture()
def window(demo_window: MainWindow, demo_ct: Path) -> MainWindow:
    """The demo window (CT, structures) with one loaded needle through the GTV and the
    crosshair on one of its seeds."""
    return window_with_loaded_needle(demo_window, demo_ct)


def _grab_drawn(view: VTKWidget) -> np.ndarray:
    """The view drawn from scratch (the previous rendering: nothing kept)."""
    VTKWidget.legacy_rendering = True
    try:
        return view.grab_rgb()
    finally:
        VTKWidget.legacy_rendering = False


def _grab_kept(view: VTKWidget) -> np.ndarray:
    """The view as it renders now, once its overlays have settled (several renders)."""
    for _ in range(4):
        view.render_now()
    return view.grab_rgb()


def _assert_same_frames(window: MainWindow) -> dict[str, list[object]]:
    """Each 2-D view's frame equals the one drawn from scratch; returns the kept overlays."""
    kept: dict[str, list[object]] = {}
    for view in (window.axial_view, window.sagittal_view, window.coronal_view):
        frame = _grab_kept(view)
        kept[view.objectName()] = view.base_kept
        assert kept[view.objectName()], f"{view.objectName()}: no overlay is kept"
        np.testing.assert_array_equal(frame, _grab_drawn(view), err_msg=view.objectName())
    return kept


def test_every_frame_of_a_seed_drag_is_the_frame_drawn_from_scratch(window: MainWindow) -> None:
    axial = window.axial_view
    settle()
    kept = _assert_same_frames(window)
    title = axial.annotations.text["title"]
    assert title in kept["axial_view"], "the title, alone in its corner, is kept"
    seeds_layer = window.planning.view_layers[axial]["seeds"]
    _, (x, y) = next(iter(seeds_layer.seeds_px.items()))
    left = Qt.MouseButton.LeftButton
    mouse(axial, QEvent.Type.MouseButtonPress, x, y, left)
    try:
        for k in range(1, 5):
            mouse(axial, QEvent.Type.MouseMove, x, y - 3.0 * k, Qt.MouseButton.NoButton, left)
            settle(2)
            _assert_same_frames(window)
    finally:
        mouse(axial, QEvent.Type.MouseButtonRelease, x, y - 12.0, left, Qt.MouseButton.NoButton)
        settle()
    _assert_same_frames(window)


def test_an_overlay_a_needle_runs_under_stays_on_top_of_it(window: MainWindow) -> None:
    """Pan the needle's crossing under the axial view's title: the title is drawn in layer
    1 again (over the needle and isodoses), and the frame is still the one drawn from
    scratch; panned back, the title is kept again."""
    axial = window.axial_view
    title = axial.annotations.text["title"]
    layer = window.planning.view_layers[axial]["seeds"]
    _, (x, y) = next(iter(layer.seeds_px.items()))
    mm = axial._mm_per_px()
    target_x, target_y = 0.05 * axial.width(), 0.02 * axial.height()
    axial.pan_mm((target_x - x) * mm, -(target_y - y) * mm)
    settle()
    try:
        kept = _grab_kept(axial)
        assert title not in axial.base_kept
        np.testing.assert_array_equal(kept, _grab_drawn(axial))
    finally:
        axial.reset_camera()
        settle()
    _grab_kept(axial)
    assert title in axial.base_kept


def test_every_footprint_holds_every_pixel_its_prop_draws(window: MainWindow) -> None:
    """Each visible prop of layer 1 drawn alone on grey: every pixel it changed lies inside
    its footprint (text shadows included)."""
    axial = window.axial_view
    renderer = axial.renderer
    props = [
        renderer.GetViewProps().GetItemAsObject(i)
        for i in range(renderer.GetViewProps().GetNumberOfItems())
    ]
    shown = [p for p in props if p.GetVisibility()]
    background = renderer.GetBackground()
    axial.ct_layer.image_slice.VisibilityOff()
    renderer.SetBackground(0.5, 0.5, 0.5)
    try:
        for p in shown:
            p.VisibilityOff()
        empty = axial.grab_rgb()
        checked = 0
        for prop in shown:
            prop.VisibilityOn()
            image = axial.grab_rgb()
            prop.VisibilityOff()
            rows, cols = np.nonzero(np.any(image != empty, axis=2))
            rect = footprint_px(prop, renderer, world_to_display_matrix(renderer))
            if rows.size == 0:
                continue
            assert rect is not None, prop.GetClassName()
            height = image.shape[0]
            ys = height - 1 - rows  # display y goes up
            assert rect[0] <= cols.min() and cols.max() <= rect[2], prop.GetClassName()
            assert rect[1] <= ys.min() and ys.max() <= rect[3], prop.GetClassName()
            checked += 1
        assert checked >= 20
    finally:
        for p in shown:
            p.VisibilityOn()
        renderer.SetBackground(*background)
        axial.ct_layer.image_slice.VisibilityOn()
        settle()
