"""``seedplan bench [--json] [--quick] [--only NAME ...]``: run the benchmark modules and print
the numbers side by side.

Benchmark modules (each optional, imported only when present): :data:`BENCH_MODULES`, one per
capability (dose engine, DVH, plan history and files, contouring, brush redraw, live isodoses,
the GUI drag, auto-planning, seed detection, exports, cohort). Each exposes
``run_benchmarks() -> list[dict]`` with the keys ``name, seconds, baseline_seconds, speedup,
goal, passed_goal, notes``. ``--only brush drag`` runs the modules named ``bench_brush`` and
``bench_drag`` (an unknown name: one line listing the known ones, exit status 2). The output
names the machine
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
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=module_names(),
        help="run only these benchmarks (" + ", ".join(module_names()) + ")",
    )
    p.set_defaults(run=run)
    return p


def module_names() -> list[str]:
    """Short names of the benchmark modules (``bench_brush`` → ``brush``), in run order."""
    return [name.rsplit(".", 1)[1].removeprefix("bench_") for name in BENCH_MODULES]


def selected_modules(only: list[str] | None = None) -> list[str]:
    """Dotted names of the benchmark modules to run, in run order (``only``: short names)."""
    return [
        name
        for name, short in zip(BENCH_MODULES, module_names(), strict=True)
        if not only or short in only
    ]


def _machine() -> dict[str, Any]:
    try:
        # By name, like every benchmark module: benchmarks sit above app (GUI benchmarks drive
        # the real window), so app never imports them statically.
        machine_info = importlib.import_module("benchmarks.bench_dose").machine_info
    except ModuleNotFoundError:
        import os

        return {"nproc": os.cpu_count()}
    return machine_info()


def collect(quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    """Run the available benchmark modules (``only``: those short names, see
    :func:`module_names`); returns {"machine": ..., "modules": [...], "benchmarks": [...]}."""
    results: list[dict[str, Any]] = []
    modules: list[str] = []
    for name in selected_modules(only):
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
    report = collect(quick=bool(getattr(args, "quick", False)), only=getattr(args, "only", None))
    if args.json:
        sys.stdout.write(json.dumps(report, default=float) + "\n")
    else:
        sys.stdout.write(format_table(report) + "\n")
    return 0
