"""The wheel holds every module and data file of the project (package discovery, package data).

The wheel is built from a copy of the tree in a temporary folder (the checkout gets no
``build/`` folder), offline: ``pip wheel --no-build-isolation --no-index`` with the build
backend of this environment (``make venv`` installs setuptools and wheel into .venv). Only when
this environment cannot build wheels does pip fetch the backend into an isolated build
environment from its configured index, as ``make venv`` itself does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: Top-level folders whose every .py file must be in the wheel.
CODE_DIRS = ("app", "planner", "dose", "benchmarks", "resources")
#: Data files that must be in the wheel (pyproject [tool.setuptools.package-data] resources).
DATA_SUFFIXES = (".json", ".md", ".png", ".svg")
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.nbi", "*.nbc", "build", "dist", "*.egg-info"
)


def _backend_builds_wheels() -> bool:
    """True when this environment's setuptools can build a wheel without the network."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)  # setuptools ≥ 70.1 has its own bdist_wheel


def _source_copy(dest: Path) -> Path:
    for name in CODE_DIRS:
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=IGNORED)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """(source copy, the wheel built from it, the names in the wheel)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _source_copy(base / "src")
    out = base / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if _backend_builds_wheels():
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(out.glob("seedplan-*.whl"))
    assert len(wheels) == 1, f"expected one seedplan wheel in {out}: {sorted(out.iterdir())}"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
    return src, wheels[0], names


def test_every_module_is_in_the_wheel(built: tuple[Path, Path, set[str]]) -> None:
    src, _, names = built
    expected = {p.relative_to(src).as_posix() for d in CODE_DIRS for p in (src / d).rglob("*.py")}
    assert len(expected) > 50 and "planner/demo/phantom.py" in expected
    missing = sorted(expected - names)
    assert not missing, (
        "not in the wheel (a folder without __init__.py is not a package): " + ", ".join(missing)
    )


def test_resource_data_is_in_the_wheel(built: tuple[Path, Path, set[str]]) -> None:
    src, _, names = built
    data = {
        p.relative_to(src).as_posix()
        for p in (src / "resources").rglob("*")
        if p.is_file() and p.suffix in DATA_SUFFIXES
    }
    seed_tables = {n for n in data if n.startswith("resources/seeds/") and n.endswith(".json")}
    assert seed_tables, "no seed source tables under resources/seeds/"
    missing = sorted(data - names)
    assert not missing, "data files not in the wheel: " + ", ".join(missing)


def test_wheel_has_the_entry_point_and_no_tests(built: tuple[Path, Path, set[str]]) -> None:
    _, wheel, names = built
    assert not any(n.startswith("tests/") for n in names), "tests/ must not be packaged"
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == set(CODE_DIRS), top
    entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert len(entry_points) == 1, entry_points
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(entry_points[0]).decode("utf-8")
    lines = [line.replace(" ", "") for line in text.splitlines()]
    assert "[console_scripts]" in lines and "seedplan=app.cli:main" in lines, text
