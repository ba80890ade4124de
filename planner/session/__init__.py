"""What the GUI shows: the loaded case (document state) and the view state (crosshair,
window/level, visibility); evented with psygnal (:mod:`planner.session.evented`); positions
are written for users by :mod:`planner.session.coordinates`."""

from planner.session.coordinates import format_lps_coordinate, format_lps_point
from planner.session.session import WINDOW_PRESETS, Session, ViewState, WindowPreset

__all__ = [
    "WINDOW_PRESETS",
    "Session",
    "ViewState",
    "WindowPreset",
    "format_lps_coordinate",
    "format_lps_point",
]
