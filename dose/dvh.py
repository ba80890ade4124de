"""Dose-volume histograms (DVH): the value object. No numba here (``import dose.dvh`` is cheap).

Public API
----------
``DVH``
    Cumulative and differential, absolute (Gy, cm³) and relative (% PD, % volume); named queries
    :meth:`DVH.d_percent` (D90 %), :meth:`DVH.d_cc` (D0.1 cm³), :meth:`DVH.v_gy`,
    :meth:`DVH.v_percent_pd` (V100 % PD) …, or by name with :meth:`DVH.query` ("D90",
    "V100", "D0.1cc", "V20Gy"); :meth:`DVH.summary` gives the CLI keys.
``FineBins``
    The query resolution of a DVH (see below).
``default_bin_width_gy(prescription_gy=None) -> float``
    min(0.1 Gy, 0.5 % of the prescription).

Computing a DVH (numba kernels) lives in :mod:`dose.dvh_calc` (``compute_dvh``,
``dvh_from_samples``, ``sample_dose_gy``, ``volume_at_or_above_cm3``; method described there) and
:mod:`dose.dvh_kernels`; contoured structures are rasterised by :mod:`planner.structures.rasterise`.

Two resolutions (why D- and V-values are not quantised by the display bins)
--------------------------------------------------------------------------
``differential_cm3`` is the display histogram: uniform bins of ``bin_width_gy`` from 0 Gy (DVH-4:
≤ 1 % of the prescription, recorded with the DVH). Queries do **not** interpolate it: every
display bin ``b`` is cut into ``m_b = ceil(w / max(0.001 Gy, 0.1 % · b·w))`` fine bins, so a fine
bin is never wider than max(0.001 Gy, 0.1 % of its dose), and each fine bin keeps the volume and the
lowest and highest sample dose it holds (:class:`FineBins`, empty bins dropped). The cumulative
curve used by every query runs linearly from (lowest, V ≥ bin) to (highest, V above the bin) inside
each fine bin and is flat between them, so

* a D- or V-value is within one fine bin of the sample value: ≤ max(0.001 Gy, 0.1 %), whatever the
  structure's dose range (a structure spanning 0.3 Gy is resolved as finely as one spanning 100 Gy);
* a plateau (many samples at one dose, e.g. 0 Gy outside the dose grid) stays a step, not a ramp;
* V at a display-bin edge is the exact sum of the bins above it (fine bins nest in display bins).

Dmin and Dmax stretch the first and last fine bin (they may come from surface points).
A DVH built from a histogram alone (old plan files, hand-made DVHs) uses the display bins as its
fine bins — the previous behaviour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["DVH", "FineBins", "default_bin_width_gy", "fine_bins_per_bin"]

DEFAULT_BIN_WIDTH_GY = 0.1
#: Fine (query) bins: width ≤ max(FINE_ABS_GY, FINE_REL × dose).
FINE_ABS_GY = 0.001
FINE_REL = 0.001
_QUERY = re.compile(r"([dv])(\d+(?:\.\d*)?|\.\d+)(%|cc|cm3|cm³|gy)?")
#: Bin count limit (2·10⁶ bins = 200 000 Gy at 0.1 Gy): beyond it the dose is not plausible.
MAX_BINS = 2_000_000


def default_bin_width_gy(prescription_gy: float | None = None) -> float:
    """Bin width (Gy): 0.1 Gy, or 0.5 % of the prescription when that is smaller."""
    if prescription_gy is not None and prescription_gy > 0:
        return min(DEFAULT_BIN_WIDTH_GY, 0.005 * float(prescription_gy))
    return DEFAULT_BIN_WIDTH_GY


def fine_bins_per_bin(bin_width_gy: float, n_bins: int) -> NDArray[np.int64]:
    """(n_bins,) number of fine bins in each display bin (module docstring)."""
    lower_gy = np.arange(n_bins, dtype=np.float64) * bin_width_gy
    width = np.maximum(FINE_ABS_GY, FINE_REL * lower_gy)
    return np.maximum(np.ceil(bin_width_gy / width - 1e-9), 1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class FineBins:
    """Non-empty fine dose bins, ascending: volume (cm³) and the lowest / highest sample dose
    (Gy) in each. Arrays (n,) float64; ``dose_lo_gy[b] <= dose_hi_gy[b] <= dose_lo_gy[b+1]``."""

    dose_lo_gy: NDArray[np.float64]
    dose_hi_gy: NDArray[np.float64]
    volume_cm3: NDArray[np.float64]

    def __post_init__(self) -> None:
        arrs = [
            np.asarray(a, dtype=np.float64).reshape(-1)
            for a in (self.dose_lo_gy, self.dose_hi_gy, self.volume_cm3)
        ]
        if not (arrs[0].size == arrs[1].size == arrs[2].size):
            raise ValueError("fine bins need equal-length dose_lo, dose_hi and volume arrays")
        keep = arrs[2] > 0
        lo, hi, vol = (a[keep] for a in arrs)
        if np.any(hi < lo) or np.any(lo[1:] < hi[:-1] - 1e-12 * np.abs(hi[:-1])):
            raise ValueError("fine bins must be ascending, non-overlapping dose intervals")
        for name, a in (("dose_lo_gy", lo), ("dose_hi_gy", hi), ("volume_cm3", vol)):
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "dose_lo_gy": self.dose_lo_gy.tolist(),
            "dose_hi_gy": self.dose_hi_gy.tolist(),
            "volume_cm3": self.volume_cm3.tolist(),
        }

    @classmethod
    def from_histogram(
        cls, differential_cm3: NDArray[np.float64], bin_width_gy: float, lo: float, hi: float
    ) -> FineBins:
        """The display bins as fine bins, clipped to [lo, hi] (Dmin, Dmax)."""
        diff = np.asarray(differential_cm3, dtype=np.float64)
        idx = np.flatnonzero(diff > 0)
        blo = np.clip(idx * bin_width_gy, lo, hi)
        bhi = np.clip((idx + 1) * bin_width_gy, lo, hi)
        return cls(blo, np.maximum(bhi, blo), diff[idx])


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
    fine_bins : FineBins or None
        The query resolution (module docstring); None: the display bins are used.
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
    fine_bins: FineBins | None = None
    _curve: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] = field(
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
        """Volume (cm³) receiving at least ``dose_gy`` (fine-bin curve, module docstring)."""
        lo, hi, cum = self._curve
        if lo.size == 0 or dose_gy <= lo[0]:
            return float(cum[0])
        b = int(np.searchsorted(lo, dose_gy, side="right")) - 1  # last bin with lo ≤ dose
        if dose_gy > hi[b]:
            return float(cum[b + 1])
        if hi[b] <= lo[b]:
            return float(cum[b])
        t = (dose_gy - lo[b]) / (hi[b] - lo[b])
        return float(cum[b] - t * (cum[b] - cum[b + 1]))

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
        lo, hi, cum = self._curve
        if lo.size == 0 or volume_cm3 >= cum[0]:
            return float(lo[0]) if lo.size else float(self.dmin_gy)
        if volume_cm3 <= 0:
            return float(hi[-1])
        # cum is decreasing: b = last bin with cum[b] ≥ v, so cum[b] ≥ v > cum[b + 1].
        b = int(np.searchsorted(-cum[:-1], -volume_cm3, side="right")) - 1
        b = min(max(b, 0), lo.size - 1)
        v0, v1 = cum[b], cum[b + 1]
        return float(lo[b] + (v0 - volume_cm3) / (v0 - v1) * (hi[b] - lo[b]))

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
            "fine_bins": None if self.fine_bins is None else self.fine_bins.to_dict(),
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
            fine_bins=None if not d.get("fine_bins") else FineBins(**d["fine_bins"]),
        )

    # ------------------------------------------------------------------ internals
    def _pd(self) -> float:
        if self.prescription_gy is None or self.prescription_gy <= 0:
            raise ValueError(f"DVH {self.name!r} has no prescription for a relative (% PD) query")
        return float(self.prescription_gy)

    def _build_curve(
        self,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Fine bins ``(lo, hi)`` (n,) Gy stretched to [Dmin, Dmax], and ``cum`` (n + 1,) cm³:
        V(≥ bin b) with cum[0] = the volume (sum of the display bins) and cum[n] = 0."""
        total = self.volume_cm3
        lo_d, hi_d = float(self.dmin_gy), float(max(self.dmax_gy, self.dmin_gy))
        fb = self.fine_bins
        if fb is None or fb.volume_cm3.size == 0:
            fb = FineBins.from_histogram(self.differential_cm3, self.bin_width_gy, lo_d, hi_d)
        if not total > 0 or fb.volume_cm3.size == 0:
            return np.array([lo_d]), np.array([hi_d]), np.array([max(total, 0.0), 0.0])
        lo = np.array(fb.dose_lo_gy)
        hi = np.array(fb.dose_hi_gy)
        lo[0] = min(lo[0], lo_d)
        hi[-1] = max(hi[-1], hi_d)
        cum = np.zeros(lo.size + 1)
        cum[:-1] = np.cumsum(fb.volume_cm3[::-1])[::-1]
        # The fine bins hold the same samples as the display bins: equal totals up to rounding.
        cum = np.minimum(cum * (total / cum[0]), total)
        cum[0] = total
        return lo, hi, cum
