"""Post-implant verification: register → detect → match → post-plan dose → planned vs implanted.

:func:`verify_plan` is the one pipeline the CLI (``seedplan verify``), the GUI's post-op mode
and the cohort re-analysis run:

1. the post-op CT is registered rigidly to the planning CT on bone around the target
   (:mod:`planner.postop.register`; it needs no seeds);
2. seeds are detected on the post-op CT (:mod:`planner.postop.detection.detect`), with the plan's
seed
   count as the expected number — on thick post-op slices (> 3 mm) with the registered
   planning CT's bone taken out first (:mod:`planner.postop.detection.bone_prior`), unless the
   detection without it comes nearer the expected count (a wrong registration:
   :func:`detect_with_bone_prior`) — and the detected seeds (centres and axes) are mapped
   into the planning frame;
3. planned and implanted seeds are matched (:mod:`planner.postop.match`): per-seed displacement,
   per-needle deviation, unmatched seeds;
4. the post-plan dose is computed from the implanted seeds on the plan's structures, carried
   over through the registration (they live on the planning CT, where the seeds now are), by
   the same :func:`planner.plan.dosimetry.compute_plan_dosimetry` as the plan itself — with the
   1D point-source formalism by default, the convention when seed orientation is uncertain, or
   2D with the detected axes (``formalism="2d"``), and labelled so;
5. every metric of both is compared (planned, post-op, difference) — with a third column
   (intra-op) when an intra-operative re-plan is given (``intraop``: a plan on the same CT);
   the rows come in the clinical reading order of :func:`comparison_order` (the
   prescription's reference structure, the other targets, the organs at risk with the cord
   first, the rest), which the CLI's JSON and CSV and the GUI's table keep;
6. every seed, planned and implanted, is located (:mod:`planner.postop.locations`): inside
   the target, outside it, or migrated far from every planned needle track (the intra-op
   re-plan's needles when one is given); the counts join the comparison (structure "Seeds").

The registration is recorded as a :class:`planner.plan.model.Registration` (post-op CT
reference, 4 × 4 matrix, method, metric, time, user, nudged) in
``implanted_plan.registration``. Given ``registration`` (one stored in the plan, for this
post-op CT), it is used as it is and the automatic registration is skipped.

Nothing here changes the plan: the implanted plan is a new value (``implanted_plan``). The
record may then be stored in the plan itself — also in an approved revision, where it is a
post-implant verification record that leaves the approval untouched (verification always
follows approval; the rule is :mod:`planner.plan.document`'s): :func:`store_registration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, report, sub_progress
from planner.imaging.volume import CTVolume
from planner.plan.document import PlanDocument
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan, Registration, Seed, geometry_sha256
from planner.plan.reading_order import comparison_order, sort_comparison
from planner.plan.verification import SEED_COUNT_STRUCTURE, ComparisonRow
from planner.postop.detection.bone_prior import planning_bone_at, planning_bone_hu
from planner.postop.detection.detect import WITHOUT_BONE_PRIOR, DetectionResult, detect_seeds
from planner.postop.detection.thick_slices import THICK_SLICE_MM
from planner.postop.locations import DEFAULT_MIGRATION_MM, SeedLocations, locate_seeds
from planner.postop.match import MatchResult, NeedleDeviation, match_seeds, needle_deviations
from planner.postop.register import RegistrationResult, RigidTransform, register_rigid

__all__ = [
    "SEED_COUNT_STRUCTURE",
    "ComparisonRow",
    "Verification",
    "compare_dosimetry",
    "comparison_order",
    "detect_with_bone_prior",
    "detection_dict",
    "location_rows",
    "registration_record",
    "same_registration",
    "sort_comparison",
    "store_registration",
    "stored_registration_result",
    "verify_plan",
]


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
    #: Where each implanted seed (row of ``implanted_mm``) and each planned seed lies.
    locations: SeedLocations | None = None
    planned_locations: SeedLocations | None = None
    #: The intra-operative re-plan's dosimetry (the comparison's third column), or None.
    intraop: PlanDosimetry | None = None
    intraop_plan: Plan | None = None
    intraop_locations: SeedLocations | None = None

    @property
    def registration_record(self) -> Registration | None:
        """The registration as stored in the implanted plan (and in the GUI's document)."""
        return self.implanted_plan.registration

    def row(self, structure: str, metric: str) -> ComparisonRow:
        for r in self.comparison:
            if r.structure == structure and r.metric == metric:
                return r
        raise KeyError(f"no {metric} for {structure} in the comparison")

    def summary(self) -> str:
        """One line: seeds found and planned, the matching, where the seeds lie, the formalism
        (alone, e.g. the CLI's JSON; beside the detection's line use :meth:`summary_lines`)."""
        n_plan = len(self.match.pairs) + len(self.match.unmatched_planned)
        return self._summary(f"{len(self.implanted_mm)} seeds found ({n_plan} planned)")

    def summary_lines(self) -> list[str]:
        """The detection's summary line and the verification's, the seed count said once (the
        post-op window's text): the detection's line says how many seeds were found; the
        verification's gives the planned count, and the reviewed count only when review edits
        changed it (the detection's line is the automatic detection's)."""
        n_plan = len(self.match.pairs) + len(self.match.unmatched_planned)
        n = len(self.implanted_mm)
        head = f"{n_plan} planned"
        if n != len(self.detection.seeds):
            head = f"{n} seeds after review ({n_plan} planned)"
        return [self.detection.summary(), self._summary(head)]

    def _summary(self, head: str) -> str:
        where = f"; {self.locations.summary()}" if self.locations is not None else ""
        return (
            f"{head}; {self.match.summary()}{where}; "
            f"post-op dose {self.formalism.upper()} formalism"
        )


_UNITS = {"_gy": "Gy", "_percent": "%", "_cm3": "cm³", "_mm": "mm"}


def _unit(key: str) -> str:
    for suffix, unit in _UNITS.items():
        if key.endswith(suffix):
            return unit
    return ""


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def compare_dosimetry(
    planned: PlanDosimetry, postop: PlanDosimetry, intraop: PlanDosimetry | None = None
) -> list[ComparisonRow]:
    """Every numeric metric of every target and organ at risk, planned vs post-op (and the
    intra-op re-plan's value when ``intraop`` is given; None where it lacks the structure)."""
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
            intra = None
            if intraop is not None and name in intraop.metrics:
                intra = _finite(intraop.metrics[name].to_dict().get(key))
            rows.append(
                ComparisonRow(
                    name,
                    key,
                    _unit(key),
                    float(value) if value is not None and math.isfinite(value) else None,
                    float(v2) if isinstance(v2, (int, float)) and math.isfinite(v2) else None,
                    intra,
                )
            )
    return rows


def location_rows(
    planned: SeedLocations, implanted: SeedLocations, intraop: SeedLocations | None = None
) -> list[ComparisonRow]:
    """The seed counts, planned vs implanted (structure :data:`SEED_COUNT_STRUCTURE`): all
    seeds, inside the target, outside it, migrated (unit "seeds")."""
    a, b = planned.counts(), implanted.counts()
    c = intraop.counts() if intraop is not None else None
    rows = [
        ComparisonRow(
            SEED_COUNT_STRUCTURE,
            "seeds_total",
            "seeds",
            float(len(planned)),
            float(len(implanted)),
            None if intraop is None else float(len(intraop)),
        )
    ]
    for key in ("inside", "outside", "migrated"):
        rows.append(
            ComparisonRow(
                SEED_COUNT_STRUCTURE,
                f"seeds_{key}",
                "seeds",
                float(a[key]),
                float(b[key]),
                None if c is None else float(c[key]),
            )
        )
    return rows


def detection_dict(detection: DetectionResult, postop_ct: CTVolume) -> dict[str, object]:
    """The detection in ``seedplan verify``'s JSON: seeds found and expected, clusters split,
    the non-seed metal excluded, and how the metal was searched: ``thick_slices`` (True when
    the post-op CT's slices are thicker than ``planner.postop.detection.detect.THICK_SLICE_MM``, 3
    mm, and the seeds were found by shape: ``threshold_hu`` is then only the lowest HU the shape
    search looks at, not a threshold) and ``slice_thickness_mm`` (the CT's slice spacing)."""
    slice_mm = float(postop_ct.geometry.spacing_mm[2])
    return {
        "found": len(detection.seeds),
        "expected": detection.expected,
        "clusters_split": detection.clusters_split,
        "threshold_hu": detection.threshold_hu,
        "thick_slices": bool(detection.thick_slices),
        "slice_thickness_mm": slice_mm,
        "metal_excluded": [
            {"centre_mm": list(m.centre_mm), "volume_mm3": m.volume_mm3, "reason": m.reason}
            for m in detection.metal
        ],
    }


def registration_record(
    transform: RigidTransform,
    postop_ct: CTVolume,
    *,
    method: str = "mattes-mi-bone",
    metric_value: float | None = None,
    nudged: bool = False,
    registered_utc: str | None = None,
    registered_by: str | None = None,
) -> Registration:
    """The plan's record of ``transform`` (post-op → planning) for ``postop_ct``, now, by this
    process's user (unless ``registered_utc`` / ``registered_by`` are given)."""
    from planner.plan.clock import utc_now
    from planner.plan.document import current_user

    info = postop_ct.info
    return Registration(
        postop_series_instance_uid=info.series_instance_uid[:64],
        postop_frame_of_reference_uid=info.frame_of_reference_uid[:64],
        postop_geometry_sha256=geometry_sha256(postop_ct.geometry),
        matrix_lps_mm=transform.matrix4(),  # type: ignore[arg-type]
        method=method,
        metric_value=_finite(metric_value),
        registered_utc=registered_utc or utc_now(),
        registered_by=(current_user() if registered_by is None else registered_by)[:256],
        nudged=nudged,
        postop_source_path=str(postop_ct.source_path or "")[:4096],
    )


def store_registration(document: PlanDocument, record: Registration | None) -> bool:
    """Store ``record`` as the plan's registration, one undoable step of ``document`` (on an
    approved revision too: a verification record, :mod:`planner.plan.document`); False when
    the plan already holds the same one (the same post-op CT, matrix, method, nudged state)."""
    from planner.plan.commands import SetRegistration

    current = document.plan.registration
    if current is not None and record is not None and same_registration(current, record):
        return False
    if current is None and record is None:
        return False
    label = "Store registration" if record is not None else "Remove registration"
    document.execute(SetRegistration(record, label=label))
    return True


def same_registration(a: Registration, b: Registration) -> bool:
    """The same post-op CT, transform (to 1e-9 mm) and nudged state (time and user aside)."""
    return (
        a.postop_series_instance_uid == b.postop_series_instance_uid
        and a.postop_geometry_sha256 == b.postop_geometry_sha256
        and a.nudged == b.nudged
        and a.method == b.method
        and bool(np.allclose(a.matrix, b.matrix, rtol=0.0, atol=1e-9))
    )


def stored_registration_result(stored: Registration) -> RegistrationResult:
    """A :class:`RegistrationResult` for a registration stored in the plan (no optimiser run)."""
    return RegistrationResult(
        transform=RigidTransform.from_matrix4(stored.matrix),
        metric_value=stored.metric_value,
        iterations=0,
        initialised_by="stored in the plan",
        stop_reason=f"stored registration ({stored.method}, {stored.registered_utc or 'undated'}"
        + (", corrected by hand)" if stored.nudged else ")"),
    )


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


def detect_with_bone_prior(
    planning_ct: CTVolume,
    postop_ct: CTVolume,
    transform: RigidTransform,
    expected: int,
    exclude: NDArray[np.bool_] | None,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> DetectionResult:
    """The seeds of ``postop_ct``, the planning CT's bone through ``transform`` telling seeds on
    bone from cortex brightened by streaks (:func:`planner.postop.detection.bone_prior.bone_spots`).
    On thick slices (> ``THICK_SLICE_MM``) the detection is run with that bone taken out
    (:mod:`planner.postop.detection.bone_prior`). A wrong registration leaves edges of bone that
    read as seeds (3 mm and 1° off: 37 false seeds on six 5 mm scenes instead of 6): when the
    prior's count is over ``expected``, the detection is run again without it, and reported instead
    (with a line saying so) when its count lies nearer ``expected``. (Where the prior finds
    fewer, the other's surplus was mostly false seeds.)"""
    if float(postop_ct.geometry.spacing_mm[2]) <= THICK_SLICE_MM:
        # Thin slices: the prior only tells cortex brightened by streaks from a seed.
        return detect_seeds(
            postop_ct,
            expected=expected,
            exclude=exclude,
            bone_at=lambda kji: planning_bone_at(planning_ct, postop_ct, transform, kji),
            progress=progress,
            cancel=cancel,
        )
    with_prior = detect_seeds(
        postop_ct,
        expected=expected,
        exclude=exclude,
        bone_hu=planning_bone_hu(planning_ct, postop_ct, transform),
        progress=sub_progress(progress, 0.0, 0.5),
        cancel=cancel,
    )
    n_prior = len(with_prior.seeds)
    if n_prior <= expected:
        return with_prior  # no seed more than implanted: nothing for the other one to undo
    plain = detect_seeds(
        postop_ct,
        expected=expected,
        exclude=exclude,
        progress=sub_progress(progress, 0.5, 1.0),
        cancel=cancel,
    )
    n_plain = len(plain.seeds)
    if abs(n_plain - expected) < n_prior - expected:
        plain.messages[:] = [m for m in plain.messages if m != WITHOUT_BONE_PRIOR]
        plain.messages.insert(
            0,
            f"the planning CT's bone was not taken out: with it {n_prior} seeds were found, "
            f"{n_plain} without, {expected} expected — check the registration",
        )
        return plain
    return with_prior


def verify_plan(
    plan: Plan,
    planning_ct: CTVolume,
    postop_ct: CTVolume,
    *,
    formalism: str = "1d",
    gate_mm: float = 10.0,
    expected: int | None = None,
    registration: Registration | None = None,
    intraop: Plan | None = None,
    migration_mm: float = DEFAULT_MIGRATION_MM,
    exclude: NDArray[np.bool_] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Verification:
    """Verify ``plan`` against its post-op CT (module docstring).

    ``planning_ct`` must be the plan's CT (checked). ``expected``: seeds implanted (default:
    the plan's seed count). ``formalism``: "1d" (default) or "2d" with detected axes.
    ``registration``: a stored registration of this post-op CT (checked: same series and grid)
    to use instead of registering. ``intraop``: the intra-operative re-plan (on the plan's CT,
    checked) for the comparison's third column. ``migration_mm``: a seed outside the target
    farther than this from every planned needle track is "migrated". ``exclude``: a
    (z, y, x) bool mask on the post-op CT's grid never searched for seeds (a painted
    exclusion region; :func:`planner.postop.detection.detect.detect_seeds`).
    """
    if formalism not in ("1d", "2d"):
        raise InputError(f"unknown formalism {formalism!r}; use '1d' or '2d'")
    warnings = list(plan.check_ct(planning_ct))
    if not plan.seeds:
        raise InputError("the plan has no seeds to verify")
    if registration is not None and not registration.matches(postop_ct):
        raise InputError(
            "the stored registration belongs to another post-op CT (series "
            f"{registration.postop_series_instance_uid or '(none)'}, other grid or series)"
        )
    if intraop is not None:
        intraop.check_ct(planning_ct, where="the intra-op plan")
        if not intraop.seeds:
            raise InputError("the intra-op plan has no seeds")
    if not (math.isfinite(migration_mm) and migration_mm > 0):
        raise InputError(f"the migration distance must be > 0 mm, got {migration_mm:g}")
    n_expected = len(plan.seeds) if expected is None else int(expected)
    planned_mm = np.array([s.position_mm for s in plan.seeds], dtype=np.float64)
    if registration is not None:
        result = stored_registration_result(registration)
        record = registration
        warnings.append(
            f"registration stored in the plan used ({registration.method}, "
            f"{registration.registered_utc or 'undated'}"
            f"{', corrected by hand' if registration.nudged else ''})"
        )
    else:
        report(progress, 0.0, "registering the post-op CT on bone")
        result = register_rigid(
            planning_ct,
            postop_ct,
            around_mm=_target_centre_mm(plan),
            progress=sub_progress(progress, 0.0, 0.25),
            cancel=cancel,
        )
        record = registration_record(result.transform, postop_ct, metric_value=result.metric_value)
    report(progress, 0.25, "detecting seeds")
    detection = detect_with_bone_prior(
        planning_ct,
        postop_ct,
        result.transform,
        n_expected,
        exclude,
        sub_progress(progress, 0.25, 0.55),
        cancel,
    )
    warnings += detection.messages
    if not detection.seeds:
        raise InputError("no seeds were found on the post-op CT")
    implanted = result.transform.apply(detection.positions_mm)
    axes = result.transform.apply_vectors(detection.axes)
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
        registration=record,
        verification=None,
        approved_by="",
        approved_utc="",
    )
    # Implanted seeds are located against the needles actually used: the intra-op re-plan's
    # when there is one.
    reference = intraop if intraop is not None else plan
    locations = locate_seeds(reference, implanted, migration_mm=migration_mm)
    planned_locations = locate_seeds(plan, planned_mm, migration_mm=migration_mm)
    if locations.of("migrated"):
        warnings.append(
            f"{len(locations.of('migrated'))} seed(s) migrated: outside the target and more "
            f"than {migration_mm:g} mm from every planned needle"
        )
    split = 0.75 if intraop is None else 0.65
    planned_dose = compute_plan_dosimetry(
        plan, planning_ct, progress=sub_progress(progress, 0.55, split), cancel=cancel
    )
    intraop_dose = intraop_locations = None
    if intraop is not None:
        intraop_dose = compute_plan_dosimetry(
            intraop, planning_ct, progress=sub_progress(progress, 0.65, 0.75), cancel=cancel
        )
        intraop_locations = locate_seeds(
            intraop,
            np.array([s.position_mm for s in intraop.seeds], dtype=np.float64),
            migration_mm=migration_mm,
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
        registration=result,
        match=match,
        needles=needles,
        implanted_plan=implanted_plan,
        implanted_mm=implanted,
        planned=planned_dose,
        postop=postop_dose,
        comparison=sort_comparison(compare_dosimetry(planned_dose, postop_dose, intraop_dose), plan)
        + location_rows(planned_locations, locations, intraop_locations),
        formalism=formalism,
        warnings=warnings,
        locations=locations,
        planned_locations=planned_locations,
        intraop=intraop_dose,
        intraop_plan=intraop,
        intraop_locations=intraop_locations,
    )
