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


def test_info_on_refused_series_prints_problems_with_status_2(capsys, tmp_path: Path) -> None:
    """One contract (DESIGN.md): a refused series is bad input, exit 2 with one line on stderr;
    the report is still printed (text, or the JSON object with "loaded": false)."""
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
    rc, out, err = run_info(capsys, str(tmp_path))
    assert rc == 2
    assert "NOT LOADED" in out and "mixed frames of reference" in out
    assert err.count("\n") == 1 and str(tmp_path) in err and "mixed frames of reference" in err
    rc, out, err = run_info(capsys, str(tmp_path), "--json")
    assert rc == 2 and err.count("\n") == 1 and "CT not loaded" in err
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


def test_info_help_states_the_exit_contract(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["info", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0 the CT can be loaded" in text
    assert "2 bad input, with one line on stderr" in text
    assert "the series is refused: the report is still printed on stdout" in text


@pytest.mark.parametrize(
    ("keyword", "raw"),
    [
        ("PixelSpacing", "0\\0"),
        ("PixelSpacing", "-0.8\\0.7"),
        ("PixelSpacing", "nan\\0.7"),
        ("PixelSpacing", "abc\\0.7"),
        ("ImageOrientationPatient", "1\\0\\0\\1\\0\\0"),
        ("ImagePositionPatient", "1\\2"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_info_bad_header_value_is_one_line_exit_2(
    capfd, tmp_path: Path, keyword: str, raw: str, as_json: bool
) -> None:
    """PixelSpacing 0 used to exit 1 with a traceback; a degenerate orientation added numpy
    RuntimeWarning lines; pydicom printed a UserWarning per invalid value."""
    db.write_ct_series(tmp_path, per_slice=lambda k, ds: db.set_raw(ds, keyword, raw))
    rc, out, err = run_info(capfd, str(tmp_path), *(["--json"] if as_json else []))
    assert rc == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"seedplan info: {tmp_path}: CT not loaded: {keyword} '{raw}'")
    assert "Traceback" not in err and "Warning" not in err
    if as_json:
        data = json.loads(out)
        assert data["loaded"] is False and data["report"]["problems"][0].startswith(keyword)
    else:
        assert "NOT LOADED" in out


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_info_on_folder_with_special_file_does_not_hang(tmp_path: Path, kind: str) -> None:
    import os

    db.write_ct_series(tmp_path, n_slices=3)
    special = tmp_path / "special.dcm"
    if kind == "fifo":
        os.mkfifo(special)
    else:
        os.symlink("/dev/zero", special)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "info", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,  # it used to block forever
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{special}: not a regular file" in proc.stdout


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``seedplan ARGS`` with stdout a pipe whose reader has already gone."""
    import os

    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            stdout=write_fd,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            timeout=300,
        )
    finally:
        os.close(write_fd)


@pytest.fixture(scope="module")
def big_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    paths = db.write_ct_series(folder, n_slices=40, rows=16, cols=16)
    for k in (5, 9, 13, 17, 21, 25):  # many report lines: more than a pipe buffer would hold
        db.truncate(paths[k], 0.97)
    return folder


@pytest.mark.parametrize("as_json", [False, True])
def test_info_into_a_closed_pipe_ends_quietly(big_series: Path, as_json: bool) -> None:
    """`seedplan info … | head` used to end in a BrokenPipeError traceback."""
    proc = _closed_pipe_run(["info", str(big_series), *(["--json"] if as_json else [])])
    assert proc.returncode == 141  # 128 + SIGPIPE, as the shell reports a closed pipe
    assert proc.stderr == ""


def test_every_command_into_a_closed_pipe_ends_quietly() -> None:
    """Every command's output goes through app.cli.main, which handles a closed pipe once."""
    from app.cli import build_parser

    names = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert "info" in names and len(names) >= 3
    for args in (["--help"], *([name, "--help"] for name in names)):
        proc = _closed_pipe_run(args)
        assert proc.returncode in (0, 141), (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, args


def test_closed_pipe_inside_a_command_is_handled_by_main(monkeypatch, capsys) -> None:
    """In-process: any command whose write hits a closed pipe returns 141, no traceback."""
    import argparse

    from app import cli

    def fake_build_parser(only: str | None = None) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="seedplan")
        sub = parser.add_subparsers(dest="command")
        p = sub.add_parser("talk")

        def run(_args: argparse.Namespace) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        p.set_defaults(run=run)
        return parser

    discarded: list[bool] = []
    monkeypatch.setattr(cli, "build_parser", fake_build_parser)
    monkeypatch.setattr(cli, "_discard_stdout", lambda: discarded.append(True))
    assert cli.main(["talk"]) == 141
    assert discarded == [True]
    assert capsys.readouterr().err == ""
