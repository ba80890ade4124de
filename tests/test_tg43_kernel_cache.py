"""numba's on-disk cache: every dose kernel is cached, loads from the cache, and cannot go stale.

numba invalidates a cached kernel only when the kernel's own source file changes: a jitted
function it calls from another file, or a global it reads from another module, is frozen into
the cached machine code, and a later change there silently does not take effect (numba docs,
"Notes on Caching", cache limitations). For a dose engine that is a wrong-dose hazard, so the
rule is checked here on the source: a jitted function in dose/ uses no name imported from
another dose module (TG-43 conventions reach the kernels as data, see dose/engine/kernels/jit.py).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOSE = ROOT / "dose"


def _is_jit(deco: ast.expr) -> tuple[bool, ast.Call | None]:
    call = deco if isinstance(deco, ast.Call) else None
    target = call.func if call is not None else deco
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in ("njit", "jit", "vectorize", "guvectorize", "stencil"), call


def _jitted_functions(tree: ast.Module) -> list[tuple[ast.FunctionDef, ast.Call | None]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                ok, call = _is_jit(deco)
                if ok:
                    out.append((node, call))
    return out


def _names_from_dose_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dose":
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name[:4] == "dose"}
    return names


def _sources_with_kernels() -> list[Path]:
    """Every file under dose/ that defines a numba kernel."""
    return [
        p
        for p in sorted(DOSE.rglob("*.py"))
        if _jitted_functions(ast.parse(p.read_text(encoding="utf-8")))
    ]


def test_kernel_files_found() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _sources_with_kernels()}
    assert {"dose/engine/kernels/jit.py", "dose/engine/kernels/fast.py"} <= files


@pytest.mark.parametrize("path", _sources_with_kernels(), ids=lambda p: p.relative_to(ROOT).name)
def test_jitted_code_uses_nothing_from_other_dose_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = _names_from_dose_modules(tree)
    for fn, _ in _jitted_functions(tree):
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        bad = sorted(used & imported)
        assert not bad, f"{path.name}: jitted {fn.name}() uses {bad} from another dose module"


@pytest.mark.parametrize(
    "path",
    [p for p in _sources_with_kernels() if "engine" in p.parts],
    ids=lambda p: p.relative_to(ROOT).name,
)
def test_every_engine_kernel_is_cached(path: Path) -> None:
    for fn, call in _jitted_functions(ast.parse(path.read_text(encoding="utf-8"))):
        kw = {k.arg: k.value for k in (call.keywords if call else [])}
        cache = kw.get("cache")
        assert isinstance(cache, ast.Constant) and cache.value is True, fn.name
        nogil = kw.get("nogil")  # callable from worker threads without holding the GIL
        assert isinstance(nogil, ast.Constant) and nogil.value is True, fn.name


_CHILD = """
import json
from dose.engine import warm_up
warm_up(["6711"])
from dose.engine.kernels import jit, fast, isolines
out = {}
for mod in (jit, fast, isolines):
    for name in dir(mod):
        d = getattr(mod, name)
        if hasattr(d, "stats") and hasattr(d, "py_func") and d.signatures:
            out[name] = sum(d.stats.cache_misses.values())
print(json.dumps(out))
"""


def _child_misses() -> dict[str, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernels_load_from_the_disk_cache_in_a_new_process() -> None:
    _child_misses()  # compiles into the cache if it is cold (a fresh clone)
    misses = _child_misses()
    # isolines: the live isodose lines' marching squares, drawn on the GUI thread.
    assert {"part_rows", "points_kernel", "tabulate", "_upsample", "iso_segments_into"} <= set(
        misses
    )
    assert misses == dict.fromkeys(misses, 0), misses
