"""After :func:`dose.engine.warm_up` no engine call compiles a kernel again.

numba compiles one machine-code specialisation per combination of argument types, read-only
flags included: when one caller passed a frozen SeedSet's positions and another a fresh array,
``part_rows`` was compiled 7 times (≈ 10 s each on 2 cores: the first oblique slice of a GUI
session, and 37 s of one test on a fresh clone) and the warm-up could not cover them. The
kernels' wrappers now hand every array they only read over read-only
(:func:`dose.engine.kernels.tables.frozen_f64`); this checks it on every kind of call the
planner makes — grids, axial and oblique slices, points; exact and fast; 2D and 1D; writable and
read-only inputs; another model — in a fresh process (signatures are per process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import importlib, json, pkgutil
import numpy as np
import dose.engine.kernels as kernels
from dose.engine import SeedSet, make_engine, warm_up
from dose.geometry import GridGeometry

def counts():
    out = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        mod = importlib.import_module(f"dose.engine.kernels.{info.name}")
        for name, obj in vars(mod).items():
            if hasattr(obj, "signatures") and getattr(obj, "__module__", "") == mod.__name__:
                out[f"{info.name}.{name}"] = len(obj.signatures)
    return out

warm_up()
before = counts()
rng = np.random.default_rng(3)
pos = rng.normal(0, 6, (4, 3))
axes = rng.normal(size=(4, 3))
frozen = SeedSet.create(pos, axes, 0.7)
# writable arrays, as a caller building a SeedSet directly holds them
fresh = SeedSet(frozen.positions_mm.copy(), frozen.axes.copy(), frozen.strengths_u.copy())
tilted = np.linalg.qr(rng.normal(size=(3, 3)))[0]
grids = [
    GridGeometry((20, 22, 24), np.array([-12.0, -12.0, -12.0]), np.array([1.0, 1.1, 1.2])),
    GridGeometry((20, 22, 24), np.array([-11.0, -10.0, -12.0]), np.array([0.9, 0.9, 1.3]), tilted),
]
points_ro = rng.normal(0, 8, (30, 3))
points_ro.flags.writeable = False
for model, formalism in (("6711", "2d"), ("6711", "1d"), ("2301", "2d")):
    eng = make_engine(model, formalism)
    for seeds in (frozen, fresh):
        for geometry in grids:
            for mode in ("exact", "fast"):
                eng.dose_rate_on_grid(seeds, geometry, mode=mode)
                eng.dose_rate_on_slice(seeds, geometry, 7, mode=mode)
        eng.dose_rate_at_points(seeds, points_ro)
        eng.dose_rate_at_points(seeds, np.array(points_ro))
after = counts()
print(json.dumps({"before": before, "after": after}))
"""


def test_no_kernel_compiles_again_after_the_warm_up() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    before, after = got["before"], got["after"]
    assert {"jit.part_rows", "jit.points_kernel", "exact._boxes_kernel"} <= set(before)
    grown = {k: (before.get(k, 0), n) for k, n in after.items() if n != before.get(k, 0)}
    assert not grown, f"kernels compiled again after the warm-up (before, after): {grown}"
