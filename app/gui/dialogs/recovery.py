"""The crash-recovery question: restore the autosave, discard it, or keep both."""

from __future__ import annotations

from enum import Enum

from PySide6.QtWidgets import QMessageBox, QWidget

from planner.plan.recovery import RecoveryCandidate

__all__ = ["RecoveryChoice", "ask_recovery", "recovery_box"]


class RecoveryChoice(Enum):
    RESTORE = "restore"
    DISCARD = "discard"
    KEEP_BOTH = "keep both"
    LATER = "later"  # leave the autosave where it is (asked again next time)


def recovery_box(candidate: RecoveryCandidate, parent: QWidget | None = None) -> QMessageBox:
    """The dialog (not shown): buttons Restore, Discard, Keep both, Later."""
    box = QMessageBox(parent)
    box.setObjectName("recovery_dialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Recover unsaved work")
    box.setText("SeedPlan did not close normally last time.")
    warn = "" if candidate.newer_than_plan else "\n\nThe autosave is OLDER than the saved plan."
    box.setInformativeText(
        f"There is {candidate.describe()}.{warn}\n\n"
        "Restore: open the autosaved plan (unsaved until you save it).\n"
        "Discard: delete the autosave and open the saved plan.\n"
        "Keep both: keep the autosave as a plan file of its own beside the saved plan."
    )
    roles = QMessageBox.ButtonRole
    box.addButton("Restore", roles.AcceptRole).setObjectName("restore")
    box.addButton("Discard", roles.DestructiveRole).setObjectName("discard")
    box.addButton("Keep both", roles.ActionRole).setObjectName("keep_both")
    box.addButton("Later", roles.RejectRole).setObjectName("later")
    return box


def ask_recovery(candidate: RecoveryCandidate, parent: QWidget | None = None) -> RecoveryChoice:
    """Ask the user (modal); closing the dialog means Later."""
    box = recovery_box(candidate, parent)
    box.exec()
    clicked = box.clickedButton()
    name = clicked.objectName() if clicked is not None else "later"
    return {
        "restore": RecoveryChoice.RESTORE,
        "discard": RecoveryChoice.DISCARD,
        "keep_both": RecoveryChoice.KEEP_BOTH,
    }.get(name, RecoveryChoice.LATER)
