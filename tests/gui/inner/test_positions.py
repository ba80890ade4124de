"""SAFETY: every position shown is the LPS coordinate with its anatomical side (issue 8).

The sagittal view once labelled the crosshair at x = +49.6 mm (patient left) "L = -49.6 mm": it
printed the focal point projected on its view normal, which points to -x. These tests read the
text every view and the status bar show, parse it independently of the formatter, and compare
it with the session's crosshair (ground truth) and the LPS convention written out here:
+x = L, +y = P, +z = S. All three views, both signs of every axis, axis-aligned and oblique
(non-identity direction) volumes; also the slice counter of resliced (tilted) views.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from tests.gui.inner._helpers import camera_world_to_widget, mouse, settle
from tests.gui.inner.conftest import open_window

SIDE = {0: ("L", "R"), 1: ("P", "A"), 2: ("S", "I")}  # (positive, negative) per LPS axis
COORD = re.compile(r"([xyz]) = (-?\d+\.\d) mm(?: \(([LRAPSI])\))?")


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def _volume(direction: np.ndarray) -> CTVolume:
    """A 150 mm cube of voxels centred on the LPS origin, so positions of both signs exist."""
    shape_zyx, spacing = (60, 150, 150), np.array([1.0, 1.0, 2.5])
    half = (np.array(shape_zyx[::-1]) - 1) / 2.0 * spacing
    origin = -(direction @ half)  # the centre voxel sits at (0, 0, 0) mm
    geometry = GridGeometry(shape_zyx, origin, spacing, direction)
    hu = np.random.default_rng(3).normal(0, 50, shape_zyx).astype(np.int16)
    return CTVolume(hu, geometry, PatientInfo("POSITION^TEST", "SP-POS-1"))


@pytest.fixture(scope="module")
def window(gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    w = open_window(tmp_path_factory.mktemp("positions"))
    yield w
    w.close()
    settle()


def _coords(text: str) -> dict[str, tuple[float, str]]:
    found = COORD.findall(text)
    assert found, f"no coordinate in {text!r}"
    return {name: (float(value), side) for name, value, side in found}


def _check(text: str, axis: int, true_mm: float, where: str) -> None:
    name = "xyz"[axis]
    shown = _coords(text)
    assert name in shown, f"{where}: {text!r} does not show {name}"
    value, side = shown[name]
    assert value == pytest.approx(true_mm, abs=0.051), f"{where}: {text!r} vs {true_mm:.2f}"
    expected = "" if abs(true_mm) < 0.05 else SIDE[axis][0 if true_mm > 0 else 1]
    assert side == expected, f"{where}: {text!r} has side {side!r}, expected {expected!r}"


TARGETS_MM = [
    (49.6, 30.2, 40.0),
    (-49.6, -30.2, -40.0),
    (49.6, -30.2, -40.0),
    (-49.6, 30.2, 40.0),
]


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), _rotation(2, 25.0) @ _rotation(0, 15.0), _rotation(1, -20.0)],
    ids=["identity", "oblique-z25-x15", "oblique-y-20"],
)
def test_every_displayed_position_is_the_lps_coordinate(
    window: MainWindow, direction: np.ndarray
) -> None:
    window.session.set_volume(_volume(direction))
    settle()
    for target in TARGETS_MM:
        window.session.set_crosshair(np.array(target), snap=False)
        settle()
        c = window.session.crosshair_mm
        assert np.sign(c).tolist() == np.sign(target).tolist()  # inside the volume, not clamped
        for view in window.slice_views:
            axis = view.position_axis
            camera_mm = view.renderer.GetActiveCamera().GetFocalPoint()[axis]
            assert camera_mm == pytest.approx(c[axis], abs=1e-6)  # the plane shown is there
            _check(view._text["slice"].GetInput(), axis, c[axis], view.objectName())
        for axis in range(3):
            _check(window.crosshair_label.text(), axis, c[axis], "status bar")
            _check(window.volume_view.position_layer.text.GetInput(), axis, c[axis], "3-D view")


def test_the_issue_case_sagittal_at_patient_left(window: MainWindow) -> None:
    """Crosshair at x = +49.6 mm (patient left): the sagittal label reads x = 49.6 mm (L)."""
    window.session.set_volume(_volume(np.eye(3)))
    window.session.set_crosshair([49.6, 0.0, 0.0], snap=False)
    settle()
    text = window.sagittal_view._text["slice"].GetInput()
    assert "x = 49.6 mm (L)" in text and "-49.6" not in text, text


@pytest.mark.parametrize("direction", [np.eye(3), _rotation(0, 20.0)], ids=["identity", "tilt"])
def test_cursor_readout_on_both_sides_of_every_axis(
    window: MainWindow, direction: np.ndarray
) -> None:
    window.session.set_volume(_volume(direction))
    settle()
    for target in TARGETS_MM:
        window.session.set_crosshair(np.array(target), snap=False)
        settle()
        for view in window.slice_views:
            c = window.session.crosshair_mm
            px, py = camera_world_to_widget(view, c)
            mouse(view, QEvent.Type.MouseMove, px, py)
            expected = view.display_to_world(px, py)
            mm_per_px = 2 * view.renderer.GetActiveCamera().GetParallelScale() / view.height()
            assert np.allclose(expected, c, atol=mm_per_px + 1e-6)
            for axis in range(3):
                _check(window.probe_label.text(), axis, expected[axis], view.objectName())


def test_tilted_volume_counts_planes_not_rows(window: MainWindow) -> None:
    """A gantry-tilt-like volume (rows tilted 20° about x): the coronal and axial planes are
    resliced; their counter counts planes along the view normal and scrolling moves the
    crosshair along the normal only. The sagittal view still shows acquired slices."""
    volume = _volume(_rotation(0, 20.0))
    window.session.set_volume(volume)
    settle()
    g = volume.geometry
    for view in (window.coronal_view, window.axial_view):
        assert view.is_resliced()
        index, count, resliced = view.slice_counter()
        axis = view.position_axis
        corners = g.index_to_world(
            np.array([[i, j, k] for i in (0, 149) for j in (0, 149) for k in (0, 59)], float)
        )
        extent_mm = np.ptp(corners[:, axis])
        step_mm = g.spacing_mm[view._slice_axis()]
        assert resliced and count == int(np.floor(extent_mm / step_mm + 1e-6)) + 1
        assert count != g.shape_xyz[view._slice_axis()]  # not the volume's rows or slices
        text = view._text["slice"].GetInput()
        assert f"Plane {index + 1}/{count} (resliced)" in text, text
        before = window.session.crosshair_mm
        view.scroll_slices(+3)
        settle()
        moved = window.session.crosshair_mm - before
        others = [a for a in range(3) if a != axis]
        assert abs(abs(moved[axis]) - 3 * step_mm) < 1e-6 and np.allclose(moved[others], 0.0)
        assert abs(view.slice_counter()[0] - index) == 3
        assert f"Plane {view.slice_counter()[0] + 1}/{count}" in view._text["slice"].GetInput()
    sagittal = window.sagittal_view
    assert not sagittal.is_resliced()
    assert sagittal.slice_counter()[1] == g.shape_xyz[0]
    assert sagittal._text["slice"].GetInput().startswith("Slice ")
