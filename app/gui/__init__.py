"""The PySide6 + VTK workstation. Imports Qt and VTK: only `seedplan gui` imports this package."""
