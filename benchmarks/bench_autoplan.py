"""Benchmark: automatic planning (issue 12) on the demo case and generated variants, beside a
uniform loading of the same needles; robustness of 100 samples.

``run_benchmarks(quick=False) -> list[dict]`` (``seedplan bench`` keys: ``name, seconds,
baseline_seconds, speedup, goal, passed_goal, notes``) and :func:`results_table` (the table of
docs/autoplan.md: seeds, needles, D90, V100, V150, cord D0.1 cm³ and times, autoplan vs the
uniform loading of its needles).

Cases (:func:`make_case`): the variants of :mod:`planner.demo.variants` (``VARIANTS``: the demo
case and tumours painted at T4-L3, left/right, small/large, wrapping the cord), with the demo
plan's structures and goals (planner.demo.plan.build_demo_plan: GTV, PTV = GTV + 5 mm −
(cord + 2 mm), PTV_eval = PTV − (cord + 8 mm) prescribed 110 Gy D90, cord D0.1 cm³ ≤ 50 Gy;
below the conus the cord structure holds the cauda equina). The former case names are aliases:
``right`` = T9-right, ``large`` = T9-large, ``small`` = T9-small, ``wrap`` = T9-wrap (``T6``,
``T11`` as before).
"""

from __future__ import annotations

import time

from planner.demo.variants import VARIANTS, make_variant
from planner.imaging.volume import CTVolume
from planner.plan.model import Plan

__all__ = ["CASES", "make_case", "results_table", "run_benchmarks"]

CASES = VARIANTS
#: The former case names (before the variants were painted by the phantom).
ALIASES = {"right": "T9-right", "large": "T9-large", "small": "T9-small", "wrap": "T9-wrap"}
GOAL_AUTOPLAN_S = 10.0
GOAL_ROBUST_S = 10.0


def make_case(name: str, *, matrix: int = 256) -> tuple[Plan, CTVolume]:
    """A plan (structures, prescription, source, goals; demo-plan needles) and its CT:
    :func:`planner.demo.variants.make_variant` of ``name`` (or of its alias)."""
    return make_variant(ALIASES.get(name, name), matrix=matrix)


def _row(name: str, plan: Plan, ct: CTVolume, options=None) -> dict[str, object]:
    from planner.optimise.autoplan import AutoplanOptions, autoplan, uniform_loading
    from planner.plan.dosimetry import compute_plan_dosimetry

    t0 = time.perf_counter()
    res = autoplan(plan, ct, options=options or AutoplanOptions())
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    uniform = uniform_loading(res.plan)
    base = compute_plan_dosimetry(uniform, ct)
    base_s = time.perf_counter() - t1
    rx = plan.structure(plan.prescription.structure_id).name  # type: ignore[union-attr]

    def figures(d, p: Plan) -> dict[str, float]:
        t, c = d.metrics[rx], d.metrics.get("SpinalCord")
        return {
            "seeds": len(p.seeds),
            "needles": len({s.needle_id for s in p.seeds}),
            "d90_gy": t.d90_gy,
            "v100_percent": t.v100_percent,
            "v150_percent": t.v150_percent,
            "cord_d0_1cc_gy": c.d0_1cc_gy if c is not None else float("nan"),
        }

    out = {
        "case": name,
        "autoplan": figures(res.dosimetry, res.plan),
        "uniform": figures(base, uniform),
        "seconds": seconds,
        "uniform_dosimetry_seconds": base_s,
        "failed_goals": res.failed_goals,
        "time_budget_cut": res.budget_cut,
        "phase_seconds": res.phase_seconds,
        "plan": res.plan,
        "rejected": res.candidates.rejected,
        "candidates": len(res.candidates.candidates),
        "cord_limit_gy": 50.0,
        "notes": res.notes,
    }
    if res.v100_bound is not None:
        out["v100_bound_percent"] = res.v100_bound.v100_max_percent
        out["v100_bound_seconds"] = res.v100_bound.seconds
    if res.robust is not None:
        out["robust"] = res.robust.percentiles()
    return out


def results_table(cases=CASES, *, matrix: int = 256, options=None) -> list[dict[str, object]]:
    """One row per case (module docstring); ``options``: AutoplanOptions (default ones)."""
    rows = []
    for name in cases:
        plan, ct = make_case(name, matrix=matrix)
        rows.append(_row(name, plan, ct, options))
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    """The rows as the markdown table of docs/autoplan.md."""
    out = [
        "| case | plan | seeds | needles | D90 (Gy) | V100 (%) | V100 bound (%) | V150 (%) "
        "| cord D0.1cm³ (Gy) | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for kind in ("autoplan", "uniform"):
            f = r[kind]  # type: ignore[index]
            t = r["seconds"] if kind == "autoplan" else r["uniform_dosimetry_seconds"]
            bound = r.get("v100_bound_percent") if kind == "autoplan" else None
            b = "—" if bound is None else f"{bound:.1f}"
            cut = " (budget cut)" if kind == "autoplan" and r.get("time_budget_cut") else ""
            out.append(
                f"| {r['case']} | {kind}{cut} | {f['seeds']} | {f['needles']} | "
                f"{f['d90_gy']:.1f} | {f['v100_percent']:.1f} | {b} | {f['v150_percent']:.1f} | "
                f"{f['cord_d0_1cc_gy']:.1f} | {t:.1f} |"
            )
    return "\n".join(out)


def run_benchmarks(quick: bool = False) -> list[dict[str, object]]:
    """Autoplan of the full-resolution demo case (512², as ``seedplan demo`` writes it) and
    robustness of 100 samples of its result."""
    from planner.optimise.robustness import robustness

    plan, ct = make_case("demo", matrix=256 if quick else 512)
    row = _row("demo", plan, ct)
    t0 = time.perf_counter()
    rob = robustness(row["plan"], samples=20 if quick else 100)  # type: ignore[arg-type]
    rob_s = time.perf_counter() - t0
    return [
        {
            "name": "autoplan demo case",
            "seconds": row["seconds"],
            "baseline_seconds": row["uniform_dosimetry_seconds"],
            "speedup": None,
            "goal": f"<= {GOAL_AUTOPLAN_S:g} s",
            "passed_goal": float(row["seconds"]) <= GOAL_AUTOPLAN_S,  # type: ignore[arg-type]
            "notes": f"autoplan {row['autoplan']}; uniform loading of its needles "
            f"{row['uniform']} (baseline time: its exact dosimetry only); phases "
            + ", ".join(f"{k} {v:.2f} s" for k, v in row["phase_seconds"].items())  # type: ignore[union-attr]
            + ("; the time budget cut it short" if row["time_budget_cut"] else ""),
        },
        {
            "name": f"robustness {rob.d90_gy.size} samples",
            "seconds": rob_s,
            "baseline_seconds": None,
            "speedup": None,
            "goal": f"<= {GOAL_ROBUST_S:g} s (100 samples)",
            "passed_goal": rob_s <= GOAL_ROBUST_S,
            "notes": str(rob.percentiles()),
        },
    ]


if __name__ == "__main__":
    import json
    import sys

    from planner.optimise.autoplan import AutoplanOptions

    # python -m benchmarks.bench_autoplan [--bound] [--robust] [--approach any] [--matrix 512]
    # [CASE ...]
    args = sys.argv[1:]
    opts: dict[str, object] = {}
    matrix = 256
    if "--bound" in args:
        args.remove("--bound")
        opts["v100_bound"] = True
    if "--robust" in args:
        args.remove("--robust")
        opts["robust"] = True
    if "--approach" in args:
        i = args.index("--approach")
        opts["approach"] = args[i + 1]
        del args[i : i + 2]
    if "--matrix" in args:
        i = args.index("--matrix")
        matrix = int(args[i + 1])
        del args[i : i + 2]
    rows = results_table(args or CASES, matrix=matrix, options=AutoplanOptions(**opts))  # type: ignore[arg-type]
    print(markdown(rows))
    for r in rows:
        r.pop("plan", None)
    print(json.dumps(rows, default=float))
