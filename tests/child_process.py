"""Child processes that cannot hang or lie: own process group, output to files, JUnit verdict.

A child runs in its own session; when it times out, or when it exits but left a grandchild
behind, the whole process group is killed before the leader is reaped (so the group id cannot
have been reused). A child ``pytest`` is judged by its ``--junitxml`` report and its exit
status, never by words in its output.
"""

from __future__ import annotations

import contextlib
import os
import resource
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
    #: CPU seconds (user + system) of the child and the descendants it waited for.
    cpu_s: float = 0.0

    def crash_report(self, n: int = 40) -> str:
        """The start of a fatal-error dump in stderr (faulthandler: signal, the thread's
        frames, innermost first), which :meth:`tail` may cut; "" when there is none."""
        lines = self.stderr.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Fatal Python error"):
                return "\n".join(lines[i : i + n])
        return ""

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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    read = lambda p: p.read_text(encoding="utf-8", errors="replace")  # noqa: E731
    return ChildResult(proc.returncode, read(out_path), read(err_path), timed_out, cpu_s)


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
    #: The module key (``tests/gui/inner/test_x.py``) of every test case, in report order.
    modules: list[str] = field(default_factory=list)
    #: Seconds of the test cases per module key (JUnit ``time``).
    module_seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the child processes that produced the report(s).
    children_cpu_s: float = 0.0

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
        module = _junit_module(case.get("classname", ""))
        summary.modules.append(module)
        seconds = float(case.get("time") or 0.0)
        summary.module_seconds[module] = summary.module_seconds.get(module, 0.0) + seconds
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


def module_key(module: Path, rootdir: Path) -> str:
    """A test module's node-id prefix (``tests/gui/inner/test_x.py``) under ``rootdir``."""
    return module.resolve().relative_to(rootdir.resolve()).as_posix()


def _junit_module(classname: str) -> str:
    """``tests.gui.inner.test_x`` or ``tests.gui.inner.test_x.TestClass`` → the module's key."""
    parts = classname.split(".")
    for n in range(len(parts), 0, -1):
        if parts[n - 1].startswith("test_"):
            return "/".join(parts[:n]) + ".py"
    return classname


def run_pytest_modules(
    modules: Sequence[Path],
    *,
    cmd: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    work_dir: Path,
    timeout_s: float,
    what: str,
) -> JUnitSummary:
    """Run the test ``modules`` in one child pytest (``cmd`` + report options + the modules),
    judged as :func:`judge_child_pytest` judges one, and every module must have run tests.

    A crash (no JUnit report) fails the test it happened in, named from the child's progress
    file (:mod:`tests.progress_plugin`); the modules not reached yet then run in a new child,
    so one crash fails one module, as if each module had its own process (the crashed test is
    never run again). A timeout (``timeout_s`` for all the children together) fails naming the
    test that was running. Each child's logs, reports and base temp stay in ``work_dir/run-N``.
    """
    from tests.progress_plugin import PROGRESS_ENV, read_progress

    remaining = [(module_key(m, cwd), m) for m in modules]
    total = JUnitSummary()
    reached: set[str] = set()
    crashes: list[str] = []
    tails: list[str] = []
    deadline = time.monotonic() + timeout_s
    run = 0
    while remaining:
        run += 1
        run_dir = work_dir / f"run-{run}"
        junit, progress_file = run_dir / "junit.xml", run_dir / "progress.txt"
        argv = [*cmd, "-p", "tests.progress_plugin", f"--basetemp={run_dir / 'tmp'}"]
        argv += [
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            *(str(m) for _, m in remaining),
        ]
        result = run_child(
            argv,
            cwd=cwd,
            log_dir=run_dir / "logs",
            timeout_s=max(1.0, deadline - time.monotonic()),
            env={**env, PROGRESS_ENV: str(progress_file)},
        )
        total.children_cpu_s += result.cpu_s
        progress = read_progress(progress_file)
        started = [*progress.finished, *filter(None, [progress.running])]
        reached.update(nodeid.split("::", 1)[0] for nodeid in started)
        if result.timed_out:
            where = progress.running or f"no test (after {started[-1] if started else 'none'})"
            pytest.fail(
                f"{what}: timed out after {timeout_s:.0f} s in {where}; its process group was "
                f"killed; modules not finished: {', '.join(k for k, _ in remaining)}\n"
                f"{result.tail()}",
                pytrace=False,
            )
        if junit.is_file():
            try:
                summary = read_junit(junit)
            except ET.ParseError as exc:
                pytest.fail(f"{what}: unreadable JUnit report {junit}: {exc}\n{result.tail()}")
            reached.update(summary.modules)
            for key, seconds in summary.module_seconds.items():
                total.module_seconds[key] = total.module_seconds.get(key, 0.0) + seconds
            total.tests += summary.tests
            total.failures += summary.failures
            total.errors += summary.errors
            total.skipped += summary.skipped
            expected = 1 if summary.failures or summary.errors else 0
            if result.returncode != expected:
                crashes.append(
                    f"{what}: the JUnit report is written ({summary.tests} tests) but the "
                    f"process exited {result.returncode} (a crash at exit?)"
                )
                tails.append(result.tail())
            elif expected:
                tails.append(result.tail())
            break
        # No report: the child died. Count what it finished, name where it died, go on.
        total.tests += len(started)
        total.failures += progress.failed
        total.skipped += progress.skipped
        where = (
            f"in {progress.running} ({progress.running_after or 'setup'})"
            if progress.running
            else f"outside any test (after {started[-1] if started else 'none started'})"
        )
        crashes.append(f"{what}: the child crashed (exit {result.returncode}) {where}")
        tails.append(f"{result.crash_report()}\n{result.tail()}")
        done = [i for i, (key, _) in enumerate(remaining) if key in reached]
        if not done:  # died at start-up or collection: a new child would get no further
            break
        remaining = remaining[max(done) + 1 :]
    problems = [*total.failures, *total.errors, *crashes]
    keys = [module_key(m, cwd) for m in modules]
    problems += [f"{what}: no tests ran in {key}" for key in keys if key not in reached]
    if problems:
        listed = "\n".join(problems)
        pytest.fail(
            f"{what}: {len(problems)} problems\n{listed}\n" + "\n".join(tails), pytrace=False
        )
    if total.skipped:
        pytest.skip(f"{what}: {len(total.skipped)} skipped: " + "; ".join(total.skipped))
    return total
