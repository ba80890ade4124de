"""Autosave and crash recovery (Qt-free; the GUI's restore dialog calls this).

Files, beside the plan ``x.seedplan`` (or, for a plan never saved, in the recovery folder
``$XDG_STATE_HOME/seedplan/recovery/<plan uid>.seedplan…``):

``x.seedplan.autosave``
    A complete plan file (same format, same atomic and verified writer) written a short while
    after the last edit (:class:`Autosaver`); never the user's file. Removed when the plan is
    saved (the document becomes clean) or the autosave is discarded.
``x.seedplan.lock``
    JSON ``{pid, host, user, started_utc}`` while a session has the plan open
    (:class:`SessionLock`). A lock whose process is gone (same host) is stale: that session
    crashed.

On start, :func:`find_recovery` (for a plan being opened) or :func:`find_unsaved_recoveries`
(plans never saved) return what a crashed session left: an autosave whose lock is stale or
missing and whose content differs from the saved plan. The user then chooses
:func:`restore` (open the autosave's plan; it stays on disk until the plan is saved),
:func:`discard` (delete it), or :func:`keep_both` (rename it to a plan file of its own).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dose.errors import InputError
from planner.plan.clock import utc_now
from planner.plan.document import PlanChanged, PlanDocument
from planner.plan.model import Plan
from planner.plan.plan_file import PLAN_SUFFIX, load_plan, write_plan_file

__all__ = [
    "AUTOSAVE_SUFFIX",
    "DEFAULT_AUTOSAVE_DELAY_S",
    "LOCK_SUFFIX",
    "Autosaver",
    "RecoveryCandidate",
    "SessionLock",
    "autosave_path",
    "discard",
    "find_recovery",
    "find_unsaved_recoveries",
    "keep_both",
    "lock_path",
    "recovery_dir",
    "restore",
]

AUTOSAVE_SUFFIX = ".autosave"
LOCK_SUFFIX = ".lock"
#: Seconds after the last edit before the autosave is written.
DEFAULT_AUTOSAVE_DELAY_S = 30.0


def recovery_dir() -> Path:
    """``$XDG_STATE_HOME/seedplan/recovery`` (``~/.local/state`` when the variable is unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "seedplan" / "recovery"


def _base(plan_path: Path | None, plan_uid: str) -> Path:
    if plan_path is not None:
        return Path(os.path.abspath(plan_path))
    return recovery_dir() / f"{plan_uid}{PLAN_SUFFIX}"


def autosave_path(plan_path: str | Path | None, plan_uid: str = "") -> Path:
    """Where the autosave of ``plan_path`` (or of the never-saved plan ``plan_uid``) goes."""
    base = _base(None if plan_path is None else Path(plan_path), plan_uid)
    return base.with_name(base.name + AUTOSAVE_SUFFIX)


def lock_path(plan_path: str | Path | None, plan_uid: str = "") -> Path:
    base = _base(None if plan_path is None else Path(plan_path), plan_uid)
    return base.with_name(base.name + LOCK_SUFFIX)


# ====================================================================== session lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_lock(path: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lock_is_live(path: Path) -> tuple[bool, dict | None]:  # type: ignore[type-arg]
    """(held by a running process, lock data). A lock of another host is taken as live."""
    data = _read_lock(path)
    if data is None:
        return False, None
    pid = data.get("pid")
    if not isinstance(pid, int):
        return False, data
    if data.get("host") != socket.gethostname():
        return True, data
    return _pid_alive(pid), data


class SessionLock:
    """Marks a plan as open in this process (``x.seedplan.lock``); see the module docstring."""

    def __init__(self, plan_path: str | Path | None, plan_uid: str = "") -> None:
        self.path = lock_path(plan_path, plan_uid)
        self.held = False

    def acquire(self) -> SessionLock:
        """Take the lock; InputError when another running SeedPlan holds it."""
        live, data = _lock_is_live(self.path)
        if live and data is not None and data.get("pid") != os.getpid():
            raise InputError(
                f"is open in another SeedPlan session (pid {data.get('pid')} on "
                f"{data.get('host')}, since {data.get('started_utc')})",
                self.path.with_name(self.path.name[: -len(LOCK_SUFFIX)]),
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": os.environ.get("USER", ""),
            "started_utc": utc_now(),
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, self.path)
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        data = _read_lock(self.path)
        if data is not None and data.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ====================================================================== autosave
class Autosaver:
    """Writes the document to its autosave file ``delay_s`` seconds after the last edit.

    Qt-free: the GUI calls :meth:`tick` from a timer (e.g. every second), tests pass a fake
    ``clock``. The autosave is removed when the document is saved (it becomes clean). An
    approved plan is autosaved like any other when it has unsaved changes (an approval, or a
    post-implant verification record such as an attached registration): the autosave is an
    ordinary plan file, so the restored plan is still approved, with its record and its
    approval checksum. A failed autosave never raises:
    :attr:`last_error` holds its one-line message and the next tick tries again.
    """

    def __init__(
        self,
        document: PlanDocument,
        *,
        delay_s: float = DEFAULT_AUTOSAVE_DELAY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.document = document
        self.delay_s = float(delay_s)
        self.clock = clock
        self.dirty = False
        self.last_edit: float | None = None
        self.last_error = ""
        self.written: Path | None = None
        document.events.changed.connect(self._on_changed)
        document.events.modified_changed.connect(self._on_modified)

    def close(self) -> None:
        """Stop listening (the autosave file stays, as after a crash, until saved/discarded)."""
        self.document.events.changed.disconnect(self._on_changed)
        self.document.events.modified_changed.disconnect(self._on_modified)

    @property
    def path(self) -> Path:
        return autosave_path(self.document.path, self.document.plan.plan_uid)

    def _on_changed(self, event: PlanChanged) -> None:
        if event.kind != "load" and self.document.is_modified:
            self.dirty = True
            self.last_edit = self.clock()

    def _on_modified(self, modified: bool) -> None:
        if not modified:  # saved (or back at the saved state): nothing to recover
            self.dirty = False
            self.remove()

    def remove(self) -> None:
        """Delete the autosave file(s) this session wrote."""
        for p in {self.path, *([self.written] if self.written else [])}:
            p.unlink(missing_ok=True)
        self.written = None

    def tick(self) -> Path | None:
        """Write the autosave when due; returns its path when written."""
        if not self.dirty or self.last_edit is None:
            return None
        if self.clock() - self.last_edit < self.delay_s:
            return None
        return self.flush()

    def flush(self) -> Path | None:
        """Write the autosave now if there are unsaved edits."""
        plan = self.document.plan
        if not self.dirty:
            return None
        target = self.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_plan_file(plan, target, force=True)
        except (InputError, OSError) as exc:
            self.last_error = str(exc)
            return None
        if self.written is not None and self.written != target:
            self.written.unlink(missing_ok=True)  # the plan was saved under a new name
        self.written = target
        self.dirty = False
        self.last_error = ""
        return target


# ====================================================================== recovery
@dataclass(frozen=True)
class RecoveryCandidate:
    """An autosave left by a session that did not end cleanly."""

    autosave_path: Path
    plan_path: Path | None  # the plan file it belongs to; None for a plan never saved
    autosave_utc: str
    plan_utc: str  # modification time of the plan file ("" when there is none)
    newer_than_plan: bool
    revision: int
    n_structures: int

    def describe(self) -> str:
        """One line for the restore dialog."""
        where = str(self.plan_path) if self.plan_path else "a plan that was never saved"
        age = "newer" if self.newer_than_plan else "OLDER"
        return (
            f"unsaved work on {where} (autosaved {self.autosave_utc}, {age} than the saved "
            f"plan; revision {self.revision}, {self.n_structures} structure(s))"
        )


def _mtime_utc(path: Path) -> str:
    t = path.stat().st_mtime
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _candidate(auto: Path, plan_path: Path | None) -> RecoveryCandidate | None:
    live, _ = _lock_is_live(auto.with_name(auto.name[: -len(AUTOSAVE_SUFFIX)] + LOCK_SUFFIX))
    if live:
        return None  # that session is still running
    try:
        loaded = load_plan(auto)
    except InputError:
        return None  # an unreadable autosave holds nothing to restore (it is left alone)
    newer = True
    plan_utc = ""
    if plan_path is not None and plan_path.exists():
        plan_utc = _mtime_utc(plan_path)
        newer = auto.stat().st_mtime >= plan_path.stat().st_mtime
        try:
            if load_plan(plan_path).content_sha256 == loaded.content_sha256:
                return None  # the same plan as saved: nothing was lost
        except InputError:
            pass  # a damaged plan file: the autosave is all the more worth offering
    return RecoveryCandidate(
        auto,
        plan_path,
        _mtime_utc(auto),
        plan_utc,
        newer,
        loaded.plan.revision,
        len(loaded.plan.structures),
    )


def find_recovery(plan_path: str | Path) -> RecoveryCandidate | None:
    """What a crashed session left for ``plan_path``, or None."""
    plan = Path(os.path.abspath(plan_path))
    auto = autosave_path(plan)
    return _candidate(auto, plan) if auto.is_file() else None


def find_unsaved_recoveries() -> list[RecoveryCandidate]:
    """Autosaves of never-saved plans left by crashed sessions (oldest first)."""
    folder = recovery_dir()
    if not folder.is_dir():
        return []
    out = []
    for auto in sorted(folder.glob(f"*{PLAN_SUFFIX}{AUTOSAVE_SUFFIX}"), key=os.path.getmtime):
        c = _candidate(auto, None)
        if c is not None:
            out.append(c)
    return out


def restore(candidate: RecoveryCandidate) -> Plan:
    """The autosaved plan (the autosave stays until the restored plan is saved)."""
    return load_plan(candidate.autosave_path).plan


def discard(candidate: RecoveryCandidate) -> None:
    """Delete the autosave."""
    candidate.autosave_path.unlink(missing_ok=True)


def keep_both(candidate: RecoveryCandidate) -> Path:
    """Keep the saved plan and the autosave: the autosave becomes ``x (recovered <UTC>).seedplan``
    beside the plan (or in the recovery folder for a never-saved plan); returns its path."""
    base = candidate.plan_path or candidate.autosave_path.with_name(
        candidate.autosave_path.name[: -len(AUTOSAVE_SUFFIX)]
    )
    stamp = candidate.autosave_utc.replace(":", "-").rstrip("Z")
    stem = base.name[: -len(PLAN_SUFFIX)] if base.name.endswith(PLAN_SUFFIX) else base.name
    for n in range(100):
        suffix = "" if n == 0 else f" {n + 1}"
        target = base.with_name(f"{stem} (recovered {stamp}{suffix}){PLAN_SUFFIX}")
        if not target.exists():
            break
    else:
        raise InputError("too many recovered copies beside it", base)
    try:
        os.link(candidate.autosave_path, target)  # never overwrites (fails if it exists)
        candidate.autosave_path.unlink()
    except FileExistsError:
        raise InputError("a recovered copy appeared meanwhile; try again", target) from None
    except OSError:  # no hard links on this file system
        os.rename(candidate.autosave_path, target)
    return target
