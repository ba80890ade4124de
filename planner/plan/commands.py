"""Edits of a plan: commands that make a new plan, and the changes the history keeps.

A *command* (``EditMask``, ``SetPrescription`` …) is a value describing an edit. Its
``apply(plan)`` returns ``(new_plan, change)``: the new plan (sharing every unchanged value with
``plan``) and a :class:`Change`, the minimal record to go back and forth between the two
(``change.undo(new_plan) == plan``, ``change.redo(plan) == new_plan``). Changes never hold a
full mask: a mask edit keeps only its box's before/after as packed bits, and a removed
structure keeps its mask as packed bits of its bounding box, so the history's memory follows
the size of the edits (``Change.nbytes``), not the size of the CT.

``Change.merged(later, plan_now)`` coalesces two consecutive changes of one drag or brush stroke
into one (None when they cannot be merged; the history then keeps both in one step).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from planner.plan.masks import (
    Box,
    PackedBox,
    box_size,
    box_union,
    normalise_box,
)
from planner.plan.model import (
    Goal,
    Needle,
    Plan,
    Prescription,
    Registration,
    Role,
    Seed,
    SourceSpec,
    Status,
    Structure,
    new_id,
)

__all__ = [
    "AddStructure",
    "Change",
    "Command",
    "EditMask",
    "FieldChange",
    "MaskChange",
    "RemoveStructure",
    "SetGoals",
    "SetNeedlesAndSeeds",
    "SetPrescription",
    "SetRegistration",
    "SetSource",
    "SetStatus",
    "StructureAdded",
    "StructureRemoved",
    "StructureUpdated",
    "UpdateStructure",
]

#: A union box may be at most this many times the two boxes it merges (else kept apart).
_MERGE_GROWTH = 4


class Change(Protocol):
    """What the history keeps of one applied edit."""

    #: Which parts of the plan changed: {"structures", "masks", "prescription", "source",
    #: "needles", "seeds", "goals", "status", "registration", "verification"}.
    what: frozenset[str]
    #: Ids of the structures whose mask or fields changed (empty for other edits).
    structure_ids: frozenset[str]

    @property
    def nbytes(self) -> int: ...

    def undo(self, plan: Plan) -> Plan: ...

    def redo(self, plan: Plan) -> Plan: ...

    def merged(self, later: Change, plan_now: Plan) -> Change | None: ...


class Command(Protocol):
    label: str
    merge_key: Hashable | None

    def apply(self, plan: Plan) -> tuple[Plan, Change]: ...


# ====================================================================== changes
@dataclass(frozen=True)
class FieldChange:
    """Plan fields replaced by new values (small values: prescription, source, needles …)."""

    before: dict[str, Any]
    after: dict[str, Any]
    structure_ids: frozenset[str] = frozenset()

    @property
    def what(self) -> frozenset[str]:
        return frozenset(self.after)

    @property
    def nbytes(self) -> int:
        n = 0
        for values in (self.before, self.after):
            for v in values.values():
                n += 96 * (len(v) if isinstance(v, tuple) else 1)
        return n

    def undo(self, plan: Plan) -> Plan:
        return plan.evolve(**self.before)

    def redo(self, plan: Plan) -> Plan:
        return plan.evolve(**self.after)

    def merged(self, later: Change, plan_now: Plan) -> Change | None:
        if isinstance(later, FieldChange) and set(later.after) == set(self.after):
            return FieldChange(dict(self.before), dict(later.after), self.structure_ids)
        return None


def _replace_structure(plan: Plan, structure: Structure) -> Plan:
    i = plan.structure_index(structure.id)
    return plan.evolve(structures=(*plan.structures[:i], structure, *plan.structures[i + 1 :]))


@dataclass(frozen=True)
class MaskChange:
    """One box of one structure's mask, before and after (packed bits)."""

    structure_id: str
    before: PackedBox
    after: PackedBox
    what: frozenset[str] = frozenset({"masks"})

    @property
    def structure_ids(self) -> frozenset[str]:
        return frozenset({self.structure_id})

    @property
    def box(self) -> Box:
        return self.before.box

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes + 200

    def _write(self, plan: Plan, old: PackedBox, new: PackedBox) -> Plan:
        s = plan.structure(self.structure_id)
        count = s.voxel_count - old.count + new.count
        return _replace_structure(plan, s.patched(new.box, new.unpack(), voxel_count=count))

    def undo(self, plan: Plan) -> Plan:
        return self._write(plan, self.after, self.before)

    def redo(self, plan: Plan) -> Plan:
        return self._write(plan, self.before, self.after)

    def merged(self, later: Change, plan_now: Plan) -> Change | None:
        """One change covering both boxes (their union), if it is not much bigger than both."""
        if not isinstance(later, MaskChange) or later.structure_id != self.structure_id:
            return None
        union = box_union(self.box, later.box)
        if box_size(union) > _MERGE_GROWTH * (box_size(self.box) + box_size(later.box)) + 4096:
            return None
        now = plan_now.structure(self.structure_id).values_in(union)
        before = now.copy()
        # State before both: the later change's "before" inside its box, then ours (older).
        for c in (later, self):
            sub = tuple(
                slice(b.start - u.start, b.stop - u.start)
                for b, u in zip(c.box, union, strict=True)
            )
            before[sub] = c.before.unpack()
        return MaskChange(
            self.structure_id, PackedBox.pack(union, before), PackedBox.pack(union, now)
        )


@dataclass(frozen=True)
class StructureAdded:
    """A structure inserted at ``index`` (its mask kept as packed bits of its bounding box)."""

    index: int
    template: Structure  # metadata only: its mask is not kept (see ``packed``)
    packed: PackedBox
    what: frozenset[str] = frozenset({"structures", "masks"})

    @classmethod
    def of(cls, index: int, structure: Structure) -> StructureAdded:
        packed = PackedBox.pack(structure.box, structure.crop)
        return cls(index, _metadata_only(structure), packed)

    @property
    def structure_ids(self) -> frozenset[str]:
        return frozenset({self.template.id})

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + 400

    def _structure(self) -> Structure:
        crop = self.packed.unpack()
        crop.setflags(write=False)
        t = self.template
        return Structure(
            t.id,
            t.name,
            t.role,
            t.geometry,
            self.packed.box,
            crop,
            t.color_rgb,
            t.origin,
            self.packed.count,
        )

    def undo(self, plan: Plan) -> Plan:
        i = plan.structure_index(self.template.id)
        return plan.evolve(structures=plan.structures[:i] + plan.structures[i + 1 :])

    def redo(self, plan: Plan) -> Plan:
        s = plan.structures
        return plan.evolve(structures=(*s[: self.index], self._structure(), *s[self.index :]))

    def merged(self, later: Change, plan_now: Plan) -> Change | None:
        return None


@dataclass(frozen=True)
class StructureRemoved:
    """The inverse of :class:`StructureAdded` (with the fields it cleared, e.g. goals)."""

    added: StructureAdded
    fields: FieldChange | None = None
    what: frozenset[str] = frozenset({"structures", "masks"})

    @property
    def structure_ids(self) -> frozenset[str]:
        return self.added.structure_ids

    @property
    def nbytes(self) -> int:
        return self.added.nbytes + (self.fields.nbytes if self.fields else 0)

    def undo(self, plan: Plan) -> Plan:
        plan = self.added.redo(plan)
        return self.fields.undo(plan) if self.fields else plan

    def redo(self, plan: Plan) -> Plan:
        plan = self.fields.redo(plan) if self.fields else plan
        return self.added.undo(plan)

    def merged(self, later: Change, plan_now: Plan) -> Change | None:
        return None


@dataclass(frozen=True)
class StructureUpdated:
    """A structure's name/role/color/origin before and after (its mask is untouched)."""

    structure_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    what: frozenset[str] = frozenset({"structures"})

    @property
    def structure_ids(self) -> frozenset[str]:
        return frozenset({self.structure_id})

    @property
    def nbytes(self) -> int:
        return 300

    def undo(self, plan: Plan) -> Plan:
        return _replace_structure(
            plan, plan.structure(self.structure_id).with_fields(**self.before)
        )

    def redo(self, plan: Plan) -> Plan:
        return _replace_structure(plan, plan.structure(self.structure_id).with_fields(**self.after))

    def merged(self, later: Change, plan_now: Plan) -> Change | None:
        if isinstance(later, StructureUpdated) and later.structure_id == self.structure_id:
            before = {**later.before, **self.before}
            after = {**self.after, **later.after}
            return StructureUpdated(self.structure_id, before, after)
        return None


def _metadata_only(s: Structure) -> Structure:
    """A copy of ``s`` without voxels (an empty box), for change records."""
    empty = np.zeros((0, 0, 0), dtype=np.bool_)
    empty.setflags(write=False)
    box = (slice(0, 0), slice(0, 0), slice(0, 0))
    return Structure(s.id, s.name, s.role, s.geometry, box, empty, s.color_rgb, s.origin, 0)


# ====================================================================== commands
@dataclass(frozen=True)
class EditMask:
    """Write ``values`` into ``box`` of structure ``structure_id``'s mask (a paint patch).

    box : (z, y, x) tuple of slices on the CT grid; values : bool array of the box's shape (or
    broadcastable to it, e.g. ``True`` to fill). ``merge_key``: consecutive edits with the same
    key (one brush stroke) become one undo step.
    """

    structure_id: str
    box: tuple[slice, ...]
    values: ArrayLike
    label: str = "Edit mask"
    merge_key: Hashable | None = None

    @classmethod
    def from_patch(
        cls,
        structure_id: str,
        patch: tuple[tuple[slice, ...], ArrayLike],
        *,
        label: str = "Edit mask",
        merge_key: Hashable | None = None,
    ) -> EditMask:
        """The edit of a paint-tool patch ``(box, new_values)`` (planner.structures.patch)."""
        box, values = patch
        return cls(structure_id, box, values, label, merge_key)

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        s = plan.structure(self.structure_id)
        box = normalise_box(self.box, plan.geometry.shape_zyx)
        shape = tuple(b.stop - b.start for b in box)
        new = np.broadcast_to(np.asarray(self.values), shape)
        if new.dtype != np.bool_:
            new = new != 0
        before = PackedBox.pack(box, s.values_in(box))
        after = PackedBox.pack(box, new)
        count = s.voxel_count - before.count + after.count
        plan2 = _replace_structure(plan, s.patched(box, new, voxel_count=count))
        return plan2, MaskChange(s.id, before, after)


@dataclass(frozen=True)
class AddStructure:
    """Add a structure (mask: (z, y, x) on the CT grid, any dtype, nonzero = inside)."""

    name: str
    mask: ArrayLike
    role: Role = "other"
    color_rgb: tuple[int, int, int] = (255, 0, 0)
    origin: str = "drawn"
    structure_id: str = field(default_factory=lambda: new_id("st"))
    index: int | None = None
    label: str = "Add structure"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        if plan.structure_named(self.name) is not None:
            raise ValueError(f"the plan already has a structure called {self.name!r}")
        s = Structure.from_mask(
            self.structure_id,
            self.name.strip(),
            self.role,
            self.mask,
            plan.geometry,
            self.color_rgb,
            self.origin,
        )
        index = len(plan.structures) if self.index is None else int(self.index)
        change = StructureAdded.of(index, s)
        return plan.evolve(
            structures=(*plan.structures[:index], s, *plan.structures[index:])
        ), change


@dataclass(frozen=True)
class RemoveStructure:
    """Remove a structure, and the goals and prescription that refer to it."""

    structure_id: str
    label: str = "Remove structure"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        index = plan.structure_index(self.structure_id)
        s = plan.structures[index]
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        goals = tuple(g for g in plan.goals if g.structure_id != s.id)
        if goals != plan.goals:
            before["goals"], after["goals"] = plan.goals, goals
        if plan.prescription is not None and plan.prescription.structure_id == s.id:
            before["prescription"], after["prescription"] = plan.prescription, None
        fields = FieldChange(before, after) if after else None
        change = StructureRemoved(StructureAdded.of(index, s), fields)
        return change.redo(plan), change


@dataclass(frozen=True)
class UpdateStructure:
    """Rename a structure or change its role or color (None = keep)."""

    structure_id: str
    name: str | None = None
    role: Role | None = None
    color_rgb: tuple[int, int, int] | None = None
    label: str = "Edit structure"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        s = plan.structure(self.structure_id)
        after: dict[str, Any] = {}
        if self.name is not None:
            other = plan.structure_named(self.name)
            if other is not None and other.id != s.id:
                raise ValueError(f"the plan already has a structure called {other.name!r}")
            after["name"] = self.name.strip()
        if self.role is not None:
            after["role"] = self.role
        if self.color_rgb is not None:
            after["color_rgb"] = tuple(int(c) for c in self.color_rgb)
        before = {k: getattr(s, k) for k in after}
        change = StructureUpdated(s.id, before, after)
        return change.redo(plan), change


def _field_command(plan: Plan, **after: Any) -> tuple[Plan, Change]:
    before = {k: getattr(plan, k) for k in after}
    change = FieldChange(before, after)
    return change.redo(plan), change


@dataclass(frozen=True)
class SetPrescription:
    prescription: Prescription | None
    label: str = "Set prescription"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _field_command(plan, prescription=self.prescription)


@dataclass(frozen=True)
class SetSource:
    source: SourceSpec | None
    label: str = "Set source"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _field_command(plan, source=self.source)


@dataclass(frozen=True)
class SetGoals:
    goals: Sequence[Goal]
    label: str = "Set goals"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _field_command(plan, goals=tuple(self.goals))


@dataclass(frozen=True)
class SetNeedlesAndSeeds:
    """Replace the needles and seeds (the next issue adds finer needle/seed commands)."""

    needles: Sequence[Needle]
    seeds: Sequence[Seed]
    label: str = "Set needles and seeds"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _field_command(plan, needles=tuple(self.needles), seeds=tuple(self.seeds))


@dataclass(frozen=True)
class SetStatus:
    """Draft ↔ reviewed. Approval is not a command: see ``PlanDocument.approve``."""

    status: Status
    label: str = "Set status"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        if self.status not in ("draft", "reviewed"):
            raise ValueError("approve a plan with PlanDocument.approve(), not a SetStatus edit")
        return _field_command(plan, status=self.status)


@dataclass(frozen=True)
class SetRegistration:
    """Store (None: remove) the post-op CT's registration to the plan's CT: the automatic
    result of a verification, or one corrected by hand (one undoable step; consecutive manual
    nudges of one review share ``merge_key`` and become one step)."""

    registration: Registration | None
    label: str = "Store registration"
    merge_key: Hashable | None = None

    def apply(self, plan: Plan) -> tuple[Plan, Change]:
        return _field_command(plan, registration=self.registration)
