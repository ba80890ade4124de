"""PlanDocument.mark_unsaved: a restored autosave shows as unsaved until it is saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planner.plan.commands import AddStructure
from planner.plan.document import PlanDocument
from planner.plan.model import Plan
from tests.plan_builders import small_ct


def _doc(tmp_path: Path) -> PlanDocument:
    return PlanDocument(Plan.new(small_ct()), path=tmp_path / "p.seedplan")


def test_mark_unsaved_flags_the_plan_and_emits_once(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    flips: list[bool] = []
    history_events: list[None] = []
    doc.events.modified_changed.connect(flips.append)
    doc.events.history_changed.connect(lambda: history_events.append(None))
    assert not doc.is_modified
    doc.mark_unsaved()
    assert doc.is_modified and flips == [True] and len(history_events) == 1
    assert not doc.history.can_undo  # no undo step was made
    doc.mark_unsaved()  # already unsaved: no second flip
    assert flips == [True]
    doc.mark_saved(tmp_path / "p.seedplan")
    assert not doc.is_modified and flips == [True, False]


def test_undo_after_mark_unsaved_never_reaches_a_saved_state(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    mask = np.zeros(doc.plan.geometry.shape_zyx, bool)
    mask[2:5, 3:9, 4:8] = True
    doc.execute(AddStructure("GTV", mask, role="target"))
    doc.mark_saved(tmp_path / "p.seedplan")
    assert not doc.is_modified
    doc.mark_unsaved()
    assert doc.is_modified
    # The plan differs from its file: neither an undo nor a redo makes it "saved" again.
    assert doc.undo() and doc.is_modified
    assert doc.redo() and doc.is_modified
    assert len(doc.history.undo_steps) == 1
