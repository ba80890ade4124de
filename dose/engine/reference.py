"""Independent pure-numpy TG-43U1 reference engine (slow, simple, obviously right).

A different code path from :mod:`dose.engine.kernels`: no lookup tables, no numba; every pair
(point, seed) is evaluated directly with ``np.arctan2`` and ``np.interp``, one seed at a time,
vectorised over points. Used by the tests to hold the fast engine to ≤ 0.1 %, by ``seedplan
bench`` as the numpy baseline, and by reports as an independent check.

Public API (pure functions, and :class:`ReferenceEngine`, which wraps them in the common engine
interface of :class:`dose.engine.base.DoseEngine`)::

    geometry_factor(r_cm, theta_rad, L_cm) -> G_L (cm⁻²)
    radial_dose(model, r_cm) -> g_L(r)
    anisotropy_2d(model, r_cm, theta_deg) -> F(r, θ)
    anisotropy_factor(model, r_cm) -> φ_an(r)
    single_seed_rate_per_u(model, rho_mm, z_mm, formalism) -> (Ḋ per U (cGy/h/U), flagged)
    rate_at_points(model, points_mm, positions_mm, axes, strengths_u, formalism,
                   cancel=None) -> (rate_cgy_h (P,), flagged (P,) bool)
    ReferenceEngine(model, formalism, cutoff_mm=None)   # make_engine(model, kind="reference")
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.engine.base import DoseEngine
from dose.geometry import GridGeometry
from dose.progress import CancelFn, check_cancelled
from dose.sources import SourceModel
from dose.tg43 import CM_PER_MM, ON_AXIS_SIN_THETA, Formalism

__all__ = [
    "ReferenceEngine",
    "anisotropy_2d",
    "anisotropy_factor",
    "geometry_factor",
    "radial_dose",
    "rate_at_points",
    "single_seed_rate_per_u",
]


def geometry_factor(r_cm: ArrayLike, theta_rad: ArrayLike, length_cm: float) -> NDArray[np.float64]:
    """Line-source G_L(r, θ) in cm⁻²; β as an atan2 difference, on-axis form near the axis.

    The on-axis form 1/(r² − L²/4) is used where sin θ < ON_AXIS_SIN_THETA and r > L/2.
    Points on the source segment itself (sin θ ≈ 0, r ≤ L/2) are singular: callers cap them.
    """
    r = np.asarray(r_cm, dtype=np.float64)
    th = np.asarray(theta_rad, dtype=np.float64)
    half = 0.5 * length_cm
    rho = r * np.sin(th)
    z = r * np.cos(th)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.arctan2(z + half, rho) - np.arctan2(z - half, rho)
        line = beta / (length_cm * rho)
        axis = 1.0 / (r * r - half * half)
    on_axis = (np.abs(np.sin(th)) < ON_AXIS_SIN_THETA) & (r > half)
    return np.where(on_axis, axis, line)


def radial_dose(model: SourceModel, r_cm: ArrayLike) -> NDArray[np.float64]:
    """g_L(r): linear inside the table, nearest below r_min, log-linear beyond r_max."""
    r = np.asarray(r_cm, dtype=np.float64)
    rs, gs = model.g_r_cm, model.g_values
    inside = np.interp(r, rs, gs)  # np.interp holds the end values: nearest below r_min
    slope = np.log(gs[-1] / gs[-2]) / (rs[-1] - rs[-2])
    beyond = gs[-1] * np.exp(slope * (r - rs[-1]))
    return np.where(r > rs[-1], beyond, inside)


def anisotropy_2d(model: SourceModel, r_cm: ArrayLike, theta_deg: ArrayLike) -> NDArray[np.float64]:
    """F(r, θ): bilinear in (r, θ°), θ folded to [0°, 90°], r clamped to the table."""
    r, th = np.broadcast_arrays(
        np.asarray(r_cm, dtype=np.float64), np.asarray(theta_deg, dtype=np.float64)
    )
    shape = r.shape
    r = r.ravel()
    th = np.abs(th.ravel()) % 360.0
    th = np.where(th > 180.0, 360.0 - th, th)
    th = np.minimum(th, 180.0 - th)  # fold: F(θ) = F(180° − θ) for these symmetric seeds
    ts = model.f_theta_deg
    # interpolate each θ row in r (np.interp clamps r to the table) ...
    rows = np.stack([np.interp(r, model.f_r_cm, model.f_values[it]) for it in range(ts.size)])
    # ... then linearly in θ between the bracketing rows.
    it = np.clip(np.searchsorted(ts, th, side="right") - 1, 0, ts.size - 2)
    w = (th - ts[it]) / (ts[it + 1] - ts[it])
    cols = np.arange(r.size)
    lo = rows[it, cols]
    hi = rows[it + 1, cols]
    return (lo + w * (hi - lo)).reshape(shape)


def anisotropy_factor(model: SourceModel, r_cm: ArrayLike) -> NDArray[np.float64]:
    """φ_an(r), linear in r and clamped to the table (requires the model to have φ_an)."""
    if model.phi_r_cm is None or model.phi_values is None:
        raise ValueError(f"model {model.model_id} has no φ_an table")
    return np.interp(np.asarray(r_cm, dtype=np.float64), model.phi_r_cm, model.phi_values)


def single_seed_rate_per_u(
    model: SourceModel, rho_mm: ArrayLike, z_mm: ArrayLike, formalism: Formalism = "2d"
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Ḋ per unit S_K (cGy h⁻¹ U⁻¹) of one seed at cylinder coordinates (ρ, z) in mm.

    Returns (rate, flagged) where flagged marks points inside the capsule (2D) or closer than the
    capsule radius (1D); those are evaluated at the capsule surface (ρ = capsule radius).
    """
    rho = np.abs(np.asarray(rho_mm, dtype=np.float64)) * CM_PER_MM
    z = np.abs(np.asarray(z_mm, dtype=np.float64)) * CM_PER_MM
    rho, z = np.broadcast_arrays(rho, z)
    length = model.active_length_cm
    g0 = geometry_factor(np.array(1.0), np.array(np.pi / 2), length)
    lam = model.dose_rate_constant
    if formalism == "1d":
        r = np.hypot(rho, z)
        flagged = r < model.capsule_radius_cm
        r = np.where(flagged, model.capsule_radius_cm, r)
        geo = geometry_factor(r, np.full(r.shape, np.pi / 2), length)
        rate = lam * geo / g0 * radial_dose(model, r) * anisotropy_factor(model, r)
        return rate, flagged
    flagged = (rho < model.capsule_radius_cm) & (z < model.capsule_half_length_cm)
    rho = np.where(flagged, model.capsule_radius_cm, rho)
    r = np.hypot(rho, z)
    theta = np.arctan2(rho, z)
    geo = geometry_factor(r, theta, length)
    rate = lam * geo / g0 * radial_dose(model, r) * anisotropy_2d(model, r, np.degrees(theta))
    return rate, flagged


def rate_at_points(
    model: SourceModel,
    points_mm: ArrayLike,
    positions_mm: ArrayLike,
    axes: ArrayLike,
    strengths_u: ArrayLike,
    formalism: Formalism = "2d",
    *,
    cancel: CancelFn | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Σ over seeds of S·Ḋ (cGy/h) at ``points_mm`` (P, 3); returns (rate (P,), flagged (P,))."""
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    pos = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    ax = np.asarray(axes, dtype=np.float64).reshape(-1, 3)
    st = np.asarray(strengths_u, dtype=np.float64).reshape(-1)
    total = np.zeros(pts.shape[0])
    flagged = np.zeros(pts.shape[0], dtype=bool)
    for s in range(pos.shape[0]):
        check_cancelled(cancel, "dose computation cancelled")
        d = pts - pos[s]
        z = d @ ax[s]
        rho = np.sqrt(np.maximum(np.einsum("ij,ij->i", d, d) - z * z, 0.0))
        rate, fl = single_seed_rate_per_u(model, rho, z, formalism)
        total += st[s] * rate
        flagged |= fl
    return total, flagged


class ReferenceEngine(DoseEngine):
    """The independent pure-numpy engine (this module's functions); slow, for checks."""

    kind = "reference"

    def _points(self, seeds, pts, cancel):
        if self.cutoff_mm is not None:
            rate = np.zeros(pts.shape[0])
            flagged = np.zeros(pts.shape[0], dtype=bool)
            for s in range(len(seeds)):
                check_cancelled(cancel, "dose computation cancelled")
                near = np.linalg.norm(pts - seeds.positions_mm[s], axis=1) < self.cutoff_mm
                r, f = rate_at_points(
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
        return rate_at_points(
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
            r, f = rate_at_points(
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
