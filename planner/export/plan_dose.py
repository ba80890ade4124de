"""The plan's dose for the exports: one small function, :func:`export_dosimetry`.

It calls :func:`planner.plan.dosimetry.compute_plan_dosimetry` (the one computation of "the
plan's dose", shared with the GUI and the CLI). Until that module is in a checkout, a minimal
stand-in with the same fields is used: EXACT numba TG-43 dose on an axis-aligned 1 mm grid
covering every target, organ at risk and seed + 15 mm, the plan's DVHs
(:func:`planner.plan.dvh.structure_dvh`) and :mod:`dose.metrics` metrics. Exports read only
``dose_gy, geometry, dvhs, metrics, goal_results, formalism, model_id, model_sha256,
prescription_gy, seeds, seed_ids, warnings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dose.progress import CancelFn, ProgressFn, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.model import Plan

__all__ = ["export_dosimetry"]


def export_dosimetry(
    plan: Plan,
    ct: CTVolume | None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Any:
    """The plan's dosimetry (a ``PlanDosimetry``, or the stand-in with the same fields)."""
    try:
        from planner.plan.dosimetry import compute_plan_dosimetry
    except ImportError:
        return _stand_in(plan, progress=progress, cancel=cancel)
    return compute_plan_dosimetry(plan, ct, progress=progress, cancel=cancel)


@dataclass(frozen=True)
class _GoalResult:
    goal: Any
    structure: str
    value: float
    status: str
    note: str = ""

    @property
    def label(self) -> str:
        cmp = "≥" if self.goal.comparison == ">=" else "≤"
        unit = {"cm3": "cm³"}.get(self.goal.unit, self.goal.unit)
        return f"{self.structure} {self.goal.metric} {cmp} {self.goal.value:g} {unit}"


@dataclass
class _Dosimetry:
    dose_gy: np.ndarray
    geometry: Any
    dvhs: dict
    metrics: dict
    goal_results: list
    formalism: str
    model_id: str
    model_sha256: str
    prescription_gy: float | None
    seeds: Any
    seed_ids: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    mode: str = "exact"


def _stand_in(plan: Plan, *, progress: ProgressFn | None, cancel: CancelFn | None) -> _Dosimetry:
    from dose.dvh_calc import volume_at_or_above_cm3
    from dose.engine import SeedSet, make_engine, rate_to_dose_gy
    from dose.errors import InputError
    from dose.geometry import GridGeometry
    from dose.metrics import min_seed_distance_mm, oar_metrics, target_metrics
    from planner.plan.dvh import structure_dvh

    if plan.source is None:
        raise InputError("the plan has no source (seed model and strength)")
    src = plan.source
    strengths = []
    for s in plan.seeds:
        u = s.strength_u if s.strength_u is not None else src.strength_u
        if u is None:
            raise InputError(f"seed {s.id} has no strength and the plan's source gives none")
        strengths.append(u * src.decay_factor)
    seeds = SeedSet.create(
        np.array([s.position_mm for s in plan.seeds]).reshape(-1, 3),
        np.array([s.axis for s in plan.seeds]).reshape(-1, 3),
        np.array(strengths, dtype=float),
    )
    boxes = [s for s in plan.structures if s.role in ("target", "oar") and s.voxel_count]
    pts = [seeds.positions_mm]
    for s in boxes:
        lo = np.array([b.start for b in s.box], float) - 0.5
        hi = np.array([b.stop for b in s.box], float) - 0.5
        corners = np.array(
            [[z, y, x] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])]
        )
        pts.append(plan.geometry.zyx_to_world(corners))
    allp = np.concatenate(pts)
    lower, upper = allp.min(axis=0) - 15.0, allp.max(axis=0) + 15.0
    ct_lo, ct_hi = plan.geometry.bounds_world_mm()
    lower, upper = np.maximum(lower, ct_lo), np.minimum(upper, ct_hi)
    geometry = GridGeometry.covering_box(lower, upper, 1.0)
    engine = make_engine(src.model_id, "2d", "numba")
    res = engine.dose_rate_on_grid(
        seeds, geometry, cancel=cancel, progress=sub_progress(progress, 0.0, 0.8)
    )
    dose = rate_to_dose_gy(res.dose_rate_cgy_h)
    pd = None if plan.prescription is None else plan.prescription.dose_gy
    dvhs, metrics = {}, {}
    for s in plan.structures:
        if not s.voxel_count:
            continue
        dvh = structure_dvh(plan, s.id, dose, geometry)
        dvhs[s.name] = dvh
        if s.role == "target" and pd is not None:
            v_ref = volume_at_or_above_cm3(dose, geometry, pd)
            metrics[s.name] = target_metrics(dvh, v_ref, prescription_gy=pd)
        elif s.role == "oar":
            dist = min_seed_distance_mm(seeds.positions_mm, s.mask, plan.geometry)
            metrics[s.name] = oar_metrics(dvh, dmax_voxel_gy=dvh.dmax_gy, min_seed_distance_mm=dist)
    goals = []
    for g in plan.goals:
        name = plan.structure(g.structure_id).name
        value = math.nan
        if name in dvhs:
            try:
                value = float(dvhs[name].query(g.metric))
            except ValueError:
                value = math.nan
        ok = value >= g.value if g.comparison == ">=" else value <= g.value
        status = "pass" if ok else "fail"
        if ok and g.comparison == "<=" and value > 0.95 * g.value:
            status = "warn"
        if not ok and g.comparison == ">=" and value >= 0.95 * g.value:
            status = "warn"
        goals.append(_GoalResult(g, name, value, status if math.isfinite(value) else "fail"))
    report(progress, 1.0, "dosimetry")
    return _Dosimetry(
        dose,
        geometry,
        dvhs,
        metrics,
        goals,
        res.formalism,
        res.model_id,
        res.table_checksum,
        pd,
        seeds,
        tuple(s.id for s in plan.seeds),
    )
