"""The detected seeds on a 2-D view of the post-op CT: one marker per seed near the plane.

A seed is drawn when its centre lies within :data:`SLAB_MM` of the displayed plane (a seed is
4.5 mm long: it shows on the slices it crosses), as a ring around its centre with two ticks
along its axis projected on the plane (the CT's own bright spot stays visible inside).
Colours say where a seed came from: detected (cyan), added / merged / split by the reviewer
(orange); a seed the verification found migrated (outside the target, far from every planned
needle) is red; the selected seed (nearest the crosshair, the one the edit buttons act on) is
yellow and drawn thicker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.layers.base import Layer
from app.gui.layers.structures import OVERLAY_OFFSET_MM
from app.gui.vtk_bridge import VTKWidget
from planner.postop.edits import EditedSeeds
from planner.session.session import Session

__all__ = ["COLOURS_RGB", "SLAB_MM", "SeedMarkersLayer"]

SLAB_MM = 2.5
#: Radius of the ring drawn around a seed centre (mm): the seed's own bright spot stays visible.
RING_MM = 2.2
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 17)[:-1]
COLOURS_RGB = {
    "detected": (0.25, 0.85, 1.0),
    "edited": (1.0, 0.55, 0.1),
    "migrated": (0.95, 0.15, 0.15),
    "selected": (1.0, 1.0, 0.2),
}


class SeedMarkersLayer(Layer):
    """Seeds from ``get_seeds()`` (post-op frame) near the plane of ``view`` (normal
    ``normal``); :meth:`update` redraws (call it when the seeds change)."""

    def __init__(
        self,
        view: VTKWidget,
        session: Session,
        normal: NDArray[np.float64],
        get_seeds: Callable[[], EditedSeeds | None],
        get_selected: Callable[[], int | None],
        get_locations: Callable[[], Sequence[str] | None] | None = None,
    ) -> None:
        super().__init__(view, session)
        self.normal = np.asarray(normal, float)
        self._get_seeds = get_seeds
        self._get_selected = get_selected
        self._get_locations = get_locations
        self.actors: dict[str, tuple[vtkPolyData, vtkActor]] = {}
        for key, rgb in COLOURS_RGB.items():
            polydata = vtkPolyData()
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(polydata)
            actor = vtkActor()
            actor.SetMapper(mapper)
            prop = actor.GetProperty()
            prop.SetColor(*rgb)
            prop.SetLineWidth(3.0 if key == "selected" else 2.0)
            prop.LightingOff()
            actor.PickableOff()
            self.add_prop(actor)
            self.actors[key] = (polydata, actor)
        #: Seeds drawn on the current plane, by colour key (for tests and the status text).
        self.shown: dict[str, int] = {k: 0 for k in COLOURS_RGB}
        self.listen(session.crosshair_changed, self.update)
        self.listen(session.volume_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        seeds = self._get_seeds()
        selected = self._get_selected()
        locations = self._get_locations() if self._get_locations is not None else None
        groups: dict[str, list[int]] = {k: [] for k in COLOURS_RGB}
        if seeds is not None and len(seeds) and self.session.volume is not None:
            plane = float(self.session.crosshair_mm @ self.normal)
            near = np.abs(seeds.positions_mm @ self.normal - plane) <= SLAB_MM
            for i in np.flatnonzero(near):
                if selected is not None and i == selected:
                    groups["selected"].append(int(i))
                elif locations is not None and locations[i] == "migrated":
                    groups["migrated"].append(int(i))
                elif seeds.origin[i] == "detected":
                    groups["detected"].append(int(i))
                else:
                    groups["edited"].append(int(i))
        front = -OVERLAY_OFFSET_MM * self.normal
        for key, (polydata, _actor) in self.actors.items():
            idx = groups[key]
            self.shown[key] = len(idx)
            points = vtkPoints()
            lines = vtkCellArray()
            plane = float(self.session.crosshair_mm @ self.normal) if idx else 0.0
            right = np.cross(
                self.normal, [0.0, 0.0, 1.0] if abs(self.normal[2]) < 0.9 else [0.0, 1.0, 0.0]
            )
            right /= np.linalg.norm(right)
            up = np.cross(self.normal, right)
            ring = [RING_MM * (np.cos(t) * right + np.sin(t) * up) for t in _ANGLES]
            for i in idx:
                assert seeds is not None
                c = seeds.positions_mm[i]
                c = c + (plane - c @ self.normal) * self.normal + front
                ids = [points.InsertNextPoint(*(c + r)) for r in ring]
                lines.InsertNextCell(len(ids) + 1)
                for n in (*ids, ids[0]):
                    lines.InsertCellPoint(n)
                # The axis as two ticks outside the ring: the seed itself stays visible.
                a = seeds.axes[i] - (seeds.axes[i] @ self.normal) * self.normal
                if np.linalg.norm(a) > 0.2:
                    a = a / np.linalg.norm(a)
                    for sign in (-1.0, 1.0):
                        p1 = points.InsertNextPoint(*(c + sign * (RING_MM + 0.3) * a))
                        p2 = points.InsertNextPoint(*(c + sign * (RING_MM + 2.0) * a))
                        lines.InsertNextCell(2)
                        lines.InsertCellPoint(p1)
                        lines.InsertCellPoint(p2)
            polydata.SetPoints(points)
            polydata.SetLines(lines)
            polydata.Modified()
        self.render()
