"""The numba engine: :class:`DoseEngine` on the kernels of :mod:`dose.engine.kernels`.

EXACT mode (default) runs every seed-voxel pair through the table T; FAST mode (grids, slices,
:class:`~dose.engine.dose_grid.DoseGrid`) runs the near/far split of
:mod:`dose.engine.kernels.fast`. Importing this module imports numba; :func:`dose.engine.
make_engine` imports it on first use, so ``import dose.engine`` stays light.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from dose.engine import kernels as en
from dose.engine.base import DoseEngine
from dose.engine.values import SeedSet
from dose.geometry import GridGeometry
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from dose.sources import SourceModel

__all__ = ["NumbaEngine"]


class NumbaEngine(DoseEngine):
    """Fast engine (:mod:`dose.engine.kernels`): LUTs + exact near field, parallel numba kernels."""

    kind = "numba"

    def __init__(
        self, model: SourceModel, formalism: str = "2d", *, cutoff_mm: float | None = None
    ) -> None:
        super().__init__(model, formalism, cutoff_mm=cutoff_mm)
        self._fm = en.fast_model(model, self.formalism)
        self._layouts: dict[tuple, en.SplitLayout] = {}
        self._layouts_lock = threading.Lock()

    def _points(self, seeds, pts, cancel):
        n = pts.shape[0]
        rate = np.zeros(n)
        flagged = np.zeros(n, dtype=bool)
        step = 200_000
        for p0 in range(0, n, step):
            check_cancelled(cancel, "dose computation cancelled")
            p1 = min(n, p0 + step)
            r, f = en.points_rate(
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
    def split_layout(self, geometry: GridGeometry) -> en.SplitLayout:
        """The FAST-mode layout of ``geometry`` (its own coarse levels for single slices);
        the last few are kept, as the GUI asks again and again for the same slices."""
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
        lay: en.SplitLayout,
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
            check_cancelled(cancel, "dose computation cancelled")
            if lv < 0:
                en.near_accumulate(self._fm, near, counts, lay, p, a, s, (q0, q1))
            else:
                en.far_accumulate(self._fm, far, lay, p, a, s, lv, (q0, q1))
            report(progress, done / len(steps), "dose grid (fast)")
        return near, counts, far

    def fast_edit(
        self,
        near: NDArray[np.float64],
        counts: NDArray[np.int32],
        far: list[NDArray[np.float64]],
        lay: en.SplitLayout,
        positions_mm: NDArray[np.float64],
        axes: NDArray[np.float64],
        strengths_u: NDArray[np.float64],
    ) -> None:
        """Add (S > 0) or subtract (S < 0) seeds into the near and far sums, in place."""
        en.near_accumulate(self._fm, near, counts, lay, positions_mm, axes, strengths_u)
        en.far_accumulate(self._fm, far, lay, positions_mm, axes, strengths_u)

    def upsample(
        self,
        dst: NDArray[np.float64],
        near: NDArray[np.float64],
        far: list[NDArray[np.float64]],
        lay: en.SplitLayout,
    ) -> None:
        """dst = near + the far levels upsampled onto the fine grid (dst may be near)."""
        en.upsample_into(dst, near, far, lay)

    def _fast_grid(self, seeds, geometry, cancel, progress):
        lay = self.split_layout(geometry)
        near, counts, far = self.fast_parts(seeds, lay, cancel=cancel, progress=progress)
        en.upsample_into(near, near, far, lay)
        return self._result(near, counts > 0, seeds, geometry, "fast")

    def accumulate_rows(self, out, counts, geometry, positions_mm, axes, strengths_u, row_range):
        en.grid_rate_accumulate(
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
