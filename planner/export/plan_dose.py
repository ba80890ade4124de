"""The plan's dose for the exports: one small function, :func:`export_dosimetry`.

It calls :func:`planner.plan.dosimetry.compute_plan_dosimetry` (the one computation of "the
plan's dose", shared with the GUI and the CLI). A plan that carries a post-implant
verification (``seedplan verify``'s copy, whose seeds are the implanted ones) is computed with
the verification's formalism — 1D by default, the convention when seed orientation is
uncertain — so the report's dose is the post-plan dose the verification compared.
"""

from __future__ import annotations

from dose.progress import CancelFn, ProgressFn
from planner.imaging.volume import CTVolume
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry
from planner.plan.model import Plan

__all__ = ["export_dosimetry", "export_formalism"]


def export_formalism(plan: Plan) -> str:
    """The formalism of ``plan``'s exported dose: its verification's, else "2d"."""
    return plan.verification.formalism if plan.verification is not None else "2d"


def export_dosimetry(
    plan: Plan,
    ct: CTVolume | None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> PlanDosimetry:
    """The plan's dosimetry, in :func:`export_formalism`."""
    return compute_plan_dosimetry(
        plan, ct, formalism=export_formalism(plan), progress=progress, cancel=cancel
    )
