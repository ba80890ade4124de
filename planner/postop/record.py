"""A :class:`~planner.postop.verify.Verification` as the plan stores it for the report.

:func:`verification_record` turns what a verification found (after review edits, if any) into
the plan's :class:`planner.plan.verification.VerificationRecord`: ``seedplan verify`` stores it
in its copy of the plan (``postop.seedplan``) and the GUI's Export dialog hands it to the
report while the post-op mode holds a verification.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from planner.imaging.volume import CTVolume
from planner.plan.dosimetry import PlanDosimetry
from planner.plan.model import Plan
from planner.plan.verification import (
    SEED_COUNT_STRUCTURE,
    ComparisonRow,
    DVHPair,
    VerificationRecord,
)
from planner.postop.verify import Verification, comparison_order

__all__ = ["registration_line", "verification_record", "verified_copy", "with_intraop"]


def with_intraop(
    rows: Iterable[ComparisonRow],
    intraop: PlanDosimetry | None,
    counts: Mapping[str, float] | None = None,
) -> list[ComparisonRow]:
    """``rows`` with the intra-op column taken from ``intraop``'s metrics, and its seed counts
    (``counts``: metric → value) for the :data:`SEED_COUNT_STRUCTURE` rows; unchanged when
    ``intraop`` is None (a re-plan given to the GUI after the verification ran)."""
    if intraop is None:
        return list(rows)
    out = []
    for r in rows:
        value: object = None
        if r.structure in intraop.metrics:
            value = intraop.metrics[r.structure].to_dict().get(r.metric)
        elif r.structure == SEED_COUNT_STRUCTURE and counts:
            value = counts.get(r.metric)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out.append(replace(r, intraop=float(value) if ok and math.isfinite(value) else None))  # type: ignore[arg-type]
    return out


def registration_line(v: Verification) -> str:
    """One line on the registration used: how it was made, the rigid motion it describes
    (translation mm, rotation °) and the optimiser's metric."""
    rec = v.registration_record
    t = v.registration.transform
    rot = np.asarray(t.rotation, dtype=np.float64)
    angle = math.degrees(math.acos(float(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))
    shift = float(np.linalg.norm(t.translation_mm))
    how = rec.method if rec is not None else "registration"
    if rec is not None and rec.nudged:
        how += ", corrected by hand"
    metric = v.registration.metric_value
    text = f"{how}: translation {shift:.1f} mm, rotation {angle:.2f}°"
    if metric is not None:
        text += f", Mattes MI {metric:.3f}"
    return f"{text} ({v.registration.stop_reason})" if v.registration.stop_reason else text


def verification_record(
    v: Verification,
    plan: Plan,
    postop_ct: CTVolume,
    *,
    intraop: PlanDosimetry | None = None,
    intraop_counts: Mapping[str, float] | None = None,
    verified_utc: str | None = None,
    verified_by: str | None = None,
) -> VerificationRecord:
    """The record of ``v``, a verification of ``plan`` on ``postop_ct``, made now by this
    process's user (unless ``verified_utc`` / ``verified_by`` are given). ``intraop`` /
    ``intraop_counts``: an intra-op re-plan's dosimetry and seed counts given after the
    verification ran (the GUI's), filling the comparison's intra-op column."""
    from planner.plan.clock import utc_now
    from planner.plan.document import current_user

    det = v.detection
    dvhs = [
        DVHPair.sample(name, v.planned.dvhs[name], v.postop.dvhs[name])
        for name in comparison_order(plan)
        if name in v.planned.dvhs and name in v.postop.dvhs
    ]
    return VerificationRecord(
        verified_plan_uid=plan.plan_uid,
        verified_revision=plan.revision,
        verified_plan_name=plan.name[:256],
        postop_series_instance_uid=postop_ct.info.series_instance_uid[:64],
        postop_source_path=str(postop_ct.source_path or "")[:4096],
        slice_thickness_mm=float(postop_ct.geometry.spacing_mm[2]),
        verified_utc=verified_utc or utc_now(),
        verified_by=(current_user() if verified_by is None else verified_by)[:256],
        formalism=v.formalism,
        registration=registration_line(v)[:1024],
        seeds_expected=int(det.expected if det.expected is not None else len(plan.seeds)),
        seeds_detected=len(det.seeds),
        clusters_split=int(det.clusters_split),
        metal_excluded=len(det.metal),
        gate_mm=float(v.match.gate_mm),
        planned_seed_ids=tuple(s.id for s in plan.seeds),
        planned_mm=tuple(tuple(s.position_mm) for s in plan.seeds),
        implanted_mm=tuple(tuple(map(float, p)) for p in v.implanted_mm),
        pairs=tuple((int(i), int(j)) for i, j in v.match.pairs),
        comparison=tuple(with_intraop(v.comparison, intraop, intraop_counts)),
        has_intraop=v.intraop is not None or intraop is not None,
        dvhs=tuple(dvhs),
        warnings=tuple(w[:1024] for w in v.warnings),
    )


def verified_copy(v: Verification, plan: Plan, postop_ct: CTVolume, **record: object) -> Plan:
    """The copy of ``plan`` a verification writes: the implanted seeds, the registration and
    the :func:`verification_record` (``record``: its keyword arguments)."""
    return v.implanted_plan.evolve(
        verification=verification_record(v, plan, postop_ct, **record)  # type: ignore[arg-type]
    )
