"""Robustness of a plan to needle placement errors (issue 12).

Needles do not land where planned. Default error model (:class:`NeedleErrorModel`), from
CT-guided thoracic implants with a 3D-printed template (28 patients, 318 needles; JRR 2021,
clinical.md §2.1): entry 3.4 ± 1.7 mm, angle 2.8 ± 1.7°, depth 5.2 ± 4.8 mm (mean ± SD of the
magnitudes). Per sample and needle: the entry moves perpendicular to the needle by
|N(3.4, 1.7)| mm in a uniformly random direction; the needle turns about its (moved) entry
by an angle of |N(2.8, 1.7)|° towards an independent random direction; it goes deeper or
shallower (random sign) by |N(5.2, 4.8)| mm along its new axis. Seeds move rigidly with their
needle (axes turn with it), then each seed moves by an isotropic Gaussian jitter
(``seed_jitter_mm``, default 1 mm per axis). Free seeds (no needle) only jitter.

Calibration against the measured tip error (4.4 ± 2.9 mm, lateral): turning a needle of length
ℓ by θ moves its tip by ℓ·tan θ, so the uncalibrated model's tip error grows with depth (6.7 mm
mean on the demo's 80-130 mm posterolateral needles). In CT-guided implants the tip is checked
on CT and the needle corrected before seeds are dropped, so the tip error does not keep growing
with depth: the angle's lever is capped at ``max_lever_mm`` (the needle turns by θ' with
ℓ·tan θ' = min(ℓ, max_lever_mm)·tan θ). ``max_lever_mm`` = 55 mm makes the sampled lateral
tip error 4.4 ± 2.2 mm for every needle of 55 mm or longer (the measured mean; the SD is
0.7 mm lower than measured) — :func:`tip_error_mm` gives it for a length, and each run reports
the sampled tip error of its plan so the model can be checked. Shorter needles keep the
uncapped angle (tip error 3.4-4.4 mm).

Metrics per sample, on CT voxel centres (each voxel of a structure counted once, the plan's
volume rule; the union of the targets subsampled uniformly to at most 6000 voxels): target D90
(Gy), V100 (%), and the cord's D0.1 cm³ (Gy, the dose at the hottest ⌈0.1 cm³ / voxel
volume⌉ voxels), with the exact TG-43 engine. Reported as median and 5th / 95th percentiles
over the samples, beside the nominal values on the same points.

DVH bands (:class:`DVHBand`, ``RobustnessResult.dvh_bands``): for every target structure and
the cord, the cumulative DVH (% of the structure's volume receiving ≥ dose) of each sample on
a common dose axis (201 points from 0 to twice the highest nominal dose, at most 3 × PD), and
its 5th, 50th and 95th percentiles over the samples at each dose, beside the nominal DVH on
the same points. Cord voxels within 40 mm of the seeds' box are all used (they carry the
D0.1 cm³); those farther away (low, smooth dose) are subsampled to at most 400 with weights,
so the percentages are of the whole cord.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.engine import SeedSet, make_engine, rate_to_dose_gy
from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.optimise.influence import structure_points_mm
from planner.plan.dosimetry import plan_seed_set
from planner.plan.model import Plan, Structure

__all__ = [
    "DVHBand",
    "NeedleErrorModel",
    "RobustnessResult",
    "cord_structure",
    "perturb_points",
    "robustness",
    "tip_error_mm",
]

CORD_RE = re.compile(r"cord", re.IGNORECASE)
MAX_FAR_CORD_POINTS = 400  # cord voxels > 40 mm from the seeds' box kept for the cord DVH


@dataclass(frozen=True)
class NeedleErrorModel:
    """Needle error magnitudes (mean, SD) and per-seed jitter (module docstring)."""

    entry_mm: tuple[float, float] = (3.4, 1.7)
    angle_deg: tuple[float, float] = (2.8, 1.7)
    depth_mm: tuple[float, float] = (5.2, 4.8)
    seed_jitter_mm: float = 1.0
    max_lever_mm: float = 55.0  # the angle moves the tip as on a needle at most this long

    def to_dict(self) -> dict[str, object]:
        return {
            "entry_mm": list(self.entry_mm),
            "angle_deg": list(self.angle_deg),
            "depth_mm": list(self.depth_mm),
            "seed_jitter_mm": self.seed_jitter_mm,
            "max_lever_mm": self.max_lever_mm,
        }


@dataclass(frozen=True)
class DVHBand:
    """Cumulative DVH percentiles over the samples of one structure.

    dose_gy : (n,) dose axis (Gy), from 0; volume_pct_p5 / _p50 / _p95 : (n,) % of the
    structure's volume receiving ≥ dose, 5th / 50th / 95th percentile over the samples at each
    dose (p5 ≤ p50 ≤ p95); volume_pct_nominal : (n,) the plan as planned, same points.
    Items are also readable as ``band["dose_gy"]``.
    """

    dose_gy: NDArray[np.float64]
    volume_pct_p5: NDArray[np.float64]
    volume_pct_p50: NDArray[np.float64]
    volume_pct_p95: NDArray[np.float64]
    volume_pct_nominal: NDArray[np.float64]

    def __getitem__(self, key: str) -> NDArray[np.float64]:
        return getattr(self, key)

    def to_dict(self) -> dict[str, list[float]]:
        keys = ("dose_gy", "volume_pct_p5", "volume_pct_p50", "volume_pct_p95")
        out = {k: [round(float(v), 4) for v in getattr(self, k)] for k in keys}
        out["volume_pct_nominal"] = [round(float(v), 4) for v in self.volume_pct_nominal]
        return out


def _cumulative_pct(
    dose: NDArray[np.float64], weight: NDArray[np.float64], axis_gy: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(n,) % of the total weight with dose ≥ each axis dose; dose, weight (M,)."""
    order = np.argsort(dose)
    d, w = dose[order], weight[order]
    tail = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # tail[i] = Σ w[i:]
    total = float(tail[0])
    if total <= 0:
        return np.zeros(axis_gy.size)
    return 100.0 * tail[np.searchsorted(d, axis_gy, side="left")] / total


def band_axis_gy(nominal_gy: NDArray[np.float64], top_gy: float, n: int = 201) -> NDArray:
    """(n,) dose axis 0 … min(``top_gy``, 2 × the highest nominal dose) (Gy)."""
    top = min(top_gy, 2.0 * float(np.max(nominal_gy, initial=0.0)))
    return np.linspace(0.0, top if top > 0 else 1.0, n)


def dvh_band(
    axis_gy: NDArray[np.float64], nominal_pct: NDArray[np.float64], curves_pct: NDArray
) -> DVHBand:
    """The band from the nominal (n,) and per-sample (N, n) cumulative DVHs on ``axis_gy``."""
    if curves_pct.size == 0:
        curves_pct = nominal_pct[np.newaxis]
    p5, p50, p95 = np.percentile(curves_pct, [5, 50, 95], axis=0)
    return DVHBand(axis_gy, p5, p50, p95, nominal_pct)


@dataclass
class RobustnessResult:
    """Per-sample metrics (arrays of length N) and their percentiles."""

    d90_gy: NDArray[np.float64]
    v100_percent: NDArray[np.float64]
    cord_d0_1cc_gy: NDArray[np.float64]
    nominal: dict[str, float]
    tip_error_mm: NDArray[np.float64]  # all needles, all samples
    model: NeedleErrorModel
    target: str
    cord: str | None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    dvh_bands: dict[str, DVHBand] = field(default_factory=dict)  # structure name → band

    @staticmethod
    def _pct(a: NDArray[np.float64]) -> dict[str, float | None]:
        if a.size == 0 or not np.all(np.isfinite(a)):
            return {"p5": None, "median": None, "p95": None}
        p5, med, p95 = np.percentile(a, [5, 50, 95])
        return {"p5": float(p5), "median": float(med), "p95": float(p95)}

    def percentiles(self) -> dict[str, dict[str, float | None]]:
        out = {"d90_gy": self._pct(self.d90_gy), "v100_percent": self._pct(self.v100_percent)}
        if self.cord is not None:
            out["cord_d0_1cc_gy"] = self._pct(self.cord_d0_1cc_gy)
        return out

    def to_dict(self) -> dict[str, object]:
        tip = self.tip_error_mm
        return {
            "samples": int(self.d90_gy.size),
            "target": self.target,
            "cord": self.cord,
            "nominal": self.nominal,
            "percentiles": self.percentiles(),
            "model": self.model.to_dict(),
            "tip_error_mm": {
                "mean": float(tip.mean()) if tip.size else None,
                "sd": float(tip.std()) if tip.size else None,
            },
            "dvh_bands": {name: b.to_dict() for name, b in self.dvh_bands.items()},
            "seconds": self.seconds,
            "method": "exact TG-43 at CT voxel centres of the target and cord",
            "notes": list(self.notes),
        }


def cord_structure(plan: Plan) -> Structure | None:
    """The plan's cord: the first organ at risk named like "cord" (else any such name)."""
    oars = [s for s in plan.structures if CORD_RE.search(s.name) and s.voxel_count > 0]
    return next((s for s in oars if s.role == "oar"), oars[0] if oars else None)


def _linear_indices(s: Structure) -> NDArray[np.int64]:
    """Sorted linear CT-grid indices (M,) of a structure's voxels."""
    kji = np.argwhere(s.crop) + [b.start for b in s.box]
    return np.sort(np.ravel_multi_index(tuple(kji.T), s.geometry.shape_zyx))


def _perp_unit(d: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    return math.cos(phi) * u + math.sin(phi) * v


def _rotation(axis: NDArray[np.float64], angle_rad: float) -> NDArray[np.float64]:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * (k @ k)


def _mag(rng: np.random.Generator, ms: tuple[float, float]) -> float:
    return abs(float(rng.normal(ms[0], ms[1])))


def _turn_rad(angle_deg: float, length_mm: float, model: NeedleErrorModel) -> float:
    """The needle's turn (rad) for a sampled angle error: its lever capped at max_lever_mm."""
    lever = min(length_mm, model.max_lever_mm) if model.max_lever_mm > 0 else length_mm
    return math.atan(math.tan(math.radians(angle_deg)) * lever / max(length_mm, 1e-9))


def tip_error_mm(
    model: NeedleErrorModel, length_mm: float, *, samples: int = 20000, rng_seed: int = 3
) -> tuple[float, float]:
    """Mean and SD (mm) of the sampled lateral tip error of a needle of ``length_mm`` (the
    entry shift plus the capped turn, module docstring)."""
    rng = np.random.default_rng(rng_seed)
    d = np.array([0.0, -1.0, 0.0])
    out = np.empty(samples)
    for i in range(samples):
        shift = _mag(rng, model.entry_mm) * _perp_unit(d, rng)
        turn_axis = np.cross(d, _perp_unit(d, rng))
        rot = _rotation(turn_axis, _turn_rad(_mag(rng, model.angle_deg), length_mm, model))
        err = shift + rot @ (length_mm * d) - length_mm * d
        out[i] = np.linalg.norm(err - (err @ d) * d)
    return float(out.mean()), float(out.std())


def perturb_points(
    points_mm: NDArray[np.float64],
    entry_mm: NDArray[np.float64],
    tip_mm: NDArray[np.float64],
    model: NeedleErrorModel,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Points (M, 3) on one needle moved by one draw of its error (entry shift, capped turn
    about the moved entry, depth; no jitter): the points move rigidly with the needle."""
    e0, t0 = np.asarray(entry_mm, float), np.asarray(tip_mm, float)
    d = t0 - e0
    length = float(np.linalg.norm(d))
    if length < 1e-6:
        return np.asarray(points_mm, float).copy()
    d = d / length
    shift = _mag(rng, model.entry_mm) * _perp_unit(d, rng)
    turn_axis = np.cross(d, _perp_unit(d, rng))
    rot = _rotation(turn_axis, _turn_rad(_mag(rng, model.angle_deg), length, model))
    depth = _mag(rng, model.depth_mm) * (1.0 if rng.random() < 0.5 else -1.0)
    return e0 + shift + (rot @ (np.asarray(points_mm, float) - e0).T).T + depth * (rot @ d)


def perturbed_seeds(
    plan: Plan, model: NeedleErrorModel, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[float]]:
    """One sample: seed positions (N, 3), axes (N, 3) in the plan's seed order, and the tip
    errors (mm) of the needles that carry seeds."""
    pos = np.array([s.position_mm for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    axes = np.array([s.axis for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    tips: list[float] = []
    for n in plan.needles:
        idx = [i for i, s in enumerate(plan.seeds) if s.needle_id == n.id]
        if not idx:
            continue
        e0, t0 = np.asarray(n.entry_mm, float), np.asarray(n.tip_mm, float)
        d = t0 - e0
        length = float(np.linalg.norm(d))
        if length < 1e-6:
            continue
        d = d / length
        shift = _mag(rng, model.entry_mm) * _perp_unit(d, rng)
        turn_axis = np.cross(d, _perp_unit(d, rng))
        rot = _rotation(turn_axis, _turn_rad(_mag(rng, model.angle_deg), length, model))
        depth = _mag(rng, model.depth_mm) * (1.0 if rng.random() < 0.5 else -1.0)
        d_new = rot @ d
        e1 = e0 + shift

        def move(p: NDArray[np.float64], e1=e1, rot=rot, e0=e0, depth=depth, d_new=d_new):
            return e1 + (rot @ (p - e0).T).T + depth * d_new

        pos[idx] = move(pos[idx])
        axes[idx] = (rot @ axes[idx].T).T
        err = move(t0[np.newaxis])[0] - t0
        tips.append(float(np.linalg.norm(err - (err @ d) * d)))  # lateral, ⟂ planned axis
    if model.seed_jitter_mm > 0:
        pos = pos + rng.normal(0.0, model.seed_jitter_mm, pos.shape)
    return pos, axes, tips


def _metrics(
    d_t: NDArray[np.float64], d_c: NDArray[np.float64], pd: float, k: int
) -> tuple[float, float, float]:
    d90 = float(np.percentile(d_t, 10.0)) if d_t.size else math.nan
    v100 = float(100.0 * np.mean(d_t >= pd)) if d_t.size else math.nan
    if d_c.size:
        kk = min(max(1, k), d_c.size)
        cord = float(np.partition(d_c, d_c.size - kk)[d_c.size - kk])
    else:
        cord = math.nan
    return d90, v100, cord


def robustness(
    plan: Plan,
    *,
    samples: int = 100,
    model: NeedleErrorModel | None = None,
    rng_seed: int = 1,
    formalism: str = "2d",
    max_target_points: int = 6000,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> RobustnessResult:
    """Evaluate ``plan`` under ``samples`` needle-error samples (module docstring)."""
    import time

    t0 = time.perf_counter()
    if not 1 <= samples <= 100_000:
        raise InputError(f"--samples must be 1-100000, got {samples}")
    if plan.prescription is None:
        raise InputError("robustness needs a prescription (target and dose)")
    if not plan.seeds:
        raise InputError("the plan has no seeds to evaluate")
    if plan.source is None:
        raise InputError("the plan has no seed source (model and strength)")
    cfg = model or NeedleErrorModel()
    target = plan.structure(plan.prescription.structure_id)
    if target.voxel_count == 0:
        raise InputError(f"the target {target.name!r} is empty")
    pd = float(plan.prescription.dose_gy)
    seeds0, _ = plan_seed_set(plan)
    strengths = np.asarray(seeds0.strengths_u)
    geom = plan.geometry
    # Targets: the union of their voxels (linear CT indices), subsampled uniformly.
    targets = [s for s in plan.structures if s.role == "target" and s.voxel_count > 0]
    if all(s.id != target.id for s in targets):
        targets.insert(0, target)
    lin = {s.name: _linear_indices(s) for s in targets}
    union = np.unique(np.concatenate(list(lin.values())))
    if len(union) > max_target_points:
        pick = np.random.default_rng(7).choice(len(union), max_target_points, replace=False)
        union = union[np.sort(pick)]
    tp = geom.zyx_to_world(np.stack(np.unravel_index(union, geom.shape_zyx), 1).astype(float))
    member = {name: np.isin(union, idx) for name, idx in lin.items()}
    rx_pts = member[target.name]
    cord = cord_structure(plan)
    cp = np.zeros((0, 3))
    cw = np.zeros(0)
    n_near = 0
    k = 1
    if cord is not None:
        cp = structure_points_mm(cord)
        lo = seeds0.positions_mm.min(axis=0) - 40.0
        hi = seeds0.positions_mm.max(axis=0) + 40.0
        near = np.all((cp >= lo) & (cp <= hi), axis=1)
        far = cp[~near]
        far_w = 1.0
        if len(far) > MAX_FAR_CORD_POINTS:
            pick = np.random.default_rng(8).choice(len(far), MAX_FAR_CORD_POINTS, replace=False)
            far_w = len(far) / MAX_FAR_CORD_POINTS
            far = far[np.sort(pick)]
        n_near = int(near.sum())
        cp = np.concatenate([cp[near], far])
        cw = np.concatenate([np.ones(n_near), np.full(len(far), far_w)])
        k = math.ceil(100.0 / cord.geometry.voxel_volume_mm3 - 1e-9)
    pts = np.ascontiguousarray(np.concatenate([tp, cp]))
    nt = len(tp)
    eng = make_engine(plan.source.model_id, formalism, "numba")

    def dose(pos: NDArray, ax: NDArray) -> NDArray[np.float64]:
        s = SeedSet.create(pos, ax, strengths)
        return rate_to_dose_gy(eng.dose_rate_at_points(s, pts, cancel=cancel).dose_rate_cgy_h)

    def metrics(d: NDArray[np.float64]) -> tuple[float, float, float]:
        return _metrics(d[:nt][rx_pts], d[nt : nt + n_near], pd, k)

    d_nom = dose(seeds0.positions_mm, seeds0.axes)
    nd90, nv100, ncord = metrics(d_nom)
    # DVH bands: per structure its points (slice of the dose), weights and dose axis.
    band_of: dict[str, tuple[NDArray, NDArray, NDArray]] = {}
    for name, m in member.items():
        sel = np.flatnonzero(m)
        band_of[name] = (sel, np.ones(len(sel)), band_axis_gy(d_nom[sel], 3.0 * pd))
    if cord is not None:
        sel = np.arange(nt, len(pts))
        band_of[cord.name] = (sel, cw, band_axis_gy(d_nom[sel], 3.0 * pd))
    curves = {name: np.zeros((samples, ax.size)) for name, (_, _, ax) in band_of.items()}
    rng = np.random.default_rng(rng_seed)
    out = np.zeros((samples, 3))
    tips: list[float] = []
    for i in range(samples):
        check_cancelled(cancel, "robustness cancelled")
        report(progress, i / samples, f"sample {i + 1} of {samples}")
        pos, ax, t = perturbed_seeds(plan, cfg, rng)
        tips += t
        d = dose(pos, ax)
        out[i] = metrics(d)
        for name, (sel, w, axis) in band_of.items():
            curves[name][i] = _cumulative_pct(d[sel], w, axis)
    report(progress, 1.0, "robustness done")
    bands = {
        name: dvh_band(axis, _cumulative_pct(d_nom[sel], w, axis), curves[name])
        for name, (sel, w, axis) in band_of.items()
    }
    nominal = {"d90_gy": nd90, "v100_percent": nv100}
    if cord is not None:
        nominal["cord_d0_1cc_gy"] = ncord
    return RobustnessResult(
        out[:, 0],
        out[:, 1],
        out[:, 2] if cord is not None else np.zeros(0),
        nominal,
        np.asarray(tips),
        cfg,
        target.name,
        None if cord is None else cord.name,
        time.perf_counter() - t0,
        dvh_bands=bands,
    )
