"""Evented needle table for the GUI: rows and warnings kept up to date with the document.

:class:`NeedleChecks` holds one :class:`~planner.plan.needles.NeedleRow` per needle and
follows a :class:`~planner.plan.document.PlanDocument` (:meth:`NeedleChecks.attach`). On each
change it recomputes only what can have changed: the geometry, depth and structure/bone/body
warnings of needles whose entry or tip moved (a few ms each; structure borders and the body
outline are cached), the seed counts of needles whose seeds changed, and the needle-crossing
warnings of every needle (segment distances: cheap). Everything is recomputed when the
structures or the CT change. ``events.rows_changed(frozenset of needle ids)`` is emitted with the
ids whose rows changed (removed needles included).
"""

from __future__ import annotations

from dataclasses import replace

from psygnal import Signal

from planner.imaging.volume import CTVolume
from planner.plan.model import Needle, Plan
from planner.plan.needles import (
    NeedleCheckSettings,
    NeedleRow,
    _BodyLookup,
    crossing_warnings,
    needle_row,
    needle_warnings,
)

__all__ = ["NeedleChecks", "NeedleChecksEvents"]


class NeedleChecksEvents:
    rows_changed = Signal(object)  # frozenset[str] of needle ids


class NeedleChecks:
    """The needle table of a plan, kept current (module docstring)."""

    def __init__(
        self, plan: Plan, ct: CTVolume | None = None, *, settings: NeedleCheckSettings | None = None
    ) -> None:
        self.events = NeedleChecksEvents()
        self.ct = ct
        self.settings = settings or NeedleCheckSettings()
        self._plan = plan
        self._own: dict[str, tuple[Needle, NeedleRow]] = {}
        self.rows: dict[str, NeedleRow] = {}
        self._recompute_all(plan)

    @property
    def plan(self) -> Plan:
        return self._plan

    def row(self, needle_id: str) -> NeedleRow:
        return self.rows[needle_id]

    def _own_row(self, plan: Plan, n: Needle, body: _BodyLookup) -> NeedleRow:
        """Row with the needle's own warnings (no crossings)."""
        own = needle_warnings(plan, n, self.ct, settings=self.settings, others=(), _body=body)
        return needle_row(plan, n, self.ct, warnings=own, settings=self.settings, _body=body)

    def _finish(self, plan: Plan) -> dict[str, NeedleRow]:
        rows = {}
        for n in plan.needles:
            base = self._own[n.id][1]
            seeds = tuple(s.id for s in plan.seeds if s.needle_id == n.id)
            cross = crossing_warnings(n, plan.needles, settings=self.settings)
            rows[n.id] = replace(base, seed_ids=seeds, warnings=base.warnings + tuple(cross))
        return rows

    def _recompute_all(self, plan: Plan) -> None:
        body = _BodyLookup(plan, self.ct, self.settings.body_hu)
        self._own = {n.id: (n, self._own_row(plan, n, body)) for n in plan.needles}
        self._plan = plan
        self.rows = self._finish(plan)

    def sync(self, plan: Plan) -> frozenset[str]:
        """Follow ``plan``; returns (and emits) the ids of the needles whose rows changed."""
        old_rows = self.rows
        if plan.structures is not self._plan.structures or plan.ct is not self._plan.ct:
            self._recompute_all(plan)
        else:
            body = _BodyLookup(plan, self.ct, self.settings.body_hu)
            own = {}
            for n in plan.needles:
                prev = self._own.get(n.id)
                own[n.id] = (
                    prev
                    if prev is not None and prev[0] == n
                    else (
                        n,
                        self._own_row(plan, n, body),
                    )
                )
            self._own = own
            self._plan = plan
            self.rows = self._finish(plan)
        changed = frozenset(
            k for k in set(old_rows) | set(self.rows) if old_rows.get(k) != self.rows.get(k)
        )
        if changed:
            self.events.rows_changed.emit(changed)
        return changed

    def attach(self, doc: object) -> None:
        """Follow a PlanDocument: :meth:`sync` on every ``changed`` event."""
        doc.events.changed.connect(lambda ev: self.sync(ev.plan))  # type: ignore[attr-defined]
