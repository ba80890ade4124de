"""The numba engine's kernels: TG-43U1 on (r, θ) lookup tables (what ``dose.engine_numba`` was).

Used through :mod:`dose.engine` (``make_engine(model, kind="numba")``); importing this package
imports numba (``dose.engine`` itself does not until a numba engine is made).

Modules
-------
``jit``     every numba kernel that evaluates TG-43 (exact scalar path, tabulation, the grid-row
            and point kernels); self-contained so that numba's on-disk cache cannot go stale
``tables``  :class:`TableLayout`, :class:`FastModel` / :func:`fast_model` (a model prepared for
            the kernels, its table T), the polynomial atan, ``KERNEL_LOCK``
``exact``   EXACT mode: :func:`grid_rate_accumulate`, :func:`points_rate`
``fast``    FAST mode: the multilevel near/far split (:class:`FastSpec`, :func:`split_layout`,
            :func:`near_accumulate`, :func:`far_accumulate`, :func:`upsample_into`)
``isolines`` marching squares of a dose slice at several levels in one pass (the live isodose
            lines, :mod:`planner.plan.isolines`); not imported here

How it is fast and still exact
------------------------------
* Beyond ``R_DIRECT_MM`` (3.5 mm) from a seed the per-unit-strength dose rate times r², T(r, θ),
  is looked up bilinearly in a float32 table (:class:`TableLayout`: rows every 0.05 mm to
  25 mm, 0.25 mm to 60 mm, 1 mm to 600 mm, held beyond; columns every 0.25° below 10°, 1°
  above). Every published r node is a multiple of its segment's step and every published θ
  node an integer degree, so the kinks of g_L and F fall on rows and columns. Against the
  reference engine: ≤ 3e-5 from 5 to 60 mm, ≤ 3e-4 elsewhere beyond R_DIRECT_MM (the largest
  errors are at 3.5-5 mm, where G_L curves strongly in θ between 1° columns, and beyond 60 mm,
  where g_L decays exponentially between 1 mm rows; tested per distance band).
  θ = 2·atan(ρ/(r + |z|)) with a polynomial atan (|error| < 1e-7 rad), so no libm call in the
  inner loop. The table is 0.57 MB.
* Each (row, seed) is done in two passes: a branch-free float32 pass that LLVM vectorises (table
  cell, weights, 1/r²) and a scalar pass of bilinear lookups (this CPU has no vector gathers).
* Near a seed (r < R_DIRECT_MM), including the capsule, the exact formalism is evaluated
  (atan2-difference β, on-axis form, table interpolation, capsule capping and flagging).
* For a grid row (fixed j, k) and a seed, r²(i) and z(i) are quadratics/linears in i, so each
  voxel costs two FMAs for geometry; the i-ranges (ball, axis cylinder, skipped core) are solved
  analytically per row and rows outside a seed's (j, k) box are skipped, for any direction matrix.
* Kernels are ``parallel`` over grid rows (so one 512×512 slice also uses every core),
  ``nogil`` (callable from a worker thread) and ``cache=True``; :func:`dose.engine.warm_up`
  compiles them.
* Accumulation is float64: the incremental accumulator subtracts exactly the values it added.

Every kernel launch takes ``KERNEL_LOCK`` so launches from a GUI thread and a worker thread
never overlap (numba's workqueue threading layer is not re-entrant).
"""

from __future__ import annotations

from dose.engine.kernels.exact import grid_rate_accumulate, points_rate, threads
from dose.engine.kernels.fast import (
    FAST_GRID_SPEC,
    FAST_SLICE_SPEC,
    CoarseLevel,
    FastLevel,
    FastSpec,
    SplitLayout,
    capped_table,
    coarse_level,
    far_accumulate,
    near_accumulate,
    part_tables,
    split_layout,
    upsample_into,
)
from dose.engine.kernels.jit import R_DIRECT_MM
from dose.engine.kernels.tables import (
    ATAN_COEF,
    KERNEL_LOCK,
    TABLE_LAYOUT,
    FastModel,
    TableLayout,
    fast_model,
)

__all__ = [
    "ATAN_COEF",
    "FAST_GRID_SPEC",
    "FAST_SLICE_SPEC",
    "KERNEL_LOCK",
    "R_DIRECT_MM",
    "TABLE_LAYOUT",
    "CoarseLevel",
    "FastLevel",
    "FastModel",
    "FastSpec",
    "SplitLayout",
    "TableLayout",
    "capped_table",
    "coarse_level",
    "far_accumulate",
    "fast_model",
    "grid_rate_accumulate",
    "near_accumulate",
    "part_tables",
    "points_rate",
    "split_layout",
    "threads",
    "upsample_into",
]
