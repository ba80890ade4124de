"""Runs the window tests (tests/gui/inner) in child processes, and the ``gui --screenshot`` CLI.

See tests/gui/conftest.py for why every VTK window lives in its own process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gui.conftest import (
    DEMO_ENV,
    INNER_ENV,
    ChildResult,
    child_env,
    display_prefix,
    image_is_not_blank,
    judge_child_pytest,
    python_exe,
    require_display,
    run_child,
)

#: The slowest window modules (measured in CI, 2026-12-02), started first so that no long
#: module is left running alone at the end of the suite on one of the two workers.
SLOWEST_FIRST = (
    "test_isodoses_gui",
    "test_dialogs_and_lifecycle",
    "test_layout_gui",
    "test_needles_gui",
    "test_plan_contouring",
    "test_postop_gui",
    "test_workflow_dialogs_gui",
    "test_postop_registration_gui",
    "test_tools_levels_fill_robustness_gui",
)
INNER_MODULES = sorted(
    (Path(__file__).parent / "inner").glob("test_*.py"),
    key=lambda p: (
        SLOWEST_FIRST.index(p.stem) if p.stem in SLOWEST_FIRST else len(SLOWEST_FIRST),
        p.stem,
    ),
)
#: Only for a hang: a module takes well under a minute on an idle 2-core machine.
CHILD_TIMEOUT_S = 420


@pytest.mark.gui
@pytest.mark.parametrize("module", INNER_MODULES, ids=lambda p: p.stem)
def test_window_module(module: Path, demo_ct_path: Path, tmp_path: Path) -> None:
    """Each inner module passes in its own process (a VTK crash fails only that module).

    The child is judged by its JUnit XML: it must have run tests, none failed or skipped.
    """
    require_display()
    junit = tmp_path / "child-junit.xml"
    cmd = [
        python_exe(),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        f"--basetemp={tmp_path / 'child'}",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit2",
        str(module),
    ]
    result = run_child(
        cmd,
        log_dir=tmp_path / "logs",
        timeout_s=CHILD_TIMEOUT_S,
        env=child_env(**{INNER_ENV: "1", DEMO_ENV: str(demo_ct_path)}),
    )
    summary = judge_child_pytest(result, junit, f"GUI tests in {module.name}")
    assert summary.passed == summary.tests > 0


def _read_png_rgb(path: Path) -> np.ndarray:
    """PNG → (h, w, 3) uint8 with QImage (no QApplication needed for decoding)."""
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable PNG"
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def _run_gui_screenshot(
    path: Path, out: Path, *, with_display: bool = True, timeout_s: float = CHILD_TIMEOUT_S
) -> ChildResult:
    """``python -m app gui PATH --screenshot OUT`` in a child process on the session display
    (``with_display=False``: the display is not required, e.g. when the path is refused first).
    """
    prefix = display_prefix() if with_display else []
    result = run_child(
        [*prefix, python_exe(), "-m", "app", "gui", str(path), "--screenshot", str(out)],
        log_dir=out.parent / f"logs-{out.stem}",
        timeout_s=timeout_s,
    )
    assert not result.timed_out, f"gui --screenshot timed out after {timeout_s} s\n{result.tail()}"
    return result


@pytest.mark.gui
def test_gui_screenshot_cli(demo_ct_path: Path, tmp_path: Path) -> None:
    """``seedplan gui PATH --screenshot out.png`` exits 0 and writes a non-blank PNG."""
    out = tmp_path / "shot.png"
    proc = _run_gui_screenshot(demo_ct_path, out)
    assert proc.returncode == 0, proc.tail()
    rgb = _read_png_rgb(out)
    h, w, _ = rgb.shape
    # The --screenshot default window is 1280×800 logical pixels (app/gui_main.py); a HiDPI
    # display multiplies both.
    assert w >= 1280 and w * 800 == h * 1280, (w, h)
    # The four views fill the area under the header; each quadrant must show an image.
    body = rgb[int(0.12 * h) : int(0.95 * h)]
    bh, bw = body.shape[:2]
    for name, quad in {
        "axial": body[: bh // 2, : bw // 2],
        "sagittal": body[: bh // 2, bw // 2 :],
        "coronal": body[bh // 2 :, : bw // 2],
        "3d": body[bh // 2 :, bw // 2 :],
    }.items():
        assert image_is_not_blank(quad), f"{name} quadrant of the screenshot is blank"


@pytest.mark.gui
def test_gui_screenshot_bad_path_exits_2(tmp_path: Path) -> None:
    """A missing PATH gives one line on stderr naming it, exit status 2, no PNG, no traceback."""
    missing = tmp_path / "no-such-ct"
    out = tmp_path / "shot.png"
    proc = _run_gui_screenshot(missing, out, with_display=False, timeout_s=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], proc.stderr
    assert not out.exists()


@pytest.mark.gui
def test_gui_screenshot_broken_file_exits_2(tmp_path: Path) -> None:
    """A file that is not a CT image: the window reports it, the command exits 2 (no crash)."""
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file\n" * 10)
    out = tmp_path / "shot.png"
    proc = _run_gui_screenshot(broken, out)
    assert proc.returncode == 2, proc.stderr
    assert "broken.nii.gz" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
