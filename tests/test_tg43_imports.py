"""What importing the dose package costs: the value objects and the engine interface do not
import numba (~0.5 s and a JIT on first use); only the numba engine and the kernels do.

Each case runs in a fresh child Python (this process has numba loaded by other tests) and
reads ``sys.modules`` after the import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        # the DVH value object (dose/dvh.py: its computing functions live in dose/dvh_calc.py)
        "import dose.dvh\nfrom dose.dvh import DVH",
        # the engine interface, values, accumulator and GUI warm-up entry point
        "import dose.engine\nfrom dose.engine import SeedSet, DoseResult, DoseGrid, "
        "warm_up_in_subprocess, make_engine, rate_to_dose_gy",
        # the reference engine is pure numpy
        "from dose.engine import make_engine\nmake_engine('6711', kind='reference')",
        "import dose.geometry, dose.sources, dose.tg43, dose.progress, dose.needles, dose.units",
    ],
    ids=["dvh", "engine-interface", "reference-engine", "dose-basics"],
)
def test_import_does_not_load_numba(code: str) -> None:
    mods = _modules_after(code)
    assert "dose" in mods
    assert "numba" not in mods and "llvmlite" not in mods


def test_numba_engine_loads_numba() -> None:
    # the probe itself can see numba (the test above is not vacuous)
    mods = _modules_after("from dose.engine import make_engine\nmake_engine('6711')")
    assert "numba" in mods and "dose.engine.kernels.jit" in mods
