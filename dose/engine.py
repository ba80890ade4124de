"""The TG-43U1 dose engine interface: seeds in, dose rate and D∞ out, on points, grids or slices.

Public API
----------
::

    from dose.engine import SeedSet, make_engine, DoseGrid, warm_up

    seeds = SeedSet.create(positions_mm, axes=None, strengths_u=0.8)     # (N,3) LPS mm, (N,3), (N,)
    eng = make_engine("6711", formalism="2d", kind="numba")              # or kind="reference"
    res = eng.dose_rate_at_points(seeds, points_mm)                      # DoseResult, values (P,)
    res = eng.dose_rate_on_grid(seeds, geometry, cancel=fn, progress=fn) # values (z, y, x)
    res = eng.dose_rate_on_slice(seeds, geometry, k)                     # values (y, x), slice k
    res = eng.dose_rate_on_grid(seeds, geometry, mode="fast")            # interactive display
    res = eng.dose_rate_on_slice(seeds, geometry, k, mode="fast")
    res.dose_rate_cgy_h, res.dose_gy, res.flagged, res.n_flagged
    res.formalism, res.model_id, res.table_checksum, res.label(), res.mode  # "exact" | "fast"

    acc = DoseGrid(eng, geometry)              # incremental accumulator for interactive editing
    acc = DoseGrid(eng, geometry, mode="fast") # the GUI's choice: ~6 ms per move on 10⁶ voxels
    acc.add("s1", (x, y, z), axis=(0, 0, 1), strength_u=0.8)
    acc.move("s1", position_mm=(x2, y2, z2))   # updates only that seed's contribution
    acc.remove("s1")
    acc.set_seeds(seeds, ids, cancel=fn)       # full recompute (worker thread friendly)
    acc.dose_rate_cgy_h / acc.dose_gy / acc.flagged / acc.slice_rate(k) / acc.version

    warm_up_in_subprocess()                    # GUI start: fill numba's cache off-process
    warm_up()                                  # compile/load the kernels (~20-30 s cold, ~1 s
                                               # cached; run it in a worker thread)
    cross_check(model, formalism, seeds, points_mm)   # fast vs reference, for reports

Units: positions and distances in LPS mm; strengths S_K in U (1 U = 1 cGy cm² h⁻¹); dose rate
in cGy/h (initial, at the implant time of the given strengths); D∞ = Ḋ₀·τ in Gy
(τ = T½/ln 2, :mod:`dose.units`). Use :func:`strength_at_implant` for calibration→implant decay.

Modes: EXACT (default) evaluates every seed-voxel pair (≤ 3e-4 of the reference engine) and is
the only mode for dose at points, the CLI and anything a report quotes. FAST (grids, slices and
DoseGrid, numba engine only) splits each seed's kernel into an exact near part (a ball and a
thin cylinder along the seed axis) and smooth far parts summed on coarse grids (2 and 4 mm for
3-D grids, 4 mm for slices) and upsampled with cubics: ~6x fewer seed-voxel pairs on full
grids, for interactive display; ≤ 2 % beyond 1 mm from every seed for any model, seed axes and
grid directions (measured over 192 random cases: ≤ 1.6 % on grids and ≤ 1.3 % on slices, the
worst at a g_L kink seen by the 4 mm level; ≤ 0.29 % on needle implants), see
:mod:`dose.engine_numba`.
The mode is recorded in ``DoseResult.extras["mode"]`` and in ``label()``.

Threading: every numba kernel releases the GIL (``nogil``); long computations are chunked and
call ``cancel()`` between chunks (raising :class:`dose.tg43.Cancelled`) and ``progress(f)``
with f in [0, 1]. :class:`DoseGrid` holds a lock; ``set_seeds`` computes into fresh buffers and
swaps them in only when complete, so a cancelled recompute leaves the previous state intact.

Points inside a seed capsule (TG-43 undefined there) are evaluated at the capsule surface and
flagged (``DoseResult.flagged``), never singular.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose import engine_numba, engine_reference
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.progress import Cancelled
from dose.sources import SourceModel, load_model
from dose.tg43 import Formalism, check_formalism
from dose.units import I125_MEAN_LIFE_H, decay_factor

__all__ = [
    "Cancelled",
    "DoseEngine",
    "DoseGrid",
    "DoseResult",
    "GridMode",
    "NumbaEngine",
    "ReferenceEngine",
    "SeedSet",
    "cross_check",
    "make_engine",
    "rate_to_dose_gy",
    "slice_geometry",
    "strength_at_implant",
    "warm_up",
    "warm_up_in_subprocess",
]

CancelFn = Callable[[], bool]
ProgressFn = Callable[[float], None]
EngineKind = Literal["numba", "reference"]
#: "exact": every seed-voxel pair through the TG-43 kernel (≤ 3e-4 of the reference engine);
#: "fast": near/far split with coarse far grids (interactive grids and slices only, ≤ 2 %).
GridMode = Literal["exact", "fast"]
_MODE_LABEL = {"exact": "exact", "fast": "fast (display; ≤2 % beyond 1 mm from the seeds)"}

_DEFAULT_AXIS = (0.0, 0.0, 1.0)


def rate_to_dose_gy(rate_cgy_h: ArrayLike) -> NDArray[np.float64]:
    """Permanent-implant total dose D∞ = Ḋ₀·τ (Gy) from the initial rate Ḋ₀ (cGy/h)."""
    return np.asarray(rate_cgy_h, dtype=np.float64) * (I125_MEAN_LIFE_H / 100.0)


def strength_at_implant(
    strength_u: ArrayLike, calibration: date | datetime, implant: date | datetime
) -> NDArray[np.float64]:
    """Decay S_K from the calibration date to the implant date (I-125, T½ = 59.40 d)."""
    return np.asarray(strength_u, dtype=np.float64) * decay_factor(calibration, implant)


# =========================================================================== value types
@dataclass(frozen=True, eq=False)
class SeedSet:
    """N seeds: positions (N, 3) LPS mm, unit axes (N, 3), strengths (N,) in U. Immutable."""

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    strengths_u: NDArray[np.float64]

    @classmethod
    def create(
        cls,
        positions_mm: ArrayLike,
        axes: ArrayLike | None = None,
        strengths_u: ArrayLike | float = 1.0,
    ) -> SeedSet:
        """Validate and normalise; axes default to +z (0, 0, 1), i.e. the needle direction of an
        axial insertion. Zero-length axes or non-finite values raise InputError."""
        pos = np.array(positions_mm, dtype=np.float64).reshape(-1, 3)
        n = pos.shape[0]
        if axes is None:
            ax = np.tile(np.array(_DEFAULT_AXIS), (n, 1))
        else:
            ax = np.array(axes, dtype=np.float64).reshape(-1, 3)
            if ax.shape[0] == 1 and n != 1:
                ax = np.tile(ax, (n, 1))
        try:
            st = np.broadcast_to(np.asarray(strengths_u, dtype=np.float64), (n,)).copy()
        except ValueError:
            raise InputError(
                f"{n} seed positions but {np.size(strengths_u)} seed strengths"
            ) from None
        if ax.shape[0] != n:
            raise InputError(f"{n} seed positions but {ax.shape[0]} seed axes")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(ax)) and np.all(np.isfinite(st))):
            raise InputError("seed positions, axes and strengths must be finite numbers")
        norm = np.linalg.norm(ax, axis=1)
        if np.any(norm < 1e-9):
            raise InputError("a seed axis has zero length")
        ax = ax / norm[:, np.newaxis]
        for a in (pos, ax, st):
            a.setflags(write=False)
        return cls(pos, ax, st)

    def __len__(self) -> int:
        return int(self.positions_mm.shape[0])

    @property
    def total_strength_u(self) -> float:
        return float(self.strengths_u.sum())

    def subset(self, index: ArrayLike) -> SeedSet:
        idx = np.asarray(index)
        return SeedSet.create(self.positions_mm[idx], self.axes[idx], self.strengths_u[idx])

    def bounding_box_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return self.positions_mm.min(axis=0), self.positions_mm.max(axis=0)


@dataclass(frozen=True, eq=False)
class DoseResult:
    """Dose from one computation, with everything needed to label it.

    ``dose_rate_cgy_h`` has the shape of the request: (P,) for points, (z, y, x) for a grid,
    (y, x) for a slice. ``flagged`` (same shape, bool) marks points inside a seed capsule,
    where the value is capped (evaluated at the capsule surface). ``table_checksum`` is the
    sha256 of all the model's numeric tables; ``extras["table_checksums"]`` has one per table.
    """

    dose_rate_cgy_h: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    formalism: Formalism
    model_id: str
    table_checksum: str
    engine: str
    n_seeds: int
    geometry: GridGeometry | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def dose_gy(self) -> NDArray[np.float64]:
        """Total permanent-implant dose D∞ (Gy)."""
        return rate_to_dose_gy(self.dose_rate_cgy_h)

    @property
    def n_flagged(self) -> int:
        return int(np.count_nonzero(self.flagged))

    def label(self) -> str:
        kind = "2D line source" if self.formalism == "2d" else "1D point source (φ_an)"
        mode = _MODE_LABEL.get(str(self.mode), str(self.mode))
        return (
            f"TG-43U1 {kind}, model {self.model_id}, tables sha256 {self.table_checksum[:12]}, "
            f"{self.engine} engine {mode}, dose to water in water (no heterogeneity correction)"
        )

    @property
    def mode(self) -> str:
        """ "exact" (default; points, CLI, reports) or "fast" (interactive grids and slices)."""
        return str(self.extras.get("mode", "exact"))


def slice_geometry(geometry: GridGeometry, k: int) -> GridGeometry:
    """The one-slice grid (shape (1, ny, nx)) of slice ``k`` of ``geometry``."""
    nz, ny, nx = geometry.shape_zyx
    if not 0 <= k < nz:
        raise ValueError(f"slice index {k} outside 0..{nz - 1}")
    origin = geometry.index_to_world(np.array([0.0, 0.0, float(k)]))
    return GridGeometry((1, ny, nx), origin, geometry.spacing_mm, geometry.direction)


# =========================================================================== engines
class DoseEngine:
    """Common interface of the fast and the reference engine (one model, one formalism).

    ``cutoff_mm``: optional per-seed distance beyond which a seed's contribution is ignored
    (None = exact, the default).
    """

    kind: str = "abstract"

    def __init__(
        self, model: SourceModel, formalism: str = "2d", *, cutoff_mm: float | None = None
    ) -> None:
        self.model = model
        self.formalism: Formalism = check_formalism(formalism, model)
        if cutoff_mm is not None and not cutoff_mm > 0:
            raise InputError("the distance cut-off must be positive")
        self.cutoff_mm = cutoff_mm

    # -- to implement ---------------------------------------------------------------
    def _points(
        self, seeds: SeedSet, pts: NDArray[np.float64], cancel: CancelFn | None
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        raise NotImplementedError

    def accumulate_rows(
        self,
        out: NDArray[np.float64],
        counts: NDArray[np.int32],
        geometry: GridGeometry,
        positions_mm: NDArray[np.float64],
        axes: NDArray[np.float64],
        strengths_u: NDArray[np.float64],
        row_range: tuple[int, int],
    ) -> None:
        """Add Σ S·Ḋ (cGy/h) of the given seeds to rows [r0, r1) of ``out`` (z, y, x) float64;
        ±1 into ``counts`` (int32, same shape) for voxels inside a capsule (−1 for S < 0)."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------
    @property
    def table_checksum(self) -> str:
        return self.model.checksum

    def _result(
        self,
        rate: NDArray[np.float64],
        flagged: NDArray[np.bool_],
        seeds: SeedSet,
        geometry: GridGeometry | None = None,
        mode: GridMode = "exact",
    ) -> DoseResult:
        return DoseResult(
            rate,
            flagged,
            self.formalism,
            self.model.model_id,
            self.model.checksum,
            self.kind,
            len(seeds),
            geometry,
            {"table_checksums": dict(self.model.table_checksums), "mode": mode},
        )

    def dose_rate_at_points(
        self, seeds: SeedSet, points_mm: ArrayLike, *, cancel: CancelFn | None = None
    ) -> DoseResult:
        """Dose rate (cGy/h) at LPS points (P, 3) mm."""
        pts = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
        rate, flagged = self._points(seeds, pts, cancel)
        return self._result(rate, flagged, seeds)

    def _rows_per_chunk(self, geometry: GridGeometry, n_seeds: int) -> int:
        # Each kernel launch has a fixed cost (thread wake-up: µs on an idle machine, up to a
        # scheduler tick on a busy one), so chunks are sized by work: ~2e7 voxel-seed pairs,
        # between 4 and 16 chunks, so that cancel() is still polled a few times.
        nz, ny, nx = geometry.shape_zyx
        n_rows = nz * ny
        pairs = n_rows * nx * max(1, n_seeds)
        n_chunks = min(16, max(4, -(-pairs // 20_000_000)))
        return max(1, -(-n_rows // n_chunks))

    def compute_into(
        self,
        out: NDArray[np.float64],
        counts: NDArray[np.int32],
        geometry: GridGeometry,
        seeds: SeedSet,
        *,
        sign: float = 1.0,
        cancel: CancelFn | None = None,
        progress: ProgressFn | None = None,
        single_chunk: bool = False,
    ) -> None:
        """Add (sign = +1) or subtract (−1) the seeds' dose rate on ``geometry`` into ``out``,
        in row chunks, checking ``cancel`` between chunks."""
        nz, ny, _ = geometry.shape_zyx
        n_rows = nz * ny
        step = n_rows if single_chunk else self._rows_per_chunk(geometry, len(seeds))
        strengths = np.asarray(seeds.strengths_u) * sign
        for r0 in range(0, n_rows, step):
            if cancel is not None and cancel():
                raise Cancelled()
            r1 = min(n_rows, r0 + step)
            self.accumulate_rows(
                out, counts, geometry, seeds.positions_mm, seeds.axes, strengths, (r0, r1)
            )
            if progress is not None:
                progress(r1 / n_rows)

    def dose_rate_on_grid(
        self,
        seeds: SeedSet,
        geometry: GridGeometry,
        *,
        cancel: CancelFn | None = None,
        progress: ProgressFn | None = None,
        mode: GridMode = "exact",
    ) -> DoseResult:
        """Dose rate (cGy/h) on every voxel centre of ``geometry`` (any direction matrix).

        ``mode="exact"`` (default) evaluates every seed-voxel pair; ``mode="fast"`` (numba engine
        only) uses the near/far split of :mod:`dose.engine_numba` (≤ 2 % beyond 1 mm from every
        seed; for interactive display, not for reported numbers).
        """
        if mode == "fast":
            return self._fast_grid(seeds, geometry, cancel, progress)
        if mode != "exact":
            raise ValueError(f"unknown grid mode {mode!r}")
        out = np.zeros(geometry.shape_zyx, dtype=np.float64)
        counts = np.zeros(geometry.shape_zyx, dtype=np.int32)
        if len(seeds):
            self.compute_into(
                out,
                counts,
                geometry,
                seeds,
                cancel=cancel,
                progress=progress,
                single_chunk=geometry.shape_zyx[0] == 1,  # a slice: one launch
            )
        return self._result(out, counts > 0, seeds, geometry)

    def _fast_grid(
        self,
        seeds: SeedSet,
        geometry: GridGeometry,
        cancel: CancelFn | None,
        progress: ProgressFn | None,
    ) -> DoseResult:
        raise ValueError(f"the {self.kind} engine has no fast mode (use the numba engine)")

    def dose_rate_on_slice(
        self,
        seeds: SeedSet,
        geometry: GridGeometry,
        k: int,
        *,
        cancel: CancelFn | None = None,
        mode: GridMode = "exact",
    ) -> DoseResult:
        """Dose rate on slice ``k`` of ``geometry`` only; values (ny, nx). Parallel over rows.

        ``mode="fast"``: coarse 2-D far levels on the slice plane (4 and 8 mm), exact near disks
        and 2-D cubic upsampling (interactive display; see :meth:`dose_rate_on_grid`).
        """
        g2 = slice_geometry(geometry, k)
        res = self.dose_rate_on_grid(seeds, g2, cancel=cancel, mode=mode)
        return DoseResult(
            res.dose_rate_cgy_h[0],
            res.flagged[0],
            res.formalism,
            res.model_id,
            res.table_checksum,
            res.engine,
            res.n_seeds,
            g2,
            res.extras,
        )


class NumbaEngine(DoseEngine):
    """Fast engine (:mod:`dose.engine_numba`): LUTs + exact near field, parallel numba kernels."""

    kind = "numba"

    def __init__(
        self, model: SourceModel, formalism: str = "2d", *, cutoff_mm: float | None = None
    ) -> None:
        super().__init__(model, formalism, cutoff_mm=cutoff_mm)
        self._fm = engine_numba.fast_model(model, self.formalism)
        self._layouts: dict[tuple, engine_numba.SplitLayout] = {}
        self._layouts_lock = threading.Lock()

    def _points(self, seeds, pts, cancel):
        n = pts.shape[0]
        rate = np.zeros(n)
        flagged = np.zeros(n, dtype=bool)
        step = 200_000
        for p0 in range(0, n, step):
            if cancel is not None and cancel():
                raise Cancelled()
            p1 = min(n, p0 + step)
            r, f = engine_numba.points_rate(
                self._fm,
                pts[p0:p1],
                seeds.positions_mm,
                seeds.axes,
                seeds.strengths_u,
                cutoff_mm=self.cutoff_mm,
            )
            rate[p0:p1] = r
            flagged[p0:p1] = f
        return rate, flagged

    # -- FAST mode (near/far split) ------------------------------------------------------
    def split_layout(self, geometry: GridGeometry) -> engine_numba.SplitLayout:
        """The FAST-mode layout of ``geometry`` (its own coarse levels for single slices);
        the last few are kept, as the GUI asks again and again for the same slices."""
        en = engine_numba
        flat = min(geometry.shape_zyx) == 1
        spec = en.FAST_SLICE_SPEC if flat else en.FAST_GRID_SPEC
        m = geometry.index_to_world_matrix
        key = (geometry.shape_zyx, geometry.origin_mm.tobytes(), m.tobytes(), spec)
        with self._layouts_lock:
            lay = self._layouts.pop(key, None)
            if lay is None:
                lay = en.split_layout(geometry.shape_zyx, geometry.origin_mm, m, spec)
            self._layouts[key] = lay  # most recent last
            while len(self._layouts) > 8:
                self._layouts.pop(next(iter(self._layouts)))
            return lay

    def fast_parts(
        self,
        seeds: SeedSet,
        lay: engine_numba.SplitLayout,
        *,
        cancel: CancelFn | None = None,
        progress: ProgressFn | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.int32], list[NDArray[np.float64]]]:
        """Near sum (fine, float64), capsule counts (fine, int32) and far sums (one float64
        array per coarse level) of ``seeds`` on ``lay``; chunked with ``cancel``/``progress``."""
        if self.cutoff_mm is not None:
            raise ValueError("fast mode has no distance cut-off (it is already cheap)")
        near = np.zeros(lay.shape_zyx, dtype=np.float64)
        counts = np.zeros(lay.shape_zyx, dtype=np.int32)
        far = lay.zeros_far()
        if len(seeds) == 0:
            return near, counts, far
        p, a, s = seeds.positions_mm, seeds.axes, seeds.strengths_u
        nz, ny, _ = lay.shape_zyx
        flat = min(lay.shape_zyx) == 1
        n_chunks = 1 if flat else 2  # cancel() is polled between steps of ~20-40 ms
        steps: list[tuple[int, int, int]] = [  # (level; -1 = near, rows from, rows to)
            (-1, nz * ny * c // n_chunks, nz * ny * (c + 1) // n_chunks) for c in range(n_chunks)
        ]
        for lv, shape in enumerate(lay.coarse_shapes_zyx):
            n_rows = shape[0] * shape[1]
            steps += [
                (lv, n_rows * c // n_chunks, n_rows * (c + 1) // n_chunks) for c in range(n_chunks)
            ]
        for done, (lv, q0, q1) in enumerate(steps, start=1):
            if cancel is not None and cancel():
                raise Cancelled()
            if lv < 0:
                engine_numba.near_accumulate(self._fm, near, counts, lay, p, a, s, (q0, q1))
            else:
                engine_numba.far_accumulate(self._fm, far, lay, p, a, s, lv, (q0, q1))
            if progress is not None:
                progress(done / len(steps))
        return near, counts, far

    def fast_edit(
        self,
        near: NDArray[np.float64],
        counts: NDArray[np.int32],
        far: list[NDArray[np.float64]],
        lay: engine_numba.SplitLayout,
        positions_mm: NDArray[np.float64],
        axes: NDArray[np.float64],
        strengths_u: NDArray[np.float64],
    ) -> None:
        """Add (S > 0) or subtract (S < 0) seeds into the near and far sums, in place."""
        engine_numba.near_accumulate(self._fm, near, counts, lay, positions_mm, axes, strengths_u)
        engine_numba.far_accumulate(self._fm, far, lay, positions_mm, axes, strengths_u)

    def _fast_grid(self, seeds, geometry, cancel, progress):
        lay = self.split_layout(geometry)
        near, counts, far = self.fast_parts(seeds, lay, cancel=cancel, progress=progress)
        engine_numba.upsample_into(near, near, far, lay)
        return self._result(near, counts > 0, seeds, geometry, "fast")

    def accumulate_rows(self, out, counts, geometry, positions_mm, axes, strengths_u, row_range):
        engine_numba.grid_rate_accumulate(
            self._fm,
            out,
            counts,
            geometry.origin_mm,
            geometry.index_to_world_matrix,
            positions_mm,
            axes,
            strengths_u,
            cutoff_mm=self.cutoff_mm,
            row_range=row_range,
        )


class ReferenceEngine(DoseEngine):
    """Independent pure-numpy engine (:mod:`dose.engine_reference`); slow, for checks."""

    kind = "reference"

    def _points(self, seeds, pts, cancel):
        if self.cutoff_mm is not None:
            rate = np.zeros(pts.shape[0])
            flagged = np.zeros(pts.shape[0], dtype=bool)
            for s in range(len(seeds)):
                if cancel is not None and cancel():
                    raise Cancelled()
                near = np.linalg.norm(pts - seeds.positions_mm[s], axis=1) < self.cutoff_mm
                r, f = engine_reference.rate_at_points(
                    self.model,
                    pts[near],
                    seeds.positions_mm[s],
                    seeds.axes[s],
                    seeds.strengths_u[s : s + 1],
                    self.formalism,
                )
                rate[near] += r
                flagged[near] |= f
            return rate, flagged
        return engine_reference.rate_at_points(
            self.model,
            pts,
            seeds.positions_mm,
            seeds.axes,
            seeds.strengths_u,
            self.formalism,
            cancel=cancel,
        )

    def _rows_per_chunk(self, geometry: GridGeometry, n_seeds: int) -> int:
        nz, ny, nx = geometry.shape_zyx
        return max(1, min(16384 // max(1, nx), -(-(nz * ny) // 8)))

    def accumulate_rows(self, out, counts, geometry, positions_mm, axes, strengths_u, row_range):
        nz, ny, nx = geometry.shape_zyx
        r0, r1 = row_range
        rows = np.arange(r0, r1)
        k = rows // ny
        j = rows % ny
        i = np.arange(nx)
        ijk = np.empty((rows.size, nx, 3))
        ijk[..., 0] = i[np.newaxis, :]
        ijk[..., 1] = j[:, np.newaxis]
        ijk[..., 2] = k[:, np.newaxis]
        pts = geometry.index_to_world(ijk).reshape(-1, 3)
        view = out.reshape(nz * ny, nx)
        cview = counts.reshape(nz * ny, nx)
        seeds_pos = np.asarray(positions_mm).reshape(-1, 3)
        for s in range(seeds_pos.shape[0]):
            st = float(np.asarray(strengths_u).reshape(-1)[s])
            if self.cutoff_mm is not None:
                near = np.linalg.norm(pts - seeds_pos[s], axis=1) < self.cutoff_mm
            else:
                near = np.ones(pts.shape[0], dtype=bool)
            rate = np.zeros(pts.shape[0])
            flag = np.zeros(pts.shape[0], dtype=bool)
            r, f = engine_reference.rate_at_points(
                self.model,
                pts[near],
                seeds_pos[s],
                np.asarray(axes).reshape(-1, 3)[s],
                np.ones(1),
                self.formalism,
            )
            rate[near] = r
            flag[near] = f
            view[r0:r1] += st * rate.reshape(rows.size, nx)
            cview[r0:r1] += (
                np.where(flag, 1 if st >= 0 else -1, 0).reshape(rows.size, nx).astype(np.int32)
            )


def make_engine(
    model: str | SourceModel,
    formalism: str = "2d",
    kind: EngineKind = "numba",
    *,
    cutoff_mm: float | None = None,
) -> DoseEngine:
    """An engine for ``model`` (id, alias, path or SourceModel); ``kind`` "numba" or "reference"."""
    m = model if isinstance(model, SourceModel) else load_model(model)
    if kind == "numba":
        return NumbaEngine(m, formalism, cutoff_mm=cutoff_mm)
    if kind == "reference":
        return ReferenceEngine(m, formalism, cutoff_mm=cutoff_mm)
    raise ValueError(f"unknown engine kind {kind!r}")


def cross_check(
    model: str | SourceModel,
    formalism: str,
    seeds: SeedSet,
    points_mm: ArrayLike,
    *,
    min_distance_mm: float = 1.0,
) -> dict[str, object]:
    """Independent check for reports: fast vs reference engine at ``points_mm`` (P, 3).

    Points closer than ``min_distance_mm`` to a seed centre are skipped. Returns a dict with
    ``n_points, max_rel_diff, mean_rel_diff, reference_rate_cgy_h, fast_rate_cgy_h, formalism,
    model_id, table_checksum``.
    """
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    if len(seeds):
        d = np.full(pts.shape[0], np.inf)
        for p in seeds.positions_mm:
            d = np.minimum(d, np.linalg.norm(pts - p, axis=1))
        pts = pts[d > min_distance_mm]
    fast = make_engine(model, formalism, "numba").dose_rate_at_points(seeds, pts)
    ref = make_engine(model, formalism, "reference").dose_rate_at_points(seeds, pts)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(fast.dose_rate_cgy_h - ref.dose_rate_cgy_h) / ref.dose_rate_cgy_h
    rel = rel[np.isfinite(rel)]
    return {
        "n_points": int(pts.shape[0]),
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "mean_rel_diff": float(rel.mean()) if rel.size else 0.0,
        "reference_rate_cgy_h": ref.dose_rate_cgy_h,
        "fast_rate_cgy_h": fast.dose_rate_cgy_h,
        "formalism": ref.formalism,
        "model_id": ref.model_id,
        "table_checksum": ref.table_checksum,
    }


def warm_up(models: Sequence[str] = ("6711",)) -> None:
    """Compile (or load from numba's cache) the fast kernels and build the models' tables.

    Cold (first run after install) this takes ~20-30 s of compilation, which holds the GIL for
    long stretches; cached it takes ~1 s. A GUI should call :func:`warm_up_in_subprocess` at
    start-up (fills numba's on-disk cache without touching the GUI process), then ``warm_up()``
    in a worker thread once that has finished.
    """
    for name in models:
        engine_numba.warm_up(load_model(name))


def warm_up_in_subprocess(models: Sequence[str] = ("6711",)) -> subprocess.Popen[bytes]:
    """Start a background Python process that compiles the kernels into numba's disk cache.

    Returns the Popen handle (poll() is not None when done; exit status 0 on success).
    """
    code = f"from dose.engine import warm_up; warm_up({list(models)!r})"
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# =========================================================================== accumulator
@dataclass(frozen=True)
class _Seed:
    position_mm: tuple[float, float, float]
    axis: tuple[float, float, float]
    strength_u: float

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        return (
            np.array([self.position_mm], dtype=np.float64),
            np.array([self.axis], dtype=np.float64),
            np.array([self.strength_u], dtype=np.float64),
        )


def _unit(axis: ArrayLike) -> tuple[float, float, float]:
    a = np.asarray(axis, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not np.isfinite(n) or n < 1e-9:
        raise InputError("a seed axis has zero length or is not finite")
    a = a / n
    return (float(a[0]), float(a[1]), float(a[2]))


def _point(p: ArrayLike) -> tuple[float, float, float]:
    a = np.asarray(p, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(a)):
        raise InputError("a seed position is not finite")
    return (float(a[0]), float(a[1]), float(a[2]))


class DoseGrid:
    """Incremental dose-rate accumulator on a fixed grid, for interactive seed editing.

    The total is kept in float64 and each edit adds or subtracts exactly the per-seed values the
    kernel produces (they are deterministic), so any sequence of add/move/remove ends equal to a
    full recompute up to float64 rounding (tested to ≤ 1e-6 relative over long random edits).
    Seeds are keyed by any hashable id. All methods are thread-safe (one lock).

    ``mode="fast"`` (numba engine; meant for the GUI) keeps the near sum on the fine grid and
    the far sums on the coarse levels of the split separately (all float64, edited by exact
    add/subtract of each seed's deterministic values, so there is no drift); an edit touches
    only the seed's near ball and axis cylinder and the coarse levels, then re-upsamples the
    levels into the total. Values equal ``engine.dose_rate_on_grid(..., mode="fast")``.
    """

    def __init__(
        self, engine: DoseEngine, geometry: GridGeometry, mode: GridMode = "exact"
    ) -> None:
        if mode not in ("exact", "fast"):
            raise ValueError(f"unknown grid mode {mode!r}")
        if mode == "fast" and not isinstance(engine, NumbaEngine):
            raise ValueError("fast mode needs the numba engine")
        if mode == "fast" and engine.cutoff_mm is not None:
            raise ValueError("fast mode has no distance cut-off (it is already cheap)")
        self.engine = engine
        self.geometry = geometry
        self.mode: GridMode = mode
        self._rate = np.zeros(geometry.shape_zyx, dtype=np.float64)
        self._counts = np.zeros(geometry.shape_zyx, dtype=np.int32)
        self._layout = engine.split_layout(geometry) if mode == "fast" else None  # type: ignore[attr-defined]
        self._near = np.zeros(geometry.shape_zyx, dtype=np.float64) if mode == "fast" else None
        self._far = self._layout.zeros_far() if self._layout else None
        self._seeds: dict[Hashable, _Seed] = {}
        self._lock = threading.RLock()
        self.version = 0

    # -- queries ----------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def dose_rate_cgy_h(self) -> NDArray[np.float64]:
        """Read-only view of the current dose rate (cGy/h), shape (z, y, x)."""
        v = self._rate.view()
        v.setflags(write=False)
        return v

    @property
    def dose_gy(self) -> NDArray[np.float64]:
        """A new array: D∞ (Gy) = rate·τ."""
        with self._lock:
            return rate_to_dose_gy(self._rate)

    @property
    def flagged(self) -> NDArray[np.bool_]:
        """Voxels whose centre is inside any seed capsule (value capped there)."""
        with self._lock:
            return self._counts > 0

    def slice_rate(self, k: int) -> NDArray[np.float64]:
        """Copy of slice k of the dose rate (cGy/h), shape (y, x)."""
        with self._lock:
            return self._rate[k].copy()

    def seed_ids(self) -> list[Hashable]:
        with self._lock:
            return list(self._seeds)

    def __len__(self) -> int:
        return len(self._seeds)

    def __contains__(self, seed_id: Hashable) -> bool:
        return seed_id in self._seeds

    def seeds(self) -> SeedSet:
        with self._lock:
            vals = list(self._seeds.values())
        if not vals:
            return SeedSet.create(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
        return SeedSet.create(
            [s.position_mm for s in vals], [s.axis for s in vals], [s.strength_u for s in vals]
        )

    def result(self) -> DoseResult:
        """A snapshot (copy) of the current dose as a DoseResult."""
        with self._lock:
            seeds = self.seeds()
            return self.engine._result(
                self._rate.copy(), self._counts > 0, seeds, self.geometry, self.mode
            )

    # -- edits ------------------------------------------------------------------------
    def _apply(self, seeds_pos, seeds_axes, seeds_st) -> None:
        if self.mode == "fast":
            eng: NumbaEngine = self.engine  # type: ignore[assignment]
            eng.fast_edit(
                self._near, self._counts, self._far, self._layout, seeds_pos, seeds_axes, seeds_st
            )
            engine_numba.upsample_into(self._rate, self._near, self._far, self._layout)
            self.version += 1
            return
        nz, ny, _ = self.geometry.shape_zyx
        self.engine.accumulate_rows(
            self._rate,
            self._counts,
            self.geometry,
            seeds_pos,
            seeds_axes,
            seeds_st,
            (0, nz * ny),
        )
        self.version += 1

    def add(
        self,
        seed_id: Hashable,
        position_mm: ArrayLike,
        axis: ArrayLike = _DEFAULT_AXIS,
        strength_u: float = 1.0,
    ) -> None:
        """Add one seed (its id must be new)."""
        seed = _Seed(_point(position_mm), _unit(axis), float(strength_u))
        with self._lock:
            if seed_id in self._seeds:
                raise KeyError(f"seed {seed_id!r} already present")
            self._apply(*seed.arrays())
            self._seeds[seed_id] = seed

    def remove(self, seed_id: Hashable) -> None:
        """Remove one seed: subtract exactly its contribution."""
        with self._lock:
            seed = self._seeds.pop(seed_id)
            p, a, s = seed.arrays()
            self._apply(p, a, -s)

    def move(
        self,
        seed_id: Hashable,
        position_mm: ArrayLike | None = None,
        axis: ArrayLike | None = None,
        strength_u: float | None = None,
    ) -> None:
        """Change a seed's position, axis and/or strength; one fused pass (old out, new in)."""
        with self._lock:
            old = self._seeds[seed_id]
            new = _Seed(
                old.position_mm if position_mm is None else _point(position_mm),
                old.axis if axis is None else _unit(axis),
                old.strength_u if strength_u is None else float(strength_u),
            )
            if new == old:
                return
            po, ao, so = old.arrays()
            pn, an, sn = new.arrays()
            self._apply(np.vstack([po, pn]), np.vstack([ao, an]), np.concatenate([-so, sn]))
            self._seeds[seed_id] = new

    def clear(self) -> None:
        with self._lock:
            self._rate[...] = 0.0
            self._counts[...] = 0
            if self.mode == "fast":
                self._near[...] = 0.0
                for far in self._far:
                    far[...] = 0.0
            self._seeds.clear()
            self.version += 1

    def set_seeds(
        self,
        seeds: SeedSet,
        ids: Sequence[Hashable] | None = None,
        *,
        cancel: CancelFn | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        """Replace all seeds and recompute from scratch (ids default to 0..N−1).

        Computed into fresh buffers outside the lock, then swapped in; raises Cancelled (and
        keeps the previous state) when ``cancel()`` returns True. Edits made by another thread
        while this runs are replaced by the swap: cancel the recompute before editing.
        """
        ids = list(range(len(seeds))) if ids is None else list(ids)
        if len(ids) != len(seeds) or len(set(ids)) != len(ids):
            raise ValueError("seed ids must be unique, one per seed")
        near = far = None
        if self.mode == "fast":
            eng: NumbaEngine = self.engine  # type: ignore[assignment]
            near, counts, far = eng.fast_parts(
                seeds, self._layout, cancel=cancel, progress=progress
            )
            rate = np.empty_like(near)
            engine_numba.upsample_into(rate, near, far, self._layout)
        else:
            rate, counts = self._exact_parts(seeds, cancel, progress)
        new = {
            sid: _Seed(
                _point(seeds.positions_mm[s]), _unit(seeds.axes[s]), float(seeds.strengths_u[s])
            )
            for s, sid in enumerate(ids)
        }
        with self._lock:
            self._rate = rate
            self._counts = counts
            self._near = near
            self._far = far
            self._seeds = new
            self.version += 1

    def _exact_parts(
        self, seeds: SeedSet, cancel: CancelFn | None, progress: ProgressFn | None
    ) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
        rate = np.zeros(self.geometry.shape_zyx, dtype=np.float64)
        counts = np.zeros(self.geometry.shape_zyx, dtype=np.int32)
        # The all-seeds kernel adds seed contributions voxel by voxel in seed order, so the
        # values equal N successive add() calls bit for bit; later edits subtract those values.
        if len(seeds):
            self.engine.compute_into(
                rate, counts, self.geometry, seeds, cancel=cancel, progress=progress
            )
        return rate, counts

    def recompute(
        self, *, cancel: CancelFn | None = None, progress: ProgressFn | None = None
    ) -> None:
        """Full recompute from the current seeds (discards any accumulated rounding)."""
        with self._lock:
            ids = list(self._seeds)
            seeds = self.seeds()
        self.set_seeds(seeds, ids, cancel=cancel, progress=progress)
