"""``seedplan detect --exclude``: a user-painted region never searched for seeds (issue 13).

The region comes from a mask image on the CT grid or from a structure of a plan on the CT
(``PLAN.seedplan:NAME``); a bad one (not found, wrong grid, unknown structure) is one line,
exit 2. The CT is a small synthetic post-op volume with four well-separated seeds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dose.geometry import GridGeometry
from planner.imaging.image_files import read_image, write_image
from planner.imaging.volume import CTVolume
from planner.postop.synthetic import PostopScene, render_postop_ct
from tests.conftest import REPO_ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def _rows(path: Path) -> np.ndarray:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence"
    return np.array([[float(v) for v in ln.split(",")[:3]] for ln in lines[1:]]).reshape(-1, 3)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(folder, CT path, seed centres (4, 3) LPS mm, exclusion mask over seed 0)."""
    d = tmp_path_factory.mktemp("detect_exclude")
    geo = GridGeometry(
        shape_zyx=(24, 80, 80),
        origin_mm=np.array([-32.0, -32.0, -24.0]),
        spacing_mm=np.array([0.8, 0.8, 2.0]),
        direction=np.eye(3),
    )
    base = CTVolume(np.full(geo.shape_zyx, 40, dtype=np.int16), geo)
    seeds = np.array(
        [[-15.0, -12.0, 0.0], [14.0, -10.0, 2.0], [-12.0, 15.0, -4.0], [13.0, 14.0, 6]]
    )
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8], [0.7, 0.7, 0.0]])
    post = render_postop_ct(base, PostopScene(seeds, axes, streak_hu=0.0), rng=0)
    ct_path = write_image(post.hu, geo, d / "postop.nrrd")
    kji = np.rint(geo.world_to_zyx(seeds[0])).astype(int)
    mask = np.zeros(geo.shape_zyx, dtype=np.uint8)
    mask[kji[0] - 3 : kji[0] + 4, kji[1] - 8 : kji[1] + 9, kji[2] - 8 : kji[2] + 9] = 1
    mask_path = write_image(mask, geo, d / "exclude.nrrd")
    return d, ct_path, seeds, mask_path


def test_exclusion_mask_removes_the_seed_it_covers(case) -> None:
    d, ct_path, seeds, mask_path = case
    full = d / "all.csv"
    assert _cli("detect", str(ct_path), "--out", str(full)).returncode == 0
    assert len(_rows(full)) == 4
    out = d / "cut.csv"
    proc = _cli("detect", str(ct_path), "--out", str(out), "--exclude", str(mask_path))
    assert proc.returncode == 0, proc.stderr
    found = _rows(out)
    assert len(found) == 3
    assert np.linalg.norm(found - seeds[0], axis=1).min() > 5.0
    for s in seeds[1:]:
        assert np.linalg.norm(found - s, axis=1).min() < 0.5
    assert f"# region excluded from the search: {mask_path}" in out.read_text()


def test_exclusion_from_a_plan_structure(case) -> None:
    from planner.plan.new_plan import new_plan
    from planner.plan.plan_file import save_plan

    d, ct_path, seeds, mask_path = case
    plan, _ = new_plan(read_image(ct_path), masks=[("Hardware", mask_path)])
    plan_path = d / "postop.seedplan"
    save_plan(plan, plan_path)
    out = d / "plan_cut.csv"
    proc = _cli("detect", str(ct_path), "--out", str(out), "--exclude", f"{plan_path}:hardware")
    assert proc.returncode == 0, proc.stderr
    found = _rows(out)
    assert len(found) == 3
    assert np.linalg.norm(found - seeds[0], axis=1).min() > 5.0
    # An unknown structure: one line naming the plan and the structures it has.
    bad = _cli("detect", str(ct_path), "--out", str(d / "x.csv"), "--exclude", f"{plan_path}:Cord")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "postop.seedplan" in bad.stderr and "'Hardware'" in bad.stderr
    assert not (d / "x.csv").exists()


def test_bad_exclusion_is_one_line_exit_2(case) -> None:
    d, ct_path, _seeds, _mask = case
    wrong = np.zeros((24, 80, 81), dtype=np.uint8)
    geo = GridGeometry(
        shape_zyx=wrong.shape,
        origin_mm=np.array([-32.0, -32.0, -24.0]),
        spacing_mm=np.array([0.8, 0.8, 2.0]),
        direction=np.eye(3),
    )
    wrong_path = write_image(wrong, geo, d / "wrong_grid.nii.gz")
    for spec, words in (
        (str(wrong_path), ("wrong_grid.nii.gz", "not on the CT grid", "81×80×24")),
        (str(d / "nope.nrrd"), ("nope.nrrd",)),
        (str(d / "missing.seedplan") + ":GTV", ("missing.seedplan", "no such plan file")),
    ):
        out = d / "bad.csv"
        proc = _cli("detect", str(ct_path), "--out", str(out), "--exclude", spec)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        for w in words:
            assert w in proc.stderr
        assert not out.exists()
