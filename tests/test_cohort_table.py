"""Cohort table and summary statistics (issue 15): the paper's numbers from known rows, checked
against Python's statistics module and scipy directly; failed/refused cases are left out."""

from __future__ import annotations

import csv
import io
import re
import statistics

import pytest
from scipy import stats

from planner.cohort.table import COLUMNS, row_from_verification, summarise, summary_csv, table_csv


def _row(i: int, pre: float, post: float, status: str = "ok") -> dict:
    r = {c: None for c in COLUMNS}
    r.update(
        case_id=f"c{i}",
        status=status,
        reason="" if status == "ok" else "why",
        seeds_planned=10 + 7 * i,
        seeds_implanted=10 + 7 * i,
        seeds_found=10 + 7 * i,
        pre_d90_gy=pre,
        post_d90_gy=post,
        pre_v100_percent=90.0 + i,
        post_v100_percent=88.0 + 1.5 * i,
    )
    return r


PRE = [120.0, 131.5, 109.2, 140.8, 118.3, 125.0]
POST = [112.4, 128.0, 101.7, 133.9, 119.5, 110.2]


def test_summary_matches_independent_statistics() -> None:
    rows = [_row(i, a, b) for i, (a, b) in enumerate(zip(PRE, POST, strict=True))]
    rows.append(_row(99, 10.0, 500.0, status="failed"))  # must not enter any statistic
    rows.append(_row(98, 300.0, 1.0, status="refused"))
    s = summarise(rows)
    assert s["n_cases"] == 8 and s["n_analysed"] == 6
    assert s["by_status"] == {"ok": 6, "failed": 1, "refused": 1}
    d90 = s["metrics"]["d90_gy"]
    assert d90["pre"]["mean"] == pytest.approx(statistics.mean(PRE))
    assert d90["pre"]["sd"] == pytest.approx(statistics.stdev(PRE))
    assert d90["post"]["median"] == pytest.approx(statistics.median(POST))
    q1, _, q3 = statistics.quantiles(POST, n=4, method="inclusive")
    assert (d90["post"]["q1"], d90["post"]["q3"]) == pytest.approx((q1, q3))
    assert (d90["pre"]["min"], d90["pre"]["max"]) == (min(PRE), max(PRE))
    diffs = [b - a for a, b in zip(PRE, POST, strict=True)]
    p = d90["paired"]
    assert p["n_pairs"] == 6
    assert p["mean_difference"] == pytest.approx(statistics.mean(diffs))
    assert p["sd_difference"] == pytest.approx(statistics.stdev(diffs))
    assert p["wilcoxon_p"] == pytest.approx(stats.wilcoxon(POST, PRE).pvalue)
    assert p["ttest_p"] == pytest.approx(stats.ttest_rel(POST, PRE).pvalue)
    seeds = s["seeds"]["seeds_planned"]
    planned = [10 + 7 * i for i in range(6)]
    assert seeds["median"] == statistics.median(planned)
    assert (seeds["min"], seeds["max"]) == (min(planned), max(planned))
    # A metric nobody has: no numbers invented.
    assert s["metrics"]["ci"]["pre"] == {"n": 0}
    assert s["metrics"]["ci"]["paired"] == {"n_pairs": 0}


def test_one_case_has_no_test_and_no_sd() -> None:
    s = summarise([_row(0, 120.0, 110.0)])
    d90 = s["metrics"]["d90_gy"]
    assert d90["pre"]["sd"] is None
    assert d90["paired"]["wilcoxon_p"] is None and d90["paired"]["ttest_p"] is None


def test_row_from_a_stored_verification() -> None:
    """The layout `seedplan verify` writes: targets/oars metrics, detection, matching pairs."""
    doc = {
        "formalism": "1d",
        "detection": {"found": 3},
        "matching": {
            "pairs": [
                {"displacement_mm": [3.0, 4.0, 0.0]},
                {"displacement_mm": [0.0, 0.0, 1.0]},
                {"displacement_mm": [0.0, 2.0, 0.0]},
            ]
        },
        "planned_metrics": {
            "n_seeds": 3,
            "prescription_gy": 110.0,
            "total_strength_at_implant_U": 2.4,
            "targets": {"PTV": {"d90_gy": 121.0, "v100_percent": 93.0, "ci": 0.6}},
            "oars": {"SpinalCord": {"d0_1cc_gy": 40.0, "dmax_0_03cc_gy": 48.0}},
        },
        "postop_metrics": {
            "targets": {"PTV": {"d90_gy": 112.0, "v100_percent": float("nan")}},
            "oars": {"SpinalCord": {"d0_1cc_gy": 45.0}},
        },
        "seed_locations": {"counts": {"inside": 1, "outside": 1, "migrated": 1, "unknown": 0}},
    }
    row = row_from_verification(doc, target="PTV", cord="SpinalCord", seeds_implanted=None)
    assert (row["seeds_planned"], row["seeds_implanted"], row["seeds_found"]) == (3, 3, 3)
    assert row["pre_d90_gy"] == 121.0 and row["post_d90_gy"] == 112.0
    assert row["post_v100_percent"] is None  # not finite: never a number in the table
    assert row["pre_cord_dmax_0_03cc_gy"] == 48.0 and row["post_cord_dmax_0_03cc_gy"] is None
    assert row["median_displacement_mm"] == pytest.approx(2.0)
    assert row["total_sk_U"] == 2.4 and row["postop_formalism"] == "1d"
    assert (row["seeds_outside_target"], row["seeds_migrated"]) == (1, 1)
    other = row_from_verification(doc, target="PTV", cord=None, seeds_implanted=4)
    assert other["seeds_implanted"] == 4 and other["pre_cord_d0_1cc_gy"] is None
    old = row_from_verification(
        {k: v for k, v in doc.items() if k != "seed_locations"},
        target="PTV",
        cord=None,
        seeds_implanted=None,
    )  # a verification.json from before the locations: empty cells, no invented zeros
    assert old["seeds_outside_target"] is None and old["seeds_migrated"] is None


def test_csv_outputs_have_one_header_and_every_row() -> None:
    rows = [_row(i, a, b) for i, (a, b) in enumerate(zip(PRE, POST, strict=True))]
    table = list(csv.reader(io.StringIO(table_csv(rows))))
    assert tuple(table[0]) == COLUMNS and len(table) == 1 + len(rows)
    col = table[0].index("post_d90_gy")
    assert [float(r[col]) for r in table[1:]] == pytest.approx(POST, abs=5e-4)
    summary = list(csv.reader(io.StringIO(summary_csv(summarise(rows)))))
    d90 = next(r for r in summary if r[0] == "Target D90")
    assert d90[1] == "Gy" and "±" in d90[2] and re.search(r"\(.*–.*\)", d90[3])


def test_report_is_one_pdf_page(tmp_path) -> None:
    from planner.cohort.report import write_report_pdf

    rows = [_row(i, a, b) for i, (a, b) in enumerate(zip(PRE, POST, strict=True))]
    rows.append(_row(7, 1.0, 1.0, status="failed"))
    out = write_report_pdf(tmp_path / "r.pdf", rows, summarise(rows))
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1
    with pytest.raises(Exception, match="exists"):
        write_report_pdf(tmp_path / "r.pdf", rows, summarise(rows), force=False)


def test_robustness_columns_and_summary(tmp_path) -> None:
    """Robustness percentiles (seedplan cohort --robustness N): cells from the percentiles of
    planner.optimise.robustness, their summary over ok cases, rows in the CSV and one PDF page."""
    from planner.cohort.report import write_report_pdf
    from planner.cohort.table import ROBUST_COLUMNS, robust_columns

    p50 = [101.0, 95.5, 120.25, 88.0, 110.0, 99.0]
    rows = [_row(i, a, b) for i, (a, b) in enumerate(zip(PRE, POST, strict=True))]
    for r, m in zip(rows, p50, strict=True):
        pc = {
            "d90_gy": {"p5": m - 20.0, "median": m, "p95": m + 9.0},
            "v100_percent": {"p5": 80.0, "median": 90.0, "p95": float("nan")},
        }  # no cord in these plans
        r.update(robust_columns(pc, 50))
    rows.append({**rows[0], "case_id": "x", "status": "failed", "robust_d90_gy_p50": 1e6})
    assert set(ROBUST_COLUMNS) <= set(COLUMNS)
    assert rows[0]["robust_d90_gy_p5"] == 81.0 and rows[0]["robust_samples"] == 50
    assert rows[0]["robust_v100_percent_p95"] is None  # not finite: no number
    assert rows[0]["robust_cord_d0_1cc_gy_p50"] is None
    s = summarise(rows)
    rob = s["robustness"]
    assert rob["samples"] == [50]
    d90 = rob["metrics"]["d90_gy"]["p50"]
    assert d90["n"] == 6 and d90["mean"] == pytest.approx(statistics.mean(p50))
    assert d90["median"] == pytest.approx(statistics.median(p50))
    assert rob["metrics"]["cord_d0_1cc_gy"]["p95"] == {"n": 0}
    text = summary_csv(s)
    line = next(ln for ln in text.splitlines() if ln.startswith("Target D90 p50 under"))
    assert "(50 samples)" in line and "±" in line
    mixed = summarise([*rows[:1], _row(9, 1.0, 2.0)])["robustness"]["metrics"]
    assert mixed["d90_gy"]["p5"]["n"] == 1  # a case without robustness adds no number
    assert summarise([_row(0, 1.0, 2.0)])["robustness"] is None
    data = write_report_pdf(tmp_path / "r.pdf", rows, s).read_bytes()
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1
