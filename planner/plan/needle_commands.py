"""Needle and seed edits: undoable commands for :meth:`PlanDocument.execute`.

Every command returns a :class:`~planner.plan.commands.FieldChange` of the plan's ``needles``
and/or ``seeds`` (small tuples), so undo/redo restores them exactly and the history grows by
a few hundred bytes per edit. Drags merge: give the commands of one drag the same
``merge_key`` (or run them in ``with doc.stroke("Move needle"):``); consecutive changes of the
same fields then coalesce into one undo step (``FieldChange.merged``).

Seeds on a needle stay on it: moving a needle end moves its seeds with it, each keeping its
distance from the tip (clipped to the track) and taking the new direction as its axis; a seed
moved "along its needle" is projected onto the track. The seed axis is always the needle
direction (tip − entry).

Commands: :class:`AddNeedle`, :class:`MoveNeedle` (entry and/or tip), :class:`DeleteNeedle`
(and its seeds), :class:`RenameNeedle`, :class:`AddSeeds`, :class:`AddSeedOnNeedle`,
:class:`MoveSeedAlongNeedle`, :class:`MoveSeed` (a free seed), :class:`DeleteSeeds`,
:class:`LoadNeedle` (replace a needle's seeds by a loading, :mod:`planner.plan.loading`),
:class:`AddNeedles` (e.g. a template); :class:`SetSeedSource` (the plan's seed model and
strength, in U or mCi, with the calibration and implant dates).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np

from planner.plan.commands import Change, FieldChange
from planner.plan.model import Needle, Plan, Seed, SourceSpec, Vec3, new_id
from planner.plan.needles import needle_direction, needle_length_mm

__all__ = [
    "AddNeedle",
    "AddNeedles",
    "AddSeedOnNeedle",
    "AddSeeds",
    "DeleteNeedle",
    "DeleteSeeds",
    "LoadNeedle",
    "MoveNeedle",
    "MoveSeed",
    "MoveSeedAlongNeedle",
    "RenameNeedle",
    "SetSeedSource",
    "distance_from_tip_mm",
    "seed_on_needle",
]


def _change(plan: Plan, **after: Any) -> tuple[Plan, Change]:
    before = {k: getattr(plan, k) for k in after}
    change = FieldChange(before, after)
    return change.redo(plan), change


def _needle(plan: Plan, needle_id: str) -> Needle:
    for n in plan.needles:
        if n.id == needle_id:
            return n
    raise KeyError(f"no needle with id {needle_id!r} in the plan")


def _vec(p: np.ndarray) -> Vec3:
    return (float(p[0]), float(p[1]), float(p[2]))


def distance_from_tip_mm(needle: Needle, position_mm: Sequence[float]) -> float:
    """Distance (mm) of the projection of ``position_mm`` onto the needle's line, measured
    from the tip towards the entry."""
    d = needle_direction(needle)
    return float((np.asarray(needle.tip_mm) - np.asarray(position_mm, dtype=np.float64)) @ d)


def seed_on_needle(
    needle: Needle, distance_mm: float, *, seed: Seed | None = None, clip: bool = True
) -> Seed:
    """A seed on ``needle`` at ``distance_mm`` from its tip (clipped to the track with
    ``clip``), axis = needle direction; ``seed`` gives the id and strength to keep."""
    length = needle_length_mm(needle)
    s = min(max(distance_mm, 0.0), length) if clip else distance_mm
    d = needle_direction(needle)
    p = np.asarray(needle.tip_mm, dtype=np.float64) - s * d
    if seed is None:
        return Seed(new_id("sd"), _vec(p), _vec(d), needle.id)
    return replace(seed, position_mm=_vec(p), axis=_vec(d), needle_id=needle.id)


# ====================================================================== needles
@dataclass(frozen=True)
class AddNeedle:
    """Add a needle (entry, tip in LPS mm) called ``name``; ``index`` None = at the end."""

    entry_mm: Vec3
    tip_mm: Vec3
    name: str = ""  # the needle's label in the table ("" = the next free "N<k>")
    needle_id: str = field(default_factory=lambda: new_id("nd"))
    index: int | None = None
    label: str = "Add needle"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        n = Needle(self.needle_id, self.entry_mm, self.tip_mm, self.name or _next_label(plan))
        if needle_length_mm(n) < 0.5:
            raise ValueError("a needle's entry and tip must be at least 0.5 mm apart")
        i = len(plan.needles) if self.index is None else int(self.index)
        return _change(plan, needles=(*plan.needles[:i], n, *plan.needles[i:]))


def _next_label(plan: Plan) -> str:
    used = {n.label for n in plan.needles}
    k = len(plan.needles) + 1
    while f"N{k}" in used:
        k += 1
    return f"N{k}"


@dataclass(frozen=True)
class AddNeedles:
    """Add several needles (e.g. a template grid), optionally with seeds, as one edit."""

    needles: Sequence[Needle]
    seeds: Sequence[Seed] = ()
    label: str = "Add needles"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _change(
            plan,
            needles=(*plan.needles, *self.needles),
            seeds=(*plan.seeds, *self.seeds),
        )


@dataclass(frozen=True)
class MoveNeedle:
    """Move a needle's entry and/or tip (None = keep); its seeds follow (module docstring).

    For a drag, give every MoveNeedle of the drag the same ``merge_key``."""

    needle_id: str
    entry_mm: Vec3 | None = None
    tip_mm: Vec3 | None = None
    label: str = "Move needle"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        old = _needle(plan, self.needle_id)
        new = Needle(
            old.id,
            old.entry_mm if self.entry_mm is None else self.entry_mm,
            old.tip_mm if self.tip_mm is None else self.tip_mm,
            old.label,
        )
        if needle_length_mm(new) < 0.5:
            raise ValueError("a needle's entry and tip must be at least 0.5 mm apart")
        needles = tuple(new if n.id == old.id else n for n in plan.needles)
        seeds = tuple(
            seed_on_needle(new, distance_from_tip_mm(old, s.position_mm), seed=s)
            if s.needle_id == old.id
            else s
            for s in plan.seeds
        )
        return _change(plan, needles=needles, seeds=seeds)


@dataclass(frozen=True)
class DeleteNeedle:
    """Delete a needle and the seeds on it."""

    needle_id: str
    label: str = "Delete needle"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        _needle(plan, self.needle_id)
        return _change(
            plan,
            needles=tuple(n for n in plan.needles if n.id != self.needle_id),
            seeds=tuple(s for s in plan.seeds if s.needle_id != self.needle_id),
        )


@dataclass(frozen=True)
class RenameNeedle:
    needle_id: str
    new_label: str
    label: str = "Rename needle"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        old = _needle(plan, self.needle_id)
        text = self.new_label.strip()
        if not text:
            raise ValueError("a needle's name must not be empty")
        if any(n.label == text and n.id != old.id for n in plan.needles):
            raise ValueError(f"another needle is called {text!r}")
        new = replace(old, label=text)
        return _change(plan, needles=tuple(new if n.id == old.id else n for n in plan.needles))


# ====================================================================== seeds
@dataclass(frozen=True)
class AddSeeds:
    """Add seeds (on needles of the plan, or free)."""

    seeds: Sequence[Seed]
    label: str = "Add seeds"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _change(plan, seeds=(*plan.seeds, *self.seeds))


@dataclass(frozen=True)
class AddSeedOnNeedle:
    """Add one seed on a needle at ``distance_mm`` from its tip (clipped to the track)."""

    needle_id: str
    distance_mm: float
    seed_id: str = field(default_factory=lambda: new_id("sd"))
    strength_u: float | None = None
    label: str = "Add seed"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        n = _needle(plan, self.needle_id)
        template = Seed(self.seed_id, n.tip_mm, strength_u=self.strength_u)
        s = seed_on_needle(n, self.distance_mm, seed=template)
        return _change(plan, seeds=(*plan.seeds, s))


@dataclass(frozen=True)
class MoveSeedAlongNeedle:
    """Move a seed along its needle: to ``distance_mm`` from the tip, or to the projection of
    ``position_mm`` onto the track (exactly one of the two). Mergeable for drags."""

    seed_id: str
    distance_mm: float | None = None
    position_mm: Vec3 | None = None
    label: str = "Move seed"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        if (self.distance_mm is None) == (self.position_mm is None):
            raise ValueError("give the distance from the tip or a position, not both")
        seed = next((s for s in plan.seeds if s.id == self.seed_id), None)
        if seed is None:
            raise KeyError(f"no seed with id {self.seed_id!r} in the plan")
        if seed.needle_id is None:
            raise ValueError(f"seed {seed.id} is not on a needle; use MoveSeed")
        n = _needle(plan, seed.needle_id)
        dist = (
            self.distance_mm
            if self.distance_mm is not None
            else distance_from_tip_mm(n, self.position_mm)  # type: ignore[arg-type]
        )
        new = seed_on_needle(n, float(dist), seed=seed)
        return _change(plan, seeds=tuple(new if s.id == seed.id else s for s in plan.seeds))


@dataclass(frozen=True)
class MoveSeed:
    """Move a free seed (not on a needle) to ``position_mm``; optionally a new ``axis``."""

    seed_id: str
    position_mm: Vec3
    axis: Vec3 | None = None
    label: str = "Move seed"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        seed = next((s for s in plan.seeds if s.id == self.seed_id), None)
        if seed is None:
            raise KeyError(f"no seed with id {self.seed_id!r} in the plan")
        if seed.needle_id is not None:
            raise ValueError(f"seed {seed.id} is on a needle; move it with MoveSeedAlongNeedle")
        new = replace(
            seed, position_mm=self.position_mm, axis=seed.axis if self.axis is None else self.axis
        )
        return _change(plan, seeds=tuple(new if s.id == seed.id else s for s in plan.seeds))


@dataclass(frozen=True)
class DeleteSeeds:
    seed_ids: Sequence[str]
    label: str = "Delete seeds"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        gone = set(self.seed_ids)
        missing = gone - {s.id for s in plan.seeds}
        if missing:
            raise KeyError(f"no seed with id {sorted(missing)[0]!r} in the plan")
        return _change(plan, seeds=tuple(s for s in plan.seeds if s.id not in gone))


@dataclass(frozen=True)
class LoadNeedle:
    """Replace the seeds on a needle by ``seeds`` (from
    :func:`planner.plan.loading.load_needle_seeds`); every seed must be on that needle."""

    needle_id: str
    seeds: Sequence[Seed]
    label: str = "Load needle"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        _needle(plan, self.needle_id)
        if any(s.needle_id != self.needle_id for s in self.seeds):
            raise ValueError(f"every seed of a loading must be on needle {self.needle_id}")
        kept = tuple(s for s in plan.seeds if s.needle_id != self.needle_id)
        return _change(plan, seeds=(*kept, *self.seeds))


@dataclass(frozen=True)
class SetSeedSource:
    """Set the plan's seed model and per-seed strength: air-kerma strength ``strength_u`` (U)
    or apparent activity ``activity_mci`` (mCi, × 1.270 U/mCi; shown beside U), at the
    calibration date; with both dates the decay to the implant date is applied to the dose.
    The model's table checksum is recorded (INT-4). ValueError for a bad value."""

    model_id: str
    strength_u: float | None = None
    activity_mci: float | None = None
    calibration_date: date | None = None
    implant_date: date | None = None
    label: str = "Set seed source"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        from dose.errors import InputError
        from dose.sources import load_model
        from dose.units import mci_to_u

        if self.strength_u is not None and self.activity_mci is not None:
            raise ValueError("give the strength in U or the activity in mCi, not both")
        try:
            model = load_model(self.model_id)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        strength = (
            self.strength_u if self.activity_mci is None else mci_to_u(float(self.activity_mci))
        )
        source = SourceSpec(
            model.model_id,
            model.checksum,
            None if strength is None else float(strength),
            "mCi" if self.activity_mci is not None else "U",
            self.calibration_date,
            self.implant_date,
        )
        return _change(plan, source=source)
