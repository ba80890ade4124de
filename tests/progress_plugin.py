"""A pytest plugin for child processes: one line per test phase, written as it happens.

A child pytest that dies (a VTK segfault, a kill on timeout) writes no JUnit report, so the
parent could not tell which test it was running. With ``-p tests.progress_plugin`` and
``SEEDPLAN_PROGRESS_FILE=PATH`` the child appends to ``PATH``::

    start<TAB>NODEID                  before a test's set-up
    <outcome><TAB><when><TAB>NODEID   after each phase (outcome: passed/failed/skipped)
    end<TAB>NODEID                    after its tear-down

Each line is one ``write()`` to a file opened with ``O_APPEND``: the kernel has it once the
call returns, whatever happens to the process next. :func:`read_progress` parses the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROGRESS_ENV = "SEEDPLAN_PROGRESS_FILE"


def _write(line: str) -> None:
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write(f"start\t{nodeid}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _write(f"{report.outcome}\t{report.when}\t{report.nodeid}")


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write(f"end\t{nodeid}")


@dataclass
class Progress:
    """What a child reported: tests finished (node ids, in order) and the one it was in."""

    finished: list[str] = field(default_factory=list)
    #: "NODEID (phase)" of every phase that failed, and of every test skipped.
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: The test started but not finished (set-up, call or tear-down): where a crash happened.
    running: str | None = None
    #: The phase of ``running`` last reported as done ("" when none finished yet).
    running_after: str = ""


def read_progress(path: Path) -> Progress:
    """Parse a progress file (missing file: nothing ran)."""
    progress = Progress()
    if not path.is_file():
        return progress
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if parts[0] == "start" and len(parts) == 2:
            progress.running, progress.running_after = parts[1], ""
        elif parts[0] == "end" and len(parts) == 2:
            progress.finished.append(parts[1])
            progress.running, progress.running_after = None, ""
        elif len(parts) == 3:
            outcome, when, nodeid = parts
            if outcome == "failed":
                progress.failed.append(f"{nodeid} ({when})")
            elif outcome == "skipped":
                progress.skipped.append(f"{nodeid} ({when})")
            if nodeid == progress.running:
                progress.running_after = f"{when} {outcome}"
    return progress
