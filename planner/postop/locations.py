"""Where each seed lies after registration: inside a target, outside it, or migrated.

Every seed (implanted, in the planning frame after registration; or planned) is classified
against the plan (LPS mm):

- ``inside``: its centre is in a voxel of a target structure (role "target"); ``structure``
  names it (the prescription's structure first when several contain it);
- ``migrated``: outside every target *and* farther than ``migration_mm`` (default 10 mm) from
  every planned needle track — the segment entry → tip of each needle, and the planned
  position of each seed not on a needle (its own "track") — e.g. a seed carried to the lung;
- ``outside``: outside every target but within ``migration_mm`` of a planned track;
- ``unknown``: the plan has no target structure (and the seed is not migrated).

``distance_to_target_mm`` is 0 inside; outside it is the distance from the seed centre to the
nearest voxel centre of the nearest target (so within half a voxel diagonal of the distance to
the target's surface); ``structure`` then names that nearest target. ``distance_to_track_mm``
is the distance to the nearest planned track (None when the plan has no needle and no seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from dose.errors import InputError
from planner.plan.model import Plan, Structure

__all__ = [
    "DEFAULT_MIGRATION_MM",
    "LOCATIONS",
    "Location",
    "SeedLocation",
    "SeedLocations",
    "locate_seeds",
]

Location = Literal["inside", "outside", "migrated", "unknown"]
LOCATIONS: tuple[str, ...] = ("inside", "outside", "migrated", "unknown")
#: A seed outside the target farther than this from every planned track is "migrated" (mm).
DEFAULT_MIGRATION_MM = 10.0


@dataclass(frozen=True)
class SeedLocation:
    """Where one seed lies (module docstring); ``index`` is its row in the located array."""

    index: int
    position_mm: tuple[float, float, float]
    location: Location
    structure: str | None
    distance_to_target_mm: float | None
    distance_to_track_mm: float | None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "position_mm": list(self.position_mm),
            "location": self.location,
            "structure": self.structure,
            "distance_to_target_mm": self.distance_to_target_mm,
            "distance_to_track_mm": self.distance_to_track_mm,
        }


@dataclass(frozen=True)
class SeedLocations:
    """The locations of a set of seeds, with the migration distance used (mm)."""

    seeds: tuple[SeedLocation, ...]
    migration_mm: float = DEFAULT_MIGRATION_MM

    def __len__(self) -> int:
        return len(self.seeds)

    def counts(self) -> dict[str, int]:
        """Seeds per location (every key of :data:`LOCATIONS`, zeros included)."""
        out = dict.fromkeys(LOCATIONS, 0)
        for s in self.seeds:
            out[s.location] += 1
        return out

    def of(self, location: str) -> list[SeedLocation]:
        return [s for s in self.seeds if s.location == location]

    def summary(self) -> str:
        c = self.counts()
        text = (
            f"{c['inside']} inside the target, {c['outside']} outside it, {c['migrated']} "
            f"migrated (> {self.migration_mm:g} mm from every planned needle)"
        )
        return text + (f", {c['unknown']} unknown (no target)" if c["unknown"] else "")

    def to_dict(self) -> dict[str, object]:
        return {
            "migration_mm": self.migration_mm,
            "counts": self.counts(),
            "seeds": [s.to_dict() for s in self.seeds],
        }


def _voxel_index(plan: Plan, points_mm: NDArray[np.float64]) -> NDArray[np.int64]:
    """``(N, 3)`` (z, y, x) index of the voxel holding each point; -1 rows when outside."""
    g = plan.geometry
    kji = np.rint(g.world_to_zyx(points_mm)).astype(np.int64).reshape(-1, 3)
    inside = np.all((kji >= 0) & (kji < np.asarray(g.shape_zyx)), axis=1)
    kji[~inside] = -1
    return kji


def _contains(s: Structure, kji: NDArray[np.int64]) -> NDArray[np.bool_]:
    out = np.zeros(len(kji), dtype=bool)
    lo = np.array([b.start for b in s.box])
    hi = np.array([b.stop for b in s.box])
    ok = np.all((kji >= lo) & (kji < hi), axis=1)
    if np.any(ok):
        rel = kji[ok] - lo
        out[ok] = s.crop[rel[:, 0], rel[:, 1], rel[:, 2]]
    return out


def _surface_tree(plan: Plan, s: Structure) -> cKDTree | None:
    """A KD-tree of the world positions of the structure's boundary voxel centres."""
    crop = s.crop
    if not crop.any():
        return None
    edge = crop & ~ndi.binary_erosion(crop, border_value=0)
    kji = np.argwhere(edge).astype(np.float64) + np.array([b.start for b in s.box])
    return cKDTree(plan.geometry.zyx_to_world(kji))


def _track_distance(plan: Plan, points_mm: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Distance (mm) of each point to the nearest planned track (module docstring)."""
    best = np.full(len(points_mm), np.inf)
    found = False
    for n in plan.needles:
        a = np.asarray(n.entry_mm, dtype=np.float64)
        u = np.asarray(n.tip_mm, dtype=np.float64) - a
        length2 = float(u @ u)
        t = np.zeros(len(points_mm)) if length2 == 0 else ((points_mm - a) @ u) / length2
        closest = a + np.clip(t, 0.0, 1.0)[:, None] * u
        best = np.minimum(best, np.linalg.norm(points_mm - closest, axis=1))
        found = True
    free = np.array(
        [s.position_mm for s in plan.seeds if s.needle_id is None], dtype=np.float64
    ).reshape(-1, 3)
    if len(free):
        d, _ = cKDTree(free).query(points_mm)
        best = np.minimum(best, d)
        found = True
    return best if found else None


def locate_seeds(
    plan: Plan, positions_mm: ArrayLike, *, migration_mm: float = DEFAULT_MIGRATION_MM
) -> SeedLocations:
    """Classify seeds at ``positions_mm`` ``(N, 3)`` (planning frame, LPS mm) against ``plan``
    (module docstring)."""
    p = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(p)):
        raise InputError("seed positions to locate must be finite")
    if not (np.isfinite(migration_mm) and migration_mm > 0):
        raise InputError(f"the migration distance must be > 0 mm, got {migration_mm:g}")
    targets = [s for s in plan.structures if s.role == "target"]
    rx = plan.prescription
    targets.sort(key=lambda s: 0 if rx is not None and s.id == rx.structure_id else 1)
    kji = _voxel_index(plan, p)
    inside_of: list[str | None] = [None] * len(p)
    nearest: list[str | None] = [None] * len(p)
    dist = np.full(len(p), np.inf)
    for s in targets:
        inside = _contains(s, kji) & (kji[:, 0] >= 0)
        for i in np.flatnonzero(inside):
            if inside_of[i] is None:
                inside_of[i] = s.name
        tree = _surface_tree(plan, s)
        if tree is None:
            continue
        d, _ = tree.query(p)
        for i in np.flatnonzero(d < dist):
            nearest[i] = s.name
        dist = np.minimum(dist, d)
    track = _track_distance(plan, p)
    out = []
    for i, q in enumerate(p):
        d_track = None if track is None else float(track[i])
        far = d_track is not None and d_track > migration_mm
        if inside_of[i] is not None:
            loc: Location = "inside"
            name, d_target = inside_of[i], 0.0
        else:
            loc = "migrated" if far else ("outside" if targets else "unknown")
            name = nearest[i]
            d_target = float(dist[i]) if np.isfinite(dist[i]) else None
        out.append(
            SeedLocation(i, (float(q[0]), float(q[1]), float(q[2])), loc, name, d_target, d_track)
        )
    return SeedLocations(tuple(out), float(migration_mm))
