"""EXACT mode of the numba engine: Python wrappers around the grid-row and point kernels.

:func:`grid_rate_accumulate` adds every seed-voxel pair of a grid (any direction matrix) through
the table T; :func:`points_rate` evaluates arbitrary points. Both go through the kernels of
:mod:`dose.engine.kernels.jit` under ``KERNEL_LOCK``; :func:`run_part` is shared with the FAST
split (:mod:`dose.engine.kernels.fast`), which runs the same row kernel on its part tables.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from dose.engine.kernels.jit import part_rows, points_kernel
from dose.engine.kernels.tables import ATAN_COEF, KERNEL_LOCK, FastModel

__all__ = ["grid_rate_accumulate", "points_rate", "run_part", "seed_arrays", "threads"]


def seed_arrays(positions_mm, axes, strengths_u):
    return (
        np.ascontiguousarray(positions_mm, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(axes, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(strengths_u, dtype=np.float64).reshape(-1),
    )


def _row_boxes(
    shape_zyx: tuple[int, ...],
    origin_mm: NDArray[np.float64],
    m_ijk: NDArray[np.float64],
    pos: NDArray[np.float64],
    axes: NDArray[np.float64],
    r_out: float,
    rho_cyl: float,
) -> NDArray[np.float64]:
    """Per seed, the (j, k) index box [j0, j1, k0, k1] of the rows its part can touch: the ball
    r < r_out and the axis cylinder ρ < rho_cyl clipped to the grid (everything if r_out ≤ 0).

    The cylinder's axis line is clipped (slab method, in index space) to the grid box grown by
    the cylinder radius; the box of the two end points, grown again, holds the clipped cylinder.
    """
    ns = pos.shape[0]
    boxes = np.empty((ns, 4))
    boxes[:, 0] = boxes[:, 2] = -1.0
    boxes[:, 1] = boxes[:, 3] = 1.0e9
    if r_out <= 0.0 or ns == 0:
        return boxes
    m_inv = np.linalg.inv(m_ijk)
    per_mm = np.linalg.norm(m_inv, axis=1)  # index units per mm along i, j, k (an upper bound)
    c0 = (pos - origin_mm) @ m_inv.T  # (ns, 3) continuous (i, j, k)
    n_ijk = np.array(shape_zyx[::-1], dtype=np.float64)
    e_ball = r_out * per_mm + 1.0
    lo = c0 - e_ball
    hi = c0 + e_ball
    if rho_cyl > 0.0:
        e = rho_cyl * per_mm + 1.0
        d = axes @ m_inv.T  # index-space direction of each axis
        g_lo, g_hi = -e, n_ijk - 1.0 + e
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (g_lo - c0) / d
            t2 = (g_hi - c0) / d
        par = np.abs(d) < 1e-12
        inside = (c0 >= g_lo) & (c0 <= g_hi)
        t_lo = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2)).max(axis=1)
        t_hi = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2)).min(axis=1)
        hit = t_hi >= t_lo
        if hit.any():
            p_a = c0[hit] + t_lo[hit, None] * d[hit]
            p_b = c0[hit] + t_hi[hit, None] * d[hit]
            lo[hit] = np.minimum(lo[hit], np.minimum(p_a, p_b) - e)
            hi[hit] = np.maximum(hi[hit], np.maximum(p_a, p_b) + e)
    boxes[:, 0], boxes[:, 1] = lo[:, 1], hi[:, 1]
    boxes[:, 2], boxes[:, 3] = lo[:, 2], hi[:, 2]
    return boxes


def run_part(
    fm: FastModel,
    lut: NDArray[np.float32],
    out: NDArray[np.float64],
    counts: NDArray[np.int32],
    rows: tuple[int, int],
    origin_mm: NDArray[np.float64],
    m_ijk: NDArray[np.float64],
    seeds: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    *,
    direct: bool,
    r_in: float = 0.0,
    r_out: float = -1.0,
    rho_cyl: float = 0.0,
) -> None:
    pos, ax, st = seeds
    if pos.shape[0] == 0 or rows[1] <= rows[0]:
        return
    origin = np.ascontiguousarray(origin_mm, dtype=np.float64)
    m = np.ascontiguousarray(m_ijk, dtype=np.float64)
    boxes = _row_boxes(out.shape, origin, m, pos, ax, r_out, rho_cyl)
    with KERNEL_LOCK:
        part_rows(
            out,
            counts,
            int(rows[0]),
            int(rows[1]),
            origin,
            m,
            pos,
            ax,
            st,
            boxes,
            direct,
            float(r_in),
            float(r_out),
            float(rho_cyl),
            lut,
            fm.lut_par,
            ATAN_COEF,
            *fm.model_arrays(),
        )


def grid_rate_accumulate(
    fm: FastModel,
    out: NDArray[np.float64],
    counts: NDArray[np.int32],
    origin_mm: NDArray[np.float64],
    index_to_world: NDArray[np.float64],
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    *,
    cutoff_mm: float | None = None,
    row_range: tuple[int, int] | None = None,
) -> None:
    """EXACT mode: add Σ S·Ḋ (cGy/h) of the seeds to ``out`` (float64 (nz, ny, nx), C-contiguous).

    ``index_to_world`` is GridGeometry.index_to_world_matrix (mm per index step, columns i, j, k).
    ``row_range`` limits the work to flattened rows [r0, r1) of (k, j) — used for chunking.
    """
    nz, ny, _ = out.shape
    rows = row_range if row_range is not None else (0, nz * ny)
    run_part(
        fm,
        fm.lut,
        out,
        counts,
        rows,
        origin_mm,
        index_to_world,
        seed_arrays(positions_mm, axes, strengths_u),
        direct=True,
        r_out=-1.0 if cutoff_mm is None else float(cutoff_mm),
    )


def points_rate(
    fm: FastModel,
    points_mm: NDArray[np.float64],
    positions_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    strengths_u: NDArray[np.float64],
    *,
    cutoff_mm: float | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Dose rate (cGy/h) and inside-capsule flags at ``points_mm`` (P, 3)."""
    pts = np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(pts.shape[0])
    flags = np.zeros(pts.shape[0], dtype=np.bool_)
    cutoff2 = -1.0 if cutoff_mm is None else float(cutoff_mm) ** 2
    pos, ax, st = seed_arrays(positions_mm, axes, strengths_u)
    with KERNEL_LOCK:
        points_kernel(
            out, flags, pts, pos, ax, st, cutoff2, fm.lut, fm.lut_par, ATAN_COEF, *fm.model_arrays()
        )
    return out, flags


def threads() -> int:
    """Number of numba worker threads."""
    return int(numba.get_num_threads())
