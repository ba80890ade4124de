"""Header (warnings, geometry, orientation name), scale bar, HU colour bar, 3-D body only,
dose-engine warm-up (issue 8 display defects, issue 9 start-up)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.gui.dialogs.import_report import ImportReportDialog
from app.gui.dose_warmup import DoseEngineWarmUp
from app.gui.main_window import MainWindow
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from tests.gui.inner._helpers import settle, wait_until
from tests.gui.inner.conftest import open_window

WARNINGS = [
    "resampled: gantry tilt 18.5° corrected by shearing every slice onto a regular grid of the "
    "acquisition; positions in the image are true patient positions",
    "slice at z = 42.5 mm missing (file IM0042.dcm skipped: truncated pixel data); the gap was "
    "interpolated from its neighbours",
    "two acquisitions interleaved in one series (duplicate InstanceNumbers 1-40)",
]


def _volume(direction: np.ndarray, *, warnings: list[str] | None = None) -> CTVolume:
    geometry = GridGeometry((20, 64, 64), np.array([-32.0, -32.0, -25.0]), np.ones(3), direction)
    hu = np.random.default_rng(5).normal(0, 60, geometry.shape_zyx).astype(np.int16)
    info = PatientInfo("HEADER^TEST", "SP-HDR-1", series_description="Thorax 2.5 mm " * 4)
    return CTVolume(hu, geometry, info, warnings=list(warnings or []))


@pytest.fixture(scope="module")
def window(gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    w = open_window(tmp_path_factory.mktemp("header"), size=(1100, 760))
    yield w
    w.close()
    settle()


def _fully_shown(label) -> bool:
    return label.isVisible() and label.width() >= label.sizeHint().width()


@pytest.mark.parametrize("width_px", [1400, 1100, 900])
def test_all_warnings_one_click_away_and_geometry_readable(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch, width_px: int
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(ImportReportDialog, "exec", lambda d: shown.append(d.text.toPlainText()))
    window.resize(width_px, 760)
    window.session.set_volume(_volume(np.eye(3), warnings=WARNINGS))
    settle(10)
    header = window.header
    # Geometry (voxel size) and patient identification are never cut, warning or not.
    for label in (header.patient_label, header.id_label, header.series_label):
        assert _fully_shown(label), (width_px, label.objectName(), label.width())
    assert "1.00×1.00×1.00 mm" in header.series_label.text()
    button = header.warning_label
    assert button.isVisible() and "3 import warnings" in button.text()
    assert all(w in button.toolTip() for w in WARNINGS)
    button.click()  # one click: the report lists every warning, in full
    settle()
    assert len(shown) == 1 and all(w in shown[0] for w in WARNINGS), shown
    window.session.set_volume(_volume(np.eye(3)))
    settle()
    assert not header.warning_label.isVisible()


@pytest.mark.parametrize(
    ("columns", "name"),
    [
        ([[1, 0, 0], [0, 0, -1], [0, 1, 0]], "coronal"),  # rows along +x, columns along -z
        ([[0, 1, 0], [0, 0, -1], [-1, 0, 0]], "sagittal"),
        ([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], "axial"),  # prone/flipped axial
    ],
)
def test_header_names_the_orientation(window: MainWindow, columns: list, name: str) -> None:
    direction = np.array(columns, float).T  # columns of the direction matrix: i, j, k axes
    window.session.set_volume(_volume(direction))
    settle()
    text = window.header.series_label.text()
    assert text.endswith(f"· {name}") and "oblique" not in text, text


def test_scale_bar_and_hu_colour_bar_follow_the_view(window: MainWindow) -> None:
    window.resize(1100, 760)
    window.session.set_volume(_volume(np.eye(3)))
    settle(10)
    view = window.axial_view
    bar = view.scale_bar

    def bar_mm() -> float:
        pts = np.array([bar._points.GetPoint(n) for n in range(2)])
        fraction = pts[1, 0] - pts[0, 0]  # normalized viewport width of the bar
        mm_per_px = 2 * view.renderer.GetActiveCamera().GetParallelScale() / view.height()
        return fraction * view.width() * mm_per_px

    assert bar.length_mm in {1, 2, 5, 10, 20, 50, 100, 200} or bar.length_mm % 10 == 0
    assert bar_mm() == pytest.approx(bar.length_mm, rel=1e-6)
    assert bar.label.GetInput() == f"{bar.length_mm:g} mm"
    before = bar.length_mm
    view.zoom(4.0)
    settle()
    assert bar.length_mm < before and bar_mm() == pytest.approx(bar.length_mm, rel=1e-6)
    view.reset_camera()
    window.session.set_window_level(1500.0, -600.0)
    for v in window.slice_views:
        assert v.colour_bar.range_hu == pytest.approx((-1350.0, 150.0))
        assert v.colour_bar.bar.GetVisibility()
    window.session.apply_preset("Soft tissue")


def test_3d_shows_the_body_not_the_couch(window: MainWindow) -> None:
    """A body cylinder with a bone rod, and a separate dense couch plate below it: the bone
    surface and the 3-D planes stay inside the body; the couch is not drawn."""
    geometry = GridGeometry.axis_aligned((30, 120, 120), (-60.0, -60.0, -30.0), (1.0, 1.0, 2.0))
    _z, y, x = np.meshgrid(*(np.arange(n) for n in geometry.shape_zyx), indexing="ij")
    hu = np.full(geometry.shape_zyx, -1000, np.int16)
    body = (x - 60) ** 2 + (y - 50) ** 2 < 35**2
    hu[body] = 40
    hu[(x - 60) ** 2 + (y - 60) ** 2 < 6**2] = 900  # bone rod inside the body
    hu[:, 100:104, 5:115] = 600  # couch plate, posterior (+y), apart from the body
    window.session.set_volume(CTVolume(hu, geometry))
    settle()
    bounds = np.asarray(window.volume_view.bone_layer.actor.GetBounds())
    couch_y_mm = geometry.index_to_world([0, 100, 0])[1]
    assert bounds[3] < couch_y_mm - 10.0, bounds  # bone surface ends well before the couch
    for _, image_slice in window.volume_view._planes.values():
        image = image_slice.GetMapper().GetInput()
        y_max = image.GetOrigin()[1] + (image.GetDimensions()[1] - 1) * image.GetSpacing()[1]
        assert y_max < couch_y_mm, (y_max, couch_y_mm)


def test_dose_warm_up_runs_off_the_gui_thread(gui_app: QApplication) -> None:
    """Real child processes stand in for the numba compile (the real one takes ~25 s cold)."""
    import subprocess

    threads: list[threading.Thread] = []

    def child(code: str):
        def start() -> subprocess.Popen[bytes]:
            threads.append(threading.current_thread())
            return subprocess.Popen([sys.executable, "-c", code])

        return start

    def load_here() -> None:
        threads.append(threading.current_thread())

    states: list[str] = []
    warm = DoseEngineWarmUp(
        start_child=child("import time; time.sleep(0.4)"), warm_up_here=load_here
    )
    warm.state_changed.connect(lambda state, _m: states.append(state))
    ready: list[bool] = []
    warm.when_ready(lambda: ready.append(True))
    assert warm.state == "idle" and not ready
    warm.start()
    assert warm.state == "compiling"  # start() returned at once
    wait_until(lambda: warm.state in ("ready", "failed"), 30)
    assert warm.state == "ready" and ready == [True]
    assert states[0] == "compiling" and "loading" in states and states[-1] == "ready"
    assert threads and all(t is not threading.main_thread() for t in threads)
    done: list[bool] = []
    warm.when_ready(lambda: done.append(True))  # already ready: runs at once
    assert done == [True]

    failing = DoseEngineWarmUp(start_child=child("raise SystemExit(3)"), warm_up_here=load_here)
    failing.start()
    messages: list[str] = []
    failing.state_changed.connect(lambda _s, message: messages.append(message))
    # The failure is reported; the kernels are then loaded in-process, off the GUI thread.
    wait_until(lambda: failing.state == "ready", 30)
    assert any("exit 3" in m for m in messages), messages
    stopped = DoseEngineWarmUp(
        start_child=child("import time; time.sleep(0.3)"), warm_up_here=load_here
    )
    stopped.start()
    stopped.stop()  # the window closed while compiling: nothing more happens
    n_threads = len(threads)
    worker = stopped._worker
    wait_until(lambda: worker is None or not worker.is_running, 30)
    end = time.monotonic() + 1.0  # let a (wrong) poll/load cycle happen if it would
    while time.monotonic() < end:
        settle()
    assert stopped.state == "compiling" and len(threads) <= n_threads + 1  # child start only
    for obj in (warm, failing, stopped):
        obj.stop()
        obj.deleteLater()
    settle()


def test_window_shows_the_engine_state_and_does_not_start_it_itself(window: MainWindow) -> None:
    assert window.dose_engine.state == "idle"  # only `seedplan gui` starts it (not tests)
    window.status.set_engine_state("compiling", "Dose engine: compiling kernels… 3 s")
    assert window.status.engine_busy.isVisibleTo(window)
    assert "compiling" in window.status.engine_label.text()
    window.status.set_engine_state("ready", "Dose engine ready (21 s)")
    assert not window.status.engine_busy.isVisibleTo(window)


def test_structure_visibility_is_view_state_shown_in_every_view(window: MainWindow) -> None:
    from planner.imaging.volume import Mask

    volume = _volume(np.eye(3))
    voxels = np.zeros(volume.shape_zyx, bool)
    voxels[5:15, 20:40, 20:40] = True
    window.session.set_volume(volume, masks={"GTV": Mask("GTV", voxels, volume.geometry)})
    window.session.set_crosshair(volume.geometry.index_to_world([30, 30, 10]))
    settle()
    case = window.session.case
    actions = {a.text(): a for a in window.menus.structures_menu.actions()}
    assert list(actions) == ["GTV"] and actions["GTV"].isChecked()
    outlines = [v.structure_layer.outlines["GTV"][1] for v in window.slice_views]
    surface = window.volume_view.structure_layer.surfaces["GTV"]
    assert all(a.GetVisibility() for a in outlines) and surface.GetVisibility()
    actions["GTV"].setChecked(False)  # the menu hides it everywhere …
    settle()
    assert not any(a.GetVisibility() for a in outlines) and not surface.GetVisibility()
    assert window.session.case is case  # … without touching the document
    window.session.view.set_visible("GTV", True)
    assert all(a.GetVisibility() for a in outlines) and surface.GetVisibility()


def test_a_layer_that_is_gone_stops_listening_and_a_failing_one_stops_no_other(
    window: MainWindow,
) -> None:
    """Layers hold no strong reference in the model (psygnal weak refs); a layer that raises
    on an event leaves every other layer and view updated, and the error still surfaces."""
    import gc

    from psygnal import EmitLoopError

    from app.gui.layers.annotations import ScaleBarLayer
    from app.gui.layers.base import Layer

    session = window.session
    view = window.axial_view
    n_before = len(session.volume_changed)
    extra = ScaleBarLayer(view, session)
    assert len(session.volume_changed) == n_before + 1
    for prop in list(extra.props):
        view.renderer.RemoveViewProp(prop)  # (only the subscription is under test)
    del extra
    gc.collect()
    assert len(session.volume_changed) == n_before

    class Broken(Layer):
        def __init__(self) -> None:
            super().__init__(view, session)
            # Called before every other listener (psygnal: higher priority first).
            session.volume_changed.connect(self.fail, priority=100)

        def close(self) -> None:
            session.volume_changed.disconnect(self.fail, missing_ok=True)
            super().close()

        def fail(self) -> None:
            raise RuntimeError("broken overlay")

    broken = Broken()
    try:
        volume = _volume(np.eye(3), warnings=["one warning"])
        with pytest.raises(EmitLoopError) as info:
            session.set_volume(volume)
        assert isinstance(info.value.__cause__, RuntimeError)
        settle()
        # Every other listener (all called after the broken one) still saw the new volume.
        assert window.header.warning_label.isVisible()  # main window (connected last)
        for v in window.vtk_views:
            assert v.grab_rgb().std() > 0
        assert window.coronal_view.ct_layer.mapper.GetInput().GetDimensions()[0] == 64
    finally:
        broken.close()


def test_a_disabled_button_looks_disabled(gui_app: QApplication) -> None:
    """The dark theme's button style must not paint a disabled button (e.g. Cancel when nothing
    runs) like an enabled one: its text is dimmer."""
    from PySide6.QtWidgets import QPushButton

    def text_brightness(enabled: bool) -> float:
        button = QPushButton("Cancel")
        button.setEnabled(enabled)
        button.resize(120, 32)
        image = button.grab().toImage()
        values = [
            image.pixelColor(x, y).lightness()
            for x in range(image.width())
            for y in range(image.height())
        ]
        button.deleteLater()
        return float(np.percentile(values, 99))  # the text's brightest pixels

    assert text_brightness(False) < text_brightness(True) - 60
