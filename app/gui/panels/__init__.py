"""Dock panels: structures, needles, seeds, DVH, metrics."""
