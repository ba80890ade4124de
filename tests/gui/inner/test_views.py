"""The four views of the demo case: rendered, linked, windowed, probed, scrolled, zoomed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from app.gui.views.slice_view import Orientation
from planner.session.session import WINDOW_PRESETS
from tests.gui.conftest import image_is_not_blank
from tests.gui.inner._helpers import (
    camera_world_to_widget,
    click,
    drag,
    grey,
    mouse,
    settle,
    wheel,
)


def test_all_four_views_render_an_image(demo_window: MainWindow) -> None:
    for view in demo_window.vtk_views:
        rgb = view.grab_rgb()
        assert rgb.shape[0] > 100 and rgb.shape[1] > 100, view.objectName()
        assert image_is_not_blank(rgb), f"{view.objectName()} rendered a blank image"


def test_patient_identification_always_visible(demo_window: MainWindow) -> None:
    info = demo_window.session.volume.info
    assert demo_window.header.isVisible()
    header_text = demo_window.header.patient_label.text() + demo_window.header.id_label.text()
    assert info.patient_id and info.patient_id in header_text
    assert info.patient_id in demo_window.windowTitle()


def test_orientation_labels_on_every_2d_view(demo_window: MainWindow) -> None:
    # Radiological convention (DESIGN.md / UI-4): axial R on screen left, A up, etc.
    expected = {
        Orientation.AXIAL: ("R", "L", "A", "P"),
        Orientation.SAGITTAL: ("A", "P", "S", "I"),
        Orientation.CORONAL: ("R", "L", "S", "I"),
    }
    for view in demo_window.slice_views:
        shown = tuple(view._text[k].GetInput() for k in ("left", "right", "top", "bottom"))
        assert shown == expected[view.orientation]
        assert all(view._text[k].GetVisibility() for k in ("left", "right", "top", "bottom"))
        # The label really sits where it says: screen-right is +L for axial/coronal, +P sagittal.
        right = view._screen_axes()[0]
        axis = {"L": 0, "P": 1}[shown[1]]
        assert right[axis] == pytest.approx(1.0)


def test_click_in_axial_moves_sagittal_and_coronal(demo_window: MainWindow) -> None:
    w = demo_window
    axial, sagittal, coronal = w.slice_views
    geometry = w.session.volume.geometry
    lower, upper = geometry.bounds_world_mm()
    # A target off-centre in x and y, on the displayed axial plane.
    target = lower + np.array([0.3, 0.65, 0.0]) * (upper - lower)
    target[2] = axial.slice_position_mm()
    px, py = camera_world_to_widget(axial, target)
    before = (sagittal.slice_index(), coronal.slice_index())
    z_before = w.session.crosshair_mm[2]
    click(axial, px, py)
    settle()
    # The crosshair goes to the centre of the voxel under the click (half a voxel + 1 pixel).
    mm_per_px = 2 * axial.renderer.GetActiveCamera().GetParallelScale() / axial.height()
    tol_mm = geometry.spacing_mm / 2 + mm_per_px
    c = w.session.crosshair_mm
    assert abs(c[0] - target[0]) <= tol_mm[0] and abs(c[1] - target[1]) <= tol_mm[1]
    assert c[2] == pytest.approx(z_before, abs=1e-6)  # a click does not change the axial slice
    # Sagittal now shows the plane x = crosshair x, coronal y = crosshair y.
    assert -sagittal.slice_position_mm() == pytest.approx(c[0], abs=1e-6)  # normal is −L
    assert coronal.slice_position_mm() == pytest.approx(c[1], abs=1e-6)
    ijk = geometry.world_to_index(target)
    assert abs(sagittal.slice_index() - ijk[0]) <= 0.5 + mm_per_px / geometry.spacing_mm[0]
    assert abs(coronal.slice_index() - ijk[1]) <= 0.5 + mm_per_px / geometry.spacing_mm[1]
    assert (sagittal.slice_index(), coronal.slice_index()) != before


def test_window_presets_change_rendered_pixels(demo_window: MainWindow) -> None:
    w = demo_window
    axial = w.axial_view
    images = {}
    for preset in WINDOW_PRESETS:
        w.preset_actions[preset.name].trigger()
        settle()
        prop = axial.ct_layer.image_slice.GetProperty()
        assert (prop.GetColorWindow(), prop.GetColorLevel()) == (
            preset.window_hu,
            preset.level_hu,
        )
        images[preset.name] = grey(axial.grab_rgb())
    names = [p.name for p in WINDOW_PRESETS]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff = np.abs(images[a] - images[b]).mean()
            assert diff > 2.0, f"{a} and {b} windows render the same image"
    # Lung window (L −600 HU) makes soft tissue brighter than the soft-tissue window does.
    assert images["Lung"].mean() > images["Soft tissue"].mean()
    w.session.apply_preset("Soft tissue")


def test_right_drag_changes_window_level(demo_window: MainWindow) -> None:
    w = demo_window
    w.session.apply_preset("Soft tissue")
    axial = w.axial_view
    cx, cy = axial.width() / 2, axial.height() / 2
    drag(axial, (cx, cy), (cx + 50, cy + 20), Qt.MouseButton.RightButton)
    assert w.session.window_hu > 400.0  # dragging right widens the window
    assert w.session.level_hu < 40.0  # dragging down lowers the level
    assert axial.ct_layer.image_slice.GetProperty().GetColorWindow() == w.session.window_hu
    w.session.apply_preset("Soft tissue")


def test_cursor_readout_shows_lps_mm_and_hu(demo_window: MainWindow) -> None:
    w = demo_window
    axial = w.axial_view
    volume = w.session.volume
    g = volume.geometry
    # A voxel centre of the displayed axial slice, inside the body, away from the centre.
    k = axial.slice_index()
    nx, ny, _ = g.shape_xyz
    ijk = np.array([int(nx * 0.42), int(ny * 0.55), k], float)
    xyz = g.index_to_world(ijk)
    px, py = camera_world_to_widget(axial, xyz)
    mouse(axial, QEvent.Type.MouseMove, px, py)
    text = w.probe_label.text()
    numbers = re.findall(r"([xyz]) = (-?\d+\.\d) mm", text)
    assert [n for n, _ in numbers] == ["x", "y", "z"], text
    shown = np.array([float(v) for _, v in numbers])
    mm_per_px = 2 * axial.renderer.GetActiveCamera().GetParallelScale() / axial.height()
    assert np.allclose(shown, xyz, atol=mm_per_px + 0.05), (shown, xyz)
    hu_match = re.search(r"(-?\d+) HU", text)
    assert hu_match, text
    # The HU shown is CTVolume.hu at the nearest voxel of the position shown.
    kji = np.rint(g.world_to_zyx(shown)).astype(int)
    assert kji[0] == k  # on the displayed slice
    assert int(hu_match.group(1)) == round(float(volume.hu[tuple(kji)]))


def test_wheel_and_page_keys_scroll_slices(demo_window: MainWindow) -> None:
    axial = demo_window.axial_view
    n = axial.n_slices()
    demo_window.session.set_crosshair(demo_window.session.crosshair_mm)  # no-op, stays put
    start = axial.slice_index()
    assert 0 < start < n - 1
    wheel(axial, +1)
    assert axial.slice_index() == start + 1
    wheel(axial, -2)
    assert axial.slice_index() == start - 1
    for key, delta in ((Qt.Key.Key_PageUp, +1), (Qt.Key.Key_PageDown, -1)):
        before = axial.slice_index()
        QApplication.sendEvent(
            axial, QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier)
        )
        assert axial.slice_index() == before + delta
    # The slice position follows the index: slices are ``spacing_z`` apart.
    g = demo_window.session.volume.geometry
    z_expected = g.index_to_world([0, 0, axial.slice_index()])[2]
    assert axial.slice_position_mm() == pytest.approx(z_expected, abs=1e-6)


def test_ctrl_wheel_zooms_and_middle_drag_pans(demo_window: MainWindow) -> None:
    view = demo_window.coronal_view
    camera = view.renderer.GetActiveCamera()
    view.reset_camera()
    scale0 = camera.GetParallelScale()
    wheel(view, +2, Qt.KeyboardModifier.ControlModifier)
    assert camera.GetParallelScale() < scale0 / 1.2  # zoomed in
    focal0 = np.asarray(camera.GetFocalPoint())
    cx, cy = view.width() / 2, view.height() / 2
    drag(view, (cx, cy), (cx + 40, cy), Qt.MouseButton.MiddleButton)
    moved = np.asarray(camera.GetFocalPoint()) - focal0
    # Content dragged right: the camera looks further to the patient's right (−x in coronal).
    assert moved[0] < -1.0 and abs(moved[2]) < 1e-6
    view.reset_camera()
    assert camera.GetParallelScale() == pytest.approx(scale0)


def test_3d_slice_planes_follow_the_crosshair(demo_window: MainWindow) -> None:
    from tests.gui.inner._helpers import wait_until

    session = demo_window.session
    g = session.volume.geometry
    target = g.index_to_world(np.array(g.shape_xyz, float) * [0.25, 0.6, 0.3]).round(3)
    session.set_crosshair(target)
    c = session.crosshair_mm
    planes = [plane for plane, _ in demo_window.volume_view._planes.values()]
    # Deferred by at most ~120 ms while dragging; then all three planes pass through it.
    wait_until(lambda: all(np.allclose(p.GetOrigin(), c) for p in planes), 5.0)
    assert image_is_not_blank(demo_window.volume_view.grab_rgb())


def test_double_click_maximizes_a_view_and_restores(demo_window: MainWindow) -> None:
    w = demo_window
    view = w.coronal_view
    small = view.width()
    cx, cy = view.width() / 2, view.height() / 2
    mouse(view, QEvent.Type.MouseButtonDblClick, cx, cy, Qt.MouseButton.LeftButton)
    settle()
    assert w.maximized_view is view
    assert not w.axial_view.isVisible() and not w.volume_view.isVisible()
    assert view.width() > 1.5 * small
    assert image_is_not_blank(view.grab_rgb())
    mouse(view, QEvent.Type.MouseButtonDblClick, cx, cy, Qt.MouseButton.LeftButton)
    settle()
    assert w.maximized_view is None
    assert all(v.isVisible() for v in w.vtk_views)
    assert image_is_not_blank(w.axial_view.grab_rgb())
