"""The cohort pipeline on Dask: one case per task, resumable, bounded memory.

:func:`run_cohort` hashes every case's inputs (:mod:`planner.cohort.cases`), skips the cases
whose stored result (``DIR/cases/<case_id>.json``) has the same hash, and submits the others, one
task per case, to a Dask ``distributed`` cluster: by default a :class:`distributed.LocalCluster`
of single-threaded worker processes on this machine's cores (``workers``), or the scheduler at
``scheduler`` (``tcp://host:8786``). Each result is written as soon as it arrives, so an
interrupted run resumes where it stopped.

Memory: a worker runs one case at a time (one thread per worker); a task receives only paths,
loads the CTs itself, and returns a small dict (no image); nothing is held after its case.
Worker processes get ``NUMBA_NUM_THREADS=1`` so N workers use N cores, not N². Each worker is
warmed once before its first case (:class:`planner.cohort.workers.WarmWorker`: imports and
the dose kernels), so a case's ``seconds`` are its own; the run records the cluster start, the
warm-up, and every worker's peak and final resident memory (``worker_memory``; each row also
carries its worker's ``worker_pid``, ``rss_after_mb`` and ``peak_rss_mb`` in the JSON).

With ``robustness_samples`` N > 0, each analysed case's plan is also evaluated under N sampled
needle-placement errors (:func:`planner.optimise.robustness.robustness`, its default error
model, fixed random seed, 2D formalism as ``seedplan robustness``), giving the ``robust_*``
percentile columns; N is part of the content hash, so a re-run with another N recomputes.

A case that fails never stops the others: bad input (:class:`InputError`) → ``failed`` with its
one-line reason; a detection that disagrees with the seeds implanted → ``refused`` (post-op
metrics and seed-location counts withheld); anything else (a bug, a worker that died) →
``error`` with the exception, and ``error`` cases are retried on the next run.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn, report
from planner.cohort.cases import (
    PIPELINE_VERSION,
    CaseInput,
    HashCache,
    case_content_sha256,
    discover_cases,
)
from planner.cohort.table import (
    COLUMNS,
    LOCATION_COLUMNS,
    robust_columns,
    row_from_verification,
    summarise,
)
from planner.cohort.workers import WarmWorker, process_memory

__all__ = [
    "CohortRun",
    "analyse_case",
    "run_cohort",
    "verification_doc",
    "write_cohort_outputs",
]

RUN_FILE = "cohort_run.json"
#: The random seed of the robustness samples (the same samples for every run of a case).
ROBUSTNESS_RNG_SEED = 1
RUN_FORMAT = "seedplan-cohort-run"
CASES_SUBDIR = "cases"
#: Statuses whose stored result is final for unchanged inputs (``error`` is retried).
FINAL = ("ok", "refused", "failed")


def verification_doc(v) -> dict[str, Any]:
    """The parts of a :class:`planner.postop.verify.Verification` the table needs, in the
    layout of ``seedplan verify``'s verification.json."""
    return {
        "formalism": v.formalism,
        "detection": {"found": len(v.detection.seeds), "expected": v.detection.expected},
        "matching": {
            "gate_mm": v.match.gate_mm,
            "pairs": [
                {"planned": int(i), "implanted": int(j), "displacement_mm": list(map(float, d))}
                for (i, j), d in zip(v.match.pairs, v.match.displacement_mm, strict=True)
            ],
            "unmatched_planned": list(v.match.unmatched_planned),
            "unmatched_implanted": list(v.match.unmatched_implanted),
        },
        "planned_metrics": v.planned.metrics_dict(),
        "postop_metrics": v.postop.metrics_dict(),
        "warnings": list(v.warnings),
        # As verification.json's "seed_locations", without the per-seed list.
        "seed_locations": None
        if v.locations is None
        else {"migration_mm": v.locations.migration_mm, "counts": v.locations.counts()},
    }


def _names(plan) -> tuple[str | None, str | None]:
    """(target, cord) structure names: the prescription's structure; an OAR named *cord*."""
    target = None
    if plan.prescription is not None:
        s = plan.structure(plan.prescription.structure_id)
        target = s.name if s is not None else None
    if target is None:
        target = next((s.name for s in plan.structures if s.role == "target"), None)
    cord = next(
        (s.name for s in plan.structures if s.role == "oar" and "cord" in s.name.lower()), None
    )
    return target, cord


def _blank(case: CaseInput, status: str, reason: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(case_id=case.case_id, status=status, reason=reason)
    return row


def analyse_case(case_dict: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """One case (a Dask task): the table row. Never raises for bad input (status/reason)."""
    from planner.imaging.ct_loader import load_ct
    from planner.plan.plan_file import load_plan
    from planner.postop.verify import verify_plan

    case = CaseInput(**case_dict)
    t0 = time.perf_counter()
    if case.problem:
        return _blank(case, "failed", case.problem)
    try:
        plan = load_plan(case.plan).plan
        target, cord = _names(plan)
        if case.verification:
            doc = json.loads(Path(case.verification).read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or "postop_metrics" not in doc:
                raise InputError("not a SeedPlan verification", case.verification)
            source = "stored verification"
        else:
            if not case.planning_ct:
                raise InputError("the plan records no planning CT", case.plan)
            planning_ct, _ = load_ct(case.planning_ct)
            postop_ct, _ = load_ct(case.postop_ct)
            v = verify_plan(
                plan,
                planning_ct,
                postop_ct,
                formalism=str(options.get("formalism", "1d")),
                gate_mm=float(options.get("gate_mm", 10.0)),
                expected=case.seeds_implanted,
            )
            doc = verification_doc(v)
            del planning_ct, postop_ct, v
            source = "computed"
    except InputError as exc:
        return _blank(case, "failed", str(exc).splitlines()[0])
    except (ValueError, OSError) as exc:  # unreadable JSON, I/O
        return _blank(case, "failed", f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    finally:
        gc.collect()
    row = row_from_verification(doc, target=target, cord=cord, seeds_implanted=case.seeds_implanted)
    row.update(case_id=case.case_id, status="ok", reason="", source=source)
    implanted, found = row["seeds_implanted"], row["seeds_found"]
    if found is not None and implanted is not None and found != implanted:
        row["status"] = "refused"
        row["reason"] = (
            f"detection disagreement: {found} seeds found, {implanted} implanted "
            "(post-op metrics withheld)"
        )
        for c in COLUMNS:
            if c.startswith("post_") or c in LOCATION_COLUMNS:
                row[c] = None
    n_samples = int(options.get("robustness_samples", 0) or 0)
    if n_samples > 0:
        row.update(_robustness_cells(plan, n_samples, row))
    row["seconds"] = time.perf_counter() - t0
    row.update(_memory_cells())
    return row


def _memory_cells() -> dict[str, Any]:
    """The worker's process after the case (JSON only): pid, resident set now and peak (MiB)."""
    from planner.cohort.workers import process_memory

    m = process_memory()
    return {"worker_pid": m["pid"], "rss_after_mb": m["rss_mb"], "peak_rss_mb": m["peak_rss_mb"]}


def _robustness_cells(plan, samples: int, row: dict[str, Any]) -> dict[str, Any]:
    """The ``robust_*`` cells of ``plan`` (a plan it cannot evaluate: empty cells, and why in
    the reason)."""
    from planner.optimise.robustness import robustness

    try:
        r = robustness(plan, samples=samples, rng_seed=ROBUSTNESS_RNG_SEED)
    except InputError as exc:
        why = f"robustness not computed: {str(exc).splitlines()[0]}"
        return {"reason": f"{row['reason']}; {why}" if row.get("reason") else why}
    return robust_columns(r.percentiles(), samples)


@dataclass
class CohortRun:
    """The outcome of :func:`run_cohort`."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    scheduler: str = ""
    #: Cluster start (s; 0 with ``--scheduler``) and the workers' warm-up (s, all in parallel).
    startup_seconds: float = 0.0
    warm_seconds: float = 0.0
    #: Per worker after the run: ``pid``, ``peak_rss_mb`` and ``rss_mb`` (MiB).
    worker_memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "computed": self.computed,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "workers": self.workers,
            "scheduler": self.scheduler,
            "startup_seconds": self.startup_seconds,
            "warm_seconds": self.warm_seconds,
            "worker_memory": self.worker_memory,
            "table": self.rows,
            "summary": self.summary,
        }


def _check_out(out: Path, cases_path: Path) -> Path:
    from planner.files.safe_write import check_output_folder

    out = check_output_folder(out)
    try:
        inside = out.resolve().is_relative_to(cases_path.resolve())
    except OSError:
        inside = False
    if inside and cases_path.is_dir():
        raise InputError("is inside the cases folder: choose a folder outside it", out)
    if out.exists() and any(out.iterdir()) and not (out / RUN_FILE).is_file():
        raise InputError("is not empty and not a previous cohort run: choose another folder", out)
    return out


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("row"), dict) else None


def _write_json(path: Path, doc: Any) -> None:
    from planner.files.safe_write import write_text

    write_text(path, json.dumps(doc, indent=1, default=float) + "\n", force=True)


def _client(scheduler: str | None, workers: int, processes: bool):
    """(client, cluster or None) for ``scheduler`` or a new local cluster."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the Dask scheduler {scheduler!r} ({exc})") from None
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with dask.config.set({"distributed.worker.daemon": False}):
        kwargs: dict[str, Any] = dict(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        if processes:
            kwargs["env"] = env
        cluster = LocalCluster(**kwargs)
    return Client(cluster), cluster


def run_cohort(
    cases: str | Path,
    out: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    formalism: str = "1d",
    gate_mm: float = 10.0,
    robustness_samples: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> CohortRun:
    """Analyse every case under ``cases`` into ``out`` (module docstring); returns the table.

    ``workers``: local worker processes (default: this machine's cores, at most the number of
    cases to run); ignored with ``scheduler``. ``processes=False`` runs the local workers as
    threads in this process (tests). ``robustness_samples``: N > 0 adds the robustness
    percentiles of each plan under N needle-error samples (module docstring); 0: none.
    """
    from distributed import wait

    t0 = time.perf_counter()
    if formalism not in ("1d", "2d"):
        raise InputError(f"unknown formalism {formalism!r}; use '1d' or '2d'")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")
    if not 0 <= robustness_samples <= 100_000:
        raise InputError(f"--robustness must be 1-100000 samples (got {robustness_samples})")
    cases_path = Path(cases)
    found = discover_cases(cases_path)
    out = _check_out(Path(out), cases_path)
    out.mkdir(exist_ok=True)
    (out / CASES_SUBDIR).mkdir(exist_ok=True)
    options: dict[str, Any] = {"formalism": formalism, "gate_mm": float(gate_mm)}
    if robustness_samples:  # absent when off: hashes of runs without it are unchanged
        options["robustness_samples"] = int(robustness_samples)
    cache_path = out / "hash_cache.json"
    cache = HashCache()
    try:
        raw = json.loads(cache_path.read_text())
        cache.entries = {k: tuple(v) for k, v in raw.items()}  # type: ignore[misc]
    except (OSError, ValueError, TypeError):
        pass
    _write_json(
        out / RUN_FILE, {"format": RUN_FORMAT, "pipeline": PIPELINE_VERSION, "options": options}
    )
    rows: dict[str, dict[str, Any]] = {}
    todo: list[tuple[CaseInput, str]] = []
    skipped: list[str] = []
    for case in found:
        sha = case_content_sha256(case, options, cache)
        rec = _load_record(out / CASES_SUBDIR / f"{case.case_id}.json")
        if rec is not None and rec.get("input_sha256") == sha and rec["row"].get("status") in FINAL:
            rows[case.case_id] = rec["row"]
            skipped.append(case.case_id)
        elif case.problem:
            row = _blank(case, "failed", case.problem)
            row["input_sha256"] = sha
            _write_json(
                out / CASES_SUBDIR / f"{case.case_id}.json", {"input_sha256": sha, "row": row}
            )
            rows[case.case_id] = row
        else:
            todo.append((case, sha))
    _write_json(cache_path, cache.entries)
    n_total = len(todo)
    report(progress, 0.0, f"{n_total} case(s) to analyse, {len(skipped)} unchanged")
    n_workers = 0
    address = ""
    startup = warm = 0.0
    memory: dict[str, dict[str, Any]] = {}
    if todo:
        n_workers = workers or max(1, min(os.cpu_count() or 1, n_total))
        t_start = time.perf_counter()
        client, cluster = _client(scheduler, n_workers, processes)
        startup = time.perf_counter() - t_start
        try:
            address = str(client.scheduler.address) if scheduler else "local"
            t_warm = time.perf_counter()
            client.register_plugin(WarmWorker())  # every worker, before its first case
            warm = time.perf_counter() - t_warm
            if scheduler:
                n_workers = len(client.scheduler_info().get("workers", {}))
            futures = {
                client.submit(
                    analyse_case,
                    case.to_dict(),
                    options,
                    key=f"seedplan-cohort-{case.case_id}-{sha[:16]}",
                    pure=False,
                ): (case, sha)
                for case, sha in todo
            }
            pending = set(futures)
            done_n = 0
            while pending:
                if cancel is not None and cancel():
                    client.cancel(list(pending))
                    raise Cancelled("cohort run cancelled (finished cases are kept)")
                try:
                    res = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for fut in res.done:
                    pending.discard(fut)
                    case, sha = futures[fut]
                    if fut.status == "finished":
                        row = fut.result()
                    else:
                        exc = fut.exception()
                        first = str(exc).splitlines()[0] if str(exc) else ""
                        row = _blank(case, "error", f"{type(exc).__name__}: {first}")
                    fut.release()
                    row["input_sha256"] = sha
                    _write_json(
                        out / CASES_SUBDIR / f"{case.case_id}.json",
                        {"input_sha256": sha, "row": row},
                    )
                    rows[case.case_id] = row
                    done_n += 1
                    report(progress, done_n / n_total, f"{case.case_id}: {row['status']}")
            memory = {str(k): v for k, v in client.run(process_memory).items()}
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    table = [rows[c.case_id] for c in found]
    run = CohortRun(
        rows=table,
        summary=summarise(table),
        computed=[c.case_id for c, _ in todo],
        skipped=skipped,
        seconds=time.perf_counter() - t0,
        workers=n_workers,
        scheduler=address,
        startup_seconds=startup if not scheduler else 0.0,
        warm_seconds=warm,
        worker_memory=memory,
    )
    return run


def case_seconds(rows: list[dict[str, Any]]) -> list[float]:
    """Per-case analysis times (s) of the computed rows that carry one."""
    return [float(r["seconds"]) for r in rows if isinstance(r.get("seconds"), (int, float))]


OUTPUT_FILES = (
    "cohort_table.csv",
    "cohort_table.json",
    "cohort_summary.csv",
    "cohort_summary.json",
    "cohort_report.pdf",
)


def write_cohort_outputs(run: CohortRun, out: str | Path, *, title: str = "") -> list[Path]:
    """Write the per-case table, the summary (CSV and JSON) and the one-page PDF into ``out``
    (a cohort results folder: its previous outputs are replaced)."""
    from planner.cohort.report import write_report_pdf
    from planner.cohort.table import summary_csv, table_csv
    from planner.files.safe_write import write_text

    out = Path(out)
    paths = [
        write_text(out / "cohort_table.csv", table_csv(run.rows), force=True),
        write_text(
            out / "cohort_table.json",
            json.dumps({"columns": list(COLUMNS), "rows": run.rows}, indent=1, default=float)
            + "\n",
            force=True,
        ),
        write_text(out / "cohort_summary.csv", summary_csv(run.summary), force=True),
        write_text(
            out / "cohort_summary.json",
            json.dumps(run.summary, indent=1, default=float) + "\n",
            force=True,
        ),
    ]
    paths.append(write_report_pdf(out / "cohort_report.pdf", run.rows, run.summary, title=title))
    return paths
