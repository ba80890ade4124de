"""Value types of the dose engine: seeds in, labelled dose out (no numerics, no numba).

* :class:`SeedSet`: N seeds, positions (N, 3) LPS mm, unit axes (N, 3), strengths S_K (N,) U.
* :class:`DoseResult`: dose rate (cGy/h) with capsule flags and everything needed to label it.
* :func:`rate_to_dose_gy` (D∞ = Ḋ₀·τ), :func:`strength_at_implant` (calibration → implant
  decay), :func:`slice_geometry` (the one-slice grid of slice k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.tg43 import Formalism
from dose.units import I125_MEAN_LIFE_H, decay_factor

__all__ = [
    "DEFAULT_AXIS",
    "MODE_LABEL",
    "DoseResult",
    "GridMode",
    "SeedSet",
    "rate_to_dose_gy",
    "slice_geometry",
    "strength_at_implant",
]

#: "exact": every seed-voxel pair through the TG-43 kernel (≤ 3e-4 of the reference engine);
#: "fast": near/far split with coarse far grids (interactive grids and slices only, ≤ 2 %).
GridMode = Literal["exact", "fast"]
MODE_LABEL = {"exact": "exact", "fast": "fast (display; ≤2 % beyond 1 mm from the seeds)"}

#: The default seed axis: +z, the needle direction of an axial insertion.
DEFAULT_AXIS = (0.0, 0.0, 1.0)


def rate_to_dose_gy(rate_cgy_h: ArrayLike) -> NDArray[np.float64]:
    """Permanent-implant total dose D∞ = Ḋ₀·τ (Gy) from the initial rate Ḋ₀ (cGy/h)."""
    return np.asarray(rate_cgy_h, dtype=np.float64) * (I125_MEAN_LIFE_H / 100.0)


def strength_at_implant(
    strength_u: ArrayLike, calibration: date | datetime, implant: date | datetime
) -> NDArray[np.float64]:
    """Decay S_K from the calibration date to the implant date (I-125, T½ = 59.40 d)."""
    return np.asarray(strength_u, dtype=np.float64) * decay_factor(calibration, implant)


@dataclass(frozen=True, eq=False)
class SeedSet:
    """N seeds: positions (N, 3) LPS mm, unit axes (N, 3), strengths (N,) in U. Immutable."""

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    strengths_u: NDArray[np.float64]

    @classmethod
    def create(
        cls,
        positions_mm: ArrayLike,
        axes: ArrayLike | None = None,
        strengths_u: ArrayLike | float = 1.0,
    ) -> SeedSet:
        """Validate and normalise; axes default to +z (0, 0, 1), i.e. the needle direction of an
        axial insertion. Zero-length axes or non-finite values raise InputError."""
        pos = np.array(positions_mm, dtype=np.float64).reshape(-1, 3)
        n = pos.shape[0]
        if axes is None:
            ax = np.tile(np.array(DEFAULT_AXIS), (n, 1))
        else:
            ax = np.array(axes, dtype=np.float64).reshape(-1, 3)
            if ax.shape[0] == 1 and n != 1:
                ax = np.tile(ax, (n, 1))
        try:
            st = np.broadcast_to(np.asarray(strengths_u, dtype=np.float64), (n,)).copy()
        except ValueError:
            raise InputError(
                f"{n} seed positions but {np.size(strengths_u)} seed strengths"
            ) from None
        if ax.shape[0] != n:
            raise InputError(f"{n} seed positions but {ax.shape[0]} seed axes")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(ax)) and np.all(np.isfinite(st))):
            raise InputError("seed positions, axes and strengths must be finite numbers")
        norm = np.linalg.norm(ax, axis=1)
        if np.any(norm < 1e-9):
            raise InputError("a seed axis has zero length")
        ax = ax / norm[:, np.newaxis]
        for a in (pos, ax, st):
            a.setflags(write=False)
        return cls(pos, ax, st)

    def __len__(self) -> int:
        return int(self.positions_mm.shape[0])

    @property
    def total_strength_u(self) -> float:
        return float(self.strengths_u.sum())

    def subset(self, index: ArrayLike) -> SeedSet:
        idx = np.asarray(index)
        return SeedSet.create(self.positions_mm[idx], self.axes[idx], self.strengths_u[idx])

    def bounding_box_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return self.positions_mm.min(axis=0), self.positions_mm.max(axis=0)


@dataclass(frozen=True, eq=False)
class DoseResult:
    """Dose from one computation, with everything needed to label it.

    ``dose_rate_cgy_h`` has the shape of the request: (P,) for points, (z, y, x) for a grid,
    (y, x) for a slice. ``flagged`` (same shape, bool) marks points inside a seed capsule,
    where the value is capped (evaluated at the capsule surface). ``table_checksum`` is the
    sha256 of all the model's numeric tables; ``extras["table_checksums"]`` has one per table.
    """

    dose_rate_cgy_h: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    formalism: Formalism
    model_id: str
    table_checksum: str
    engine: str
    n_seeds: int
    geometry: GridGeometry | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def dose_gy(self) -> NDArray[np.float64]:
        """Total permanent-implant dose D∞ (Gy)."""
        return rate_to_dose_gy(self.dose_rate_cgy_h)

    @property
    def n_flagged(self) -> int:
        return int(np.count_nonzero(self.flagged))

    def label(self) -> str:
        kind = "2D line source" if self.formalism == "2d" else "1D point source (φ_an)"
        mode = MODE_LABEL.get(str(self.mode), str(self.mode))
        return (
            f"TG-43U1 {kind}, model {self.model_id}, tables sha256 {self.table_checksum[:12]}, "
            f"{self.engine} engine {mode}, dose to water in water (no heterogeneity correction)"
        )

    @property
    def mode(self) -> str:
        """ "exact" (default; points, CLI, reports) or "fast" (interactive grids and slices)."""
        return str(self.extras.get("mode", "exact"))


def slice_geometry(geometry: GridGeometry, k: int) -> GridGeometry:
    """The one-slice grid (shape (1, ny, nx)) of slice ``k`` of ``geometry``."""
    nz, ny, nx = geometry.shape_zyx
    if not 0 <= k < nz:
        raise ValueError(f"slice index {k} outside 0..{nz - 1}")
    origin = geometry.index_to_world(np.array([0.0, 0.0, float(k)]))
    return GridGeometry((1, ny, nx), origin, geometry.spacing_mm, geometry.direction)
