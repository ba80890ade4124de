"""What the GUI shows: the loaded case and the view state (crosshair, window/level, visibility)."""
