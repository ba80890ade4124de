"""``seedplan detect``: the summary line says how the metal was searched (issue 13).

Thin slices: the HU threshold. Slices > 3 mm are searched by shape, where 250 HU is only the
lowest HU looked at: the line says "thick-slice shape search (≥ 250 HU)", not "threshold".
The CTs are small synthetic post-op volumes (water, two in-plane seeds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dose.geometry import GridGeometry
from planner.imaging.image_files import write_image
from planner.imaging.volume import CTVolume
from planner.postop.detection.detect import THICK_FLOOR_HU, DetectionResult
from planner.postop.synthetic import PostopScene, render_postop_ct
from tests.conftest import REPO_ROOT


def _detect(tmp_path: Path, slice_mm: float) -> subprocess.CompletedProcess[str]:
    n_z = round(40.0 / slice_mm)
    geo = GridGeometry(
        shape_zyx=(n_z, 64, 64),
        origin_mm=np.array([-25.6, -25.6, -0.5 * slice_mm * (n_z - 1)]),
        spacing_mm=np.array([0.8, 0.8, slice_mm]),
        direction=np.eye(3),
    )
    base = CTVolume(np.full(geo.shape_zyx, 40, dtype=np.int16), geo)
    seeds = np.array([[-10.0, -8.0, 0.0], [10.0, 9.0, 0.0]])
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # in-plane
    post = render_postop_ct(base, PostopScene(seeds, axes, streak_hu=0.0), rng=0)
    ct_path = write_image(post.hu, geo, tmp_path / f"postop_{slice_mm:g}mm.nrrd")
    out = tmp_path / f"seeds_{slice_mm:g}mm.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "detect", str(ct_path), "--out", str(out), "--expected", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert f"# {first.removeprefix('seedplan detect: ')}" in out.read_text().splitlines()
    return proc


def test_thick_slices_say_shape_search_not_threshold(tmp_path: Path) -> None:
    proc = _detect(tmp_path, 5.0)
    line = proc.stderr.splitlines()[0]
    assert f"thick-slice shape search (≥ {THICK_FLOOR_HU:.0f} HU)" in line, line
    assert "threshold" not in line
    assert "2 seeds found" in line and "matches the 2 expected" in line


def test_thin_slices_say_the_threshold(tmp_path: Path) -> None:
    line = _detect(tmp_path, 2.0).stderr.splitlines()[0]
    assert "threshold" in line and "HU" in line and "shape search" not in line, line
    assert "2 seeds found" in line


@pytest.mark.parametrize(
    ("thick", "want"), [(True, "shape search (≥ 250 HU)"), (False, "threshold 250 HU")]
)
def test_summary_names_the_search(thick: bool, want: str) -> None:
    result = DetectionResult([], [], 250.0, 1.0, 0, thick_slices=thick)
    assert want in result.summary()
