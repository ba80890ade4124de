"""Post-implant verification: detect → register → match → post-plan dose → planned vs implanted.

:func:`verify_plan` is the one pipeline the CLI (``seedplan verify``), the GUI's post-op mode
and the cohort re-analysis run:

1. seeds are detected on the post-op CT (:mod:`planner.postop.detect`), with the plan's seed
   count as the expected number;
2. the post-op CT is registered rigidly to the planning CT on bone around the target
   (:mod:`planner.postop.register`), and the detected seeds (centres and axes) are mapped into
   the planning frame;
3. planned and implanted seeds are matched (:mod:`planner.postop.match`): per-seed displacement,
   per-needle deviation, unmatched seeds;
4. the post-plan dose is computed from the implanted seeds on the plan's structures, carried
   over through the registration (they live on the planning CT, where the seeds now are), by
   the same :func:`planner.plan.dosimetry.compute_plan_dosimetry` as the plan itself — with the
   1D point-source formalism by default, the convention when seed orientation is uncertain, or
   2D with the detected axes (``formalism="2d"``), and labelled so;
5. every metric of both is compared (planned, post-op, difference).

Nothing here changes the plan: the implanted plan is a new value (``implanted_plan``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan, Seed
from planner.postop.detect import DetectionResult, detect_seeds
from planner.postop.match import MatchResult, NeedleDeviation, match_seeds, needle_deviations
from planner.postop.register import RegistrationResult, register_rigid

__all__ = ["ComparisonRow", "Verification", "compare_dosimetry", "verify_plan"]


@dataclass(frozen=True)
class ComparisonRow:
    """One metric, planned vs implanted: ``difference = postop − planned`` (same unit)."""

    structure: str
    metric: str
    unit: str
    planned: float | None
    postop: float | None

    @property
    def difference(self) -> float | None:
        if self.planned is None or self.postop is None:
            return None
        return self.postop - self.planned

    def to_dict(self) -> dict[str, object]:
        return {
            "structure": self.structure,
            "metric": self.metric,
            "unit": self.unit,
            "planned": self.planned,
            "postop": self.postop,
            "difference": self.difference,
        }


@dataclass
class Verification:
    """Everything a verification found (module docstring)."""

    detection: DetectionResult
    registration: RegistrationResult
    match: MatchResult
    needles: list[NeedleDeviation]
    implanted_plan: Plan
    implanted_mm: NDArray[np.float64]  # (N, 3) detected seeds in the planning frame
    planned: PlanDosimetry
    postop: PlanDosimetry
    comparison: list[ComparisonRow]
    formalism: str
    warnings: list[str] = field(default_factory=list)

    def row(self, structure: str, metric: str) -> ComparisonRow:
        for r in self.comparison:
            if r.structure == structure and r.metric == metric:
                return r
        raise KeyError(f"no {metric} for {structure} in the comparison")

    def summary(self) -> str:
        n_plan = len(self.match.pairs) + len(self.match.unmatched_planned)
        return (
            f"{len(self.implanted_mm)} seeds found ({n_plan} planned); "
            f"{self.match.summary()}; post-op dose {self.formalism.upper()} formalism"
        )


_UNITS = {"_gy": "Gy", "_percent": "%", "_cm3": "cm³", "_mm": "mm"}


def _unit(key: str) -> str:
    for suffix, unit in _UNITS.items():
        if key.endswith(suffix):
            return unit
    return ""


def compare_dosimetry(planned: PlanDosimetry, postop: PlanDosimetry) -> list[ComparisonRow]:
    """Every numeric metric of every target and organ at risk, planned vs post-op."""
    rows: list[ComparisonRow] = []
    for name, m in planned.metrics.items():
        other = postop.metrics.get(name)
        if other is None:
            continue
        a, b = m.to_dict(), other.to_dict()
        for key, value in a.items():
            if key in ("name",) or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if key.startswith("alpha_beta") or key == "volume_cm3":
                continue
            v2 = b.get(key)
            rows.append(
                ComparisonRow(
                    name,
                    key,
                    _unit(key),
                    float(value) if value is not None and math.isfinite(value) else None,
                    float(v2) if isinstance(v2, (int, float)) and math.isfinite(v2) else None,
                )
            )
    return rows


def _target_centre_mm(plan: Plan) -> NDArray[np.float64] | None:
    rx = plan.prescription
    target = plan.structure(rx.structure_id) if rx is not None else None
    if target is None:
        target = next((s for s in plan.structures if s.role == "target"), None)
    if target is None:
        return None
    kji = np.argwhere(target.mask)
    if kji.size == 0:
        return None
    return plan.geometry.zyx_to_world(kji.mean(axis=0))


def verify_plan(
    plan: Plan,
    planning_ct: CTVolume,
    postop_ct: CTVolume,
    *,
    formalism: str = "1d",
    gate_mm: float = 10.0,
    expected: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Verification:
    """Verify ``plan`` against its post-op CT (module docstring).

    ``planning_ct`` must be the plan's CT (checked). ``expected``: seeds implanted (default:
    the plan's seed count). ``formalism``: "1d" (default) or "2d" with detected axes.
    """
    if formalism not in ("1d", "2d"):
        raise InputError(f"unknown formalism {formalism!r}; use '1d' or '2d'")
    warnings = list(plan.check_ct(planning_ct))
    if not plan.seeds:
        raise InputError("the plan has no seeds to verify")
    n_expected = len(plan.seeds) if expected is None else int(expected)
    report(progress, 0.0, "detecting seeds")
    detection = detect_seeds(
        postop_ct, expected=n_expected, progress=sub_progress(progress, 0.0, 0.3), cancel=cancel
    )
    warnings += detection.messages
    if not detection.seeds:
        raise InputError("no seeds were found on the post-op CT")
    planned_mm = np.array([s.position_mm for s in plan.seeds], dtype=np.float64)
    registration = register_rigid(
        planning_ct,
        postop_ct,
        around_mm=_target_centre_mm(plan),
        progress=sub_progress(progress, 0.3, 0.55),
        cancel=cancel,
    )
    implanted = registration.transform.apply(detection.positions_mm)
    axes = registration.transform.apply_vectors(detection.axes)
    match = match_seeds(planned_mm, implanted, gate_mm=gate_mm)
    needles = needle_deviations(
        match,
        planned_mm,
        implanted,
        [s.needle_id for s in plan.seeds],
        {n.id: (n.entry_mm, n.tip_mm) for n in plan.needles},
    )
    if match.unmatched_implanted:
        warnings.append(
            f"{len(match.unmatched_implanted)} detected seed(s) are more than {gate_mm:g} mm "
            "from every planned seed (migrated, or not seeds)"
        )
    implanted_plan = plan.evolve(
        seeds=tuple(
            Seed(id=f"sd-postop-{i + 1:03d}", position_mm=tuple(p), axis=tuple(a))
            for i, (p, a) in enumerate(zip(implanted, axes, strict=True))
        ),
        needles=(),
        status="draft",
        name=(plan.name + " (post-op)").strip(),
    )
    planned_dose = compute_plan_dosimetry(
        plan, planning_ct, progress=sub_progress(progress, 0.55, 0.75), cancel=cancel
    )
    postop_dose = compute_plan_dosimetry(
        implanted_plan,
        planning_ct,
        formalism=formalism,
        progress=sub_progress(progress, 0.75, 1.0),
        cancel=cancel,
    )
    report(progress, 1.0, "verified")
    return Verification(
        detection=detection,
        registration=registration,
        match=match,
        needles=needles,
        implanted_plan=implanted_plan,
        implanted_mm=implanted,
        planned=planned_dose,
        postop=postop_dose,
        comparison=compare_dosimetry(planned_dose, postop_dose),
        formalism=formalism,
        warnings=warnings,
    )
