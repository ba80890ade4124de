"""Cohort re-analysis throughput on Dask (issue 15): per-case cost and warm-up separated, cases
per minute on this machine's cores, the projected time for 1,000 cases on 32 workers, and the
memory of a worker.

24 synthetic cases (:mod:`planner.demo.cohort`, 256² × 44 slices, seeds over the paper's 7–103
range; ``quick``: 4) are generated (not timed). In the same run:

* **serial**: every case analysed in this process, one after the other (no Dask), after loading
  the modules and dose kernels once (that warm-up timed apart): the plain per-case cost;
* **Dask** on a local cluster of ``workers`` single-threaded worker processes (the cores, 2 on the
  reference machine), on the first half of the cases (12) and then on all 24, each run from
  the first hash to the last result with the cluster start and the workers' warm-up
  (:class:`planner.cohort.workers.WarmWorker`) included and also reported apart.

The per-case wall cost on the cluster is the marginal one, ``(T24 − T12) / 12``; what is left of
``T12`` (cluster start, warm-up, the first cases' imbalance) is the fixed cost. Cases per minute:
``60 / marginal cost`` at scale, and ``60 · N / T_N`` as measured.

Projection for 1,000 cases on 32 workers: ``1000 × (median per-case seconds inside a worker) /
32`` plus the fixed cost measured here (one warm-up: the workers warm in parallel) — the ideal
for independent cases, assuming a core per worker and inputs on a shared file system that keeps
up.

Memory: each worker's peak resident set (it runs one case at a time, so its largest case) and
its resident set after each case and after the run (flat: no CT held after its case).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["run_benchmarks"]


def _manifest(cases: list, path: Path) -> Path:
    """A CSV manifest of ``cases`` (:class:`planner.cohort.cases.CaseInput`)."""
    lines = ["case_id,plan,postop_ct,seeds_implanted"]
    lines += [f"{c.case_id},{c.plan},{c.postop_ct},{c.seeds_implanted or ''}" for c in cases]
    path.write_text("\n".join(lines) + "\n")
    return path


def _agree(a: list[dict], b: list[dict]) -> bool:
    """Same status and post-op D90 case by case (Dask vs serial)."""
    return all(
        x["case_id"] == y["case_id"]
        and x["status"] == y["status"]
        and math.isclose(x.get("post_d90_gy") or 0.0, y.get("post_d90_gy") or 0.0, rel_tol=1e-6)
        for x, y in zip(a, b, strict=True)
    )


def run_benchmarks(quick: bool = False, cases: str | Path | None = None) -> list[dict]:
    """Time the Dask cohort runs (half and all of the cases) beside a serial baseline.

    ``cases``: analyse these case folders (folders of case folders, e.g. written by ``seedplan
    demo --cohort``; ``os.pathsep``-separated) instead of generating 24 (on a loaded machine).
    """
    from planner.cohort.cases import discover_cases
    from planner.cohort.run import analyse_case, run_cohort
    from planner.cohort.workers import process_memory, warm_process
    from planner.demo.cohort import write_cohort

    n_cases = 4 if quick else 24
    options = {"formalism": "1d", "gate_mm": 10.0}
    with tempfile.TemporaryDirectory(prefix="seedplan-bench-cohort-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        if cases is None:
            write_cohort(n_cases, root / "cases", seed=11)
            folders = [root / "cases"]
        else:
            folders = [Path(f) for f in str(cases).split(os.pathsep)]
        gen_seconds = time.perf_counter() - t0
        found = []
        for i, folder in enumerate(folders):
            for c in discover_cases(folder):
                found.append(
                    replace(c, case_id=f"{i}-{c.case_id}" if len(folders) > 1 else c.case_id)
                )
        n_cases = len(found)
        half = n_cases // 2
        workers = max(1, min(os.cpu_count() or 1, half))
        ids = [c.case_id for c in found]
        where = {c.case_id: c for c in found}
        serial_warm = warm_process()
        serial: list[dict] = []
        t0 = time.perf_counter()
        for c in found:
            serial.append(analyse_case(c.to_dict(), options))
        serial_seconds = time.perf_counter() - t0
        serial_memory = process_memory()
        runs = {}
        for n in (half, n_cases):
            m = _manifest([where[c] for c in ids[:n]], root / f"m{n}.csv")
            t0 = time.perf_counter()
            run = run_cohort(m, root / f"out{n}", workers=workers)
            runs[n] = (time.perf_counter() - t0, run)
    t_half, run_half = runs[half]
    t_all, run_all = runs[n_cases]
    serial_case = [float(r["seconds"]) for r in serial]
    worker_case = [float(r["seconds"]) for r in run_all.rows if isinstance(r.get("seconds"), float)]
    marginal = (t_all - t_half) / (n_cases - half)  # wall seconds per extra case on the cluster
    fixed = t_half - half * marginal
    median_worker = statistics.median(worker_case)
    median_serial = statistics.median(serial_case)
    projected_s = 1000 * median_worker / 32 + max(fixed, run_all.startup_seconds)
    peak = [m["peak_rss_mb"] for m in run_all.worker_memory.values()]
    after = [m["rss_mb"] for m in run_all.worker_memory.values()]
    per_case_rss = [float(r["rss_after_mb"]) for r in run_all.rows if r.get("rss_after_mb")]
    ok = [r for r in run_all.rows if r["status"] == "ok"]
    seeds = [r["seeds_planned"] for r in run_all.rows]
    same = _agree(run_all.rows, serial) and _agree(run_half.rows, serial[:half])
    per_minute = 60.0 * n_cases / t_all
    refused = [f"{r['case_id']} ({r['reason']})" for r in run_all.rows if r["status"] != "ok"]
    notes = (
        f"{n_cases} cases ({min(seeds)}–{max(seeds)} seeds, median "
        f"{statistics.median(seeds):g}; {len(ok)} ok), {workers} worker processes × 1 thread: "
        f"{half} cases {t_half:.0f} s, {n_cases} cases {t_all:.0f} s → marginal "
        f"{marginal:.1f} s/case ({60.0 / marginal:.1f} cases/min at scale; measured "
        f"{per_minute:.1f}), fixed {fixed:.1f} s (cluster start {run_all.startup_seconds:.1f} s, "
        f"warm-up {run_all.warm_seconds:.1f} s); serial {serial_seconds / n_cases:.1f} s/case "
        f"({60.0 * n_cases / serial_seconds:.1f} cases/min, median {median_serial:.1f} s, warm-up "
        f"{serial_warm:.1f} s apart); median {median_worker:.1f} s per case inside a worker; "
        f"projected 1000 cases on 32 workers: {projected_s / 60:.1f} min; worker peak RSS "
        f"{max(peak):.0f} MiB (RSS after each case {min(per_case_rss):.0f}–"
        f"{max(per_case_rss):.0f} MiB, after the run {max(after):.0f} MiB; this process: peak "
        f"{serial_memory['peak_rss_mb']:.0f} MiB, generation included); generation "
        f"{gen_seconds:.0f} s (not timed); "
        f"Dask and serial tables {'agree' if same else 'DIFFER'}"
        + (f"; not ok: {'; '.join(refused)}" if refused else "")
    )
    return [
        {
            "name": f"cohort_{half}_and_{n_cases}_cases_{workers}_workers",
            "seconds": t_all,
            "baseline_seconds": serial_seconds,
            "speedup": serial_seconds / t_all if t_all > 0 else math.inf,
            "goal": "measure: cases/min, 1000 on 32, worker memory",
            "passed_goal": bool(same),
            "notes": notes,
            "cases_per_minute": per_minute,
            "cases_per_minute_at_scale": 60.0 / marginal if marginal > 0 else math.inf,
            "marginal_case_seconds": marginal,
            "fixed_seconds": fixed,
            "startup_seconds": run_all.startup_seconds,
            "warm_seconds": run_all.warm_seconds,
            "half_seconds": t_half,
            "serial_case_seconds": serial_seconds / n_cases,
            "serial_warm_seconds": serial_warm,
            "median_case_seconds": median_worker,
            "projected_1000_cases_32_workers_s": projected_s,
            "worker_peak_rss_mb": max(peak),
            "worker_rss_after_case_mb": [min(per_case_rss), max(per_case_rss)],
            "worker_rss_after_run_mb": max(after),
            "serial_peak_rss_mb": serial_memory["peak_rss_mb"],
            "seeds_range": [min(seeds), max(seeds)],
            "not_ok": refused,
        }
    ]


if __name__ == "__main__":
    import json
    import sys

    given = sys.argv[sys.argv.index("--cases") + 1] if "--cases" in sys.argv else None
    print(json.dumps(run_benchmarks("--quick" in sys.argv, given), indent=1, default=float))
