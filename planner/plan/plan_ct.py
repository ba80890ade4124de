"""Finding a plan file's CT: the CT its reference names, if it can be found and matches.

A plan file stores a reference to its CT (UIDs, grid, and where it was loaded from), not the
CT itself. :func:`find_plan_ct` looks, in order, at ``ct.source_path`` (absolute, or relative
to the plan file's folder) and at a ``ct`` folder beside the plan file (the demo case's
layout); the first CT that loads and matches the plan's patient, frame of reference and grid
(:meth:`Plan.check_ct`) is returned with a note saying where it came from. None (with the
reason) when there is none: callers then skip what needs HU values (bone checks) and say so.
:func:`ct_reference_at` keeps that reference true when a plan is written to another folder.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from dose.errors import InputError
from planner.imaging.volume import CTVolume
from planner.plan.model import Plan

__all__ = ["ct_reference_at", "find_plan_ct", "recorded_ct_path"]


def recorded_ct_path(recorded: str, plan_path: str | Path | None) -> Path | None:
    """Where a plan file at ``plan_path`` says its CT is: ``recorded`` (its
    ``ct.source_path``) when absolute, else relative to the plan file's folder; None when
    nothing is recorded (or it is relative and there is no plan file)."""
    if not recorded:
        return None
    p = Path(recorded)
    if p.is_absolute():
        return p
    return None if plan_path is None else Path(plan_path).absolute().parent / p


def _candidates(plan: Plan, plan_path: Path | None) -> list[Path]:
    out: list[Path] = []
    recorded = recorded_ct_path(plan.ct.source_path, plan_path)
    if recorded is not None:
        out.append(recorded)
    if plan_path is not None:
        out.append(Path(plan_path).absolute().parent / "ct")
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def find_plan_ct(plan: Plan, plan_path: str | Path | None = None) -> tuple[CTVolume | None, str]:
    """(the plan's CT or None, a one-line note on where it came from or why there is none)."""
    from planner.imaging.ct_loader import load_ct

    reasons = []
    for path in _candidates(plan, None if plan_path is None else Path(plan_path)):
        if not path.exists():
            continue
        try:
            ct, _ = load_ct(path)
        except InputError as exc:
            reasons.append(str(exc))
            continue
        try:
            plan.check_ct(ct, where=path)
        except InputError as exc:
            reasons.append(str(exc))
            continue
        return ct, f"CT from {path}"
    if reasons:
        return None, "no matching CT: " + reasons[0]
    return None, "the plan's CT was not found (bone and body checks need it)"


def ct_reference_at(plan: Plan, out_path: str | Path, ct_path: str | Path | None) -> Plan:
    """``plan`` as it is to be written at ``out_path``, its CT reference naming ``ct_path`` (the
    CT it was loaded and checked with). A relative ``source_path`` is read from the plan file's
    folder (:func:`find_plan_ct`): one that names another folder from ``out_path`` (the demo
    case's ``ct``, in a copy written elsewhere) is replaced by ``ct_path`` made absolute.
    Unchanged when it already names ``ct_path``, or when ``ct_path`` is None."""
    if ct_path is None or not str(ct_path):
        return plan
    target = os.path.normpath(Path(ct_path).absolute())
    resolved = recorded_ct_path(plan.ct.source_path, out_path)
    if resolved is not None and os.path.normpath(resolved) == target:
        return plan
    return replace(plan, ct=replace(plan.ct, source_path=target))
