"""The post-op registration stored in the plan (issue 13): the Registration record, its command
through the history, the .seedplan 2.1/2.2 format with its strict validation and the tested
one-way migrations 2.0 → 2.1 → 2.2; on an approved plan the registration is a verification
record: attached, undone and redone without changing what was approved."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from planner.plan.commands import SetRegistration
from planner.plan.document import PlanDocument, PlanLockedError
from planner.plan.model import Registration, geometry_sha256
from planner.plan.plan_file import FORMAT_VERSION, load_plan, plan_file_bytes, save_plan
from planner.postop.register import RigidTransform
from planner.postop.verify import registration_record, stored_registration_result
from tests.plan_builders import full_plan, plans_equal, small_ct
from tests.test_plan_file import _members, _one_line_naming, _rehash, _zip

#: The format this SeedPlan writes ("2.3").
CURRENT = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"


def _transform() -> RigidTransform:
    return RigidTransform().nudged(shift_mm=(2.0, -1.5, 3.0), rotation_deg=(1.0, -0.8, 1.5))


def _record(**changes: object) -> Registration:
    post = small_ct(shape=(16, 30, 30), spacing=(0.9, 0.9, 2.0))
    rec = registration_record(
        _transform(), post, metric_value=-0.61, registered_utc="2026-12-01T21:00:00Z"
    )
    return replace(rec, **changes) if changes else rec


def test_record_is_the_transform_as_a_rigid_4x4_matrix() -> None:
    rec = _record()
    t = _transform()
    m = rec.matrix
    assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1])
    np.testing.assert_allclose(m[:3, :3], t.matrix)
    np.testing.assert_allclose(rec.translation_mm, t.translation_mm)
    p = np.array([[10.0, -20.0, 5.0], [0.0, 0.0, 0.0]])
    homogeneous = np.c_[p, np.ones(len(p))] @ m.T
    np.testing.assert_allclose(homogeneous[:, :3], t.apply(p))
    back = stored_registration_result(rec).transform
    np.testing.assert_allclose(back.apply(p), t.apply(p), atol=1e-12)
    post = small_ct(shape=(16, 30, 30), spacing=(0.9, 0.9, 2.0))
    assert rec.postop_geometry_sha256 == geometry_sha256(post.geometry)
    assert rec.matches(post) and not rec.matches(small_ct())
    assert (rec.method, rec.metric_value, rec.nudged) == ("mattes-mi-bone", -0.61, False)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.eye(3), "must be 4×4"),
        (np.diag([2.0, 1.0, 1.0, 1.0]), "not rigid"),
        (np.diag([-1.0, 1.0, 1.0, 1.0]), "not rigid"),  # a reflection is not a rotation
        (np.r_[np.eye(4)[:3], [[0.0, 0.0, 0.1, 1.0]]], "not rigid"),
        (np.where(np.eye(4) > 0, np.nan, 0.0), "finite"),
    ],
)
def test_record_refuses_a_bad_matrix(matrix, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _record(matrix_lps_mm=matrix)


def test_round_trip_keeps_the_registration(tmp_path: Path) -> None:
    plan = full_plan().evolve(registration=_record(nudged=True))
    path = save_plan(plan, tmp_path / "p.seedplan")
    loaded = load_plan(path)
    assert loaded.format_version == "2.3" == CURRENT
    assert plans_equal(plan, loaded.plan)
    assert loaded.plan.registration == plan.registration
    assert loaded.plan.registration.nudged is True
    # Without a registration the key is stored as null.
    doc = json.loads(_members(plan_file_bytes(full_plan()))["plan.json"])
    assert doc["registration"] is None


def test_set_registration_is_one_undoable_step() -> None:
    doc = PlanDocument(full_plan())
    first, second = _record(), _record(nudged=True, method="mattes-mi-bone")
    doc.execute(SetRegistration(first))
    assert doc.plan.registration == first and doc.is_modified
    # Consecutive nudges of one review (same merge key) are one step.
    key = ("registration", 1)
    doc.execute(SetRegistration(second, label="Correct registration", merge_key=key))
    doc.execute(
        SetRegistration(replace(second, matrix_lps_mm=RigidTransform().matrix4()), merge_key=key)
    )
    assert doc.plan.registration.translation_mm.tolist() == [0.0, 0.0, 0.0]
    assert doc.undo() and doc.plan.registration == first
    assert doc.undo() and doc.plan.registration is None
    assert not doc.history.can_undo
    assert doc.redo() and doc.plan.registration == first


def test_events_name_the_registration() -> None:
    """Setting it, undoing it and loading a plan all say "registration" changed (a view of the
    registration listens for that name only)."""
    doc = PlanDocument(full_plan())
    seen: list = []
    doc.events.changed.connect(seen.append)
    doc.execute(SetRegistration(_record()))
    assert doc.undo()
    doc.replace_plan(full_plan().evolve(registration=_record(nudged=True)))
    assert [e.kind for e in seen] == ["edit", "undo", "load"]
    assert all("registration" in e.what for e in seen)
    assert seen[-1].plan.registration.nudged


def _format_2_0_file(plan) -> bytes:
    """A plan file exactly as SeedPlan wrote format 2.0 (no registration key)."""
    members = _members(plan_file_bytes(plan))
    doc = json.loads(members["plan.json"])
    assert doc.pop("registration") is None
    assert doc.pop("verification") is None  # a 2.3 field
    members["plan.json"] = json.dumps(doc).encode()
    return _zip(_rehash(members, format_version="2.0"))


def test_format_2_0_is_migrated_and_saved_as_current(tmp_path: Path) -> None:
    plan = full_plan(random_masks=True)
    path = tmp_path / "old.seedplan"
    data = _format_2_0_file(plan)
    path.write_bytes(data)
    loaded = load_plan(path)
    assert loaded.migrated and loaded.read_version == "2.0" and loaded.format_version == CURRENT
    assert loaded.plan.registration is None and plans_equal(loaded.plan, plan)
    assert path.read_bytes() == data  # the file itself is never changed on load
    out = save_plan(loaded.plan, tmp_path / "new.seedplan")
    assert json.loads(_members(out.read_bytes())["manifest.json"])["format_version"] == CURRENT
    assert plans_equal(load_plan(out).plan, plan)
    # A 2.0 file cannot carry the 2.1 field.
    members = _members(data)
    doc = json.loads(members["plan.json"])
    doc["registration"] = None
    members["plan.json"] = json.dumps(doc).encode()
    bad = tmp_path / "mixed.seedplan"
    bad.write_bytes(_zip(_rehash(members)))
    with pytest.raises(InputError, match=r"format 2\.0.*'registration'") as exc:
        load_plan(bad)
    _one_line_naming(exc, bad)


def _set(path: list[object], value: object):
    def edit(reg: dict) -> None:
        target = reg
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["matrix_lps_mm"].pop(), r"registration.matrix_lps_mm: expected a 4×4"),
        (_set(["matrix_lps_mm", 1], [0, 1, 0]), r"matrix_lps_mm\[1\]: expected 4 numbers"),
        (_set(["matrix_lps_mm", 0, 0], 2.0), r"registration.matrix_lps_mm: .*not rigid"),
        (_set(["matrix_lps_mm", 3, 1], 0.5), r"registration.matrix_lps_mm: .*not rigid"),
        (_set(["matrix_lps_mm", 2, 3], float("nan")), r"matrix_lps_mm\[2\]\[3\]: nan"),
        (_set(["matrix_lps_mm", 2, 2], "1"), r"matrix_lps_mm\[2\]\[2\]: expected a number"),
        (_set(["method"], "elastix"), r"registration.method: 'elastix' is not one of"),
        (_set(["nudged"], "yes"), r"registration.nudged: expected true or false"),
        (_set(["metric_value"], float("inf")), r"registration.metric_value"),
        (_set(["postop_geometry_sha256"], "abc"), r"registration.postop_geometry_sha256"),
        (_set(["registered_utc"], "yesterday"), r"registration.registered_utc"),
        (_set(["registered_by"], 7), r"registration.registered_by"),
        (_set(["registered_by"], "x" * 300), r"registration.registered_by"),
        (lambda r: r.pop("registered_by"), r"registration: missing key\(s\) 'registered_by'"),
        (_set(["colour"], "red"), r"registration: unknown key\(s\) 'colour'"),
        (lambda r: r.pop("nudged"), r"registration: missing key\(s\) 'nudged'"),
    ],
)
def test_strict_validation_of_the_registration(tmp_path: Path, edit, message: str) -> None:
    members = _members(plan_file_bytes(full_plan().evolve(registration=_record())))
    doc = json.loads(members["plan.json"])
    edit(doc["registration"])
    members["plan.json"] = json.dumps(doc).encode()  # NaN/inf are written as JSON literals
    path = tmp_path / "bad.seedplan"
    path.write_bytes(_zip(_rehash(members)))
    with pytest.raises(InputError, match=message) as exc:
        load_plan(path)
    _one_line_naming(exc, path)


def test_newer_format_is_still_refused(tmp_path: Path) -> None:
    members = _members(plan_file_bytes(full_plan().evolve(registration=_record())))
    newer = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1] + 1}"
    path = tmp_path / f"v{newer}.seedplan"
    path.write_bytes(_zip(_rehash(members, format_version=newer)))
    with pytest.raises(InputError, match=re.escape(f"newer SeedPlan (plan format {newer}")) as exc:
        load_plan(path)
    _one_line_naming(exc, path)


# ---------------------------------------------------------------- approved plans
def _registration_block_nulled(plan_json: bytes) -> bytes:
    """plan.json with its top-level ``"registration": {…}`` block written as ``null`` (the
    file is indented by 1 with sorted keys: the block ends at the first line ``" }"``)."""
    lines = plan_json.decode("utf-8").splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if line.startswith(' "registration": '))
    if not lines[i].rstrip().endswith("{"):
        return plan_json
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(" }"))
    comma = "," if lines[j].rstrip().endswith(",") else ""
    return "".join([*lines[:i], f' "registration": null{comma}\n', *lines[j + 1 :]]).encode()


def test_registration_is_a_verification_record_of_an_approved_plan(tmp_path: Path) -> None:
    """Post-implant verification follows approval: the registration is attached to the
    approved revision (one undoable step, who and when in the record), nothing approved
    changes (plan.json byte for byte outside the record, every mask member, the approved
    content hash), undo gives back the very file bytes, every other edit is refused."""
    from planner.plan.commands import SetNeedlesAndSeeds, SetPrescription, SetStatus
    from planner.plan.plan_file import approved_content_sha256, plan_content_sha256

    doc = PlanDocument(full_plan())
    doc.approve(user="physicist")
    approved = doc.plan
    approved_bytes = plan_file_bytes(approved)
    approved_sha = approved_content_sha256(approved)
    assert approved_sha == plan_content_sha256(approved)
    record = _record(registered_by="verifier")
    doc.execute(SetRegistration(record))
    plan = doc.plan
    assert plan.registration == record and plan.registration.registered_by == "verifier"
    assert plan.registration.registered_utc == "2026-12-01T21:00:00Z"
    assert (plan.status, plan.approved_by, plan.approved_utc, plan.revision) == (
        "approved",
        "physicist",
        approved.approved_utc,
        approved.revision,
    )
    for name in ("structures", "prescription", "source", "needles", "seeds", "goals", "ct"):
        assert getattr(plan, name) is getattr(approved, name), name
    assert doc.is_modified and doc.history.can_undo
    assert f"approved revision {approved.revision}" in doc.history.undo_label
    # The saved file: plan.json identical byte for byte except the record; masks identical.
    before, after = _members(approved_bytes), _members(plan_file_bytes(plan))
    assert after["plan.json"] != before["plan.json"]
    assert _registration_block_nulled(after["plan.json"]) == before["plan.json"]
    assert json.loads(after["plan.json"])["registration"]["registered_by"] == "verifier"
    masks = sorted(n for n in before if n.startswith("masks/"))
    assert masks and masks == sorted(n for n in after if n.startswith("masks/"))
    assert all(after[n] == before[n] for n in masks)
    assert approved_content_sha256(plan) == approved_sha != plan_content_sha256(plan)
    # Saved and reopened: still approved, the record kept.
    path = save_plan(plan, tmp_path / "approved.seedplan")
    reopened = load_plan(path).plan
    assert reopened.is_approved and reopened.registration == record
    assert plans_equal(reopened, plan)
    # Every other edit is still refused, and leaves the plan and its history as they were.
    for command in (
        SetPrescription(None),
        SetNeedlesAndSeeds((), ()),
        SetStatus("draft"),
    ):
        with pytest.raises(PlanLockedError, match="approved and read-only"):
            doc.execute(command)
        assert doc.plan is plan and len(doc.history.undo_steps) == 1
    # Undo and redo: the approved file's very bytes, then the record again.
    assert doc.undo() and doc.plan.registration is None and doc.plan.is_approved
    assert plan_file_bytes(doc.plan) == approved_bytes
    assert doc.redo() and doc.plan.registration == record
    # Replacing and removing it are verification edits too.
    doc.execute(SetRegistration(replace(record, nudged=True), label="Correct registration"))
    assert doc.plan.registration.nudged and doc.plan.is_approved
    doc.execute(SetRegistration(None, label="Remove registration"))
    assert plan_file_bytes(doc.plan) == approved_bytes
    # A new revision links to what was approved, whatever was attached since.
    doc.execute(SetRegistration(record))
    rev = doc.new_revision()
    assert rev.previous_sha256 == approved_sha and rev.status == "draft"
    assert rev.registration == record  # the same planning CT: the registration still holds


class _RegistrationAndSeeds:
    """A command that changes the registration and something else (never allowed on an
    approved plan)."""

    label = "Sneaky"
    merge_key = None

    def apply(self, plan):
        from planner.plan.commands import FieldChange

        after = {"registration": _record(), "seeds": ()}
        before = {"registration": plan.registration, "seeds": plan.seeds}
        return plan.evolve(**after), FieldChange(before, after)


def test_an_approved_plan_refuses_more_than_the_record() -> None:
    doc = PlanDocument(full_plan())
    doc.approve(user="physicist")
    plan = doc.plan
    with pytest.raises(PlanLockedError):
        doc.execute(_RegistrationAndSeeds())
    assert doc.plan is plan and not doc.history.can_undo


def test_record_names_who_registered() -> None:
    from planner.plan.document import current_user

    post = small_ct(shape=(16, 30, 30), spacing=(0.9, 0.9, 2.0))
    assert registration_record(_transform(), post).registered_by == current_user() != ""
    assert registration_record(_transform(), post, registered_by="dr x").registered_by == "dr x"


def _format_2_1_file(plan) -> bytes:
    """A plan file exactly as SeedPlan wrote format 2.1 (no registered_by)."""
    members = _members(plan_file_bytes(plan))
    doc = json.loads(members["plan.json"])
    assert doc.pop("verification") is None  # a 2.3 field
    if doc["registration"] is not None:
        doc["registration"].pop("registered_by")
    members["plan.json"] = json.dumps(doc).encode()
    return _zip(_rehash(members, format_version="2.1"))


def test_format_2_1_is_migrated_to_current(tmp_path: Path) -> None:
    plan = full_plan().evolve(registration=_record(nudged=True, registered_by="someone"))
    path = tmp_path / "v21.seedplan"
    data = _format_2_1_file(plan)
    path.write_bytes(data)
    loaded = load_plan(path)
    assert loaded.migrated and loaded.read_version == "2.1" and loaded.format_version == CURRENT
    assert loaded.plan.registration == replace(plan.registration, registered_by="")
    assert plans_equal(loaded.plan, plan.evolve(registration=loaded.plan.registration))
    assert path.read_bytes() == data
    # A 2.1 file without a registration reads as one without.
    none = tmp_path / "none.seedplan"
    none.write_bytes(_format_2_1_file(full_plan()))
    assert load_plan(none).plan.registration is None
    # A 2.1 file cannot carry the 2.2 field.
    members = _members(plan_file_bytes(plan))
    bad = tmp_path / "mixed.seedplan"
    bad.write_bytes(_zip(_rehash(members, format_version="2.1")))
    with pytest.raises(InputError, match=r"format 2\.1.*registered_by") as exc:
        load_plan(bad)
    _one_line_naming(exc, bad)
