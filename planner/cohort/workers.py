"""What a Dask worker of the cohort does once, and what it measures of itself.

:class:`WarmWorker` (a ``distributed`` worker plugin, registered by
:func:`planner.cohort.run.run_cohort` on every worker, also on workers that join a
``--scheduler`` cluster later) loads, before the worker's first case, the modules a case needs
and the dose kernels (:func:`dose.engine.warmup.warm_up`: numba's disk cache, or a compile the
very first time), so that the per-case times measured in a worker are the cases' own and the
warm-up is paid once per worker, at start, on every worker at the same time.

:func:`process_memory` is the memory of the process that calls it (a worker, via
``client.run``): its peak resident set since it started (the largest case it ran, as it ran one
case at a time) and its resident set now (after its cases: what it still holds).
"""

from __future__ import annotations

import resource
import time
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["WarmWorker", "process_memory", "warm_process"]

#: Source models whose kernels and tables are loaded up front (the cohort's usual seed).
WARM_MODELS = ("6711",)


def warm_process(models: tuple[str, ...] = WARM_MODELS) -> float:
    """Import what a case needs and load the dose kernels in this process; seconds taken."""
    t0 = time.perf_counter()
    import planner.imaging.ct_loader
    import planner.optimise.robustness
    import planner.plan.plan_file
    import planner.postop.verify  # noqa: F401 (imported for its side effect: loaded once)
    from dose.engine.warmup import warm_up

    warm_up(models)
    return time.perf_counter() - t0


def process_memory() -> dict[str, Any]:
    """This process: ``pid``, ``peak_rss_mb`` (since it started) and ``rss_mb`` (now), MiB."""
    import os

    import psutil  # a dependency of distributed

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "pid": os.getpid(),
        "peak_rss_mb": peak_kib / 1024.0,
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
    }


class WarmWorker(WorkerPlugin):
    """Warm a worker once, before its first case (module docstring)."""

    name = "seedplan-cohort-warm"

    def __init__(self, models: tuple[str, ...] = WARM_MODELS) -> None:
        self.models = tuple(models)
        self.seconds = 0.0

    def setup(self, worker) -> None:  # worker: a distributed.Worker
        self.seconds = warm_process(self.models)
