"""Child processes that cannot hang or lie: own process group, output to files, JUnit verdict.

A child runs in its own session; when it times out, or when it exits but left a grandchild
behind, the whole process group is killed before the leader is reaped (so the group id cannot
have been reused). A child ``pytest`` is judged by its ``--junitxml`` report and its exit
status, never by words in its output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class ChildResult:
    """What a child process did: exit status (negative: killed by that signal), output."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def tail(self, n: int = 60) -> str:
        out = "\n".join(self.stdout.splitlines()[-n:])
        err = "\n".join(self.stderr.splitlines()[-n // 2 :])
        return f"--- stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{err}"


def run_child(
    cmd: Sequence[str],
    *,
    cwd: Path,
    log_dir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> ChildResult:
    """Run ``cmd`` in its own session (process group) with output to files in ``log_dir``.

    On timeout the whole group is killed (SIGKILL), so no grandchild (a second pytest, a
    render process) outlives the test; ``timed_out`` is then True.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            timed_out = not _wait_unreaped(proc.pid, timeout_s)
        finally:
            # The leader is not reaped yet (a zombie at worst), so its group id cannot have
            # been reused: kill whatever is left in the group, then reap.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    read = lambda p: p.read_text(encoding="utf-8", errors="replace")  # noqa: E731
    return ChildResult(proc.returncode, read(out_path), read(err_path), timed_out)


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait until process ``pid`` exits without reaping it; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        time.sleep(0.05)
    return False


@dataclass
class JUnitSummary:
    """Counts and per-test problems from a pytest ``--junitxml`` file."""

    tests: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.tests - len(self.failures) - len(self.errors) - len(self.skipped)


def read_junit(path: Path) -> JUnitSummary:
    """Parse a JUnit XML report (pytest's xunit2 layout); raises ET.ParseError if broken."""
    root = ET.parse(path).getroot()
    summary = JUnitSummary()
    for case in root.iter("testcase"):
        summary.tests += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for tag, bucket in (
            ("failure", summary.failures),
            ("error", summary.errors),
            ("skipped", summary.skipped),
        ):
            for node in case.findall(tag):
                bucket.append(f"{name}: {(node.get('message') or '').strip()[:300]}")
    return summary


def judge_child_pytest(result: ChildResult, junit: Path, what: str) -> JUnitSummary:
    """Fail unless the child pytest ran tests, all of which passed, and exited 0.

    Skips inside the child skip this test (listing them): they are not counted as passes.
    """
    if result.timed_out:
        pytest.fail(f"{what}: timed out; its process group was killed\n{result.tail()}")
    if not junit.is_file():
        pytest.fail(f"{what}: no JUnit report (exit {result.returncode})\n{result.tail()}")
    try:
        summary = read_junit(junit)
    except ET.ParseError as exc:
        pytest.fail(f"{what}: unreadable JUnit report {junit}: {exc}\n{result.tail()}")
    problems = summary.failures + summary.errors
    if problems:
        listed = "\n".join(problems)
        pytest.fail(f"{what}: {len(problems)} failed\n{listed}\n{result.tail()}", pytrace=False)
    if summary.tests == 0:
        pytest.fail(f"{what}: no tests ran (exit {result.returncode})\n{result.tail()}")
    if result.returncode != 0:
        pytest.fail(
            f"{what}: the JUnit report is clean ({summary.tests} tests) but the process "
            f"exited {result.returncode} (a crash at exit?)\n{result.tail()}"
        )
    if summary.skipped:
        # Under SEEDPLAN_REQUIRE_DATA=1 the child already failed what it may not skip; what is
        # left (what the machine cannot do) is reported as a skip, never counted as a pass.
        pytest.skip(f"{what}: {len(summary.skipped)} skipped: " + "; ".join(summary.skipped))
    return summary
