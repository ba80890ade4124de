"""The per-case table of a cohort and the summary statistics a paper reports.

Per case (:data:`COLUMNS`): seeds planned / implanted / found, total S_K at implant (U),
pre-plan (``pre_``) and post-op (``post_``) target D90, V100, V150, CI, EI, HI, BED of D90, cord
D0.1 cm³ and near-maximum D0.03 cm³ (Gy), the median planned→implanted seed displacement (mm),
the detected seeds outside the target after registration (``seeds_outside_target``: outside every
target but within the migration distance, 10 mm, of a planned needle track) and migrated
(``seeds_migrated``: farther; :mod:`planner.postop.locations`, exclusive of each other),
status (``ok`` | ``refused`` | ``failed`` | ``error``) and the reason. When requested
(``seedplan cohort --robustness N``), the plan under N sampled needle-placement errors
(:func:`planner.optimise.robustness.robustness`): target D90, V100 and cord D0.1 cm³ as 5th, 50th
and 95th percentiles (``robust_<metric>_p5|p50|p95``) and the number of samples.

Summary (:func:`summarise`, over the ``ok`` cases only, so every pre/post pair is complete):

* seeds: median and range (planned, implanted, found);
* every metric: n, mean ± SD (sample SD, ddof 1), median (IQR: 25th–75th percentile, linear
  interpolation), minimum and maximum;
* robustness percentiles (when computed): n, mean ± SD, median (IQR), range of each column;
* pre vs post: the paired difference (post − pre) mean ± SD and median, the Wilcoxon
  signed-rank test (two-sided, scipy.stats.wilcoxon) and the paired t-test (scipy.stats.ttest_rel)
  p-values; a test needs at least 2 pairs (``None`` otherwise).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "LOCATION_COLUMNS",
    "METRICS",
    "ROBUST_COLUMNS",
    "ROBUST_METRICS",
    "robust_columns",
    "row_from_verification",
    "summarise",
    "summary_csv",
    "table_csv",
]

#: (metric key in the table without pre_/post_, label, unit).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("d90_gy", "Target D90", "Gy"),
    ("v100_percent", "Target V100", "%"),
    ("v150_percent", "Target V150", "%"),
    ("ci", "Conformity index CI", ""),
    ("ei", "External index EI", ""),
    ("hi", "Homogeneity index HI", ""),
    ("bed_d90_gy", "BED of D90 (α/β 10 Gy)", "Gy"),
    ("cord_d0_1cc_gy", "Cord D0.1cm³", "Gy"),
    ("cord_dmax_0_03cc_gy", "Cord Dmax (D0.03cm³)", "Gy"),
)
COUNTS = ("seeds_planned", "seeds_implanted", "seeds_found")
#: Robustness metrics (key of :meth:`RobustnessResult.percentiles`, label, unit).
ROBUST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("d90_gy", "Target D90", "Gy"),
    ("v100_percent", "Target V100", "%"),
    ("cord_d0_1cc_gy", "Cord D0.1cm³", "Gy"),
)
ROBUST_PERCENTILES = (("p5", "p5"), ("p50", "median"), ("p95", "p95"))
ROBUST_COLUMNS: tuple[str, ...] = (
    "robust_samples",
    *(f"robust_{m}_{p}" for m, _, _ in ROBUST_METRICS for p, _ in ROBUST_PERCENTILES),
)
#: Detected seeds by location (:meth:`planner.postop.locations.SeedLocations.counts` keys).
LOCATION_COLUMNS: tuple[str, ...] = ("seeds_outside_target", "seeds_migrated")
_LOCATION_KEYS = {"seeds_outside_target": "outside", "seeds_migrated": "migrated"}
COLUMNS: tuple[str, ...] = (
    "case_id",
    "status",
    "reason",
    *COUNTS,
    "total_sk_U",
    "prescription_gy",
    *(f"{w}_{m}" for m, _, _ in METRICS for w in ("pre", "post")),
    "median_displacement_mm",
    *LOCATION_COLUMNS,
    *ROBUST_COLUMNS,
    "postop_formalism",
    "source",
    "input_sha256",
)
_TARGET_KEYS = ("d90_gy", "v100_percent", "v150_percent", "ci", "ei", "hi", "bed_d90_gy")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _pick(metrics: Mapping[str, Any], kind: str, name: str | None) -> Mapping[str, Any]:
    group = metrics.get(kind) or {}
    if not isinstance(group, Mapping) or not group:
        return {}
    if name is not None and name in group:
        return group[name]
    return {}


def row_from_verification(
    doc: Mapping[str, Any],
    *,
    target: str | None,
    cord: str | None,
    seeds_implanted: int | None,
) -> dict[str, Any]:
    """The table row of one verification (the JSON written by ``seedplan verify``, or the same
    layout from :func:`planner.cohort.run.verification_doc`). ``target``/``cord``: structure
    names (``None``: first target / no cord)."""
    pre_m, post_m = doc.get("planned_metrics") or {}, doc.get("postop_metrics") or {}
    if target is None:
        targets = pre_m.get("targets") or {}
        target = next(iter(targets), None)
    row: dict[str, Any] = {c: None for c in COLUMNS}
    planned = pre_m.get("n_seeds")
    found = (doc.get("detection") or {}).get("found")
    row["seeds_planned"] = planned
    row["seeds_implanted"] = seeds_implanted if seeds_implanted is not None else planned
    row["seeds_found"] = found
    row["total_sk_U"] = _num(pre_m.get("total_strength_at_implant_U"))
    row["prescription_gy"] = _num(pre_m.get("prescription_gy"))
    for prefix, m in (("pre", pre_m), ("post", post_m)):
        t = _pick(m, "targets", target)
        for key in _TARGET_KEYS:
            row[f"{prefix}_{key}"] = _num(t.get(key))
        c = _pick(m, "oars", cord)
        row[f"{prefix}_cord_d0_1cc_gy"] = _num(c.get("d0_1cc_gy"))
        row[f"{prefix}_cord_dmax_0_03cc_gy"] = _num(c.get("dmax_0_03cc_gy"))
    pairs = (doc.get("matching") or {}).get("pairs") or []
    dist = [float(np.linalg.norm(p["displacement_mm"])) for p in pairs]
    row["median_displacement_mm"] = float(np.median(dist)) if dist else None
    counts = (doc.get("seed_locations") or {}).get("counts") or {}
    for col, key in _LOCATION_KEYS.items():
        n = counts.get(key)
        row[col] = n if isinstance(n, int) and not isinstance(n, bool) else None
    row["postop_formalism"] = doc.get("formalism")
    return row


def robust_columns(
    percentiles: Mapping[str, Mapping[str, float | None]], samples: int
) -> dict[str, Any]:
    """The ``robust_*`` cells of one case from
    :meth:`planner.optimise.robustness.RobustnessResult.percentiles` (a metric it lacks, e.g. no
    cord, stays ``None``)."""
    out: dict[str, Any] = {"robust_samples": int(samples)}
    for m, _, _ in ROBUST_METRICS:
        pc = percentiles.get(m) or {}
        for col, key in ROBUST_PERCENTILES:
            out[f"robust_{m}_{col}"] = _num(pc.get(key))
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = int(a.size)
    if n == 0:
        return {"n": 0}
    q1, med, q3 = (float(v) for v in np.percentile(a, [25, 50, 75]))
    return {
        "n": n,
        "mean": float(a.mean()),
        "sd": float(a.std(ddof=1)) if n > 1 else None,
        "median": med,
        "q1": q1,
        "q3": q3,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def _paired(pre: Sequence[float | None], post: Sequence[float | None]) -> dict[str, Any]:
    from scipy import stats

    pairs = [(a, b) for a, b in zip(pre, post, strict=True) if a is not None and b is not None]
    n = len(pairs)
    out: dict[str, Any] = {"n_pairs": n}
    if n == 0:
        return out
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    d = b - a
    out.update(
        mean_difference=float(d.mean()),
        sd_difference=float(d.std(ddof=1)) if n > 1 else None,
        median_difference=float(np.median(d)),
        wilcoxon_p=None,
        ttest_p=None,
    )
    if n >= 2 and np.any(d != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(b, a).pvalue)
        if np.std(d) > 0:
            out["ttest_p"] = float(stats.ttest_rel(b, a).pvalue)
    return out


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The paper's summary of the ``ok`` rows (module docstring)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[str(r.get("status"))] = by_status.get(str(r.get("status")), 0) + 1
    seeds = {}
    for key in COUNTS:
        s = _stats([r.get(key) for r in ok])
        seeds[key] = {k: s.get(k) for k in ("n", "median", "min", "max")}
    metrics = {}
    for key, label, unit in METRICS:
        pre = [r.get(f"pre_{key}") for r in ok]
        post = [r.get(f"post_{key}") for r in ok]
        metrics[key] = {
            "label": label,
            "unit": unit,
            "pre": _stats(pre),
            "post": _stats(post),
            "paired": _paired(pre, post),
        }
    robust: dict[str, Any] = {}
    samples = sorted({r["robust_samples"] for r in ok if r.get("robust_samples")})
    if samples:
        for m, label, unit in ROBUST_METRICS:
            robust[m] = {
                "label": label,
                "unit": unit,
                **{
                    p: _stats([r.get(f"robust_{m}_{p}") for r in ok]) for p, _ in ROBUST_PERCENTILES
                },
            }
    return {
        "n_cases": len(rows),
        "n_analysed": len(ok),
        "by_status": by_status,
        "seeds": seeds,
        "total_sk_U": _stats([r.get("total_sk_U") for r in ok]),
        "median_displacement_mm": _stats([r.get("median_displacement_mm") for r in ok]),
        "metrics": metrics,
        "robustness": {"samples": samples, "metrics": robust} if robust else None,
        "tests": "paired, post − pre: Wilcoxon signed-rank (two-sided) and paired t-test",
    }


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)


def table_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-case table as CSV (one header line, :data:`COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()


def _ms(s: Mapping[str, Any]) -> tuple[str, str]:
    if not s.get("n"):
        return "", ""
    sd = "" if s.get("sd") is None else f" ± {s['sd']:.3g}"
    return f"{s['mean']:.4g}{sd}", f"{s['median']:.4g} ({s['q1']:.4g}–{s['q3']:.4g})"


def summary_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the summary table: metric, unit, pre mean ± SD, pre median (IQR), post …,
    mean difference, Wilcoxon p, t-test p (also used by the PDF); then, when computed, one row
    per robustness percentile of the plans (in the pre columns: it is the plan's)."""
    out = []
    for m in summary["metrics"].values():
        p = m["paired"]
        pre_ms, pre_mi = _ms(m["pre"])
        post_ms, post_mi = _ms(m["post"])
        diff = "" if p.get("mean_difference") is None else f"{p['mean_difference']:+.3g}"
        wp = "" if p.get("wilcoxon_p") is None else f"{p['wilcoxon_p']:.3g}"
        tp = "" if p.get("ttest_p") is None else f"{p['ttest_p']:.3g}"
        out.append([m["label"], m["unit"], pre_ms, pre_mi, post_ms, post_mi, diff, wp, tp])
    rob = summary.get("robustness") or {}
    n = "/".join(str(v) for v in rob.get("samples", []))
    for m in (rob.get("metrics") or {}).values():
        for p, _ in ROBUST_PERCENTILES:
            ms, mi = _ms(m[p])
            label = f"{m['label']} {p} under needle errors ({n} samples)"
            out.append([label, m["unit"], ms, mi, "", "", "", "", ""])
    return out


SUMMARY_HEADER = (
    "metric",
    "unit",
    "pre_mean_sd",
    "pre_median_iqr",
    "post_mean_sd",
    "post_median_iqr",
    "mean_difference",
    "wilcoxon_p",
    "ttest_p",
)


def summary_csv(summary: Mapping[str, Any]) -> str:
    """The summary table as CSV, seeds first (median [min–max])."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_HEADER)
    for key, s in summary["seeds"].items():
        if s.get("n"):
            text = f"{s['median']:g} ({s['min']:g}–{s['max']:g})"
            w.writerow([key + " median (range)", "", text, "", "", "", "", "", ""])
    for row in summary_rows(summary):
        w.writerow(row)
    return buf.getvalue()
