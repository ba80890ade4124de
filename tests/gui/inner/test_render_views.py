"""Rendering in the window: isodoses on oblique (resliced) views, the 3-D brush cursor on every
2-D view, and a brush stroke that redraws only the views it changes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication

from app.gui.layers.isodoses import ISODOSE_OFFSET_MM, LEVEL_RGB
from app.gui.main_window import MainWindow
from dose.engine import make_engine
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.document import PlanDocument
from planner.plan.dosimetry import plan_seed_set
from planner.plan.model import Needle, Plan, Prescription, Seed, SourceSpec, Structure
from tests.gui.inner._helpers import mouse, settle
from tests.gui.inner._planning import wait_for_live
from tests.gui.inner.conftest import open_window

RADIUS_MM = 8.0


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def _oblique_plan() -> tuple[CTVolume, Plan]:
    """A CT rotated 25° in-plane and tilted 15° (no view shows an acquired slice), air only,
    a 24 mm PTV at the centre and 5 seeds on one needle through it, PD 110 Gy."""
    direction = _rotation(2, 25.0) @ _rotation(0, 15.0)
    shape = (40, 96, 96)
    spacing = np.array([1.0, 1.0, 2.0])
    centre_ijk = (np.array(shape[::-1]) - 1) / 2.0
    origin = -(direction @ (spacing * centre_ijk))
    g = GridGeometry(shape, origin, spacing, direction)
    ct = CTVolume(np.full(shape, -1000, np.int16), g, PatientInfo("OBLIQUE^DOSE", "SP-OBL-2"))
    ptv = np.linalg.norm(g.voxel_centres_world(), axis=-1) <= 12.0
    needle = Needle("nd-1", (3.0, 45.0, 2.0), (0.0, -15.0, 0.0), "A")
    axis = np.subtract(needle.tip_mm, needle.entry_mm)
    axis = tuple(axis / np.linalg.norm(axis))
    seeds = tuple(
        Seed(f"sd-{i}", tuple(np.asarray(needle.tip_mm) - t * np.asarray(axis)), axis, "nd-1")
        for i, t in enumerate((5.0, 10.0, 15.0, 20.0, 25.0))
    )
    plan = Plan.new(
        ct,
        structures=(Structure.from_mask("st-ptv", "PTV", "target", ptv, g),),
        prescription=Prescription(110.0, "st-ptv"),
        source=SourceSpec("6711", strength_u=0.6),
        needles=(needle,),
        seeds=seeds,
    )
    return ct, plan


@pytest.fixture(scope="module")
def oblique_window(
    gui_app: QApplication, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    ct, plan = _oblique_plan()
    window = open_window(tmp_path_factory.mktemp("oblique-dose"))
    window.session.set_volume(ct)
    window.session.set_document(PlanDocument(plan))
    window.session.set_crosshair(np.array([1.0, 0.0, 1.5]))
    wait_for_live(window, 300.0)
    settle()
    yield window
    window.close()
    settle()


def _yellow(rgb: np.ndarray) -> np.ndarray:
    r, g, b = LEVEL_RGB[100.0]
    return (
        (np.abs(rgb[..., 0] / 255.0 - r) < 0.15)
        & (np.abs(rgb[..., 1] / 255.0 - g) < 0.15)
        & (np.abs(rgb[..., 2] / 255.0 - b) < 0.25)
    )


def test_isodose_lines_on_oblique_views(oblique_window: MainWindow) -> None:
    w = oblique_window
    planning = w.planning
    engine = make_engine("6711", "2d", "numba")
    seeds, _ = plan_seed_set(planning.plan)
    c = w.session.crosshair_mm
    for view in w.slice_views:
        assert view.is_resliced(), view.objectName()
        layer = planning.view_layers[view]["isodoses"]
        assert layer.segment_counts.get(100.0, 0) > 10, view.objectName()
        pd, actor = layer.lines[100.0]
        assert actor.GetVisibility()
        from vtkmodules.util.numpy_support import vtk_to_numpy

        pts = vtk_to_numpy(pd.GetPoints().GetData())
        # On the view's own LPS plane through the crosshair (drawn just in front of it) …
        np.testing.assert_allclose(
            pts @ view.normal, c @ view.normal - ISODOSE_OFFSET_MM, atol=1e-6
        )
        # … where the exact dose is the prescription (linear interpolation across 1 mm pixels
        # of a 1/r² field: a few % at most, near the seeds).
        on_plane = pts + ISODOSE_OFFSET_MM * view.normal
        err = np.abs(engine.dose_rate_at_points(seeds, on_plane[::5]).dose_gy / 110.0 - 1.0)
        assert err.max() < 0.10 and np.median(err) < 0.03, view.objectName()
        # And drawn: the 100 % colour is on screen (the CT is air: black everywhere else).
        assert _yellow(view.grab_rgb()).sum() > 40, view.objectName()


def test_oblique_isodoses_follow_the_crosshair_along_the_normal(
    oblique_window: MainWindow,
) -> None:
    w = oblique_window
    view = w.axial_view
    layer = w.planning.view_layers[view]["isodoses"]
    before = layer.segment_counts[100.0]
    c = w.session.crosshair_mm.copy()
    w.session.set_crosshair(c + 3.0 * view.normal, snap=False)
    settle()
    pd, actor = layer.lines[100.0]
    assert actor.GetVisibility()
    from vtkmodules.util.numpy_support import vtk_to_numpy

    pts = vtk_to_numpy(pd.GetPoints().GetData())
    here = w.session.crosshair_mm @ view.normal
    np.testing.assert_allclose(pts @ view.normal, here - ISODOSE_OFFSET_MM, atol=1e-6)
    assert layer.segment_counts[100.0] != before, "a plane 3 mm away has other lines"
    w.session.set_crosshair(c, snap=False)
    settle()


def test_sphere_brush_cursor_is_its_section_on_every_view(oblique_window: MainWindow) -> None:
    w = oblique_window
    tm = w.tool_manager
    tm.set_current("st-ptv")
    tm.options.radius_mm = RADIUS_MM
    tm.options.sphere = True
    tm.set_active("brush")
    brush = tm.tools["brush"]
    try:
        c = w.session.crosshair_mm
        axial = w.axial_view
        # Hover 5 mm from the sagittal plane and 11 mm from the coronal plane, on the axial.
        sag, cor = w.sagittal_view, w.coronal_view
        p = c + 5.0 * sag.normal + 11.0 * cor.normal
        x, y = axial.world_to_display(p)
        mouse(axial, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
        settle()
        hovered = axial.display_to_world(x, y)
        shown = {v.objectName(): brush.cursor(v).shown for v in w.slice_views}
        assert shown["axial_view"] is not None and shown["axial_view"][1] == pytest.approx(
            RADIUS_MM
        )
        d = float(hovered @ sag.normal - sag.slice_position_mm())
        assert abs(d) == pytest.approx(5.0, abs=0.6)
        centre, r = shown["sagittal_view"]
        assert r == pytest.approx(np.sqrt(RADIUS_MM**2 - d**2), abs=1e-6)
        assert float(np.asarray(centre) @ sag.normal) == pytest.approx(sag.slice_position_mm())
        assert brush.cursor(sag).actor.GetVisibility()
        # The coronal plane is 11 mm away: the 8 mm sphere does not reach it.
        assert shown["coronal_view"] is None and not brush.cursor(cor).actor.GetVisibility()
        # The disc brush shows only in the view it paints on.
        tm.options.sphere = False
        mouse(
            axial, QEvent.Type.MouseMove, x, y + 1, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton
        )
        settle()
        assert brush.cursor(axial).shown is not None and brush.cursor(sag).shown is None
    finally:
        tm.options.sphere = False
        tm.set_active(None)
        settle()


def test_a_disc_brush_stroke_redraws_only_the_views_it_changes(
    oblique_window: MainWindow,
) -> None:
    """Painting far from the sagittal and coronal planes redraws the axial view only."""
    w = oblique_window
    tm = w.tool_manager
    tm.set_current("st-ptv")
    tm.options.radius_mm = 3.0
    tm.options.sphere = False
    tm.set_active("brush")
    try:
        axial = w.axial_view
        c = w.session.crosshair_mm
        right, up = axial._screen_axes()
        start = c + 20.0 * right + 20.0 * up  # 20 mm from both other planes
        px = [axial.world_to_display(start + t * right) for t in np.linspace(0.0, 8.0, 9)]
        left = Qt.MouseButton.LeftButton
        mouse(axial, QEvent.Type.MouseButtonPress, *px[0], left)
        settle()
        counts = {v.objectName(): v.render_count for v in w.vtk_views}
        for x, y in px[1:]:
            mouse(axial, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, left)
            settle(2)
        drawn = {v.objectName(): v.render_count - counts[v.objectName()] for v in w.vtk_views}
        mouse(axial, QEvent.Type.MouseButtonRelease, *px[-1], left, Qt.MouseButton.NoButton)
        settle()
        assert drawn["axial_view"] >= 4, drawn
        assert drawn["sagittal_view"] == 0 and drawn["coronal_view"] == 0, drawn
        assert drawn["volume_view"] == 0, "the 3-D view waits for the end of the stroke"
        assert w.session.document.plan.structure("st-ptv").voxel_count > 0
    finally:
        tm.set_active(None)
        settle()


def test_screenshot_waits_for_the_dose(oblique_window: MainWindow) -> None:
    """``--screenshot`` captures once the live isodoses and the exact dose are drawn."""
    from app.gui.screenshot import dose_drawn, when_dose_drawn
    from planner.plan.needle_commands import MoveSeedAlongNeedle
    from tests.gui.inner._helpers import wait_until

    w = oblique_window
    w.planning.execute(MoveSeedAlongNeedle("sd-2", distance_mm=14.0))
    assert not dose_drawn(w), "an edit leaves the exact dose pending"
    notes: list[str] = []
    when_dose_drawn(w, notes.append, timeout_s=240.0)
    wait_until(lambda: bool(notes), 250.0)
    assert notes == [""] and dose_drawn(w)
    assert w.planning.exact is not None and not w.planning.exact_pending
    # Bounded: a condition never met ends with a note after the timeout.
    w.planning.execute(MoveSeedAlongNeedle("sd-2", distance_mm=15.0))
    late: list[str] = []
    when_dose_drawn(w, late.append, timeout_s=0.0)
    wait_until(lambda: bool(late), 10.0)
    assert "not drawn within 0 s" in late[0], late  # the exact refresh starts after 250 ms
