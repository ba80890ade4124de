"""EXACT mode of the numba engine: Python wrappers around the grid-row and point kernels.

:func:`grid_rate_accumulate` adds every seed-voxel pair of a grid (any direction matrix) through
the table T; :func:`points_rate` evaluates arbitrary points. Both go through the kernels of
:mod:`dose.engine.kernels.jit` under ``KERNEL_LOCK``; :func:`run_part` is shared with the FAST
split (:mod:`dose.engine.kernels.fast`), which runs the same row kernel on its part tables.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit
from numpy.typing import NDArray

from dose.engine.kernels.jit import part_rows, points_kernel
from dose.engine.kernels.tables import ATAN_COEF, KERNEL_LOCK, FastModel, frozen_f64

__all__ = ["grid_rate_accumulate", "points_rate", "run_part", "seed_arrays", "threads"]


def seed_arrays(positions_mm, axes, strengths_u):
    """Positions (n, 3) mm, axes (n, 3) and strengths (n,) U as the kernels take them: C-contiguous
    float64, read-only (:func:`dose.engine.kernels.tables.frozen_f64`)."""
    return (
        frozen_f64(positions_mm).reshape(-1, 3),
        frozen_f64(axes).reshape(-1, 3),
        frozen_f64(strengths_u).reshape(-1),
    )


@njit(cache=True, nogil=True)
def _boxes_kernel(n_ijk, origin, m_inv, pos, axes, r_out, rho_cyl, boxes):  # pragma: no cover
    """Numba body of :func:`_row_boxes` (``n_ijk`` (3,) float64, ``boxes`` (ns, 4) out)."""
    ns = pos.shape[0]
    per_mm = np.empty(3)
    c0 = np.empty(3)
    d = np.empty(3)
    lo = np.empty(3)
    hi = np.empty(3)
    for a in range(3):
        per_mm[a] = math.sqrt(m_inv[a, 0] ** 2 + m_inv[a, 1] ** 2 + m_inv[a, 2] ** 2)
    for s in range(ns):
        for a in range(3):
            c0[a] = (
                m_inv[a, 0] * (pos[s, 0] - origin[0])
                + m_inv[a, 1] * (pos[s, 1] - origin[1])
                + m_inv[a, 2] * (pos[s, 2] - origin[2])
            )
            e_ball = r_out * per_mm[a] + 1.0
            lo[a] = c0[a] - e_ball
            hi[a] = c0[a] + e_ball
        if rho_cyl > 0.0:
            t_lo = -math.inf
            t_hi = math.inf
            for a in range(3):
                d[a] = (
                    m_inv[a, 0] * axes[s, 0] + m_inv[a, 1] * axes[s, 1] + m_inv[a, 2] * axes[s, 2]
                )
                e = rho_cyl * per_mm[a] + 1.0
                g_lo = -e
                g_hi = n_ijk[a] - 1.0 + e
                if abs(d[a]) < 1e-12:
                    if not (g_lo <= c0[a] <= g_hi):
                        t_lo = math.inf
                        t_hi = -math.inf
                else:
                    t1 = (g_lo - c0[a]) / d[a]
                    t2 = (g_hi - c0[a]) / d[a]
                    t_lo = max(t_lo, min(t1, t2))
                    t_hi = min(t_hi, max(t1, t2))
            if t_hi >= t_lo:
                for a in range(3):
                    e = rho_cyl * per_mm[a] + 1.0
                    pa = c0[a] + t_lo * d[a]
                    pb = c0[a] + t_hi * d[a]
                    lo[a] = min(lo[a], min(pa, pb) - e)
                    hi[a] = max(hi[a], max(pa, pb) + e)
        boxes[s, 0] = lo[1]
        boxes[s, 1] = hi[1]
        boxes[s, 2] = lo[2]
        boxes[s, 3] = hi[2]


_M_INV: dict[bytes, NDArray[np.float64]] = {}


def _inverse(m_ijk: NDArray[np.float64]) -> NDArray[np.float64]:
    """inv(m_ijk), kept for the last few matrices (a drag step asks for the same few)."""
    key = m_ijk.tobytes()
    got = _M_INV.get(key)
    if got is None:
        if len(_M_INV) > 64:
            _M_INV.clear()
        got = _M_INV[key] = np.ascontiguousarray(np.linalg.inv(m_ijk))
    return got


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
    Boxes only let the row kernel skip rows (they hold everything, with a 1-index margin).
    In numba: the numpy version cost ~0.1 ms of Python per call, 9 calls per drag step.
    """
    ns = pos.shape[0]
    boxes = np.empty((ns, 4))
    if r_out <= 0.0 or ns == 0:
        boxes[:, 0] = boxes[:, 2] = -1.0
        boxes[:, 1] = boxes[:, 3] = 1.0e9
        return boxes
    n_ijk = np.array(shape_zyx[::-1], dtype=np.float64)
    _boxes_kernel(
        n_ijk,
        frozen_f64(origin_mm),
        frozen_f64(_inverse(m_ijk)),
        frozen_f64(pos),
        frozen_f64(axes),
        float(r_out),
        float(rho_cyl),
        boxes,
    )
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
    origin = frozen_f64(origin_mm)
    m = frozen_f64(m_ijk)
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
    pts = frozen_f64(points_mm).reshape(-1, 3)
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
