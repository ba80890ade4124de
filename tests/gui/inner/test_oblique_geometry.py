"""A volume with a non-identity direction matrix is displayed in patient (LPS) space."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from tests.gui.inner._helpers import camera_world_to_widget, settle
from tests.gui.inner.conftest import open_window

MARKER_IJK = (80, 25, 28)  # (i, j, k): far from the centre so a wrong placement shows


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def _oblique_volume() -> CTVolume:
    direction = _rotation(2, 25.0) @ _rotation(0, 15.0)  # in-plane 25°, tilted 15°
    geometry = GridGeometry(
        (40, 96, 112), np.array([-40.0, 30.0, -55.0]), np.array([1.2, 1.0, 2.0]), direction
    )
    hu = np.full(geometry.shape_zyx, -1000, np.int16)
    i, j, k = MARKER_IJK
    hu[k - 1 : k + 2, j - 2 : j + 3, i - 2 : i + 3] = 2000  # a ~6 mm bright marker
    return CTVolume(hu, geometry, PatientInfo("OBLIQUE^PHANTOM", "SP-OBL-1"))


@pytest.fixture(scope="module")
def oblique_window(
    gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    window = open_window(tmp_path_factory.mktemp("oblique"))
    window.session.set_volume(_oblique_volume())
    settle()
    yield window
    window.close()
    settle()


def test_marker_appears_at_its_lps_position_in_every_view(oblique_window: MainWindow) -> None:
    w = oblique_window
    volume = w.session.volume
    marker_mm = volume.geometry.index_to_world(np.asarray(MARKER_IJK, float))
    w.session.set_crosshair(marker_mm)
    w.session.set_window_level(400.0, 40.0)
    settle()
    for view in w.slice_views:
        rgb = view.grab_rgb()
        white = np.all(rgb > 200, axis=-1)
        ex, ey = camera_world_to_widget(view, marker_mm)
        scale = rgb.shape[0] / view.height()  # device pixels per widget pixel
        ex, ey = ex * scale, ey * scale
        r = int(30 * scale)
        y0, x0 = int(ey) - r, int(ex) - r
        box = white[max(y0, 0) : int(ey) + r, max(x0, 0) : int(ex) + r]
        assert box.sum() >= 9, f"{view.objectName()}: marker not found near ({ex:.0f}, {ey:.0f})"
        ys, xs = np.nonzero(box)
        cy, cx = ys.mean() + max(y0, 0), xs.mean() + max(x0, 0)
        mm_per_px = 2 * view.renderer.GetActiveCamera().GetParallelScale() / rgb.shape[0]
        # Within 1.5 mm: the marker is 5 voxels wide and resliced obliquely.
        assert np.hypot(cx - ex, cy - ey) * mm_per_px < 1.5, (view.objectName(), cx, cy, ex, ey)


def test_probe_on_marker_reads_its_hu(oblique_window: MainWindow) -> None:
    w = oblique_window
    g = w.session.volume.geometry
    marker_mm = g.index_to_world(np.asarray(MARKER_IJK, float))
    w.session.set_crosshair(marker_mm)
    settle()
    view = w.coronal_view
    px, py = camera_world_to_widget(view, marker_mm)
    xyz = view.display_to_world(px, py)
    assert np.allclose(xyz, marker_mm, atol=1.0)
    assert w.session.hu_at(xyz) == 2000.0


def test_header_flags_oblique_series(oblique_window: MainWindow) -> None:
    assert "oblique" in oblique_window.header.series_label.text()


def test_radiological_orientation_on_screen(oblique_window: MainWindow) -> None:
    """Pixel check, independent of the camera: a marker to the patient's left, anterior and
    superior of the centre appears screen-right/up (axial: up = A), and left/up in sagittal
    (anterior on the left), right/up in coronal (DESIGN.md radiological convention)."""
    w = oblique_window
    geometry = GridGeometry.axis_aligned((31, 41, 41), (-40.0, -40.0, -60.0), (2.0, 2.0, 4.0))
    hu = np.full(geometry.shape_zyx, -1000, np.int16)
    # Centre voxel (i, j, k) = (20, 20, 15); marker at +L, −P (anterior), +S of it.
    i, j, k = 20 + 12, 20 - 12, 15 + 8
    hu[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2] = 2000
    w.session.set_volume(CTVolume(hu, geometry))
    w.session.set_crosshair(geometry.index_to_world([i, j, k]))
    w.session.set_window_level(400.0, 40.0)
    settle()
    expected = {  # (marker right of centre?, marker above centre?)
        "axial_view": (True, True),  # patient left → screen right; anterior → up
        "sagittal_view": (False, True),  # anterior → screen left; superior → up
        "coronal_view": (True, True),  # patient left → screen right; superior → up
    }
    for view in w.slice_views:
        view.reset_camera()
        rgb = view.grab_rgb()
        h, wd = rgb.shape[:2]
        white = np.all(rgb > 200, axis=-1)
        # Ignore the corner annotations (white text): keep the central 70 % of the view.
        mask = np.zeros_like(white)
        mask[int(0.15 * h) : int(0.85 * h), int(0.15 * wd) : int(0.85 * wd)] = True
        ys, xs = np.nonzero(white & mask)
        assert xs.size >= 4, f"{view.objectName()}: marker not visible"
        right, up = xs.mean() > wd / 2, ys.mean() < h / 2
        assert (right, up) == expected[view.objectName()], view.objectName()
