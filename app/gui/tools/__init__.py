"""Interaction tools on the views: brush, eraser, needle placement, seed drag, distance."""
