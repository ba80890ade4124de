"""The post-op window's review edits: add, delete, merge and split seeds, undoable.

:class:`SeedEditTools` (owned by :class:`app.gui.postop.window.PostopWindow`) holds the
toolbar actions — add a seed at the crosshair, delete / split the seed nearest it, merge it with
its nearest neighbour, Undo / Redo — acting on the review's
:class:`planner.postop.edits.SeedEdits`. The selected seed is the one nearest the post-op
crosshair within :data:`SELECT_MM`. After every edit the window recomputes the matching and the
post-plan dose in the background (:meth:`PostopWindow.edited`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QAction

from app.gui.postop.actions import make_action
from app.gui.postop.case import PostopCase

__all__ = ["MERGE_MM", "SELECT_MM", "SeedEditTools", "SeedEditWindow"]

#: Seeds farther than this from the crosshair are never "the selected seed".
SELECT_MM = 5.0
#: A merge takes the selected seed and its nearest neighbour if it is this close.
MERGE_MM = 6.0


class SeedEditWindow(PostopCase, Protocol):
    """What the seed edits use of the post-op window besides the case: its redraw and
    re-verification after an edit."""

    def edited(self) -> None: ...


class SeedEditTools(QObject):
    """The seed edit actions of ``window`` (module docstring)."""

    def __init__(self, window: SeedEditWindow) -> None:
        super().__init__(window)
        self.window = window
        self.add_action = make_action(
            window, "Add seed", self.add_seed_at_crosshair, "A", "Add a seed at the crosshair"
        )
        self.delete_action = make_action(
            window,
            "Delete seed",
            self.delete_selected,
            "D",
            "Delete the seed nearest the crosshair",
        )
        self.merge_action = make_action(
            window,
            "Merge",
            self.merge_selected,
            "M",
            "Merge the selected seed with its nearest neighbour",
        )
        self.split_action = make_action(
            window,
            "Split",
            self.split_selected,
            "S",
            "Split the selected seed in two along its axis",
        )
        self.undo_action = make_action(window, "Undo", self.undo, "Ctrl+Z")
        self.redo_action = make_action(window, "Redo", self.redo, "Ctrl+Shift+Z")

    @property
    def actions(self) -> tuple[QAction, ...]:
        """The toolbar's actions, in order."""
        return (
            self.add_action,
            self.delete_action,
            self.merge_action,
            self.split_action,
            self.undo_action,
            self.redo_action,
        )

    def selected_index(self) -> int | None:
        """The seed nearest the post-op crosshair (within 5 mm), the one edits act on."""
        review = self.window.review
        if review is None:
            return None
        return review.edits.nearest(self.window.postop_session.crosshair_mm, within_mm=SELECT_MM)

    def update_actions(self) -> None:
        review = self.window.review
        has = review is not None
        selected = self.selected_index() is not None
        self.add_action.setEnabled(has)
        for a in (self.delete_action, self.merge_action, self.split_action):
            a.setEnabled(has and selected)
        self.undo_action.setEnabled(has and review.edits.can_undo)  # type: ignore[union-attr]
        self.redo_action.setEnabled(has and review.edits.can_redo)  # type: ignore[union-attr]
        if review is not None:
            self.undo_action.setText(f"Undo {review.edits.undo_label}".strip())

    def add_seed_at_crosshair(self) -> None:
        review = self.window.review
        if review is None:
            return
        seeds = review.edits.seeds
        axis = np.median(seeds.axes, axis=0) if len(seeds) else np.array([0.0, 0.0, 1.0])
        if not np.linalg.norm(axis) > 1e-6:
            axis = np.array([0.0, 0.0, 1.0])
        review.edits.add(self.window.postop_session.crosshair_mm, axis)
        self.window.edited()

    def delete_selected(self) -> None:
        i, review = self.selected_index(), self.window.review
        if review is not None and i is not None:
            review.edits.delete([i])
            self.window.edited()

    def merge_selected(self) -> None:
        i, review = self.selected_index(), self.window.review
        if review is None or i is None:
            return
        p = review.edits.seeds.positions_mm
        d = np.linalg.norm(p - p[i], axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        if not d[j] <= MERGE_MM:
            self.window.runner.label.setText(f"No other seed within {MERGE_MM:g} mm to merge with")
            return
        review.edits.merge([i, j])
        self.window.edited()

    def split_selected(self) -> None:
        i, review = self.selected_index(), self.window.review
        if review is not None and i is not None:
            review.edits.split(i)
            self.window.edited()

    def undo(self) -> None:
        review = self.window.review
        if review is not None and review.edits.undo():
            self.window.edited()

    def redo(self) -> None:
        review = self.window.review
        if review is not None and review.edits.redo():
            self.window.edited()
