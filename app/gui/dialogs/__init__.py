"""Dialogs: series_chooser, import_report; next: prescription, export, recovery."""
