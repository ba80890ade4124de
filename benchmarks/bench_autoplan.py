"""Benchmark: automatic planning (issue 12) on the demo case and generated variants, beside a
uniform loading of the same needles; robustness of 100 samples.

``run_benchmarks(quick=False) -> list[dict]`` (``seedplan bench`` keys: ``name, seconds,
baseline_seconds, speedup, goal, passed_goal, notes``) and :func:`results_table` (the table of
docs/autoplan.md: seeds, needles, D90, V100, V150, cord D0.1 cm³ and times, autoplan vs the
uniform loading of its needles).

Cases (:func:`make_case`), all from the demo phantom generator (planner.demo.phantom) with the
demo plan's structures and goals (planner.demo.plan.build_demo_plan: GTV, PTV = GTV + 5 mm −
(cord + 2 mm), PTV_eval = PTV − (cord + 8 mm) prescribed 110 Gy D90, cord D0.1 cm³ ≤ 50 Gy):

* ``demo``: the demo case (T9, left);
* ``right``: the same patient mirrored left-right (CT and masks: the tumour on the right);
* ``T6`` / ``T11``: the tumour at another level (``Anatomy.involved_level`` and its z);
* ``large``: the GTV grown by 4 mm (outside the canal);
* ``small``: the GTV shrunk by 3 mm (its largest part);
* ``wrap``: a tumour wrapping the cord: the canal ring (canal + 6 mm minus canal) over 30 mm
  at the tumour level, joined to the GTV, cut 1 mm from the cord.

The phantom has no lumbar vertebrae (T3-T12 only), so levels are T6-T11 here.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from planner.demo.anatomy import default_anatomy
from planner.demo.phantom import generate_phantom
from planner.demo.plan import build_demo_plan
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Plan

__all__ = ["CASES", "make_case", "results_table", "run_benchmarks"]

CASES = ("demo", "right", "T6", "T11", "large", "small", "wrap")
GOAL_AUTOPLAN_S = 10.0
GOAL_ROBUST_S = 10.0


def _ball(radius_vox: tuple[float, float, float]) -> NDArray[np.bool_]:
    rz, ry, rx = radius_vox
    z, y, x = np.ogrid[-int(rz) : int(rz) + 1, -int(ry) : int(ry) + 1, -int(rx) : int(rx) + 1]
    return (z / max(rz, 1e-9)) ** 2 + (y / ry) ** 2 + (x / rx) ** 2 <= 1.0


def _grow(mask: NDArray[np.bool_], spacing_zyx: NDArray, mm: float) -> NDArray[np.bool_]:
    r = tuple(max(mm / s, 0.5) for s in spacing_zyx)
    return ndimage.binary_dilation(mask, _ball(r))  # type: ignore[arg-type]


def make_case(name: str, *, matrix: int = 256) -> tuple[Plan, CTVolume]:
    """A plan (structures, prescription, source, goals; demo-plan needles) and its CT."""
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}")
    anatomy = default_anatomy()
    n_slices = 52
    if name in ("T6", "T11"):
        lev = anatomy.level(name)
        anatomy = replace(anatomy, involved_level=name, tumour_z_mm=lev.z_mm)
        n_slices = int(2 * (abs(lev.z_mm) + 45.0) / 2.5) + 1
    ph = generate_phantom(n_slices=n_slices, matrix=matrix, anatomy=anatomy)
    hu, masks, g = ph.hu, dict(ph.masks), ph.geometry
    if name in ("T6", "T11"):  # keep 90 mm around the tumour
        kz = np.flatnonzero(masks["GTV"].any(axis=(1, 2)))
        k0 = max(0, int(kz.mean()) - 18)
        k1 = min(hu.shape[0], k0 + 37)
        origin = g.zyx_to_world(np.array([[k0, 0, 0]], dtype=float))[0]
        hu = np.ascontiguousarray(hu[k0:k1])
        masks = {k: np.ascontiguousarray(v[k0:k1]) for k, v in masks.items()}
        g = type(g)(hu.shape, origin, g.spacing_mm, g.direction)
    sp = np.asarray(g.spacing_mm[::-1], dtype=float)
    canal, cord = masks["SpinalCanal"], masks["SpinalCord"]
    if name == "right":
        hu = np.ascontiguousarray(hu[:, :, ::-1])
        masks = {k: np.ascontiguousarray(v[:, :, ::-1]) for k, v in masks.items()}
    elif name == "large":
        masks["GTV"] = (_grow(masks["GTV"], sp, 4.0) & ~canal) | masks["GTV"]
    elif name == "small":
        core = ndimage.binary_erosion(masks["GTV"], _ball(tuple(3.0 / s for s in sp)))
        lab, n = ndimage.label(core)
        if n:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            core = lab == int(np.argmax(sizes))
        masks["GTV"] = core
    elif name == "wrap":
        kz = np.flatnonzero(masks["GTV"].any(axis=(1, 2)))
        zc = int(kz.mean())
        half = round(15.0 / sp[0])
        ring = _grow(canal, sp, 6.0) & ~canal
        ring[: max(0, zc - half)] = False
        ring[zc + half + 1 :] = False
        wrap = masks["GTV"] | ring | (canal & ~_grow(cord, sp, 1.0))
        wrap[: max(0, zc - half)] &= masks["GTV"][: max(0, zc - half)]
        wrap[zc + half + 1 :] &= masks["GTV"][zc + half + 1 :]
        masks["GTV"] = wrap & ~_grow(cord, sp, 1.0)
    info = PatientInfo(
        patient_id=f"AUTOPLAN-{name}", patient_name="TEST^AUTOPLAN", frame_of_reference_uid="1.2.3"
    )
    ct = CTVolume(hu, g, info)
    plan, _ = build_demo_plan(ct, masks)
    return plan, ct


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
            out.append(
                f"| {r['case']} | {kind} | {f['seeds']} | {f['needles']} | {f['d90_gy']:.1f} | "
                f"{f['v100_percent']:.1f} | {b} | {f['v150_percent']:.1f} | "
                f"{f['cord_d0_1cc_gy']:.1f} | {t:.1f} |"
            )
    return "\n".join(out)


def run_benchmarks(quick: bool = False) -> list[dict[str, object]]:
    """Autoplan of the full-resolution demo case (512², as ``seedplan demo`` writes it) and
    robustness of 100 samples of its result."""
    from planner.optimise.robustness import robustness

    plan, ct = make_case("demo", matrix=256 if quick else 512)
    row = _row("demo", plan, ct)
    from planner.optimise.autoplan import AutoplanOptions, autoplan

    res = autoplan(plan, ct, options=AutoplanOptions())
    t0 = time.perf_counter()
    rob = robustness(res.plan, samples=20 if quick else 100)
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
            f"{row['uniform']} (baseline time: its exact dosimetry only)",
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
    print(json.dumps(rows, default=float))
