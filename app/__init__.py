"""SeedPlan application layer: the command line and the PySide6 + VTK GUI.

Importing ``app`` (or ``app.cli``) must not import Qt or VTK: only the GUI commands do.
"""

__version__ = "0.1.0"
