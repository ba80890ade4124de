"""VTK view adapters, one per model object."""
