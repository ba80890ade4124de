"""Plan exports of the demo plan: the PDF report (goal ≤ 5 s on 2 cores) and RTSTRUCT contours.

* ``export_pdf_demo_plan``: figures (DVH, three isodose planes) + laying out and writing both
  PDFs (summary and loading sheet), given the plan's dosimetry (computed once beforehand, as
  the GUI has it). Baseline: the same figures drawn with matplotlib's constrained layout
  (the obvious way) and the PDF built without them.
* ``rtstruct_contours_demo_plan``: every structure of the demo plan as voxel-edge contours
  (:mod:`planner.structures.contours`) vs the straightforward marching squares
  (``skimage.measure.find_contours`` at 0.5 on each slice), with the volume each gives back
  (voxel-centre outlines shrink every structure).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_SECONDS = 5.0


def _demo_plan():
    """(plan, ct) of the demo case (planner.demo.plan)."""
    from planner.demo.case import ensure_demo_case, load_demo_masks
    from planner.demo.plan import build_demo_plan
    from planner.imaging.ct_loader import load_ct

    case = ensure_demo_case()
    ct, _ = load_ct(case / "ct")
    masks = {k: m.voxels for k, m in load_demo_masks(case, ct.geometry).items()}
    plan, _rep = build_demo_plan(ct, masks)
    return plan, ct


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _marching_squares_volume(mask: np.ndarray, voxel_mm3: float) -> tuple[float, float]:
    """(seconds, volume cm³) of find_contours outlines, holes subtracted by orientation."""
    from skimage import measure

    t0 = time.perf_counter()
    area_px = 0.0
    for k in range(mask.shape[0]):
        sl = mask[k]
        if not sl.any():
            continue
        padded = np.pad(sl.astype(np.float32), 1)
        for c in measure.find_contours(padded, 0.5):
            x, y = c[:, 1], c[:, 0]
            area_px += 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    seconds = time.perf_counter() - t0
    return seconds, abs(area_px) * voxel_mm3 / 1000.0


def run_benchmarks(quick: bool = False) -> list[dict]:
    from planner.export import figures
    from planner.export.export import export_plan
    from planner.export.plan_dose import export_dosimetry
    from planner.structures.contours import structure_contours

    plan, ct = _demo_plan()
    d = export_dosimetry(plan, ct)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        export_plan(plan, ct, Path(tmp) / "warm", kinds=["pdf"], dosimetry=d)  # fonts, imports
        times = []
        for n in range(1 if quick else 3):
            t0 = time.perf_counter()
            export_plan(plan, ct, Path(tmp) / f"run{n}", kinds=["pdf"], dosimetry=d)
            times.append(time.perf_counter() - t0)
        pages = (Path(tmp) / "run0" / "plan_summary.pdf").read_bytes().count(b"/Type /Page\n")
        # baseline: constrained layout for every figure (matplotlib's default advice)
        import matplotlib.pyplot as plt

        orig = plt.subplots

        def constrained(*a, **k):
            k.setdefault("layout", "constrained")
            return orig(*a, **k)

        figures.plt.subplots = constrained
        try:
            import warnings

            with warnings.catch_warnings():  # subplots_adjust under constrained layout
                warnings.simplefilter("ignore", UserWarning)
                t0 = time.perf_counter()
                export_plan(plan, ct, Path(tmp) / "base", kinds=["pdf"], dosimetry=d)
                base = time.perf_counter() - t0
        finally:
            figures.plt.subplots = orig
    seconds = min(times)
    rows.append(
        {
            "name": "export_pdf_demo_plan",
            "seconds": seconds,
            "baseline_seconds": base,
            "speedup": base / seconds if seconds > 0 else math.inf,
            "goal": f"≤ {GOAL_SECONDS:.0f} s",
            "passed_goal": seconds <= GOAL_SECONDS,
            "notes": f"{len(plan.seeds)} seeds, {len(plan.needles)} needles, summary "
            f"{pages or '?'} pages + loading sheet; dosimetry computed before (not timed)",
        }
    )
    t0 = time.perf_counter()
    n_contours = 0
    ours_cm3: dict[str, float] = {}
    for s in plan.structures:
        cs = structure_contours(s.crop, plan.geometry, box=s.box)
        n_contours += len(cs)
        g = plan.geometry
        area = 0.0
        for c in cs:
            ij = g.world_to_index(c.points_mm)[:, :2]
            area += (-1.0 if c.is_hole else 1.0) * _polygon_area(ij)
        ours_cm3[s.name] = area * g.voxel_volume_mm3 / 1000.0
    seconds = time.perf_counter() - t0
    base_s, errs = 0.0, []
    ours_err = []
    for s in plan.structures:
        bs, vol = _marching_squares_volume(s.crop, plan.geometry.voxel_volume_mm3)
        base_s += bs
        errs.append(100.0 * (vol - s.volume_cm3) / s.volume_cm3)
        ours_err.append(100.0 * (ours_cm3[s.name] - s.volume_cm3) / s.volume_cm3)
    rows.append(
        {
            "name": "rtstruct_contours_demo_plan",
            "seconds": seconds,
            "baseline_seconds": base_s,
            "speedup": base_s / seconds if seconds > 0 else math.inf,
            "goal": "volume error ≤ 2 %",
            "passed_goal": max(abs(e) for e in ours_err) <= 2.0,
            "notes": f"{len(plan.structures)} structures, {n_contours} contours; volume error "
            f"voxel-edge {min(ours_err):+.3f}..{max(ours_err):+.3f} %, marching squares "
            f"{min(errs):+.1f}..{max(errs):+.1f} %",
        }
    )
    return rows


if __name__ == "__main__":  # pragma: no cover - manual run
    for row in run_benchmarks():
        print(row)
