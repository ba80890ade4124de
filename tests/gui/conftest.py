"""GUI tests: every VTK widget test runs in its own process under the session's X display.

A rendering failure in VTK is a segfault, not an exception, so the tests that open windows
(``tests/gui/inner/test_*.py``) are not collected by the main run: ``test_gui_suite.py`` runs
each of those modules in a child ``pytest`` with ``SEEDPLAN_GUI_INNER=1``. The child inherits
``DISPLAY`` from the one Xvfb that tests/conftest.py started for the session; it never starts
an X server of its own. It is judged by its JUnit XML (and its exit status), and on a timeout
its whole process group is killed. ``QT_QPA_PLATFORM=offscreen`` cannot host a VTK widget, so
it is never used here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.child_process import ChildResult, JUnitSummary, judge_child_pytest, read_junit
from tests.child_process import run_child as _run_child
from tests.conftest import NO_DISPLAY_ENV, REPO_ROOT, skip_or_fail

INNER_ENV = "SEEDPLAN_GUI_INNER"
DEMO_ENV = "SEEDPLAN_GUI_DEMO_CASE"

if os.environ.get(INNER_ENV) != "1":
    collect_ignore_glob = ["inner/*"]


def require_display() -> None:
    """Skip (CI: fail) the test when the session has no X display."""
    if not os.environ.get("DISPLAY"):
        why = os.environ.get(NO_DISPLAY_ENV, "DISPLAY is not set")
        skip_or_fail(f"GUI tests need an X display: {why}")


def display_prefix() -> list[str]:
    """Command prefix giving a child process an X display: none is needed (it inherits the
    session's ``DISPLAY``); skips (CI: fails) when the session has no display."""
    require_display()
    return []


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: this one minus pytest/xdist worker markers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST")) and k != "QT_QPA_PLATFORM"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_child(
    cmd: Sequence[str], *, log_dir: Path, timeout_s: float, env: dict[str, str] | None = None
) -> ChildResult:
    """:func:`tests.child_process.run_child` in the repository with :func:`child_env`."""
    return _run_child(
        cmd, cwd=REPO_ROOT, log_dir=log_dir, timeout_s=timeout_s, env=env or child_env()
    )


__all__ = [
    "DEMO_ENV",
    "INNER_ENV",
    "ChildResult",
    "JUnitSummary",
    "child_env",
    "display_prefix",
    "image_is_not_blank",
    "judge_child_pytest",
    "python_exe",
    "read_junit",
    "require_display",
    "run_child",
]


@pytest.fixture(scope="session")
def demo_ct_path(demo_case_dir: Path) -> Path:
    """The demo case's CT folder (the run's shared demo case: tests/conftest.py)."""
    from planner.demo.case import DEMO_CT_SUBDIR

    ct = demo_case_dir / DEMO_CT_SUBDIR
    assert ct.is_dir(), f"demo case has no CT folder at {ct}"
    return ct


def python_exe() -> str:
    return sys.executable


def image_is_not_blank(rgb: np.ndarray, *, min_std: float = 8.0, min_levels: int = 24) -> bool:
    """True when an RGB image has real content: spread of grey values and many distinct levels."""
    if rgb.size == 0:
        return False
    grey = rgb[..., :3].astype(np.float64).mean(axis=-1)
    return bool(grey.std() >= min_std and np.unique(grey.astype(np.uint8)).size >= min_levels)
