"""Plan-quality metrics for permanent seed implants: target coverage, conformity, organs at risk,
biological dose (Dale BED / EQD2) and goals with pass / warn / fail.

Definitions (../shared/reference/clinical.md §2.4):

* V_T: target volume; V_T,ref: target volume receiving ≥ PD; V_T,1.5ref: target volume receiving
  ≥ 1.5·PD; V_ref: volume of the **whole dose grid** receiving ≥ PD (same sub-voxel sampling as
  the DVHs, :func:`dose.dvh_calc.volume_at_or_above_cm3`).
* CI = (V_T,ref / V_T)·(V_T,ref / V_ref) (Paddick / van't Riet form; ideal 1).
* EI = (V_ref − V_T,ref) / V_T (ideal 0).
* HI = (V_T,ref − V_T,1.5ref) / V_T,ref (the Wu et al. DHI, = 1 − DNR; higher is more homogeneous).
* D90, D100 (= Dmin), V100, V150, V200 (% of target), Dmean.
* OAR: Dmax both as D0.03 cm³ and as the voxel maximum (largest dose-grid value in any voxel the
  structure touches), D0.1 cm³, D1 cm³, D2 cm³, Dmean, and the minimum distance from any seed
  centre to the structure (voxels with occupancy ≥ 0.5, each taken as its full box; 0 inside).
* Dale BED for a permanent implant (complete decay, Dale 1985):
  BED = D·[1 + R₀ / ((μ + λ)·(α/β))], R₀ the initial dose rate (Gy/h; R₀ = λ·D when only the
  total dose D is known), λ = ln 2 / T½ (source), μ = ln 2 / T_rep (repair half-time);
  EQD2 = BED / (1 + 2/(α/β)). Defaults: tumour α/β 10 Gy, cord α/β 2 Gy, T_rep 1.5 h.

Goals: :class:`Goal` with a ``limit`` and an optional ``warn_limit``. For ``>=`` goals (coverage)
value ≥ limit passes, warn_limit ≤ value < limit warns, below warn_limit fails. For ``<=`` goals
(OAR limits) value ≤ warn_limit passes, warn_limit < value ≤ limit warns (approaching the limit),
above limit fails. Defaults: D90 ≥ PD (warn ≥ 0.9 PD), V100 ≥ 95 % (warn ≥ 90 %), cord
D0.1 cm³ ≤ 45 Gy (warn above 0.9 × limit) — the cord limit is a configurable [GK] default
(clinical.md §2.2: "many centres constrain cord Dmax or D0.1cc to about 40–50 Gy").

Public API
----------
``bed_permanent_implant_gy``, ``eqd2_gy``, ``Biology`` (``TUMOUR``, ``CORD``),
``target_metrics``, ``oar_metrics``, ``min_seed_distance_mm``, ``Goal``, ``GoalResult``,
``default_goals``, ``evaluate_goals``, ``evaluate_plan`` (DVHs + all metrics + goals in one call)
and ``PlanEvaluation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.dvh import DVH, default_bin_width_gy
from dose.dvh_calc import compute_dvh, volume_at_or_above_cm3
from dose.geometry import GridGeometry
from dose.units import I125_HALF_LIFE_H

__all__ = [
    "CORD",
    "TUMOUR",
    "Biology",
    "Goal",
    "GoalResult",
    "OARMetrics",
    "PlanEvaluation",
    "TargetMetrics",
    "bed_permanent_implant_gy",
    "default_goals",
    "eqd2_gy",
    "evaluate_goals",
    "evaluate_plan",
    "min_seed_distance_mm",
    "oar_metrics",
    "target_metrics",
]

DEFAULT_CORD_D0_1CC_LIMIT_GY = 45.0


# ====================================================================== biology
@dataclass(frozen=True)
class Biology:
    """Linear-quadratic parameters: α/β (Gy) and the repair half-time (h)."""

    alpha_beta_gy: float
    repair_half_time_h: float = 1.5


TUMOUR = Biology(alpha_beta_gy=10.0, repair_half_time_h=1.5)
CORD = Biology(alpha_beta_gy=2.0, repair_half_time_h=1.5)


def bed_permanent_implant_gy(
    total_dose_gy: float,
    *,
    alpha_beta_gy: float = 10.0,
    repair_half_time_h: float = 1.5,
    half_life_h: float = I125_HALF_LIFE_H,
    initial_dose_rate_gy_per_h: float | None = None,
) -> float:
    """Dale BED (Gy) of a permanent implant: D·[1 + R₀/((μ + λ)(α/β))].

    ``initial_dose_rate_gy_per_h`` defaults to λ·D (complete decay, D = R₀/λ).
    """
    if alpha_beta_gy <= 0 or repair_half_time_h <= 0 or half_life_h <= 0:
        raise ValueError("α/β, repair half-time and half-life must be positive")
    lam = math.log(2.0) / half_life_h
    mu = math.log(2.0) / repair_half_time_h
    r0 = lam * total_dose_gy if initial_dose_rate_gy_per_h is None else initial_dose_rate_gy_per_h
    return total_dose_gy * (1.0 + r0 / ((mu + lam) * alpha_beta_gy))


def eqd2_gy(bed_gy: float, *, alpha_beta_gy: float) -> float:
    """Equivalent dose in 2 Gy fractions (Gy): BED / (1 + 2/(α/β))."""
    return bed_gy / (1.0 + 2.0 / alpha_beta_gy)


def _bed(dose_gy: float, bio: Biology) -> tuple[float, float]:
    bed = bed_permanent_implant_gy(
        dose_gy, alpha_beta_gy=bio.alpha_beta_gy, repair_half_time_h=bio.repair_half_time_h
    )
    return bed, eqd2_gy(bed, alpha_beta_gy=bio.alpha_beta_gy)


# ====================================================================== target / OAR
@dataclass(frozen=True)
class TargetMetrics:
    """Coverage and conformity of a target (doses Gy, volumes cm³, V-values % of target)."""

    name: str
    prescription_gy: float
    volume_cm3: float
    d90_gy: float
    d100_gy: float
    v100_percent: float
    v150_percent: float
    v200_percent: float
    dmean_gy: float
    v_t_ref_cm3: float
    v_t_1_5ref_cm3: float
    v_ref_cm3: float
    ci: float
    ei: float
    hi: float
    alpha_beta_gy: float
    bed_d90_gy: float
    eqd2_d90_gy: float

    def to_dict(self) -> dict[str, object]:
        return _clean(asdict(self))


@dataclass(frozen=True)
class OARMetrics:
    """Organ-at-risk doses (Gy), volume (cm³) and seed distance (mm)."""

    name: str
    volume_cm3: float
    dmax_0_03cc_gy: float
    dmax_voxel_gy: float
    d0_1cc_gy: float
    d1cc_gy: float
    d2cc_gy: float
    dmean_gy: float
    min_seed_distance_mm: float
    alpha_beta_gy: float
    bed_d0_1cc_gy: float
    eqd2_d0_1cc_gy: float
    bed_dmax_0_03cc_gy: float
    eqd2_dmax_0_03cc_gy: float

    def to_dict(self) -> dict[str, object]:
        return _clean(asdict(self))


def _clean(d: dict[str, object]) -> dict[str, object]:
    """NaN/inf → None so that the dict is valid JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def target_metrics(
    dvh: DVH,
    v_ref_cm3: float,
    *,
    prescription_gy: float,
    biology: Biology = TUMOUR,
) -> TargetMetrics:
    """Target metrics from its DVH and V_ref (whole-grid volume ≥ PD, cm³)."""
    if not prescription_gy > 0:
        raise ValueError("prescription must be positive")
    pd = float(prescription_gy)
    vt = dvh.volume_cm3
    vt_ref = dvh.v_gy(pd)
    vt_15 = dvh.v_gy(1.5 * pd)
    d90 = dvh.d_percent(90.0)
    ci = (vt_ref / vt) * (vt_ref / v_ref_cm3) if vt > 0 and v_ref_cm3 > 0 else 0.0
    ei = (v_ref_cm3 - vt_ref) / vt if vt > 0 else math.nan
    hi = (vt_ref - vt_15) / vt_ref if vt_ref > 0 else math.nan
    bed, eqd2 = _bed(d90, biology)
    return TargetMetrics(
        name=dvh.name,
        prescription_gy=pd,
        volume_cm3=vt,
        d90_gy=d90,
        d100_gy=dvh.dmin_gy,
        v100_percent=dvh.v_percent(pd),
        v150_percent=dvh.v_percent(1.5 * pd),
        v200_percent=dvh.v_percent(2.0 * pd),
        dmean_gy=dvh.dmean_gy,
        v_t_ref_cm3=vt_ref,
        v_t_1_5ref_cm3=vt_15,
        v_ref_cm3=float(v_ref_cm3),
        ci=ci,
        ei=ei,
        hi=hi,
        alpha_beta_gy=biology.alpha_beta_gy,
        bed_d90_gy=bed,
        eqd2_d90_gy=eqd2,
    )


def oar_metrics(
    dvh: DVH,
    *,
    dmax_voxel_gy: float,
    min_seed_distance_mm: float = math.nan,
    biology: Biology = CORD,
) -> OARMetrics:
    """Organ-at-risk metrics from its DVH, the voxel maximum and the seed distance."""
    d01 = dvh.d_cc(0.1)
    d003 = dvh.d_cc(0.03)
    bed01, eq01 = _bed(d01, biology)
    bed003, eq003 = _bed(d003, biology)
    return OARMetrics(
        name=dvh.name,
        volume_cm3=dvh.volume_cm3,
        dmax_0_03cc_gy=d003,
        dmax_voxel_gy=float(dmax_voxel_gy),
        d0_1cc_gy=d01,
        d1cc_gy=dvh.d_cc(1.0),
        d2cc_gy=dvh.d_cc(2.0),
        dmean_gy=dvh.dmean_gy,
        min_seed_distance_mm=float(min_seed_distance_mm),
        alpha_beta_gy=biology.alpha_beta_gy,
        bed_d0_1cc_gy=bed01,
        eqd2_d0_1cc_gy=eq01,
        bed_dmax_0_03cc_gy=bed003,
        eqd2_dmax_0_03cc_gy=eq003,
    )


# ====================================================================== seed distance
@numba.njit(cache=True)
def _seed_distance(
    occ: np.ndarray, threshold: float, seeds_kji: np.ndarray, spacing_kji: np.ndarray
) -> float:
    """Min distance (mm) from points (continuous k, j, i) to the boxes of voxels with
    occ ≥ threshold (0 for a point inside such a voxel; inf for an empty structure)."""
    nz, ny, nx = occ.shape
    n_seeds = seeds_kji.shape[0]
    for s in range(n_seeds):
        k = math.floor(seeds_kji[s, 0] + 0.5)
        j = math.floor(seeds_kji[s, 1] + 0.5)
        i = math.floor(seeds_kji[s, 2] + 0.5)
        if 0 <= k < nz and 0 <= j < ny and 0 <= i < nx and occ[k, j, i] >= threshold:
            return 0.0
    best = np.inf
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if occ[k, j, i] < threshold:
                    continue
                # Only boundary voxels (a 6-neighbour outside) can be nearest to an outside point.
                if (
                    0 < k < nz - 1
                    and 0 < j < ny - 1
                    and 0 < i < nx - 1
                    and occ[k - 1, j, i] >= threshold
                    and occ[k + 1, j, i] >= threshold
                    and occ[k, j - 1, i] >= threshold
                    and occ[k, j + 1, i] >= threshold
                    and occ[k, j, i - 1] >= threshold
                    and occ[k, j, i + 1] >= threshold
                ):
                    continue
                for s in range(n_seeds):
                    gk = (abs(seeds_kji[s, 0] - k) - 0.5) * spacing_kji[0]
                    gj = (abs(seeds_kji[s, 1] - j) - 0.5) * spacing_kji[1]
                    gi = (abs(seeds_kji[s, 2] - i) - 0.5) * spacing_kji[2]
                    d2 = max(gk, 0.0) ** 2 + max(gj, 0.0) ** 2 + max(gi, 0.0) ** 2
                    if d2 < best:
                        best = d2
    return math.sqrt(best)


def min_seed_distance_mm(
    seeds_mm: ArrayLike,
    occupancy: ArrayLike,
    geometry: GridGeometry,
    *,
    threshold: float = 0.5,
) -> float:
    """Minimum distance (mm) from any seed centre (N, 3) LPS mm to the structure.

    The structure is the union of the boxes of voxels with occupancy ≥ ``threshold``; a seed
    inside it gives 0. No seeds or an empty structure give ``inf``.
    """
    seeds = np.asarray(seeds_mm, dtype=np.float64).reshape(-1, 3)
    occ = np.ascontiguousarray(occupancy)
    if occ.dtype == np.bool_:
        occ = occ.view(np.uint8)
    elif occ.dtype not in (np.float32, np.float64, np.uint8):
        occ = occ.astype(np.float64)
    if tuple(occ.shape) != geometry.shape_zyx:
        raise ValueError("occupancy shape does not match its geometry")
    if seeds.shape[0] == 0:
        return math.inf
    kji = np.ascontiguousarray(geometry.world_to_zyx(seeds))
    spacing_kji = np.ascontiguousarray(geometry.spacing_mm[::-1])
    return float(_seed_distance(occ, float(threshold), kji, spacing_kji))


# ====================================================================== goals
Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Goal:
    """A plan goal on one metric of one structure.

    structure : structure name; metric : attribute of TargetMetrics/OARMetrics (e.g. "d90_gy");
    comparison : ">=" or "<="; limit, warn_limit : see the module docstring; unit : for display.
    """

    label: str
    structure: str
    metric: str
    comparison: Literal[">=", "<="]
    limit: float
    warn_limit: float | None = None
    unit: str = ""


@dataclass(frozen=True)
class GoalResult:
    goal: Goal
    value: float
    status: Status

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.goal.label,
            "structure": self.goal.structure,
            "metric": self.goal.metric,
            "comparison": self.goal.comparison,
            "limit": self.goal.limit,
            "warn_limit": self.goal.warn_limit,
            "unit": self.goal.unit,
            "value": self.value if math.isfinite(self.value) else None,
            "status": self.status,
        }


def default_goals(
    prescription_gy: float,
    *,
    target_name: str,
    cord_name: str | None = None,
    cord_d0_1cc_limit_gy: float = DEFAULT_CORD_D0_1CC_LIMIT_GY,
) -> list[Goal]:
    """D90 ≥ PD (warn ≥ 0.9 PD), V100 ≥ 95 % (warn ≥ 90 %), cord D0.1cm³ ≤ limit (warn > 0.9×)."""
    pd = float(prescription_gy)
    goals = [
        Goal(f"{target_name} D90 ≥ PD", target_name, "d90_gy", ">=", pd, 0.9 * pd, "Gy"),
        Goal(f"{target_name} V100 ≥ 95 %", target_name, "v100_percent", ">=", 95.0, 90.0, "%"),
    ]
    if cord_name is not None:
        lim = float(cord_d0_1cc_limit_gy)
        goals.append(
            Goal(
                f"{cord_name} D0.1cm³ ≤ {lim:g} Gy",
                cord_name,
                "d0_1cc_gy",
                "<=",
                lim,
                0.9 * lim,
                "Gy",
            )
        )
    return goals


def _status(goal: Goal, value: float) -> Status:
    if not math.isfinite(value):
        return "fail"
    if goal.comparison == ">=":
        if value >= goal.limit:
            return "pass"
        if goal.warn_limit is not None and value >= goal.warn_limit:
            return "warn"
        return "fail"
    if goal.comparison == "<=":
        if value > goal.limit:
            return "fail"
        if goal.warn_limit is not None and value > goal.warn_limit:
            return "warn"
        return "pass"
    raise ValueError(f"unknown comparison {goal.comparison!r}")


def evaluate_goals(
    goals: Sequence[Goal], metrics: Mapping[str, TargetMetrics | OARMetrics]
) -> list[GoalResult]:
    """Evaluate goals; a goal on a missing structure or metric fails (value NaN)."""
    out = []
    for g in goals:
        m = metrics.get(g.structure)
        value = float(getattr(m, g.metric, math.nan)) if m is not None else math.nan
        out.append(GoalResult(g, value, _status(g, value)))
    return out


# ====================================================================== whole plan
@dataclass
class PlanEvaluation:
    """DVHs, metrics and goal results of a plan (see :func:`evaluate_plan`)."""

    prescription_gy: float
    dvhs: dict[str, DVH]
    target: TargetMetrics
    oars: dict[str, OARMetrics] = field(default_factory=dict)
    goals: list[GoalResult] = field(default_factory=list)

    @property
    def status(self) -> Status:
        """Worst goal status ("pass" with no goals)."""
        order = {"pass": 0, "warn": 1, "fail": 2}
        return max((g.status for g in self.goals), key=order.__getitem__, default="pass")

    def to_dict(self) -> dict[str, object]:
        return {
            "prescription_gy": self.prescription_gy,
            "target": self.target.to_dict(),
            "oars": {k: v.to_dict() for k, v in self.oars.items()},
            "goals": [g.to_dict() for g in self.goals],
            "status": self.status,
        }


def evaluate_plan(
    dose_gy: NDArray[np.floating],
    geometry: GridGeometry,
    *,
    prescription_gy: float,
    target: tuple[str, ArrayLike],
    oars: Mapping[str, ArrayLike] | None = None,
    seeds_mm: ArrayLike | None = None,
    goals: Sequence[Goal] | None = None,
    cord_name: str | None = None,
    cord_d0_1cc_limit_gy: float = DEFAULT_CORD_D0_1CC_LIMIT_GY,
    target_biology: Biology = TUMOUR,
    oar_biology: Mapping[str, Biology] | None = None,
    samples_per_voxel: int = 4,
    bin_width_gy: float | None = None,
    structure_geometry: GridGeometry | None = None,
) -> PlanEvaluation:
    """DVHs and all metrics of a plan: dose (Gy) on ``geometry``, structures on
    ``structure_geometry`` (default: the same grid; e.g. the CT grid, or a finer one for a thin
    cord — see :func:`dose.dvh_calc.compute_dvh`). V_ref is taken over the whole dose grid.

    target : (name, occupancy (z, y, x) 0..1 or bool); oars : name → occupancy.
    goals : default :func:`default_goals` (with ``cord_name`` if given).
    oar_biology : per-OAR α/β (default :data:`CORD` for every OAR).
    """
    oars = dict(oars or {})
    pd = float(prescription_gy)
    bw = default_bin_width_gy(pd) if bin_width_gy is None else bin_width_gy
    dose = np.ascontiguousarray(dose_gy)
    seeds = None if seeds_mm is None else np.asarray(seeds_mm, dtype=np.float64).reshape(-1, 3)
    t_name, t_occ = target
    sgeom = geometry if structure_geometry is None else structure_geometry
    dgeom = None if structure_geometry is None else geometry
    dvhs: dict[str, DVH] = {}
    dvhs[t_name] = compute_dvh(
        dose,
        t_occ,
        sgeom,
        dose_geometry=dgeom,
        samples_per_voxel=samples_per_voxel,
        bin_width_gy=bw,
        name=t_name,
        prescription_gy=pd,
    )
    v_ref = volume_at_or_above_cm3(dose, geometry, pd, samples_per_voxel=samples_per_voxel)
    tm = target_metrics(dvhs[t_name], v_ref, prescription_gy=pd, biology=target_biology)
    oar_out: dict[str, OARMetrics] = {}
    for name, occ in oars.items():
        dvh = compute_dvh(
            dose,
            occ,
            sgeom,
            dose_geometry=dgeom,
            samples_per_voxel=samples_per_voxel,
            bin_width_gy=bw,
            name=name,
            prescription_gy=pd,
        )
        dvhs[name] = dvh
        dist = min_seed_distance_mm(seeds, occ, sgeom) if seeds is not None else math.nan
        bio = (oar_biology or {}).get(name, CORD)
        oar_out[name] = oar_metrics(
            dvh, dmax_voxel_gy=dvh.voxel_dmax_gy, min_seed_distance_mm=dist, biology=bio
        )
    all_metrics: dict[str, TargetMetrics | OARMetrics] = {t_name: tm, **oar_out}
    if goals is None:
        goals = default_goals(
            pd,
            target_name=t_name,
            cord_name=cord_name if cord_name in oars else None,
            cord_d0_1cc_limit_gy=cord_d0_1cc_limit_gy,
        )
    return PlanEvaluation(
        prescription_gy=pd,
        dvhs=dvhs,
        target=tm,
        oars=oar_out,
        goals=evaluate_goals(goals, all_metrics),
    )
