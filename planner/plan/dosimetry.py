"""The plan's dose: an exact dose grid, the DVH of every structure, all metrics, each goal.

:func:`compute_plan_dosimetry` is the one computation every consumer of "the plan's dose" uses
(the GUI's background refresh, ``seedplan dose/dvh PLAN``, the PDF and DICOM exports)::

    d = compute_plan_dosimetry(plan, ct, progress=p, cancel=c)
    d.dose_gy        (z, y, x) float64 total dose D∞ (Gy) on d.geometry
    d.geometry       GridGeometry: axis-aligned LPS, ≤ 1 mm voxels (default 1 mm)
    d.dvhs           {structure name: DVH} for every non-empty structure (one volume rule)
    d.metrics        {structure name: TargetMetrics | OARMetrics} (targets and OARs)
    d.goal_results   [PlanGoalResult] one per plan goal, in the plan's order
    d.formalism      "2d" | "1d"; d.model_id; d.model_sha256 (tables actually used)
    d.warnings       [str] things the user must see (grid edge, tables changed, …)

Dose: TG-43U1, EXACT mode of the numba engine (every seed–voxel pair), seed strength S_K from
the seed (``Seed.strength_u``) or the plan's source, decayed from the calibration to the implant
date (:attr:`planner.plan.model.SourceSpec.decay_factor`); seed axes are the seeds' own (the
needle direction when loaded along a needle).

Grid: axis-aligned, ``spacing_mm`` (default 1 mm, clinical.md §2.4: ≤ 1 mm where I-125
gradients are steep), covering the box of every target and organ at risk plus ``margin_mm``
(default 15 mm) and every seed plus ``margin_mm``, clipped to the CT's voxel boxes. V_ref
(for CI and EI) is taken over this whole grid; when the prescription isodose touches the
grid's edge a warning says V_ref (hence CI, EI) is underestimated.

DVHs: :func:`planner.plan.dvh.structure_dvh` (each CT voxel of a structure, weight 1, 4
jittered sub-samples, trilinear dose), so every DVH's volume is the structure's volume.

Metrics (clinical.md §2.4, :mod:`dose.metrics`): per target D90, D100, V100, V150, V200, Dmean,
CI, EI, HI and BED/EQD2 of D90 (α/β 10 Gy); per organ at risk Dmax (voxel maximum and
D0.03 cm³), D0.1 cm³, D1 cm³, D2 cm³, Dmean, minimum seed-centre distance, and BED/EQD2 of
D0.1 cm³ and D0.03 cm³ (α/β 2 Gy). BED is Dale's permanent-implant formula.

Goals: each :class:`planner.plan.model.Goal` (``metric`` as accepted by :func:`goal_value`) is
evaluated against its structure's DVH/metrics:

* ``>=`` goals: value ≥ limit → **pass**; (1 − WARN_FRACTION)·limit ≤ value < limit → **warn**
  (short of the goal by less than 5 % of it); lower → **fail**.
* ``<=`` goals: value ≤ (1 − WARN_FRACTION)·limit → **pass**; within the last 5 % below the
  limit, up to and including the limit → **warn** (approaching it); above the limit → **fail**.
* A goal whose value cannot be computed (unknown metric, empty structure, no prescription for
  a relative metric) **fails**, with the reason in ``PlanGoalResult.note``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dose.dvh import DVH, default_bin_width_gy
from dose.dvh_calc import volume_at_or_above_cm3
from dose.engine.values import SeedSet, rate_to_dose_gy
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.metrics import (
    CORD,
    TUMOUR,
    OARMetrics,
    TargetMetrics,
    min_seed_distance_mm,
    oar_metrics,
    target_metrics,
)
from dose.progress import CancelFn, ProgressFn, check_cancelled, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.dvh import structure_dvh
from planner.plan.model import Goal, Plan, Structure

__all__ = [
    "DEFAULT_GRID_SPACING_MM",
    "DEFAULT_MARGIN_MM",
    "MAX_GRID_VOXELS",
    "WARN_FRACTION",
    "GoalStatus",
    "PlanDosimetry",
    "PlanGoalResult",
    "compute_plan_dosimetry",
    "dose_grid_geometry",
    "evaluate_plan_goals",
    "goal_status",
    "goal_value",
    "plan_seed_set",
]

DEFAULT_GRID_SPACING_MM = 1.0
DEFAULT_MARGIN_MM = 15.0
#: A dose grid larger than this is refused (≈ 0.4 GB of float64).
MAX_GRID_VOXELS = 50_000_000
#: A goal within this fraction of its limit (on the passing side for ``<=`` limits, on the
#: failing side for ``>=`` goals) warns (module docstring).
WARN_FRACTION = 0.05

GoalStatus = Literal["pass", "warn", "fail"]
_D_PERCENT = re.compile(r"^d(100|[0-9]{1,2}(?:\.[0-9]+)?)%?$")
_D_CC = re.compile(r"^d([0-9]+(?:\.[0-9]+)?)(cc|cm3|cm³)$")
_V_PD = re.compile(r"^v([0-9]+(?:\.[0-9]+)?)%?$")
_V_GY = re.compile(r"^v([0-9]+(?:\.[0-9]+)?)gy$")


# ====================================================================== results
@dataclass(frozen=True)
class PlanGoalResult:
    """One plan goal evaluated: ``value`` (in ``goal.unit``; NaN when it cannot be computed),
    ``status`` (module docstring), ``structure`` (its name) and ``note`` (why it failed when
    there is no value)."""

    goal: Goal
    structure: str
    value: float
    status: GoalStatus
    note: str = ""

    @property
    def label(self) -> str:
        """E.g. ``"PTV D90 ≥ 110 Gy"``."""
        cmp = "≥" if self.goal.comparison == ">=" else "≤"
        unit = {"cm3": "cm³"}.get(self.goal.unit, self.goal.unit)
        return f"{self.structure} {self.goal.metric} {cmp} {self.goal.value:g} {unit}"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.goal.id,
            "label": self.label,
            "structure": self.structure,
            "structure_id": self.goal.structure_id,
            "metric": self.goal.metric,
            "comparison": self.goal.comparison,
            "limit": self.goal.value,
            "unit": self.goal.unit,
            "value": self.value if math.isfinite(self.value) else None,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class PlanDosimetry:
    """The plan's dose and everything derived from it (module docstring)."""

    dose_gy: NDArray[np.float64]
    geometry: GridGeometry
    dvhs: dict[str, DVH]
    metrics: dict[str, TargetMetrics | OARMetrics]
    goal_results: list[PlanGoalResult]
    formalism: str
    model_id: str
    model_sha256: str
    prescription_gy: float | None
    seeds: SeedSet
    seed_ids: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    mode: str = "exact"

    @property
    def status(self) -> GoalStatus:
        """The worst goal status ("pass" with no goals)."""
        order = {"pass": 0, "warn": 1, "fail": 2}
        return max((g.status for g in self.goal_results), key=order.__getitem__, default="pass")  # type: ignore[return-value]

    @property
    def label(self) -> str:
        """One line for outputs: engine, formalism, mode, model and grid."""
        sp = "/".join(f"{v:g}" for v in self.geometry.spacing_mm)
        return (
            f"TG-43U1 {self.formalism.upper()} formalism, {self.mode} mode, model "
            f"{self.model_id} (tables sha256 {self.model_sha256[:12]}), dose grid "
            f"{'×'.join(map(str, self.geometry.shape_xyz))} at {sp} mm"
        )

    def metrics_dict(self) -> dict[str, object]:
        """The ``"metrics"`` object of ``seedplan dvh PLAN --json``."""
        targets = {k: v.to_dict() for k, v in self.metrics.items() if isinstance(v, TargetMetrics)}
        oars = {k: v.to_dict() for k, v in self.metrics.items() if isinstance(v, OARMetrics)}
        return {
            "prescription_gy": self.prescription_gy,
            "formalism": self.formalism,
            "model": self.model_id,
            "model_sha256": self.model_sha256,
            "mode": self.mode,
            "dose_grid": self.geometry.to_dict(),
            "n_seeds": len(self.seeds),
            "total_strength_at_implant_U": self.seeds.total_strength_u,
            "targets": targets,
            "oars": oars,
            "goals": [g.to_dict() for g in self.goal_results],
            "status": self.status,
            "warnings": list(self.warnings),
        }


# ====================================================================== seeds and grid
def plan_seed_set(plan: Plan) -> tuple[SeedSet, tuple[str, ...]]:
    """The plan's seeds as a SeedSet at implant (S_K decayed from calibration), and their ids.

    InputError when a seed has no strength (neither its own nor the plan source's)."""
    src = plan.source
    decay = 1.0 if src is None else src.decay_factor
    default_u = None if src is None else src.strength_u
    strengths = []
    for s in plan.seeds:
        u = s.strength_u if s.strength_u is not None else default_u
        if u is None:
            raise InputError(
                f"seed {s.id} has no strength and the plan's source gives none; set the source "
                "strength (U or mCi)"
            )
        strengths.append(u * decay)
    if not plan.seeds:
        return SeedSet.create(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)), ()
    seeds = SeedSet.create(
        [s.position_mm for s in plan.seeds], [s.axis for s in plan.seeds], strengths
    )
    return seeds, tuple(s.id for s in plan.seeds)


def _structure_world_box(s: Structure) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """LPS bounding box (mm) of a structure's voxel boxes (the corners of its extent)."""
    g = s.geometry
    lo = np.array([b.start for b in s.box], dtype=np.float64) - 0.5
    hi = np.array([b.stop for b in s.box], dtype=np.float64) - 0.5
    corners = np.array(
        [[z, y, x] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])]
    )
    world = g.zyx_to_world(corners)
    return world.min(axis=0), world.max(axis=0)


def dose_grid_geometry(
    plan: Plan,
    seeds_mm: NDArray[np.float64] | None = None,
    *,
    spacing_mm: float = DEFAULT_GRID_SPACING_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> GridGeometry:
    """The plan's dose grid (module docstring): axis-aligned LPS, ``spacing_mm`` voxels,
    covering targets and OARs (+ ``margin_mm``) and seeds (+ ``margin_mm``), clipped to the CT.

    InputError when there is nothing to cover or the grid would exceed MAX_GRID_VOXELS."""
    if not (math.isfinite(spacing_mm) and 0.1 <= spacing_mm <= 1.0):
        raise InputError(f"dose grid spacing must be 0.1-1 mm, got {spacing_mm:g} mm")
    los, his = [], []
    for s in plan.structures:
        if s.role in ("target", "oar") and s.voxel_count > 0:
            lo, hi = _structure_world_box(s)
            los.append(lo - margin_mm)
            his.append(hi + margin_mm)
    if seeds_mm is not None and len(seeds_mm):
        p = np.asarray(seeds_mm, dtype=np.float64).reshape(-1, 3)
        los.append(p.min(axis=0) - margin_mm)
        his.append(p.max(axis=0) + margin_mm)
    if not los:
        raise InputError("the plan has no target, organ at risk or seed to compute a dose for")
    lo = np.min(los, axis=0)
    hi = np.max(his, axis=0)
    # The CT's voxel boxes (not only their centres): structure voxels on the outer slices
    # keep their full volume inside the dose grid.
    g = plan.geometry
    n_zyx = np.array(g.shape_zyx, dtype=np.float64)
    edge = g.zyx_to_world(
        np.array(
            [
                [z, y, x]
                for z in (-0.5, n_zyx[0] - 0.5)
                for y in (-0.5, n_zyx[1] - 0.5)
                for x in (-0.5, n_zyx[2] - 0.5)
            ]
        )
    )
    ct_lo, ct_hi = edge.min(axis=0), edge.max(axis=0)
    lo = np.maximum(lo, ct_lo)
    hi = np.minimum(hi, ct_hi)
    if np.any(hi <= lo):
        raise InputError("the plan's structures and seeds lie outside its CT")
    # Whole voxels, centred on the box: their boxes cover [lo, hi].
    n = np.maximum(np.ceil((hi - lo) / spacing_mm - 1e-9), 1.0)
    n_voxels = float(np.prod(n))
    if n_voxels > MAX_GRID_VOXELS:
        raise InputError(
            f"the plan's dose grid would have {n_voxels:.3g} voxels (at most "
            f"{MAX_GRID_VOXELS:.0e}); remove very large organs at risk or set their role to "
            "'other'"
        )
    centre = 0.5 * (lo + hi)
    origin = centre - 0.5 * (n - 1.0) * spacing_mm
    return GridGeometry.axis_aligned(
        (int(n[2]), int(n[1]), int(n[0])), origin, (spacing_mm, spacing_mm, spacing_mm)
    )


# ====================================================================== goals
def goal_value(
    goal: Goal, dvh: DVH | None, metrics: TargetMetrics | OARMetrics | None
) -> tuple[float, str]:
    """The value of ``goal`` (in ``goal.unit``) and, when NaN, why.

    Metrics (case-insensitive): ``D90`` / ``D90%`` (Gy to the hottest 90 %), ``D0.1cc`` /
    ``D0.1cm3`` (Gy to the hottest 0.1 cm³), ``Dmax`` (voxel maximum for an OAR, sampled
    maximum otherwise), ``Dmin``, ``Dmean`` (Gy), ``D100`` (= Dmin); ``V100`` (% of the structure
    receiving ≥ 100 % PD; unit "cm3": the volume in cm³), ``V20Gy`` (% receiving ≥ 20 Gy; unit
    "cm3": cm³); ``CI``, ``EI``, ``HI`` (targets, unit "%": ×100); ``BED`` (Gy: of D90 for a
    target, of D0.1 cm³ for an OAR); ``MinDist`` (OAR minimum seed distance, unit ignored).
    """
    if dvh is None:
        return math.nan, "the structure is empty or has no dose"
    key = goal.metric.replace(" ", "").lower()
    pd = dvh.prescription_gy
    try:
        if key == "dmax":
            if isinstance(metrics, OARMetrics):
                return metrics.dmax_voxel_gy, ""
            return dvh.dmax_gy, ""
        if key in ("dmin", "d100", "d100%"):
            return dvh.dmin_gy, ""
        if key == "dmean":
            return dvh.dmean_gy, ""
        if m := _D_CC.match(key):
            return dvh.d_cc(float(m.group(1))), ""
        if m := _D_PERCENT.match(key):
            return dvh.d_percent(float(m.group(1))), ""
        if m := _V_GY.match(key):
            d = float(m.group(1))
            return (dvh.v_gy(d) if goal.unit == "cm3" else dvh.v_percent(d)), ""
        if m := _V_PD.match(key):
            if pd is None:
                return math.nan, "relative metric without a prescription"
            x = float(m.group(1))
            return (dvh.v_cc_percent_pd(x) if goal.unit == "cm3" else dvh.v_percent_pd(x)), ""
        if key in ("ci", "ei", "hi"):
            if not isinstance(metrics, TargetMetrics):
                return math.nan, f"{goal.metric} is defined for targets only"
            v = float(getattr(metrics, key))
            return (100.0 * v if goal.unit == "%" else v), ""
        if key == "bed":
            if isinstance(metrics, TargetMetrics):
                return metrics.bed_d90_gy, ""
            if isinstance(metrics, OARMetrics):
                return metrics.bed_d0_1cc_gy, ""
            return math.nan, "BED needs a target or an organ at risk"
        if key in ("mindist", "min_seed_distance", "min_seed_distance_mm"):
            if isinstance(metrics, OARMetrics):
                return metrics.min_seed_distance_mm, ""
            return math.nan, "the seed distance is computed for organs at risk"
    except ValueError as exc:
        return math.nan, str(exc)
    return math.nan, f"unknown metric {goal.metric!r}"


def goal_status(goal: Goal, value: float) -> GoalStatus:
    """pass / warn / fail of ``value`` against ``goal`` (module docstring; NaN fails)."""
    if not math.isfinite(value):
        return "fail"
    limit = float(goal.value)
    margin = WARN_FRACTION * abs(limit)
    if goal.comparison == ">=":
        if value >= limit:
            return "pass"
        return "warn" if value >= limit - margin else "fail"
    if value > limit:
        return "fail"
    return "warn" if value > limit - margin else "pass"


def evaluate_plan_goals(
    plan: Plan,
    dvhs: dict[str, DVH],
    metrics: dict[str, TargetMetrics | OARMetrics],
    goals: Sequence[Goal] | None = None,
) -> list[PlanGoalResult]:
    """Each of ``goals`` (default: the plan's) evaluated; a missing structure fails."""
    out = []
    for g in plan.goals if goals is None else goals:
        try:
            name = plan.structure(g.structure_id).name
        except KeyError:
            out.append(PlanGoalResult(g, g.structure_id, math.nan, "fail", "structure missing"))
            continue
        value, note = goal_value(g, dvhs.get(name), metrics.get(name))
        out.append(PlanGoalResult(g, name, float(value), goal_status(g, float(value)), note))
    return out


# ====================================================================== the computation
def _crop_geometry(s: Structure) -> GridGeometry:
    """The geometry of a structure's box (its crop) on the CT grid."""
    g = s.geometry
    start = np.array([b.start for b in s.box], dtype=np.float64)
    origin = g.zyx_to_world(start[np.newaxis, :])[0]
    shape = tuple(b.stop - b.start for b in s.box)
    return GridGeometry(shape, origin, g.spacing_mm, g.direction)  # type: ignore[arg-type]


def compute_plan_dosimetry(
    plan: Plan,
    ct: CTVolume | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    spacing_mm: float = DEFAULT_GRID_SPACING_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
    formalism: str = "2d",
    engine_kind: Literal["numba", "reference"] = "numba",
) -> PlanDosimetry:
    """The plan's exact dose, DVHs, metrics and goal results (module docstring).

    ct : the plan's CT, when loaded: checked against the plan's reference (InputError for
    another patient, frame or grid). progress(fraction, message) / cancel() follow
    :mod:`dose.progress` (raises Cancelled; nothing is changed). InputError for a plan
    without a source or seed strength, or without anything to compute a dose for.
    """
    from dose.engine import make_engine
    from dose.sources import load_model

    warnings: list[str] = []
    if ct is not None:
        warnings += plan.check_ct(ct)
    src = plan.source
    if src is None:
        raise InputError("the plan has no seed source (model and strength)")
    model = load_model(src.model_id)
    if src.model_sha256 and src.model_sha256 != model.checksum:
        warnings.append(
            f"seed model {model.model_id}: its tables (sha256 {model.checksum[:12]}) are not the "
            f"ones this plan was made with ({src.model_sha256[:12]}); the dose uses the current "
            "tables"
        )
    seeds, seed_ids = plan_seed_set(plan)
    rx = plan.prescription
    pd = None if rx is None else float(rx.dose_gy)
    geometry = dose_grid_geometry(
        plan, seeds.positions_mm if len(seeds) else None, spacing_mm=spacing_mm, margin_mm=margin_mm
    )
    check_cancelled(cancel)
    report(progress, 0.0, "dose grid")
    engine = make_engine(model, formalism, engine_kind)
    if len(seeds):
        res = engine.dose_rate_on_grid(
            seeds, geometry, cancel=cancel, progress=sub_progress(progress, 0.0, 0.7)
        )
        dose = rate_to_dose_gy(res.dose_rate_cgy_h)
    else:
        dose = np.zeros(geometry.shape_zyx, dtype=np.float64)
        warnings.append("the plan has no seeds: the dose is zero")

    bw = default_bin_width_gy(pd)
    dvhs: dict[str, DVH] = {}
    metrics: dict[str, TargetMetrics | OARMetrics] = {}
    live = [s for s in plan.structures if s.voxel_count > 0]
    v_ref = math.nan
    if pd is not None:
        v_ref = volume_at_or_above_cm3(dose, geometry, pd)
        edge = max(
            float(dose[[0, -1]].max()),
            float(dose[:, [0, -1]].max()),
            float(dose[..., [0, -1]].max()),
        )
        if edge >= pd:
            warnings.append(
                f"the prescription isodose ({pd:g} Gy) reaches the dose grid's edge "
                f"({edge:.1f} Gy there): V_ref, CI and EI are underestimated"
            )
    for i, s in enumerate(live):
        check_cancelled(cancel)
        report(progress, 0.7 + 0.3 * i / max(len(live), 1), f"DVH {s.name}")
        dvh = structure_dvh(plan, s.id, dose, geometry, bin_width_gy=bw)
        dvhs[s.name] = dvh
        if dvh.outside_dose_grid_cm3 > 0.0005 and s.role in ("target", "oar"):
            warnings.append(
                f"{s.name}: {dvh.outside_dose_grid_cm3:.3f} cm³ lies outside the dose grid "
                "(counted at 0 Gy)"
            )
        if s.role == "target" and pd is not None:
            metrics[s.name] = target_metrics(dvh, v_ref, prescription_gy=pd, biology=TUMOUR)
        elif s.role == "oar":
            dist = (
                min_seed_distance_mm(seeds.positions_mm, s.crop, _crop_geometry(s))
                if len(seeds)
                else math.inf
            )
            metrics[s.name] = oar_metrics(
                dvh, dmax_voxel_gy=dvh.voxel_dmax_gy, min_seed_distance_mm=dist, biology=CORD
            )
    for s in plan.structures:
        if s.voxel_count == 0:
            warnings.append(f"structure {s.name!r} is empty: no DVH")
    goal_results = evaluate_plan_goals(plan, dvhs, metrics)
    report(progress, 1.0, "dosimetry done")
    return PlanDosimetry(
        dose_gy=dose,
        geometry=geometry,
        dvhs=dvhs,
        metrics=metrics,
        goal_results=goal_results,
        formalism=engine.formalism,
        model_id=model.model_id,
        model_sha256=model.checksum,
        prescription_gy=pd,
        seeds=seeds,
        seed_ids=seed_ids,
        warnings=warnings,
    )
