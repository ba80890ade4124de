"""Candidate needle paths for automatic planning, and why the others were rejected.

A candidate is a straight track from the skin to a tip in or just beyond the target (LPS mm).
Tracks come in families of parallel lines: for each approach direction (entry → tip) a square
grid of lines ``needle_spacing_mm`` apart in the plane perpendicular to it through the target
centroid, plus the same grid shifted by half a spacing across; family f of F is shifted by
f / F of a spacing along its second in-plane axis (cranio-caudal for axial directions), so
needles of different axial families lie in different planes and do not cross (the solver keeps
chosen needles that would come closer than the clearance apart, :func:`needle_conflicts`).
Approaches (patient prone, LPS: posterior is +y, so a posterior needle travels towards −y):

* ``posterior``: straight posterior and ±10° in the axial plane;
* ``posterolateral``: ±25° and ±40° from straight posterior in the axial plane;
* ``any``: the axial ring every 45° and, for each, cranio-caudal tilts of 0° and ±15°;
* a direction ``(x, y, z)``: that one (a parallel template).

Along a line, the *skin* is the first sample inside the body (a Body/External/Skin structure,
else the CT above −400 HU with holes filled per slice); the tip is ``tip_margin_mm`` beyond
the last target sample. A track that would come within ``no_pass_margin_mm`` of a no-pass
structure beyond some target part is shortened to end before it (still ending in the target);
otherwise it is rejected. Rejection reasons (:data:`REJECTION_REASONS`, counted in
:attr:`CandidateSet.rejected`):

* ``misses_target`` is not a rejection: the line never meets the target (not counted);
* ``outside_ct``: the track leaves the CT before reaching the body;
* ``no_body_entry``: the line never enters the body before the target;
* ``leaves_body``: the track leaves the body between the skin and the target;
* ``no_pass``: it passes within the margin of a no-pass structure before any target part;
* ``bone``: more bone (CT above ``bone_hu``) than allowed: more than ``bone_min_mm`` with
  ``bone="avoid"``, more than ``max_bone_mm`` with ``bone="allow"`` (where bone then costs
  ``bone_penalty_per_mm`` in the solver's objective: transpedicular and costotransverse routes);
* ``too_long``: skin to tip longer than ``max_length_mm``;
* ``short_in_target``: less than ``min_target_mm`` of the track lies in the target.

The no-pass distance is first screened with a Euclidean distance map (voxel centres), then
checked on the final segment against the structure's voxel *boxes* (the rule
:func:`planner.plan.needles.needle_warnings` uses for ``near_avoid``), so an accepted candidate
never triggers that warning.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.plan.model import Plan, Structure

__all__ = [
    "APPROACHES",
    "REJECTION_REASONS",
    "Candidate",
    "CandidateSet",
    "CandidateSettings",
    "approach_directions",
    "box_distance_mm",
    "make_candidates",
    "needle_conflicts",
    "segment_distance_matrix_mm",
]

APPROACHES = ("posterior", "posterolateral", "any")
REJECTION_REASONS = (
    "outside_ct",
    "no_body_entry",
    "leaves_body",
    "no_pass",
    "bone",
    "too_long",
    "short_in_target",
)
DEFAULT_NO_PASS_RE = re.compile(r"cord|canal|thecal", re.IGNORECASE)
BODY_NAME_RE = re.compile(r"^(body|external|skin|outline)$", re.IGNORECASE)
_STEP_MM = 0.5


@dataclass(frozen=True)
class CandidateSettings:
    """How candidates are made and rejected (module docstring); lengths in mm."""

    approach: str | tuple[float, float, float] = "posterior"
    parallel: bool = False
    needle_spacing_mm: float = 10.0
    no_pass_names: tuple[str, ...] = ()  # extra no-pass structures (by name)
    no_pass_margin_mm: float = 5.0
    bone: Literal["avoid", "allow"] = "avoid"
    bone_hu: float = 300.0
    bone_min_mm: float = 1.0
    max_bone_mm: float = 25.0
    bone_penalty_per_mm: float = 0.05
    body_hu: float = -400.0
    tip_margin_mm: float = 5.0
    max_length_mm: float = 200.0
    min_target_mm: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.needle_spacing_mm) and 3.0 <= self.needle_spacing_mm <= 30.0):
            raise InputError(f"needle spacing must be 3-30 mm, got {self.needle_spacing_mm:g} mm")
        if not (math.isfinite(self.no_pass_margin_mm) and 0.0 <= self.no_pass_margin_mm <= 30.0):
            raise InputError(f"no-pass margin must be 0-30 mm, got {self.no_pass_margin_mm:g} mm")
        if self.bone not in ("avoid", "allow"):
            raise InputError(f"--bone must be avoid or allow, got {self.bone!r}")
        if isinstance(self.approach, str) and self.approach not in APPROACHES:
            raise InputError(
                f"--approach must be one of {', '.join(APPROACHES)} or X,Y,Z, got {self.approach!r}"
            )


@dataclass(frozen=True)
class Candidate:
    """One accepted candidate needle (LPS mm).

    entry_mm / tip_mm : (3,) skin point and tip. direction : (3,) unit entry → tip.
    target_parts_mm : in-target parts as (start, stop) distances from the tip (mm).
    bone_mm : length above the bone threshold from skin to tip. family : index of its
    direction. truncated : shortened before a no-pass structure.
    """

    index: int
    entry_mm: NDArray[np.float64]
    tip_mm: NDArray[np.float64]
    direction: NDArray[np.float64]
    target_parts_mm: tuple[tuple[float, float], ...]
    bone_mm: float
    family: int
    truncated: bool = False

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.tip_mm - self.entry_mm))

    @property
    def in_target_mm(self) -> float:
        return float(sum(b - a for a, b in self.target_parts_mm))


@dataclass
class CandidateSet:
    """Accepted candidates, rejection counts by reason, the directions used."""

    candidates: list[Candidate]
    rejected: dict[str, int]
    directions: NDArray[np.float64]  # (F, 3) unit, entry → tip
    no_pass: tuple[str, ...]  # structure names
    lines_meeting_target: int = 0
    notes: list[str] = field(default_factory=list)
    cut_short: bool = False  # the deadline stopped the search before every direction was tried


def _unit(v: Sequence[float]) -> NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not (np.all(np.isfinite(a)) and n > 1e-9):
        raise InputError(f"--approach direction {tuple(v)} must be a non-zero vector")
    return a / n


def approach_directions(approach: str | Sequence[float]) -> NDArray[np.float64]:
    """Unit needle directions (F, 3), entry → tip, of an approach (module docstring)."""
    if not isinstance(approach, str):
        return _unit(approach)[np.newaxis, :]

    def axial(theta_deg: float, tilt_deg: float = 0.0) -> NDArray[np.float64]:
        t, p = math.radians(theta_deg), math.radians(tilt_deg)
        # theta 0: straight posterior entry, travelling anteriorly (−y); +theta towards +x.
        return _unit((math.sin(t) * math.cos(p), -math.cos(t) * math.cos(p), math.sin(p)))

    if approach == "posterior":
        return np.array([axial(a) for a in (0.0, -10.0, 10.0)])
    if approach == "posterolateral":
        return np.array([axial(s * a) for a in (25.0, 40.0) for s in (-1.0, 1.0)])
    if approach == "any":
        return np.array([axial(a, t) for a in range(0, 360, 45) for t in (0.0, -15.0, 15.0)])
    raise InputError(f"unknown approach {approach!r}")


def _orthonormal(d: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _structure_voxels_world(s: Structure) -> NDArray[np.float64]:
    kji = np.argwhere(s.crop).astype(np.float64) + [b.start for b in s.box]
    return s.geometry.zyx_to_world(kji)


def _border(structure: Structure) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Border voxels of a structure: indices (B, 3) k, j, i (float) and centres (B, 3) mm."""
    crop = structure.crop
    border = crop & ~ndimage.binary_erosion(crop, border_value=0)
    kji = np.argwhere(border).astype(np.float64) + [b.start for b in structure.box]
    return kji, structure.geometry.zyx_to_world(kji)


def _segment_box_distance_mm(
    g: GridGeometry,
    border: tuple[NDArray[np.float64], NDArray[np.float64]],
    entry: NDArray[np.float64],
    tip: NDArray[np.float64],
) -> float:
    kji, centres = border
    if kji.shape[0] == 0:
        return math.inf
    d = tip - entry
    u = np.clip(((centres - entry) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
    closest = entry + u[:, np.newaxis] * d
    rel = np.abs(g.world_to_zyx(closest) - kji) - 0.5
    gap = np.maximum(rel, 0.0) * g.spacing_mm[::-1]
    return float(np.sqrt((gap**2).sum(axis=1)).min())


def box_distance_mm(
    structure: Structure, entry: NDArray[np.float64], tip: NDArray[np.float64]
) -> float:
    """Distance (mm) from segment entry–tip (3,) to the voxel boxes of ``structure`` (0 when
    it passes through a voxel); the rule of the needle warnings."""
    if not structure.crop.any():
        return math.inf
    return _segment_box_distance_mm(structure.geometry, _border(structure), entry, tip)


class _Lookup:
    """Nearest-voxel lookups on the CT grid: target, body, HU, no-pass distance (mm)."""

    def __init__(
        self,
        plan: Plan,
        ct: CTVolume,
        target: Structure,
        no_pass: list[Structure],
        cfg: CandidateSettings,
        margin_mm: float,
    ) -> None:
        self.g = plan.geometry
        self.shape = np.array(self.g.shape_zyx)
        self.hu = ct.hu
        self.target = target
        self.cfg = cfg
        self.margin_mm = margin_mm
        body = next((s for s in plan.structures if BODY_NAME_RE.match(s.name)), None)
        self.body_structure = body
        self._body_slices: dict[int, NDArray[np.bool_]] = {}
        # No-pass distance map on a crop around the no-pass structures (+ margin): outside the
        # crop every point is farther than the margin.
        self.np_box: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
        if no_pass:
            union = np.zeros(self.g.shape_zyx, dtype=bool)
            for s in no_pass:
                union[s.box] |= s.crop
            if union.any():
                sp_kji = np.asarray(self.g.spacing_mm[::-1], dtype=np.float64)
                pad = np.ceil((margin_mm + 2.0) / sp_kji).astype(np.int64) + 1
                idx = np.argwhere(union)
                lo = np.maximum(idx.min(axis=0) - pad, 0)
                hi = np.minimum(idx.max(axis=0) + pad + 1, self.shape)
                crop = union[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
                self.np_dist = ndimage.distance_transform_edt(~crop, sampling=sp_kji)
                self.np_box = (lo, hi)
        # Conservative screen: voxel-centre distances understate box distances by up to half
        # a voxel diagonal. (Settling the lines inside that band on the voxel boxes admitted
        # a few more lines but made the any-direction approach ~5x slower for no better plan:
        # docs/autoplan.md.)
        self.screen_mm = margin_mm + 0.5 * float(np.linalg.norm(self.g.spacing_mm))
        self.borders = [_border(s) for s in no_pass]

    def clear_of_no_pass(self, entry: NDArray[np.float64], tip: NDArray[np.float64]) -> bool:
        """The segment keeps the margin from every no-pass structure's voxel boxes."""
        return all(
            _segment_box_distance_mm(self.g, b, entry, tip) >= self.margin_mm for b in self.borders
        )

    def kji(self, pts: NDArray[np.float64]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        kji = np.floor(self.g.world_to_zyx(pts) + 0.5).astype(np.int64)
        inside = np.all((kji >= 0) & (kji < self.shape), axis=1)
        return inside, np.clip(kji, 0, self.shape - 1)

    def in_structure(self, s: Structure, kji: NDArray[np.int64]) -> NDArray[np.bool_]:
        start = np.array([b.start for b in s.box])
        rel = kji - start
        ok = np.all((rel >= 0) & (rel < np.array(s.crop.shape)), axis=1)
        out = np.zeros(kji.shape[0], dtype=bool)
        r = rel[ok]
        out[ok] = s.crop[r[:, 0], r[:, 1], r[:, 2]]
        return out

    def in_body(self, kji: NDArray[np.int64]) -> NDArray[np.bool_]:
        if self.body_structure is not None:
            return self.in_structure(self.body_structure, kji)
        out = np.zeros(kji.shape[0], dtype=bool)
        for k in np.unique(kji[:, 0]):
            k = int(k)
            if k not in self._body_slices:
                self._body_slices[k] = _body_slice(self.hu[k], self.cfg.body_hu)
            sel = kji[:, 0] == k
            out[sel] = self._body_slices[k][kji[sel, 1], kji[sel, 2]]
        return out

    def no_pass_distance(self, kji: NDArray[np.int64]) -> NDArray[np.float64]:
        out = np.full(kji.shape[0], np.inf)
        if self.np_box is None:
            return out
        lo, hi = self.np_box
        ok = np.all((kji >= lo) & (kji < hi), axis=1)
        r = kji[ok] - lo
        out[ok] = self.np_dist[r[:, 0], r[:, 1], r[:, 2]]
        return out


def _body_slice(hu_yx: NDArray, body_hu: float) -> NDArray[np.bool_]:
    """The body on one slice: the largest connected region above ``body_hu``, holes filled
    (so a couch or a positioning aid is not skin)."""
    m = hu_yx > body_hu
    lab, n = ndimage.label(m)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(m)


def _runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    f = np.concatenate([[False], flags, [False]]).astype(np.int8)
    e = np.flatnonzero(np.diff(f))
    return list(zip(e[::2].tolist(), e[1::2].tolist(), strict=True))


def _track(
    look: _Lookup,
    base: NDArray[np.float64],
    d: NDArray[np.float64],
    t_first: float,
    t_last: float,
    no_pass: list[Structure],
    margin_mm: float,
) -> tuple[str, tuple | None]:
    """One line → ("ok", (entry, tip, parts, bone_mm, truncated)) or (reason, None)."""
    cfg = look.cfg
    t0 = t_first - cfg.max_length_mm - 20.0
    t1 = t_last + cfg.tip_margin_mm
    n = math.ceil((t1 - t0) / _STEP_MM) + 1
    ts = np.linspace(t0, t1, n)
    pts = base + ts[:, np.newaxis] * d
    inside, kji = look.kji(pts)
    in_body = np.zeros(n, dtype=bool)
    in_body[inside] = look.in_body(kji[inside])
    in_tgt = np.zeros(n, dtype=bool)
    in_tgt[inside] = look.in_structure(look.target, kji[inside])
    tgt_idx = np.flatnonzero(in_tgt)
    if tgt_idx.size == 0:
        return "short_in_target", None
    first_t = int(tgt_idx[0])
    body_before = np.flatnonzero(in_body[: first_t + 1])
    if body_before.size == 0:
        return ("outside_ct" if not inside[: first_t + 1].any() else "no_body_entry"), None
    skin = int(body_before[0])
    if not inside[skin : first_t + 1].all():
        return "outside_ct", None
    gaps = [(a, b) for a, b in _runs(~in_body[skin : first_t + 1]) if b - a > 2]
    if gaps:
        return "leaves_body", None
    # No-pass: the first sample after the skin closer than the (conservative) screen.
    dist = look.no_pass_distance(kji)
    bad = np.flatnonzero((dist[skin:] < look.screen_mm) & inside[skin:]) + skin
    tip_i = min(n - 1, int(tgt_idx[-1]) + round(cfg.tip_margin_mm / _STEP_MM))
    truncated = False
    if bad.size and bad[0] <= tip_i:
        v = int(bad[0])
        before = tgt_idx[tgt_idx < v]
        if before.size == 0:
            return "no_pass", None
        tip_i = min(int(before[-1]) + round(cfg.tip_margin_mm / _STEP_MM), v - 1)
        truncated = True
    entry, tip = pts[skin], pts[tip_i]
    if float(np.linalg.norm(tip - entry)) > cfg.max_length_mm:
        return "too_long", None
    seg = slice(skin, tip_i + 1)
    hu = look.hu[kji[seg, 0], kji[seg, 1], kji[seg, 2]]
    bone_mm = float(np.count_nonzero(hu > cfg.bone_hu) * _STEP_MM)
    limit = cfg.bone_min_mm if cfg.bone == "avoid" else cfg.max_bone_mm
    if bone_mm > limit:
        return "bone", None
    tip_flags = in_tgt[seg][::-1]  # from the tip
    parts = []
    for a, b in _runs(tip_flags):
        lo = max(0.0, (a - 0.5) * _STEP_MM)
        hi = min((tip_i - skin) * _STEP_MM, (b - 0.5) * _STEP_MM)
        if hi > lo:
            parts.append((lo, hi))
    if sum(b - a for a, b in parts) < cfg.min_target_mm:
        return "short_in_target", None
    if not look.clear_of_no_pass(entry, tip):  # the final verdict: the needle-warning rule
        return "no_pass", None
    return "ok", (entry, tip, tuple(parts), bone_mm, truncated)


def make_candidates(
    plan: Plan,
    ct: CTVolume,
    target: Structure,
    *,
    settings: CandidateSettings | None = None,
    directions: NDArray[np.float64] | None = None,
    deadline: float = math.inf,
) -> CandidateSet:
    """All candidate needles for ``target`` (module docstring); ``directions`` (F, 3)
    overrides the approach's. Past ``deadline`` (``time.perf_counter()`` s) no further
    direction is tried once some candidate was found (``cut_short``, with a note)."""
    cfg = settings or CandidateSettings()
    if target.voxel_count == 0:
        raise InputError(f"the target {target.name!r} is empty")
    no_pass = [s for s in plan.structures if DEFAULT_NO_PASS_RE.search(s.name)]
    for name in cfg.no_pass_names:
        s = plan.structure_named(name)
        if s is None:
            known = ", ".join(x.name for x in plan.structures)
            raise InputError(f"--no-pass {name}: no structure of that name (structures: {known})")
        if s not in no_pass:
            no_pass.append(s)
    if any(s.id == target.id for s in no_pass):
        raise InputError(f"the target {target.name!r} cannot be a no-pass structure")
    margin = cfg.no_pass_margin_mm
    look = _Lookup(plan, ct, target, no_pass, cfg, margin)
    dirs = approach_directions(cfg.approach) if directions is None else np.asarray(directions)
    pts = _structure_voxels_world(target)
    centre = pts.mean(axis=0)
    sp_world = np.abs(plan.geometry.direction) @ np.asarray(plan.geometry.spacing_mm)  # (3,)
    s = cfg.needle_spacing_mm
    rejected: Counter[str] = Counter()
    out: list[Candidate] = []
    meeting = 0
    notes: list[str] = []
    for fam, d in enumerate(dirs):
        if out and time.perf_counter() > deadline:
            notes.append(
                f"the time budget stopped the candidate search after {fam} of {len(dirs)} "
                "directions"
            )
            break
        u, v = _orthonormal(d)
        rel = pts - centre
        pu, pv, pd = rel @ u, rel @ v, rel @ d
        # A line meets a voxel when it passes within the voxel's half-extent in the plane.
        hu_, hv_ = 0.5 * float(np.abs(u) @ sp_world), 0.5 * float(np.abs(v) @ sp_world)
        # Families are staggered along v (the cranio-caudal axis for axial directions) by
        # s / F, so lines of two axial families lie in different planes and never cross.
        off_v = fam * s / len(dirs)
        for off_u in (0.0, 0.5 * s):
            iu = np.arange(
                math.floor((pu.min() - off_u) / s), math.ceil((pu.max() - off_u) / s) + 1
            )
            iv = np.arange(
                math.floor((pv.min() - off_v) / s), math.ceil((pv.max() - off_v) / s) + 1
            )
            for a in iu:
                for b in iv:
                    cu, cv = a * s + off_u, b * s + off_v
                    near = (np.abs(pu - cu) <= hu_) & (np.abs(pv - cv) <= hv_)
                    if not near.any():
                        continue
                    meeting += 1
                    base = centre + cu * u + cv * v
                    reason, got = _track(
                        look,
                        base,
                        d,
                        float(pd[near].min()),
                        float(pd[near].max()),
                        no_pass,
                        margin,
                    )
                    if got is None:
                        rejected[reason] += 1
                        continue
                    entry, tip, parts, bone_mm, trunc = got
                    out.append(Candidate(len(out), entry, tip, d, parts, bone_mm, fam, trunc))
    return CandidateSet(
        out,
        {r: int(rejected.get(r, 0)) for r in REJECTION_REASONS},
        dirs,
        tuple(x.name for x in no_pass),
        meeting,
        notes,
        bool(notes),
    )


def segment_distance_matrix_mm(
    a0: NDArray[np.float64], a1: NDArray[np.float64], *, block: int = 256
) -> NDArray[np.float64]:
    """Smallest distances (N, N) between segments a0[i]–a1[i] (N, 3): the exact closest
    points of two segments (clamped parameters; Ericson, Real-Time Collision Detection §5.1.9),
    vectorised over pairs in blocks of rows; the diagonal is inf."""
    n = a0.shape[0]
    out = np.full((n, n), np.inf)
    if n == 0:
        return out
    d = a1 - a0
    ll = np.maximum((d * d).sum(axis=1), 1e-12)
    for i0 in range(0, n, block):
        i = slice(i0, min(n, i0 + block))
        d1, p1, a = d[i, None, :], a0[i, None, :], ll[i, None]
        d2, p2, e = d[None], a0[None], ll[None]
        r = p1 - p2
        b = (d1 * d2).sum(axis=2)
        c = (d1 * r).sum(axis=2)
        f = (d2 * r).sum(axis=2)
        den = a * e - b * b
        safe = np.where(den > 1e-9 * a * e, den, 1.0)
        sp = np.where(den > 1e-9 * a * e, np.clip((b * f - c * e) / safe, 0.0, 1.0), 0.0)
        t = (b * sp + f) / e
        s_lo = np.clip(-c / a, 0.0, 1.0)
        s_hi = np.clip((b - c) / a, 0.0, 1.0)
        sp = np.where(t < 0.0, s_lo, np.where(t > 1.0, s_hi, sp))
        t = np.clip(t, 0.0, 1.0)
        gap = (p1 + sp[..., None] * d1) - (p2 + t[..., None] * d2)
        out[i] = np.sqrt((gap * gap).sum(axis=2))
    out = np.minimum(out, out.T)
    np.fill_diagonal(out, np.inf)
    return out


def needle_conflicts(
    entries: NDArray[np.float64], tips: NDArray[np.float64], min_separation_mm: float
) -> list[tuple[int, int]]:
    """Pairs (i < j) of needles closer than ``min_separation_mm`` anywhere along their
    tracks (crossing or converging needles; parallel needles one spacing apart are fine)."""
    dist = segment_distance_matrix_mm(entries, tips)
    i, j = np.nonzero(np.triu(dist < min_separation_mm, 1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def target_world_points(target: Structure) -> NDArray[np.float64]:
    """Voxel centres (M, 3) LPS mm of a structure."""
    return _structure_voxels_world(target)


def geometry_of(plan: Plan) -> GridGeometry:
    return plan.geometry
