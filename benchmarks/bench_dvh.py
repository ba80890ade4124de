"""Benchmark: DVHs and all plan metrics for 3 structures on a 10⁶-voxel dose grid.

``run_benchmarks(quick=False) -> list[dict]`` (used by ``seedplan bench``): each dict has the keys
``name, seconds, baseline_seconds, speedup, goal, passed_goal, notes``.

Case (deterministic, no engine needed): a 100³ grid of 1 mm voxels; 60 point sources with an
inverse-square dose (clamped at 1 mm) scaled so the target D90 is near the 110 Gy prescription;
a 20 cm³ spherical target (fractional occupancy), a 10 mm-diameter, 80 mm-long spinal cord
(cylinder) 10 mm outside the target and a 30 cm³ ellipsoidal vertebral body. Timed (warm, best of
several runs): :func:`dose.metrics.evaluate_plan` — three supersampled DVHs (4 jittered
n-rooks samples per voxel), V_ref over the whole grid, target/OAR metrics, seed distances,
BED/EQD2 and goals.

Baseline, in the same run: a straightforward vectorised numpy implementation of the same
computation (4 trilinear samples per structure voxel, same pattern, ``np.histogram`` DVHs,
``np.interp`` queries, V_ref by sampling every grid voxel, brute-force seed distances). Its D90
is compared with ours in the notes.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from dose.metrics import evaluate_plan

__all__ = ["make_case", "run_benchmarks"]

GOAL_SECONDS = 0.050
PRESCRIPTION_GY = 110.0


def _occupancy(geometry: GridGeometry, inside, n_sub: int = 4) -> NDArray[np.float32]:
    """Fractional occupancy from an implicit shape ``inside(x, y, z) -> bool``, n_sub³ samples."""
    x, y, z = geometry.axis_coordinates_mm()
    off = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    occ = np.zeros(geometry.shape_zyx, dtype=np.float32)
    for oz in off:
        for oy in off:
            for ox in off:
                zz = (z + oz * geometry.spacing_mm[2])[:, None, None]
                yy = (y + oy * geometry.spacing_mm[1])[None, :, None]
                xx = (x + ox * geometry.spacing_mm[0])[None, None, :]
                occ += inside(xx, yy, zz)
    return occ / n_sub**3


def make_case() -> dict[str, object]:
    """The benchmark case: dose (Gy), geometry, occupancies, seeds (LPS mm)."""
    geometry = GridGeometry.axis_aligned((100, 100, 100), (-49.5, -49.5, -49.5), (1.0, 1.0, 1.0))
    rng = np.random.default_rng(20260101)
    r_target = (20.0 * 1000.0 * 3.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # 20 cm³ sphere, mm
    # Seeds uniformly inside 80 % of the target radius.
    seeds = []
    while len(seeds) < 60:
        p = rng.uniform(-r_target, r_target, 3) * 0.8
        if np.linalg.norm(p) < 0.8 * r_target:
            seeds.append(p)
    seeds_mm = np.array(seeds)
    x, y, z = geometry.axis_coordinates_mm()
    dose = np.zeros(geometry.shape_zyx)
    for s in seeds_mm:
        r2 = (
            (z[:, None, None] - s[2]) ** 2
            + (y[None, :, None] - s[1]) ** 2
            + (x[None, None, :] - s[0]) ** 2
        )
        dose += 1.0 / np.maximum(r2, 1.0)
    target = _occupancy(geometry, lambda x, y, z: x**2 + y**2 + z**2 <= r_target**2)
    # Cord: 5 mm radius, axis along z, 10 mm posterior of the target surface, 80 mm long.
    cy = r_target + 10.0 + 5.0
    cord = _occupancy(
        geometry, lambda x, y, z: (x**2 + (y - cy) ** 2 <= 25.0) & (np.abs(z) <= 40.0)
    )
    # Vertebral body: ellipsoid 30 cm³ anterior-left of the target.
    a, b, c = 22.0, 15.0, 30.0 * 1000 * 3 / (4 * math.pi * 22.0 * 15.0)
    body = _occupancy(
        geometry,
        lambda x, y, z: ((x - 20) / a) ** 2 + ((y + 25) / b) ** 2 + (z / c) ** 2 <= 1.0,
    )
    # Scale so that the target's voxel-centre D90 is 15 % above the prescription (a plan that
    # meets its goals).
    tvals = np.sort(dose[target >= 0.5])
    dose *= 1.15 * PRESCRIPTION_GY / tvals[int(0.1 * tvals.size)]
    return {
        "dose_gy": dose,
        "geometry": geometry,
        "structures": {"PTV": target, "SpinalCord": cord, "VertebralBody": body},
        "seeds_mm": seeds_mm,
    }


def _ours(case: dict) -> object:
    s = case["structures"]
    return evaluate_plan(
        case["dose_gy"],
        case["geometry"],
        prescription_gy=PRESCRIPTION_GY,
        target=("PTV", s["PTV"]),
        oars={"SpinalCord": s["SpinalCord"], "VertebralBody": s["VertebralBody"]},
        seeds_mm=case["seeds_mm"],
        cord_name="SpinalCord",
    )


def _np_trilinear(dose: NDArray, k: NDArray, j: NDArray, i: NDArray) -> NDArray:
    nz, ny, nx = dose.shape
    k = np.clip(k, 0, nz - 1)
    j = np.clip(j, 0, ny - 1)
    i = np.clip(i, 0, nx - 1)
    k0 = np.minimum(k.astype(np.int64), nz - 2)
    j0 = np.minimum(j.astype(np.int64), ny - 2)
    i0 = np.minimum(i.astype(np.int64), nx - 2)
    tk, tj, ti = k - k0, j - j0, i - i0
    out = np.zeros(k.shape)
    for dk, wk in ((0, 1 - tk), (1, tk)):
        for dj, wj in ((0, 1 - tj), (1, tj)):
            for di, wi in ((0, 1 - ti), (1, ti)):
                out += wk * wj * wi * dose[k0 + dk, j0 + dj, i0 + di]
    return out


def _baseline(case: dict) -> dict[str, float]:
    """Plain vectorised numpy version of the same work; returns a few numbers to compare."""
    dose = case["dose_gy"]
    geom: GridGeometry = case["geometry"]
    vvox = geom.voxel_volume_mm3 / 1000.0
    # The 4-sample n-rooks pattern of dose.dvh (strata centres, no jitter), (3, 4) as (k, j, i).
    sub = (np.array([[0, 1, 2, 3], [2, 0, 3, 1], [1, 3, 0, 2]]) + 0.5) / 4 - 0.5
    n_sub = sub.shape[1]
    out: dict[str, float] = {}
    bw = 0.1
    for name, occ in case["structures"].items():
        vox = np.argwhere(occ > 0)
        w = np.repeat(occ[occ > 0] * vvox / n_sub, n_sub)
        kk = (vox[:, 0:1] + sub[0]).ravel()
        jj = (vox[:, 1:2] + sub[1]).ravel()
        ii = (vox[:, 2:3] + sub[2]).ravel()
        d = _np_trilinear(dose, kk, jj, ii)
        hist, edges = np.histogram(d, bins=np.arange(0, d.max() + bw, bw), weights=w)
        cum = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])
        vol = cum[0]
        out[f"{name}_d90"] = float(np.interp(-0.9 * vol, -cum, edges))
        out[f"{name}_d0.1cc"] = float(np.interp(-0.1, -cum, edges))
        out[f"{name}_v100"] = float(np.interp(PRESCRIPTION_GY, edges, cum) / vol)
        out[f"{name}_mean"] = float((w * d).sum() / w.sum())
        mask = occ >= 0.5
        pts = geom.zyx_to_world(np.argwhere(mask))
        dist = np.sqrt(((case["seeds_mm"][:, None, :] - pts[None]) ** 2).sum(-1)).min()
        out[f"{name}_dist"] = float(dist)
    # V_ref: every grid voxel sampled n_sub times (one z slice at a time to bound memory).
    count = 0
    nz, ny, nx = dose.shape
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for k in range(nz):
        kk = np.full(jj.shape, k)
        for s in range(n_sub):
            d = _np_trilinear(dose, kk + sub[0, s], jj + sub[1, s], ii + sub[2, s])
            count += int((d >= PRESCRIPTION_GY).sum())
    out["v_ref_cm3"] = count / n_sub * vvox
    return out


def _best_time(fn, *args, repeat: int = 5) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_benchmarks(quick: bool = False) -> list[dict]:
    """Run the DVH/metrics benchmark; see the module docstring (``quick``: fewer repeats)."""
    case = make_case()
    _ours(case)  # warm-up: numba compilation / cache load
    seconds, ev = _best_time(_ours, case, repeat=5 if quick else 9)
    base_seconds, base = _best_time(_baseline, case, repeat=1)
    tm = ev.target  # type: ignore[attr-defined]
    n_vox = sum(int((o > 0).sum()) for o in case["structures"].values())
    notes = (
        f"3 structures ({n_vox} voxels > 0) on 100³ voxels of 1 mm, 4 samples/voxel; "
        f"PTV D90 {tm.d90_gy:.2f} Gy (numpy baseline {base['PTV_d90']:.2f}), "
        f"V100 {tm.v100_percent:.1f} %, CI {tm.ci:.3f}, V_ref {tm.v_ref_cm3:.2f} cm³ "
        f"(baseline {base['v_ref_cm3']:.2f}); cord D0.1cm³ "
        f"{ev.oars['SpinalCord'].d0_1cc_gy:.2f} Gy; "  # type: ignore[attr-defined]
        f"goals {ev.status}"  # type: ignore[attr-defined]
    )
    return [
        {
            "name": "dvh_metrics_3_structures_1e6_voxels",
            "seconds": seconds,
            "baseline_seconds": base_seconds,
            "speedup": base_seconds / seconds if seconds > 0 else math.inf,
            "goal": f"≤ {GOAL_SECONDS * 1000:.0f} ms warm",
            "passed_goal": seconds <= GOAL_SECONDS,
            "notes": notes,
        }
    ]


if __name__ == "__main__":  # pragma: no cover - manual run
    for row in run_benchmarks():
        print(row)
