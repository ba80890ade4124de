"""Line-segment polydata refilled in place: the isodose and seed layers' drag-step fills.

:class:`SegmentArrays` owns the VTK arrays of one polydata of 2-point lines (points, cell
offsets and connectivity, optional per-point RGB) and refills them with numpy copies: a drag
step makes no new VTK array and no numpy-to-VTK conversion (each costs ~5-10 µs of Python).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkIdTypeArray, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

__all__ = ["SegmentArrays"]


class SegmentArrays:
    """The VTK arrays of one polydata of 2-point lines, kept and refilled in place."""

    def __init__(self, polydata: vtkPolyData) -> None:
        self.polydata = polydata
        self.points = vtkDoubleArray()
        self.points.SetNumberOfComponents(3)
        vpts = vtkPoints()
        vpts.SetData(self.points)
        self.offsets = vtkIdTypeArray()
        self.connectivity = vtkIdTypeArray()
        self.cells = vtkCellArray()
        self.rgb = vtkUnsignedCharArray()
        self.rgb.SetNumberOfComponents(3)
        self.rgb.SetName("rgb")
        polydata.SetPoints(vpts)
        polydata.SetLines(self.cells)

    def fill(self, points_mm: NDArray[np.float64], rgb: NDArray[np.uint8] | None) -> None:
        """Segments ``points_mm`` (2S, 3) (segment s: points 2s, 2s + 1), per-point colours
        ``rgb`` (2S, 3) uint8 or None (the actor's colour)."""
        n_pts = len(points_mm)
        self.points.SetNumberOfTuples(n_pts)
        np.asarray(self.points)[:] = points_mm
        self.points.Modified()
        self.offsets.SetNumberOfValues(n_pts // 2 + 1)
        np.asarray(self.offsets)[:] = np.arange(0, n_pts + 1, 2)
        self.connectivity.SetNumberOfValues(n_pts)
        np.asarray(self.connectivity)[:] = np.arange(n_pts)
        self.cells.SetData(self.offsets, self.connectivity)
        self.cells.Modified()
        pd = self.polydata
        pd.GetPoints().Modified()
        if rgb is None:
            pd.GetPointData().SetScalars(None)
        else:
            self.rgb.SetNumberOfTuples(n_pts)
            np.asarray(self.rgb)[:] = rgb
            self.rgb.Modified()
            pd.GetPointData().SetScalars(self.rgb)
        pd.Modified()
