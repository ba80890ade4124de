"""Automatic planning: candidate needle paths, seed-slot loading optimised to the prescription,
robustness.
"""
