"""Least-squares fit of the seed image model to a blob: where the seeds are, how many.

Each seed is a line source of ``SEED_LENGTH_MM`` along its unit axis, blurred by the scanner:
an in-plane Gaussian PSF (σ ≈ 0.45 mm, widened by the seed's 0.8 mm diameter) and a Gaussian
slice profile of FWHM = the slice thickness. Its image at a point x is (closed form, erf)::

    A / L · ∫_{-L/2}^{L/2} N(x − c − t·u; Σ) dt        (HU; A in HU·mm³, Σ diagonal on the grid)

:func:`fit_seeds` fits ``n`` such seeds (centre, axis, amplitude each) plus a constant offset
to a blob's excess HU by ``scipy.optimize.least_squares``; voxels the scanner saturated only
bound the model from below. :func:`best_fit` tries several counts and keeps the one of least
BIC (Bayesian information criterion), so the residual decides how many seeds a blob holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares
from scipy.special import erf

from planner.postop.detection.blobs import FWHM_TO_SIGMA, INPLANE_PSF_SIGMA_MM, SEED_LENGTH_MM
from planner.postop.detection.seed_fit_kernels import line_image_jacobian_nb, line_image_nb

#: Seed diameter (mm): its cross-section widens the in-plane blur (variance r²/4 per axis).
SEED_DIAMETER_MM = 0.8
#: The fits use the closed-form Jacobian (:func:`line_image_jacobian`), not finite differences.
ANALYTIC_JACOBIAN = True
#: The fits evaluate the model and its Jacobian by the compiled kernels of
#: :mod:`planner.postop.detection.seed_fit_kernels` (2.7–2.8 × the numpy reference on 1500 voxels,
#: the same values to 1e-15); False: by :func:`line_image` and :func:`line_image_jacobian`.
COMPILED_KERNELS = True


@dataclass(frozen=True)
class SeedImageModel:
    """The scanner's blur on a grid: σ (mm) along the grid's i, j, k axes and its direction
    matrix ``rot`` (columns: the i, j, k axes in LPS)."""

    sigma_mm: NDArray[np.float64]  # (3,)
    rot: NDArray[np.float64]  # (3, 3)
    length_mm: float = SEED_LENGTH_MM

    @classmethod
    def for_grid(cls, spacing_mm, direction) -> SeedImageModel:
        """The model of a CT of ``spacing_mm`` (i, j, k; k = slice thickness) and direction."""
        inplane = np.sqrt(INPLANE_PSF_SIGMA_MM**2 + (SEED_DIAMETER_MM / 2) ** 2 / 4.0)
        sig = np.array([inplane, inplane, float(spacing_mm[2]) * FWHM_TO_SIGMA])
        return cls(sig, np.asarray(direction, dtype=np.float64))


@dataclass(frozen=True)
class SeedFit:
    """``n`` fitted seeds: centres ``(n, 3)`` LPS mm, unit axes ``(n, 3)``, amplitudes
    ``(n,)`` HU·mm³, the offset (HU), residual sum of squares (HU²) over ``n_points`` voxels,
    and BIC."""

    centres_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    amplitudes: NDArray[np.float64]
    offset_hu: float
    rss: float
    n_points: int
    bic: float

    @property
    def n(self) -> int:
        return len(self.centres_mm)


def line_image(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float = SEED_LENGTH_MM,
) -> NDArray[np.float64]:
    """Image (HU) at ``points`` ``(M, 3)`` of line sources ``centres``/``axes`` ``(n, 3)`` of
    integrated excess ``amplitudes`` ``(n,)`` HU·mm³, blurred by a Gaussian of σ ``sigma_mm``
    per axis; all in one frame whose axes are the blur's (mm)."""
    t = _LineTerms.of(points, centres, axes, sigma_mm, length_mm)
    return (t.gauss * t.integral) @ (amplitudes * t.norm / length_mm)


@dataclass(frozen=True)
class _LineTerms:
    """The closed form's terms for ``M`` points and ``n`` seeds (grid frame, mm): 1/σ²
    ``inv`` (3,), the Gaussian's norm, the unit axes ``u`` (n, 3) and the axis vectors'
    lengths (n, 1), offsets ``d`` (M, n, 3), a = Σ u²/σ² (n,), the position t₀ = b/a along
    the axis (M, n), s = √(a/2), the half length, the Gaussian across the line and the erf
    integral along it (M, n)."""

    inv: NDArray[np.float64]
    norm: float
    u: NDArray[np.float64]
    length: NDArray[np.float64]
    d: NDArray[np.float64]
    a: NDArray[np.float64]
    t0: NDArray[np.float64]
    s: NDArray[np.float64]
    half: float
    gauss: NDArray[np.float64]
    integral: NDArray[np.float64]

    @classmethod
    def of(cls, points, centres, axes, sigma_mm, length_mm) -> _LineTerms:
        inv = 1.0 / sigma_mm**2  # (3,)
        norm = 1.0 / ((2.0 * np.pi) ** 1.5 * np.prod(sigma_mm))
        length = np.linalg.norm(axes, axis=1, keepdims=True)  # (n, 1)
        u = axes / length
        d = points[:, None, :] - centres[None, :, :]  # (M, n, 3)
        a = np.sum(u * u * inv, axis=1)  # (n,)
        b = np.sum(d * (u * inv)[None], axis=2)  # (M, n)
        q = np.sum(d * d * inv, axis=2)  # (M, n)
        t0 = b / a
        s = np.sqrt(a / 2.0)
        half = 0.5 * length_mm
        integral = np.sqrt(np.pi / (2.0 * a)) * (erf(s * (half - t0)) + erf(s * (half + t0)))
        gauss = np.exp(-0.5 * np.maximum(q - b * t0, 0.0))
        return cls(inv, float(norm), u, length, d, a, t0, s, half, gauss, integral)


def line_image_jacobian(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float = SEED_LENGTH_MM,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Derivatives of :func:`line_image` at ``points`` ``(M, 3)``: with respect to each seed's
    centre ``(M, n, 3)`` (HU/mm), its (unnormalised) axis vector ``(M, n, 3)`` and its amplitude
    ``(M, n)`` (HU per HU·mm³). Closed form: with the line's Gaussian exp(−E/2) (E = q − b²/a)
    and its erf integral I(a, t₀), ∂I/∂t₀ = e₊ − e₋ and ∂I/∂a = ((h − t₀)e₋ + (h + t₀)e₊ − I)/2a
    (e± = exp(−a(h ± t₀)²/2), h the half length)."""
    t = _LineTerms.of(points, centres, axes, sigma_mm, length_mm)
    inv, norm, u, length, d, a, t0 = t.inv, t.norm, t.u, t.length, t.d, t.a, t.t0
    half, gauss, integral = t.half, t.gauss, t.integral
    e_minus = np.exp(-((t.s * (half - t0)) ** 2))
    e_plus = np.exp(-((t.s * (half + t0)) ** 2))
    weight = amplitudes * norm / length_mm  # (n,)
    d_amplitude = gauss * integral * (norm / length_mm)  # (M, n)
    off_line = (d - t0[..., None] * u[None]) * inv  # (M, n, 3): inv ⊙ (d − t₀u)
    d_int_dt0 = e_plus - e_minus
    d_int_da = ((half - t0) * e_minus + (half + t0) * e_plus - integral) / (2.0 * a)
    # Centre: ∂E/∂c = −2 inv ⊙ (d − t₀u), ∂t₀/∂c = −inv ⊙ u / a.
    d_centre = (gauss * weight)[..., None] * (
        integral[..., None] * off_line - d_int_dt0[..., None] * (u * inv)[None] / a[None, :, None]
    )
    # Unit axis: ∂E/∂u = −2t₀ inv ⊙ (d − t₀u), ∂a/∂u = 2 inv ⊙ u,
    # ∂t₀/∂u = (inv ⊙ d − 2t₀ inv ⊙ u)/a.
    d_t0_du = (d * inv - 2.0 * t0[..., None] * (u * inv)[None]) / a[None, :, None]
    d_unit = (gauss * weight)[..., None] * (
        integral[..., None] * t0[..., None] * off_line
        + d_int_da[..., None] * 2.0 * (u * inv)[None]
        + d_int_dt0[..., None] * d_t0_du
    )
    # The axis vector v: ∂u/∂v = (1 − u uᵀ)/|v|.
    d_axis = (d_unit - np.sum(d_unit * u[None], axis=2, keepdims=True) * u[None]) / length[None]
    return d_centre, d_axis, d_amplitude


def _kernel_args(points, centres, axes, amplitudes, sigma_mm, length_mm) -> tuple:
    """The arguments as the compiled kernels take them (contiguous float64, a float)."""
    arrays = (points, centres, axes, amplitudes, sigma_mm)
    return (*(np.ascontiguousarray(v, dtype=np.float64) for v in arrays), float(length_mm))


def line_image_fast(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float = SEED_LENGTH_MM,
) -> NDArray[np.float64]:
    """:func:`line_image`, by the compiled kernel where ``COMPILED_KERNELS``."""
    args = (points, centres, axes, amplitudes, sigma_mm, length_mm)
    return line_image_nb(*_kernel_args(*args)) if COMPILED_KERNELS else line_image(*args)


def line_image_jacobian_fast(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    length_mm: float = SEED_LENGTH_MM,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """:func:`line_image_jacobian`, by the compiled kernel where ``COMPILED_KERNELS``."""
    args = (points, centres, axes, amplitudes, sigma_mm, length_mm)
    if COMPILED_KERNELS:
        return line_image_jacobian_nb(*_kernel_args(*args))
    return line_image_jacobian(*args)


def line_image_at(
    coords: NDArray[np.float64],
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    amplitude: float,
    model: SeedImageModel,
) -> NDArray[np.float64]:
    """Image (HU) at voxel centres ``coords`` ``(M, 3)`` LPS mm of seeds ``centres_mm``/``axes``
    ``(m, 3)`` of one ``amplitude`` (HU·mm³) each, on ``model``'s grid: the neighbours a fit
    holds fixed."""
    origin = coords.mean(axis=0)
    return line_image_fast(
        (coords - origin) @ model.rot,
        (centres_mm - origin) @ model.rot,
        axes @ model.rot,
        np.full(len(centres_mm), amplitude),
        model.sigma_mm,
        model.length_mm,
    )


def neighbours_image(
    coords: NDArray[np.float64],
    around_mm: NDArray[np.float64],
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    others: NDArray[np.bool_],
    amplitude: float,
    model: SeedImageModel,
    reach_mm: float,
) -> NDArray[np.float64] | None:
    """:func:`line_image_at` ``coords`` of the seeds ``centres_mm``/``axes`` ``(m, 3)`` that
    ``others`` ``(m,)`` selects and that lie within the box of ``around_mm`` ``(k, 3)`` grown
    by ``reach_mm`` (the neighbours a fit holds fixed); None where there is none."""
    lo = around_mm.min(axis=0) - reach_mm
    hi = around_mm.max(axis=0) + reach_mm
    near = others & np.all((centres_mm >= lo) & (centres_mm <= hi), axis=1)
    if not near.any():
        return None
    return line_image_at(coords, centres_mm[near], axes[near], amplitude, model)


def seeds_around_image(
    coords: NDArray[np.float64],
    centres_mm: NDArray[np.float64],
    axes: NDArray[np.float64],
    n: int,
    reach_mm: float,
    amplitude: float,
    model: SeedImageModel,
) -> NDArray[np.float64] | None:
    """:func:`line_image_at` ``coords`` of the seeds of ``centres_mm``/``axes`` ``(m, 3)``
    closer than ``reach_mm`` to seed ``n`` (not it, nor one on it): the neighbours a fit of
    seed ``n`` holds fixed; None where there is none. (:func:`neighbours_image` selects by a
    box about several points instead.)"""
    d = np.linalg.norm(centres_mm - centres_mm[n], axis=1)
    near = (d > 0) & (d < reach_mm)
    if not near.any():
        return None
    return line_image_at(coords, centres_mm[near], axes[near], amplitude, model)


def fit_seeds(
    coords_mm: NDArray[np.float64],
    values_hu: NDArray[np.float64],
    init_centres_mm: NDArray[np.float64],
    init_axes: NDArray[np.float64],
    amplitude: float,
    model: SeedImageModel,
    saturated: NDArray[np.bool_] | None = None,
    amplitude_range: tuple[float, float] = (0.5, 1.6),
    fixed_hu: NDArray[np.float64] | None = None,
    max_evaluations: int = 40,
) -> SeedFit:
    """Fit ``len(init_centres_mm)`` seeds to the excess ``values_hu`` ``(M,)`` at voxel
    centres ``coords_mm`` ``(M, 3)`` LPS, starting from the given centres and axes and the
    single-seed ``amplitude`` (HU·mm³, each seed's bounded to ``amplitude_range`` × it).
    ``saturated`` voxels (clipped by the scanner) count only where the model is below them;
    ``fixed_hu`` ``(M,)`` is the image of seeds not fitted (neighbours), added to the model;
    ``max_evaluations`` bounds the residual evaluations of the least squares."""
    n = len(init_centres_mm)
    origin = coords_mm.mean(axis=0)
    pts = (coords_mm - origin) @ model.rot  # grid frame, mm
    c0 = (np.asarray(init_centres_mm) - origin) @ model.rot
    u0 = np.asarray(init_axes) @ model.rot
    u0 = u0 / np.linalg.norm(u0, axis=1, keepdims=True)
    x0 = np.concatenate([np.hstack([c0, u0, np.ones((n, 1))]).ravel(), [0.0]])
    lo_c, hi_c = pts.min(axis=0) - 1.0, pts.max(axis=0) + 1.0
    lo = np.concatenate([np.tile(np.r_[lo_c, -2.0, -2.0, -2.0, amplitude_range[0]], n), [-300.0]])
    hi = np.concatenate([np.tile(np.r_[hi_c, 2.0, 2.0, 2.0, amplitude_range[1]], n), [300.0]])
    x0 = np.clip(x0, lo + 1e-6, hi - 1e-6)
    sat = np.zeros(len(values_hu), dtype=bool) if saturated is None else saturated
    fixed = np.zeros(len(values_hu)) if fixed_hu is None else fixed_hu

    def residual(x: NDArray[np.float64]) -> NDArray[np.float64]:
        p = x[:-1].reshape(n, 7)
        axes = p[:, 3:6] + 1e-9
        img = line_image_fast(
            pts, p[:, :3], axes, p[:, 6] * amplitude, model.sigma_mm, model.length_mm
        )
        r = img + x[-1] + fixed - values_hu
        return np.where(sat, np.minimum(r, 0.0), r)

    def jacobian(x: NDArray[np.float64]) -> NDArray[np.float64]:
        p = x[:-1].reshape(n, 7)
        d_c, d_v, d_a = line_image_jacobian_fast(
            pts, p[:, :3], p[:, 3:6] + 1e-9, p[:, 6] * amplitude, model.sigma_mm, model.length_mm
        )
        jac = np.empty((len(values_hu), n, 7))
        jac[:, :, :3], jac[:, :, 3:6], jac[:, :, 6] = d_c, d_v, d_a * amplitude
        jac = np.concatenate([jac.reshape(len(values_hu), 7 * n), np.ones((len(values_hu), 1))], 1)
        img = d_a @ (p[:, 6] * amplitude)
        above = sat & (img + x[-1] + fixed - values_hu > 0.0)  # saturated, model below: no pull
        jac[above] = 0.0
        return jac

    scale = np.concatenate([np.tile(np.r_[0.5, 0.5, 1.0, 0.3, 0.3, 0.3, 0.2], n), [50.0]])
    sol = least_squares(
        residual,
        x0,
        jac=jacobian if ANALYTIC_JACOBIAN else "2-point",
        bounds=(lo, hi),
        x_scale=scale,
        method="trf",
        max_nfev=max_evaluations,
        ftol=1e-5,
        xtol=1e-5,
    )
    p = sol.x[:-1].reshape(n, 7)
    axes = p[:, 3:6] / np.linalg.norm(p[:, 3:6], axis=1, keepdims=True)
    rss = float(np.sum(sol.fun**2))
    m = len(values_hu)
    k = 7 * n + 1
    bic = m * np.log(max(rss, 1e-9) / m) + k * np.log(m)
    return SeedFit(
        centres_mm=p[:, :3] @ model.rot.T + origin,
        axes=axes @ model.rot.T,
        amplitudes=p[:, 6] * amplitude,
        offset_hu=float(sol.x[-1]),
        rss=rss,
        n_points=m,
        bic=float(bic),
    )
