"""Several test modules in one child pytest (tests.child_process.run_pytest_modules): a crash
fails the test it happened in, by name, and the later modules still run in a new child."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import child_process
from tests.child_process import ChildResult, read_junit, run_pytest_modules
from tests.conftest import REPO_ROOT
from tests.progress_plugin import PROGRESS_ENV, read_progress

PASSING = """
def test_one():
    pass


def test_two():
    pass
"""
CRASHING = """
import os
import signal


def test_before():
    pass


def test_crashes():
    os.kill(os.getpid(), signal.SIGSEGV)


def test_after():
    pass
"""
FAILING = """
def test_fails():
    assert 1 == 2, "one is not two"
"""


def _modules(tmp: Path, **sources: str) -> list[Path]:
    folder = tmp / "mods"
    folder.mkdir()
    paths = []
    for name, text in sources.items():
        path = folder / f"test_{name}.py"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _run(tmp: Path, modules: list[Path], timeout_s: float = 120) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    cmd += [f"--rootdir={tmp}", "-c", os.devnull]
    return run_pytest_modules(
        modules, cmd=cmd, cwd=tmp, env=env, work_dir=tmp / "work", timeout_s=timeout_s, what="batch"
    ).tests


def test_one_child_runs_every_module_and_each_must_have_tests(tmp_path: Path) -> None:
    modules = _modules(tmp_path, a=PASSING, b=PASSING, empty="X = 1\n")
    with pytest.raises(
        pytest.fail.Exception, match=r"1 problems\n.*no tests ran in mods/test_empty\.py"
    ):
        _run(tmp_path, modules)
    assert read_junit(tmp_path / "work" / "run-1" / "junit.xml").modules == [
        "mods/test_a.py",
        "mods/test_a.py",
        "mods/test_b.py",
        "mods/test_b.py",
    ]
    assert not (tmp_path / "work" / "run-2").exists()  # one child for the three modules
    clean = tmp_path / "clean"
    clean.mkdir()
    assert _run(clean, _modules(clean, a=PASSING, b=PASSING)) == 4


def test_a_crash_names_its_test_and_the_later_modules_still_run(tmp_path: Path) -> None:
    modules = _modules(tmp_path, a=PASSING, crash=CRASHING, fail=FAILING, z=PASSING)
    with pytest.raises(pytest.fail.Exception) as info:
        _run(tmp_path, modules)
    message = str(info.value)
    assert "crashed (exit -11) in mods/test_crash.py::test_crashes (setup passed)" in message
    assert "mods/test_fail.py::test_fails" in message  # the next module ran, in a new child
    # The crashed test is not run again; the modules after the crash ran in the second child.
    first = read_progress(tmp_path / "work" / "run-1" / "progress.txt")
    assert first.finished == [
        "mods/test_a.py::test_one",
        "mods/test_a.py::test_two",
        "mods/test_crash.py::test_before",
    ]
    assert first.running == "mods/test_crash.py::test_crashes"
    second = read_progress(tmp_path / "work" / "run-2" / "progress.txt")
    assert second.finished == [
        "mods/test_fail.py::test_fails",
        "mods/test_z.py::test_one",
        "mods/test_z.py::test_two",
    ]
    assert "test_after" not in message and not (tmp_path / "work" / "run-3").exists()


def test_a_hang_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a timeout (run_child killed the group) the failure names the test that hung."""
    modules = _modules(tmp_path, a=PASSING, hang=PASSING)

    def hung_child(argv, *, cwd, log_dir, timeout_s, env):  # what a killed child leaves
        progress = Path(env[PROGRESS_ENV])
        progress.parent.mkdir(parents=True, exist_ok=True)
        progress.write_text(
            "start\tmods/test_a.py::test_one\nend\tmods/test_a.py::test_one\n"
            "start\tmods/test_hang.py::test_one\npassed\tsetup\t"
            "mods/test_hang.py::test_one\n"
        )
        return ChildResult(-9, "", "", timed_out=True)

    monkeypatch.setattr(child_process, "run_child", hung_child)
    with pytest.raises(pytest.fail.Exception, match=r"timed out .* in mods/test_hang.py::test_one"):
        _run(tmp_path, modules, timeout_s=5)
