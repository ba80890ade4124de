"""The (r, θ) lookup tables of the numba engine and a model prepared for the kernels.

* :class:`TableLayout` / ``TABLE_LAYOUT``: rows and columns shared by every table of a model.
* :class:`FastModel` / :func:`fast_model`: a :class:`dose.sources.SourceModel` converted once for
  the kernels (scalars ``p_scal``, the published tables as float64 arrays) with its table
  T = Ḋ·r² per U tabulated on ``TABLE_LAYOUT`` (float64, and the float32 copy the kernels read).
* ``ATAN_COEF``: the polynomial atan the kernels use instead of a libm call.
* ``KERNEL_LOCK``: every kernel launch holds it (numba's workqueue threading layer is not
  re-entrant), so launches from a GUI thread and a worker thread never overlap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.engine.kernels.jit import tabulate
from dose.sources import SourceModel
from dose.tg43 import CM_PER_MM, ON_AXIS_SIN_THETA, Formalism, reference_geometry_factor

__all__ = ["ATAN_COEF", "KERNEL_LOCK", "TABLE_LAYOUT", "FastModel", "TableLayout", "fast_model"]

KERNEL_LOCK = threading.RLock()


def _atan_coefficients() -> NDArray[np.float64]:
    """Coefficients c (ascending in t²) with atan(t) ≈ t·Σ c_k t^(2k) on [0, 1]."""
    t = 0.5 * (1 - np.cos(np.linspace(0, np.pi, 2001)))  # Chebyshev-like nodes on [0, 1]
    s = t * t
    y = np.where(t > 0, np.arctan(t) / np.where(t > 0, t, 1.0), 1.0)
    coef = np.polynomial.polynomial.polyfit(s, y, 9)
    return np.ascontiguousarray(coef, dtype=np.float64)


ATAN_COEF = _atan_coefficients()


@dataclass(frozen=True)
class TableLayout:
    """Rows and columns of the (r, θ) lookup tables (every table of a model shares them).

    Rows: r in mm from 0 in segments of uniform step (``r_breaks_mm``, ``r_steps_mm``); columns:
    θ in degrees, step ``dtheta_fine_deg`` below ``theta_break_deg`` (the axis caps of FAST mode
    live there), ``dtheta_coarse_deg`` above. Every published r node (g_L, F) is a multiple of
    its segment's step and every published θ node an integer degree, so the kinks of g_L and F
    fall on rows and columns and the tables reproduce the formalism to ~1e-6.
    """

    r_breaks_mm: tuple[float, float, float, float] = (0.0, 25.0, 60.0, 600.0)
    r_steps_mm: tuple[float, float, float] = (0.05, 0.25, 1.0)
    theta_break_deg: float = 10.0
    dtheta_fine_deg: float = 0.25
    dtheta_coarse_deg: float = 1.0

    def _counts(self) -> tuple[int, int, int]:
        b, s = self.r_breaks_mm, self.r_steps_mm
        return (
            round((b[1] - b[0]) / s[0]),
            round((b[2] - b[1]) / s[1]),
            round((b[3] - b[2]) / s[2]) + 1,
        )

    def r_nodes_mm(self) -> NDArray[np.float64]:
        n0, n1, n2 = self._counts()
        b, s = self.r_breaks_mm, self.r_steps_mm
        return np.concatenate(
            [b[0] + np.arange(n0) * s[0], b[1] + np.arange(n1) * s[1], b[2] + np.arange(n2) * s[2]]
        )

    def theta_nodes_deg(self) -> NDArray[np.float64]:
        nf = round(self.theta_break_deg / self.dtheta_fine_deg)
        nc = round((90.0 - self.theta_break_deg) / self.dtheta_coarse_deg) + 1
        return np.concatenate(
            [
                np.arange(nf) * self.dtheta_fine_deg,
                self.theta_break_deg + np.arange(nc) * self.dtheta_coarse_deg,
            ]
        )

    def params(self) -> NDArray[np.float64]:
        """Kernel parameters: [1/dr0, r1, n0, 1/dr1, r2, n0 + n1, 1/dr2, r_max, 1/dθf, θb, nθf,
        1/dθc] (mm, degrees)."""
        n0, n1, _ = self._counts()
        b, s = self.r_breaks_mm, self.r_steps_mm
        return np.array(
            [
                1.0 / s[0],
                b[1],
                float(n0),
                1.0 / s[1],
                b[2],
                float(n0 + n1),
                1.0 / s[2],
                b[3],
                1.0 / self.dtheta_fine_deg,
                self.theta_break_deg,
                float(round(self.theta_break_deg / self.dtheta_fine_deg)),
                1.0 / self.dtheta_coarse_deg,
            ]
        )


TABLE_LAYOUT = TableLayout()


@dataclass(frozen=True, eq=False)
class FastModel:
    """A source model prepared for the kernels (tables converted once, LUT built once)."""

    model: SourceModel
    formalism: Formalism
    p_scal: NDArray[np.float64]
    g_r: NDArray[np.float64]
    g_v: NDArray[np.float64]
    f_r: NDArray[np.float64]
    f_t: NDArray[np.float64]
    f_v: NDArray[np.float64]
    phi_r: NDArray[np.float64]
    phi_v: NDArray[np.float64]
    table: NDArray[np.float64]  # T = Ḋ·r² per U on TABLE_LAYOUT, float64 (nr, nθ)
    lut: NDArray[np.float32]  # the same in float32: what the kernels read
    lut_par: NDArray[np.float64]  # TABLE_LAYOUT.params()

    @property
    def is_1d(self) -> bool:
        return self.formalism == "1d"

    def model_arrays(self) -> tuple:
        return (
            self.p_scal,
            self.g_r,
            self.g_v,
            self.f_r,
            self.f_t,
            self.f_v,
            self.phi_r,
            self.phi_v,
            self.is_1d,
        )


def frozen_f64(a: object) -> NDArray[np.float64]:
    """``a`` as a C-contiguous float64 array that is READ-ONLY (a view: no copy when it already is
    C-contiguous float64).

    Every array a kernel only reads goes through this: numba compiles one specialisation per
    combination of read-only flags, so a caller passing a frozen SeedSet's positions where
    another passes a fresh array made ``part_rows`` compile 7 times (≈ 10 s each on 2 cores; the
    first oblique slice of a session, and 37 s of a test on a fresh clone) instead of once, and
    :func:`dose.engine.warm_up` could not cover them.
    """
    view = np.ascontiguousarray(a, dtype=np.float64).view()
    view.flags.writeable = False
    return view


_FAST_CACHE: dict[tuple[str, float, float, str], FastModel] = {}


def fast_model(model: SourceModel, formalism: Formalism) -> FastModel:
    """Prepare (and cache, by table checksum and capsule) the kernel data for ``model``."""
    # the capsule is part of SourceModel.checksum; kept in the key to make the dependence plain
    key = (model.checksum, model.capsule_radius_cm, model.capsule_half_length_cm, formalism)
    fm = _FAST_CACHE.get(key)
    if fm is not None:
        return fm
    p_scal = np.array(
        [
            model.dose_rate_constant,
            model.active_length_cm,
            reference_geometry_factor(model.active_length_cm),
            model.capsule_radius_cm,
            model.capsule_half_length_cm,
            ON_AXIS_SIN_THETA,  # conventions as data: see dose.engine.kernels.jit
            CM_PER_MM,
        ]
    )
    is_1d = formalism == "1d"
    phi_r = model.phi_r_cm if model.phi_r_cm is not None else np.ones(1)
    phi_v = model.phi_values if model.phi_values is not None else np.ones(1)
    p_scal = frozen_f64(p_scal)
    arrays = [
        frozen_f64(a)
        for a in (
            model.g_r_cm,
            model.g_values,
            model.f_r_cm,
            model.f_theta_deg,
            model.f_values,
            phi_r,
            phi_v,
        )
    ]
    lay = TABLE_LAYOUT
    with KERNEL_LOCK:
        table = tabulate(
            frozen_f64(lay.r_nodes_mm()), frozen_f64(lay.theta_nodes_deg()), p_scal, *arrays, is_1d
        )
    fm = FastModel(
        model,
        formalism,
        p_scal,
        *arrays,
        table,
        np.ascontiguousarray(table, dtype=np.float32),
        lay.params(),
    )
    _FAST_CACHE[key] = fm
    return fm
