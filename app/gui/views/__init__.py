"""The views: slice_view (axial/sagittal/coronal), volume_view (3-D), view_grid (the 2 × 2
layout) and vtk_data (numpy → VTK conversions). Views own camera and interaction; what they
show is drawn by the layer adapters in :mod:`app.gui.layers`."""
