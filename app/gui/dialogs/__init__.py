"""Dialogs: import report, prescription, export, recovery."""
