"""The test harness itself: one private Xvfb per session, and CI's "no skips" rule
(``SEEDPLAN_REQUIRE_DATA=1``) turning a missing data set, tool or display into a failure.

The rule is checked on small generated tests run by a child ``pytest`` that loads
tests/conftest.py as a plugin, judged by the child's JUnit report.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.child_process import ChildResult, judge_child_pytest, run_child
from tests.conftest import DISPLAY_ENV, REPO_ROOT, REQUIRE_ENV, skip_or_fail
from tests.xserver import start_xvfb

#: Tests run in the child: one per way a resource can be missing.
CHILD_TESTS = """
import pytest

from tests.conftest import require_tool, shared_data
from tests.gui.conftest import require_display


def test_data():
    shared_data("no-such-data-set")


def test_tool():
    require_tool("no-such-tool-seedplan", "no-such-package")


def test_own_skip():
    pytest.skip("dciodvfy not installed (Debian package dicom3tools)")


def test_machine_skip():
    pytest.skip("root bypasses folder permissions")


def test_display():
    require_display()


@pytest.mark.xfail(reason="an expected failure stays an xfail", strict=True)
def test_xfail():
    raise AssertionError


def test_passes():
    pass
"""
COLLECT_SKIP = """
import pytest

pytest.importorskip("no_such_module_seedplan")
"""


def _child_pytest(tmp: Path, *, required: bool) -> tuple[dict[str, str], ChildResult]:
    """Run the child tests (no display, no data) in a child pytest that loads tests/conftest.py
    as a plugin; test name -> "outcome: message" from its JUnit report."""
    folder = tmp / "child_tests"
    folder.mkdir()
    (folder / "test_missing.py").write_text(CHILD_TESTS, encoding="utf-8")
    (folder / "test_collect_skip.py").write_text(COLLECT_SKIP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("DISPLAY", None)
    env.pop(REQUIRE_ENV, None)
    env[DISPLAY_ENV] = "inherit"
    env["SEEDPLAN_SHARED_DATA"] = str(tmp / "no-data-here")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if required:
        env[REQUIRE_ENV] = "1"
    junit = tmp / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    cmd += ["-p", "tests.conftest", f"--rootdir={folder}", f"--basetemp={tmp / 'base'}"]
    cmd += ["--continue-on-collection-errors", "-o", "junit_family=xunit2"]
    cmd += [f"--junitxml={junit}", str(folder)]
    result = run_child(cmd, cwd=tmp, log_dir=tmp / "logs", timeout_s=120, env=env)
    assert not result.timed_out and junit.is_file(), result.tail()
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name") or case.get("classname", "")
        found = [c for c in case if c.tag in ("failure", "error", "skipped")]
        outcome = found[0].tag if found else "passed"
        if outcome == "skipped" and "xfail" in (found[0].get("type") or ""):
            outcome = "xfail"
        message = " ".join((c.get("message") or "") for c in found)
        outcomes[name] = f"{outcome}: {message}".strip(": ")
    return outcomes, result


def test_missing_resources_skip_for_a_user(tmp_path: Path) -> None:
    outcomes, result = _child_pytest(tmp_path, required=False)
    assert outcomes["test_data"].startswith("skipped") and "not found" in outcomes["test_data"]
    assert outcomes["test_tool"].startswith("skipped: no-such-tool-seedplan not installed")
    assert outcomes["test_own_skip"].startswith("skipped")
    assert outcomes["test_machine_skip"].startswith("skipped")
    assert (
        outcomes["test_display"].startswith("skipped") and "X display" in outcomes["test_display"]
    )
    assert outcomes["test_xfail"].startswith("xfail")
    assert outcomes["test_passes"] == "passed"
    assert result.returncode == 0, result.tail()


def test_missing_resources_fail_in_ci(tmp_path: Path) -> None:
    """Under ``SEEDPLAN_REQUIRE_DATA=1`` a skip for a missing data set, tool, package or display
    fails, at collection too; a skip about what the machine can do and an xfail stay."""
    outcomes, result = _child_pytest(tmp_path, required=True)
    for name in ("test_data", "test_tool", "test_own_skip", "test_display"):
        assert outcomes[name].startswith(("failure", "error")), (name, outcomes[name])
    assert "not found" in outcomes["test_data"] and "X display" in outcomes["test_display"]
    assert outcomes["test_machine_skip"].startswith("skipped")
    assert outcomes["test_xfail"].startswith("xfail")
    assert outcomes["test_passes"] == "passed"
    assert result.returncode == 1, result.tail()
    assert "test_collect_skip.py" in result.stdout and "forbids" in result.stdout, result.tail()


def _x_socket(display: str) -> Path:
    return Path("/tmp/.X11-unix") / f"X{display.lstrip(':')}"


def _accepts_connections(display: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(_x_socket(display)))
        except OSError:
            return False
    return True


def test_private_xvfb_servers_get_distinct_displays_and_stop(tmp_path: Path) -> None:
    """Two servers started together never collide (``-displayfd``): each reports its own
    display, accepts connections on its Unix socket at once, and is gone after ``stop``."""
    if shutil.which("Xvfb") is None:
        skip_or_fail("Xvfb not installed (Debian package xvfb)")
    first = start_xvfb(tmp_path / "a")
    try:
        second = start_xvfb(tmp_path / "b")
        try:
            assert first.display != second.display
            assert _accepts_connections(first.display) and _accepts_connections(second.display)
        finally:
            second.stop()
        assert second.process.poll() is not None
        assert _accepts_connections(first.display)  # the other one is untouched
    finally:
        first.stop()
    assert first.process.poll() is not None
    assert not _accepts_connections(first.display)


def test_session_display_is_the_private_xvfb() -> None:
    """This session runs on an X display that it (or its parent session) made: the workers and
    children were told to inherit it, and it accepts connections."""
    display = os.environ.get("DISPLAY")
    if not display:
        skip_or_fail(
            "no X display for this session: "
            + os.environ.get("SEEDPLAN_TEST_NO_DISPLAY_REASON", "DISPLAY is not set")
        )
    assert os.environ.get(DISPLAY_ENV) == "inherit"
    assert _accepts_connections(display), f"nothing listens on {_x_socket(display)}"


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped by init, does not count)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _dies_soon(pid: int, within_s: float = 10.0) -> bool:
    """SIGKILL is delivered when the process next runs: give it a moment to be gone."""
    deadline = time.monotonic() + within_s
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("leader", ["hangs", "exits"])
def test_child_process_group_is_killed(tmp_path: Path, leader: str) -> None:
    """A grandchild never outlives :func:`run_child`: on timeout the group is killed, and a
    grandchild left behind by a leader that exited is killed too."""
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > '{pid_file}'; " + ("wait" if leader == "hangs" else "exit 0")
    result = run_child(
        ["bash", "-c", script], cwd=tmp_path, log_dir=tmp_path / "logs", timeout_s=3.0, env=None
    )
    assert result.timed_out is (leader == "hangs")
    assert result.returncode == (-9 if leader == "hangs" else 0)
    grandchild = int(pid_file.read_text())
    assert _dies_soon(grandchild), f"grandchild {grandchild} survived"


def _junit(path: Path, cases: str) -> Path:
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite>{cases}</testsuite></testsuites>')
    return path


PASS = '<testcase classname="m" name="ok"/>'
FAIL = '<testcase classname="m" name="bad"><failure message="boom"/></testcase>'
ERROR = '<testcase classname="m" name="e"><error message="setup"/></testcase>'
SKIP = '<testcase classname="m" name="s"><skipped message="why"/></testcase>'


@pytest.mark.parametrize(
    ("cases", "returncode", "verdict"),
    [
        (PASS + PASS, 0, "pass"),
        (
            PASS + '<testcase classname="m" name="bad"><failure message="boom"/></testcase>',
            1,
            "fail",
        ),
        (PASS + '<testcase classname="m" name="e"><error message="setup"/></testcase>', 1, "fail"),
        ("", 5, "fail"),  # no tests ran
        (PASS, -11, "fail"),  # clean report, but a crash at exit
        (PASS + SKIP, 0, "skip"),
        (None, -11, "fail"),  # crashed before writing its report
    ],
    ids=["passed", "failure", "error", "none-ran", "crash-at-exit", "skipped", "no-report"],
)
def test_child_pytest_is_judged_by_its_junit_report(
    tmp_path: Path, cases: str | None, returncode: int, verdict: str
) -> None:
    junit = tmp_path / "junit.xml"
    if cases is not None:
        _junit(junit, cases)
    # The output claims success whatever happened: it must not matter.
    result = ChildResult(returncode, "2 passed in 1.0s\n", "")
    if verdict == "pass":
        assert judge_child_pytest(result, junit, "child").passed == 2
        return
    expected = pytest.skip.Exception if verdict == "skip" else pytest.fail.Exception
    with pytest.raises(expected):
        judge_child_pytest(result, junit, "child")
