"""``seedplan info``: series listing, geometry, problems; exit status 0 / 2 (DESIGN.md CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.cli import main
from dose.geometry import GridGeometry
from planner.imaging.image_files import write_image
from tests import dicom_builders as db
from tests.conftest import REPO_ROOT


def run_info(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``seedplan info`` in-process; works with capsys or capfd."""
    rc = main(["info", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    db.write_ct_series(tmp_path / "big", n_slices=6, description="big CT")
    db.write_ct_series(tmp_path / "small", n_slices=3, description="small CT", rows=8, cols=8)
    db.write_junk(tmp_path / "notes.txt")
    return tmp_path


def test_info_lists_series_geometry_and_skipped_files(capsys, mixed_folder: Path) -> None:
    rc, out, err = run_info(capsys, str(mixed_folder))
    assert rc == 0 and err == ""
    assert "2 series" in out
    assert "'big CT'" in out and "'small CT'" in out
    assert "6 slices" in out and "3 slices" in out
    assert "size (x×y×z): 10×12×6 voxels" in out  # the largest CT is chosen
    assert "notes.txt: not a DICOM file" in out
    assert "Loadable: yes" in out


def test_info_json_is_one_object(capsys, mixed_folder: Path) -> None:
    rc, out, _ = run_info(capsys, str(mixed_folder), "--json")
    assert rc == 0
    data = json.loads(out)  # fails if anything else is printed
    assert data["kind"] == "dicom" and data["loaded"] is True
    assert sorted(s["n_slices"] for s in data["series"]) == [3, 6]
    assert data["geometry"]["shape_zyx"] == [6, 12, 10]
    assert data["report"]["skipped"][0]["reason"] == "not a DICOM file"
    small = next(s for s in data["series"] if s["n_slices"] == 3)
    rc, out, _ = run_info(capsys, str(mixed_folder), "--json", "--series", small["key"])
    assert json.loads(out)["geometry"]["shape_zyx"] == [3, 8, 8]


def test_info_on_refused_series_prints_problems_with_status_0(capsys, tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5, slice_spacing_mm=2.0)

    def other_for(k: int, ds) -> None:
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"

    # One more image in the same series, from another frame of reference: refused.
    series_uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    db.write_ct_series(
        tmp_path,
        n_slices=1,
        prefix="X",
        series_uid=series_uid,
        origin=(-4.0, -5.0, 30.0),
        per_slice=other_for,
    )
    rc, out, _ = run_info(capsys, str(tmp_path))
    assert rc == 0
    assert "NOT LOADED" in out and "mixed frames of reference" in out
    rc, out, _ = run_info(capsys, str(tmp_path), "--json")
    data = json.loads(out)
    assert data["loaded"] is False and data["geometry"] is None
    assert any("mixed frames of reference" in p for p in data["report"]["problems"])


def test_info_reports_resampling(capsys, tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    paths[1].unlink()
    rc, out, _ = run_info(capsys, str(tmp_path))
    assert rc == 0 and "resampled" in out and "Loadable: yes" in out


def test_info_on_image_file(capsys, tmp_path: Path) -> None:
    g = GridGeometry(
        (2, 3, 4),
        np.array([1.0, 2.0, 3.0]),
        np.array([0.5, 0.5, 2.0]),
        np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float),
    )
    path = write_image(np.full(g.shape_zyx, -1000, np.int16), g, tmp_path / "c.nii.gz")
    rc, out, _ = run_info(capsys, str(path))
    assert rc == 0
    assert "image file" in out and "size (x×y×z): 4×3×2 voxels" in out
    assert "direction j: (+0.0000, +0.0000, +1.0000)" in out
    rc, out, _ = run_info(capsys, str(path), "--json")
    data = json.loads(out)
    assert data["kind"] == "image"
    np.testing.assert_allclose(data["geometry"]["direction"], g.direction.tolist(), atol=1e-6)


@pytest.mark.parametrize(
    "case", ["missing", "empty", "no_ct", "junk_only", "bad_series", "bad_nii", "cut_mha"]
)
def test_info_unusable_input_is_one_line_exit_2(capfd, tmp_path: Path, case: str) -> None:
    # capfd (not capsys): C++ libraries printing to file descriptor 2 would show up too.
    target = tmp_path / case
    extra: list[str] = []
    if case == "empty":
        target.mkdir()
    elif case == "no_ct":
        db.write_ct_series(target, modality="MR", sop_class=db.MR_IMAGE_STORAGE)
    elif case == "junk_only":
        db.write_junk(target / "a.dcm")
    elif case == "bad_series":
        db.write_ct_series(target)
        extra = ["--series", "1.2.3.999"]
    elif case == "bad_nii":
        target = tmp_path / "bad.nii"
        target.write_bytes(b"garbage" * 50)
    elif case == "cut_mha":
        g = GridGeometry.axis_aligned((4, 5, 6), (0, 0, 0), (1, 1, 1))
        target = write_image(np.zeros(g.shape_zyx, np.int16), g, tmp_path / "cut.mha")
        target.write_bytes(target.read_bytes()[:60])  # header cut mid-way
    rc, out, err = run_info(capfd, str(target), *extra)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and str(target) in err and "Traceback" not in err


def test_info_command_line_entry_point(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, n_slices=3)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "info", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["geometry"]["shape_zyx"] == [3, 12, 10]
    proc = subprocess.run(
        [sys.executable, "-m", "app", "info", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip().endswith("no such file or folder")
