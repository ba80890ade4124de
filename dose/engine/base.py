"""The engine interface shared by the numba and the reference engine (one model, one formalism).

:class:`DoseEngine` implements everything but the numerics: dose at points, on grids of any
geometry (chunked, with ``cancel``/``progress`` from :mod:`dose.progress`), on one slice, and
the labelled :class:`~dose.engine.values.DoseResult`. A subclass supplies ``_points`` and
``accumulate_rows`` (and optionally a FAST mode).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.engine.values import DoseResult, GridMode, SeedSet, slice_geometry
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from dose.sources import SourceModel
from dose.tg43 import Formalism, check_formalism

__all__ = ["DoseEngine"]


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
        in row chunks: ``cancel()`` is checked before each chunk (raising
        :class:`dose.progress.Cancelled`) and ``progress(fraction, "dose grid")`` called after
        each."""
        nz, ny, _ = geometry.shape_zyx
        n_rows = nz * ny
        step = n_rows if single_chunk else self._rows_per_chunk(geometry, len(seeds))
        strengths = np.asarray(seeds.strengths_u) * sign
        for r0 in range(0, n_rows, step):
            check_cancelled(cancel, "dose computation cancelled")
            r1 = min(n_rows, r0 + step)
            self.accumulate_rows(
                out, counts, geometry, seeds.positions_mm, seeds.axes, strengths, (r0, r1)
            )
            report(progress, r1 / n_rows, "dose grid")

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
        only) uses the near/far split of :mod:`dose.engine.kernels.fast` (≤ 2 % beyond 1 mm from
        every seed; for interactive display, not for reported numbers). ``progress`` receives
        (fraction of this call, message); ``cancel`` is polled between chunks.
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
