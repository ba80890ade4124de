"""Post-op window, non-seed metal and the exclusion region (issue 13): a pedicle screw on the
post-op CT is listed in the Metal tab and outlined on the view, and no seed marker lies inside
it; the exclusion brush, driven by real mouse events, paints a hatched region (its own undo,
redo and clear), and the next Detect & verify drops the seeds inside it. The region is saved as
the mask file ``seedplan detect --exclude`` reads and opened again in a new window, where the
detection excludes the same region; a mask of another grid is refused with a message, and the
region is never saved over the post-op CT. The comparison table starts with the prescription's
reference structure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.commands.detect_cmd import load_exclusion
from app.gui.main_window import MainWindow
from app.gui.postop.panels import table_rows
from app.gui.postop.window import PostopWindow
from app.gui.settings import Settings
from dose.geometry import GridGeometry
from planner.imaging.image_files import read_image, write_image
from planner.plan.document import PlanDocument
from planner.postop.synthetic import PostopScene, Screw, render_postop_ct
from planner.postop.verify import ComparisonRow, comparison_order
from tests.gui.conftest import image_is_not_blank
from tests.gui.inner._helpers import camera_world_to_widget, drag, settle, wait_until
from tests.postop_builders import PostopCase, build_postop_case

VERIFY_TIMEOUT_S = 240.0
CROP_MM = 30.0


@pytest.fixture(scope="module")
def case() -> tuple[PostopCase, object, Screw]:
    """The post-op case with a titanium pedicle screw beside the implant (≥ 12 mm from every
    seed), rendered onto its post-op CT."""
    c = build_postop_case(crop_mm=CROP_MM)
    centre = c.implanted_postop_mm.mean(axis=0)
    head = centre + np.array([-25.0, -15.0, 0.0])
    tip = centre + np.array([-22.0, 20.0, -6.0])
    screw = Screw(tuple(head), tuple(tip))
    scene = PostopScene(np.zeros((0, 3)), np.zeros((0, 3)), screws=[screw], noise_sd_hu=0.0)
    post = render_postop_ct(c.postop, scene, rng=3)
    return c, post, screw


@pytest.fixture(scope="module")
def postop(
    gui_app: QApplication, case, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostopWindow]:
    c, post, _screw = case
    tmp = tmp_path_factory.mktemp("postop-exclusion-settings")
    window = MainWindow(settings=Settings(Path(tmp) / "seedplan.ini"), interactive=False)
    window.resize(1200, 800)
    window.show()
    settle()
    window.session.set_volume(c.ct)
    window.session.set_document(PlanDocument(c.plan))
    pw = window.workflow.open_postop()  # type: ignore[attr-defined]
    assert pw is not None
    pw.resize(1300, 820)
    settle()
    pw.set_postop_ct(post)
    settle()
    yield pw
    pw.close()
    window.close()
    settle()


def _wait_idle(pw: PostopWindow) -> None:
    wait_until(lambda: not pw.runner.busy and not pw._reverify_timer.isActive(), VERIFY_TIMEOUT_S)
    settle()


def _verify(pw: PostopWindow) -> None:
    before = pw.review
    assert pw.run_verification()
    wait_until(lambda: pw.review is not None and pw.review is not before, VERIFY_TIMEOUT_S)
    _wait_idle(pw)


def _segment_distance_mm(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    u = b - a
    t = np.clip((p - a) @ u / (u @ u), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * u, axis=1)


def test_screw_is_listed_outlined_and_holds_no_seed(postop: PostopWindow, case) -> None:
    c, post, screw = case
    _verify(postop)
    det = postop.review.verification.detection  # type: ignore[union-attr]
    assert len(det.seeds) == len(c.plan.seeds)
    # Listed: one metal object, on the screw, with its volume and why it was excluded.
    table = postop.metal_table
    assert table.rowCount() == len(det.metal) == 1
    head, tip = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    centre = np.array([float(v) for v in table.cell_text(0, 1).split(",")])
    assert _segment_distance_mm(centre[None], head, tip)[0] < screw.radius_mm
    length = np.linalg.norm(tip - head)
    volume = float(table.cell_text(0, 2))
    assert 0.6 < volume / (np.pi * screw.radius_mm**2 * length) < 1.6
    assert "solid metal" in table.cell_text(0, 4)
    assert "magenta" in postop.legend.text()
    assert postop.exclusion_tools.metal_note.text().startswith("1 non-seed metal object excluded")
    # Its voxels: along the screw, none of them near a seed; no seed marker inside it.
    region = postop.metal[0]
    assert region is not None
    kji = np.argwhere(region.mask) + [s.start for s in region.box]
    xyz = post.geometry.zyx_to_world(kji.astype(float))
    assert np.percentile(_segment_distance_mm(xyz, head, tip), 95) < screw.radius_mm + 1.5
    assert not region.contains(post.geometry, det.positions_mm).any()
    assert not region.contains(post.geometry, postop.review.edits.seeds.positions_mm).any()  # type: ignore[union-attr]
    # Drawn: with the crosshair on the screw (the Metal row clicked), its outline is on the view.
    postop.metal_table.cellClicked.emit(0, 0)
    settle()
    np.testing.assert_allclose(postop.postop_session.crosshair_mm, centre, atol=0.06)
    assert postop.metal_layer.shown == [0] and postop.metal_layer.loops >= 1
    near = np.abs(det.positions_mm @ postop.view.normal - centre @ postop.view.normal) <= 2.5
    d_seed = _segment_distance_mm(det.positions_mm[near], head, tip) if near.any() else []
    assert all(d > screw.radius_mm + 2.0 for d in d_seed)
    postop.view.render_now()
    settle(10)
    rgb = postop.view.grab_rgb()
    assert image_is_not_blank(rgb)
    magenta = (rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] > 200)
    assert magenta.sum() > 20


def test_exclusion_brush_paints_undoes_clears_and_drops_seeds(postop: PostopWindow, case) -> None:
    _c, post, _screw = case
    review = postop.review
    assert review is not None
    seeds = review.verification.detection.positions_mm
    n = len(seeds)
    # The seed to exclude: on the view's slice, the crosshair on it, the view on the implant.
    target = seeds[int(np.argmin(np.linalg.norm(seeds - seeds.mean(axis=0), axis=1)))]
    postop.postop_session.set_crosshair(target, snap=False)
    postop.focus_view(target, half_height_mm=30.0)
    settle(10)
    ex = postop.exclusion
    assert ex is not None and ex.voxels == 0
    assert not postop.undo_exclusion_action.isEnabled()
    postop.radius_spin.setValue(4.0)
    postop.sphere_check.setChecked(True)
    postop.paint_action.setChecked(True)
    settle()
    crosshair_before = postop.postop_session.crosshair_mm.copy()
    view = postop.view
    step = np.array([3.0, 0.0, 0.0])
    a = camera_world_to_widget(view, target - step)
    b = camera_world_to_widget(view, target + step)
    drag(view, a, b, Qt.MouseButton.LeftButton)
    settle()
    # Painted (a stroke, not a crosshair move): the seed is in the region, drawn hatched.
    np.testing.assert_allclose(postop.postop_session.crosshair_mm, crosshair_before)
    painted = ex.voxels
    assert painted > 0 and ex.can_undo
    region = ex.region()
    assert region is not None and region.contains(post.geometry, target[None])[0]
    inside = region.contains(post.geometry, seeds)
    assert 1 <= inside.sum() < n
    layer = postop.exclusion_layer
    assert layer.shown == [0] and layer.loops >= 1 and layer.segments >= 3
    # 3-D sphere of 4 mm along a 6 mm path: about its volume (voxel edges, ±35 %).
    voxel_mm3 = float(np.prod(post.geometry.spacing_mm))
    capsule_mm3 = 4.0 / 3.0 * np.pi * 4.0**3 + np.pi * 4.0**2 * 6.0
    assert 0.65 < painted * voxel_mm3 / capsule_mm3 < 1.35
    # Own undo: the whole stroke is one step; redo; clear is a step too.
    postop.undo_exclusion_action.trigger()
    assert ex.voxels == 0 and ex.region() is None and postop.exclusion_layer.loops == 0
    assert postop.redo_exclusion_action.isEnabled()
    postop.redo_exclusion_action.trigger()
    assert ex.voxels == painted
    postop.clear_exclusion_action.trigger()
    assert ex.voxels == 0 and not postop.clear_exclusion_action.isEnabled()
    postop.undo_exclusion_action.trigger()
    assert ex.voxels == painted and postop.exclusion_layer.loops >= 1
    postop.paint_action.setChecked(False)
    # Without the brush a left click moves the crosshair again.
    drag(view, a, a, Qt.MouseButton.LeftButton)
    assert not np.allclose(postop.postop_session.crosshair_mm, crosshair_before)
    # Detect & verify with the region: the seeds inside it are gone, the others stay.
    _verify(postop)
    after = postop.review.verification.detection.positions_mm  # type: ignore[union-attr]
    assert not region.contains(post.geometry, after).any()
    gone = np.linalg.norm(seeds[inside][:, None] - after[None], axis=-1).min(axis=1)
    assert gone.min() > 1.5  # no seed found where an excluded one was
    # Seeds well clear of the region (> 3 mm from its voxels) are found where they were.
    kji = np.argwhere(region.mask) + [s.start for s in region.box]
    voxels_mm = post.geometry.zyx_to_world(kji.astype(float))
    clear = np.linalg.norm(seeds[:, None] - voxels_mm[None], axis=-1).min(axis=1) > 3.0
    assert clear.sum() >= n - 4 and len(after) <= n - int(inside.sum())
    d = np.linalg.norm(seeds[clear][:, None] - after[None], axis=-1).min(axis=1)
    assert d.max() < 0.5
    assert "exclusion region painted" in postop.summary.text()
    assert postop.metal_table.rowCount() == 1  # the screw is still excluded and listed


def test_exclusion_region_is_saved_and_reopened(postop: PostopWindow, case, tmp_path: Path) -> None:
    """Paint (the previous test) -> save -> a new window -> open -> the same region excluded."""
    _c, post, _screw = case
    ex = postop.exclusion
    assert ex is not None and not ex.is_empty and postop.review is not None
    painted = ex.mask.copy()  # type: ignore[union-attr]
    region = ex.region()
    found_before = postop.review.verification.detection.positions_mm
    assert postop.exclusion_tools.save_action.isEnabled()
    saved = postop.exclusion_tools.save_region(tmp_path / "exclusion.nrrd")
    assert saved is not None and saved.name == "exclusion.nrrd"
    assert "saved to" in postop.runner.label.text()
    # The command line's reader takes it as it is: the same voxels on the CT grid.
    np.testing.assert_array_equal(load_exclusion(str(saved), post), painted)
    # No silent overwrite: the file exists, so a save without force is refused, file unchanged.
    before = saved.read_bytes()
    assert postop.exclusion_tools.save_region(saved) is None
    assert "exists" in postop.runner.label.text() and saved.read_bytes() == before
    # The post-op CT as a file, the way a user opens it (its source path is an input).
    ct_file = tmp_path / "postop.nrrd"
    write_image(np.asarray(post.hu), post.geometry, ct_file)
    ct_bytes = ct_file.read_bytes()
    # A mask of another grid (shifted by 2 mm): refused, never moved onto this CT.
    g = post.geometry
    shifted = GridGeometry(
        g.shape_zyx, np.add(g.origin_mm, [2.0, 0.0, 0.0]), g.spacing_mm, g.direction
    )
    other = tmp_path / "other-grid.nrrd"
    write_image(painted.astype(np.uint8), shifted, other)

    pw2 = PostopWindow(postop.main)
    pw2.show()
    settle()
    try:
        pw2.set_postop_ct(read_image(ct_file))
        settle()
        assert pw2.exclusion is not None and pw2.exclusion.is_empty
        assert not pw2.exclusion_tools.save_action.isEnabled()
        assert not pw2.exclusion_tools.open_region(other)
        message = pw2.runner.label.text()
        assert "not on the CT grid" in message and "other-grid.nrrd" in message
        assert pw2.exclusion.is_empty
        # Opened: the same region, drawn, one undo step.
        assert pw2.exclusion_tools.open_region(saved)
        np.testing.assert_array_equal(pw2.exclusion.mask, painted)
        assert pw2.exclusion.can_undo and "opened from" in pw2.runner.label.text()
        # Never saved over the post-op CT it was opened with, even when asked to replace.
        assert pw2.exclusion_tools.save_region(ct_file, force=True) is None
        assert "is an input" in pw2.runner.label.text() and ct_file.read_bytes() == ct_bytes
        assert pw2.exclusion_tools.save_region(tmp_path / "mask.mhd") is None  # two files
        # Detect & verify in the new window: the region excluded, the same seeds found.
        _verify(pw2)
        found = pw2.review.verification.detection.positions_mm  # type: ignore[union-attr]
        assert region is not None and not region.contains(post.geometry, found).any()
        assert len(found) == len(found_before)
        d = np.linalg.norm(found[:, None] - found_before[None], axis=-1).min(axis=1)
        assert d.max() < 0.01
        assert "exclusion region painted" in pw2.summary.text()
        pw2.undo_exclusion_action.trigger()
        assert pw2.exclusion.is_empty
    finally:
        pw2.close()
        settle()


def test_comparison_table_follows_the_reading_order(postop: PostopWindow, case) -> None:
    """The table's blocks: the reference structure first whatever order the rows come in."""
    c, *_ = case
    plan = c.plan
    rows = [
        ComparisonRow(name, "d90_gy", "Gy", 1.0, 1.0) for name in ("Seeds", "SpinalCord", "GTV")
    ]
    order = comparison_order(plan)
    got = [r[0] for r in table_rows(rows, structure_order=order)]
    assert got == ["GTV", "SpinalCord", "Seeds"]
    table = postop.table
    assert table.cell_text(0, 0) == "GTV" and table.cell_text(0, 1) == "D90"
