"""Autosave and crash recovery: a crashed session's work comes back from the autosave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from planner.plan.commands import EditMask, UpdateStructure
from planner.plan.document import PlanDocument
from planner.plan.plan_file import load_plan, save_plan
from planner.plan.recovery import (
    Autosaver,
    SessionLock,
    autosave_path,
    discard,
    find_recovery,
    find_unsaved_recoveries,
    keep_both,
    restore,
)
from tests.plan_builders import full_plan, plans_equal

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _open(tmp_path: Path) -> tuple[PlanDocument, Path]:
    path = save_plan(full_plan(), tmp_path / "p.seedplan")
    doc = PlanDocument(load_plan(path).plan, path=path)
    return doc, path


def test_autosave_is_debounced_and_removed_on_save(tmp_path: Path) -> None:
    doc, path = _open(tmp_path)
    original = path.read_bytes()
    clock = FakeClock()
    auto = Autosaver(doc, delay_s=30.0, clock=clock)
    assert auto.tick() is None  # nothing edited
    sid = doc.plan.structures[0].id
    doc.execute(UpdateStructure(sid, name="PTV-edited"))
    clock.t += 10
    assert auto.tick() is None  # too soon after the edit
    doc.execute(EditMask(sid, (slice(0, 1), slice(0, 2), slice(0, 2)), True))
    clock.t += 29
    assert auto.tick() is None  # the second edit restarted the delay
    clock.t += 2
    written = auto.tick()
    assert written == autosave_path(path) and written.is_file()
    assert plans_equal(load_plan(written).plan, doc.plan)
    assert path.read_bytes() == original  # never written over the user's file
    assert auto.tick() is None  # nothing new since
    save_plan(doc.plan, path, force=True)
    doc.mark_saved(path)
    assert not written.exists()  # a clean save removes the autosave


def test_crashed_session_is_recovered(tmp_path: Path) -> None:
    path = save_plan(full_plan(), tmp_path / "p.seedplan")
    saved = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import time
        from planner.plan.commands import EditMask, UpdateStructure
        from planner.plan.document import PlanDocument
        from planner.plan.plan_file import load_plan
        from planner.plan.recovery import Autosaver, SessionLock
        path = {str(path)!r}
        lock = SessionLock(path).acquire()
        doc = PlanDocument(load_plan(path).plan, path=path)
        auto = Autosaver(doc, delay_s=0.0)
        sid = doc.plan.structures[1].id
        doc.execute(UpdateStructure(sid, name="Cord"))
        with doc.stroke("Paint"):
            for k in range(5):
                doc.execute(EditMask(sid, (slice(2, 3), slice(k, k + 4), slice(0, 4)), True))
        assert auto.tick() is not None
        print("AUTOSAVED", flush=True)
        time.sleep(60)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert child.stdout.readline().strip() == "AUTOSAVED"
        # While that session runs, its work is not offered to anyone else...
        assert find_recovery(path) is None
        with pytest.raises(InputError, match="open in another SeedPlan session"):
            SessionLock(path).acquire()
        os.kill(child.pid, signal.SIGKILL)  # ... then it crashes
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert path.read_bytes() == saved  # the user's file was never touched
    candidate = find_recovery(path)
    assert candidate is not None and candidate.newer_than_plan
    assert "unsaved work on" in candidate.describe()
    plan = restore(candidate)
    cord = plan.structure("st-000000000001")
    assert cord.name == "Cord"
    assert cord.mask[2, 0:8, 0:4].all()
    expected = full_plan().structures[1].mask.copy()
    expected[2, 0:8, 0:4] = True
    np.testing.assert_array_equal(cord.mask, expected)
    # Keep both: the autosave becomes a plan file of its own; the saved plan is unchanged.
    copy = keep_both(candidate)
    assert copy.parent == path.parent and "recovered" in copy.name
    assert plans_equal(load_plan(copy).plan, plan)
    assert path.read_bytes() == saved and find_recovery(path) is None
    # The new session takes the stale lock.
    SessionLock(path).acquire().release()


def test_discard_and_nothing_to_recover(tmp_path: Path) -> None:
    doc, path = _open(tmp_path)
    auto = Autosaver(doc, delay_s=0.0)
    doc.execute(UpdateStructure(doc.plan.structures[0].id, name="X"))
    auto.flush()
    auto.close()  # as if the session died (no lock: never acquired)
    candidate = find_recovery(path)
    assert candidate is not None
    discard(candidate)
    assert not autosave_path(path).exists() and find_recovery(path) is None
    # An autosave identical to the saved plan is nothing to recover.
    save_plan(doc.plan, autosave_path(path).with_suffix(".seedplan"), force=True)
    os.replace(autosave_path(path).with_suffix(".seedplan"), autosave_path(path))
    save_plan(doc.plan, path, force=True)
    assert find_recovery(path) is None


def test_never_saved_plan_is_recovered_from_the_recovery_folder(tmp_path: Path) -> None:
    doc = PlanDocument(full_plan())
    auto = Autosaver(doc, delay_s=0.0)
    doc.execute(UpdateStructure(doc.plan.structures[2].id, name="Skin"))
    written = auto.flush()
    assert written is not None and written.parent == tmp_path / "state" / "seedplan" / "recovery"
    auto.close()
    found = find_unsaved_recoveries()
    assert len(found) == 1 and found[0].plan_path is None
    assert restore(found[0]).structures[2].name == "Skin"


def test_approved_plan_round_trips_read_only_and_its_approval_is_autosaved(
    tmp_path: Path,
) -> None:
    doc = PlanDocument(full_plan(), path=tmp_path / "a.seedplan")
    auto = Autosaver(doc, delay_s=0.0)
    doc.approve(user="physicist")
    # An unsaved approval is autosaved like any other change (it comes back approved).
    assert doc.is_modified
    written = auto.flush()
    assert written == autosave_path(doc.path)
    assert load_plan(written).plan.status == "approved"
    path = save_plan(doc.plan, doc.path)
    doc.mark_saved(path)
    loaded = load_plan(path).plan
    assert (loaded.status, loaded.approved_by, loaded.revision) == ("approved", "physicist", 3)
    reopened = PlanDocument(loaded, path=path)
    with pytest.raises(InputError, match="approved and read-only"):
        reopened.execute(UpdateStructure(loaded.structures[0].id, name="X"))
    rev = reopened.new_revision()
    assert rev.revision == 4 and rev.status == "draft"
    assert rev.previous_sha256 == load_plan(path).content_sha256


def _record_script(path: Path) -> str:
    """A session that opens the approved plan at ``path``, attaches a registration (a
    verification record), autosaves and then waits to be killed."""
    return textwrap.dedent(
        f"""
        import time
        import numpy as np
        from planner.plan.commands import SetRegistration
        from planner.plan.document import PlanDocument
        from planner.plan.model import Registration
        from planner.plan.plan_file import load_plan
        from planner.plan.recovery import Autosaver, SessionLock
        path = {str(path)!r}
        lock = SessionLock(path).acquire()
        doc = PlanDocument(load_plan(path).plan, path=path)
        auto = Autosaver(doc, delay_s=0.0)
        m = np.eye(4)
        m[:3, 3] = (2.0, -1.5, 3.0)
        rec = Registration("1.2.826.0.1.9", "1.2.826.0.1.8", "ab" * 32, m,
                           registered_utc="2026-12-02T05:00:00Z", registered_by="physicist")
        doc.execute(SetRegistration(rec))
        assert doc.plan.is_approved and doc.is_modified
        assert auto.tick() is not None
        print("AUTOSAVED", flush=True)
        time.sleep(60)
        """
    )


def test_crash_after_attaching_a_registration_to_an_approved_plan_is_recovered(
    tmp_path: Path,
) -> None:
    """Fault test: the session that attached a verification record to an approved plan is
    killed before saving; the autosave brings the record back on a plan still approved, with
    the same approved content."""
    from planner.plan.plan_file import approved_content_sha256

    doc = PlanDocument(full_plan(), path=tmp_path / "a.seedplan")
    doc.approve(user="physicist")
    path = save_plan(doc.plan, doc.path)
    saved = path.read_bytes()
    approved = load_plan(path).plan
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _record_script(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "AUTOSAVED"
        assert find_recovery(path) is None  # that session still runs
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert path.read_bytes() == saved
    candidate = find_recovery(path)
    assert candidate is not None and candidate.revision == approved.revision
    plan = restore(candidate)
    assert plan.is_approved and plan.approved_by == "physicist"
    assert plan.approved_utc == approved.approved_utc and plan.revision == approved.revision
    rec = plan.registration
    assert rec is not None and rec.registered_by == "physicist"
    np.testing.assert_allclose(rec.translation_mm, [2.0, -1.5, 3.0])
    assert approved_content_sha256(plan) == approved_content_sha256(approved)
    # The restored plan is as approved as before: edits other than records are refused.
    with pytest.raises(InputError, match="approved and read-only"):
        PlanDocument(plan, path=path).execute(UpdateStructure(plan.structures[0].id, name="X"))
