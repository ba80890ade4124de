"""Cohort re-analysis end to end on Dask (issue 15): eight synthetic cases spanning the paper's
seed range (on a 192² grid, to be quick) plus broken ones; the table against each case's known
truth; a re-run skips unchanged cases; a changed case is redone (on a `--scheduler` cluster);
robustness percentiles; the CLI with a worker process on a manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from planner.cohort.run import run_cohort, write_cohort_outputs
from planner.demo.cohort import write_cohort
from tests.conftest import REPO_ROOT

N_CASES = 8
COHORT_SEED = 5
IDS = [f"case-{i:03d}" for i in range(1, N_CASES + 1)]
#: Known detection limitation (planner/postop/detect.py, being worked on): in this cohort one
#: seed of case-008 (80 seeds at T8) is split in two. The table must then refuse the case with
#: its reason and withhold its post-op metrics; once detection finds 80, the case is checked as
#: every other.
KNOWN_SPLIT = {"case-008": (81, 80)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    cases = root / "cases"
    write_cohort(N_CASES, cases, seed=COHORT_SEED, matrix=192)
    # An unreadable post-op CT, and a folder with no plan: reported, never stopping the others.
    broken = cases / "case-broken"
    shutil.copytree(cases / "case-001", broken)
    (broken / "postop.nrrd").write_bytes(b"NRRD0004\ngarbage")
    (cases / "case-noplan").mkdir()
    (cases / "case-noplan" / "postop.nrrd").write_bytes(b"x")
    out = root / "results"
    first = run_cohort(cases, out, workers=1, processes=False)
    return cases, out, first


def _truth(cases, cid):
    return json.loads((cases / cid / "truth.json").read_text())


def _smallest(cases) -> str:
    """The case with the fewest seeds (the quickest to re-analyse)."""
    return min(IDS, key=lambda c: _truth(cases, c)["seeds_planned"])


def _manifest_of_smallest(cases, folder, name: str | None = None):
    """(a CSV manifest listing the smallest case as ``name``, that case's id)."""
    cid = _smallest(cases)
    manifest = folder / "m.csv"
    manifest.write_text(
        f"case_id,plan,postop_ct\n{name or cid},{cases}/{cid}/plan.seedplan,"
        f"{cases}/{cid}/postop.nrrd\n"
    )
    return manifest, cid


def test_generated_cohort_spans_the_papers_seed_range(cohort) -> None:
    """`seedplan demo --cohort N`: tumour sizes spread over the cohort give seed counts over the
    paper's 7–103 range (median 48), growing with the size; the implanted seeds keep their
    needles' measured errors (no fallback to the planned positions)."""
    cases, _, run = cohort
    truths = [_truth(cases, c) for c in IDS]
    seeds = [t["seeds_planned"] for t in truths]
    assert min(seeds) <= 12 and max(seeds) >= 80, seeds
    assert 15 <= sorted(seeds)[N_CASES // 2] <= 80, seeds
    from scipy.stats import spearmanr

    sizes = [t["spec"]["size"] for t in truths]
    assert spearmanr(sizes, seeds).statistic > 0.9, (sizes, seeds)  # spacings vary per case
    assert len({t["spec"]["level"] for t in truths}) >= 2
    for t in truths:
        assert t["seeds_implanted"] == t["seeds_planned"] == len(t["implanted_mm"])
        assert all(e["error_scale"] > 0 for e in t["needle_errors"])
        assert set(t["patient_shift"]) == {"rotation_deg", "translation_mm", "postop_to_plan"}
    # The table's planned seeds are the truth's, case by case.
    rows = {r["case_id"]: r for r in run.rows}
    assert [rows[c]["seeds_planned"] for c in IDS] == seeds


def test_table_matches_the_known_truth(cohort) -> None:
    cases, out, run = cohort
    rows = {r["case_id"]: r for r in run.rows}
    assert sorted(rows) == [*IDS, "case-broken", "case-noplan"]
    refused = []
    for cid in IDS:
        t, r = _truth(cases, cid), rows[cid]
        if cid in KNOWN_SPLIT and r["status"] == "refused":
            found, implanted = KNOWN_SPLIT[cid]
            assert f"{found} seeds found, {implanted} implanted" in r["reason"]
            assert (r["seeds_found"], r["seeds_implanted"]) == (found, t["seeds_implanted"])
            assert r["post_d90_gy"] is None and r["pre_d90_gy"] is not None
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
    assert (
        rows["case-broken"]["status"] == "failed" and "postop.nrrd" in rows["case-broken"]["reason"]
    )
    assert rows["case-noplan"]["status"] == "failed" and "no plan" in rows["case-noplan"]["reason"]
    assert sorted(run.computed) == [*IDS, "case-broken"]
    assert run.summary["n_analysed"] == N_CASES - len(refused)
    paths = write_cohort_outputs(run, out)
    assert {p.name for p in paths} >= {"cohort_table.csv", "cohort_report.pdf"}
    assert (out / "cohort_report.pdf").read_bytes().startswith(b"%PDF")
    assert len(list((out / "cases").glob("*.json"))) == N_CASES + 2


def test_rerun_skips_unchanged_and_redoes_a_changed_case(cohort) -> None:
    from distributed import LocalCluster

    cases, out, first = cohort
    again = run_cohort(cases, out, workers=1, processes=False)
    assert again.computed == [] and len(again.skipped) == N_CASES + 2
    assert again.rows == first.rows
    # The clinical record now says one more seed was implanted than detection finds: refused,
    # recomputed on a distributed scheduler (the --scheduler path), others untouched.
    cid = _smallest(cases)
    n = _truth(cases, cid)["seeds_implanted"]
    meta = cases / cid / "case.json"
    doc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**doc, "seeds_implanted": n + 1}))
    try:
        with LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster:
            redo = run_cohort(cases, out, scheduler=cluster.scheduler_address)
    finally:
        meta.write_text(json.dumps(doc))
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
    assert row["post_d90_gy"] == pytest.approx(ref_row["post_d90_gy"], rel=1e-9)
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
    again = run_cohort(manifest, out, processes=False, robustness_samples=5)
    assert again.computed == [cid] and again.rows[0]["robust_samples"] == 5


def test_cli_on_a_manifest_with_a_worker_process(cohort, tmp_path) -> None:
    cases, _, first = cohort
    manifest, cid = _manifest_of_smallest(cases, tmp_path, "P1")
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "app", "cohort", str(manifest), "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--workers", "1", "--json"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["table"]
    ref = next(r for r in first.rows if r["case_id"] == cid)
    assert row["status"] == "ok" and row["seeds_found"] == ref["seeds_found"]
    assert row["post_d90_gy"] == pytest.approx(ref["post_d90_gy"], rel=1e-6)
    assert doc["computed"] == ["P1"] and (out / "cohort_summary.csv").is_file()
    again = subprocess.run([*cmd, "--json"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == ["P1"]
    for bad, words in (
        (
            [sys.executable, "-m", "app", "cohort", str(tmp_path / "nope"), "--out", str(out)],
            "no such",
        ),
        ([*cmd[:4], str(cases), "--out", str(cases / "inside")], "inside the cases folder"),
        ([*cmd, "--robustness", "-1"], "--robustness must be"),
        (
            [sys.executable, "-m", "app", "demo", "--cohort", "0", "--out", str(tmp_path / "d")],
            "at least 1",
        ),
    ):
        p = subprocess.run(bad, cwd=REPO_ROOT, capture_output=True, text=True)
        assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr
