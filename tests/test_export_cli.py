"""``seedplan export``: all kinds, the overwrite rule (ours vs foreign files, --force), bad input
as one line and exit 2, progress and cancel of export_plan."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from app.cli import main
from dose.progress import Cancelled
from planner.export.export import KIND_FILES, MANIFEST, export_plan
from planner.files.safe_write import OutputExistsError
from planner.plan.plan_file import save_plan
from tests.test_export_support import demo_export_plan


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    plan, _ct = demo_export_plan()
    path = tmp_path_factory.mktemp("cli") / "demo.seedplan"
    save_plan(plan, path)
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_export_all_then_again_without_force(plan_file, tmp_path, capsys):
    out_dir = tmp_path / "exports"
    status, out, err = _run(capsys, plan_file, "--out", out_dir)
    assert status == 0, err
    names = [n for files in KIND_FILES.values() for n in files]
    for n in names:
        assert (out_dir / n).is_file() and (out_dir / n).stat().st_size > 0, n
        assert str(out_dir / n) in out
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert {f["name"] for f in manifest["files"]} == set(names)
    # our own unchanged files are replaced without --force
    before = (out_dir / "seeds.csv").stat().st_mtime_ns
    status, _out, err = _run(capsys, plan_file, "--out", out_dir, "--csv")
    assert status == 0, err
    assert (out_dir / "seeds.csv").stat().st_mtime_ns >= before
    # the manifest still lists the files of the first export
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert {f["name"] for f in manifest["files"]} == set(names)


def test_foreign_file_needs_force(plan_file, tmp_path, capsys):
    out_dir = tmp_path / "x"
    out_dir.mkdir()
    (out_dir / "seeds.csv").write_text("someone else's file\n")
    status, out, err = _run(capsys, plan_file, "--out", out_dir, "--csv", "--rtstruct")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--force" in err and "seeds.csv" in err
    assert (out_dir / "seeds.csv").read_text() == "someone else's file\n"
    assert not (out_dir / "RTSTRUCT.dcm").exists()  # refused before anything was written
    status, _out, err = _run(capsys, plan_file, "--out", out_dir, "--csv", "--force")
    assert status == 0, err
    assert (out_dir / "seeds.csv").read_text().startswith("# SeedPlan export")


def test_changed_export_file_needs_force(plan_file, tmp_path, capsys):
    out_dir = tmp_path / "y"
    assert _run(capsys, plan_file, "--out", out_dir, "--csv")[0] == 0
    with open(out_dir / "needles.csv", "a") as fh:
        fh.write("# edited by hand\n")
    status, _out, err = _run(capsys, plan_file, "--out", out_dir, "--csv")
    assert status == 2 and "needles.csv" in err and "--force" in err
    assert (out_dir / "needles.csv").read_text().endswith("# edited by hand\n")


def test_bad_inputs_are_one_line(plan_file, tmp_path, capsys):
    status, _o, err = _run(capsys, tmp_path / "missing.seedplan", "--out", tmp_path / "o")
    assert status == 2 and len(err.strip().splitlines()) == 1
    status, _o, err = _run(capsys, plan_file, "--out", tmp_path / "no" / "such" / "dir")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err
    (tmp_path / "afile").write_text("x")
    status, _o, err = _run(capsys, plan_file, "--out", tmp_path / "afile")
    assert status == 2 and "not a folder" in err
    status, _o, err = _run(capsys, plan_file, "--out", tmp_path / "o2", "--ct", tmp_path)
    assert status == 2 and len(err.strip().splitlines()) == 1


def test_progress_is_monotonic_and_cancel_writes_nothing_half(tmp_path):
    plan, ct = demo_export_plan()
    seen: list[float] = []
    export_plan(
        plan, ct, tmp_path / "p", kinds=["csv", "rtstruct"], progress=lambda f, m: seen.append(f)
    )
    assert seen and seen[-1] == 1.0 and all(b >= a for a, b in itertools.pairwise(seen))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        export_plan(plan, ct, tmp_path / "c", kinds=["csv", "rtstruct", "rtdose"], cancel=cancel)
    leftovers = [p.name for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left behind


def test_rerun_after_a_cancelled_export_replaces_its_own_files(tmp_path):
    """A cancelled (or failed) export records what it wrote in export.json as it goes, so the
    same export re-run into the folder (the GUI's Cancel then Export) is not refused."""
    plan, ct = demo_export_plan()
    out_dir = tmp_path / "again"
    seen: list[float] = []

    def cancel() -> bool:
        return bool(seen) and seen[-1] >= 0.55  # after the CSV files, before RTPLAN

    with pytest.raises(Cancelled):
        export_plan(
            plan,
            ct,
            out_dir,
            kinds=["csv", "rtplan"],
            progress=lambda f, m: seen.append(f),
            cancel=cancel,
        )
    assert not (out_dir / "RTPLAN.dcm").exists()
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert {f["name"] for f in manifest["files"]} == set(KIND_FILES["csv"])
    summary = export_plan(plan, ct, out_dir, kinds=["csv", "rtplan"])
    assert {p.name for _k, p, _s in summary.files} == {*KIND_FILES["csv"], "RTPLAN.dcm"}
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert {f["name"] for f in manifest["files"]} == {*KIND_FILES["csv"], "RTPLAN.dcm"}
    # a hand-edited file is still refused after all this
    with open(out_dir / "seeds.csv", "a") as fh:
        fh.write("# edited\n")
    with pytest.raises(OutputExistsError, match=r"seeds\.csv"):
        export_plan(plan, ct, out_dir, kinds=["csv"])
