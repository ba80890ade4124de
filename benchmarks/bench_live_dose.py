"""Benchmark: live isodoses while a seed is dragged (the model half of issue 11's 33 ms goal).

``run_benchmarks(quick=False) -> list[dict]`` (used by ``seedplan bench``): each dict has the keys
``name, seconds, baseline_seconds, speedup, goal, passed_goal, notes``.

Case (deterministic, no CT file): a 512 × 512 × 52 CT grid (0.78 × 0.78 × 2.5 mm, the demo's), a
40 mm spherical PTV, a cord 15 mm posterior to it, 100 seeds (0.5 U) on 14 parallel needles
entering from posterior, PD 110 Gy.

Timed, per update of a scripted drag (a seed moved 0.5 mm along its needle, 40 steps, back and
forth), end to end through the document: ``doc.execute(MoveSeedAlongNeedle)`` → the document's
``changed`` event → :meth:`LiveDose.sync` (one fused old-out/new-in pass of the fast incremental
accumulator on each of the three views) → isodose lines at 50/90/100/150/200 % PD on the three
views as line segments (:meth:`LiveDose.isodose_segments`, numpy marching squares). Reported:
median (the ``seconds``) and 95th percentile. Two cases: the GUI's default (views cropped to
targets/OARs/seeds + 30 mm) and the three whole 512² views; and, on the cropped views, the same
drag with the lines made as the GUI makes them (:class:`app.gui.layers.isodoses.IsodoseContours`:
one numba marching-squares pass for every level, ends in LPS mm in VTK polydata ready to draw,
the 100 % level in its own; no window).

Baseline, in the same run: the plain way, a full exact recompute per update (every seed on
every pixel of the same three views with the exact engine, then
``skimage.measure.find_contours`` at the same levels).

Also reported (no goal): changing a view's slice (recompute one view from all seeds) and the
background exact refresh (:func:`compute_plan_dosimetry`: 1 mm exact grid, DVHs, metrics).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from dose.engine import make_engine
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.document import PlanDocument
from planner.plan.live_dose import VIEWS, LiveDose
from planner.plan.model import Needle, Plan, Prescription, Seed, SourceSpec, Structure
from planner.plan.needle_commands import MoveSeedAlongNeedle

__all__ = ["make_plan", "run_benchmarks"]

GOAL_UPDATE_S = 0.033
SHAPE = (52, 512, 512)
SPACING = (0.78125, 0.78125, 2.5)


def make_plan(n_seeds: int = 100) -> Plan:
    """The benchmark plan (module docstring)."""
    g = GridGeometry.axis_aligned(SHAPE, (-200.0, -200.0, -65.0), SPACING)
    ct = CTVolume(
        np.broadcast_to(np.int16(0), SHAPE),
        g,
        PatientInfo(patient_id="BENCH", frame_of_reference_uid="1.2.3"),
    )
    x, y, z = g.axis_coordinates_mm()
    xx, yy, zz = x[None, None, :], y[None, :, None], z[:, None, None]
    ptv = xx**2 + yy**2 + zz**2 <= 20.0**2
    cord = (xx**2 + (yy - 35.0) ** 2 <= 5.0**2) & (np.abs(zz) < 60) & np.ones_like(xx, bool)
    structures = (
        Structure.from_mask("st-ptv", "PTV", "target", ptv, g),
        Structure.from_mask("st-cord", "SpinalCord", "oar", cord, g),
    )
    needles, seeds = [], []
    grid = [(cx, cz) for cx in range(-12, 13, 6) for cz in range(-12, 13, 6)]
    for n, (cx, cz) in enumerate(c for c in grid if c[0] ** 2 + c[1] ** 2 <= 16**2):
        nid = f"nd-{n:02d}"
        needles.append(Needle(nid, (cx, 70.0, cz), (cx, -22.0, cz), f"N{n + 1}"))
        half = np.sqrt(20.0**2 - cx**2 - cz**2) - 1.5
        for yv in np.arange(-half, half + 1e-9, 5.0):
            seeds.append(Seed(f"sd-{len(seeds):03d}", (cx, float(yv), cz), (0, -1, 0), nid))
    keep = np.unique(np.linspace(0, len(seeds) - 1, n_seeds).round().astype(int))
    seeds = [seeds[i] for i in keep]
    return Plan.new(
        ct,
        structures=structures,
        prescription=Prescription(110.0, "st-ptv"),
        source=SourceSpec("6711", strength_u=0.2),
        needles=tuple(needles),
        seeds=tuple(seeds),
    )


def _contours(live: LiveDose) -> int:
    """Isodose segments of the three views (what the GUI draws); returns their count."""
    return sum(len(v) for view in VIEWS for v in live.isodose_segments(view).values())


def _gui_contours(live: LiveDose, state: dict) -> int:
    """Isodose polydata of the three views as the GUI's isodose layer makes them (VTK);
    returns the segment count."""
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    from app.gui.layers.isodoses import IsodoseContours, level_rgb

    pd_gy = float(live.prescription_gy or 0.0)
    levels = {p: pd_gy * p / 100.0 for p in live.levels_percent}
    colors = {p: level_rgb(p) for p in levels}
    n = 0
    for view in VIEWS:
        if view not in state:  # as the layer: 100 % on its own, the other levels together
            thick, thin = vtkPolyData(), vtkPolyData()
            state[view] = (IsodoseContours(), {p: thick if p == 100.0 else thin for p in levels})
        contours, polydata = state[view]
        geometry = live.plane(view).geometry
        n += sum(
            contours.update(
                live.region_dose_gy(view), geometry, levels, polydata, colors=colors
            ).values()
        )
    return n


def _drag(live: LiveDose, doc: PlanDocument, steps: int, gui: dict | None = None) -> list[float]:
    """Per-step seconds of a drag; ``gui``: contour the GUI's way (state of
    :func:`_gui_contours`) instead of :meth:`LiveDose.isodose_segments`."""
    seed = doc.plan.seeds[len(doc.plan.seeds) // 2]
    times = []
    with doc.stroke("Drag seed"):
        for k in range(steps):
            dist = 12.0 + 0.5 * (k % 20 if (k // 20) % 2 == 0 else 20 - k % 20)
            t0 = time.perf_counter()
            doc.execute(MoveSeedAlongNeedle(seed.id, distance_mm=dist))
            if gui is None:
                _contours(live)
            else:
                _gui_contours(live, gui)
            times.append(time.perf_counter() - t0)
    return times


def _baseline(live: LiveDose, engine, reps: int) -> list[float]:
    from skimage.measure import find_contours

    from planner.plan.dosimetry import plan_seed_set

    times = []
    pd = 110.0
    for _ in range(reps):
        t0 = time.perf_counter()
        seeds, _ = plan_seed_set(live.plan)
        for view in VIEWS:
            g = live.plane(view).geometry
            dose = engine.dose_rate_on_grid(seeds, g).dose_gy[0]
            for p in live.levels_percent:
                find_contours(dose, pd * p / 100.0)
        times.append(time.perf_counter() - t0)
    return times


def _row(name, times, base, notes) -> dict[str, object]:
    med = statistics.median(times)
    p95 = float(np.percentile(times, 95))
    bmed = statistics.median(base)
    return {
        "name": name,
        "seconds": med,
        "baseline_seconds": bmed,
        "speedup": bmed / med if med > 0 else None,
        "goal": f"≤ {GOAL_UPDATE_S * 1000:.0f} ms per update",
        "passed_goal": med <= GOAL_UPDATE_S,
        "p95_seconds": p95,
        "notes": notes + f"; p95 {p95 * 1000:.1f} ms; baseline = exact recompute of the 3 views",
    }


def run_benchmarks(quick: bool = False) -> list[dict[str, object]]:
    from planner.plan.dosimetry import compute_plan_dosimetry

    steps = 10 if quick else 40
    plan = make_plan()
    engine = make_engine("6711", "2d", "numba")
    rows = []
    for crop, label in ((30.0, "cropped views (default)"), (None, "whole 512² views")):
        doc = PlanDocument(plan)
        live = LiveDose(doc.plan, engine=engine, crop_margin_mm=crop)
        live.attach(doc)
        _drag(live, doc, 3)  # warm (numba, skimage)
        times = _drag(live, doc, steps)
        base = _baseline(live, engine, 1 if crop is None or quick else 3)
        shapes = ", ".join("×".join(map(str, live.plane(v).geometry.shape_zyx[1:])) for v in VIEWS)
        rows.append(
            _row(
                f"live isodoses: drag 1 of {len(plan.seeds)} seeds, 3 views, {label}",
                times,
                base,
                f"views {shapes} px; {_contours(live)} isodose segments",
            )
        )
        if crop is not None:
            gui: dict = {}
            _drag(live, doc, 3, gui)  # warm
            gui_times = _drag(live, doc, steps, gui)
            rows.append(
                _row(
                    f"live isodoses: drag 1 of {len(plan.seeds)} seeds, 3 views, {label}, "
                    "lines made as the GUI makes them (VTK)",
                    gui_times,
                    base,
                    f"views {shapes} px; {_gui_contours(live, gui)} segments into VTK "
                    "polydata (app.gui.layers.isodoses.IsodoseContours: one marching-squares "
                    "pass for every level; the 100 % line in its own polydata)",
                )
            )
        t_slice = []
        for k in range(3 if quick else 8):
            t0 = time.perf_counter()
            live.set_slice("axial", 20 + k)
            live.isodose_segments("axial")
            t_slice.append(time.perf_counter() - t0)
        rows.append(
            {
                "name": f"live isodoses: change the axial slice, {label}",
                "seconds": statistics.median(t_slice),
                "baseline_seconds": statistics.median(base) / 3.0,
                "speedup": statistics.median(base) / 3.0 / statistics.median(t_slice),
                "goal": "(scrolling; no goal)",
                "passed_goal": True,
                "notes": "one view recomputed from all seeds (fast mode) + its isodose lines",
            }
        )
    t0 = time.perf_counter()
    d = compute_plan_dosimetry(plan)
    t_exact = time.perf_counter() - t0
    rows.append(
        {
            "name": "exact refresh after an edit (compute_plan_dosimetry)",
            "seconds": t_exact,
            "baseline_seconds": None,
            "speedup": None,
            "goal": "(background; no goal)",
            "passed_goal": True,
            "notes": f"{d.label}; PTV D90 {d.metrics['PTV'].d90_gy:.1f} Gy",  # type: ignore[union-attr]
        }
    )
    return rows


if __name__ == "__main__":  # pragma: no cover
    for r in run_benchmarks():
        base = r["baseline_seconds"]
        shown = "-" if base is None else f"{float(base) * 1000:.1f} ms"
        print(f"{r['name']:66s} {float(r['seconds']) * 1000:8.1f} ms  baseline {shown:>10s}")
        print(f"    {r['notes']}")
