"""The TG-43U1 dose engine interface: seeds in, dose rate and D∞ out, on points, grids or slices.

Public API
----------
::

    from dose.engine import SeedSet, make_engine, DoseGrid, warm_up

    seeds = SeedSet.create(positions_mm, axes=None, strengths_u=0.8)     # (N,3) LPS mm, (N,3), (N,)
    eng = make_engine("6711", formalism="2d", kind="numba")              # or kind="reference"
    res = eng.dose_rate_at_points(seeds, points_mm)                      # DoseResult, values (P,)
    res = eng.dose_rate_on_grid(seeds, geometry, cancel=c, progress=p)  # values (z, y, x)
    res = eng.dose_rate_on_slice(seeds, geometry, k)                     # values (y, x), slice k
    res = eng.dose_rate_on_grid(seeds, geometry, mode="fast")            # interactive display
    res = eng.dose_rate_on_slice(seeds, geometry, k, mode="fast")
    res.dose_rate_cgy_h, res.dose_gy, res.flagged, res.n_flagged
    res.formalism, res.model_id, res.table_checksum, res.label(), res.mode  # "exact" | "fast"

    acc = DoseGrid(eng, geometry)              # incremental accumulator for interactive editing
    acc = DoseGrid(eng, geometry, mode="fast") # the GUI's choice: ~6 ms per move on 10⁶ voxels
    acc.add("s1", (x, y, z), axis=(0, 0, 1), strength_u=0.8)
    acc.move("s1", position_mm=(x2, y2, z2))   # updates only that seed's contribution
    acc.remove("s1")
    acc.set_seeds(seeds, ids, cancel=fn)       # full recompute (worker thread friendly)
    acc.dose_rate_cgy_h / acc.dose_gy / acc.flagged / acc.slice_rate(k) / acc.version

    h = warm_up_in_subprocess(on_done=fn)      # GUI start: fill numba's cache off-process;
                                               # fn(ok, message) when done (see warmup.py)
    warm_up(progress=fn)                       # compile/load the kernels (~20-30 s cold,
                                               # ~1-2 s cached; run it in a worker thread)
    cross_check(model, formalism, seeds, points_mm)   # fast vs reference, for reports

Units: positions and distances in LPS mm; strengths S_K in U (1 U = 1 cGy cm² h⁻¹); dose rate
in cGy/h (initial, at the implant time of the given strengths); D∞ = Ḋ₀·τ in Gy
(τ = T½/ln 2, :mod:`dose.units`). Use :func:`strength_at_implant` for calibration→implant decay.

Modes: EXACT (default) evaluates every seed-voxel pair (≤ 3e-4 of the reference engine) and is
the only mode for dose at points, the CLI and anything a report quotes. FAST (grids, slices and
DoseGrid, numba engine only) splits each seed's kernel into an exact near part (a ball and a
thin cylinder along the seed axis) and smooth far parts summed on coarse grids (2 and 4 mm for
3-D grids, 4 mm for slices) and upsampled with cubics: ~6x fewer seed-voxel pairs on full
grids, for interactive display; ≤ 2 % beyond 1 mm from every seed for any model, seed axes and
grid directions (measured over 192 random cases: ≤ 1.6 % on grids and ≤ 1.3 % on slices, the
worst at a g_L kink seen by the 4 mm level; ≤ 0.29 % on needle implants), see
:mod:`dose.engine.kernels.fast`.
The mode is recorded in ``DoseResult.extras["mode"]`` and in ``label()``.

Threading: every numba kernel releases the GIL (``nogil``); long computations are chunked and
follow :mod:`dose.progress`: ``cancel()`` (CancelFn) is polled between chunks, raising
:class:`dose.progress.Cancelled`, and ``progress(fraction, message)`` (ProgressFn) is called
with the fraction in [0, 1] of the whole call. :class:`DoseGrid` holds a lock; ``set_seeds``
computes into fresh buffers and swaps them in only when complete, so a cancelled recompute
leaves the previous state intact.

Points inside a seed capsule (TG-43 undefined there) are evaluated at the capsule surface and
flagged (``DoseResult.flagged``), never singular.

Layout (this package)
---------------------
::

    values.py        SeedSet, DoseResult, GridMode, rate_to_dose_gy, strength_at_implant,
                     slice_geometry (no numerics)
    base.py          DoseEngine: the interface and everything shared (chunking, cancel,
                     progress, slices, result labels)
    reference.py     the independent pure-numpy engine: TG-43 functions + ReferenceEngine
    numba_engine.py  NumbaEngine (EXACT and FAST modes) on kernels/
    kernels/         the numba kernels: jit (every jitted TG-43 kernel, self-contained for
                     numba's cache), tables (LUT layout, FastModel), exact (EXACT-mode
                     wrappers), fast (the FAST near/far split)
    factory.py       make_engine, cross_check
    dose_grid.py     DoseGrid, the incremental accumulator
    warmup.py        warm_up, warm_up_in_subprocess (+ its WarmUpProcess handle)

``import dose.engine`` does not import numba: the numba engine (and with it numba, ~0.5 s) is
imported when the first numba engine is made or :func:`warm_up` runs; ``NumbaEngine`` is
importable from here and loads it on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dose.engine.base import DoseEngine
from dose.engine.dose_grid import DoseGrid
from dose.engine.factory import EngineKind, cross_check, make_engine
from dose.engine.reference import ReferenceEngine
from dose.engine.values import (
    DoseResult,
    GridMode,
    SeedSet,
    rate_to_dose_gy,
    slice_geometry,
    strength_at_implant,
)
from dose.engine.warmup import DoneFn, WarmUpProcess, warm_up, warm_up_in_subprocess
from dose.progress import CancelFn, Cancelled, ProgressFn

if TYPE_CHECKING:
    from dose.engine.numba_engine import NumbaEngine

__all__ = [
    "CancelFn",
    "Cancelled",
    "DoneFn",
    "DoseEngine",
    "DoseGrid",
    "DoseResult",
    "EngineKind",
    "GridMode",
    "NumbaEngine",
    "ProgressFn",
    "ReferenceEngine",
    "SeedSet",
    "WarmUpProcess",
    "cross_check",
    "make_engine",
    "rate_to_dose_gy",
    "slice_geometry",
    "strength_at_implant",
    "warm_up",
    "warm_up_in_subprocess",
]


def __getattr__(name: str) -> Any:
    if name == "NumbaEngine":  # imports numba: only on first access
        from dose.engine.numba_engine import NumbaEngine

        return NumbaEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
