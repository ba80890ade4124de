"""The plan document: immutable values, commands, undo/redo, strokes, transactions, events."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dose.dvh_calc import compute_dvh
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.commands import (
    AddStructure,
    EditMask,
    RemoveStructure,
    SetGoals,
    SetPrescription,
    SetStatus,
    UpdateStructure,
)
from planner.plan.document import PlanDocument, PlanLockedError
from planner.plan.dvh import structure_dvh
from planner.plan.model import Goal, Plan, Prescription


def _ct(shape=(30, 48, 40), spacing=(0.8, 0.9, 2.5)) -> CTVolume:
    g = GridGeometry.axis_aligned(shape, (-20.0, -25.0, -40.0), spacing)
    info = PatientInfo(
        patient_id="P-1",
        patient_name="TEST^PLAN",
        study_instance_uid="1.2.826.0.1.1",
        series_instance_uid="1.2.826.0.1.2",
        frame_of_reference_uid="1.2.826.0.1.3",
    )
    return CTVolume(np.zeros(g.shape_zyx, np.int16), g, info)


def _doc(n_structures: int = 2) -> PlanDocument:
    ct = _ct()
    doc = PlanDocument(Plan.new(ct))
    for k in range(n_structures):
        m = np.zeros(ct.geometry.shape_zyx, bool)
        m[5 + k : 15 + k, 10:30, 8 + k : 20 + k] = True
        doc.execute(AddStructure(f"S{k}", m, role="target" if k == 0 else "oar"))
    return doc


def test_edit_makes_a_new_plan_and_shares_the_rest() -> None:
    doc = _doc(3)
    before = doc.plan
    s0, s1, s2 = before.structures
    assert not s0.mask.flags.writeable
    with pytest.raises(ValueError):
        s0.mask[0, 0, 0] = True  # read-only: nobody can change a plan in place
    doc.execute(EditMask(s1.id, (slice(0, 2), slice(0, 3), slice(0, 4)), True))
    after = doc.plan
    assert after is not before
    assert after.structures[0] is s0 and after.structures[2] is s2  # shared, not copied
    assert after.structures[1].mask is not s1.mask
    assert not s1.mask[0:2, 0:3, 0:4].any()  # the old plan is unchanged
    assert after.structures[1].mask[0:2, 0:3, 0:4].all()
    assert after.structures[1].voxel_count == s1.voxel_count + 24
    assert after.structures[1].voxel_count == int(np.count_nonzero(after.structures[1].mask))
    for k in (0, 1, 7, 19):
        np.testing.assert_array_equal(
            after.structures[1].slice_mask(k), after.structures[1].mask[k]
        )
    # A paint tool's (box, values) patch is an EditMask.
    patch = ((slice(3, 4), slice(5, 7), slice(5, 9)), np.ones((1, 2, 4), bool))
    doc.execute(EditMask.from_patch(s2.id, patch, label="Brush"))
    assert doc.plan.structures[2].mask[3, 5:7, 5:9].all() and doc.history.undo_label == "Brush"


def test_stroke_is_one_step_and_undo_redo_are_exact() -> None:
    doc = _doc(1)
    sid = doc.plan.structures[0].id
    original = doc.plan.structures[0].mask.copy()
    rng = np.random.default_rng(7)
    n_steps = len(doc.history.undo_steps)
    with doc.stroke("Paint"):
        for _ in range(40):  # overlapping random dabs, paint and erase
            z, y, x = rng.integers(0, 25), rng.integers(0, 40), rng.integers(0, 32)
            box = (slice(z, z + 3), slice(y, y + 6), slice(x, x + 6))
            doc.execute(EditMask(sid, box, rng.random((3, 6, 6)) < 0.6))
    assert len(doc.history.undo_steps) == n_steps + 1
    painted = doc.plan.structures[0].mask.copy()
    assert not np.array_equal(painted, original)
    assert doc.undo()
    np.testing.assert_array_equal(doc.plan.structures[0].mask, original)
    assert doc.plan.structures[0].voxel_count == int(original.sum())
    assert doc.redo()
    np.testing.assert_array_equal(doc.plan.structures[0].mask, painted)
    assert doc.plan.structures[0].voxel_count == int(painted.sum())


def test_merge_key_merges_and_other_edits_break_the_chain() -> None:
    doc = _doc(1)
    sid = doc.plan.structures[0].id
    n0 = len(doc.history.undo_steps)
    for k in range(3):
        doc.execute(EditMask(sid, (slice(0, 1), slice(k, k + 1), slice(0, 1)), True, merge_key="a"))
    assert len(doc.history.undo_steps) == n0 + 1
    doc.execute(UpdateStructure(sid, name="GTV"))
    doc.execute(EditMask(sid, (slice(1, 2), slice(0, 1), slice(0, 1)), True, merge_key="a"))
    assert len(doc.history.undo_steps) == n0 + 3
    doc.undo()
    doc.undo()
    assert doc.plan.structures[0].name == "S0"
    assert doc.plan.structures[0].mask[0, 0:3, 0].all()


def test_transaction_groups_and_rolls_back() -> None:
    doc = _doc(1)
    sid = doc.plan.structures[0].id
    start = doc.plan
    n0 = len(doc.history.undo_steps)
    with doc.transaction("Prescribe"):
        doc.execute(UpdateStructure(sid, name="PTV", role="target"))
        doc.execute(SetPrescription(Prescription(110.0, sid)))
    assert len(doc.history.undo_steps) == n0 + 1
    assert doc.history.undo_label == "Prescribe"
    doc.undo()
    assert doc.plan.prescription is None and doc.plan.structures[0].name == "S0"
    kinds: list[str] = []
    doc.events.changed.connect(lambda e: kinds.append(e.kind))
    with pytest.raises(RuntimeError), doc.transaction("Fails"):
        doc.execute(UpdateStructure(sid, name="X"))
        doc.execute(EditMask(sid, (slice(0, 2), slice(0, 2), slice(0, 2)), True))
        raise RuntimeError("boom")
    assert kinds[-1] == "rollback"
    assert doc.plan.structures[0].name == "S0"
    np.testing.assert_array_equal(doc.plan.structures[0].mask, start.structures[0].mask)
    assert len(doc.history.undo_steps) == n0


def test_refused_edit_leaves_plan_and_history_alone() -> None:
    doc = _doc(2)
    before, n0 = doc.plan, len(doc.history.undo_steps)
    with pytest.raises(ValueError, match="already has a structure called 'S0'"):
        doc.execute(UpdateStructure(doc.plan.structures[1].id, name="s0"))
    with pytest.raises(ValueError, match="outside the grid"):
        doc.execute(EditMask(before.structures[0].id, (slice(0, 99), slice(0, 1), slice(0, 1)), 1))
    assert doc.plan is before and len(doc.history.undo_steps) == n0


def test_remove_structure_takes_goals_and_prescription_and_undo_restores_them() -> None:
    doc = _doc(2)
    s0, s1 = doc.plan.structures
    doc.execute(SetPrescription(Prescription(110.0, s0.id)))
    goal = Goal("gl-1", s1.id, "D0.1cc", "<=", 50.0, "Gy")
    doc.execute(SetGoals([goal, Goal("gl-2", s0.id, "D90", ">=", 110.0, "Gy")]))
    doc.execute(RemoveStructure(s0.id))
    assert doc.plan.prescription is None
    assert [g.id for g in doc.plan.goals] == ["gl-1"]
    assert [s.name for s in doc.plan.structures] == ["S1"]
    doc.undo()
    assert [s.name for s in doc.plan.structures] == ["S0", "S1"]
    np.testing.assert_array_equal(doc.plan.structures[0].mask, s0.mask)
    assert doc.plan.prescription == Prescription(110.0, s0.id)
    assert len(doc.plan.goals) == 2


def test_events_say_what_changed() -> None:
    doc = _doc(2)
    seen = []
    doc.events.changed.connect(seen.append)
    flips: list[bool] = []
    doc.events.modified_changed.connect(flips.append)
    doc.mark_saved("/tmp/x.seedplan")
    sid = doc.plan.structures[1].id
    doc.execute(EditMask(sid, (slice(0, 1), slice(0, 1), slice(0, 1)), True))
    assert seen[-1].kind == "edit" and seen[-1].what == {"masks"}
    assert seen[-1].structure_ids == {sid}
    assert seen[-1].plan is doc.plan
    assert flips == [False, True] and doc.is_modified
    doc.undo()
    assert seen[-1].kind == "undo" and seen[-1].structure_ids == {sid}
    assert flips == [False, True, False] and not doc.is_modified


def test_approved_plan_is_read_only_and_new_revision_starts_a_draft() -> None:
    doc = _doc(1)
    sid = doc.plan.structures[0].id
    with pytest.raises(Exception, match="without a prescription"):
        doc.approve(user="dr")
    doc.execute(SetPrescription(Prescription(110.0, sid)))
    doc.execute(SetStatus("reviewed"))
    approved = doc.approve(user="dr.who")
    assert approved.status == "approved" and approved.approved_by == "dr.who"
    assert not doc.history.can_undo  # approval locks the history
    with pytest.raises(PlanLockedError, match="approved and read-only"):
        doc.execute(UpdateStructure(sid, name="X"))
    rev2 = doc.new_revision()
    assert (rev2.revision, rev2.status, rev2.approved_by) == (2, "draft", "")
    assert len(rev2.previous_sha256) == 64
    doc.execute(UpdateStructure(sid, name="X"))
    assert doc.plan.structures[0].name == "X"


def test_history_memory_follows_the_edit_not_the_volume() -> None:
    ct = _ct(shape=(60, 256, 256), spacing=(0.8, 0.8, 2.5))
    masks = [np.zeros(ct.geometry.shape_zyx, bool) for _ in range(3)]
    for k, m in enumerate(masks):
        m[20:40, 50 + 40 * k : 90 + 40 * k, 60:140] = True
    doc = PlanDocument(Plan.new(ct))
    for k, m in enumerate(masks):
        doc.execute(AddStructure(f"S{k}", m))
    base = doc.history.nbytes
    sid = doc.plan.structures[1].id
    for stroke in range(100):
        with doc.stroke("Brush"):
            for dab in range(5):  # a 12×12-voxel brush moved along one slice
                y, x = 40 + dab * 3, 30 + stroke
                doc.execute(
                    EditMask(sid, (slice(30, 31), slice(y, y + 12), slice(x, x + 12)), True)
                )
    assert len(doc.history.undo_steps) == 3 + 100
    per_stroke = (doc.history.nbytes - base) / 100
    mask_bytes = masks[0].nbytes  # 3.9 MB per full mask
    # A stroke's union box is 1×24×12 voxels: 2 × 36 packed bytes + bookkeeping.
    assert per_stroke < 1000, per_stroke
    assert doc.history.nbytes < 0.05 * mask_bytes * 3
    # The edited structure stores its extent only, not the grid.
    assert doc.plan.structures[1].crop.nbytes < 0.1 * mask_bytes


def test_volume_rule_structure_volume_is_the_dvh_volume() -> None:
    doc = _doc(2)
    plan = doc.plan
    g = plan.geometry
    xyz = g.voxel_centres_world()
    dose_gy = 100.0 + 2.0 * xyz[..., 0] - 1.0 * xyz[..., 2]
    for s in plan.structures:
        dvh = structure_dvh(plan, s.id, dose_gy)
        assert dvh.volume_cm3 == pytest.approx(s.volume_cm3, rel=1e-9)
        assert s.volume_cm3 == pytest.approx(
            np.count_nonzero(s.mask) * 0.8 * 0.9 * 2.5 / 1000.0, rel=1e-12
        )
        ref = compute_dvh(dose_gy, s.mask.astype(np.float32), g)
        assert dvh.volume_cm3 == pytest.approx(ref.volume_cm3, rel=1e-9)


def test_plan_is_never_attached_to_another_ct() -> None:
    from dose.errors import InputError

    ct = _ct()
    plan = Plan.new(ct)
    assert plan.check_ct(ct) == []
    other_patient = CTVolume(ct.hu, ct.geometry, replace(ct.info, patient_id="P-2"))
    with pytest.raises(InputError, match="patient ID 'P-2' is not the plan's 'P-1'"):
        plan.check_ct(other_patient, where="ct/")
    other_frame = CTVolume(ct.hu, ct.geometry, replace(ct.info, frame_of_reference_uid="9.9"))
    with pytest.raises(InputError, match=r"frame of reference 9\.9"):
        plan.check_ct(other_frame)
    g = ct.geometry
    shifted = GridGeometry(
        g.shape_zyx, g.origin_mm + np.array([0.0, 0.0, 2.5]), g.spacing_mm, g.direction
    )
    with pytest.raises(InputError, match="CT grid"):
        plan.check_ct(CTVolume(ct.hu, shifted, ct.info))
    other_series = CTVolume(ct.hu, ct.geometry, replace(ct.info, series_instance_uid="1.2.9"))
    warnings = plan.check_ct(other_series)
    assert len(warnings) == 1 and "series 1.2.9" in warnings[0]


def test_history_budget_drops_the_oldest_steps_and_tracks_the_saved_state() -> None:
    doc = _doc(1)
    sid = doc.plan.structures[0].id
    original = doc.plan.structures[0].mask.copy()
    doc.history.clear()
    doc.mark_saved("/tmp/budget.seedplan")
    one = None
    for k in range(10):
        doc.execute(EditMask(sid, (slice(k, k + 1), slice(0, 40), slice(0, 32)), True))
        one = one or doc.history.nbytes
    doc.history.max_bytes = int(3.5 * one)
    doc.execute(EditMask(sid, (slice(12, 13), slice(0, 40), slice(0, 32)), True))
    assert len(doc.history.undo_steps) == 3  # only what fits in the budget is kept
    while doc.undo():
        pass
    assert doc.is_modified  # the saved state fell out of the history: still "modified"
    mask = doc.plan.structures[0].mask
    assert mask[7, 0:40, 0:32].all()  # the dropped steps stay applied
    np.testing.assert_array_equal(mask[8:], original[8:])  # the kept ones were undone
