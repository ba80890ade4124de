"""Needle and seed commands: undo/redo through the document's history, drags merge, files."""

from __future__ import annotations

import numpy as np
import pytest

from planner.plan.document import PlanDocument
from planner.plan.model import Needle, Seed
from planner.plan.needle_commands import (
    AddNeedle,
    AddSeedOnNeedle,
    DeleteNeedle,
    DeleteSeeds,
    LoadNeedle,
    MoveNeedle,
    MoveSeedAlongNeedle,
    RenameNeedle,
    distance_from_tip_mm,
)
from planner.plan.plan_file import load_plan, save_plan
from tests.plan_builders import full_plan, plans_equal


@pytest.fixture
def doc():
    return PlanDocument(full_plan().evolve(status="draft"))


def _needle(plan, nid):
    return next(n for n in plan.needles if n.id == nid)


def test_add_rename_delete_needle_undo_redo(doc):
    p0 = doc.plan
    doc.execute(AddNeedle((0.0, -30.0, -10.0), (0.0, 0.0, -10.0), needle_id="nd-new"))
    assert _needle(doc.plan, "nd-new").label == "N2"
    doc.execute(RenameNeedle("nd-new", "Left 1"))
    assert _needle(doc.plan, "nd-new").label == "Left 1"
    with pytest.raises(ValueError, match="another needle"):
        doc.execute(RenameNeedle("nd-new", "A"))
    doc.execute(DeleteNeedle("nd-1"))
    assert [n.id for n in doc.plan.needles] == ["nd-new"]
    assert doc.plan.seeds == ()  # the seeds on nd-1 went with it
    assert doc.undo() and len(doc.plan.seeds) == 2
    assert doc.undo() and _needle(doc.plan, "nd-new").label == "N2"
    assert doc.undo() and plans_equal(doc.plan, p0)
    assert doc.redo() and doc.redo() and doc.redo()
    assert [n.id for n in doc.plan.needles] == ["nd-new"]


def test_moving_a_needle_end_carries_its_seeds(doc):
    old = _needle(doc.plan, "nd-1")
    d_before = {s.id: distance_from_tip_mm(old, s.position_mm) for s in doc.plan.seeds}
    new_tip = (12.0, 5.0, -15.0)
    doc.execute(MoveNeedle("nd-1", tip_mm=new_tip))
    n = _needle(doc.plan, "nd-1")
    assert n.tip_mm == new_tip and n.entry_mm == old.entry_mm
    direction = np.subtract(n.tip_mm, n.entry_mm)
    direction /= np.linalg.norm(direction)
    for s in doc.plan.seeds:
        np.testing.assert_allclose(s.axis, direction, atol=1e-12)
        assert distance_from_tip_mm(n, s.position_mm) == pytest.approx(d_before[s.id], abs=1e-9)
        # On the track: no perpendicular offset.
        rel = np.subtract(s.position_mm, n.tip_mm)
        assert np.linalg.norm(rel - (rel @ direction) * direction) < 1e-9
    assert next(s for s in doc.plan.seeds if s.id == "sd-2").strength_u == 0.55  # kept


def test_a_drag_is_one_undo_step(doc):
    p0 = doc.plan
    with doc.stroke("Drag needle tip"):
        for k in range(10):
            doc.execute(MoveNeedle("nd-1", tip_mm=(2.0 + k, 5.0, -21.0)))
    assert len(doc.history.undo_steps) == 1
    assert _needle(doc.plan, "nd-1").tip_mm == (11.0, 5.0, -21.0)
    # A merge key does the same without a stroke block.
    for k in range(5):
        doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=5.0 + k, merge_key="drag-sd-1"))
    assert len(doc.history.undo_steps) == 2
    doc.undo()
    doc.undo()
    assert plans_equal(doc.plan, p0)
    assert doc.history.nbytes < 20_000


def test_seeds_along_needle_add_move_delete_load(doc):
    n = _needle(doc.plan, "nd-1")
    length = float(np.linalg.norm(np.subtract(n.tip_mm, n.entry_mm)))
    doc.execute(AddSeedOnNeedle("nd-1", 3.0, seed_id="sd-3"))
    s3 = next(s for s in doc.plan.seeds if s.id == "sd-3")
    assert distance_from_tip_mm(n, s3.position_mm) == pytest.approx(3.0)
    # Dragging past the entry clips to the track; projection of an off-track point.
    doc.execute(MoveSeedAlongNeedle("sd-3", distance_mm=length + 50.0))
    s3 = next(s for s in doc.plan.seeds if s.id == "sd-3")
    np.testing.assert_allclose(s3.position_mm, n.entry_mm, atol=1e-9)
    off = np.asarray(n.tip_mm) + np.array([3.0, 0.0, 4.0])  # 5 mm off the tip, sideways
    doc.execute(MoveSeedAlongNeedle("sd-3", position_mm=tuple(off)))
    s3 = next(s for s in doc.plan.seeds if s.id == "sd-3")
    rel = np.subtract(s3.position_mm, n.tip_mm)
    assert abs(distance_from_tip_mm(n, s3.position_mm) - distance_from_tip_mm(n, off)) < 1e-9
    assert np.linalg.norm(np.cross(rel, np.subtract(n.tip_mm, n.entry_mm))) < 1e-6
    doc.execute(DeleteSeeds(["sd-1", "sd-3"]))
    assert [s.id for s in doc.plan.seeds] == ["sd-2"]
    loading = [Seed(f"sd-l{k}", n.tip_mm, needle_id="nd-1") for k in range(3)]
    doc.execute(LoadNeedle("nd-1", loading))
    assert sorted(s.id for s in doc.plan.seeds) == ["sd-l0", "sd-l1", "sd-l2"]
    with pytest.raises(ValueError, match="on needle"):
        doc.execute(LoadNeedle("nd-1", [Seed("sd-x", (0, 0, 0))]))


def test_needle_edits_are_saved_in_the_plan_file(doc, tmp_path):
    doc.execute(AddNeedle((0.0, -30.0, -10.0), (0.0, 0.0, -10.0), name="B", needle_id="nd-b"))
    doc.execute(AddSeedOnNeedle("nd-b", 4.0, seed_id="sd-b1", strength_u=0.6))
    path = save_plan(doc.plan, tmp_path / "p.seedplan")
    back = load_plan(path).plan
    assert plans_equal(back, doc.plan)
    b1 = next(s for s in back.seeds if s.id == "sd-b1")
    assert b1.needle_id == "nd-b" and b1.strength_u == 0.6
    assert _needle(back, "nd-b") == Needle("nd-b", (0.0, -30.0, -10.0), (0.0, 0.0, -10.0), "B")


def test_set_seed_source_in_mci_with_dates(doc):
    from datetime import date

    from planner.plan.needle_commands import SetSeedSource

    doc.execute(
        SetSeedSource(
            "6711",
            activity_mci=0.6,
            calibration_date=date(2026, 11, 1),
            implant_date=date(2026, 12, 1),
        )
    )
    src = doc.plan.source
    assert src.entered_as == "mCi" and src.strength_u == pytest.approx(0.6 * 1.270)
    assert src.activity_mci == pytest.approx(0.6)
    assert len(src.model_sha256) == 64
    assert src.decay_factor == pytest.approx(0.5 ** (30 / 59.40), rel=1e-4)
    with pytest.raises(ValueError, match="plausible"):
        doc.execute(SetSeedSource("6711", strength_u=50.0))
    with pytest.raises(ValueError, match="both"):
        doc.execute(SetSeedSource("6711", strength_u=0.5, activity_mci=0.4))
    assert doc.undo() and doc.plan.source.strength_u == 0.5
