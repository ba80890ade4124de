"""``seedplan bench [--json]``: run every benchmark module and print the numbers side by side.

Benchmark modules (each optional, imported only when present): :data:`BENCH_MODULES`, one per
capability (dose engine, DVH, plan history and files, contouring, brush redraw, live isodoses,
the GUI drag, auto-planning, seed detection, exports, cohort). Each exposes
``run_benchmarks() -> list[dict]`` with the keys ``name, seconds, baseline_seconds, speedup,
goal, passed_goal, notes``. The output names the machine
(nproc, CPU model, numba threads) because the goals are stated for a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

BENCH_MODULES = (
    "benchmarks.bench_dose",
    "benchmarks.bench_dvh",
    "benchmarks.bench_plan",
    "benchmarks.bench_structures",
    "benchmarks.bench_brush",
    "benchmarks.bench_live_dose",
    "benchmarks.bench_drag",
    "benchmarks.bench_autoplan",
    "benchmarks.bench_detect",
    "benchmarks.bench_export",
    "benchmarks.bench_cohort",
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="performance benchmarks (fast code vs a numpy baseline)",
        description="Run the benchmarks side by side with a straightforward numpy baseline.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    p.set_defaults(run=run)
    return p


def _machine() -> dict[str, Any]:
    try:
        # By name, like every benchmark module: benchmarks sit above app (GUI benchmarks drive
        # the real window), so app never imports them statically.
        machine_info = importlib.import_module("benchmarks.bench_dose").machine_info
    except ModuleNotFoundError:
        import os

        return {"nproc": os.cpu_count()}
    return machine_info()


def collect(quick: bool = False) -> dict[str, Any]:
    """Run all available benchmark modules; returns {"machine": ..., "benchmarks": [...]}."""
    results: list[dict[str, Any]] = []
    modules: list[str] = []
    for name in BENCH_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not written yet
            raise
        modules.append(name)
        fn = mod.run_benchmarks
        try:
            rows = fn(quick=quick)  # type: ignore[call-arg]
        except TypeError:
            rows = fn()
        for row in rows:
            results.append({"module": name, **row})
    return {"machine": _machine(), "modules": modules, "benchmarks": results}


def _fmt_s(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    return f"{v * 1000:.1f} ms" if v < 1.0 else f"{v:.2f} s"


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "Machine: " + ", ".join(f"{k}={v}" for k, v in m.items()),
        "",
        f"{'benchmark':58s} {'time':>10s} {'numpy':>10s} {'speedup':>8s}  {'goal':28s} ok",
    ]
    for r in report["benchmarks"]:
        sp = "-" if r.get("speedup") is None else f"{float(r['speedup']):.1f}x"
        ok = "yes" if r.get("passed_goal") else "NO"
        lines.append(
            f"{str(r['name'])[:58]:58s} {_fmt_s(r.get('seconds')):>10s} "
            f"{_fmt_s(r.get('baseline_seconds')):>10s} {sp:>8s}  {str(r.get('goal', ''))[:28]:28s}"
            f" {ok}"
        )
        if r.get("notes"):
            lines.append(f"    {r['notes']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = collect(quick=bool(getattr(args, "quick", False)))
    if args.json:
        sys.stdout.write(json.dumps(report, default=float) + "\n")
    else:
        sys.stdout.write(format_table(report) + "\n")
    return 0
