"""Compiled (numba) closed forms of the seed image model and its Jacobian.

The same formulas as :func:`planner.postop.detection.seed_fit.line_image` and
:func:`planner.postop.detection.seed_fit.line_image_jacobian` (the numpy reference, which documents
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
def _point_terms(point, centre, u, inv, a, s, factor, half, out) -> None:
    """Into ``out`` (6,): the offset d = point − centre (3), t₀ = b/a, the erf integral along
    the line and the Gaussian across it, for one point and one seed."""
    for k in range(3):
        out[k] = point[k] - centre[k]
    b = out[0] * u[0] * inv[0] + out[1] * u[1] * inv[1] + out[2] * u[2] * inv[2]
    q = out[0] * out[0] * inv[0] + out[1] * out[1] * inv[1] + out[2] * out[2] * inv[2]
    t0 = b / a
    out[3] = t0
    out[4] = factor * (math.erf(s * (half - t0)) + math.erf(s * (half + t0)))
    out[5] = math.exp(-0.5 * max(q - b * t0, 0.0))


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
    ``(n, 3)`` of ``amplitudes`` ``(n,)`` HU·mm³
    (:func:`planner.postop.detection.seed_fit.line_image`)."""
    out = np.zeros(points.shape[0])
    half = 0.5 * length_mm
    d = np.empty(6)
    for j in range(centres.shape[0]):
        inv, norm, u, _, a, s, factor = _seed_terms(axes[j], sigma_mm, length_mm)
        weight = amplitudes[j] * norm / length_mm
        for m in range(points.shape[0]):
            _point_terms(points[m], centres[j], u, inv, a, s, factor, half, d)
            out[m] += weight * d[4] * d[5]
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
    :func:`line_image_nb` (:func:`planner.postop.detection.seed_fit.line_image_jacobian`)."""
    n_points, n = points.shape[0], centres.shape[0]
    d_centre = np.empty((n_points, n, 3))
    d_axis = np.empty((n_points, n, 3))
    d_amplitude = np.empty((n_points, n))
    half = 0.5 * length_mm
    d = np.empty(6)
    off_line = np.empty(3)
    d_unit = np.empty(3)
    for j in range(n):
        inv, norm, u, length, a, s, factor = _seed_terms(axes[j], sigma_mm, length_mm)
        weight = amplitudes[j] * norm / length_mm
        ui = u * inv
        for m in range(n_points):
            _point_terms(points[m], centres[j], u, inv, a, s, factor, half, d)
            t0, integral, gauss = d[3], d[4], d[5]
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


def warm_up() -> None:
    """Compile both kernels (or load them from numba's disk cache) for the argument types
    :mod:`planner.postop.detection.seed_fit` calls them with: contiguous float64 arrays and a float.
    The GUI runs this in its start-up warm-up child (:mod:`app.gui.dose_warmup`): on a fresh
    install the first fit would otherwise compile for ~1.4 s on the verify worker, holding the
    GIL."""
    points = np.zeros((2, 3))
    centres = np.zeros((1, 3))
    axes = np.array([[0.0, 0.0, 1.0]])
    amplitudes = np.ones(1)
    sigma = np.ones(3)
    line_image_nb(points, centres, axes, amplitudes, sigma, 4.5)
    line_image_jacobian_nb(points, centres, axes, amplitudes, sigma, 4.5)
