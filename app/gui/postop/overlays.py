"""Masks drawn on the post-op view: the excluded non-seed metal and the painted exclusion region.

* :func:`metal_regions` finds, for every :class:`~planner.postop.detection.detect.MetalObject` the
  detection excluded (screw, rod, cement, a needle left in), its voxels on the post-op CT: the
  connected region of metal (HU ≥ the detection's threshold, at least :data:`METAL_MIN_HU`)
  nearest its centre, searched in a box around it. Qt-free, run off the GUI thread.
* :class:`MaskOutlineLayer` draws the outline of such masks on the displayed axial slice (voxel
  edges, :func:`planner.structures.contours.slice_loops`), optionally hatched (diagonal lines
  through every fourth voxel diagonal: opaque lines, no translucency, the CT stays readable
  between them), over a dark halo so that they read on bone and metal. Excluded metal is
  magenta, the exclusion region white hatched.
* :class:`ExclusionMask` is the painted exclusion region on the post-op CT's grid, with its
  own undo: every stroke (a disc in the view plane or a sphere, radius in mm, painted by
  :func:`planner.structures.paint.stroke`, the planning brush's footprint) and every *Clear*
  is one undo step, and so is :meth:`ExclusionMask.replace` (a region opened from a mask
  file, :mod:`app.gui.postop.exclusion_file`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from app.gui.layers.base import Layer
from app.gui.layers.structures import OVERLAY_OFFSET_MM, closed_polylines
from app.gui.vtk_bridge import VTKWidget
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.postop.detection.detect import DetectionResult
from planner.session.session import Session
from planner.structures.contours import slice_loops
from planner.structures.paint import stroke

__all__ = [
    "METAL_MIN_HU",
    "ExclusionMask",
    "MaskOutlineLayer",
    "MaskRegion",
    "metal_regions",
]

Box = tuple[slice, slice, slice]
#: The least HU of a metal voxel when outlining excluded metal (the detection's solid-metal
#: level; its own threshold when higher).
METAL_MIN_HU = 1200.0
#: A metal object's voxels are searched this far (mm) beyond its equivalent-sphere radius × 4.
_SEARCH_MM = 25.0
#: Hatch: a diagonal line through every this many voxel diagonals.
HATCH_EVERY = 4


@dataclass(frozen=True)
class MaskRegion:
    """Voxels ``mask`` (bool, the shape of ``box``) in ``box`` of a (z, y, x) grid."""

    box: Box
    mask: NDArray[np.bool_]

    def contains(self, geometry: GridGeometry, xyz_mm: NDArray[np.float64]) -> NDArray[np.bool_]:
        """``(N,)`` True where the points ``(N, 3)`` (LPS mm) fall in a voxel of the mask."""
        kji = np.rint(geometry.world_to_zyx(np.asarray(xyz_mm, float).reshape(-1, 3))).astype(int)
        lo = np.array([s.start for s in self.box])
        rel = kji - lo
        inside = np.all((rel >= 0) & (rel < np.array(self.mask.shape)), axis=1)
        out = np.zeros(len(kji), dtype=bool)
        r = rel[inside]
        out[inside] = self.mask[r[:, 0], r[:, 1], r[:, 2]]
        return out


def metal_regions(ct: CTVolume, detection: DetectionResult) -> list[MaskRegion | None]:
    """One region per ``detection.metal`` object (module docstring); None where no metal voxel
    lies within 5 mm of its centre."""
    g = ct.geometry
    level = max(float(detection.threshold_hu), METAL_MIN_HU)
    spacing_zyx = np.asarray(g.spacing_mm, float)[::-1]
    shape = np.asarray(g.shape_zyx)
    out: list[MaskRegion | None] = []
    for m in detection.metal:
        r_eq = (3.0 * max(m.volume_mm3, 1.0) / (4.0 * np.pi)) ** (1.0 / 3.0)
        reach = np.ceil((4.0 * r_eq + _SEARCH_MM) / spacing_zyx).astype(int)
        c = g.world_to_zyx(np.asarray(m.centre_mm, float))
        lo = np.clip(np.floor(c).astype(int) - reach, 0, shape)
        hi = np.clip(np.ceil(c).astype(int) + reach + 1, 0, shape)
        box: Box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        bright = ct.hu[box] >= level
        labels, n = ndimage.label(bright)
        if n == 0:
            out.append(None)
            continue
        kji = np.argwhere(bright)
        d = np.linalg.norm((kji + lo - c) * spacing_zyx, axis=1)
        nearest = int(np.argmin(d))
        if d[nearest] > 5.0:
            out.append(None)
            continue
        mask = labels == labels[tuple(kji[nearest])]
        sub = ndimage.find_objects(mask.astype(np.int8))[0]
        tight: Box = tuple(  # type: ignore[assignment]
            slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub, strict=True)
        )
        out.append(MaskRegion(tight, np.ascontiguousarray(mask[sub])))
    return out


def _plane_loops(
    geometry: GridGeometry, region: MaskRegion, k: int, hatch: bool
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Outline loops and hatch segments (each ``(n, 3)`` LPS mm) of ``region`` on slice k."""
    zs = region.box[0]
    if not zs.start <= k < zs.stop:
        return [], []
    plane = region.mask[k - zs.start]
    if not plane.any():
        return [], []
    j0, i0 = region.box[1].start, region.box[2].start
    loops = []
    for loop in slice_loops(plane):
        n = loop.points_ij.shape[0]
        kji = np.empty((n, 3), np.float64)
        kji[:, 0] = k
        kji[:, 1] = loop.points_ij[:, 1] + j0
        kji[:, 2] = loop.points_ij[:, 0] + i0
        loops.append(geometry.zyx_to_world(kji))
    segments = []
    if hatch:
        jj, ii = np.nonzero(plane)
        keep = ((jj + j0) + (ii + i0)) % HATCH_EVERY == 0
        jj, ii = jj[keep] + j0, ii[keep] + i0
        if len(jj):
            a = np.stack([np.full(len(jj), k, float), jj - 0.5, ii + 0.5], axis=1)
            b = np.stack([np.full(len(jj), k, float), jj + 0.5, ii - 0.5], axis=1)
            wa, wb = geometry.zyx_to_world(a), geometry.zyx_to_world(b)
            segments = [np.stack([p, q]) for p, q in zip(wa, wb, strict=True)]
    return loops, segments


class MaskOutlineLayer(Layer):
    """Outlines (and optional hatching) of the regions ``get_regions()`` returns, on the
    axial slice through the crosshair of ``view``; :meth:`update` redraws."""

    def __init__(
        self,
        view: VTKWidget,
        session: Session,
        get_regions: Callable[[], Sequence[MaskRegion | None]],
        rgb: tuple[float, float, float],
        *,
        hatch: bool = False,
        line_width: float = 2.0,
    ) -> None:
        super().__init__(view, session)
        self._get_regions = get_regions
        self.hatch = hatch
        self.mapper = vtkPolyDataMapper()
        self.mapper.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetColor(*rgb)
        prop.SetLineWidth(line_width)
        prop.LightingOff()
        self.actor.PickableOff()
        #: A dark halo under the lines (same geometry, wider, just behind): the outline reads
        #: on bright bone and metal as on soft tissue.
        self.halo = vtkActor()
        self.halo.SetMapper(self.mapper)
        halo = self.halo.GetProperty()
        halo.SetColor(0.0, 0.0, 0.0)
        halo.SetLineWidth(line_width + 2.0)
        halo.LightingOff()
        self.halo.PickableOff()
        self.halo.SetPosition(*(0.5 * OVERLAY_OFFSET_MM * np.asarray(view.normal, float)))  # type: ignore[attr-defined]
        self.add_prop(self.halo)
        self.add_prop(self.actor)
        #: Regions drawn on the current slice (indices into ``get_regions()``; tests read it).
        self.shown: list[int] = []
        #: Outline loops and hatch segments drawn.
        self.loops = 0
        self.segments = 0
        self.listen(session.crosshair_changed, self.update)
        self.listen(session.volume_changed, self.update)
        self.update()

    def update(self, *_args: object) -> None:
        if self.closed:
            return
        volume = self.session.volume
        loops: list[NDArray[np.float64]] = []
        segments: list[NDArray[np.float64]] = []
        self.shown = []
        if volume is not None:
            g = volume.geometry
            k = int(np.rint(g.world_to_zyx(self.session.crosshair_mm)[0]))
            for n, region in enumerate(self._get_regions()):
                if region is None:
                    continue
                lo, seg = _plane_loops(g, region, k, self.hatch)
                if lo:
                    self.shown.append(n)
                loops += lo
                segments += seg
        self.loops, self.segments = len(loops), len(segments)
        # Onto the displayed plane (the crosshair's, as the CT slice and the seed markers),
        # then just in front of it: a voxel-centre plane a little behind would hide lines.
        normal = np.asarray(self.view.normal, float)  # type: ignore[attr-defined]
        plane = float(self.session.crosshair_mm @ normal)
        loops = [p + np.outer(plane - p @ normal, normal) for p in loops]
        segments = [p + np.outer(plane - p @ normal, normal) for p in segments]
        front = -2.0 * OVERLAY_OFFSET_MM * normal
        poly = closed_polylines(loops, front)
        if segments:
            from vtkmodules.vtkFiltersCore import vtkAppendPolyData

            lines = closed_polylines(segments, front)
            append = vtkAppendPolyData()
            append.AddInputData(poly)
            append.AddInputData(lines)
            append.Update()
            poly = append.GetOutput()
        self.mapper.SetInputData(poly)
        self.render()


class ExclusionMask:
    """The painted exclusion region (bool, ``geometry.shape_zyx``) with its own undo.

    :meth:`begin_stroke` / :meth:`paint` / :meth:`end_stroke` make one undo step;
    :meth:`clear` is one too. ``mask`` is None until something is painted.
    """

    def __init__(self, geometry: GridGeometry) -> None:
        self.geometry = geometry
        self.mask: NDArray[np.bool_] | None = None
        self._undo: list[list[tuple[Box, NDArray[np.bool_], NDArray[np.bool_]]]] = []
        self._redo: list[list[tuple[Box, NDArray[np.bool_], NDArray[np.bool_]]]] = []
        self._open: list[tuple[Box, NDArray[np.bool_], NDArray[np.bool_]]] | None = None
        #: The box holding every True voxel (None when empty): outlines look only there.
        self.extent: Box | None = None

    @property
    def voxels(self) -> int:
        """True voxels (counted in :attr:`extent` only)."""
        region = self.region()
        return 0 if region is None else int(region.mask.sum())

    @property
    def is_empty(self) -> bool:
        """Nothing painted (cheap: no count)."""
        return self.extent is None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def region(self) -> MaskRegion | None:
        """The region as drawn (None when empty)."""
        if self.mask is None or self.extent is None:
            return None
        return MaskRegion(self.extent, self.mask[self.extent])

    def begin_stroke(self) -> None:
        self.end_stroke()
        self._open = []

    def paint(
        self,
        path_mm: NDArray[np.float64],
        radius_mm: float,
        *,
        plane_normal: NDArray[np.float64] | None,
        value: bool = True,
    ) -> bool:
        """Paint (``value=False``: erase) a disc (``plane_normal`` given) or sphere along
        ``path_mm`` ``(n, 3)`` LPS mm; True when a voxel changed."""
        if self.mask is None:
            if not value:
                return False
            self.mask = np.zeros(self.geometry.shape_zyx, dtype=bool)
        box, new = stroke(
            self.mask,
            self.geometry,
            path_mm,
            radius_mm,
            value=value,
            plane_normal=plane_normal,
        )
        if new.size == 0:
            return False
        old = self.mask[box].copy()
        if np.array_equal(old, new):
            return False
        self.mask[box] = new
        step = (box, old, np.asarray(new, dtype=bool).copy())
        if self._open is None:
            self._undo.append([step])
        else:
            if not self._open:
                self._undo.append(self._open)
            self._open.append(step)
        self._redo.clear()
        self._grow(box)
        return True

    def end_stroke(self) -> None:
        self._open = None

    def clear(self) -> bool:
        """Remove the whole region (one undo step); False when it was empty."""
        self.end_stroke()
        if self.mask is None or self.extent is None or not self.mask[self.extent].any():
            return False
        box = self.extent
        old = self.mask[box].copy()
        self.mask[box] = False
        self._undo.append([(box, old, np.zeros_like(old))])
        self._redo.clear()
        self.extent = None
        return True

    def replace(self, new: NDArray[np.bool_]) -> bool:
        """Make the region ``new`` (bool, the grid's shape; an opened mask file): one undo
        step; False when it is the region already."""
        self.end_stroke()
        new = np.asarray(new, dtype=bool)
        if new.shape != self.geometry.shape_zyx:
            raise ValueError(f"mask shape {new.shape} does not match {self.geometry.shape_zyx}")
        found = ndimage.find_objects(new.astype(np.int8))
        new_box: Box | None = found[0] if found else None  # type: ignore[assignment]
        box = _union(self.extent, new_box)
        if box is None:
            return False
        if self.mask is None:
            self.mask = np.zeros(self.geometry.shape_zyx, dtype=bool)
        old = self.mask[box].copy()
        if np.array_equal(old, new[box]):
            return False
        self.mask[box] = new[box]
        self._undo.append([(box, old, new[box].copy())])
        self._redo.clear()
        self.extent = new_box
        return True

    def undo(self) -> bool:
        self.end_stroke()
        if not self._undo or self.mask is None:
            return False
        steps = self._undo.pop()
        for box, old, _new in reversed(steps):
            self.mask[box] = old
        self._redo.append(steps)
        self._recompute_extent()
        return True

    def redo(self) -> bool:
        self.end_stroke()
        if not self._redo or self.mask is None:
            return False
        steps = self._redo.pop()
        for box, _old, new in steps:
            self.mask[box] = new
        self._undo.append(steps)
        self._recompute_extent()
        return True

    def _grow(self, box: Box) -> None:
        self.extent = _union(self.extent, box)

    def _recompute_extent(self) -> None:
        if self.mask is None or not self.mask.any():
            self.extent = None
            return
        found = ndimage.find_objects(self.mask.astype(np.int8))[0]
        self.extent = found  # type: ignore[assignment]


def _union(a: Box | None, b: Box | None) -> Box | None:
    """The box holding both boxes (None when both are)."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(  # type: ignore[return-value]
        slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True)
    )
