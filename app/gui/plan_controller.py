"""The Qt glue between the main window, its session and the plan being edited (a PlanDocument).

:class:`PlanController` (``window.plan_controller``) opens, creates, saves and closes plans:

* **Open** (:meth:`PlanController.open_plan`): the ``.seedplan`` file is read on a worker; its CT
  is the one shown when that CT is the plan's (patient ID, frame of reference and grid, see
  :meth:`planner.plan.model.Plan.check_ct`), else the CT at ``plan.ct.source_path`` (relative
  paths are relative to the plan file) is loaded and checked. A CT that is not the plan's is
  refused with one line; the plan is never attached to it.
* **Recovery**: an autosave left by a crashed session is offered (restore / discard / keep both,
  :mod:`app.gui.dialogs.recovery`) before the plan is shown; at start-up the autosaves of plans
  never saved are offered too (:meth:`PlanController.offer_unsaved_recoveries`).
* **New** (:meth:`PlanController.new_plan`): a draft on the shown CT with the spine defaults GTV,
  PTV, SpinalCord, SpinalCanal (filled from the case's own masks of those names when asked).
* **Save / Save as**: atomic and verified (:func:`planner.plan.plan_file.save_plan`).
* **Autosave**: :class:`planner.plan.recovery.Autosaver` ticked by a 1 s QTimer writes
  ``x.seedplan.autosave`` :data:`AUTOSAVE_DELAY_S` after the last edit; a
  :class:`~planner.plan.recovery.SessionLock` marks the plan as open in this process.
* **Approved plans** are read-only: :meth:`PlanController.ensure_editable` offers a new revision.
* **Undo/Redo** act on the document's own history (no QUndoStack).

Every plan change goes through ``session.set_document`` (the contract the planning and workflow
parts listen to). The title bar and the header show patient, plan, revision, status and an
unsaved mark.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.gui.window_protocols import SessionWindow, StatusWindow
from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.open_case import OpenedCase, open_case
from planner.plan.clock import utc_now
from planner.plan.document import PlanDocument
from planner.plan.model import Plan, Structure, new_id
from planner.plan.plan_ct import ct_reference_at
from planner.plan.plan_file import PLAN_SUFFIX, LoadedPlan, load_plan, save_plan
from planner.plan.recovery import (
    Autosaver,
    RecoveryCandidate,
    SessionLock,
    discard,
    find_recovery,
    find_unsaved_recoveries,
    keep_both,
    restore,
)

if TYPE_CHECKING:
    from app.gui.panels.header_bar import HeaderBar
    from app.gui.settings import Settings

__all__ = ["AUTOSAVE_DELAY_S", "SPINE_DEFAULTS", "CaseWindow", "PlanController", "resolve_ct_path"]

#: Seconds after the last edit before the recovery file is written ("a short while").
AUTOSAVE_DELAY_S = 10.0
#: The default structures of a new spine plan: (name, role, colour).
SPINE_DEFAULTS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("GTV", "target", (255, 0, 0)),
    ("PTV", "target", (255, 128, 0)),
    ("SpinalCord", "oar", (255, 255, 0)),
    ("SpinalCanal", "oar", (0, 200, 255)),
)


def resolve_ct_path(plan: Plan, plan_path: Path) -> Path | None:
    """Where the plan's CT is: ``plan.ct.source_path`` (relative to the plan's folder when it
    is relative); None when the plan names none."""
    source = plan.ct.source_path
    if not source:
        return None
    p = Path(source).expanduser()
    return p if p.is_absolute() else (plan_path.parent / p)


class CaseWindow(SessionWindow, StatusWindow, Protocol):
    """What the plan controller uses of its window (the main window, also the parent of its
    dialogs): the session and the settings, the title bar, the header and the status bar, and
    the window's loading of a case (a plan's CT is opened like any CT)."""

    settings: Settings
    header: HeaderBar

    @property
    def closing(self) -> bool: ...

    def setWindowTitle(self, title: str) -> None: ...  # noqa: N802 (Qt)

    def start_load(
        self, task: Callable[..., Any], message: str, on_done: Callable[[Any], None]
    ) -> None: ...

    def show_case(self, case: OpenedCase) -> None: ...


@dataclass
class _Opened:
    loaded: LoadedPlan
    case: OpenedCase | None  # None: the CT already shown is the plan's
    warnings: list[str]


class PlanController(QObject):
    """Plan files, autosave and recovery for one window (module docstring).

    Signal ``plan_opened(path or None)`` after a plan is shown (tests wait on it);
    ``plan_failed(message)`` when opening one failed.
    """

    plan_opened = Signal(object)
    plan_failed = Signal(str)

    def __init__(self, window: CaseWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.autosaver: Autosaver | None = None
        self.lock: SessionLock | None = None
        self.autosave_delay_s = AUTOSAVE_DELAY_S
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._listened: PlanDocument | None = None
        self._managed: PlanDocument | None = None
        self.session.document_changed.connect(self._on_session_document)

    # ------------------------------------------------------------------ state
    @property
    def document(self) -> PlanDocument | None:
        return self.session.document

    def _ask(self) -> bool:
        return self.window.interactive and not self.window.closing

    def _error(self, title: str, message: str) -> None:
        self.window.statusBar().showMessage(message, 10000)
        if self._ask():
            QMessageBox.warning(self.window, title, message)

    # ------------------------------------------------------------------ documents
    def set_document(self, document: PlanDocument | None) -> None:
        """Show ``document`` (None: no plan) as the plan this controller manages: autosave,
        session lock, the unsaved-changes question on close; then ``session.set_document``."""
        self._release()
        if document is not None:
            self.lock = SessionLock(document.path, document.plan.plan_uid)
            try:
                self.lock.acquire()
            except (InputError, OSError) as exc:  # read-only folder: edit, but say so
                self.lock = None
                self.window.statusBar().showMessage(f"no session lock: {exc}", 8000)
            self.autosaver = Autosaver(document, delay_s=self.autosave_delay_s)
            self._managed = document
        self.session.set_document(document)

    def _on_session_document(self, document: PlanDocument | None) -> None:
        """Any document change (ours or one another part set): follow its title events. A
        document set directly on the session (scripts, tests) is shown but not managed."""
        if document is not self._managed:
            self._release()
        if self._listened is not None:
            self._listened.events.modified_changed.disconnect(self._on_modified)
            self._listened.events.changed.disconnect(self._on_doc_changed)
        self._listened = document
        if document is not None:
            document.events.modified_changed.connect(self._on_modified)
            document.events.changed.connect(self._on_doc_changed)
        self.update_title()

    @property
    def manages_document(self) -> bool:
        """True when the shown plan was opened or created here (autosaved, asks on close)."""
        return self.document is not None and self.document is self._managed

    def _release(self) -> None:
        self._managed = None
        if self.autosaver is not None:
            self.autosaver.close()
            self.autosaver = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _on_modified(self, _modified: bool) -> None:
        self.update_title()

    def _on_doc_changed(self, event: object) -> None:
        kind = getattr(event, "kind", "")
        if kind in ("approve", "revision", "load"):
            self.update_title()

    def _tick(self) -> None:
        if self.autosaver is None:
            return
        written = self.autosaver.tick()
        if written is not None:
            self.window.statusBar().showMessage(f"Autosaved to {written}", 4000)
        elif self.autosaver.last_error:
            self.window.statusBar().showMessage(
                f"Autosave failed: {self.autosaver.last_error}", 8000
            )

    def update_title(self) -> None:
        """Title bar and header: patient, plan, revision, status and an unsaved mark."""
        w = self.window
        doc = self.document
        volume = self.session.volume
        parts = ["SeedPlan"]
        if volume is not None:
            name = volume.info.patient_name.replace("^", ", ") or "(no name)"
            parts.append(f"{name} ({volume.info.patient_id or 'no ID'})")
        if doc is None:
            w.header.set_plan(None)
            w.setWindowTitle(" — ".join(parts))
            return
        plan = doc.plan
        label = plan_title(doc)
        parts.append(label + (" *" if doc.is_modified else ""))
        w.setWindowTitle(" — ".join(parts))
        w.header.set_plan(label, status=plan.status, modified=doc.is_modified)

    # ------------------------------------------------------------------ editing guard
    def ensure_editable(self) -> PlanDocument | None:
        """The document if it can be edited now; an approved plan offers revision + 1."""
        doc = self.document
        if doc is None:
            self._error("No plan", "Create or open a plan first (File → New plan).")
            return None
        if not doc.plan.is_approved:
            return doc
        if self._ask():
            answer = QMessageBox.question(
                self.window,
                "Approved plan",
                f"Revision {doc.plan.revision} is approved and read-only.\n\n"
                f"Start revision {doc.plan.revision + 1} (a draft) to edit it?",
            )
            if answer == QMessageBox.StandardButton.Yes:
                doc.new_revision()
                return doc
        self.window.statusBar().showMessage(
            "The plan is approved and read-only: start a new revision to edit it", 8000
        )
        return None

    def new_revision(self) -> None:
        if self.document is not None:
            self.document.new_revision()

    def undo(self) -> None:
        """Undo one step; on an approved plan the history holds only verification-record
        steps (the document refuses anything else: the refusal goes to the status bar)."""
        doc = self.document
        if doc is not None:
            try:
                doc.undo()
            except InputError as exc:  # PlanLockedError
                self.window.statusBar().showMessage(str(exc), 8000)

    def redo(self) -> None:
        """Redo one step (as :meth:`undo`)."""
        doc = self.document
        if doc is not None:
            try:
                doc.redo()
            except InputError as exc:  # PlanLockedError
                self.window.statusBar().showMessage(str(exc), 8000)

    # ------------------------------------------------------------------ new
    def new_plan(self, *, from_case_masks: bool = False) -> PlanDocument | None:
        """A draft on the shown CT with the spine defaults (module docstring)."""
        volume = self.session.volume
        if volume is None:
            self._error("New plan", "Open a CT first: a plan is made on a CT.")
            return None
        if not self.maybe_close():
            return None
        masks = self.session.masks if from_case_masks else {}
        geometry = volume.geometry
        structures = []
        for name, role, colour in SPINE_DEFAULTS:
            m = masks.get(name)
            voxels = m.voxels if m is not None else np.zeros(geometry.shape_zyx, bool)
            origin = f"case mask {name}" if m is not None else "drawn"
            structures.append(
                Structure.from_mask(new_id("st"), name, role, voxels, geometry, colour, origin)  # type: ignore[arg-type]
            )
        plan = Plan.new(volume, structures=tuple(structures), created_utc=utc_now(), name="Plan")
        doc = PlanDocument(plan)
        self.set_document(doc)
        self.plan_opened.emit(None)
        return doc

    # ------------------------------------------------------------------ open
    def open_plan(self, path: Path | str) -> None:
        """Open a ``.seedplan`` file (and its CT when it is not the one shown) in the background."""
        path = Path(path).expanduser()
        if not self.maybe_close():
            return
        shown = self.session.volume

        def task(progress: ProgressFn, cancel: CancelFn) -> _Opened:
            report(progress, 0.0, f"reading {path.name}")
            loaded = load_plan(path)
            check_cancelled(cancel)
            plan = loaded.plan
            if shown is not None and not plan.ct.mismatches(shown)[0]:
                return _Opened(loaded, None, plan.check_ct(shown, where=path))
            ct_path = resolve_ct_path(plan, path)
            if ct_path is None or not ct_path.exists():
                where = f" ({ct_path})" if ct_path is not None else ""
                raise InputError(f"the plan's CT is not found{where}: open its CT first", path)
            from app.gui.views.vtk_data import prepare_display

            series = plan.ct.series_instance_uid if ct_path.is_dir() else None
            try:
                case = open_case(ct_path, series_uid=series, progress=progress, cancel=cancel)
            except InputError:
                if series is None:
                    raise
                case = open_case(ct_path, progress=progress, cancel=cancel)
            warnings = plan.check_ct(case.volume, where=ct_path)
            prepare_display(case.volume)
            return _Opened(loaded, case, warnings)

        self.window.start_load(task, f"Opening {path.name}…", lambda r: self._on_plan_read(path, r))

    def _on_plan_read(self, path: Path, opened: _Opened) -> None:
        if opened.case is not None:
            self.window.show_case(opened.case)
        plan = opened.loaded.plan
        doc = PlanDocument(plan, path=path)
        candidate = find_recovery(path)
        if candidate is not None:
            doc = self._offer_recovery(candidate, doc) or doc
        self.set_document(doc)
        with contextlib.suppress(OSError):
            self.window.settings.add_recent(path)
        for warning in opened.warnings:
            self.window.statusBar().showMessage(warning, 10000)
        self.plan_opened.emit(path)

    def _offer_recovery(
        self, candidate: RecoveryCandidate, doc: PlanDocument | None
    ) -> PlanDocument | None:
        """Restore / discard / keep both; returns the document to show (None: as it was)."""
        from app.gui.dialogs.recovery import RecoveryChoice, ask_recovery

        choice = ask_recovery(candidate, self.window) if self._ask() else RecoveryChoice.LATER
        if choice is RecoveryChoice.RESTORE:
            restored = PlanDocument(restore(candidate), path=candidate.plan_path)
            restored.mark_unsaved()  # it differs from the plan file until saved
            return restored
        if choice is RecoveryChoice.DISCARD:
            discard(candidate)
        elif choice is RecoveryChoice.KEEP_BOTH:
            target = keep_both(candidate)
            self.window.statusBar().showMessage(f"The recovered plan is kept as {target}", 15000)
            if self._ask():
                QMessageBox.information(
                    self.window, "Recovered plan kept", f"The autosaved plan is now\n{target}"
                )
        return doc

    def offer_unsaved_recoveries(self) -> None:
        """At start-up: offer the autosaves of never-saved plans a crashed session left."""
        for candidate in find_unsaved_recoveries():
            if not self._ask():
                return
            from app.gui.dialogs.recovery import RecoveryChoice, ask_recovery

            choice = ask_recovery(candidate, self.window)
            if choice is RecoveryChoice.RESTORE:
                target = keep_both(candidate)  # a plan file of its own, then open it
                self.open_plan(target)
                return
            if choice is RecoveryChoice.DISCARD:
                discard(candidate)
            elif choice is RecoveryChoice.KEEP_BOTH:
                target = keep_both(candidate)
                QMessageBox.information(
                    self.window, "Recovered plan kept", f"The autosaved plan is now\n{target}"
                )

    # ------------------------------------------------------------------ save / close
    def save(self) -> bool:
        """Save to the plan's file (Save as when it has none); True when saved."""
        doc = self.document
        if doc is None:
            return False
        if doc.path is None:
            return self.save_as()
        return self._save_to(doc, doc.path)

    def save_as(self, path: Path | str | None = None) -> bool:
        doc = self.document
        if doc is None:
            return False
        if path is None:
            if not self._ask():
                return False
            start = str(self._default_folder() / f"{doc.plan.name or 'plan'}{PLAN_SUFFIX}")
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "Save plan as", start, f"SeedPlan plans (*{PLAN_SUFFIX})"
            )
            if not chosen:
                return False
            path = chosen if chosen.endswith(PLAN_SUFFIX) else chosen + PLAN_SUFFIX
        return self._save_to(doc, Path(path))

    def _default_folder(self) -> Path:
        source = self.session.source_path
        if source is not None and source.exists():
            return source if source.is_dir() else source.parent
        return Path.home()

    def _save_to(self, doc: PlanDocument, path: Path) -> bool:
        volume = self.session.volume
        # Saved in another folder (Save As), a CT path relative to the plan would name another
        # folder: the file names the CT this window shows.
        ct_path = volume.source_path if volume is not None and volume.source_path else None
        try:
            save_plan(ct_reference_at(doc.plan, path, ct_path), path, force=True)
        except InputError as exc:
            self._error("Cannot save", str(exc))
            return False
        moved = doc.path is None or os.path.abspath(doc.path) != os.path.abspath(path)
        doc.mark_saved(path)
        if moved and self.lock is not None:  # the lock follows the plan's file
            self.lock.release()
            self.lock = SessionLock(path, doc.plan.plan_uid)
            with contextlib.suppress(InputError, OSError):
                self.lock.acquire()
        with contextlib.suppress(OSError):
            self.window.settings.add_recent(path)
        self.window.statusBar().showMessage(f"Saved {path}", 5000)
        self.update_title()
        return True

    def maybe_close(self) -> bool:
        """Ask to save unsaved changes; True when the plan may be closed (or there is none)."""
        doc = self.document
        if doc is None or not doc.is_modified or not self.manages_document:
            return True
        if not self._ask():
            return True  # non-interactive: the autosave keeps the work
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved changes")
        box.setText(f"{plan_title(doc)} has unsaved changes.")
        box.setInformativeText("Save them before closing the plan?")
        buttons = QMessageBox.StandardButton
        box.setStandardButtons(buttons.Save | buttons.Discard | buttons.Cancel)
        box.setDefaultButton(buttons.Save)
        answer = box.exec()
        if answer == buttons.Save:
            return self.save()
        if answer == buttons.Discard:
            if self.autosaver is not None:
                self.autosaver.remove()  # the user chose to drop the edits
            return True
        return False

    def close_plan(self) -> bool:
        if not self.maybe_close():
            return False
        self.set_document(None)
        return True

    def shutdown(self) -> None:
        """Window closing (after :meth:`maybe_close`): stop the timer, release the lock."""
        self._timer.stop()
        doc = self.document
        if self.autosaver is not None and doc is not None and doc.is_modified:
            self.autosaver.flush()  # non-interactive close: keep the work recoverable
        self._release()

    def ask_open_plan(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self.window,
            "Open a plan",
            str(self._default_folder()),
            f"SeedPlan plans (*{PLAN_SUFFIX});;All files (*)",
        )
        if file:
            self.open_plan(file)


def plan_title(doc: PlanDocument) -> str:
    """``"Plan 'X' rev 2 · draft"`` for the title bar and the header."""
    plan = doc.plan
    name = plan.name or (doc.path.stem if doc.path else "unsaved plan")
    return f"{name} · rev {plan.revision} · {plan.status}"
