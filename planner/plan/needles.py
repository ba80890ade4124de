"""Needle geometry and the warnings a clinician wants on a needle (never blocking).

A needle is the straight track from its ``entry_mm`` to its ``tip_mm`` (LPS mm). On a 2-D view
it is drawn as its projection onto the view plane plus the point where it crosses the slice
(:func:`plane_crossing_mm`, :func:`slice_crossing_mm`).

Table values (:func:`needle_row`):

* ``length_mm``: |tip − entry|.
* ``insertion_depth_mm``: the length inside the body, from where the track first enters the
  body (skin) to the tip; without a CT, the whole length.
* ``angle_to_axial_deg`` / ``angle_to_sagittal_deg`` / ``angle_to_coronal_deg``: the angle
  between the track and the patient's axial (normal S–I), sagittal (normal L–R) and coronal
  (normal A–P) planes, 0°–90° (0° = lies in the plane). A needle along the body axis is 90° to
  the axial plane.

Warnings (:func:`needle_warnings`, settings in :class:`NeedleCheckSettings`):

* ``through_avoid`` / ``near_avoid``: the track passes through, or within ``avoid_distance_mm``
  (default 5 mm) of, a structure to avoid (default: names containing cord, canal or thecal);
  the distance is to the structure's voxel boxes.
* ``bone``: the CT along the track (skin to tip) is above ``bone_hu`` (default 300 HU) for more
  than ``bone_min_mm`` (default 1 mm); the message says how many mm.
* ``leaves_body``: after entering the body the track leaves it before the tip (or the tip is
  outside the body). The body is a ``Body``/``External``/``Skin`` structure when the plan has
  one, else the CT above ``body_hu`` (−400 HU) with holes (lungs, bowel gas) filled per slice.
* ``crosses_needle``: another needle's track comes closer than ``needle_clearance_mm``
  (default 2 mm).
* ``outside_ct``: part of the track lies outside the CT (the checks above then cover only the
  part inside).
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.plan.model import Needle, Plan, Structure

__all__ = [
    "AVOID_NAME_RE",
    "BODY_NAME_RE",
    "NeedleCheckSettings",
    "NeedleRow",
    "NeedleWarning",
    "WarningKind",
    "angle_to_plane_deg",
    "crossing_warnings",
    "needle_direction",
    "needle_length_mm",
    "needle_row",
    "needle_table",
    "needle_warnings",
    "plan_needle_warnings",
    "plane_crossing_mm",
    "point_at_distance_from_tip_mm",
    "segment_distance_mm",
    "slice_crossing_mm",
    "structure_distance_mm",
    "track_samples_mm",
]

WarningKind = Literal[
    "through_avoid", "near_avoid", "bone", "leaves_body", "crosses_needle", "outside_ct"
]
#: Structures a needle must keep away from (case-insensitive name search).
AVOID_NAME_RE = re.compile(r"cord|canal|thecal", re.IGNORECASE)
#: Structures that are the patient's outline.
BODY_NAME_RE = re.compile(r"^(body|external|skin|outline)$", re.IGNORECASE)
_STEP_MM = 0.25
#: Patient plane normals (LPS): axial ⟂ S–I, sagittal ⟂ L–R, coronal ⟂ A–P.
_NORMALS = {"axial": (0.0, 0.0, 1.0), "sagittal": (1.0, 0.0, 0.0), "coronal": (0.0, 1.0, 0.0)}


# ====================================================================== geometry
def needle_length_mm(needle: Needle) -> float:
    """|tip − entry| (mm)."""
    return float(np.linalg.norm(np.subtract(needle.tip_mm, needle.entry_mm)))


def needle_direction(needle: Needle) -> NDArray[np.float64]:
    """Unit vector (3,) from entry to tip (ValueError for a zero-length needle)."""
    d = np.subtract(needle.tip_mm, needle.entry_mm).astype(np.float64)
    n = float(np.linalg.norm(d))
    if not n > 1e-6:
        raise ValueError(f"needle {needle.id} has zero length (entry = tip)")
    return d / n


def angle_to_plane_deg(direction: ArrayLike, normal: ArrayLike) -> float:
    """Angle (0°–90°) between a line of ``direction`` (3,) and the plane of ``normal`` (3,)."""
    d = np.asarray(direction, dtype=np.float64).reshape(3)
    n = np.asarray(normal, dtype=np.float64).reshape(3)
    s = abs(float(d @ n)) / (float(np.linalg.norm(d)) * float(np.linalg.norm(n)))
    return math.degrees(math.asin(min(1.0, s)))


def point_at_distance_from_tip_mm(needle: Needle, distance_mm: float) -> NDArray[np.float64]:
    """The point (3,) LPS mm on the needle's line ``distance_mm`` back from the tip (towards
    the entry; negative: beyond the tip)."""
    return np.asarray(needle.tip_mm, dtype=np.float64) - distance_mm * needle_direction(needle)


def plane_crossing_mm(
    entry_mm: ArrayLike, tip_mm: ArrayLike, point_mm: ArrayLike, normal: ArrayLike
) -> NDArray[np.float64] | None:
    """Where the segment entry → tip crosses the plane through ``point_mm`` with ``normal``
    (3,) LPS mm, or None when it does not (parallel, or the plane is beyond either end)."""
    e = np.asarray(entry_mm, dtype=np.float64).reshape(3)
    t = np.asarray(tip_mm, dtype=np.float64).reshape(3)
    n = np.asarray(normal, dtype=np.float64).reshape(3)
    d = t - e
    denom = float(d @ n)
    if abs(denom) < 1e-12:
        return None
    u = float((np.asarray(point_mm, dtype=np.float64).reshape(3) - e) @ n) / denom
    if u < -1e-9 or u > 1.0 + 1e-9:
        return None
    return e + min(max(u, 0.0), 1.0) * d


def slice_crossing_mm(
    needle: Needle, geometry: GridGeometry, axis: Literal["k", "j", "i"], index: float
) -> NDArray[np.float64] | None:
    """Where the needle crosses grid plane ``index`` along ``axis`` (k = the CT's slices, j =
    its rows, i = its columns) of ``geometry``: (3,) LPS mm, or None."""
    col = {"i": 0, "j": 1, "k": 2}[axis]
    normal = geometry.direction[:, col]
    kji = np.zeros(3)
    kji[2 - col] = float(index)
    point = geometry.zyx_to_world(kji[np.newaxis, :])[0]
    return plane_crossing_mm(needle.entry_mm, needle.tip_mm, point, normal)


def track_samples_mm(needle: Needle, step_mm: float = _STEP_MM) -> NDArray[np.float64]:
    """Points (M, 3) LPS mm from entry to tip, at most ``step_mm`` apart (both ends included)."""
    length = needle_length_mm(needle)
    n = max(2, math.ceil(length / step_mm) + 1)
    u = np.linspace(0.0, 1.0, n)[:, np.newaxis]
    e = np.asarray(needle.entry_mm, dtype=np.float64)
    return e + u * (np.asarray(needle.tip_mm, dtype=np.float64) - e)


def segment_distance_mm(a0: ArrayLike, a1: ArrayLike, b0: ArrayLike, b1: ArrayLike) -> float:
    """Smallest distance (mm) between segments a0–a1 and b0–b1 (3,) each."""
    p0, p1 = np.asarray(a0, float), np.asarray(a1, float)
    q0, q1 = np.asarray(b0, float), np.asarray(b1, float)
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e, f = float(d1 @ d1), float(d2 @ d2), float(d2 @ r)
    if a < 1e-12 and e < 1e-12:
        return float(np.linalg.norm(r))
    if a < 1e-12:
        s, t = 0.0, min(max(f / e, 0.0), 1.0)
    else:
        c = float(d1 @ r)
        if e < 1e-12:
            s, t = min(max(-c / a, 0.0), 1.0), 0.0
        else:
            b = float(d1 @ d2)
            den = a * e - b * b
            s = min(max((b * f - c * e) / den, 0.0), 1.0) if den > 1e-12 else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                s, t = min(max(-c / a, 0.0), 1.0), 0.0
            elif t > 1.0:
                s, t = min(max((b - c) / a, 0.0), 1.0), 1.0
    return float(np.linalg.norm((p0 + s * d1) - (q0 + t * d2)))


# ====================================================================== warnings
@dataclass(frozen=True)
class NeedleCheckSettings:
    """Thresholds of the needle warnings (module docstring)."""

    avoid_distance_mm: float = 5.0
    avoid_name_re: re.Pattern[str] = AVOID_NAME_RE
    bone_hu: float = 300.0
    bone_min_mm: float = 1.0
    body_hu: float = -400.0
    needle_clearance_mm: float = 2.0


@dataclass(frozen=True)
class NeedleWarning:
    """One warning on one needle: ``kind``, a one-line ``message`` with units, the value it is
    about (``value_mm``: a distance or a length, mm) and where (``at_mm``, LPS, or None)."""

    needle_id: str
    kind: WarningKind
    message: str
    value_mm: float = math.nan
    at_mm: tuple[float, float, float] | None = None
    other_id: str = ""  # the structure or needle it is about

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "value_mm": None if not math.isfinite(self.value_mm) else round(self.value_mm, 3),
            "at_mm": None if self.at_mm is None else [round(v, 3) for v in self.at_mm],
            "other_id": self.other_id,
        }


def _tuple(p: NDArray[np.float64]) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))


def _inside_grid(geometry: GridGeometry, pts: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """(inside (M,) bool, nearest voxel indices (M, 3) k, j, i clipped to the grid)."""
    kji = np.floor(geometry.world_to_zyx(pts) + 0.5).astype(np.int64)
    shape = np.array(geometry.shape_zyx)
    inside = np.all((kji >= 0) & (kji < shape), axis=1)
    return inside, np.clip(kji, 0, shape - 1)


#: Border voxels (k, j, i) and their centres (LPS mm) per structure value (structures are
#: immutable: an edit makes a new value, so the cache never goes stale).
_BORDERS: weakref.WeakKeyDictionary[Structure, tuple[NDArray, NDArray]] = (
    weakref.WeakKeyDictionary()
)


def _border(structure: Structure) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    hit = _BORDERS.get(structure)
    if hit is None:
        crop = structure.crop
        border = crop & ~ndimage.binary_erosion(crop, border_value=0)
        kji = np.argwhere(border).astype(np.float64) + [b.start for b in structure.box]
        hit = (kji, structure.geometry.zyx_to_world(kji))
        _BORDERS[structure] = hit
    return hit


def structure_distance_mm(
    structure: Structure, entry: NDArray, tip: NDArray
) -> tuple[float, NDArray[np.float64] | None]:
    """(distance (mm) from the segment ``entry`` → ``tip`` (3,) LPS mm to the voxel boxes of
    the structure's border (0 when it passes through a border voxel; a segment entirely
    inside gives its distance to the border), the closest point on the segment (3,) or None
    for an empty structure)."""
    if structure.voxel_count == 0:
        return math.inf, None
    g = structure.geometry
    kji, centres = _border(structure)
    if len(kji) == 0:
        return math.inf, None
    d = tip - entry
    length2 = float(d @ d)
    u = np.clip(((centres - entry) @ d) / length2, 0.0, 1.0)
    closest = entry + u[:, np.newaxis] * d
    # Box distance from each closest point to its voxel, in the voxel's own (k, j, i) frame.
    rel = np.abs(g.world_to_zyx(closest) - kji) - 0.5
    gap = np.maximum(rel, 0.0) * g.spacing_mm[::-1]
    dist = np.sqrt((gap**2).sum(axis=1))
    best = int(np.argmin(dist))
    return float(dist[best]), closest[best]


def _in_structure(structure: Structure, kji: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Whether voxels (M, 3) k, j, i (on the CT grid) are inside ``structure`` (its crop)."""
    start = np.array([b.start for b in structure.box])
    rel = kji - start
    ok = np.all((rel >= 0) & (rel < np.array(structure.crop.shape)), axis=1)
    out = np.zeros(kji.shape[0], dtype=bool)
    r = rel[ok]
    out[ok] = structure.crop[r[:, 0], r[:, 1], r[:, 2]]
    return out


def _slice_body(hu: NDArray, k: int, body_hu: float) -> NDArray[np.bool_]:
    m = hu[k] > body_hu
    m = ndimage.binary_fill_holes(m)
    return m


#: Filled body outline per CT slice, per HU array (kept while the array lives).
_BODY_CACHE: dict[tuple[int, float], tuple[weakref.ref, dict[int, NDArray[np.bool_]]]] = {}


def _body_slices(hu: NDArray, body_hu: float) -> dict[int, NDArray[np.bool_]]:
    key = (id(hu), float(body_hu))
    hit = _BODY_CACHE.get(key)
    if hit is not None and hit[0]() is hu:
        return hit[1]
    for k in [k for k, (ref, _) in _BODY_CACHE.items() if ref() is None]:
        del _BODY_CACHE[k]
    try:
        ref = weakref.ref(hu)
    except TypeError:  # not weak-referenceable (a view of a temporary): no cache
        return {}
    slices: dict[int, NDArray[np.bool_]] = {}
    _BODY_CACHE[key] = (ref, slices)
    return slices


class _BodyLookup:
    """Inside-the-body test along a track (a body structure, or the CT per slice, cached)."""

    def __init__(self, plan: Plan, ct: CTVolume | None, body_hu: float) -> None:
        self.structure = next((s for s in plan.structures if BODY_NAME_RE.match(s.name)), None)
        self.ct = ct
        self.body_hu = body_hu
        self._slices: dict[int, NDArray[np.bool_]] = (
            {} if ct is None else _body_slices(ct.hu, body_hu)
        )

    @property
    def available(self) -> bool:
        return self.structure is not None or self.ct is not None

    def inside(self, geometry: GridGeometry, kji: NDArray[np.int64]) -> NDArray[np.bool_]:
        if self.structure is not None:
            return _in_structure(self.structure, kji)
        assert self.ct is not None
        out = np.zeros(kji.shape[0], dtype=bool)
        for k in np.unique(kji[:, 0]):
            k = int(k)
            if k not in self._slices:
                self._slices[k] = _slice_body(self.ct.hu, k, self.body_hu)
            sel = kji[:, 0] == k
            out[sel] = self._slices[k][kji[sel, 1], kji[sel, 2]]
        return out


def _runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) index runs where ``flags`` is True."""
    f = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(f))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _skin_index(inside_body: NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(inside_body)
    return int(hits[0]) if hits.size else None


def needle_warnings(
    plan: Plan,
    needle: Needle,
    ct: CTVolume | None = None,
    *,
    settings: NeedleCheckSettings | None = None,
    others: Sequence[Needle] | None = None,
    _body: _BodyLookup | None = None,
) -> list[NeedleWarning]:
    """The warnings on ``needle`` (module docstring). ``ct``: the plan's CT (bone and body
    checks need it, unless the plan has a body structure); ``others``: the needles to check
    crossings against (default: the plan's other needles)."""
    cfg = settings or NeedleCheckSettings()
    out: list[NeedleWarning] = []
    entry = np.asarray(needle.entry_mm, dtype=np.float64)
    tip = np.asarray(needle.tip_mm, dtype=np.float64)
    if needle_length_mm(needle) < 1e-6:
        return out
    g = plan.geometry
    pts = track_samples_mm(needle)
    step = needle_length_mm(needle) / (len(pts) - 1)
    inside, kji = _inside_grid(g, pts)
    if not inside.all():
        out_mm = float((~inside).sum() * step)
        out.append(
            NeedleWarning(
                needle.id,
                "outside_ct",
                f"{out_mm:.1f} mm of the track lies outside the CT",
                out_mm,
            )
        )
    for s in plan.structures:
        if not cfg.avoid_name_re.search(s.name):
            continue
        hit = _in_structure(s, kji[inside])
        if hit.any():
            through_mm = float(hit.sum() * step)
            out.append(
                NeedleWarning(
                    needle.id,
                    "through_avoid",
                    f"passes through {s.name} ({through_mm:.1f} mm inside)",
                    through_mm,
                    _tuple(pts[inside][int(np.argmax(hit))]),
                    s.id,
                )
            )
            continue
        dist, where = structure_distance_mm(s, entry, tip)
        if dist < cfg.avoid_distance_mm:
            out.append(
                NeedleWarning(
                    needle.id,
                    "near_avoid",
                    f"passes {dist:.1f} mm from {s.name} (closer than "
                    f"{cfg.avoid_distance_mm:g} mm)",
                    dist,
                    None if where is None else _tuple(where),
                    s.id,
                )
            )
    body = _body or _BodyLookup(plan, ct, cfg.body_hu)
    skin = 0
    if body.available:
        in_body = np.zeros(len(pts), dtype=bool)
        in_body[inside] = body.inside(g, kji[inside])
        first = _skin_index(in_body)
        if first is None:
            out.append(NeedleWarning(needle.id, "leaves_body", "the track never enters the body"))
            skin = len(pts)
        else:
            skin = first
            gaps = [(a, b) for a, b in _runs(~in_body[first:]) if b - a > 1]
            if gaps:
                a, b = gaps[0]
                gap_mm = (b - a) * step
                where_end = "before the tip" if first + b < len(pts) else "and the tip is outside"
                out.append(
                    NeedleWarning(
                        needle.id,
                        "leaves_body",
                        f"leaves the body {where_end} ({gap_mm:.1f} mm outside)",
                        gap_mm,
                        _tuple(pts[first + a]),
                    )
                )
    if ct is not None:
        sel = np.flatnonzero(inside)
        sel = sel[sel >= skin]
        if sel.size:
            hu = ct.hu[kji[sel, 0], kji[sel, 1], kji[sel, 2]].astype(np.float64)
            bone = hu > cfg.bone_hu
            bone_mm = float(bone.sum() * step)
            if bone_mm > cfg.bone_min_mm:
                out.append(
                    NeedleWarning(
                        needle.id,
                        "bone",
                        f"crosses bone: {bone_mm:.1f} mm above {cfg.bone_hu:g} HU "
                        f"(max {hu.max():.0f} HU)",
                        bone_mm,
                        _tuple(pts[sel[int(np.argmax(bone))]]),
                    )
                )
    out += crossing_warnings(needle, plan.needles if others is None else others, settings=cfg)
    return out


def crossing_warnings(
    needle: Needle, others: Sequence[Needle], *, settings: NeedleCheckSettings | None = None
) -> list[NeedleWarning]:
    """``crosses_needle`` warnings of ``needle`` against ``others`` (itself is skipped)."""
    cfg = settings or NeedleCheckSettings()
    out = []
    for other in others:
        if other.id == needle.id:
            continue
        dist = segment_distance_mm(needle.entry_mm, needle.tip_mm, other.entry_mm, other.tip_mm)
        if dist < cfg.needle_clearance_mm:
            name = other.label or other.id
            out.append(
                NeedleWarning(
                    needle.id,
                    "crosses_needle",
                    f"crosses needle {name} ({dist:.1f} mm apart, closer than "
                    f"{cfg.needle_clearance_mm:g} mm)",
                    dist,
                    None,
                    other.id,
                )
            )
    return out


def plan_needle_warnings(
    plan: Plan, ct: CTVolume | None = None, *, settings: NeedleCheckSettings | None = None
) -> dict[str, list[NeedleWarning]]:
    """Warnings of every needle of ``plan``, keyed by needle id (the body lookup is shared)."""
    cfg = settings or NeedleCheckSettings()
    body = _BodyLookup(plan, ct, cfg.body_hu)
    return {n.id: needle_warnings(plan, n, ct, settings=cfg, _body=body) for n in plan.needles}


# ====================================================================== the needle table
@dataclass(frozen=True)
class NeedleRow:
    """One row of the needle table (module docstring); lengths mm, angles degrees."""

    id: str
    label: str
    entry_mm: tuple[float, float, float]
    tip_mm: tuple[float, float, float]
    length_mm: float
    insertion_depth_mm: float
    angle_to_axial_deg: float
    angle_to_sagittal_deg: float
    angle_to_coronal_deg: float
    seed_ids: tuple[str, ...]
    warnings: tuple[NeedleWarning, ...] = field(default_factory=tuple)

    @property
    def n_seeds(self) -> int:
        return len(self.seed_ids)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "entry_mm": list(self.entry_mm),
            "tip_mm": list(self.tip_mm),
            "length_mm": round(self.length_mm, 3),
            "insertion_depth_mm": round(self.insertion_depth_mm, 3),
            "angle_to_axial_deg": round(self.angle_to_axial_deg, 2),
            "angle_to_sagittal_deg": round(self.angle_to_sagittal_deg, 2),
            "angle_to_coronal_deg": round(self.angle_to_coronal_deg, 2),
            "n_seeds": self.n_seeds,
            "seed_ids": list(self.seed_ids),
            "warnings": [w.message for w in self.warnings],
            "warning_details": [w.to_dict() for w in self.warnings],
        }


def _insertion_depth_mm(plan: Plan, needle: Needle, body: _BodyLookup) -> float:
    length = needle_length_mm(needle)
    if not body.available or length < 1e-6:
        return length
    pts = track_samples_mm(needle)
    inside, kji = _inside_grid(plan.geometry, pts)
    in_body = np.zeros(len(pts), dtype=bool)
    in_body[inside] = body.inside(plan.geometry, kji[inside])
    first = _skin_index(in_body)
    if first is None:
        return 0.0
    return length * (1.0 - first / (len(pts) - 1))


def needle_row(
    plan: Plan,
    needle: Needle,
    ct: CTVolume | None = None,
    *,
    warnings: Sequence[NeedleWarning] | None = None,
    settings: NeedleCheckSettings | None = None,
    _body: _BodyLookup | None = None,
) -> NeedleRow:
    """The table row of ``needle`` (warnings computed unless given)."""
    cfg = settings or NeedleCheckSettings()
    body = _body or _BodyLookup(plan, ct, cfg.body_hu)
    length = needle_length_mm(needle)
    if length > 1e-6:
        d = needle_direction(needle)
        angles = {k: angle_to_plane_deg(d, n) for k, n in _NORMALS.items()}
    else:
        angles = dict.fromkeys(_NORMALS, math.nan)
    if warnings is None:
        warnings = needle_warnings(plan, needle, ct, settings=cfg, _body=body)
    return NeedleRow(
        id=needle.id,
        label=needle.label,
        entry_mm=needle.entry_mm,
        tip_mm=needle.tip_mm,
        length_mm=length,
        insertion_depth_mm=_insertion_depth_mm(plan, needle, body),
        angle_to_axial_deg=angles["axial"],
        angle_to_sagittal_deg=angles["sagittal"],
        angle_to_coronal_deg=angles["coronal"],
        seed_ids=tuple(s.id for s in plan.seeds if s.needle_id == needle.id),
        warnings=tuple(warnings),
    )


def needle_table(
    plan: Plan,
    ct: CTVolume | None = None,
    *,
    settings: NeedleCheckSettings | None = None,
    warnings: Mapping[str, Sequence[NeedleWarning]] | None = None,
) -> list[NeedleRow]:
    """Rows of every needle of ``plan``, in the plan's order."""
    cfg = settings or NeedleCheckSettings()
    body = _BodyLookup(plan, ct, cfg.body_hu)
    return [
        needle_row(
            plan,
            n,
            ct,
            warnings=None if warnings is None else warnings.get(n.id, ()),
            settings=cfg,
            _body=body,
        )
        for n in plan.needles
    ]
