"""Dose-engine benchmarks (used by ``seedplan bench`` and ``benchmarks/bench_dose.py``).

``run_benchmarks() -> list[dict]``: each dict has ``name, seconds, baseline_seconds, speedup,
goal, passed_goal, notes`` (plus extra numeric keys). ``machine_info() -> dict`` describes the
machine (nproc, CPU model, numba threads and threading layer, and a pure-Python calibration loop
time, because shared/virtual machines vary a lot).

Case (deterministic): 100 I-125 seeds (model 6711, 0.5 U) on 10 needles × 10 seeds, 5 mm apart,
needles tilted up to ~15° from +z, in a ~4 cm region at the centre of a 100³ grid of 1 mm voxels
(10⁶ voxels). Measured, warm, best of several runs:

* full grid, 100 seeds × 10⁶ voxels (goal ≤ 0.15 s and ≥ 30× the numpy baseline);
* one-seed move on that grid with :class:`dose.engine.DoseGrid` (goal ≤ 10 ms);
* one 512×512 axial slice (0.8 mm pixels) for the 100 seeds (goal ≤ 15 ms), exact, and with a
  100 mm per-seed cut-off;
* accuracy of the fast engine against the reference engine at 20 000 random voxels farther than
  1 mm from every seed (goal ≤ 0.5 % max relative error).

Each of the full grid, the move and the slice is timed in EXACT mode (every seed-voxel pair;
what points, the CLI and reports use) and in FAST mode (near part plus coarse far levels, for
interactive grids and slices only); the accuracy of each fast path is reported against the
reference engine (random voxels) and against the exact engine (every voxel).

Baseline: the reference engine (:mod:`dose.engine.reference`) *is* the straightforward
vectorised numpy implementation (loop over seeds, vectorised over voxels, ``np.interp``); it runs
on a subset of the seeds and is scaled linearly to 100 seeds (its cost is exactly linear in the
number of seeds), which the notes state.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np

from dose.engine import DoseGrid, SeedSet, kernels, make_engine, slice_geometry
from dose.geometry import GridGeometry

__all__ = ["machine_info", "make_case", "run_benchmarks"]

GOAL_FULL_S = 0.15
GOAL_MOVE_S = 0.010
GOAL_SLICE_S = 0.015
GOAL_SPEEDUP = 30.0
GOAL_MAX_REL_ERR = 0.005


def machine_info() -> dict[str, object]:
    """nproc, CPU model, numba threads/threading layer and a Python-loop calibration time."""
    import numba

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    t0 = time.perf_counter()
    acc = 0
    for i in range(2_000_000):
        acc += i
    loop_s = time.perf_counter() - t0
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "python_loop_2e6_adds_s": round(loop_s, 4),
        # other processes on a shared machine slow every number down: record the load
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def make_case(n_needles: int = 10, seeds_per_needle: int = 10) -> tuple[SeedSet, GridGeometry]:
    """The benchmark seeds (LPS mm) and the 100³ 1 mm grid centred on them."""
    rng = np.random.default_rng(43)
    pos, axes = [], []
    for _n in range(n_needles):
        entry = np.array([rng.uniform(-18, 18), rng.uniform(-18, 18), -22.5])
        d = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), 1.0])
        d /= np.linalg.norm(d)
        for s in range(seeds_per_needle):
            pos.append(entry + d * (5.0 * s))
            axes.append(d)
    seeds = SeedSet.create(np.array(pos), np.array(axes), 0.5)
    geometry = GridGeometry.axis_aligned((100, 100, 100), (-49.5, -49.5, -49.5), (1.0, 1.0, 1.0))
    return seeds, geometry


def _spec_text(spec: kernels.FastSpec) -> str:
    """One line describing a FAST split: near ball radius, then each coarse level."""
    lv = spec.levels
    parts = [f"exact near ball r < {lv[0].r1_mm:g} mm + axis cylinder rho < ~{lv[0].cap_mm:g} mm"]
    parts += [
        f"{v.step_mm:g} mm level from r = {v.r0_mm:g}-{v.r1_mm:g} mm (axis cap {v.cap_mm:g} mm)"
        for v in lv
    ]
    return "; ".join(parts) + "; Catmull-Rom upsampled"


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _min_distance_mm(points: np.ndarray, seeds: SeedSet) -> np.ndarray:
    d = np.full(points.shape[0], np.inf)
    for p in seeds.positions_mm:
        d = np.minimum(d, np.linalg.norm(points - p, axis=1))
    return d


def _rel_beyond_1mm(
    got: np.ndarray, want: np.ndarray, geometry: GridGeometry, seeds: SeedSet
) -> np.ndarray:
    """|got − want| / want at the voxels of ``geometry`` farther than 1 mm from every seed."""
    pts = geometry.voxel_centres_world().reshape(-1, 3)
    far = _min_distance_mm(pts, seeds) > 1.0
    g = got.reshape(-1)[far]
    w = want.reshape(-1)[far]
    return np.abs(g - w) / w


def _accuracy_vs_reference(
    got: np.ndarray, geometry: GridGeometry, seeds: SeedSet, ref, n: int, seed: int
) -> tuple[np.ndarray, float, int]:
    """Relative error of ``got`` (on ``geometry``) against the reference engine at ``n`` random
    voxels farther than 1 mm from every seed; returns (errors, reference seconds, n used)."""
    rng = np.random.default_rng(seed)
    kji = np.stack([rng.integers(0, m, size=n) for m in geometry.shape_zyx], axis=1)
    pts = geometry.zyx_to_world(kji.astype(np.float64))
    far = _min_distance_mm(pts, seeds) > 1.0
    kji, pts = kji[far], pts[far]
    t0 = time.perf_counter()
    ref_rate = ref.dose_rate_at_points(seeds, pts).dose_rate_cgy_h
    t_ref = time.perf_counter() - t0
    got_v = got[kji[:, 0], kji[:, 1], kji[:, 2]]
    return np.abs(got_v - ref_rate) / ref_rate, t_ref, int(pts.shape[0])


def _pct(x: float) -> str:
    return f"{x * 100:.3f} %" if x >= 1e-4 else f"{x * 100:.1e} %"


def run_benchmarks(quick: bool = False) -> list[dict[str, object]]:
    """Run the dose benchmarks; ``quick`` uses fewer repetitions and smaller baselines.

    EXACT mode (every seed-voxel pair, ≤ 3e-4 of the reference) is what points, the CLI and
    reports use; FAST mode (near/far split, :mod:`dose.engine.kernels.fast`) is for interactive
    grids and slices in the GUI. Both are timed here side by side with the numpy baseline.
    """
    seeds, grid = make_case()
    n = len(seeds)
    fast = make_engine("6711", "2d", "numba")
    ref = make_engine("6711", "2d", "reference")
    one = seeds.subset([0])
    fast.dose_rate_on_grid(one, slice_geometry(grid, 0))  # compile / load cache
    fast.dose_rate_on_grid(one, grid, mode="fast")
    repeat = 2 if quick else 3
    n_base = 2 if quick else 4
    n_acc = 4000 if quick else 20000
    results: list[dict[str, object]] = []

    # ---- full grid, exact and fast
    t_full = _best(lambda: fast.dose_rate_on_grid(seeds, grid), repeat)
    sub = seeds.subset(np.arange(n_base))
    t_base = _best(lambda: ref.dose_rate_on_grid(sub, grid), 1) * n / n_base
    speed = t_base / t_full
    results.append(
        {
            "name": "dose: full grid, 100 seeds x 1e6 voxels (1 mm), exact",
            "seconds": t_full,
            "baseline_seconds": t_base,
            "speedup": speed,
            "goal": f"<= {GOAL_FULL_S} s and >= {GOAL_SPEEDUP:g}x baseline",
            "passed_goal": bool(t_full <= GOAL_FULL_S and speed >= GOAL_SPEEDUP),
            "notes": f"numba, {fast.model.model_id} 2D, exact (no cut-off); baseline = reference "
            f"numpy engine on {n_base} seeds scaled x{n / n_base:g}",
        }
    )
    t_ffast = _best(lambda: fast.dose_rate_on_grid(seeds, grid, mode="fast"), repeat + 1)
    speed_f = t_base / t_ffast
    results.append(
        {
            "name": "dose: full grid, 100 seeds x 1e6 voxels (1 mm), fast",
            "seconds": t_ffast,
            "baseline_seconds": t_base,
            "speedup": speed_f,
            "goal": f"<= {GOAL_FULL_S} s and >= {GOAL_SPEEDUP:g}x baseline",
            "passed_goal": bool(t_ffast <= GOAL_FULL_S and speed_f >= GOAL_SPEEDUP),
            "notes": f"near/far split: {_spec_text(kernels.FAST_GRID_SPEC)} (interactive "
            "display; points, CLI and reports use exact)",
        }
    )

    # ---- one-seed move, exact and fast
    rng = np.random.default_rng(7)
    moves = [
        (int(sid), np.asarray(seeds.positions_mm[sid]) + rng.uniform(-3, 3, 3))
        for sid in rng.integers(n, size=5 if quick else 15)
    ]
    t_move_base = 2.0 * _best(lambda: ref.dose_rate_on_grid(one, grid), 1)
    for mode in ("exact", "fast"):
        acc = DoseGrid(fast, grid, mode=mode)
        acc.set_seeds(seeds)
        times = []
        for sid, p in moves:
            t0 = time.perf_counter()
            acc.move(sid, position_mm=p)
            times.append(time.perf_counter() - t0)
        t_move = float(np.median(times))
        how = (
            "old contribution out and new in, one fused pass over the grid"
            if mode == "exact"
            else "near parts of the old and new position, coarse far levels, re-upsampled"
        )
        results.append(
            {
                "name": f"dose: move one seed on the 1e6-voxel grid (DoseGrid, {mode})",
                "seconds": t_move,
                "baseline_seconds": t_move_base,
                "speedup": t_move_base / t_move,
                "goal": f"<= {GOAL_MOVE_S * 1000:g} ms",
                "passed_goal": bool(t_move <= GOAL_MOVE_S),
                "notes": f"median of {len(moves)} moves by up to 3 mm; {how}; baseline = numpy "
                "reference for 2 single-seed grids",
            }
        )
        del acc

    # ---- 512 x 512 slice: exact, 100 mm cut-off, fast
    sl = GridGeometry.axis_aligned((1, 512, 512), (-204.4, -204.4, 0.5), (0.8, 0.8, 2.0))
    t_slice = _best(lambda: fast.dose_rate_on_grid(seeds, sl), repeat + 2)
    t_slice_base = _best(lambda: ref.dose_rate_on_grid(sub, sl), 1) * n / n_base
    results.append(
        {
            "name": "dose: one 512x512 slice (0.8 mm), 100 seeds, exact",
            "seconds": t_slice,
            "baseline_seconds": t_slice_base,
            "speedup": t_slice_base / t_slice,
            "goal": f"<= {GOAL_SLICE_S * 1000:g} ms",
            "passed_goal": bool(t_slice <= GOAL_SLICE_S),
            "notes": "parallel over rows; no cut-off",
        }
    )
    cut = make_engine("6711", "2d", "numba", cutoff_mm=100.0)
    exact_sl = fast.dose_rate_on_grid(seeds, sl).dose_rate_cgy_h
    t_cut = _best(lambda: cut.dose_rate_on_grid(seeds, sl), repeat + 2)
    approx = cut.dose_rate_on_grid(seeds, sl).dose_rate_cgy_h
    err_of_max = float(np.max(np.abs(approx - exact_sl)) / np.max(exact_sl))
    results.append(
        {
            "name": "dose: one 512x512 slice, 100 seeds, 100 mm cut-off",
            "seconds": t_cut,
            "baseline_seconds": t_slice_base,
            "speedup": t_slice_base / t_cut,
            "goal": f"<= {GOAL_SLICE_S * 1000:g} ms",
            "passed_goal": bool(t_cut <= GOAL_SLICE_S),
            "notes": f"contributions beyond 100 mm dropped: max error {err_of_max * 100:.3f} % of "
            "the slice maximum (display use)",
            "max_error_of_slice_max": err_of_max,
        }
    )
    t_sfast = _best(lambda: fast.dose_rate_on_grid(seeds, sl, mode="fast"), repeat + 4)
    results.append(
        {
            "name": "dose: one 512x512 slice, 100 seeds, fast",
            "seconds": t_sfast,
            "baseline_seconds": t_slice_base,
            "speedup": t_slice_base / t_sfast,
            "goal": f"<= {GOAL_SLICE_S * 1000:g} ms",
            "passed_goal": bool(t_sfast <= GOAL_SLICE_S),
            "notes": "near/far split on the slice plane: " + _spec_text(kernels.FAST_SLICE_SPEC),
        }
    )

    # ---- accuracy against the reference engine (> 1 mm from every seed)
    full = fast.dose_rate_on_grid(seeds, grid).dose_rate_cgy_h
    rel, t_ref, n_pts = _accuracy_vs_reference(full, grid, seeds, ref, n_acc, 11)
    results.append(
        {
            "name": "dose: accuracy vs reference engine (> 1 mm from every seed), exact",
            "seconds": t_ref,
            "baseline_seconds": None,
            "speedup": None,
            "goal": f"max relative error <= {GOAL_MAX_REL_ERR * 100:g} %",
            "passed_goal": bool(rel.max() <= GOAL_MAX_REL_ERR),
            "notes": f"{n_pts} random voxels of the full grid: max {_pct(rel.max())}, "
            f"mean {_pct(rel.mean())}; seconds = reference engine time for these voxels",
            "max_rel_error": float(rel.max()),
            "mean_rel_error": float(rel.mean()),
        }
    )
    cases = [
        ("full grid", grid, full, fast.dose_rate_on_grid(seeds, grid, mode="fast"), 12),
        (
            "512x512 slice",
            sl,
            exact_sl[np.newaxis],
            fast.dose_rate_on_grid(seeds, sl, mode="fast"),
            13,
        ),
    ]
    for label, geom, exact_v, fres, rseed in cases:
        got = fres.dose_rate_cgy_h
        rel, t_ref, n_pts = _accuracy_vs_reference(got, geom, seeds, ref, n_acc // 2, rseed)
        rel_all = _rel_beyond_1mm(got, exact_v, geom, seeds)
        worst = max(float(rel.max()), float(rel_all.max()))
        results.append(
            {
                "name": f"dose: accuracy of the fast {label} (> 1 mm from every seed)",
                "seconds": t_ref,
                "baseline_seconds": None,
                "speedup": None,
                "goal": f"max relative error <= {GOAL_MAX_REL_ERR * 100:g} %",
                "passed_goal": bool(worst <= GOAL_MAX_REL_ERR),
                "notes": f"vs reference at {n_pts} random voxels: max {_pct(rel.max())}, mean "
                f"{_pct(rel.mean())}; vs exact engine at all {rel_all.size} voxels: max "
                f"{_pct(rel_all.max())}, mean {_pct(rel_all.mean())}, "
                f"{np.mean(rel_all > 0.002) * 100:.3f} % of voxels > 0.2 %",
                "max_rel_error": worst,
                "mean_rel_error": float(rel_all.mean()),
            }
        )
    return results
