"""Seed detection on synthetic post-op CTs with known seeds (issue 13, "Accuracy").

The post-op CTs are the demo phantom's anatomy plus seeds rendered through a scanner model
(planner/postop/synthetic.py: Gaussian PSF, slice profile of FWHM = slice thickness, 12-bit
clipping, streaks, noise), with touching pairs and triplets, seeds end to end, a pedicle screw
and vertebroplasty cement. Ground truth is the rendered scene; detections are matched to it with
the Hungarian algorithm within 2.5 mm.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from dose.geometry import GridGeometry
from dose.progress import Cancelled
from planner.demo.phantom import generate_phantom
from planner.imaging.volume import CTVolume
from planner.postop.detection.detect import detect_seeds
from planner.postop.synthetic import (
    PostopScene,
    needle_implant_scene,
    render_postop_ct,
    reslice_thick,
)
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(n_slices=40)


def _resample_z(ph, thickness_mm: float) -> tuple[CTVolume, np.ndarray]:
    """The phantom on slices of ``thickness_mm`` (linear in z), and its GTV (nearest)."""
    return reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], thickness_mm)


def _match(truth: np.ndarray, found: np.ndarray, gate_mm: float = 2.5):
    """Indices (truth, found) of Hungarian matches within ``gate_mm``."""
    if len(found) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    dist = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(dist)
    ok = dist[r, c] < gate_mm
    return r[ok], c[ok]


@pytest.mark.parametrize("thickness_mm", [1.25, 2.5])
def test_detection_accuracy_thin_slices(phantom, thickness_mm: float) -> None:
    """≥ 98.5 % found (one of 71 may be the 3.2 mm side-by-side pair), no false seeds, centre
    ≤ 0.7 mm RMS, axis ≤ 10° median, clusters and end-to-end seeds included."""
    base, gtv = _resample_z(phantom, thickness_mm)
    scene = needle_implant_scene(gtv, base.geometry, rng=1)
    post = render_postop_ct(base, scene, rng=3)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    found = result.positions_mm
    r, c = _match(scene.seeds_mm, found)
    n_true = len(scene.seeds_mm)
    assert len(r) >= int(np.ceil(0.985 * n_true)), result.summary()
    assert len(found) - len(r) <= int(0.01 * n_true), result.summary()
    err = np.linalg.norm(scene.seeds_mm[r] - found[c], axis=1)
    assert np.sqrt(np.mean(err**2)) <= 0.7
    cosang = np.abs(np.sum(scene.axes[r] * result.axes[c], axis=1))
    assert np.median(np.degrees(np.arccos(np.clip(cosang, 0, 1)))) <= 10.0
    # The end-to-end triplet is three seeds, each found within 1 mm.
    triplet = scene.seeds_mm[-5:-2]
    d = np.linalg.norm(triplet[:, None] - found[None], axis=-1).min(axis=1)
    assert np.all(d < 1.0)
    assert result.clusters_split >= 2
    assert not [m for m in result.messages if "mm slices:" in m]  # no thick-slice caveat


def test_no_seed_inside_screw_or_cement(phantom) -> None:
    base, gtv = _resample_z(phantom, 2.5)
    scene = needle_implant_scene(gtv, base.geometry, rng=2)
    post = render_postop_ct(base, scene, rng=4)
    result = detect_seeds(post)
    screw = scene.screws[0]
    a, b = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    u = (b - a) / np.linalg.norm(b - a)
    p = result.positions_mm
    t = np.clip((p - a) @ u, 0.0, np.linalg.norm(b - a))
    d_screw = np.linalg.norm(p - (a + t[:, None] * u), axis=1)
    assert d_screw.min() > screw.radius_mm + 2.0
    cem = scene.cements[0]
    inside = np.sum(((p - np.asarray(cem.centre_mm)) / np.asarray(cem.semi_axes_mm)) ** 2, axis=1)
    assert inside.min() > 1.0
    reasons = " ".join(m.reason for m in result.metal)
    assert "solid metal" in reasons
    assert len(result.metal) >= 2  # the screw and the cement, reported, not dropped


def test_count_reconciliation_reports_missing_and_extra(phantom) -> None:
    base, gtv = _resample_z(phantom, 1.25)
    scene = needle_implant_scene(gtv, base.geometry, rng=5, clusters=False, screw=False)
    post = render_postop_ct(base, scene, rng=6)
    n = len(scene.seeds_mm)
    assert "matches" in detect_seeds(post, expected=n).summary()
    more = detect_seeds(post, expected=n + 3)
    assert "3 missing" in more.summary() and more.messages
    fewer = detect_seeds(post, expected=n - 2)
    assert "2 extra" in fewer.summary()


def test_exclusion_region_removes_what_it_covers(phantom) -> None:
    base, gtv = _resample_z(phantom, 2.5)
    scene = needle_implant_scene(gtv, base.geometry, rng=7, clusters=False, screw=False)
    post = render_postop_ct(base, scene, rng=8)
    full = detect_seeds(post)
    target = scene.seeds_mm[0]
    kji = np.rint(post.geometry.world_to_zyx(target)).astype(int)
    exclude = np.zeros(post.hu.shape, dtype=bool)
    exclude[kji[0] - 2 : kji[0] + 3, kji[1] - 8 : kji[1] + 9, kji[2] - 8 : kji[2] + 9] = True
    cut = detect_seeds(post, exclude=exclude)
    assert len(cut.seeds) == len(full.seeds) - 1
    assert np.linalg.norm(cut.positions_mm - target, axis=1).min() > 3.0


def test_oblique_grid_positions_are_lps() -> None:
    """Seeds on a rotated, anisotropic grid come back at their LPS positions (any direction)."""
    angle = np.radians(25.0)
    rot = np.array(
        [[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0], [-np.sin(angle), 0.0, np.cos(angle)]]
    )
    geo = GridGeometry(
        shape_zyx=(40, 90, 90),
        origin_mm=np.array([-30.0, -35.0, -40.0]),
        spacing_mm=np.array([0.8, 0.8, 1.5]),
        direction=rot,
    )
    base = CTVolume(np.full(geo.shape_zyx, 40, dtype=np.int16), geo)
    centre = geo.index_to_world(np.array([45.0, 45.0, 20.0]))
    seeds = centre + np.array([[0.0, 0.0, 0.0], [12.0, 3.0, -5.0], [-9.0, 8.0, 6.0]])
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    post = render_postop_ct(base, PostopScene(seeds, axes, streak_hu=0.0), rng=0)
    result = detect_seeds(post, expected=3)
    r, c = _match(seeds, result.positions_mm)
    assert len(r) == 3
    assert np.abs(seeds[r] - result.positions_mm[c]).max() < 0.3
    cosang = np.abs(np.sum(axes[r] * result.axes[c], axis=1))
    assert np.all(cosang > np.cos(np.radians(10.0)))


def test_seed_grid_axes_on_2_5mm_slices(phantom) -> None:
    """134 seeds of every orientation on a 10 × 10 × 12 mm grid, 2.5 mm slices: all found,
    none false, axis ≤ 10° median (measured 7.2°; 10.2° while the blur correction also took a
    voxel's box variance h²/12 off, which flattened the axes toward the slice plane)."""
    from planner.postop.synthetic import seed_grid_scene

    base, gtv = _resample_z(phantom, 2.5)
    centre = base.geometry.zyx_to_world(np.argwhere(gtv).mean(axis=0))
    scene = seed_grid_scene(base.geometry, centre, rng=2, avoid_lung=base.hu)
    post = render_postop_ct(base, scene, rng=4)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    r, c = _match(scene.seeds_mm, result.positions_mm)
    assert len(r) == len(scene.seeds_mm) == len(result.seeds), result.summary()
    cosang = np.abs(np.sum(scene.axes[r] * result.axes[c], axis=1))
    assert np.median(np.degrees(np.arccos(np.clip(cosang, 0, 1)))) <= 10.0


def test_cancel_raises_cancelled(phantom) -> None:
    base, gtv = _resample_z(phantom, 2.5)
    post = render_postop_ct(base, needle_implant_scene(gtv, base.geometry, rng=1), rng=1)
    with pytest.raises(Cancelled):
        detect_seeds(post, cancel=lambda: True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_detect_cli_writes_csv_and_summary(phantom, tmp_path: Path) -> None:
    base, gtv = _resample_z(phantom, 2.5)
    scene = needle_implant_scene(gtv, base.geometry, rng=1, clusters=False, screw=False)
    post = render_postop_ct(base, scene, rng=3)
    from planner.imaging.image_files import write_image

    ct_path = tmp_path / "postop.nrrd"
    write_image(post.hu, post.geometry, ct_path)
    out = tmp_path / "seeds.csv"
    proc = _cli("detect", str(ct_path), "--out", str(out), "--expected", str(len(scene.seeds_mm)))
    assert proc.returncode == 0, proc.stderr
    assert "seeds found" in proc.stderr and "matches" in proc.stderr
    rows = [ln for ln in out.read_text().splitlines() if ln and not ln.startswith("#")]
    assert rows[0] == "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence"
    xyz = np.array([[float(v) for v in ln.split(",")[:3]] for ln in rows[1:]])
    r, _ = _match(scene.seeds_mm, xyz)
    assert len(r) == len(scene.seeds_mm)
    # An existing output is refused without --force; bad --expected is one line, exit 2.
    again = _cli("detect", str(ct_path), "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    bad = _cli("detect", str(ct_path), "--out", str(tmp_path / "x.csv"), "--expected", "-1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    missing = _cli("detect", str(tmp_path / "nope"), "--out", str(tmp_path / "y.csv"))
    assert missing.returncode == 2 and "nope" in missing.stderr
