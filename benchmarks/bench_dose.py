"""Dose-engine benchmark script: ``.venv/bin/python benchmarks/bench_dose.py [--json] [--quick]``.

Runs :func:`dose.bench_dose.run_benchmarks` (the same numbers ``seedplan bench`` prints).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.commands.bench_cmd import format_table
from dose.bench_dose import machine_info, run_benchmarks


def main(argv: list[str]) -> int:
    rows = [{"module": "dose.bench_dose", **r} for r in run_benchmarks("--quick" in argv)]
    # machine info after the run, so numba's threading layer is initialised and reported
    report = {"machine": machine_info(), "modules": ["dose.bench_dose"], "benchmarks": rows}
    print(json.dumps(report, default=float) if "--json" in argv else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
