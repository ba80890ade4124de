"""Which 2-D view is which live-dose view (:data:`planner.plan.live_dose.VIEWS`).

Shared by the planning controller (app/gui/planning_ui.py) and the isodose layer, so neither
imports the other for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.gui.views.slice_view import SliceView
    from planner.plan.live_dose import ViewName

__all__ = ["LIVE_AXIS", "live_view_name"]

#: CT index axis (i, j, k) each live view's slice is perpendicular to.
LIVE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def live_view_name(view: SliceView) -> ViewName:
    """The :data:`planner.plan.live_dose.VIEWS` name of a 2-D view."""
    return view.orientation.name.lower()  # type: ignore[return-value]
