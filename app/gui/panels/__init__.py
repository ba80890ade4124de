"""Panels around the views: header_bar (patient, series geometry, import warnings),
status_panel (LPS/HU readouts, load progress, dose engine), menus (menus and window toolbar);
next: dock panels for structures, needles, seeds, DVH and metrics."""
