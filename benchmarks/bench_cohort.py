"""Cohort re-analysis throughput on Dask (issue 15): cases per minute on this machine's cores and
the projected time for 1,000 cases on a 32-worker cluster.

N synthetic cases (:mod:`planner.demo.cohort`, 256² × 44 slices, 7–103 seeds) are generated
(not timed), then analysed by :func:`planner.cohort.run.run_cohort` on a local Dask cluster of
worker processes (``workers`` = the cores, 2 on the reference machine), wall time from the first
hash to the last result, cluster start included. The baseline is the same analysis run serially
in this process (no Dask), so the speed-up is what the cluster buys on these cores.

Projection: 1,000 cases × the median per-case analysis time measured inside the workers ÷ 32
workers, plus the measured cluster start-up — the ideal for embarrassingly parallel cases,
assuming the 32 workers have a core each and the inputs are on a shared file system.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from pathlib import Path

__all__ = ["run_benchmarks"]


def run_benchmarks(quick: bool = False) -> list[dict]:
    """Time the Dask cohort run beside a serial in-process baseline."""
    from planner.cohort.cases import discover_cases
    from planner.cohort.run import analyse_case, run_cohort
    from planner.demo.cohort import write_cohort

    n_cases = 2 if quick else 4
    workers = max(1, min(os.cpu_count() or 1, n_cases))
    with tempfile.TemporaryDirectory(prefix="seedplan-bench-cohort-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_cohort(n_cases, root / "cases", seed=11)
        gen_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = run_cohort(root / "cases", root / "out", workers=workers)
        dask_seconds = time.perf_counter() - t0
        options = {"formalism": "1d", "gate_mm": 10.0}
        t0 = time.perf_counter()
        serial = [analyse_case(c.to_dict(), options) for c in discover_cases(root / "cases")]
        serial_seconds = time.perf_counter() - t0
    per_case = [float(r["seconds"]) for r in run.rows if isinstance(r.get("seconds"), float)]
    median_case = statistics.median(per_case) if per_case else math.nan
    t0 = time.perf_counter()
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    with cluster, Client(cluster):
        pass
    startup = time.perf_counter() - t0
    projected_s = 1000 * median_case / 32 + startup
    ok = [r for r in run.rows if r["status"] == "ok"]
    seeds = [r["seeds_planned"] for r in run.rows]
    same = all(
        a["status"] == b["status"]
        and (a.get("post_d90_gy") is None) == (b.get("post_d90_gy") is None)
        and math.isclose(a.get("post_d90_gy") or 0.0, b.get("post_d90_gy") or 0.0, rel_tol=1e-6)
        for a, b in zip(run.rows, serial, strict=True)
    )
    per_minute = 60.0 * n_cases / dask_seconds
    notes = (
        f"{n_cases} cases ({min(seeds)}–{max(seeds)} seeds, {len(ok)} ok), {workers} workers: "
        f"{per_minute:.1f} cases/min (serial {60.0 * n_cases / serial_seconds:.1f}); median "
        f"{median_case:.1f} s per case in a worker; cluster start {startup:.1f} s; projected "
        f"1000 cases on 32 workers: {projected_s / 60:.1f} min; generation {gen_seconds:.0f} s "
        f"(not timed); Dask and serial tables {'agree' if same else 'DIFFER'}"
    )
    return [
        {
            "name": f"cohort_{n_cases}_cases_{workers}_workers",
            "seconds": dask_seconds,
            "baseline_seconds": serial_seconds,
            "speedup": serial_seconds / dask_seconds if dask_seconds > 0 else math.inf,
            "goal": "measure: cases/min, 1000 on 32",
            "passed_goal": bool(len(ok) == n_cases and same),
            "notes": notes,
            "cases_per_minute": per_minute,
            "median_case_seconds": median_case,
            "projected_1000_cases_32_workers_s": projected_s,
        }
    ]


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run_benchmarks(quick="--quick" in sys.argv), indent=1, default=float))
