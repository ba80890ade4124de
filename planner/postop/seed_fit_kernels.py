"""Compiled (numba) closed forms of the seed image model and its Jacobian.

The same formulas as :func:`planner.postop.seed_fit.line_image` and
:func:`planner.postop.seed_fit.line_image_jacobian` (the numpy reference, which documents
them), one loop over seeds and points instead of ``(M, n, 3)`` temporaries: a fit evaluates
them on a few hundred to a few thousand voxels, thousands of times per scan, where numpy's
per-call overhead dominates. Frames, shapes and units are those of the reference.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray


@numba.njit(cache=True)
def _seed_terms(axis, sigma, length_mm):
    """(1/σ² (3,), Gaussian norm, unit axis (3,), axis length, a, s, erf-integral factor)."""
    inv = 1.0 / sigma**2
    norm = 1.0 / ((2.0 * math.pi) ** 1.5 * sigma[0] * sigma[1] * sigma[2])
    length = math.sqrt(axis[0] ** 2 + axis[1] ** 2 + axis[2] ** 2)
    u = axis / length
    a = u[0] * u[0] * inv[0] + u[1] * u[1] * inv[1] + u[2] * u[2] * inv[2]
    return inv, norm, u, length, a, math.sqrt(a / 2.0), math.sqrt(math.pi / (2.0 * a))


@numba.njit(cache=True)
def line_image_nb(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float,
) -> NDArray[np.float64]:
    """Image (HU) ``(M,)`` at ``points`` ``(M, 3)`` of the line sources ``centres``/``axes``
    ``(n, 3)`` of ``amplitudes`` ``(n,)`` HU·mm³ (:func:`planner.postop.seed_fit.line_image`)."""
    out = np.zeros(points.shape[0])
    half = 0.5 * length_mm
    for j in range(centres.shape[0]):
        inv, norm, u, _, a, s, factor = _seed_terms(axes[j], sigma_mm, length_mm)
        weight = amplitudes[j] * norm / length_mm
        for m in range(points.shape[0]):
            d0 = points[m, 0] - centres[j, 0]
            d1 = points[m, 1] - centres[j, 1]
            d2 = points[m, 2] - centres[j, 2]
            b = d0 * u[0] * inv[0] + d1 * u[1] * inv[1] + d2 * u[2] * inv[2]
            q = d0 * d0 * inv[0] + d1 * d1 * inv[1] + d2 * d2 * inv[2]
            t0 = b / a
            integral = factor * (math.erf(s * (half - t0)) + math.erf(s * (half + t0)))
            out[m] += weight * integral * math.exp(-0.5 * max(q - b * t0, 0.0))
    return out


@numba.njit(cache=True)
def line_image_jacobian_nb(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float,
):
    """(∂/∂centre ``(M, n, 3)``, ∂/∂axis vector ``(M, n, 3)``, ∂/∂amplitude ``(M, n)``) of
    :func:`line_image_nb` (:func:`planner.postop.seed_fit.line_image_jacobian`)."""
    n_points, n = points.shape[0], centres.shape[0]
    d_centre = np.empty((n_points, n, 3))
    d_axis = np.empty((n_points, n, 3))
    d_amplitude = np.empty((n_points, n))
    half = 0.5 * length_mm
    d = np.empty(3)
    off_line = np.empty(3)
    d_unit = np.empty(3)
    for j in range(n):
        inv, norm, u, length, a, s, factor = _seed_terms(axes[j], sigma_mm, length_mm)
        weight = amplitudes[j] * norm / length_mm
        ui = u * inv
        for m in range(n_points):
            for k in range(3):
                d[k] = points[m, k] - centres[j, k]
            b = d[0] * ui[0] + d[1] * ui[1] + d[2] * ui[2]
            q = d[0] * d[0] * inv[0] + d[1] * d[1] * inv[1] + d[2] * d[2] * inv[2]
            t0 = b / a
            integral = factor * (math.erf(s * (half - t0)) + math.erf(s * (half + t0)))
            gauss = math.exp(-0.5 * max(q - b * t0, 0.0))
            e_minus = math.exp(-((s * (half - t0)) ** 2))
            e_plus = math.exp(-((s * (half + t0)) ** 2))
            d_int_dt0 = e_plus - e_minus
            d_int_da = ((half - t0) * e_minus + (half + t0) * e_plus - integral) / (2.0 * a)
            gw = gauss * weight
            d_amplitude[m, j] = gauss * integral * (norm / length_mm)
            along = 0.0
            for k in range(3):
                off_line[k] = (d[k] - t0 * u[k]) * inv[k]
                d_centre[m, j, k] = gw * (integral * off_line[k] - d_int_dt0 * ui[k] / a)
                d_t0_du = (d[k] * inv[k] - 2.0 * t0 * ui[k]) / a
                d_unit[k] = gw * (
                    integral * t0 * off_line[k] + d_int_da * 2.0 * ui[k] + d_int_dt0 * d_t0_du
                )
                along += d_unit[k] * u[k]
            for k in range(3):
                d_axis[m, j, k] = (d_unit[k] - along * u[k]) / length
    return d_centre, d_axis, d_amplitude
