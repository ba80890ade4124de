"""``seedplan bench --only``: the module filter and its refusal of an unknown name."""

from __future__ import annotations

import pytest

from app.cli import main
from app.commands import bench_cmd


def test_module_names_are_the_benchmark_modules() -> None:
    names = bench_cmd.module_names()
    assert len(names) == len(bench_cmd.BENCH_MODULES) == len(set(names))
    assert "brush" in names and "drag" in names and "live_dose" in names


def test_only_selects_the_named_modules_in_run_order() -> None:
    assert bench_cmd.selected_modules(["drag", "brush"]) == [
        "benchmarks.bench_brush",
        "benchmarks.bench_drag",
    ]
    assert bench_cmd.selected_modules(None) == list(bench_cmd.BENCH_MODULES)


def test_unknown_name_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--only", "nonsense"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any("nonsense" in line and "brush" in line for line in err)
