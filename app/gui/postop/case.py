"""What the post-op window shares with its parts (typing only).

:class:`app.gui.postop.window.PostopWindow` builds its parts (the seed edits, the registration
tab, the exclusion tools, the verification run, the verified copy) and hands itself to them.
Each part is typed by a protocol of what it uses: :class:`PostopCase`, the verification at
hand, plus a few members next to the part; so no part imports the window that imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.gui.dialogs.task_progress import TaskRunner
    from planner.imaging.volume import CTVolume
    from planner.plan.document import PlanDocument
    from planner.plan.model import Plan
    from planner.postop.edits import PostopReview
    from planner.session.session import Session

__all__ = ["PostopCase"]


class PostopCase(Protocol):
    """The verification at hand, as the post-op window's parts read it (the window is also
    their Qt parent): the main window's plan and CT, the post-op CT and its session, the review
    of the detected seeds, and the task runner (background work and its message line)."""

    postop_session: Session
    postop_ct: CTVolume | None
    #: None before Detect & verify; replaced by each verification.
    review: PostopReview | None
    runner: TaskRunner

    @property
    def document(self) -> PlanDocument | None: ...

    @property
    def plan(self) -> Plan | None: ...

    @property
    def planning_ct(self) -> CTVolume | None: ...
