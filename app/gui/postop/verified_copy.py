"""*Save verified copy…*: the post-op mode's verification written as a plan file, as
``seedplan verify`` writes ``postop.seedplan`` (:func:`planner.postop.record.verified_copy`:
the implanted seeds, the registration and the verification record, review edits and an
intra-op column included), for the report and for later.

The copy never replaces the open plan's file, the planning or the post-op CT (refused in a
dialog); an existing other file is replaced only after the file dialog's own confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.gui.postop.case import PostopCase
from dose.errors import InputError
from planner.plan.plan_file import PLAN_SUFFIX

if TYPE_CHECKING:
    from app.gui.window_protocols import SessionWindow
    from planner.plan.dosimetry import PlanDosimetry

__all__ = ["CopyWindow", "default_copy_path", "save_verified_copy"]


class CopyWindow(PostopCase, Protocol):
    """What the verified copy uses of the post-op window besides the case: the intra-op column
    (kept in the record) and the main window (may a dialog be shown?)."""

    main: SessionWindow
    intraop: PlanDosimetry | None
    intraop_counts: dict[str, float] | None


def default_copy_path(window: CopyWindow) -> Path:
    """Beside the open plan's file (else in the home folder): ``<plan stem>_postop.seedplan``."""
    doc = window.document
    if doc is not None and doc.path is not None:
        return doc.path.with_name(f"{doc.path.stem}_postop{PLAN_SUFFIX}")
    name = (doc.plan.name if doc is not None else "") or "plan"
    return Path.home() / f"{name}_postop{PLAN_SUFFIX}"


def save_verified_copy(window: CopyWindow, path: str | Path | None = None) -> Path | None:
    """Write the verified copy to ``path`` (None: ask); the path written, or None (nothing to
    save, the user cancelled, or the write was refused: said on the progress line, and in a
    dialog when a user is there)."""
    from planner.plan.plan_ct import ct_reference_at
    from planner.plan.plan_file import save_plan
    from planner.postop.record import verified_copy

    review, plan, post = window.review, window.plan, window.postop_ct
    if review is None or plan is None or post is None:
        window.runner.label.setText("Nothing to save: run Detect & verify first")
        return None
    if path is None:
        chosen, _ = QFileDialog.getSaveFileName(
            window,
            "Save verified copy of the plan",
            str(default_copy_path(window)),
            f"SeedPlan plans (*{PLAN_SUFFIX})",
        )
        if not chosen:
            return None
        path = chosen if chosen.endswith(PLAN_SUFFIX) else chosen + PLAN_SUFFIX
    target = Path(path)
    planning = window.planning_ct
    ct_path = planning.source_path if planning is not None and planning.source_path else None
    doc = window.document
    copy = verified_copy(
        review.verification,
        plan,
        post,
        intraop=window.intraop,
        intraop_counts=window.intraop_counts,
    )
    try:
        # The file dialog asked before an existing file is replaced; the inputs never are.
        save_plan(
            ct_reference_at(copy, target, ct_path),
            target,
            force=True,
            inputs=(doc.path if doc is not None else None, ct_path, post.source_path or None),
        )
    except InputError as exc:
        window.runner.label.setText(f"Not saved: {exc}")
        if window.main.interactive:
            QMessageBox.warning(window, "Save verified copy", str(exc))
        return None
    window.runner.label.setText(f"Verified copy saved: {target}")
    return target
