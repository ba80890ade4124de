"""Cohort re-analysis end to end on Dask (issue 15).

The seed-count spread of an 8-case cohort (the paper's 7–103 range) comes from the generator's
specs and needle layouts alone (:func:`planner.demo.cohort.planned_seed_count`); the whole
pipeline (generate, detect, register, match, dose) runs on two of those cases, the smallest and a
large one, plus two broken ones (on a 192² grid, to be quick): the table against each case's
known truth; a re-run skips unchanged cases; a changed case is redone (on a `--scheduler`
cluster); robustness percentiles; the CLI with a worker process on a manifest.

The generated cases and their first run are made once per test session and shared by the xdist
workers (a folder beside the workers' temporary folders, under a file lock); tests that change
a case or a results folder work on their own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cohort.run import CohortRun, run_cohort, write_cohort_outputs
from planner.demo.cohort import (
    NEEDLE_ERRORS,
    cohort_specs,
    planned_seed_count,
    write_cohort_case,
)
from tests.conftest import REPO_ROOT, built_once

N_CASES = 8
COHORT_SEED = 5
MATRIX = 192
SPECS = cohort_specs(N_CASES, seed=COHORT_SEED, matrix=MATRIX)
IDS = [s.case_id for s in SPECS]
#: Known detection limitation (planner/postop/detection/detect.py, being worked on): on the dense
#: case-008 (80 seeds at T8) detection may find one seed more or fewer (a seed split in two, or two
#: touching seeds taken for one). The table must then refuse the case with its reason and
#: withhold its post-op metrics; when detection finds 80, the case is checked as every other.
KNOWN_SPLIT = {"case-008": 80}
#: The cases run through the whole pipeline: the smallest tumour and a large one (80 seeds).
SMALLEST = min(SPECS, key=lambda s: s.size).case_id
FULL = (SMALLEST, "case-008")
SHARED = "cohort-run-shared"


def _build(root: Path) -> None:
    cases = root / "cases"
    cases.mkdir(parents=True)
    for spec in SPECS:
        if spec.case_id in FULL:
            write_cohort_case(spec, cases / spec.case_id)
    # An unreadable post-op CT, and a folder with no plan: reported, never stopping the others.
    broken = cases / "case-broken"
    shutil.copytree(cases / SMALLEST, broken)
    (broken / "postop.nrrd").write_bytes(b"NRRD0004\ngarbage")
    (cases / "case-noplan").mkdir()
    (cases / "case-noplan" / "postop.nrrd").write_bytes(b"x")
    first = run_cohort(cases, root / "results", workers=1, processes=False)
    (root / "first.json").write_text(json.dumps(first.to_dict(), default=float))


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> tuple[Path, Path, CohortRun]:
    """(cases folder, results folder of the first run, that run): built once per session, by
    the first xdist worker that needs it. Read-only for the tests."""
    root = built_once(tmp_path_factory, SHARED, _build)
    doc = json.loads((root / "first.json").read_text())
    first = CohortRun(
        rows=doc["table"], summary=doc["summary"], computed=doc["computed"], skipped=doc["skipped"]
    )
    return root / "cases", root / "results", first


def _truth(cases, cid):
    return json.loads((cases / cid / "truth.json").read_text())


def _manifest_of_smallest(cases, folder, name: str | None = None):
    """(a CSV manifest listing the smallest case as ``name``, that case's id)."""
    manifest = folder / "m.csv"
    manifest.write_text(
        f"case_id,plan,postop_ct\n{name or SMALLEST},{cases}/{SMALLEST}/plan.seedplan,"
        f"{cases}/{SMALLEST}/postop.nrrd\n"
    )
    return manifest, SMALLEST


def test_generated_cohort_spans_the_papers_seed_range(cohort) -> None:
    """`seedplan demo --cohort N`: tumour sizes spread over the cohort give seed counts over the
    paper's 7–103 range (median 48), growing with the size; the implanted seeds keep their
    needles' measured errors (no fallback to the planned positions)."""
    from dataclasses import asdict

    from scipy.stats import spearmanr

    cases, _, run = cohort
    counts = {s.case_id: planned_seed_count(s) for s in SPECS}
    seeds = [counts[c] for c in IDS]
    assert min(seeds) <= 12 and max(seeds) >= 80, seeds
    assert 15 <= sorted(seeds)[N_CASES // 2] <= 80, seeds
    sizes = [s.size for s in SPECS]
    assert spearmanr(sizes, seeds).statistic > 0.9, (sizes, seeds)  # spacings vary per case
    assert len({s.level for s in SPECS}) >= 2
    assert counts[SMALLEST] == min(seeds) and counts["case-008"] >= 70
    rows = {r["case_id"]: r for r in run.rows}
    for cid in FULL:  # the generated cases: the same plan as the layout, their truth complete
        t = _truth(cases, cid)
        assert t["spec"] == asdict(SPECS[IDS.index(cid)])
        assert t["seeds_implanted"] == t["seeds_planned"] == counts[cid] == len(t["implanted_mm"])
        assert all(e["error_scale"] > 0 for e in t["needle_errors"])
        # The robustness model's needle errors, its 55 mm lever cap included.
        assert t["needle_error_model"] == NEEDLE_ERRORS.to_dict()
        assert t["needle_error_model"]["max_lever_mm"] == 55.0
        assert set(t["patient_shift"]) == {"rotation_deg", "translation_mm", "postop_to_plan"}
        assert rows[cid]["seeds_planned"] == t["seeds_planned"]  # the table's are the truth's


def test_table_matches_the_known_truth(cohort, tmp_path) -> None:
    from planner.plan.plan_file import load_plan
    from planner.postop.locations import locate_seeds

    cases, results, run = cohort
    rows = {r["case_id"]: r for r in run.rows}
    assert sorted(rows) == [*FULL, "case-broken", "case-noplan"]
    refused = []
    for cid in FULL:
        t, r = _truth(cases, cid), rows[cid]
        if cid in KNOWN_SPLIT and r["status"] == "refused":
            implanted, found = KNOWN_SPLIT[cid], r["seeds_found"]
            assert abs(found - implanted) == 1, r
            assert f"{found} seeds found, {implanted} implanted" in r["reason"]
            assert r["seeds_implanted"] == t["seeds_implanted"] == implanted
            assert r["post_d90_gy"] is None and r["pre_d90_gy"] is not None
            assert r["seeds_outside_target"] is None and r["seeds_migrated"] is None
            refused.append(cid)
            continue
        assert r["status"] == "ok", r["reason"]
        assert r["seeds_planned"] == t["seeds_planned"] >= 5
        assert r["seeds_implanted"] == r["seeds_found"] == t["seeds_implanted"]
        # Post-op D90 from the detected seeds vs D90 from the true implanted seeds (1D, same grid).
        assert r["post_d90_gy"] == pytest.approx(t["true_postop_d90_gy_1d"], rel=0.03)
        assert r["postop_formalism"] == "1d" and r["pre_d90_gy"] > 0
        assert r["total_sk_U"] == pytest.approx(t["seeds_planned"] * t["strength_U"], rel=1e-3)
        # The needles really missed: displacements of millimetres, as in CT-guided practice.
        assert 1.0 < r["median_displacement_mm"] < 12.0
        assert r["pre_cord_d0_1cc_gy"] is not None and r["post_cord_dmax_0_03cc_gy"] is not None
        # Seed locations of the detected seeds: those of the true implanted ones (a seed on
        # the target's surface may fall either side with the sub-mm detection error: ±1).
        true = locate_seeds(load_plan(cases / cid / "plan.seedplan").plan, t["implanted_mm"])
        c = true.counts()
        assert abs(r["seeds_outside_target"] - c["outside"]) <= 1, (r, c)
        assert abs(r["seeds_migrated"] - c["migrated"]) <= 1, (r, c)
    assert (
        rows["case-broken"]["status"] == "failed" and "postop.nrrd" in rows["case-broken"]["reason"]
    )
    assert rows["case-noplan"]["status"] == "failed" and "no plan" in rows["case-noplan"]["reason"]
    assert sorted(run.computed) == sorted([*FULL, "case-broken"])
    assert run.summary["n_analysed"] == len(FULL) - len(refused)
    out = tmp_path / "results"
    shutil.copytree(results, out)
    paths = write_cohort_outputs(run, out)
    assert {p.name for p in paths} >= {"cohort_table.csv", "cohort_report.pdf"}
    assert (out / "cohort_report.pdf").read_bytes().startswith(b"%PDF")
    assert len(list((out / "cases").glob("*.json"))) == len(FULL) + 2
    header = (out / "cohort_table.csv").read_text().splitlines()[0].split(",")
    assert {"seeds_outside_target", "seeds_migrated"} <= set(header)


def test_rerun_skips_unchanged_and_redoes_a_changed_case(cohort, tmp_path) -> None:
    from distributed import LocalCluster

    shared_cases, shared_out, first = cohort
    cases, out = tmp_path / "cases", tmp_path / "results"
    shutil.copytree(shared_cases, cases)  # same bytes and names elsewhere: the same cases
    shutil.copytree(shared_out, out)
    again = run_cohort(cases, out, workers=1, processes=False)
    assert again.computed == [] and len(again.skipped) == len(FULL) + 2
    assert again.rows == first.rows
    # The clinical record now says one more seed was implanted than detection finds: refused,
    # recomputed on a distributed scheduler (the --scheduler path), others untouched.
    cid = SMALLEST
    n = _truth(cases, cid)["seeds_implanted"]
    meta = cases / cid / "case.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "seeds_implanted": n + 1}))
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        redo = run_cohort(cases, out, scheduler=cluster.scheduler_address)
    assert redo.computed == [cid] and redo.workers == 1
    row = next(r for r in redo.rows if r["case_id"] == cid)
    assert row["status"] == "refused" and "disagreement" in row["reason"]
    assert row["post_d90_gy"] is None and row["pre_d90_gy"] is not None
    assert redo.summary["n_analysed"] == first.summary["n_analysed"] - 1


def test_robustness_percentiles_when_requested(cohort, tmp_path) -> None:
    """--robustness N: each plan's D90, V100 and cord D0.1cm³ under N needle-error samples are
    the percentiles planner.optimise.robustness gives for that plan; N is part of the hash."""
    from planner.optimise.robustness import robustness
    from planner.plan.plan_file import load_plan

    cases, _, first = cohort
    manifest, cid = _manifest_of_smallest(cases, tmp_path)
    out = tmp_path / "res"
    base = run_cohort(manifest, out, workers=1, processes=False)
    assert base.rows[0]["robust_samples"] is None and base.summary["robustness"] is None
    run = run_cohort(manifest, out, workers=1, processes=False, robustness_samples=4)
    assert run.computed == [cid]  # another N: recomputed, not the stored row
    (row,) = run.rows
    ref = robustness(load_plan(cases / cid / "plan.seedplan").plan, samples=4, rng_seed=1)
    pc = ref.percentiles()
    assert row["robust_samples"] == 4
    for m in ("d90_gy", "v100_percent", "cord_d0_1cc_gy"):
        assert row[f"robust_{m}_p5"] == pytest.approx(pc[m]["p5"], rel=1e-9)
        assert row[f"robust_{m}_p50"] == pytest.approx(pc[m]["median"], rel=1e-9)
        assert row[f"robust_{m}_p95"] == pytest.approx(pc[m]["p95"], rel=1e-9)
        assert row[f"robust_{m}_p5"] <= row[f"robust_{m}_p50"] <= row[f"robust_{m}_p95"]
    assert row["robust_d90_gy_p95"] > row["robust_d90_gy_p5"]  # the errors move the dose
    ref_row = next(r for r in first.rows if r["case_id"] == cid)
    # The same verification again (the engine's parallel sums repeat to ~1e-8, not bit for bit).
    assert row["post_d90_gy"] == pytest.approx(ref_row["post_d90_gy"], rel=1e-6)
    rob = run.summary["robustness"]
    assert rob["samples"] == [4]
    assert rob["metrics"]["d90_gy"]["p50"]["median"] == pytest.approx(row["robust_d90_gy_p50"])
    write_cohort_outputs(run, out)
    table = (out / "cohort_table.csv").read_text().splitlines()
    assert "robust_d90_gy_p5" in table[0].split(",")
    assert (
        "Target D90 p5 under needle errors (4 samples)" in (out / "cohort_summary.csv").read_text()
    )
    assert run_cohort(manifest, out, processes=False, robustness_samples=4).skipped == [cid]
    again = run_cohort(manifest, out, processes=False, robustness_samples=3)
    assert again.computed == [cid] and again.rows[0]["robust_samples"] == 3


def test_cli_on_a_manifest_with_a_worker_process(cohort, tmp_path, capsys) -> None:
    """`seedplan cohort MANIFEST --robustness 2` in a subprocess with one worker process; the
    re-run and the bad inputs in this process (app.cli.main: exit status and one line)."""
    from app.cli import main

    cases, _, first = cohort
    manifest, cid = _manifest_of_smallest(cases, tmp_path, "P1")
    out = tmp_path / "res"
    args = ["cohort", str(manifest), "--out", str(out), "--robustness", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args, "--workers", "1", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["table"]
    ref = next(r for r in first.rows if r["case_id"] == cid)
    assert row["status"] == "ok" and row["seeds_found"] == ref["seeds_found"]
    assert row["post_d90_gy"] == pytest.approx(ref["post_d90_gy"], rel=1e-6)
    assert row["robust_samples"] == 2
    assert row["robust_d90_gy_p5"] <= row["robust_d90_gy_p50"] <= row["robust_d90_gy_p95"]
    assert doc["computed"] == ["P1"] and (out / "cohort_summary.csv").is_file()
    assert "(2 samples)" in (out / "cohort_summary.csv").read_text()
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == ["P1"]
    for bad, words in (
        (["cohort", str(tmp_path / "nope"), "--out", str(out)], "no such"),
        (["cohort", str(cases), "--out", str(cases / "inside")], "inside the cases folder"),
        ([*args, "--robustness", "-1"], "--robustness must be"),
        (["demo", "--cohort", "0", "--out", str(tmp_path / "d")], "at least 1"),
    ):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert not (cases / "inside").exists()
