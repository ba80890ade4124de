"""planner/ and dose/ never import Qt or VTK; dose/ never imports planner/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_GUI = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "vtk", "vtkmodules", "app")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["dose", "planner"])
def test_domain_packages_do_not_import_gui(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imported_modules(p) & set(FORBIDDEN_GUI))
        for p in (ROOT / package).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{package}/ imports GUI or app modules: {offenders}"


def test_dose_does_not_import_planner() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "dose").rglob("*.py")
        if "planner" in _imported_modules(p)
    ]
    assert not offenders, f"dose/ must not import planner/: {offenders}"


def test_importing_domain_and_cli_loads_no_qt_or_vtk() -> None:
    """At run time too: importing every domain module and the CLI pulls in neither Qt nor VTK."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for pkg in ('dose', 'planner'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "import app.cli; app.cli.build_parser()\n"
        "gui = ('PySide6', 'vtkmodules', 'vtk')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in gui)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"Qt/VTK loaded by domain or CLI import: {out.stdout.strip()}"
