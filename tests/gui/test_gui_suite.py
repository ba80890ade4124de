"""Runs the window tests (tests/gui/inner) in child processes, and the ``gui --screenshot`` CLI.

See tests/gui/conftest.py for why VTK windows live in child processes. The window modules run
a few per child (balanced batches: each child pays the imports and the first window once); a
crash still fails only the test it happened in, and the batch's later modules go on in a new
child.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.child_process import run_pytest_modules
from tests.conftest import REPO_ROOT
from tests.gui.conftest import (
    DEMO_ENV,
    INNER_ENV,
    ChildResult,
    child_env,
    display_prefix,
    image_is_not_blank,
    python_exe,
    require_display,
    run_child,
)

#: Seconds each window module's tests took in a batch child (JUnit, 2026-12-02, a loaded 2-core
#: machine): only their ratios matter, for balancing the batches. A module missing here (a new
#: one) counts :data:`NEW_MODULE_S`.
MODULE_SECONDS = {
    "test_postop_gui": 136,
    "test_needles_gui": 108,
    "test_plan_contouring": 86,
    "test_isodoses_gui": 75,
    "test_postop_registration_gui": 55,
    "test_postop_launch_gui": 25,
    "test_layout_gui": 54,
    "test_tools_levels_fill_robustness_gui": 30,
    "test_workflow_dialogs_gui": 27,
    "test_header_and_overlays": 21,
    "test_dialogs_and_lifecycle": 20,
    "test_views": 14,
    "test_render_views": 11,
    "test_positions": 11,
    "test_pyside_refcounts": 6,
    "test_brush_render": 6,
    "test_oblique_geometry": 6,
}
NEW_MODULE_S = 40
#: Modules that start their child, before any other module of the batch: the layout tests time
#: Qt's dock layout, which went wrong (Reset layout left the metrics dock 6 rows high) when
#: test_plan_contouring had run before them in the same child (its ITK load on a worker thread
#: holds the GIL for seconds while the layout's timed re-fits are due).
FIRST_IN_CHILD = ("test_layout_gui",)
#: Child pytests for the window modules: each pays the imports (PySide6, VTK, numba, SciPy)
#: and its first window once, whatever number of modules it runs; two per xdist worker.
WINDOW_CHILDREN = 4
#: Only for a hang: one module takes well under a minute on an idle 2-core machine.
CHILD_TIMEOUT_S = 420
#: The same, per further module in one child.
MODULE_TIMEOUT_S = 180


def window_batches(
    modules: Sequence[Path], n_batches: int, seconds: Mapping[str, float] = MODULE_SECONDS
) -> list[tuple[Path, ...]]:
    """Modules grouped into ``n_batches`` children of about equal total time (longest first),
    the batches longest first, each batch's modules longest first (those of
    :data:`FIRST_IN_CHILD` before all).

    Deterministic (every xdist worker collects the same list); every module in one batch.
    """
    weight = lambda p: seconds.get(p.stem, NEW_MODULE_S)  # noqa: E731
    ordered = sorted(modules, key=lambda p: (-weight(p), p.stem))
    batches: list[list[Path]] = [[] for _ in range(max(1, min(n_batches, len(ordered))))]
    for module in ordered:  # longest processing time first, onto the lightest batch
        min(batches, key=lambda b: (sum(map(weight, b)), len(b))).append(module)
    batches.sort(key=lambda b: -sum(map(weight, b)))
    for b in batches:
        b.sort(key=lambda p: p.stem not in FIRST_IN_CHILD)  # stable: otherwise longest first
    return [tuple(b) for b in batches if b]


INNER_MODULES = sorted((Path(__file__).parent / "inner").glob("test_*.py"))
WINDOW_BATCHES = window_batches(INNER_MODULES, WINDOW_CHILDREN)


def _batch_id(batch: tuple[Path, ...]) -> str:
    return "+".join(p.stem.removeprefix("test_") for p in batch)


@pytest.mark.gui
@pytest.mark.parametrize("batch", WINDOW_BATCHES, ids=_batch_id)
def test_window_modules(
    batch: tuple[Path, ...],
    demo_ct_path: Path,
    tmp_path: Path,
) -> None:
    """The inner modules of one batch pass in one child pytest, judged by its JUnit report:
    every module ran tests, none failed or was skipped.

    A VTK crash fails the test it happened in (named from the child's progress file) and the
    batch's later modules run on in a new child (tests.child_process.run_pytest_modules).
    """
    require_display()
    cmd = [python_exe(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    summary = run_pytest_modules(
        batch,
        cmd=cmd,
        cwd=REPO_ROOT,
        env=child_env(**{INNER_ENV: "1", DEMO_ENV: str(demo_ct_path)}),
        work_dir=tmp_path,
        timeout_s=CHILD_TIMEOUT_S + MODULE_TIMEOUT_S * (len(batch) - 1),
        what=f"GUI tests in {', '.join(p.name for p in batch)}",
    )
    assert summary.passed == summary.tests >= len(batch)
    # What to rebalance MODULE_SECONDS with (the child's JUnit times and CPU seconds).
    timings = {Path(k).stem: round(v, 1) for k, v in summary.module_seconds.items()}
    timings["children_cpu_s"] = round(summary.children_cpu_s, 1)
    (tmp_path / "timings.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")


def test_every_window_module_is_in_one_batch() -> None:
    """New modules join a batch by themselves; none is run twice or left out."""
    batched = [p for batch in WINDOW_BATCHES for p in batch]
    assert sorted(batched) == INNER_MODULES and len(INNER_MODULES) >= 15
    new = [*INNER_MODULES, Path("tests/gui/inner/test_brand_new.py")]
    batches = window_batches(new, WINDOW_CHILDREN)
    assert sorted(p for b in batches for p in b) == sorted(new)
    assert len(batches) == len(WINDOW_BATCHES) == WINDOW_CHILDREN
    totals = [sum(MODULE_SECONDS.get(p.stem, NEW_MODULE_S) for p in b) for b in batches]
    assert totals == sorted(totals, reverse=True)
    assert max(totals) - min(totals) <= max(MODULE_SECONDS.values())


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


def _run_gui(
    args: Sequence[str], out: Path, *, with_display: bool = True, timeout_s: float = CHILD_TIMEOUT_S
) -> ChildResult:
    """``python -m app gui ARGS`` in a child process on the session display."""
    prefix = display_prefix() if with_display else []
    result = run_child(
        [*prefix, python_exe(), "-m", "app", "gui", *args],
        log_dir=out.parent / f"logs-{out.stem}",
        timeout_s=timeout_s,
    )
    assert not result.timed_out, (
        f"gui {' '.join(args)} timed out after {timeout_s} s\n{result.tail()}"
    )
    return result


@pytest.mark.gui
def test_gui_postop_screenshot_cli(demo_case_dir: Path, tmp_path: Path) -> None:
    """``seedplan gui PLAN --postop POSTOP_CT --screenshot out.png --size 1400x900``: the post-op
    window verifies the demo plan's day-0 CT and saves itself: the slice view (left) shows
    the CT, the comparison (right) is filled."""
    out = tmp_path / "postop.png"
    plan = demo_case_dir / "plan.seedplan"
    args = [str(plan), "--postop", str(demo_case_dir / "postop"), "--screenshot", str(out)]
    proc = _run_gui([*args, "--size", "1400x900"], out)
    assert proc.returncode == 0, proc.tail()
    rgb = _read_png_rgb(out)
    h, w, _ = rgb.shape
    assert w >= 1400 and w * 900 == h * 1400, (w, h)
    view = rgb[int(0.15 * h) : int(0.9 * h), : int(0.45 * w)]
    table = rgb[int(0.2 * h) : int(0.9 * h), int(0.5 * w) :]
    assert image_is_not_blank(view) and image_is_not_blank(table)


@pytest.mark.gui
@pytest.mark.parametrize("case", ["missing", "empty"])
def test_gui_postop_bad_input_exits_2(case: str, tmp_path: Path) -> None:
    """A missing or unreadable post-op CT: one line naming it, exit status 2, no PNG, no
    traceback (no plan to verify: tests/gui/inner/test_postop_launch_gui.py)."""
    out = tmp_path / "shot.png"
    postop = tmp_path / ("no-such-ct" if case == "missing" else "empty-folder")
    if case == "empty":
        postop.mkdir()
    args = ["--postop", str(postop), "--screenshot", str(out)]
    proc = _run_gui(args, out, with_display=case == "empty", timeout_s=CHILD_TIMEOUT_S)
    assert proc.returncode == 2, proc.tail()
    assert "Traceback" not in proc.stderr and not out.exists()
    assert any(str(postop) in line for line in proc.stderr.strip().splitlines()), proc.stderr
