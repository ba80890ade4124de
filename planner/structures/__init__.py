"""Structures: contour rasterising (sub-voxel occupancy), masks, contouring operations, margins,
booleans.
"""
