"""Live isodoses while seeds and needles are edited: a Qt-free model for the GUI.

:class:`LiveDose` keeps, for each of the three views (axial, coronal, sagittal) at its current
slice, an incremental dose accumulator on that view's CT pixel grid — a
:class:`dose.engine.DoseGrid` in FAST mode on the one-slice geometry of the view — and
extracts isodose lines from it (default 50/90/100/150/200 % of the prescription): as line
segments for drawing (:meth:`LiveDose.isodose_segments`, numba marching squares) or as
assembled polylines (:meth:`LiveDose.isodose_lines`, ``skimage.measure.find_contours``).
An edit of one seed (a drag step) costs one fused subtract-old/add-new pass per view;
changing a view's slice recomputes that view from all seeds.

Use::

    live = LiveDose(doc.plan)                  # or LiveDose(plan, engine=make_engine(...))
    live.attach(doc)                           # follow every edit/undo/redo of the document
    live.set_slice("axial", k)                 # crosshair moved: recompute that view
    live.events.slices_changed.connect(fn)     # fn(frozenset of view names) after each update
    segs = live.isodose_segments("axial")      # {percent: (S, 2, 2) (row, col) segments}, to draw
    lines = live.isodose_lines("axial")        # {percent: [(M, 2) (row, col) polylines]}
    dose = live.slice_dose_gy("axial")         # (rows, cols) Gy on the view's full pixel grid
    # when the edit ends (mouse released):
    req = live.request_exact()                 # a snapshot: (generation, plan)
    result = live.run_exact(req)               # in a worker thread: exact dose, DVH, metrics
    live.events.exact_ready.connect(fn)        # fn(PlanDosimetry), only for the newest request

Stale results: every applied edit increments :attr:`LiveDose.generation`. An
:class:`ExactRequest` remembers the generation it was made at; :meth:`deliver_exact` accepts its
result only if no edit happened since (else it is dropped and ``exact_stale`` is emitted), and
the request's :meth:`~ExactRequest.cancelled` turns True as soon as a newer edit arrives, so a
computation passed it as ``cancel`` stops early (:class:`dose.progress.Cancelled`).

Views (pixel grids of the plan's CT, so lines overlay the CT image exactly):

* ``axial`` at slice k: rows = CT rows j, columns = CT columns i (full shape (ny, nx));
* ``coronal`` at row j: rows = slices k, columns = i (full shape (nz, nx));
* ``sagittal`` at column i: rows = slices k, columns = j (full shape (nz, ny)).

Oblique planes: a view whose plane is not a CT slice (a tilted or rotated CT seen on the fixed
LPS views) is given its plane with :meth:`LiveDose.set_oblique` (unit normal, screen right and
up in LPS, a point of the plane): its pixel grid is then that plane, at the CT's finest in-plane
spacing, over the computed box projected onto it (``full_shape`` is that region,
``offset_rc`` (0, 0), ``index`` −1); :meth:`set_slice` leaves such a view alone and
:meth:`set_oblique` with a new point moves it. :meth:`clear_oblique` returns to the CT slice.

With ``crop_margin_mm`` (default 30 mm) only the part of each view within the box of targets,
organs at risk and seeds plus that margin is computed (the rest of the view is 0 Gy in
:meth:`slice_dose_gy`; I-125 isodoses of interest lie well inside it); None computes whole
views. The box is enlarged (all views recomputed) when a seed moves out of it.

Accuracy: FAST mode is within 2 % of the exact dose beyond 1 mm from every seed
(:mod:`dose.engine`), for display only; reports and goals use the exact refresh
(:func:`planner.plan.dosimetry.compute_plan_dosimetry`).

Threads: :meth:`sync`, :meth:`set_slice` and the queries are meant for one (GUI) thread;
:meth:`run_exact`/:meth:`deliver_exact` may run in a worker (events are emitted in the calling
thread; the GUI marshals them). Incremental updates run numba with ``threads`` (default 1):
tiny kernels are faster on one thread than split over busy cores; recomputing a whole view
(slice change) uses all of numba's threads.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from psygnal import Signal

from dose.engine import DoseEngine, DoseGrid, GridMode, SeedSet, make_engine
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.progress import CancelFn, ProgressFn
from planner.plan.dosimetry import PlanDosimetry, compute_plan_dosimetry, plan_seed_set
from planner.plan.model import Plan

__all__ = [
    "DEFAULT_LEVELS_PERCENT",
    "VIEWS",
    "ExactRequest",
    "LiveDose",
    "LiveDoseEvents",
    "ObliquePlane",
    "ViewName",
    "ViewPlane",
]

ViewName = Literal["axial", "coronal", "sagittal"]
VIEWS: tuple[ViewName, ...] = ("axial", "coronal", "sagittal")
DEFAULT_LEVELS_PERCENT: tuple[float, ...] = (50.0, 90.0, 100.0, 150.0, 200.0)
#: More changed seeds than this in one sync: recompute the views instead of editing them.
_MAX_INCREMENTAL = 24
_SeedKey = tuple[tuple[float, float, float], tuple[float, float, float], float]


@contextlib.contextmanager
def _numba_threads(n: int | None) -> Iterator[None]:
    """Run the block with numba's thread count for this thread set to ``n`` (None: as is)."""
    if n is None:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), old)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


@dataclass(frozen=True)
class ViewPlane:
    """Where a view's computed region lies.

    geometry : one-slice grid (shape (1, rows, cols)) of the computed region, LPS mm;
    index : the view's slice on the CT grid (k axial, j coronal, i sagittal);
    offset_rc : (row, col) of the region's first pixel in the full view;
    full_shape : (rows, cols) of the full view.
    """

    view: ViewName
    index: int
    geometry: GridGeometry
    offset_rc: tuple[int, int]
    full_shape: tuple[int, int]

    def rc_to_world_mm(self, rc: NDArray[np.float64]) -> NDArray[np.float64]:
        """(M, 2) (row, col) in the full view → (M, 3) LPS mm."""
        rc = np.asarray(rc, dtype=np.float64).reshape(-1, 2)
        kji = np.column_stack(
            [np.zeros(len(rc)), rc[:, 0] - self.offset_rc[0], rc[:, 1] - self.offset_rc[1]]
        )
        return self.geometry.zyx_to_world(kji)


@dataclass(frozen=True)
class ObliquePlane:
    """An oblique view plane: unit ``normal``, in-plane ``right`` and ``up`` (LPS) and its
    position ``n · x`` (mm)."""

    normal: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]
    position_mm: float


class LiveDoseEvents:
    """Signals of :class:`LiveDose` (psygnal; emitted in the calling thread)."""

    slices_changed = Signal(object)  # frozenset[ViewName]
    exact_ready = Signal(object)  # PlanDosimetry
    exact_stale = Signal(int)  # generation of the dropped request


@dataclass(frozen=True)
class ExactRequest:
    """A snapshot for the background exact refresh (module docstring)."""

    generation: int
    plan: Plan
    owner: LiveDose

    def cancelled(self) -> bool:
        """True once a newer edit made this request stale (use as ``cancel``)."""
        return self.owner.generation != self.generation


class LiveDose:
    """Incremental live dose on the three views (module docstring).

    plan : the plan to follow (its CT grid, prescription, source and seeds);
    engine : a numba engine (default ``make_engine(plan.source.model_id, "2d")``);
    views : initial slices {view: index} (default: the middle of the CT);
    crop_margin_mm : computed region (None: whole views); levels_percent : isodose levels
    (% of PD); threads : numba threads for incremental work (None: numba's default).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        engine: DoseEngine | None = None,
        views: dict[ViewName, int] | None = None,
        crop_margin_mm: float | None = 30.0,
        levels_percent: Sequence[float] = DEFAULT_LEVELS_PERCENT,
        threads: int | None = 1,
        mode: GridMode = "fast",
    ) -> None:
        if mode not in ("fast", "exact"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode: GridMode = mode
        self.events = LiveDoseEvents()
        self.levels_percent = tuple(float(p) for p in levels_percent)
        self.crop_margin_mm = crop_margin_mm
        self.threads = threads
        self.generation = 0
        self.latest_exact: PlanDosimetry | None = None
        self._lock = threading.Lock()
        self._plan = plan
        self._engine = engine
        nz, ny, nx = plan.geometry.shape_zyx
        self._index: dict[ViewName, int] = {
            "axial": nz // 2,
            "coronal": ny // 2,
            "sagittal": nx // 2,
        }
        self._index.update(views or {})
        self._planes: dict[ViewName, ViewPlane] = {}
        self._grids: dict[ViewName, DoseGrid] = {}
        self._seeds: dict[str, _SeedKey] = {}
        #: The plan's seed tuple :attr:`_seeds` was made from (None: unknown).
        self._seeds_tuple: tuple | None = None
        #: {seed id: (Seed object, source, key)}: see :meth:`_seed_keys`.
        self._key_cache: dict[str, tuple[object, object, _SeedKey]] = {}
        self._oblique: dict[ViewName, ObliquePlane] = {}
        self._box: tuple[slice, slice, slice] | None = None
        self._world_box: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self.problem = ""
        self._rebuild(plan)

    # ------------------------------------------------------------------ properties
    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def prescription_gy(self) -> float | None:
        rx = self._plan.prescription
        return None if rx is None else float(rx.dose_gy)

    def plane(self, view: ViewName) -> ViewPlane:
        return self._planes[view]

    def slice_index(self, view: ViewName) -> int:
        return self._index[view]

    @property
    def n_seeds(self) -> int:
        return len(self._seeds)

    # ------------------------------------------------------------------ setup
    def _make_engine(self, plan: Plan) -> DoseEngine | None:
        if self._engine is not None:
            return self._engine
        if plan.source is None:
            return None
        self._engine = make_engine(plan.source.model_id, "2d", "numba")
        return self._engine

    def _seed_keys(self, plan: Plan) -> dict[str, _SeedKey]:
        """{seed id: (position mm, unit axis, S_K at implant U)} of ``plan``'s seeds.

        Seeds are immutable: a seed object already seen (with the same source) reuses its
        key, so a drag step converts only the seed that moved (the plan's other seeds are the
        same objects)."""
        src = plan.source
        cache = self._key_cache
        keys: dict[str, _SeedKey] = {}
        todo = []
        for s in plan.seeds:
            hit = cache.get(s.id)
            if hit is not None and hit[0] is s and hit[1] is src:
                keys[s.id] = hit[2]
            else:
                todo.append(s)
        if todo:
            converted = self._convert(plan, todo)
            if converted is None:
                return {}
            keys.update(converted)
            keys = {s.id: keys[s.id] for s in plan.seeds}  # the plan's order
        if len(cache) > 2 * len(keys) + 64:  # forget seeds deleted long ago
            self._key_cache = {sid: cache[sid] for sid in keys}
        return keys

    def _convert(self, plan: Plan, seeds: Sequence[object]) -> dict[str, _SeedKey] | None:
        """Keys of ``seeds`` (seed objects of ``plan``), remembered in the key cache; None
        (and :attr:`problem` set) when the plan's source cannot convert them.

        A seed that differs from the one last keyed under its id only by its position (a
        drag step) keeps that key's axis and strength: no conversion (plan_seed_set costs
        ~0.15 ms for one seed, mostly the source's decay from its dates)."""
        src = plan.source
        out: dict[str, _SeedKey] = {}
        todo = []
        for s in seeds:
            hit = self._key_cache.get(s.id)  # type: ignore[attr-defined]
            old = None if hit is None or hit[1] is not src else hit[0]
            p = getattr(s, "position_mm", None)
            if (
                old is not None
                and old.axis == s.axis  # type: ignore[attr-defined]
                and old.strength_u == s.strength_u  # type: ignore[attr-defined]
                and len(p) == 3
                and all(math.isfinite(v) for v in p)
            ):
                key = (tuple(float(v) for v in p), hit[2][1], hit[2][2])  # type: ignore[index]
                self._key_cache[s.id] = (s, src, key)  # type: ignore[attr-defined]
                out[s.id] = key  # type: ignore[attr-defined]
            else:
                todo.append(s)
        if not todo:
            return out
        seeds = todo
        try:  # plan_seed_set reads only the source and the seeds
            arrays, ids = plan_seed_set(SimpleNamespace(source=src, seeds=tuple(seeds)))  # type: ignore[arg-type]
        except InputError as exc:
            self.problem = exc.problem if hasattr(exc, "problem") else str(exc)
            return None
        for i, (s, sid) in enumerate(zip(seeds, ids, strict=True)):
            key = (
                tuple(arrays.positions_mm[i].tolist()),
                tuple(arrays.axes[i].tolist()),
                float(arrays.strengths_u[i]),
            )
            self._key_cache[sid] = (s, src, key)  # type: ignore[assignment]
            out[sid] = key  # type: ignore[assignment]
        return out

    def _changed_seeds(self, plan: Plan) -> list | None:
        """The seeds of ``plan`` that are not the objects :attr:`_seeds` was made from (a
        drag step: one), found by identity without a per-seed key; None when that cannot
        tell (seeds added, removed or reordered, another source: compare every key)."""
        old = self._seeds_tuple
        seeds = plan.seeds
        if old is seeds:
            return []
        if old is None or len(old) != len(seeds) or plan.source is not self._plan.source:
            return None
        out = []
        for a, b in zip(old, seeds, strict=True):
            if a is not b:
                if a.id != b.id:
                    return None
                out.append(b)
        return out

    def _crop_box(self, plan: Plan, keys: dict[str, _SeedKey]) -> tuple[slice, slice, slice]:
        g = plan.geometry
        nz, ny, nx = g.shape_zyx
        full = (slice(0, nz), slice(0, ny), slice(0, nx))
        if self.crop_margin_mm is None:
            self._world_box = None
            return full
        from planner.plan.dosimetry import _structure_world_box

        los, his = [], []
        for s in plan.structures:
            if s.role in ("target", "oar") and s.voxel_count:
                lo, hi = _structure_world_box(s)
                los.append(lo)
                his.append(hi)
        if keys:
            p = np.array([k[0] for k in keys.values()])
            los.append(p.min(axis=0))
            his.append(p.max(axis=0))
        if not los:
            self._world_box = None
            return full
        m = float(self.crop_margin_mm)
        lo = np.min(los, axis=0) - m
        hi = np.max(his, axis=0) + m
        self._world_box = (lo + 0.5 * m, hi - 0.5 * m)  # leave when a seed gets this close
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        kji = g.world_to_zyx(corners)
        a = np.clip(np.floor(kji.min(axis=0)).astype(int), 0, [nz - 1, ny - 1, nx - 1])
        b = np.clip(np.ceil(kji.max(axis=0)).astype(int) + 1, 1, [nz, ny, nx])
        return (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))

    def _oblique_plane(self, view: ViewName, spec: ObliquePlane) -> ViewPlane:
        """The pixel grid of an oblique view: the computed box projected onto its plane."""
        g = self._plan.geometry
        box = self._box
        assert box is not None
        n, right, up = (np.asarray(v, dtype=np.float64) for v in (spec.normal, spec.right, spec.up))
        corners_kji = np.array(
            [
                [k, j, i]
                for k in (box[0].start, box[0].stop - 1)
                for j in (box[1].start, box[1].stop - 1)
                for i in (box[2].start, box[2].stop - 1)
            ],
            dtype=np.float64,
        )
        world = g.zyx_to_world(corners_kji)
        step = float(np.min(g.spacing_mm[:2]))  # the CT's finest in-plane spacing
        r, u = world @ right, world @ up
        cols = int(np.ceil((r.max() - r.min()) / step)) + 1
        rows = int(np.ceil((u.max() - u.min()) / step)) + 1
        origin = spec.position_mm * n + r.min() * right + u.min() * up
        # Columns along right, rows along up, the third axis along the normal.
        direction = np.column_stack([right, up, n])
        geom = GridGeometry((1, rows, cols), origin, np.array([step, step, step]), direction)
        return ViewPlane(view, -1, geom, (0, 0), (rows, cols))

    def _plane(self, view: ViewName) -> ViewPlane:
        spec = self._oblique.get(view)
        if spec is not None:
            return self._oblique_plane(view, spec)
        g = self._plan.geometry
        nz, ny, nx = g.shape_zyx
        box = self._box
        assert box is not None
        kb, jb, ib = box
        d = g.direction
        sx, sy, sz = (float(v) for v in g.spacing_mm)
        idx = int(self._index[view])
        if view == "axial":
            idx = min(max(idx, 0), nz - 1)
            start = (idx, jb.start, ib.start)
            cols, spacing = (d[:, 0], d[:, 1], d[:, 2]), (sx, sy, sz)
            shape, offset, full = (
                (1, jb.stop - jb.start, ib.stop - ib.start),
                (jb.start, ib.start),
                (ny, nx),
            )
        elif view == "coronal":
            idx = min(max(idx, 0), ny - 1)
            start = (kb.start, idx, ib.start)
            cols, spacing = (d[:, 0], d[:, 2], d[:, 1]), (sx, sz, sy)
            shape, offset, full = (
                (1, kb.stop - kb.start, ib.stop - ib.start),
                (kb.start, ib.start),
                (nz, nx),
            )
        else:
            idx = min(max(idx, 0), nx - 1)
            start = (kb.start, jb.start, idx)
            cols, spacing = (d[:, 1], d[:, 2], d[:, 0]), (sy, sz, sx)
            shape, offset, full = (
                (1, kb.stop - kb.start, jb.stop - jb.start),
                (kb.start, jb.start),
                (nz, ny),
            )
        self._index[view] = idx
        origin = g.zyx_to_world(np.array([start], dtype=np.float64))[0]
        geom = GridGeometry(shape, origin, np.array(spacing), np.column_stack(cols))
        return ViewPlane(view, idx, geom, offset, full)

    def _fill(self, view: ViewName) -> None:
        """(Re)compute one view from all seeds."""
        plane = self._plane(view)
        self._planes[view] = plane
        eng = self._engine
        if eng is None:
            self._grids.pop(view, None)
            return
        grid = DoseGrid(eng, plane.geometry, mode=self.mode)
        if self._seeds:
            ids: list[Hashable] = list(self._seeds)
            vals = list(self._seeds.values())
            seeds = SeedSet.create([v[0] for v in vals], [v[1] for v in vals], [v[2] for v in vals])
            grid.set_seeds(seeds, ids)  # a whole view: all of numba's threads
        self._grids[view] = grid

    def _rebuild(self, plan: Plan) -> None:
        self._plan = plan
        self.problem = ""
        self._make_engine(plan)
        self._seeds = self._seed_keys(plan)
        self._seeds_tuple = None if self.problem else plan.seeds
        if self._engine is None and not self.problem:
            self.problem = "the plan has no seed source: no live dose"
        self._box = self._crop_box(plan, self._seeds)
        for v in VIEWS:
            self._fill(v)

    # ------------------------------------------------------------------ editing
    def sync(self, plan: Plan) -> frozenset[ViewName]:
        """Follow ``plan``: apply the seed changes since the last sync incrementally (added,
        removed, moved seeds, by id); recompute everything when the CT, source, prescription
        or structures changed. Returns (and emits) the views that changed."""
        old = self._plan
        if plan is not old:
            with self._lock:  # any change makes a pending exact result stale
                self.generation += 1
        structural = (
            plan.ct is not old.ct
            or plan.source != old.source
            or (
                plan.structures is not old.structures
                and [s.id for s in plan.structures] != [s.id for s in old.structures]
            )
        )
        if structural or self._engine is None:
            self._rebuild(plan)
            changed = frozenset(VIEWS)
            self.events.slices_changed.emit(changed)
            return changed
        candidates = self._changed_seeds(plan)
        converted = self._convert(plan, candidates) if candidates else {}
        if candidates is None or converted is None:  # compare every seed's key
            new = self._seed_keys(plan) if converted is not None else {}
            removed = [sid for sid in self._seeds if sid not in new]
            added = [sid for sid in new if sid not in self._seeds]
            moved = [sid for sid in new if sid in self._seeds and new[sid] != self._seeds[sid]]
        else:  # the same seeds but ``candidates`` (a drag step): no per-seed Python work
            new = {**self._seeds, **converted} if converted else self._seeds
            removed = added = []
            moved = [sid for sid in converted if new[sid] != self._seeds[sid]]
        self._plan = plan
        self._seeds_tuple = plan.seeds if len(new) == len(plan.seeds) else None
        if not (removed or added or moved):
            self._seeds = new  # (the same keys; a reorder keeps the plan's order)
            if plan.prescription != old.prescription:
                self.events.slices_changed.emit(frozenset(VIEWS))
                return frozenset(VIEWS)
            return frozenset()
        if self._world_box is not None and (added or moved):
            lo, hi = self._world_box
            p = np.array([new[s][0] for s in (*added, *moved)])
            if np.any(p < lo) or np.any(p > hi):
                self._rebuild(plan)
                self.events.slices_changed.emit(frozenset(VIEWS))
                return frozenset(VIEWS)
        self._seeds = new
        if len(removed) + len(added) + len(moved) > _MAX_INCREMENTAL:
            for v in VIEWS:
                self._fill(v)
        else:
            with _numba_threads(self.threads):
                for grid in self._grids.values():
                    for sid in removed:
                        grid.remove(sid)
                    for sid in moved:
                        p, a, s = new[sid]
                        grid.move(sid, position_mm=p, axis=a, strength_u=s)
                    for sid in added:
                        p, a, s = new[sid]
                        grid.add(sid, p, a, s)
        changed = frozenset(VIEWS)
        self.events.slices_changed.emit(changed)
        return changed

    def set_slice(self, view: ViewName, index: int) -> None:
        """Show ``view`` at slice ``index`` of the CT grid (recomputes that view); an oblique
        view only remembers the index (its plane is moved by :meth:`set_oblique`)."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        if self._index.get(view) == int(index) and view in self._planes:
            return
        self._index[view] = int(index)
        if view in self._oblique:
            return
        self._fill(view)
        self.events.slices_changed.emit(frozenset({view}))

    def oblique(self, view: ViewName) -> ObliquePlane | None:
        """The oblique plane ``view`` shows, or None when it shows a CT slice."""
        return self._oblique.get(view)

    def set_oblique(
        self,
        view: ViewName,
        normal: Sequence[float],
        right: Sequence[float],
        up: Sequence[float],
        point_mm: Sequence[float],
    ) -> bool:
        """Show ``view`` on the plane through ``point_mm`` with unit ``normal`` and in-plane
        ``right``/``up`` (LPS; module docstring). Recomputes that view when the plane changed;
        returns whether it did."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        n = np.asarray(normal, dtype=np.float64)
        spec = ObliquePlane(
            tuple(float(v) for v in n),  # type: ignore[arg-type]
            tuple(float(v) for v in right),  # type: ignore[arg-type]
            tuple(float(v) for v in up),  # type: ignore[arg-type]
            float(np.asarray(point_mm, dtype=np.float64) @ n),
        )
        old = self._oblique.get(view)
        if (
            old is not None
            and view in self._planes
            and old.normal == spec.normal
            and old.right == spec.right
            and old.up == spec.up
            and abs(old.position_mm - spec.position_mm) < 1e-6
        ):
            return False
        self._oblique[view] = spec
        self._fill(view)
        self.events.slices_changed.emit(frozenset({view}))
        return True

    def clear_oblique(self, view: ViewName) -> None:
        """Show ``view`` on its CT slice again (recomputes it) if it was oblique."""
        if self._oblique.pop(view, None) is not None:
            self._fill(view)
            self.events.slices_changed.emit(frozenset({view}))

    def attach(self, doc: object) -> None:
        """Follow a :class:`planner.plan.document.PlanDocument`: :meth:`sync` on every
        ``changed`` event (edits, undo, redo, loads)."""
        doc.events.changed.connect(lambda ev: self.sync(ev.plan))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ queries
    def region_dose_gy(self, view: ViewName) -> NDArray[np.float64]:
        """(rows, cols) D∞ (Gy) of the computed region of ``view`` (see :meth:`plane`)."""
        grid = self._grids.get(view)
        plane = self._planes[view]
        if grid is None:
            return np.zeros(plane.geometry.shape_zyx[1:], dtype=np.float64)
        return grid.dose_gy[0]

    def slice_dose_gy(self, view: ViewName) -> NDArray[np.float64]:
        """(rows, cols) D∞ (Gy) on the view's full pixel grid (0 outside the computed region)."""
        plane = self._planes[view]
        out = np.zeros(plane.full_shape, dtype=np.float64)
        region = self.region_dose_gy(view)
        r0, c0 = plane.offset_rc
        out[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]] = region
        return out

    def isodose_lines(
        self, view: ViewName, levels_percent: Sequence[float] | None = None
    ) -> dict[float, list[NDArray[np.float64]]]:
        """Isodose polylines of ``view``: {percent of PD: [(M, 2) (row, col) in the full
        view's pixel coordinates]} (closed lines repeat their first point). Empty without a
        prescription; a level above the maximum dose has no line."""
        from skimage.measure import find_contours

        pd = self.prescription_gy
        levels = self.levels_percent if levels_percent is None else tuple(levels_percent)
        if pd is None:
            return {}
        dose = self.region_dose_gy(view)
        r0, c0 = self._planes[view].offset_rc
        top = float(dose.max()) if dose.size else 0.0
        out: dict[float, list[NDArray[np.float64]]] = {}
        for p in levels:
            level = pd * p / 100.0
            if not level < top or dose.shape[0] < 2 or dose.shape[1] < 2:
                out[p] = []
                continue
            shift = np.array([r0, c0], dtype=np.float64)
            out[p] = [c + shift for c in find_contours(dose, level)]
        return out

    def isodose_segments(
        self, view: ViewName, levels_percent: Sequence[float] | None = None
    ) -> dict[float, NDArray[np.float64]]:
        """Isodose lines of ``view`` as line segments, for drawing: {percent of PD: (S, 2, 2)
        segment ends (row, col) in the full view's pixel coordinates}
        (:func:`planner.plan.isolines.iso_segments_levels`, every level in one pass; the
        same points as :meth:`isodose_lines`, not assembled into polylines, many times
        faster)."""
        from planner.plan.isolines import iso_segments_levels

        pd = self.prescription_gy
        levels = self.levels_percent if levels_percent is None else tuple(levels_percent)
        if pd is None:
            return {}
        dose = self.region_dose_gy(view)
        r0, c0 = self._planes[view].offset_rc
        out: dict[float, NDArray[np.float64]] = {p: np.zeros((0, 2, 2)) for p in levels}
        if not levels or dose.size == 0:
            return out
        shift = np.array([[1.0, 0.0, r0], [0.0, 1.0, c0], [0.0, 0.0, 0.0]])  # (row, col) + offset
        pts, counts = iso_segments_levels(dose, [pd * p / 100.0 for p in levels], shift)
        start = 0
        for p, n in zip(levels, counts.tolist(), strict=True):
            out[p] = pts[2 * start : 2 * (start + n), :2].reshape(-1, 2, 2)
            start += n
        return out

    # ------------------------------------------------------------------ exact refresh
    def request_exact(self) -> ExactRequest:
        """A snapshot of the current plan for the background exact refresh."""
        with self._lock:
            return ExactRequest(self.generation, self._plan, self)

    def deliver_exact(self, request: ExactRequest, result: PlanDosimetry) -> bool:
        """Accept ``result`` if ``request`` is still current (emits ``exact_ready``); else drop
        it (emits ``exact_stale``). Returns whether it was accepted."""
        with self._lock:
            current = request.generation == self.generation
            if current:
                self.latest_exact = result
        if current:
            self.events.exact_ready.emit(result)
        else:
            self.events.exact_stale.emit(request.generation)
        return current

    def run_exact(
        self,
        request: ExactRequest,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> PlanDosimetry | None:
        """Compute the exact dosimetry of ``request`` and deliver it; None when it went stale
        (cancelled by a newer edit, or finished after one). ``cancel`` (the user's) also
        stops it (raises :class:`dose.progress.Cancelled`)."""
        from dose.progress import Cancelled

        def stop() -> bool:
            return request.cancelled() or (cancel is not None and cancel())

        try:
            result = compute_plan_dosimetry(request.plan, progress=progress, cancel=stop)
        except Cancelled:
            if cancel is not None and cancel():
                raise
            self.events.exact_stale.emit(request.generation)
            return None
        return result if self.deliver_exact(request, result) else None
