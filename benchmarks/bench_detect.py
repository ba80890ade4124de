"""Seed detection on a 512×512×150 post-op CT (goal ≤ 5 s on 2 cores, ≥ 99 % found, ≤ 0.7 mm RMS).

The CT is the demo phantom at 1.25 mm slices (150 slices; and 30 slices of 5 mm) with a
posterior needle implant, a touching pair, an end-to-end triplet, a side-by-side pair, a pedicle
screw and cement rendered through the scanner model of :mod:`planner.postop.synthetic`. The
baseline is the plain method (a fixed 2000 HU threshold, 3-D connected components, one seed per
component at its centre of mass, no cluster splitting or metal classification), timed and
scored in the same run. Wall time is the best of three runs with its range, CPU time and the
load average in the notes (the machine is shared: wall time under load is not the method's).

``python -m benchmarks.bench_detect --scenarios`` prints the accuracy table per scenario
(:func:`scenario_table`: sparse needle implants, seed grids, clusters and lung, the dense case)
at 1.25, 2.5 and 5 mm slices; ``--scenarios --heldout`` the same on scenes the thresholds were
not chosen on (:func:`heldout_cases`); ``--scenarios --validation`` a third set
(:func:`validation_cases`); ``--scenarios --freehand`` freehand implants of random geometry
(:func:`freehand_cases`, rng 0–11; ``--freehand-check``: rng 100–111); ``--bone-prior``
gives the detection on thick slices the planning CT's bone, registered 0.9 mm off
(:mod:`planner.postop.detection.bone_prior`); ``--box-profile`` renders every scene's seeds
on a box slice profile instead of the detection's Gaussian model (:data:`SLICE_PROFILE`).
None is part of ``seedplan bench``.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import linear_sum_assignment

GOAL_SECONDS = 5.0
#: The seeds' slice profile of every scene built here (``render_postop_ct``'s
#: ``slice_profile``): ``"gaussian"``, the detection's own model, or ``"box"`` (``--box-profile``:
#: thick slices averaged from thin ones, a scanner that is not the model).
SLICE_PROFILE = "gaussian"


def _render(base, scene, rng: int):
    """The post-op CT of ``scene`` on ``base`` (``render_postop_ct``) on :data:`SLICE_PROFILE`."""
    from planner.postop.synthetic import render_postop_ct

    return render_postop_ct(base, scene, rng=rng, slice_profile=SLICE_PROFILE)


def make_case(n_slices: int = 150, slice_mm: float = 1.25):
    """(post-op CTVolume, PostopScene) of the benchmark."""
    from planner.demo.phantom import PhantomSpec, generate_phantom
    from planner.imaging.volume import CTVolume
    from planner.postop.synthetic import needle_implant_scene

    ph = generate_phantom(PhantomSpec(slice_mm=slice_mm, n_slices=n_slices))
    base = CTVolume(ph.hu, ph.geometry)
    scene = needle_implant_scene(
        ph.masks["GTV"], ph.geometry, rng=1, needle_spacing_mm=9.0, seed_spacing_mm=8.0
    )
    return _render(base, scene, 3), scene


def _baseline(ct) -> np.ndarray:
    labels, n = ndi.label(ct.hu >= 2000, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros((0, 3))
    kji = np.array(ndi.center_of_mass(np.ones(ct.hu.shape), labels, np.arange(1, n + 1)))
    return ct.geometry.zyx_to_world(kji)


def _score(truth: np.ndarray, found: np.ndarray) -> tuple[int, int, float]:
    """(matched within 2.5 mm, false, centre RMS mm)."""
    if len(found) == 0:
        return 0, 0, math.nan
    d = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(d)
    ok = d[r, c] < 2.5
    rms = float(np.sqrt(np.mean(d[r, c][ok] ** 2))) if ok.any() else math.nan
    return int(ok.sum()), int(len(found) - ok.sum()), rms


def _run_case(ct, scene, repeats: int, slice_mm: float) -> dict:
    """One benchmark row: detection timed (wall, best of ``repeats``; CPU of that run) and
    scored beside the plain baseline."""
    from planner.postop.detection.detect import detect_seeds

    truth = scene.seeds_mm
    detect_seeds(ct)  # warm-up: imports (scikit-learn) and caches
    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = detect_seeds(ct, expected=len(truth))
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    t0 = time.perf_counter()
    base_found = _baseline(ct)
    base_seconds = time.perf_counter() - t0
    matched, false, rms = _score(truth, result.positions_mm)
    b_matched, b_false, b_rms = _score(truth, base_found)
    best = int(np.argmin(times))
    seconds = times[best]
    shape = "×".join(str(s) for s in ct.hu.shape[::-1])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    notes = (
        f"{shape} CT at {slice_mm:g} mm, {len(truth)} seeds: found {matched} "
        f"({100 * matched / len(truth):.1f} %), {false} false, centre RMS {rms:.2f} mm, "
        f"{result.clusters_split} clusters split, {len(result.metal)} metal excluded; "
        f"wall {min(times):.2f}–{max(times):.2f} s over {repeats} run(s), CPU {cpus[best]:.2f} s, "
        f"load {load:.1f}; baseline found {b_matched}, {b_false} false, RMS {b_rms:.2f} mm"
    )
    return {
        "name": f"seed_detection_{shape}_{slice_mm:g}mm",
        "seconds": seconds,
        "baseline_seconds": base_seconds,
        "speedup": base_seconds / seconds if seconds > 0 else math.inf,
        "goal": f"≤ {GOAL_SECONDS:.0f} s, ≥ 99 % found, ≤ 0.7 mm RMS",
        "passed_goal": bool(
            seconds <= GOAL_SECONDS and matched >= 0.99 * len(truth) and rms <= 0.7
        ),
        "notes": notes,
    }


def run_benchmarks(quick: bool = False) -> list[dict]:
    """Time :func:`planner.postop.detection.detect.detect_seeds` beside the plain baseline: the
    512×512×150 CT at 1.25 mm (the issue's goal), and (not in quick mode) the same anatomy on
    30 slices of 5 mm, where the detector searches by shape."""
    ct, scene = make_case(n_slices=60 if quick else 150)
    rows = [_run_case(ct, scene, 1 if quick else 3, 1.25)]
    if not quick:
        ct, scene = make_case(n_slices=30, slice_mm=5.0)
        rows.append(_run_case(ct, scene, 3, 5.0))
    return rows


def _resample_z(ph, thickness_mm: float):
    """(CTVolume on slices of ``thickness_mm``, linear in z; its GTV, nearest) of a phantom."""
    from planner.postop.synthetic import reslice_thick

    return reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], thickness_mm)


def scenario_cases(thickness_mm: float):
    """(name, post-op CT, scene) of the accuracy scenarios on slices of ``thickness_mm``: the
    demo anatomy (40 slices of 2.5 mm resampled) with sparse needle implants beside a screw and
    cement (seeds kept out of lung), seed grids of every orientation, needle implants with a
    touching pair, an end-to-end triplet, a side-by-side pair and seeds against lung; and, on
    5 mm, the dense benchmark case (needles 9 mm apart, its own 30-slice phantom)."""
    from planner.demo.phantom import generate_phantom
    from planner.postop.synthetic import (
        needle_implant_scene,
        seed_grid_scene,
    )

    base, gtv = _resample_z(generate_phantom(n_slices=40), thickness_mm)
    geo = base.geometry
    cases = []
    for rng in (1, 3):
        sc = needle_implant_scene(gtv, geo, rng=rng, clusters=False, avoid_lung=base.hu)
        cases.append((f"needles rng {rng}", _render(base, sc, rng + 2), sc))
    centre = geo.zyx_to_world(np.argwhere(gtv).mean(axis=0))
    for rng in (1, 2, 3):
        sc = seed_grid_scene(geo, centre, rng=rng, avoid_lung=base.hu)
        cases.append((f"grid rng {rng}", _render(base, sc, rng + 2), sc))
    for rng in (1, 2):
        sc = needle_implant_scene(gtv, geo, rng=rng)
        cases.append((f"clusters+lung rng {rng}", _render(base, sc, rng + 2), sc))
    if thickness_mm == 5.0:
        ct, sc = make_case(n_slices=30, slice_mm=5.0)
        cases.append(("dense benchmark", ct, sc))
    return cases


def _random_draws(thickness_mm: float, label: str, grid_rngs, implant_rngs):
    """(name, post-op CT, scene) of seed grids (``grid_rngs``, seeds kept out of lung) and
    needle implants with clusters and lung (``implant_rngs``) on the demo anatomy resampled to
    ``thickness_mm``, named ``label`` grid/clusters+lung rng N."""
    from planner.demo.phantom import generate_phantom
    from planner.postop.synthetic import needle_implant_scene, seed_grid_scene

    base, gtv = _resample_z(generate_phantom(n_slices=40), thickness_mm)
    geo = base.geometry
    centre = geo.zyx_to_world(np.argwhere(gtv).mean(axis=0))
    cases = []
    for rng in grid_rngs:
        sc = seed_grid_scene(geo, centre, rng=rng, avoid_lung=base.hu)
        cases.append((f"{label} grid rng {rng}", _render(base, sc, rng + 2), sc))
    for rng in implant_rngs:
        sc = needle_implant_scene(gtv, geo, rng=rng)
        cases.append((f"{label} clusters+lung rng {rng}", _render(base, sc, rng + 2), sc))
    return cases


def heldout_cases(thickness_mm: float):
    """(name, post-op CT, scene) of scenes of other random draws than :func:`scenario_cases`:
    seed grids (rng 4–9) and needle implants with clusters and lung (rng 3–8); a check that the
    rules are not fitted to the benchmark scenes (two 5 mm rules were set looking at misses of
    rng 4–6 / 3–5; rng 7–9 / 6–8 were never looked at before they were measured; session 8's
    5 mm rules were set looking at misses of all of them)."""
    return _random_draws(thickness_mm, "held-out", (4, 5, 6, 7, 8, 9), (3, 4, 5, 6, 7, 8))


def validation_cases(thickness_mm: float):
    """(name, post-op CT, scene) of a third set of random draws: seed grids (rng 10–12) and
    needle implants with clusters and lung (rng 9–14), first measured after the lung-seed step
    (:mod:`planner.postop.detection.lung_seeds`) was set on the scenes of :func:`scenario_cases` and
    :func:`heldout_cases`, and not used to set anything."""
    return _random_draws(thickness_mm, "validation", (10, 11, 12), (9, 10, 11, 12, 13, 14))


#: Draws of :func:`freehand_cases`: rng 0–11 were measured first (session 9) and are where
#: any rule is set; rng 100–111 are kept for checking such a rule afterwards.
FREEHAND_RNGS = tuple(range(12))
FREEHAND_CHECK_RNGS = tuple(range(100, 112))
#: Fresh draws (session 18): rng 200–223 first measured before any change of that session
#: (5 mm: 1097/1122 found, 13 false — every rule before was set on or checked against the
#: sets above), then one rule set looking at its misses (a touching pair cut along its
#: axis); rng 300–323 measured only before and after that rule, nothing set on them.
FREEHAND_FRESH_RNGS = tuple(range(200, 224))
FREEHAND_UNSEEN_RNGS = tuple(range(300, 324))
#: Draws measured only before and after a session's rules (``--freehand-later``): rng 400–423
#: (session 18), rng 500–523 (drawn after session 19's rules were set on rng 200–223), rng
#: 600–623 (session 20: drawn to judge two rules set on rng 200–323, neither kept; 5 mm with
#: session 19's rules 987/1011 found, 7 false), rng 700–723 (session 21: drawn to judge a lower
#: column-pair threshold, not kept; 5 mm with session 20's rules 937/950 found, 5 false) and
#: rng 800–823 (session 21: drawn to judge the column pairs tried where seeds are missing; 5 mm
#: 1007/1020, 6 false before it, 1008/1020, 6 after).
FREEHAND_LATER_RNGS = (
    tuple(range(400, 424))
    + tuple(range(500, 524))
    + tuple(range(600, 624))
    + tuple(range(700, 724))
    + tuple(range(800, 824))
)


def freehand_cases(thickness_mm: float, rngs=FREEHAND_RNGS):
    """(name, post-op CT, scene) of freehand implants of random geometry
    (:func:`planner.postop.freehand_scene.freehand_implant_scene`: approach, needle and seed
    spacing, pattern, divergence, jitter, noise and streaks all drawn; lung included) on the
    demo anatomy resampled to ``thickness_mm``, one per ``rngs``. Unlike the needle-grid
    scenes these are not near-copies of one another."""
    from planner.demo.phantom import generate_phantom
    from planner.postop.freehand_scene import freehand_implant_scene

    base, gtv = _resample_z(generate_phantom(n_slices=40), thickness_mm)
    cases = []
    for rng in rngs:
        sc = freehand_implant_scene(gtv, base.geometry, rng=rng)
        cases.append((f"freehand rng {rng}", _render(base, sc, rng + 100), sc))
    return cases


def _registration_error():
    """A registration 0.9 mm and 0.5° off (the post-op scenes share the anatomy's frame)."""
    from planner.postop.register import RigidTransform

    return RigidTransform().nudged(shift_mm=(0.5, -0.4, 0.6), rotation_deg=(0.0, 0.0, 0.5))


#: Seed strength (U) of the D90 comparison: any, the ratio detected / true does not depend on it.
D90_STRENGTH_U = 0.5


def gtv_d90_gy(positions_mm: np.ndarray, gtv_points_mm: np.ndarray) -> float:
    """D90 (Gy) of the points ``gtv_points_mm`` (N, 3; voxel centres, equal volumes) from I-125
    6711 seeds at ``positions_mm`` in the 1D formalism (the post-plan convention when seed
    orientation is uncertain), :data:`D90_STRENGTH_U` each: the dose 90 % of them receive."""
    from dose.engine.factory import make_engine
    from dose.engine.values import SeedSet, rate_to_dose_gy

    engine = make_engine("6711", "1d", "numba")
    seeds = SeedSet.create(np.asarray(positions_mm).reshape(-1, 3), None, D90_STRENGTH_U)
    rate = engine.dose_rate_at_points(seeds, gtv_points_mm).dose_rate_cgy_h
    return float(np.percentile(rate_to_dose_gy(rate), 10.0))


def scenario_table(
    thicknesses=(1.25, 2.5, 5.0),
    *,
    heldout: bool = False,
    validation: bool = False,
    freehand: tuple[int, ...] | None = None,
    bone_prior: bool = False,
) -> list[dict]:
    """Per scenario and slice thickness: found / expected (Hungarian within 2.5 mm), false,
    centre RMS (mm), median axis error (°), the GTV's D90 from the detected seeds against D90
    from the true seeds (:func:`gtv_d90_gy`; the scenes on the demo anatomy, NaN on the dense
    benchmark's own phantom), detection wall time (s, one run). ``heldout``: the scenes of
    :func:`heldout_cases` instead, ``validation`` those of :func:`validation_cases`,
    ``freehand`` (rng draws) those of :func:`freehand_cases`. ``bone_prior``: on thick
    slices the detection is given the planning CT's bone as ``seedplan verify`` gives it
    (:func:`planner.postop.verify.detect_with_bone_prior`, placed with
    :func:`_registration_error`; its time includes the prior, and the detection without it
    where that runs), the planning CT being the anatomy on its own 2.5 mm slices (not on the
    dense benchmark's own phantom)."""
    from planner.demo.phantom import generate_phantom
    from planner.imaging.volume import CTVolume
    from planner.postop.detection.detect import detect_seeds
    from planner.postop.detection.thick_slices import THICK_SLICE_MM
    from planner.postop.verify import detect_with_bone_prior

    rows = []
    phantom = generate_phantom(n_slices=40)
    planning = CTVolume(phantom.hu, phantom.geometry)
    for t in thicknesses:
        anatomy, gtv = _resample_z(phantom, t)
        gtv_points = anatomy.geometry.zyx_to_world(np.argwhere(gtv).astype(np.float64))
        cases = (
            freehand_cases(t, freehand)
            if freehand is not None
            else validation_cases(t)
            if validation
            else heldout_cases(t)
            if heldout
            else scenario_cases(t)
        )
        for name, ct, sc in cases:
            truth = sc.seeds_mm
            t0 = time.perf_counter()
            if bone_prior and t > THICK_SLICE_MM and ct.geometry.same_as(anatomy.geometry):
                # As verify does: with and without the bone, the count nearer the expected.
                res = detect_with_bone_prior(
                    planning, ct, _registration_error(), len(truth), None, None, None
                )
            else:
                res = detect_seeds(ct, expected=len(truth))
            seconds = time.perf_counter() - t0
            found = res.positions_mm
            d = np.linalg.norm(truth[:, None] - found[None], axis=-1)
            r, c = linear_sum_assignment(np.where(d < 2.5, d, 1e6))
            ok = d[r, c] < 2.5
            r, c = r[ok], c[ok]
            cos = np.abs(np.sum(sc.axes[r] * res.axes[c], axis=1))
            d90_true = d90_found = math.nan
            if ct.geometry.same_as(anatomy.geometry):
                d90_true = gtv_d90_gy(truth, gtv_points)
                d90_found = gtv_d90_gy(found, gtv_points)
            rows.append(
                {
                    "slice_mm": t,
                    "scenario": name,
                    "found": len(r),
                    "expected": len(truth),
                    "false": int(len(found) - len(r)),
                    "rms_mm": float(np.sqrt(np.mean(d[r, c] ** 2))) if len(r) else math.nan,
                    "axis_median_deg": float(np.median(np.degrees(np.arccos(np.clip(cos, 0, 1)))))
                    if len(r)
                    else math.nan,
                    "d90_true_gy": d90_true,
                    "d90_detected_gy": d90_found,
                    "d90_difference_percent": 100.0 * (d90_found - d90_true) / d90_true,
                    "seconds": seconds,
                }
            )
    return rows


if __name__ == "__main__":  # pragma: no cover - manual run
    import sys

    if "--box-profile" in sys.argv:
        SLICE_PROFILE = "box"
    if "--scenarios" in sys.argv:
        print(
            "slice mm | scenario | found / expected | false | centre RMS mm | axis median ° | "
            "GTV D90 detected vs true | s"
        )
        freehand = (
            FREEHAND_CHECK_RNGS
            if "--freehand-check" in sys.argv
            else FREEHAND_FRESH_RNGS
            if "--freehand-fresh" in sys.argv
            else FREEHAND_UNSEEN_RNGS
            if "--freehand-unseen" in sys.argv
            else FREEHAND_LATER_RNGS
            if "--freehand-later" in sys.argv
            else FREEHAND_RNGS
            if "--freehand" in sys.argv
            else None
        )
        totals: dict[float, list[int]] = {}
        worst: dict[float, float] = {}
        for row in scenario_table(
            heldout="--heldout" in sys.argv,
            validation="--validation" in sys.argv,
            freehand=freehand,
            bone_prior="--bone-prior" in sys.argv,
        ):
            total = totals.setdefault(row["slice_mm"], [0, 0, 0])
            total[0] += row["found"]
            total[1] += row["expected"]
            total[2] += row["false"]
            d90 = row["d90_difference_percent"]
            if math.isfinite(d90):
                worst[row["slice_mm"]] = max(worst.get(row["slice_mm"], 0.0), abs(d90))
            print(
                f"{row['slice_mm']:g} | {row['scenario']} | {row['found']}/{row['expected']} | "
                f"{row['false']} | {row['rms_mm']:.2f} | {row['axis_median_deg']:.1f} | "
                f"{row['d90_detected_gy']:.1f} vs {row['d90_true_gy']:.1f} Gy ({d90:+.1f} %) | "
                f"{row['seconds']:.2f}"
            )
        for t, (found, expected, false) in totals.items():
            print(
                f"{t:g} mm total: {found}/{expected} ({100 * found / expected:.1f} %) found, "
                f"{false} false ({100 * false / expected:.1f} %); largest |ΔD90| "
                f"{worst.get(t, math.nan):.1f} %"
            )
    else:
        for row in run_benchmarks():
            print(row)
