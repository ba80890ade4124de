"""``seedplan cohort CASES --out DIR [--scheduler ADDRESS] [--workers N] [--formalism 1d|2d]
[--robustness N] [--json]``: re-analyse a cohort on Dask (issue 15).

CASES is a folder with one subfolder per case (a plan ``*.seedplan`` plus its post-op CT
``postop.nrrd``/``postop/``, or a stored ``verification.json``) or a CSV manifest
(:mod:`planner.cohort.cases`). Each case that needs it is detected, registered, matched and
re-dosed (:func:`planner.postop.verify.verify_plan`), one case per Dask task, on a local cluster
of this machine's cores or on ``--scheduler``. DIR receives ``cases/<id>.json`` (one per case, as
it finishes), ``cohort_table.csv/.json``, ``cohort_summary.csv/.json`` and
``cohort_report.pdf``. A re-run skips the cases whose inputs are unchanged (content hashes).
``--robustness N`` adds each plan's target D90, V100 and cord D0.1 cm³ under N sampled needle
placement errors (5th/50th/95th percentiles; :mod:`planner.optimise.robustness`).

Exit status 0 when the run completed (failed cases are in the table); 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "cohort",
        help="re-analyse a cohort of implants (plans + post-op CTs) on Dask",
        description="Detect, register, match and re-dose every case of a cohort (a folder of "
        "case folders or a CSV manifest) and write the per-case table, the summary statistics "
        "and a one-page PDF.",
    )
    p.add_argument("cases", metavar="CASES", help="folder of case folders, or a CSV manifest")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="results folder (new, or a previous cohort run: unchanged cases are skipped)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a Dask distributed scheduler (e.g. tcp://host:8786); default: a local cluster",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local worker processes (default: the number of cores)",
    )
    p.add_argument(
        "--formalism",
        choices=("1d", "2d"),
        default="1d",
        help="post-op dose formalism (default 1d: seed orientation uncertain)",
    )
    p.add_argument("--gate-mm", type=float, default=10.0, help="matching gate (default 10 mm)")
    p.add_argument(
        "--robustness",
        type=int,
        default=0,
        metavar="N",
        help="also evaluate each plan under N sampled needle placement errors (D90, V100, cord "
        "D0.1cm³: 5th/50th/95th percentiles); default: off",
    )
    p.add_argument("--json", action="store_true", help="print the table and summary as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from planner.cohort.run import run_cohort, write_cohort_outputs

    interactive = sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if interactive:
            bar = "#" * int(30 * fraction)
            sys.stderr.write(f"\r[{bar:<30}] {100 * fraction:5.1f} % {message[:40]:<40}")
            sys.stderr.flush()
        elif message:
            sys.stderr.write(f"seedplan cohort: {100 * fraction:5.1f} % {message}\n")

    try:
        result = run_cohort(
            args.cases,
            args.out,
            scheduler=args.scheduler,
            workers=args.workers,
            formalism=args.formalism,
            gate_mm=args.gate_mm,
            robustness_samples=args.robustness,
            progress=progress,
        )
    finally:
        if interactive:
            sys.stderr.write("\n")
    paths = write_cohort_outputs(result, args.out)
    s = result.summary
    if args.json:
        doc = {**result.to_dict(), "outputs": [str(p) for p in paths]}
        sys.stdout.write(json.dumps(doc, default=float) + "\n")
    else:
        print(
            f"cohort: {s['n_cases']} cases, {s['n_analysed']} analysed "
            f"({len(result.computed)} computed, {len(result.skipped)} unchanged) in "
            f"{result.seconds:.1f} s; results in {args.out}"
        )
    for r in result.rows:
        if r.get("status") != "ok":
            sys.stderr.write(f"seedplan cohort: {r['case_id']}: {r['status']}: {r['reason']}\n")
    return 0
