"""``seedplan dose`` safety checks (issue 8): the output rule for --out and --grid-out (.nrrd,
.mha, .nii.gz), --force, the calibration/implant date rule, the decay line on stderr, numeric
options and CSV cells (inf, nan, negative, zero, huge, not a number), non-finite results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from dose.errors import InputError
from dose.source_strength import (
    MAX_IMPLANT_AFTER_CALIBRATION_DAYS,
    MAX_IMPLANT_BEFORE_CALIBRATION_DAYS,
    decay_between,
    strengths_at_implant,
)
from planner.files.csv_io import write_dose_csv
from tests.limited_fs import limited_fs_problem, no_hang, run_limited

OLD = b"old bytes, must survive\n"
WRITERS = {"csv": ".csv", "nrrd": ".nrrd", "mha": ".mha", "nii.gz": ".nii.gz"}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    seeds = tmp_path / "S.csv"
    seeds.write_text("x_mm,y_mm,z_mm\n0,0,0\n10,0,0\n", encoding="utf-8")
    points = tmp_path / "P.csv"
    points.write_text("x_mm,y_mm,z_mm\n0,10,0\n5,5,5\n", encoding="utf-8")
    return {"seeds": seeds, "points": points}


def _args(inputs: dict[str, Path], writer: str, target: Path | str, *extra: str) -> list[str]:
    base = ["dose", "--seeds", str(inputs["seeds"]), "--model", "6711", "--strength-U", "0.8"]
    if writer == "csv":
        return [*base, "--points", str(inputs["points"]), "--out", str(target), *extra]
    return [*base, "--grid-out", str(target), "--spacing-mm", "4", "--margin-mm", "8", *extra]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    """Name → bytes (regular files) or kind, for everything in ``folder`` (not following)."""
    snap: dict[str, bytes | str] = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            snap[p.name] = f"link -> {os.readlink(p)}"
        elif p.is_file():
            snap[p.name] = p.read_bytes()
        else:
            snap[p.name] = "fifo" if p.is_fifo() else "folder" if p.is_dir() else "other"
    return snap


def _make_target(kind: str, suffix: str, d: Path, inputs: dict[str, Path]) -> tuple[Path, str]:
    """(target, expected part of the message)."""
    if kind == "char device":
        if suffix == ".csv":
            return Path("/dev/full"), "is a character device"
        if os.geteuid() != 0:
            pytest.skip("a device named *.nrrd needs mknod (root); the link case covers it")
        dev = d / f"full{suffix}"
        os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 7))  # the same device as /dev/full
        return dev, "is a character device"
    target = d / f"out{suffix}"
    if kind == "fifo":
        os.mkfifo(target)
        return target, "FIFO"
    if kind == "folder":
        target.mkdir()
        return target, "is a folder"
    if kind == "link to device":
        target.symlink_to("/dev/full")
        return target, "symbolic link to /dev/full"
    if kind == "own input":
        if suffix == ".csv":
            return inputs["points"], "is an input of this command"
        os.link(inputs["seeds"], target)  # the seeds file under a grid name: same inode
        return target, "is an input of this command"
    if kind == "exists":
        target.write_bytes(OLD)
        return target, "exists; use --force"
    if kind == "missing folder":
        return d / "missing" / f"out{suffix}", "does not exist"
    raise AssertionError(kind)


KINDS = [
    "char device",
    "fifo",
    "folder",
    "link to device",
    "own input",
    "exists",
    "missing folder",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_output_refuses_every_bad_target(
    tmp_path: Path, inputs: dict[str, Path], capsys, writer: str, kind: str
) -> None:
    target, message = _make_target(kind, WRITERS[writer], tmp_path, inputs)
    before = _snapshot(tmp_path)
    with no_hang(60):  # a FIFO opened for writing would block forever
        rc = main(_args(inputs, writer, target, *(["--force"] if kind != "exists" else [])))
    line = _one_line(capsys.readouterr().err)
    assert rc == 2
    assert str(target) in line and message in line, line
    assert ".tmp" not in line
    assert _snapshot(tmp_path) == before  # old bytes identical, nothing new, no temp file
    assert os.stat("/dev/full").st_rdev == os.makedev(1, 7)


@pytest.mark.parametrize("writer", list(WRITERS))
def test_force_replaces_an_output_but_never_an_input(
    tmp_path: Path, inputs: dict[str, Path], capsys, writer: str
) -> None:
    target = tmp_path / f"out{WRITERS[writer]}"
    target.write_bytes(OLD)
    assert main(_args(inputs, writer, target, "--force")) == 0
    assert target.read_bytes() != OLD and target.stat().st_size > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["S.csv", "P.csv", target.name])
    capsys.readouterr()
    seeds_before = inputs["seeds"].read_bytes()
    (tmp_path / f"link{WRITERS[writer]}").symlink_to(inputs["seeds"])
    rc = main(_args(inputs, writer, tmp_path / f"link{WRITERS[writer]}", "--force"))
    assert rc == 2 and "is an input of this command" in capsys.readouterr().err
    assert inputs["seeds"].read_bytes() == seeds_before


def test_out_and_grid_out_same_file_and_detached_headers(tmp_path, inputs, capsys) -> None:
    same = tmp_path / "d.nrrd"
    args = _args(inputs, "csv", same, "--grid-out", str(same))
    assert main(args) == 2
    assert "--out and --grid-out are the same file" in _one_line(capsys.readouterr().err)
    for suffix in (".mhd", ".nhdr"):  # a detached header names its data file: not atomic
        assert main(_args(inputs, "nrrd", tmp_path / f"g{suffix}")) == 2
        assert "grid file must end in one of" in _one_line(capsys.readouterr().err)
    assert not same.exists()


# --------------------------------------------------------------------------- dates and decay
def test_decay_rule_function() -> None:
    from datetime import date, timedelta

    cal = date(2026, 1, 1)
    d = decay_between(cal, cal + timedelta(days=59))
    assert d.factor == pytest.approx(0.5 ** (59 / 59.4), rel=1e-12)  # T½ 59.40 d
    assert f"factor {0.5 ** (59 / 59.4):.5f}" in d.describe() and "+59.0 d" in d.describe()
    early = decay_between(cal, cal - timedelta(days=MAX_IMPLANT_BEFORE_CALIBRATION_DAYS))
    assert 1.0 < early.factor < 1.09
    with pytest.raises(InputError, match="365 days before the calibration date"):
        decay_between(cal, cal - timedelta(days=365))
    limit = int(MAX_IMPLANT_AFTER_CALIBRATION_DAYS)
    assert decay_between(cal, cal + timedelta(days=limit)).factor > 0.125
    with pytest.raises(InputError, match="days after the calibration date"):
        decay_between(cal, cal + timedelta(days=limit + 1))
    # the decayed strength must be plausible too (0.06 U × 0.5 = 0.03 U < 0.05 U)
    with pytest.raises(InputError, match=r"strength at implant 0\.030"):
        strengths_at_implant([0.06], cal, cal + timedelta(days=59.4))
    s, none = strengths_at_implant([0.8, 0.7], None, None)
    assert none is None and s.tolist() == [0.8, 0.7]


@pytest.mark.parametrize(
    ("calibration", "implant", "message"),
    [
        # the cases: a year early (×72 strength), 24 years late (~0 Gy)
        ("2026-06-01", "2025-06-01", "365 days before the calibration date"),
        ("2002-01-01", "2026-01-01", "days after the calibration date"),
        ("2026-01-01", "2026-01-09", None),  # 8 days after: fine (factor 0.911)
        ("2026-01-10", "2026-01-01", "9 days before"),  # beyond the 7-day tolerance
    ],
)
def test_dates_checked_and_decay_printed(
    tmp_path, inputs, capsys, calibration, implant, message
) -> None:
    out = tmp_path / "D.csv"
    dates = ["--calibration-date", calibration, "--implant-date", implant]
    rc = main(_args(inputs, "csv", out, *dates))
    err = capsys.readouterr().err
    if message is None:
        assert rc == 0
        factor = 0.5 ** (8 / 59.4)
        assert f"factor {factor:.5f}" in err  # on stderr, not only in the CSV header
        assert f"S_K at implant {0.8 * factor:.4g} U per seed" in err
        assert f"factor {factor:.5f}" in out.read_text()
    else:
        assert rc == 2 and message in _one_line(err) and not out.exists()


def test_no_dates_says_no_decay(tmp_path, inputs, capsys) -> None:
    import SimpleITK as sitk  # noqa: N813

    assert main(_args(inputs, "nrrd", tmp_path / "g.nrrd")) == 0
    assert capsys.readouterr().err.count("no decay correction") == 1
    dates = ["--calibration-date", "2026-01-01", "--implant-date", "2026-01-20"]
    assert main(_args(inputs, "nrrd", tmp_path / "h.nrrd", *dates)) == 0
    assert capsys.readouterr().err.count(f"factor {0.5 ** (19 / 59.4):.5f}") == 1
    meta = sitk.ReadImage(str(tmp_path / "h.nrrd")).GetMetaData("seedplan_decay")
    assert meta.startswith("decay from calibration 2026-01-01 to implant 2026-01-20")


# --------------------------------------------------------------------------- numbers
BAD_NUMBERS = ["inf", "-inf", "nan", "1e999", "1e300", "0", "-1"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        (option, value)
        for option in ("--spacing-mm", "--margin-mm", "--strength-U", "--activity-mCi")
        for value in BAD_NUMBERS
        if (option, value) != ("--margin-mm", "0")  # a zero margin is valid: the seeds' box
    ],
)
def test_numeric_options_refused(tmp_path, inputs, capsys, option: str, value: str) -> None:
    out = tmp_path / "g.nrrd"
    base = ["dose", "--seeds", str(inputs["seeds"]), "--model", "6711", "--grid-out", str(out)]
    strength = [] if option in ("--strength-U", "--activity-mCi") else ["--strength-U", "0.8"]
    rc = main([*base, *strength, f"{option}={value}"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and not out.exists()
    assert option in line, line


@pytest.mark.parametrize("option", ["--spacing-mm", "--margin-mm", "--strength-U"])
def test_non_numeric_option_is_a_usage_error(tmp_path, inputs, capsys, option: str) -> None:
    out = tmp_path / "g.nrrd"
    base = ["dose", "--seeds", str(inputs["seeds"]), "--model", "6711", "--grid-out", str(out)]
    with pytest.raises(SystemExit) as info:  # argparse: exit 2 with one line
        main([*base, "--strength-U", "0.8", option, "abc"])
    assert info.value.code == 2
    assert "invalid float value: 'abc'" in _one_line(capsys.readouterr().err)


def test_tiny_spacing_with_huge_margin_is_refused_before_allocating(
    tmp_path, inputs, capsys
) -> None:
    out = tmp_path / "g.nrrd"
    rc = main(_args(inputs, "nrrd", out, "--spacing-mm", "0.1", "--margin-mm", "500"))
    assert rc == 2 and "voxels" in _one_line(capsys.readouterr().err) and not out.exists()


CELLS = ["inf", "nan", "-inf", "1e200", "1e999", "abc", ""]


@pytest.mark.parametrize(
    ("where", "cell"),
    [
        (where, cell)
        for where in ("seed x_mm", "point z_mm", "strength_U", "seed dir_y")
        for cell in CELLS
        # valid: a huge dir component (only the direction counts), an empty strength_U cell
        # (= use --strength-U)
        if (where, cell) not in {("seed dir_y", "1e200"), ("strength_U", "")}
    ],
)
def test_csv_cells_refused(tmp_path, inputs, capsys, where: str, cell: str) -> None:
    seeds, points = inputs["seeds"], inputs["points"]
    if where == "seed x_mm":
        seeds.write_text(f"x_mm,y_mm,z_mm\n0,0,0\n{cell},0,0\n")
    elif where == "point z_mm":
        points.write_text(f"x_mm,y_mm,z_mm\n0,10,0\n5,5,{cell}\n")
    elif where == "strength_U":
        seeds.write_text(f"x_mm,y_mm,z_mm,strength_U\n0,0,0,0.8\n10,0,0,{cell}\n")
    else:
        seeds.write_text(f"x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n0,0,0,0,0,1\n10,0,0,0,{cell},1\n")
    out = tmp_path / "D.csv"
    rc = main(_args(inputs, "csv", out))
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "line 3" in line and not out.exists(), line


@pytest.mark.parametrize("cell", ["0", "-0.5", "1e200", "11"])
def test_strength_cell_out_of_range(tmp_path, inputs, capsys, cell: str) -> None:
    inputs["seeds"].write_text(f"x_mm,y_mm,z_mm,strength_U\n0,0,0,0.8\n10,0,0,{cell}\n")
    out = tmp_path / "D.csv"
    rc = main(_args(inputs, "csv", out))
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "line 3" in line and not out.exists(), line


def test_far_but_valid_coordinates_give_finite_doses(tmp_path, inputs) -> None:
    # the seed/point at 1e200 mm is refused above; at the ±10 m limit the dose is finite
    inputs["seeds"].write_text("x_mm,y_mm,z_mm\n0,0,0\n10000,-10000,10000\n")
    inputs["points"].write_text("x_mm,y_mm,z_mm\n-10000,10000,-10000\n0,10,0\n")
    out = tmp_path / "D.csv"
    assert main(_args(inputs, "csv", out)) == 0
    body = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")][1:]
    table = np.array([[float(v) for v in ln.split(",")] for ln in body])
    assert np.all(np.isfinite(table)) and np.all(table[:, 3:] > 0)


def test_writer_refuses_non_finite_results(tmp_path: Path) -> None:
    out = tmp_path / "D.csv"
    pts = [[0, 0, 0], [1, 2, 3]]
    with pytest.raises(InputError, match=r"D\.csv: row 2 .* is not finite; nothing written"):
        write_dose_csv(out, pts, [1.0, np.nan], [2.0, 3.0])
    with pytest.raises(InputError, match="row 1"):
        write_dose_csv(out, pts, [1.0, 2.0], [np.inf, 3.0])
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- full / read-only
_CLI_ON_LIMITED_FS = """
import hashlib
from dataclasses import replace
D = sys.argv[-1]
olds = {}
for ext in (".csv", ".nrrd", ".mha", ".nii.gz"):
    p = os.path.join(M, "old" + ext)
    with open(p, "wb") as fh:
        fh.write(b"old bytes " + ext.encode())
    olds[p] = open(p, "rb").read()
demo_old = os.path.join(M, "case")
from planner.demo.case import write_demo_case
from planner.demo.phantom import PhantomSpec
SMALL = replace(PhantomSpec(), n_slices=2, matrix=32)
write_demo_case(demo_old, spec=SMALL)
def digest(root):
    return {os.path.relpath(os.path.join(a, f), root): hashlib.sha256(
        open(os.path.join(a, f), "rb").read()).hexdigest()
        for a, _, fs in os.walk(root) for f in fs}
demo_before = digest(demo_old)
{prepare}
base = ["dose", "--seeds", f"{D}/S.csv", "--model", "6711", "--strength-U", "0.8"]
res = {}
for p in olds:
    for target in (p, p.replace("old", "new")):
        if p.endswith(".csv"):
            argv = [*base, "--points", f"{D}/P.csv", "--out", target, "--force"]
        else:
            argv = [*base, "--grid-out", target, "--spacing-mm", "1", "--margin-mm", "30",
                    "--force"]
        res[target] = run_cli(argv)
res[demo_old] = run_cli(["demo", "--out", demo_old, "--force"])
from planner.demo.case import write_demo_case_atomically
from planner.files.safe_write import OutputError
try:  # the same code the CLI runs after its checks, on a small case (the full one takes 10 s)
    write_demo_case_atomically(demo_old, spec=SMALL, force=True)
    res["demo api"] = "written"
except OutputError as exc:
    res["demo api"] = str(exc)
out = {"res": res, "olds_kept": all(open(p, "rb").read() == b for p, b in olds.items()),
       "demo_kept": digest(demo_old) == demo_before,
       "listing": sorted(n for n in os.listdir(M) if n != "filler")}
print(json.dumps(out))
"""


@pytest.mark.skipif(limited_fs_problem() is not None, reason=str(limited_fs_problem()))
@pytest.mark.parametrize(
    ("prepare", "message"),
    [("fill()", "no space left on the device"), ("make_readonly()", "is not writable")],
    ids=["full disk", "read-only file system"],
)
def test_every_writer_on_a_full_disk_and_a_read_only_fs(
    tmp_path: Path, inputs: dict[str, Path], prepare: str, message: str
) -> None:
    inputs["points"].write_text(
        "x_mm,y_mm,z_mm\n" + "".join(f"{i % 40},{i // 40},7\n" for i in range(4000))
    )
    code = _CLI_ON_LIMITED_FS.replace("{prepare}", prepare)
    mount = tmp_path / "small"
    code = code.replace("D = sys.argv[-1]", f"D = {str(tmp_path)!r}")
    out = run_limited(code, mount, size="2m")
    assert out["olds_kept"] and out["demo_kept"]
    assert out["listing"] == ["case", "old.csv", "old.mha", "old.nii.gz", "old.nrrd"]
    res = out["res"]
    assert len(res) == 10
    demo_api = res.pop("demo api")
    assert demo_api.startswith(f"{mount}/case: ") and ".tmp" not in demo_api
    for target, (rc, err) in res.items():
        line = _one_line(err)
        assert rc == 2, (target, err)
        assert line.startswith("seedplan ") and f"{target}: " in line, line
        assert ".tmp" not in line, line
        if "case" not in target and prepare == "fill()":
            assert message in line or "could not be read back" in line, line


def test_huge_direction_components_are_a_direction(tmp_path: Path) -> None:
    from planner.files.csv_io import read_seeds_csv

    p = tmp_path / "s.csv"
    p.write_text("x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n0,0,0,0,1e200,1\n1,0,0,3e300,0,4e300\n")
    axes = read_seeds_csv(p).axes  # scaled before normalising: no overflow to inf/nan
    np.testing.assert_allclose(axes, [[0, 1, 0], [0.6, 0, 0.8]], atol=1e-12)


def test_last_guard_before_writing_a_dose() -> None:
    from app.commands.dose_cmd import check_dose_values

    check_dose_values(np.array([0.0, 1.5]), Path("d.csv"), np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"d\.csv: the dose at point 2 \(1, 2, 3\) mm is nan"):
        check_dose_values(np.array([1.0, np.nan]), Path("d.csv"), np.array([[0, 0, 0], [1, 2, 3]]))
    grid = np.ones((2, 3, 4), np.float32)
    grid[1, 2, 3] = -1.0
    with pytest.raises(InputError, match=r"g\.nrrd: the dose at voxel \(z, y, x\) \(1, 2, 3\)"):
        check_dose_values(grid, Path("g.nrrd"))
    grid[1, 2, 3] = np.inf
    with pytest.raises(InputError, match="is inf"):
        check_dose_values(grid, Path("g.nrrd"))
