"""Shared fixtures and the session set-up that keeps the suite from flaking.

- **One X display for the whole run.** The main pytest process starts one private Xvfb
  (tests/xserver.py) before any xdist worker exists and exports ``DISPLAY``; workers and the
  GUI child processes inherit it (``SEEDPLAN_TEST_DISPLAY=inherit`` tells them not to start
  their own). Set ``SEEDPLAN_TEST_DISPLAY=inherit`` yourself to use the display you have.
- **Real data and tools.** Real data lives in ../shared/data (or ``$SEEDPLAN_SHARED_DATA``);
  a test that needs it, a tool (dciodvfy) or a display skips with a clear reason on a user's
  machine. With ``SEEDPLAN_REQUIRE_DATA=1`` (set by .ci/run) such a test fails instead: use
  :func:`shared_data`, :func:`require_tool` or ``tests.gui.conftest.require_display``; a plain
  ``pytest.skip`` (or ``importorskip``) whose reason says "not installed", "could not import",
  "test data not found" or "X display" fails too. Skips about what the machine can do (root,
  mount namespaces, devices) stay skips.
- **Warm caches before the workers start.** Under xdist the main process first fills numba's
  disk cache (the dose kernels, ~30 s of CPU when cold) and writes the GUI tests' demo case
  (``<basetemp>/gui-demo-cache``), the two side by side; otherwise every process that needs a
  kernel before the cache is written compiles it again (each GUI child and worker, ~30 s each
  on a fresh clone) and a worker waits idle on the demo case's lock. Only a speed-up: a
  failure is reported in the header and the tests do the work themselves. Off with
  ``SEEDPLAN_TEST_PREWARM=0``.
- **Per-test state.** Each test gets its own ``XDG_CONFIG_HOME`` (settings, recent files).
  ``XDG_CACHE_HOME`` is the run's one cache folder (:func:`run_cache_dir`), shared by every
  worker: its content, the demo case, is written before the workers start, is deterministic and
  is written atomically, so it is made once per run, not once per worker (each was ~25 s). A
  test must not change what is in it; one that needs a cache of its own sets the variable to a
  folder of its own. :func:`shared_demo_case` (fixture ``demo_case_dir``) is the demo case.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.xserver import XServer, XServerError, start_xvfb

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SEEDPLAN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

#: ``1``: a missing data set, tool or display fails the test instead of skipping it (CI).
REQUIRE_ENV = "SEEDPLAN_REQUIRE_DATA"
#: ``inherit``: use the current ``DISPLAY``; otherwise the session starts its own Xvfb.
DISPLAY_ENV = "SEEDPLAN_TEST_DISPLAY"
#: Why there is no display, when there is none (read by tests/gui/conftest.py).
NO_DISPLAY_ENV = "SEEDPLAN_TEST_NO_DISPLAY_REASON"
#: ``0``: do not warm the caches before the xdist workers start.
PREWARM_ENV = "SEEDPLAN_TEST_PREWARM"
#: The GUI tests' demo case cache, under the main process's base temp folder.
GUI_DEMO_CACHE = "gui-demo-cache"
PREWARM_TIMEOUT_S = 600

_XSERVER = pytest.StashKey[XServer]()
_PREWARM = pytest.StashKey[str]()
#: Skip reasons that mean a tool, package, data set or display is missing (failures in CI).
MISSING_RESOURCE = re.compile(
    r"not installed|could not import|test data not found|X display", re.IGNORECASE
)


def everything_required() -> bool:
    """True under ``SEEDPLAN_REQUIRE_DATA=1`` (CI): skipping for a missing resource fails."""
    return os.environ.get(REQUIRE_ENV) == "1"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` on a user's machine; fail with it in CI (``SEEDPLAN_REQUIRE_DATA``)."""
    if everything_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: required here)", pytrace=False)
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """Path into ../shared/data; skips the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        skip_or_fail(
            f"real test data not found at {path} (expected ../shared/data beside the repo "
            "or SEEDPLAN_SHARED_DATA)"
        )
    return path


def require_tool(name: str, package: str) -> str:
    """Absolute path of the command-line tool ``name``; skips (CI: fails) when missing."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} not installed (Debian package {package})")
    assert path is not None
    return path


# ----------------------------------------------------------------------------------------------
# Session hooks
# ----------------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    """Main process only: start the session's Xvfb before xdist starts its workers."""
    if hasattr(config, "workerinput") or os.environ.get(DISPLAY_ENV) == "inherit":
        return
    # Not under --basetemp: pytest empties that folder when it first hands out a tmp_path.
    try:
        server = start_xvfb(Path(tempfile.gettempdir()) / f"seedplan-xvfb-{os.getpid()}")
    except XServerError as exc:
        os.environ.pop("DISPLAY", None)
        os.environ[NO_DISPLAY_ENV] = str(exc)
    else:
        config.stash[_XSERVER] = server
        os.environ["DISPLAY"] = server.display
        os.environ.pop("WAYLAND_DISPLAY", None)  # Qt must use the X display we made
    os.environ[DISPLAY_ENV] = "inherit"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Every process: the run's cache folder. xdist's main process, before it starts the
    workers: warm the caches they share."""
    config = session.config
    # The whole process (module- and session-scoped fixtures included, which run before the
    # per-test fixtures) uses the run's cache, never the user's ~/.cache.
    os.environ["XDG_CACHE_HOME"] = str(run_cache_dir(config._tmp_path_factory))
    if hasattr(config, "workerinput") or os.environ.get(PREWARM_ENV) == "0":
        return
    if config.getoption("numprocesses", None) and not config.getoption("collectonly"):
        config.stash[_PREWARM] = _prewarm(config._tmp_path_factory.getbasetemp())


def _prewarm(basetemp: Path) -> str:
    """Fill numba's kernel cache and write the GUI demo case, in two child processes at once;
    returns one line for the report header."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    demo_env = {**env, "XDG_CACHE_HOME": str(basetemp / GUI_DEMO_CACHE)}
    jobs = {
        "dose kernels": ("from dose.engine import warm_up; warm_up()", env),
        "demo case": (
            "from planner.demo.case import ensure_demo_case; ensure_demo_case()",
            demo_env,
        ),
    }
    started = time.monotonic()
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=job_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for name, (code, job_env) in jobs.items()
    }
    done = []
    for name, proc in procs.items():
        try:
            _, err = proc.communicate(
                timeout=max(1.0, PREWARM_TIMEOUT_S - (time.monotonic() - started))
            )
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            done.append(f"{name} timed out")
            continue
        last = (err.strip().splitlines() or ["no output"])[-1]
        done.append(
            name if proc.returncode == 0 else f"{name} FAILED (exit {proc.returncode}: {last})"
        )
    return f"{', '.join(done)} in {time.monotonic() - started:.0f} s"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_XSERVER, None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.log_path.parent, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    server = config.stash.get(_XSERVER, None)
    display = os.environ.get("DISPLAY") or f"none ({os.environ.get(NO_DISPLAY_ENV, 'not set')})"
    source = f"private Xvfb pid {server.process.pid}" if server else "inherited"
    lines = [
        f"seedplan: DISPLAY={display} [{source}]; shared data: {SHARED_DATA}; "
        f"{REQUIRE_ENV}={os.environ.get(REQUIRE_ENV, '0')}"
    ]
    prewarm = config.stash.get(_PREWARM, None)
    if prewarm:
        lines.append(f"seedplan: caches warmed before the workers started: {prewarm}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI (``SEEDPLAN_REQUIRE_DATA=1``) a test skipped for a missing resource fails."""
    report = yield
    if _fails_in_ci(report) and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = f"skipped, which {REQUIRE_ENV}=1 forbids: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The same for a module skipped at collection (``importorskip``, module-level skip)."""
    report = yield
    if _fails_in_ci(report):
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = f"skipped at collection, which {REQUIRE_ENV}=1 forbids: {reason}"
    return report


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


def _fails_in_ci(report: pytest.TestReport | pytest.CollectReport) -> bool:
    return bool(
        report.skipped and everything_required() and MISSING_RESOURCE.search(_skip_reason(report))
    )


#: The slowest tests outside the GUI batches (``--durations``, 2026-12-02), by node-id prefix,
#: slowest first: moved to the front of the run (after tests/gui, which comes first anyway), so
#: that xdist's two workers share them out at the start and none is left running alone at the
#: end (in file order several of them came last).
SLOWEST_FIRST = (
    "tests/test_structures_interpolate.py::test_fill_between_two_discs_morphs_size_and_position",
    "tests/test_readme_examples.py",
    "tests/test_tg43_fast.py::test_fast_grid_lone_seed_every_model_within_label_bound",
    "tests/test_tg43_fast.py::test_fast_grid_random_spacings_within_label_bound",
    "tests/test_cohort_run.py",
    "tests/test_tg43_consensus.py::test_dose_rate_constant_at_the_reference_point",
    "tests/test_demo_case.py",
    "tests/test_demo_postop.py",
    "tests/test_postop_detect.py::test_detect_cli_writes_csv_and_summary",
    "tests/test_optimise_robustness.py::test_error_model_tip_error_matches_the_measured",
    "tests/test_optimise_cli.py",
    "tests/test_dose_cli_safety.py::test_every_writer_on_a_full_disk_and_a_read_only_fs",
    "tests/test_tg43_fast.py::test_fast_grid_realistic_implant_vs_exact_and_reference",
    "tests/test_detect_thick_slices.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order: tests/gui first, then :data:`SLOWEST_FIRST`, then the rest in file order (a
    stable, deterministic sort: every xdist worker collects the same list)."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith("tests/gui/"):
            return -1
        for i, prefix in enumerate(SLOWEST_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(SLOWEST_FIRST)

    items.sort(key=rank)


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------
def run_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's cache folder, every test's ``XDG_CACHE_HOME``: the folder the main process
    pre-warms (``<its base temp>/gui-demo-cache``), shared by all xdist workers."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = shared / GUI_DEMO_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (flock on ``path``); no lock where there is no fcntl."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (each worker may generate; still correct)
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder ``name`` in the run's temp folder (shared by the xdist workers), made by
    ``build(folder)`` once per run: the first worker that needs it builds it while the other
    waits on the lock; a half-built one (an interrupted worker) is built again. For a module- or
    session-scoped fixture that costs seconds: xdist splits a module's tests over both workers,
    and each would build it. Read-only for the tests."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root, done = shared / name, shared / f"{name}.done"
    with file_lock(shared / f"{name}.lock"):
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            build(root)
            done.touch()
    return root


def shared_demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo case folder in the run's cache (:func:`run_cache_dir`), made once per run: by the
    pre-warm, or by the first worker to need it while the other waits on the lock. Read it;
    never change it (copy it to change it)."""
    from planner.demo.case import ensure_demo_case

    cache = run_cache_dir(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        with file_lock(cache / ".lock"):
            return Path(ensure_demo_case())


@pytest.fixture(scope="session")
def demo_case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`shared_demo_case` (read only)."""
    return shared_demo_case(tmp_path_factory)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep tests out of the real user cache/config (recent files, demo cache, settings).

    The config folder is new for every test (no settings leak from one test to the next,
    whatever order xdist runs them in); the cache folder is the run's (:func:`run_cache_dir`).
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(run_cache_dir(tmp_path_factory)))  # as at start
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
