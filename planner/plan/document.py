"""The open plan: its current state, a Qt-free undo history, and change events.

:class:`PlanDocument` is the one source of truth for the plan being edited. The GUI's Undo/Redo
actions call :meth:`PlanDocument.undo` / :meth:`PlanDocument.redo` (there is no separate
QUndoStack); the CLI and tests use the same calls.

* Every edit is a command (:mod:`planner.plan.commands`) run by :meth:`PlanDocument.execute`;
  it produces a new plan and one undo step.
* A drag or a brush stroke is one step: run its edits inside ``with doc.stroke("Paint"):``
  (or give them one ``merge_key``); consecutive changes are merged.
* ``with doc.transaction("Add needle with seeds"):`` groups compound edits into one step; if
  the block raises, every edit in it is rolled back.
* Memory: a step keeps :class:`~planner.plan.commands.Change` records only (packed boxes, small
  values), so it grows with the edit; :attr:`History.nbytes` is the total. Derived data (dose,
  DVH, meshes) is never in the history: listeners recompute it from the ``changed`` event.
* An approved plan is read-only: edits raise :class:`PlanLockedError`;
  :meth:`PlanDocument.new_revision` starts revision + 1 as a draft. Approval clears the history.
* **Verification records on an approved plan.** Post-implant verification always comes after
  approval, and what it records describes the implant, not the plan: so the post-op CT's
  registration and the verification the plan reports (:data:`VERIFICATION_RECORDS`:
  ``registration``, set by :class:`~planner.plan.commands.SetRegistration`, and
  ``verification``) may be attached to, replaced on or removed from an approved revision.
  Nothing that was approved changes — status, approver and time, revision, structures and
  masks, prescription, source, needles, seeds, goals — and the approval's checksum
  (:func:`planner.plan.plan_file.approved_content_sha256`) excludes the records. Each such
  edit is one ordinary undo step (undoable, merged as usual; the step's label names the
  approved revision), the record carries who and when (``registered_by``,
  ``registered_utc``), and the plan shows as modified until saved. Any command that would
  change anything else is refused with PlanLockedError before the plan changes.

Events (psygnal): ``doc.events.changed(PlanChanged)`` after every edit, undo, redo, rollback,
load or revision; ``doc.events.history_changed()`` when undo/redo availability or labels change;
``doc.events.modified_changed(bool)`` when the unsaved-changes state flips.
"""

from __future__ import annotations

import getpass
import itertools
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from psygnal import Signal

from dose.errors import InputError
from planner.plan.clock import utc_now
from planner.plan.commands import Change, Command
from planner.plan.model import Plan

__all__ = [
    "VERIFICATION_RECORDS",
    "History",
    "PlanChanged",
    "PlanDocument",
    "PlanEvents",
    "PlanLockedError",
    "Step",
    "current_user",
]

ChangeKind = Literal["edit", "undo", "redo", "rollback", "load", "revision", "approve"]
_ALL = frozenset(
    {
        "structures",
        "masks",
        "prescription",
        "source",
        "needles",
        "seeds",
        "goals",
        "status",
        "registration",
        "verification",
    }
)

#: The parts of a plan that are post-implant verification records: they may change on an
#: approved revision without changing its approval (module docstring).
VERIFICATION_RECORDS: frozenset[str] = frozenset({"registration", "verification"})


class PlanLockedError(InputError):
    """An edit of an approved plan (start a new revision to edit it)."""


@dataclass(frozen=True)
class PlanChanged:
    """What an event is about: the new plan and which parts changed."""

    plan: Plan
    kind: ChangeKind
    what: frozenset[str]
    structure_ids: frozenset[str] = frozenset()
    label: str = ""


@dataclass
class Step:
    """One undo step: its label and the changes it applied, oldest first."""

    label: str
    changes: list[Change] = field(default_factory=list)
    merge_key: Hashable | None = None
    sealed: bool = False

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.changes)

    @property
    def what(self) -> frozenset[str]:
        return frozenset().union(*(c.what for c in self.changes)) if self.changes else frozenset()

    @property
    def structure_ids(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for c in self.changes:
            out |= c.structure_ids
        return out

    def add(self, change: Change, plan_now: Plan) -> None:
        """Append ``change`` (already applied; ``plan_now`` is the result), merging it into the
        last change when they coalesce."""
        if self.changes:
            merged = self.changes[-1].merged(change, plan_now)
            if merged is not None:
                self.changes[-1] = merged
                return
        self.changes.append(change)

    def undo(self, plan: Plan) -> Plan:
        for c in reversed(self.changes):
            plan = c.undo(plan)
        return plan

    def redo(self, plan: Plan) -> Plan:
        for c in self.changes:
            plan = c.redo(plan)
        return plan


class History:
    """Linear undo/redo stacks of :class:`Step` with a byte budget.

    max_bytes : when the undo steps together exceed it, the oldest are dropped (then the saved
    state may no longer be reachable by undo; :attr:`is_clean` stays correct).
    """

    def __init__(self, *, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self.undo_steps: list[Step] = []
        self.redo_steps: list[Step] = []
        self._clean: int | None = 0  # len(undo_steps) at the last save; None = unreachable

    # -------------------------------------------------------------- state
    @property
    def can_undo(self) -> bool:
        return bool(self.undo_steps)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_steps)

    @property
    def undo_label(self) -> str:
        return self.undo_steps[-1].label if self.undo_steps else ""

    @property
    def redo_label(self) -> str:
        return self.redo_steps[-1].label if self.redo_steps else ""

    @property
    def nbytes(self) -> int:
        """Bytes held by all undo and redo steps."""
        return sum(s.nbytes for s in itertools.chain(self.undo_steps, self.redo_steps))

    @property
    def is_clean(self) -> bool:
        """True when the current state is the one last marked clean (saved)."""
        return self._clean == len(self.undo_steps)

    def mark_clean(self) -> None:
        self._clean = len(self.undo_steps)
        self.seal()

    def mark_unreachable(self) -> None:
        """No state on the stacks is the saved one (the plan differs from its file)."""
        self._clean = None
        self.seal()

    def clear(self) -> None:
        self.undo_steps.clear()
        self.redo_steps.clear()
        self._clean = 0

    def seal(self) -> None:
        """Stop merging into the last step."""
        if self.undo_steps:
            self.undo_steps[-1].sealed = True

    # -------------------------------------------------------------- editing
    def record(
        self, change: Change, plan_now: Plan, label: str, merge_key: Hashable | None
    ) -> Step:
        """Record an applied change: merged into the last step when it has the same merge key
        and is not sealed, else as a new step (which clears the redo stack)."""
        if self.redo_steps:
            self.redo_steps.clear()
            if self._clean is not None and self._clean > len(self.undo_steps):
                self._clean = None
        top = self.undo_steps[-1] if self.undo_steps else None
        if (
            top is not None
            and merge_key is not None
            and top.merge_key == merge_key
            and not top.sealed
            and self._clean != len(self.undo_steps)
        ):
            top.add(change, plan_now)
            self._trim()
            return top
        self.seal()
        step = Step(label, [change], merge_key)
        self.undo_steps.append(step)
        self._trim()
        return step

    def push_step(self, step: Step) -> None:
        """Push a finished step (a transaction) as one undo step."""
        if self.redo_steps:
            self.redo_steps.clear()
            if self._clean is not None and self._clean > len(self.undo_steps):
                self._clean = None
        self.seal()
        step.sealed = True
        self.undo_steps.append(step)
        self._trim()

    def _trim(self) -> None:
        total = sum(s.nbytes for s in self.undo_steps)
        while len(self.undo_steps) > 1 and total > self.max_bytes:
            total -= self.undo_steps.pop(0).nbytes
            if self._clean is not None:
                self._clean = self._clean - 1 if self._clean > 0 else None

    def undo(self, plan: Plan) -> tuple[Plan, Step]:
        step = self.undo_steps.pop()
        step.sealed = True
        self.redo_steps.append(step)
        return step.undo(plan), step

    def redo(self, plan: Plan) -> tuple[Plan, Step]:
        step = self.redo_steps.pop()
        self.undo_steps.append(step)
        return step.redo(plan), step


class PlanEvents:
    """The document's signals (psygnal: ``connect``, ``disconnect``; emitted synchronously)."""

    changed = Signal(object)  # PlanChanged
    history_changed = Signal()
    modified_changed = Signal(bool)


class PlanDocument:
    """The plan being edited, its history, its file path and its events (module docstring)."""

    def __init__(
        self, plan: Plan, *, path: str | Path | None = None, history_max_bytes: int = 512 * 2**20
    ) -> None:
        self._plan = plan
        self.path: Path | None = None if path is None else Path(path)
        self.history = History(max_bytes=history_max_bytes)
        self.events = PlanEvents()
        self._txn: Step | None = None
        self._txn_depth = 0
        self._stroke_ids = itertools.count(1)
        self._stroke_key: Hashable | None = None
        self._modified = False
        #: Bumped by every state change; a background result computed for an older revision
        #: number is stale and must be dropped.
        self.state_counter = 0

    # -------------------------------------------------------------- state
    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def is_modified(self) -> bool:
        """Unsaved changes: the plan differs from the last saved or loaded state."""
        return not self.history.is_clean

    def _set_plan(
        self,
        plan: Plan,
        kind: ChangeKind,
        what: frozenset[str],
        structure_ids: frozenset[str] = frozenset(),
        label: str = "",
    ) -> None:
        self._plan = plan
        self.state_counter += 1
        self.events.changed.emit(PlanChanged(plan, kind, what, structure_ids, label))
        self._history_event()

    def _history_event(self) -> None:
        self.events.history_changed.emit()
        if self.is_modified != self._modified:
            self._modified = self.is_modified
            self.events.modified_changed.emit(self._modified)

    # -------------------------------------------------------------- editing
    def execute(self, command: Command) -> Plan:
        """Apply ``command`` to the plan, record it, emit ``changed``; returns the new plan.

        Raises PlanLockedError for an approved plan (unless the command changes only its
        verification records, :data:`VERIFICATION_RECORDS`) and ValueError (unchanged plan)
        for an edit the plan refuses (e.g. a duplicate structure name)."""
        locked = self._plan.is_approved
        plan, change = command.apply(self._plan)
        label = command.label
        if locked:
            _check_verification_only(self._plan, plan, change.what)
            label = f"{label} (approved revision {self._plan.revision})"
        key = self._stroke_key if self._stroke_key is not None else command.merge_key
        if self._txn is not None:
            self._txn.add(change, plan)
        else:
            self.history.record(change, plan, label, key)
        self._set_plan(plan, "edit", change.what, change.structure_ids, label)
        return plan

    @contextmanager
    def stroke(self, label: str = "Stroke") -> Iterator[None]:
        """Edits inside the block (one drag, one brush stroke) become one undo step."""
        outer = self._stroke_key
        if outer is None:
            self._stroke_key = ("stroke", next(self._stroke_ids), label)
        try:
            yield
        finally:
            if outer is None:
                self._stroke_key = None
                self.history.seal()

    @contextmanager
    def transaction(self, label: str) -> Iterator[None]:
        """Edits inside the block are one undo step; an exception rolls all of them back."""
        if self._txn is not None:  # nested: part of the outer transaction
            yield
            return
        self._txn = Step(label)
        try:
            yield
        except BaseException:
            step, self._txn = self._txn, None
            if step.changes:
                self._set_plan(
                    step.undo(self._plan), "rollback", step.what, step.structure_ids, label
                )
            raise
        step, self._txn = self._txn, None
        if step.changes:
            self.history.push_step(step)
            self._history_event()

    def undo(self) -> bool:
        """Undo one step (False when there is none)."""
        if self._txn is not None:
            raise RuntimeError("cannot undo inside a transaction")
        if not self.history.can_undo:
            return False
        if self._plan.is_approved:
            _check_verification_only(self._plan, None, self.history.undo_steps[-1].what)
        plan, step = self.history.undo(self._plan)
        self._set_plan(plan, "undo", step.what, step.structure_ids, step.label)
        return True

    def redo(self) -> bool:
        """Redo one step (False when there is none)."""
        if self._txn is not None:
            raise RuntimeError("cannot redo inside a transaction")
        if not self.history.can_redo:
            return False
        if self._plan.is_approved:
            _check_verification_only(self._plan, None, self.history.redo_steps[-1].what)
        plan, step = self.history.redo(self._plan)
        self._set_plan(plan, "redo", step.what, step.structure_ids, step.label)
        return True

    # -------------------------------------------------------------- revisions
    def approve(self, *, user: str | None = None) -> Plan:
        """Approve this revision: it becomes read-only and the history is cleared."""
        if self._plan.is_approved:
            return self._plan
        if self._plan.prescription is None:
            raise InputError("a plan without a prescription cannot be approved")
        plan = self._plan.evolve(
            status="approved",
            approved_by=user or _user(),
            approved_utc=utc_now(),
        )
        self.history.clear()
        self.history.mark_unreachable()  # the approval is not saved yet
        self._set_plan(plan, "approve", frozenset({"status"}))
        return plan

    def new_revision(self) -> Plan:
        """Start revision + 1 as a draft from the current plan (approved or not); its
        ``previous_sha256`` is this revision's approved-content hash (verification record
        excluded), and the registration is carried over (the same planning CT); a
        verification record is not (it reports the revision it verified)."""
        from planner.plan.plan_file import approved_content_sha256

        plan = self._plan.evolve(
            status="draft",
            revision=self._plan.revision + 1,
            approved_by="",
            approved_utc="",
            previous_sha256=approved_content_sha256(self._plan),
            verification=None,
        )
        self.history.clear()
        self.history.mark_unreachable()
        self._set_plan(plan, "revision", frozenset({"status"}))
        return plan

    def replace_plan(self, plan: Plan, *, path: str | Path | None = None) -> None:
        """Show another plan (a load or a restore): clears the history, marks it saved."""
        self.path = None if path is None else Path(path)
        self.history.clear()
        self._modified = False
        self._set_plan(plan, "load", _ALL)

    def mark_unsaved(self) -> None:
        """Show the current state as differing from the plan file (no undo step): a restored
        autosave, or a plan read from somewhere other than its own file. Undo cannot reach a
        saved state afterwards; the next :meth:`mark_saved` clears the mark."""
        self.history.mark_unreachable()
        self._history_event()

    def mark_saved(self, path: str | Path) -> None:
        """Record that the current state was written to ``path``."""
        self.path = Path(path)
        self.history.mark_clean()
        self._history_event()


def _check_verification_only(before: Plan, after: Plan | None, what: frozenset[str]) -> None:
    """Refuse (PlanLockedError) a change of the approved plan ``before`` that touches more
    than its verification records (``after``: the result, checked field by field too)."""
    if not what <= VERIFICATION_RECORDS or (
        after is not None and not _same_approved_content(before, after)
    ):
        raise PlanLockedError(
            f"plan revision {before.revision} is approved and read-only; start a new "
            "revision to edit it (only its post-op registration may be attached)"
        )


def _same_approved_content(a: Plan, b: Plan) -> bool:
    """True when ``b`` differs from ``a`` at most in its verification records (a verification
    edit shares every other value; structures compare by identity)."""
    for f in fields(a):
        if f.name in VERIFICATION_RECORDS:
            continue
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if va is not vb and va != vb:
            return False
    return True


def current_user() -> str:
    """The user name of this process (``"unknown"`` when the system has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_user = current_user
