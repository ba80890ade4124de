"""Dose-volume histograms (DVH): the value object and its computation.

Public API
----------
``compute_dvh(dose_gy, occupancy, geometry, *, dose_geometry=None, samples_per_voxel=4, jitter=True,
bin_width_gy=None, name="", prescription_gy=None, boundary_points_mm=None) -> DVH``
    DVH of a structure given as a fractional occupancy array (0..1, or a bool mask) on
    ``geometry``; the dose (Gy) lives on ``dose_geometry`` (default: the same grid).
``sample_dose_gy(dose_gy, dose_geometry, points_mm) -> (N,) Gy``
    Trilinear dose at LPS points (0 outside the dose grid's voxel boxes).
``volume_at_or_above_cm3(dose_gy, geometry, threshold_gy, *, samples_per_voxel=4, jitter=True)``
    Volume of the whole dose grid receiving ≥ a dose, with the *same* sub-voxel sampling as
    :func:`compute_dvh` (used for V_ref in the conformity indices).
``default_bin_width_gy(prescription_gy=None) -> float``
    min(0.1 Gy, 0.5 % of the prescription).
``DVH``
    Cumulative and differential, absolute (Gy, cm³) and relative (% PD, % volume); named queries
    :meth:`DVH.d_percent` (D90 %), :meth:`DVH.d_cc` (D0.1 cm³), :meth:`DVH.v_gy`,
    :meth:`DVH.v_percent_pd` (V100 % PD) …, or by name with :meth:`DVH.query` ("D90",
    "V100", "D0.1cc", "V20Gy"); :meth:`DVH.summary` gives the CLI keys.

Method (how sub-voxel accuracy is obtained)
-------------------------------------------
Every voxel of ``geometry`` with occupancy > 0 gets ``samples_per_voxel`` (n) dose samples on an
n-rooks pattern: along each axis the voxel is cut into n strata holding one sample each (the
axis resolution of an n×n×n grid at 1/n² of its cost). At each sample point the dose is
interpolated trilinearly from the dose grid; with ``jitter`` (default) the point is placed at a
deterministic low-discrepancy position inside its stratum cell (R3 sequence keyed by the voxel's
own index) instead of the cell centre, so a smooth dose field is sampled without the stair-steps
a regular lattice prints on the DVH. Each sample carries
``occupancy × voxel volume / n``. The structure volume is therefore the occupancy
integral, and it equals the sum of the histogram bins (TG-53 / DVH-3: one rule for volume and
dose). Samples outside the dose grid (beyond the outer voxels' boxes) count at 0 Gy and their
volume is reported in :attr:`DVH.outside_dose_grid_cm3`.

Dmin, Dmax and Dmean are exact over the samples (not bin-quantised). Dmin/Dmax are taken over
the samples of voxels at least half inside the structure (voxel-centre rule; samples of barely
touched voxels lie outside it), or, when ``boundary_points_mm`` are given (contour vertices and
end-cap faces), over those surface points plus the samples of fully occupied voxels: the extreme
dose of a smooth field lies on the surface, where no interior sample reaches. D and V queries
interpolate the cumulative DVH linearly inside bins (dose assumed uniform within a bin, and
within [Dmin, first edge] and [last edge, Dmax]).

For contoured structures (DICOM RTSTRUCT) :mod:`planner.dicom.rtstruct` rasterises the contours on a
fine grid (≤ 0.5 mm, sub-slice sampling between contour planes, explicit end-cap rule) and calls
:func:`compute_dvh` with ``dose_geometry`` set to the RTDOSE grid and ``samples_per_voxel=1``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry

__all__ = [
    "DVH",
    "compute_dvh",
    "default_bin_width_gy",
    "dvh_from_samples",
    "sample_dose_gy",
    "volume_at_or_above_cm3",
]

DEFAULT_BIN_WIDTH_GY = 0.1
#: R3 low-discrepancy sequence constants (Roberts 2018: 1/φ₃^n, φ₃ the "plastic" number).
_PHI3 = 1.2207440846057596
_R3 = np.array([1.0 / _PHI3, 1.0 / _PHI3**2, 1.0 / _PHI3**3])
#: Jitter table: (L, 3) in [-1, 1), the R3 sequence; sample m uses row m mod L (L prime), so
#: consecutive samples get well-spread offsets and the lookup costs one modulo.
_JITTER_LEN = 8191
_JITTER = 2.0 * np.mod(0.5 + np.arange(1, _JITTER_LEN + 1)[:, None] * _R3[None, :], 1.0) - 1.0


_QUERY = re.compile(r"([dv])(\d+(?:\.\d*)?|\.\d+)(%|cc|cm3|cm³|gy)?")
#: Bin count limit (2·10⁶ bins = 200 000 Gy at 0.1 Gy): beyond it the dose is not plausible.
MAX_BINS = 2_000_000


def default_bin_width_gy(prescription_gy: float | None = None) -> float:
    """Bin width (Gy): 0.1 Gy, or 0.5 % of the prescription when that is smaller."""
    if prescription_gy is not None and prescription_gy > 0:
        return min(DEFAULT_BIN_WIDTH_GY, 0.005 * float(prescription_gy))
    return DEFAULT_BIN_WIDTH_GY


# ====================================================================== value object
@dataclass(frozen=True, eq=False)
class DVH:
    """A dose-volume histogram of one structure.

    Attributes
    ----------
    name : str
    bin_width_gy : float
        Width of every dose bin (Gy); bin ``b`` holds the volume with dose in
        ``[b·w, (b+1)·w)``.
    differential_cm3 : (n_bins,) float ndarray, cm³
        Volume per bin. ``differential_cm3.sum()`` is the structure volume.
    dmin_gy, dmax_gy, dmean_gy : float, Gy
        Exact extremes and volume-weighted mean (not bin-quantised).
    prescription_gy : float or None
        The plan prescription used for the relative axis (% PD).
    outside_dose_grid_cm3 : float, cm³
        Structure volume outside the dose grid (counted at 0 Gy).
    voxel_dmax_gy : float, Gy
        Largest dose-grid value (no interpolation: the "voxel maximum") over the dose voxels the
        structure occupies (occupancy > 0); on different grids, the dose voxels holding the
        structure voxels' centres. NaN for an empty structure.
    method : str
        One line describing occupancy and dose sampling (printed in reports).
    """

    name: str
    bin_width_gy: float
    differential_cm3: NDArray[np.float64]
    dmin_gy: float
    dmax_gy: float
    dmean_gy: float
    prescription_gy: float | None = None
    outside_dose_grid_cm3: float = 0.0
    voxel_dmax_gy: float = math.nan
    method: str = ""
    _curve: tuple[NDArray[np.float64], NDArray[np.float64]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        diff = np.asarray(self.differential_cm3, dtype=np.float64).reshape(-1)
        if self.bin_width_gy <= 0 or not math.isfinite(self.bin_width_gy):
            raise ValueError("DVH bin width must be a positive number of Gy")
        if np.any(diff < 0):
            raise ValueError("DVH bins must hold non-negative volumes")
        diff.setflags(write=False)
        object.__setattr__(self, "differential_cm3", diff)
        object.__setattr__(self, "_curve", self._build_curve())

    # ------------------------------------------------------------------ axes
    @property
    def n_bins(self) -> int:
        return int(self.differential_cm3.size)

    @property
    def volume_cm3(self) -> float:
        """Structure volume (cm³) = sum of the bins."""
        return float(self.differential_cm3.sum())

    @property
    def bin_edges_gy(self) -> NDArray[np.float64]:
        """(n_bins + 1,) dose bin edges (Gy), starting at 0."""
        return np.arange(self.n_bins + 1, dtype=np.float64) * self.bin_width_gy

    @property
    def cumulative_cm3(self) -> NDArray[np.float64]:
        """(n_bins + 1,) V(D ≥ edge) in cm³ at each bin edge (first = volume, last = 0)."""
        cum = np.zeros(self.n_bins + 1)
        cum[:-1] = np.cumsum(self.differential_cm3[::-1])[::-1]
        return cum

    @property
    def differential_percent(self) -> NDArray[np.float64]:
        """(n_bins,) volume per bin in % of the structure volume."""
        v = self.volume_cm3
        return self.differential_cm3 * (100.0 / v) if v > 0 else self.differential_cm3 * 0.0

    @property
    def cumulative_percent(self) -> NDArray[np.float64]:
        """(n_bins + 1,) V(D ≥ edge) in % of the structure volume."""
        v = self.volume_cm3
        return self.cumulative_cm3 * (100.0 / v) if v > 0 else self.cumulative_cm3 * 0.0

    @property
    def bin_edges_percent_pd(self) -> NDArray[np.float64]:
        """(n_bins + 1,) bin edges in % of the prescription (needs ``prescription_gy``)."""
        return self.bin_edges_gy * (100.0 / self._pd())

    # ------------------------------------------------------------------ queries
    def v_gy(self, dose_gy: float) -> float:
        """Volume (cm³) receiving at least ``dose_gy``."""
        xs, vs = self._curve
        if self.volume_cm3 <= 0:
            return 0.0
        if dose_gy <= xs[0]:
            return float(vs[0])
        if dose_gy >= xs[-1]:
            return 0.0
        return float(np.interp(dose_gy, xs, vs))

    def v_percent(self, dose_gy: float) -> float:
        """Volume (% of the structure) receiving at least ``dose_gy``."""
        v = self.volume_cm3
        return 100.0 * self.v_gy(dose_gy) / v if v > 0 else 0.0

    def v_percent_pd(self, percent_pd: float) -> float:
        """V(x % PD): % of the structure receiving at least x % of the prescription."""
        return self.v_percent(self._pd() * percent_pd / 100.0)

    def v_cc_percent_pd(self, percent_pd: float) -> float:
        """Volume (cm³) receiving at least x % of the prescription."""
        return self.v_gy(self._pd() * percent_pd / 100.0)

    def d_cc(self, volume_cm3: float) -> float:
        """D(v cm³): the minimum dose (Gy) to the hottest ``volume_cm3`` of the structure.

        A volume larger than the structure returns Dmin; 0 (or less) returns Dmax.
        """
        xs, vs = self._curve
        if volume_cm3 >= vs[0]:
            return float(xs[0])
        if volume_cm3 <= 0:
            return float(xs[-1])
        # vs is non-increasing: p = first point with vs[p] < v, so vs[p-1] >= v > vs[p].
        p = int(np.searchsorted(-vs, -volume_cm3, side="right"))
        p = min(max(p, 1), len(vs) - 1)
        v0, v1, x0, x1 = vs[p - 1], vs[p], xs[p - 1], xs[p]
        if v0 == v1:
            return float(x0)
        return float(x0 + (v0 - volume_cm3) / (v0 - v1) * (x1 - x0))

    def d_percent(self, volume_percent: float) -> float:
        """D(x %): the minimum dose (Gy) to the hottest x % of the structure (D90 → 90)."""
        if volume_percent >= 100.0:
            return self.dmin_gy
        return self.d_cc(self.volume_cm3 * volume_percent / 100.0)

    def d_percent_of_pd(self, volume_percent: float) -> float:
        """D(x %) expressed in % of the prescription."""
        return 100.0 * self.d_percent(volume_percent) / self._pd()

    def query(self, spec: str) -> float:
        """A named query, case- and space-insensitive:

        ``Dmin``, ``Dmax``, ``Dmean`` (Gy); ``Volume`` (cm³); ``D90`` or ``D90%`` (Gy to the
        hottest 90 %); ``D0.1cc`` / ``D0.1cm3`` / ``D0.1cm³`` (Gy to the hottest 0.1 cm³);
        ``V100`` or ``V100%`` (% of the structure receiving ≥ 100 % of the prescription);
        ``V20Gy`` (% of the structure receiving ≥ 20 Gy).
        """
        key = spec.replace(" ", "").lower()
        fixed = {"dmin": self.dmin_gy, "dmax": self.dmax_gy, "dmean": self.dmean_gy}
        if key in fixed:
            return float(fixed[key])
        if key in ("volume", "volume_cm3"):
            return self.volume_cm3
        m = _QUERY.fullmatch(key)
        if m is None:
            raise ValueError(f"unknown DVH query {spec!r}")
        kind, number, unit = m.group(1), float(m.group(2)), m.group(3) or ""
        if kind == "d":
            if unit in ("cc", "cm3", "cm³"):
                return self.d_cc(number)
            if unit in ("", "%"):
                return self.d_percent(number)
        elif unit == "gy":
            return self.v_percent(number)
        elif unit in ("", "%"):
            return self.v_percent_pd(number)
        raise ValueError(f"unknown DVH query {spec!r}")

    def summary(self) -> dict[str, float]:
        """The per-structure numbers of ``seedplan dvh --json`` (keys fixed by DESIGN.md)."""
        return {
            "volume_cm3": self.volume_cm3,
            "dmin_gy": self.dmin_gy,
            "dmax_gy": self.dmax_gy,
            "dmean_gy": self.dmean_gy,
            "d99_gy": self.d_percent(99.0),
            "d95_gy": self.d_percent(95.0),
            "d90_gy": self.d_percent(90.0),
            "d5_gy": self.d_percent(5.0),
            "d1_gy": self.d_percent(1.0),
            "d0_03cc_gy": self.d_cc(0.03),
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (plan files, reports); :meth:`from_dict` restores it exactly."""
        return {
            "name": self.name,
            "bin_width_gy": self.bin_width_gy,
            "differential_cm3": self.differential_cm3.tolist(),
            "dmin_gy": self.dmin_gy,
            "dmax_gy": self.dmax_gy,
            "dmean_gy": self.dmean_gy,
            "prescription_gy": self.prescription_gy,
            "outside_dose_grid_cm3": self.outside_dose_grid_cm3,
            "voxel_dmax_gy": self.voxel_dmax_gy if math.isfinite(self.voxel_dmax_gy) else None,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DVH:  # type: ignore[type-arg]
        vmax = d.get("voxel_dmax_gy")
        return cls(
            name=str(d.get("name", "")),
            bin_width_gy=float(d["bin_width_gy"]),
            differential_cm3=np.asarray(d["differential_cm3"], dtype=np.float64),
            dmin_gy=float(d["dmin_gy"]),
            dmax_gy=float(d["dmax_gy"]),
            dmean_gy=float(d["dmean_gy"]),
            prescription_gy=None
            if d.get("prescription_gy") is None
            else float(d["prescription_gy"]),
            outside_dose_grid_cm3=float(d.get("outside_dose_grid_cm3", 0.0)),
            voxel_dmax_gy=math.nan if vmax is None else float(vmax),
            method=str(d.get("method", "")),
        )

    # ------------------------------------------------------------------ internals
    def _pd(self) -> float:
        if self.prescription_gy is None or self.prescription_gy <= 0:
            raise ValueError(f"DVH {self.name!r} has no prescription for a relative (% PD) query")
        return float(self.prescription_gy)

    def _build_curve(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Piecewise-linear cumulative curve: (dose points, V(≥ dose) in cm³).

        Points: (Dmin, volume), every bin edge strictly inside (Dmin, Dmax), (Dmax, 0).
        """
        edges = self.bin_edges_gy
        cum = self.cumulative_cm3
        total = float(cum[0])
        lo, hi = float(self.dmin_gy), float(self.dmax_gy)
        if not total > 0 or not hi > lo:
            return np.array([lo, max(hi, lo)]), np.array([total, 0.0])
        inner = (edges > lo) & (edges < hi)
        xs = np.concatenate([[lo], edges[inner], [hi]])
        vs = np.concatenate([[total], np.minimum(cum[inner], total), [0.0]])
        return xs, vs


# ====================================================================== numba kernels
@numba.njit(cache=True, inline="always")
def _trilinear(dose: np.ndarray, qk: float, qj: float, qi: float) -> tuple[float, bool]:
    """Trilinear dose at continuous array index (k, j, i); (0, False) outside the voxel boxes."""
    nz, ny, nx = dose.shape
    if qk < -0.5 or qj < -0.5 or qi < -0.5 or qk > nz - 0.5 or qj > ny - 0.5 or qi > nx - 0.5:
        return 0.0, False
    # Inside the outer half-voxel the dose is held at the edge value (no extrapolation).
    qk = min(max(qk, 0.0), nz - 1.0)
    qj = min(max(qj, 0.0), ny - 1.0)
    qi = min(max(qi, 0.0), nx - 1.0)
    k0 = min(int(qk), max(nz - 2, 0))
    j0 = min(int(qj), max(ny - 2, 0))
    i0 = min(int(qi), max(nx - 2, 0))
    k1 = min(k0 + 1, nz - 1)
    j1 = min(j0 + 1, ny - 1)
    i1 = min(i0 + 1, nx - 1)
    tk = qk - k0
    tj = qj - j0
    ti = qi - i0
    c00 = dose[k0, j0, i0] * (1.0 - ti) + dose[k0, j0, i1] * ti
    c01 = dose[k0, j1, i0] * (1.0 - ti) + dose[k0, j1, i1] * ti
    c10 = dose[k1, j0, i0] * (1.0 - ti) + dose[k1, j0, i1] * ti
    c11 = dose[k1, j1, i0] * (1.0 - ti) + dose[k1, j1, i1] * ti
    c0 = c00 * (1.0 - tj) + c01 * tj
    c1 = c10 * (1.0 - tj) + c11 * tj
    return c0 * (1.0 - tk) + c1 * tk, True


@numba.njit(cache=True)
def _sample_voxels(
    dose: np.ndarray,
    vox_flat: np.ndarray,
    grid_shape: np.ndarray,
    affine: np.ndarray,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    out_dose: np.ndarray,
    out_inside: np.ndarray,
) -> float:
    """Dose at the sub-cell sample points of the listed voxels.

    vox_flat (N,) int: C-order flat voxel indices on the occupancy grid; affine (3, 4): grid
    (k, j, i, 1) → dose-grid continuous (k, j, i); offsets (S, 3): sub-cell centres relative to
    the voxel centre (index units); jitter_half: half sub-cell width (0 = no jitter).
    out_dose, out_inside: (N, S). Returns the voxel maximum: the largest dose-grid value at the
    dose voxels holding the listed voxels' centres (NaN if none is inside the dose grid).
    """
    n_vox = vox_flat.shape[0]
    n_sub = offsets.shape[0]
    ny = grid_shape[1]
    nx = grid_shape[2]
    dz, dy, dx = dose.shape
    vmax = -np.inf
    for n in range(n_vox):
        f = vox_flat[n]
        k = f // (ny * nx)
        j = (f // nx) % ny
        i = f % nx
        ck = math.floor(affine[0, 0] * k + affine[0, 1] * j + affine[0, 2] * i + affine[0, 3] + 0.5)
        cj = math.floor(affine[1, 0] * k + affine[1, 1] * j + affine[1, 2] * i + affine[1, 3] + 0.5)
        ci = math.floor(affine[2, 0] * k + affine[2, 1] * j + affine[2, 2] * i + affine[2, 3] + 0.5)
        if 0 <= ck < dz and 0 <= cj < dy and 0 <= ci < dx:
            vmax = max(vmax, dose[ck, cj, ci])
        lin = f * n_sub
        for s in range(n_sub):
            pk = k + offsets[s, 0]
            pj = j + offsets[s, 1]
            pi = i + offsets[s, 2]
            if jitter_half > 0.0:
                m = (lin + s) % table.shape[0]
                pk += jitter_half * table[m, 0]
                pj += jitter_half * table[m, 1]
                pi += jitter_half * table[m, 2]
            qk = affine[0, 0] * pk + affine[0, 1] * pj + affine[0, 2] * pi + affine[0, 3]
            qj = affine[1, 0] * pk + affine[1, 1] * pj + affine[1, 2] * pi + affine[1, 3]
            qi = affine[2, 0] * pk + affine[2, 1] * pj + affine[2, 2] * pi + affine[2, 3]
            d, ok = _trilinear(dose, qk, qj, qi)
            out_dose[n, s] = d
            out_inside[n, s] = ok
    return vmax if vmax > -np.inf else np.nan


@numba.njit(cache=True)
def _sample_same_grid(
    dose: np.ndarray,
    vox_flat: np.ndarray,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    out_dose: np.ndarray,
) -> None:
    """:func:`_sample_voxels` for dose and occupancy on one grid (the plan case), faster.

    Every sample lies inside its voxel's box, so it interpolates within the voxel's 3×3×3
    neighbourhood (edge-clamped, as :func:`_trilinear`): the 27 values are loaded once per voxel
    and each sample picks the half-cell on its side of the centre along each axis.
    """
    _nz, ny, nx = dose.shape
    n_vox = vox_flat.shape[0]
    n_sub = offsets.shape[0]
    nb = np.empty((3, 3, 3))
    for n in range(n_vox):
        f = vox_flat[n]
        _load_nb(dose, f // (ny * nx), (f // nx) % ny, f % nx, nb)
        lin = f * n_sub
        for s in range(n_sub):
            out_dose[n, s] = _nb_sample(nb, lin, s, offsets, jitter_half, table)


@numba.njit(cache=True, inline="always")
def _load_nb(dose: np.ndarray, k: int, j: int, i: int, nb: np.ndarray) -> None:
    """Copy the edge-clamped 3×3×3 neighbourhood of voxel (k, j, i) into nb."""
    nz, ny, nx = dose.shape
    for a in range(3):
        kk = min(max(k + a - 1, 0), nz - 1)
        for b in range(3):
            jj = min(max(j + b - 1, 0), ny - 1)
            for c in range(3):
                ii = min(max(i + c - 1, 0), nx - 1)
                nb[a, b, c] = dose[kk, jj, ii]


@numba.njit(cache=True, inline="always")
def _nb_sample(
    nb: np.ndarray, lin: int, s: int, offsets: np.ndarray, jitter_half: float, table: np.ndarray
) -> float:
    """Trilinear dose at sub-sample s of a voxel from its neighbourhood nb (see module doc)."""
    pk = offsets[s, 0]
    pj = offsets[s, 1]
    pi = offsets[s, 2]
    if jitter_half > 0.0:
        m = (lin + s) % table.shape[0]
        pk += jitter_half * table[m, 0]
        pj += jitter_half * table[m, 1]
        pi += jitter_half * table[m, 2]
    # Half-cell on the sample's side: [-1, 0] with t = p + 1, or [0, 1] with t = p.
    a0 = 0 if pk < 0.0 else 1
    b0 = 0 if pj < 0.0 else 1
    c0 = 0 if pi < 0.0 else 1
    tk = pk + 1.0 - a0
    tj = pj + 1.0 - b0
    ti = pi + 1.0 - c0
    c00 = nb[a0, b0, c0] * (1.0 - ti) + nb[a0, b0, c0 + 1] * ti
    c01 = nb[a0, b0 + 1, c0] * (1.0 - ti) + nb[a0, b0 + 1, c0 + 1] * ti
    c10 = nb[a0 + 1, b0, c0] * (1.0 - ti) + nb[a0 + 1, b0, c0 + 1] * ti
    c11 = nb[a0 + 1, b0 + 1, c0] * (1.0 - ti) + nb[a0 + 1, b0 + 1, c0 + 1] * ti
    d0 = c00 * (1.0 - tj) + c01 * tj
    d1 = c10 * (1.0 - tj) + c11 * tj
    return d0 * (1.0 - tk) + d1 * tk


@numba.njit(cache=True)
def _histogram(
    doses: np.ndarray,
    inside: np.ndarray,
    weight: np.ndarray,
    interior: np.ndarray,
    bin_width: float,
    max_bins: int,
) -> tuple[np.ndarray, float, float, float, float, float, bool]:
    """Differential histogram of (N, S) sample doses, each weighing weight[n] (cm³).

    Returns (hist, total_cm3, dose_integral_gy_cm3, dmin, dmax, outside_cm3, ok); ok is False
    for a non-finite dose (integral 0) or more than ``max_bins`` bins (integral = top). Dmin/Dmax
    are taken over the samples of voxels with ``interior[n]`` (an empty ``interior`` means all
    voxels), falling back to all voxels with weight > 0 when no interior voxel has weight.
    Negative doses count as 0.
    """
    n_vox, n_sub = doses.shape
    use_all = interior.shape[0] == 0
    top = 0.0
    for n in range(n_vox):
        if weight[n] > 0.0:
            for s in range(n_sub):
                d = doses[n, s]
                if not math.isfinite(d):
                    return np.zeros(1), 0.0, math.nan, 0.0, 0.0, 0.0, False
                if d > top:
                    top = d
    if top / bin_width >= max_bins:
        return np.zeros(1), 0.0, top, 0.0, 0.0, 0.0, False
    n_bins = int(top / bin_width) + 1
    hist = np.zeros(n_bins)
    total = 0.0
    integral = 0.0
    lo_i = np.inf
    hi_i = -np.inf
    lo_a = np.inf
    hi_a = -np.inf
    outside = 0.0
    inv = 1.0 / bin_width
    for n in range(n_vox):
        w = weight[n]
        if w <= 0.0:
            continue
        ext = use_all or interior[n]
        for s in range(n_sub):
            d = doses[n, s]
            if d < 0.0:
                d = 0.0
            b = min(int(d * inv), n_bins - 1)
            hist[b] += w
            total += w
            integral += w * d
            if not inside[n, s]:
                outside += w
            lo_a = min(lo_a, d)
            hi_a = max(hi_a, d)
            if ext:
                lo_i = min(lo_i, d)
                hi_i = max(hi_i, d)
    if hi_i < lo_i:
        lo_i = lo_a
        hi_i = hi_a
    return hist, total, integral, lo_i, hi_i, outside, True


@numba.njit(cache=True)
def _volume_at_or_above(
    dose: np.ndarray,
    threshold: float,
    offsets: np.ndarray,
    jitter_half: float,
    table: np.ndarray,
    box: np.ndarray,
) -> float:
    """Σ over voxels of the fraction of sub-samples with dose ≥ threshold (in voxels).

    A voxel whose 3×3×3 neighbourhood is entirely ≥ (or < ) the threshold is counted 1 (or 0)
    without sampling: trilinear values inside the voxel box are convex combinations of those
    27 values, so the result is identical to sampling every voxel. Only voxels in ``box``
    (k0, k1, j0, j1, i0, i1, inclusive) are visited: outside the bounding box of the voxels ≥ the
    threshold grown by one voxel every neighbourhood is entirely below it.
    """
    _nz, ny, nx = dose.shape
    n_sub = offsets.shape[0]
    total = 0.0
    nb = np.empty((3, 3, 3))
    for k in range(box[0], box[1] + 1):
        acc = 0.0
        for j in range(box[2], box[3] + 1):
            for i in range(box[4], box[5] + 1):
                _load_nb(dose, k, j, i, nb)
                n_above = 0
                for a in range(3):
                    for b in range(3):
                        for c in range(3):
                            if nb[a, b, c] >= threshold:
                                n_above += 1
                if n_above == 27:
                    acc += 1.0
                    continue
                if n_above == 0:
                    continue
                lin = ((k * ny + j) * nx + i) * n_sub
                cnt = 0
                for s in range(n_sub):
                    if _nb_sample(nb, lin, s, offsets, jitter_half, table) >= threshold:
                        cnt += 1
                acc += cnt / n_sub
        total += acc
    return total


@numba.njit(cache=True)
def _threshold_box(dose: np.ndarray, threshold: float) -> np.ndarray:
    """(6,) inclusive (k0, k1, j0, j1, i0, i1) of the voxels ≥ threshold, grown by 1 and clipped
    to the grid; all −1 when no voxel reaches the threshold."""
    nz, ny, nx = dose.shape
    box = np.array([nz, -1, ny, -1, nx, -1])
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if dose[k, j, i] >= threshold:
                    box[0] = min(box[0], k)
                    box[1] = max(box[1], k)
                    box[2] = min(box[2], j)
                    box[3] = max(box[3], j)
                    box[4] = min(box[4], i)
                    box[5] = max(box[5], i)
    if box[1] < 0:
        return np.full(6, -1)
    box[0] = max(box[0] - 1, 0)
    box[1] = min(box[1] + 1, nz - 1)
    box[2] = max(box[2] - 1, 0)
    box[3] = min(box[3] + 1, ny - 1)
    box[4] = max(box[4] - 1, 0)
    box[5] = min(box[5] + 1, nx - 1)
    return box


@numba.njit(cache=True)
def _occupied(occ_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (int64) and occupancy (float64, clipped to 1) of the voxels with occ > 0."""
    n = 0
    for f in range(occ_flat.shape[0]):
        if occ_flat[f] > 0:
            n += 1
    idx = np.empty(n, dtype=np.int64)
    frac = np.empty(n)
    m = 0
    for f in range(occ_flat.shape[0]):
        v = occ_flat[f]
        if v > 0:
            idx[m] = f
            frac[m] = min(float(v), 1.0)
            m += 1
    return idx, frac


# ====================================================================== helpers
def _sub_offsets(samples_per_voxel: int) -> NDArray[np.float64]:
    """(n, 3) sample-cell centres (k, j, i) relative to the voxel centre, in index units.

    An n-rooks (Latin-hypercube) pattern: along every axis the voxel is cut into n strata and each
    stratum holds exactly one sample, so n samples resolve the dose variation along each axis as
    finely as an n×n×n grid would (n³ samples). The permutations are fixed (n = 4: hand-picked,
    well spread; other n: a fixed pseudo-random draw).
    """
    n = int(samples_per_voxel)
    if n < 1:
        raise ValueError("samples_per_voxel must be >= 1")
    if n == 1:
        return np.zeros((1, 3))
    if n == 4:
        perms = [np.array([0, 1, 2, 3]), np.array([2, 0, 3, 1]), np.array([1, 3, 0, 2])]
    else:
        rng = np.random.default_rng(20260101 + n)
        perms = [np.arange(n), rng.permutation(n), rng.permutation(n)]
    return np.stack([(p + 0.5) / n - 0.5 for p in perms], axis=1)


def _affine_kji(src: GridGeometry, dst: GridGeometry) -> NDArray[np.float64]:
    """(3, 4) affine: src array index (k, j, i, 1) → dst continuous array index (k, j, i)."""
    basis = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)  # (k, j, i)
    mapped = dst.world_to_zyx(src.zyx_to_world(basis))
    aff = np.empty((3, 4))
    aff[:, 3] = mapped[0]
    aff[:, :3] = (mapped[1:] - mapped[0]).T
    return aff


def _as_dose(dose_gy: ArrayLike) -> NDArray[np.float64]:
    dose = np.asarray(dose_gy)
    if dose.ndim != 3:
        raise ValueError(f"dose array must be 3-D (z, y, x), got shape {dose.shape}")
    if dose.dtype not in (np.float32, np.float64):
        dose = dose.astype(np.float64)
    return np.ascontiguousarray(dose)


def sample_dose_gy(
    dose_gy: ArrayLike, dose_geometry: GridGeometry, points_mm: ArrayLike
) -> NDArray[np.float64]:
    """Trilinear dose (Gy) at LPS points ``(N, 3)`` mm; 0 outside the dose grid's voxel boxes."""
    dose = _as_dose(dose_gy)
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    if pts.shape[0] == 0:
        return np.zeros(0)
    kji = np.ascontiguousarray(dose_geometry.world_to_zyx(pts))
    out = np.empty((pts.shape[0], 1))
    inside = np.empty((pts.shape[0], 1), dtype=np.bool_)
    _sample_point_list(dose, kji, out, inside)
    return out[:, 0]


@numba.njit(cache=True)
def _sample_point_list(
    dose: np.ndarray, kji: np.ndarray, out: np.ndarray, inside: np.ndarray
) -> None:
    for n in range(kji.shape[0]):
        d, ok = _trilinear(dose, kji[n, 0], kji[n, 1], kji[n, 2])
        out[n, 0] = d
        inside[n, 0] = ok


# ====================================================================== computation
def dvh_from_samples(
    sample_dose_gy: NDArray[np.float64],
    inside: NDArray[np.bool_],
    weight_cm3: NDArray[np.float64],
    *,
    bin_width_gy: float,
    name: str = "",
    prescription_gy: float | None = None,
    extra_dose_gy: NDArray[np.float64] | None = None,
    interior: NDArray[np.bool_] | None = None,
    voxel_dmax_gy: float = math.nan,
    method: str = "",
) -> DVH:
    """Build a :class:`DVH` from sampled doses ``(N, S)`` where sample (n, s) weighs
    ``weight_cm3[n]`` cm³; ``inside`` (N, S) flags samples inside the dose grid.

    Dmin/Dmax come from the samples of the ``interior`` voxels (N,) bool (default: all with
    weight > 0; all of them again if no voxel is interior) and from ``extra_dose_gy``."""
    doses = np.ascontiguousarray(sample_dose_gy, dtype=np.float64)
    if doses.ndim == 1:
        doses = doses[:, None]
    inside = np.ascontiguousarray(inside, dtype=np.bool_).reshape(doses.shape)
    weight = np.ascontiguousarray(weight_cm3, dtype=np.float64).reshape(doses.shape[0])
    interior_arr = (
        np.zeros(0, dtype=np.bool_)
        if interior is None
        else np.ascontiguousarray(interior, dtype=np.bool_).reshape(doses.shape[0])
    )
    hist, total, integral, dmin, dmax, outside, ok = _histogram(
        doses, inside, weight, interior_arr, float(bin_width_gy), MAX_BINS
    )
    if not ok and math.isnan(integral):
        raise InputError(f"dose inside structure {name!r} contains NaN or infinite values")
    if not ok:
        raise InputError(
            f"dose inside structure {name!r} reaches {integral:.4g} Gy, beyond the DVH range"
            f" ({MAX_BINS * bin_width_gy:.4g} Gy at {bin_width_gy:g} Gy bins)"
        )
    if total <= 0:
        dmin = dmax = 0.0
        mean = 0.0
    else:
        mean = integral / total
    if extra_dose_gy is not None and np.size(extra_dose_gy) and total > 0:
        dmin = min(dmin, float(np.min(extra_dose_gy)))
        dmax = max(dmax, float(np.max(extra_dose_gy)))
    return DVH(
        name=name,
        bin_width_gy=float(bin_width_gy),
        differential_cm3=hist,
        dmin_gy=float(dmin),
        dmax_gy=float(dmax),
        dmean_gy=float(mean),
        prescription_gy=prescription_gy,
        outside_dose_grid_cm3=float(outside),
        voxel_dmax_gy=float(voxel_dmax_gy),
        method=method,
    )


def compute_dvh(
    dose_gy: ArrayLike,
    occupancy: ArrayLike,
    geometry: GridGeometry,
    *,
    dose_geometry: GridGeometry | None = None,
    samples_per_voxel: int = 4,
    jitter: bool = True,
    bin_width_gy: float | None = None,
    name: str = "",
    prescription_gy: float | None = None,
    boundary_points_mm: ArrayLike | None = None,
) -> DVH:
    """DVH of one structure.

    Parameters
    ----------
    dose_gy : (z, y, x) array, Gy
        On ``dose_geometry`` (default ``geometry``).
    occupancy : (z, y, x) array on ``geometry``
        Fraction of each voxel inside the structure, 0..1 (a bool mask is 0/1).
    geometry : GridGeometry of ``occupancy``.
    dose_geometry : GridGeometry of ``dose_gy`` when it differs (any position/orientation).
    samples_per_voxel : dose samples per occupied voxel (n-rooks pattern, see module doc).
    jitter : place each sample at a low-discrepancy point inside its sub-cell (see module doc).
    bin_width_gy : default :func:`default_bin_width_gy` (≤ 0.1 Gy, ≤ 0.5 % PD).
    boundary_points_mm : (M, 3) LPS points on the structure surface. When given, Dmin/Dmax are
        taken over these points and the samples of fully occupied voxels only; otherwise over
        the samples of voxels with occupancy ≥ 0.5 (all occupied voxels if there are none).
    """
    dose = _as_dose(dose_gy)
    occ = np.asarray(occupancy)
    dgeom = geometry if dose_geometry is None else dose_geometry
    if tuple(occ.shape) != geometry.shape_zyx:
        raise ValueError(f"occupancy shape {occ.shape} does not match its geometry")
    if tuple(dose.shape) != dgeom.shape_zyx:
        raise ValueError(f"dose shape {dose.shape} does not match the dose geometry")
    bw = default_bin_width_gy(prescription_gy) if bin_width_gy is None else float(bin_width_gy)
    if not bw > 0:
        raise ValueError("bin width must be positive")
    occ_flat = np.ascontiguousarray(occ).reshape(-1)
    if occ_flat.dtype == np.bool_:
        occ_flat = occ_flat.view(np.uint8)
    elif occ_flat.dtype not in (np.float32, np.float64, np.uint8):
        occ_flat = occ_flat.astype(np.float64)
    vox, frac = _occupied(occ_flat)
    offsets = _sub_offsets(samples_per_voxel)
    n_sub = offsets.shape[0]
    weight = frac * (geometry.voxel_volume_mm3 / 1000.0 / n_sub)
    voxel_dmax = math.nan
    same_grid = dose_geometry is None or dose_geometry.same_as(geometry, tol_mm=1e-6)
    if same_grid and vox.size:
        voxel_dmax = float(dose.reshape(-1)[vox].max())
    doses = np.empty((vox.shape[0], n_sub))
    jitter_half = 0.5 / n_sub if jitter else 0.0
    inside = np.empty((vox.shape[0], n_sub), dtype=np.bool_)
    if same_grid and vox.shape[0]:
        inside[...] = True
        _sample_same_grid(dose, vox, offsets, jitter_half, _JITTER, doses)
    elif vox.shape[0]:
        aff = _affine_kji(geometry, dgeom)
        # Also the voxel maximum: dose voxels holding the occupied voxels' centres.
        voxel_dmax = _sample_voxels(
            dose,
            vox,
            np.asarray(geometry.shape_zyx, dtype=np.int64),
            aff,
            offsets,
            jitter_half,
            _JITTER,
            doses,
            inside,
        )
    extra = None
    if boundary_points_mm is not None and np.size(boundary_points_mm):
        # Samples of partly occupied voxels may sit just outside the surface: with the true
        # surface points at hand, only fully occupied voxels' samples count for Dmin/Dmax.
        extra = sample_dose_gy(dose, dgeom, boundary_points_mm)
        interior = frac >= 1.0 - 1e-6
    else:
        # Without them, the voxels at least half inside (the usual voxel-centre rule).
        interior = frac >= 0.5
    method = (
        f"fractional occupancy on a {'×'.join(f'{s:g}' for s in geometry.spacing_mm)} mm grid, "
        f"dose trilinear at {n_sub} {'jittered ' if jitter else ''}point(s) per voxel, "
        f"bins {bw:g} Gy"
    )
    return dvh_from_samples(
        doses,
        inside,
        weight,
        bin_width_gy=bw,
        name=name,
        prescription_gy=prescription_gy,
        extra_dose_gy=extra,
        interior=interior,
        voxel_dmax_gy=voxel_dmax,
        method=method,
    )


def volume_at_or_above_cm3(
    dose_gy: ArrayLike,
    geometry: GridGeometry,
    threshold_gy: float,
    *,
    samples_per_voxel: int = 4,
    jitter: bool = True,
) -> float:
    """Volume (cm³) of the whole dose grid with dose ≥ ``threshold_gy``.

    Uses exactly the sample points :func:`compute_dvh` uses for a structure on the same grid
    (same ``samples_per_voxel``/``jitter``), so a target's V(≥ d) never exceeds this value.
    """
    dose = _as_dose(dose_gy)
    if tuple(dose.shape) != geometry.shape_zyx:
        raise ValueError("dose shape does not match its geometry")
    offsets = _sub_offsets(samples_per_voxel)
    box = _threshold_box(dose, float(threshold_gy))
    if box[0] < 0:
        return 0.0
    n = _volume_at_or_above(
        dose, float(threshold_gy), offsets, 0.5 / offsets.shape[0] if jitter else 0.0, _JITTER, box
    )
    return float(n) * geometry.voxel_volume_mm3 / 1000.0
