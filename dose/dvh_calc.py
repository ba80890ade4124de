"""Computing DVHs: dose sampling inside structures, histograms, V(≥ d) of a whole dose grid.

Public API
----------
``compute_dvh(dose_gy, occupancy, geometry, *, dose_geometry=None, samples_per_voxel=4, jitter=True,
bin_width_gy=None, name="", prescription_gy=None, boundary_points_mm=None, surface_dose_gy=None)``
    DVH of a structure given as a fractional occupancy array (0..1, or a bool mask) on
    ``geometry``; the dose (Gy) lives on ``dose_geometry`` (default: the same grid).
``dvh_from_samples(...)``, ``HistogramBuilder``
    A DVH from weighted dose samples (all at once, or chunk by chunk).
``sample_dose_gy(dose_gy, dose_geometry, points_mm) -> (N,) Gy``
    Trilinear dose at LPS points (0 outside the dose grid's voxel boxes).
``volume_at_or_above_cm3(dose_gy, geometry, threshold_gy, *, samples_per_voxel=4, jitter=True)``
    Volume of the whole dose grid receiving ≥ a dose, with the *same* sub-voxel sampling as
    :func:`compute_dvh` (used for V_ref in the conformity indices).

Method (how sub-voxel accuracy is obtained)
-------------------------------------------
Every voxel of ``geometry`` with occupancy > 0 gets ``samples_per_voxel`` (n) dose samples on an
n-rooks pattern: along each axis the voxel is cut into n strata holding one sample each (the
axis resolution of an n×n×n grid at 1/n² of its cost). At each sample point the dose is
interpolated trilinearly from the dose grid; with ``jitter`` (default) the point is placed at a
deterministic low-discrepancy position inside its stratum cell (R3 sequence keyed by the voxel's
own index) instead of the cell centre, so a smooth dose field is sampled without the stair-steps
a regular lattice prints on the DVH. Each sample carries ``occupancy × voxel volume / n``. The
structure volume is therefore the occupancy integral, and it equals the sum of the histogram bins
(TG-53 / DVH-3: one rule for volume and dose). Samples outside the dose grid (beyond the outer
voxels' boxes) count at 0 Gy and their volume is reported in :attr:`DVH.outside_dose_grid_cm3`.

Dmin, Dmax and Dmean are exact over the samples (not bin-quantised). Dmin/Dmax are taken over
the samples of voxels at least half inside the structure (voxel-centre rule; samples of barely
touched voxels lie outside it), or, when surface doses are given (``boundary_points_mm`` or
``surface_dose_gy``), over those plus the samples of fully occupied voxels: the extreme dose of a
smooth field lies on the surface, where no interior sample reaches. D and V queries use the fine
bins of :mod:`dose.dvh` (≤ max(0.001 Gy, 0.1 %) wide), not the display bins.

Contoured structures (DICOM RTSTRUCT) are sampled by :mod:`planner.structures.rasterise`, which
feeds :class:`HistogramBuilder` directly.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.dvh import DVH, MAX_BINS, FineBins, default_bin_width_gy, fine_bins_per_bin
from dose.dvh_kernels import (
    JITTER,
    S_HI_A,
    S_HI_I,
    S_INTEGRAL,
    S_LO_A,
    S_LO_I,
    S_OUTSIDE,
    S_TOTAL,
    _occupied,
    _sample_point_list,
    _sample_same_grid,
    _sample_voxels,
    _threshold_box,
    _volume_at_or_above,
    accumulate,
    new_stats,
    sample_top,
)
from dose.errors import InputError
from dose.geometry import GridGeometry

__all__ = [
    "HistogramBuilder",
    "compute_dvh",
    "dvh_from_samples",
    "sample_dose_gy",
    "volume_at_or_above_cm3",
]


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


# ====================================================================== computation
class HistogramBuilder:
    """Accumulates weighted dose samples into a :class:`DVH` (display bins + fine bins), chunk by
    chunk, so that a structure of any size is histogrammed without holding all its samples.

    ``top_gy`` must bound every sample dose (e.g. the dose grid's maximum: trilinear values never
    exceed it); doses above it land in the last bin.
    """

    def __init__(self, bin_width_gy: float, top_gy: float, *, name: str = "") -> None:
        if not bin_width_gy > 0 or not math.isfinite(bin_width_gy):
            raise ValueError("bin width must be a positive number of Gy")
        if not math.isfinite(top_gy):
            raise InputError(f"dose inside structure {name!r} contains NaN or infinite values")
        if top_gy / bin_width_gy >= MAX_BINS:
            raise InputError(
                f"dose inside structure {name!r} reaches {top_gy:.4g} Gy, beyond the DVH range"
                f" ({MAX_BINS * bin_width_gy:.4g} Gy at {bin_width_gy:g} Gy bins)"
            )
        self.name = name
        self.bin_width_gy = float(bin_width_gy)
        n_bins = int(max(top_gy, 0.0) / bin_width_gy) + 1
        fine_m = fine_bins_per_bin(self.bin_width_gy, n_bins)
        self.layout = np.empty((n_bins, 2), dtype=np.int64)  # first fine bin, fine bins
        self.layout[:, 1] = fine_m
        self.layout[0, 0] = 0
        np.cumsum(fine_m[:-1], out=self.layout[1:, 0])
        n_fine = int(fine_m.sum())
        self.fine = np.empty((n_fine, 3))  # volume cm³, lowest Gy, highest Gy
        self.fine[:, 0] = 0.0
        self.fine[:, 1] = np.inf
        self.fine[:, 2] = -np.inf
        self.stats = new_stats()

    def add(
        self,
        doses_gy: NDArray[np.float64],
        inside: NDArray[np.bool_],
        weight_cm3: NDArray[np.float64],
        interior: NDArray[np.bool_] | None = None,
    ) -> None:
        """Add (N, S) sample doses, each weighing ``weight_cm3[n]``; ``inside`` (N, S) flags
        samples inside the dose grid; ``interior`` (N,) the voxels used for Dmin/Dmax."""
        doses = np.ascontiguousarray(doses_gy, dtype=np.float64)
        if doses.ndim == 1:
            doses = doses[:, None]
        if doses.size == 0:
            return
        weight = np.ascontiguousarray(weight_cm3, dtype=np.float64).reshape(doses.shape[0])
        _top, ok = sample_top(doses, weight)
        if not ok:
            raise InputError(f"dose inside structure {self.name!r} contains NaN or infinite values")
        inside_arr = np.ascontiguousarray(inside, dtype=np.bool_).reshape(doses.shape)
        interior_arr = (
            np.zeros(0, dtype=np.bool_)
            if interior is None
            else np.ascontiguousarray(interior, dtype=np.bool_).reshape(doses.shape[0])
        )
        accumulate(
            doses,
            inside_arr,
            weight,
            interior_arr,
            self.bin_width_gy,
            self.layout,
            self.fine,
            self.stats,
        )

    def build(
        self,
        *,
        prescription_gy: float | None = None,
        extra_dose_gy: NDArray[np.float64] | None = None,
        voxel_dmax_gy: float = math.nan,
        method: str = "",
    ) -> DVH:
        """The DVH; Dmin/Dmax over the interior samples (all samples if none) and
        ``extra_dose_gy`` (surface points)."""
        st = self.stats
        total = float(st[S_TOTAL])
        lo, hi = float(st[S_LO_I]), float(st[S_HI_I])
        if hi < lo:
            lo, hi = float(st[S_LO_A]), float(st[S_HI_A])
        if total <= 0:
            lo = hi = mean = 0.0
        else:
            mean = float(st[S_INTEGRAL]) / total
        if extra_dose_gy is not None and np.size(extra_dose_gy) and total > 0:
            extra = np.asarray(extra_dose_gy, dtype=np.float64)
            if not np.all(np.isfinite(extra)):
                raise InputError(
                    f"dose on the surface of structure {self.name!r} is NaN or infinite"
                )
            lo = min(lo, float(np.min(extra)))
            hi = max(hi, float(np.max(extra)))
        used = self.fine[self.fine[:, 0] > 0]
        fine = FineBins(used[:, 1], used[:, 2], used[:, 0])
        hist = np.add.reduceat(self.fine[:, 0], self.layout[:, 0])
        last = int(np.flatnonzero(hist)[-1]) + 1 if np.any(hist > 0) else 1
        return DVH(
            name=self.name,
            bin_width_gy=self.bin_width_gy,
            differential_cm3=hist[:last],
            dmin_gy=lo,
            dmax_gy=hi,
            dmean_gy=mean,
            prescription_gy=prescription_gy,
            outside_dose_grid_cm3=float(st[S_OUTSIDE]),
            voxel_dmax_gy=float(voxel_dmax_gy),
            method=method,
            fine_bins=fine,
        )


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
    weight = np.ascontiguousarray(weight_cm3, dtype=np.float64).reshape(doses.shape[0])
    top, ok = sample_top(doses, weight) if doses.size else (0.0, True)
    if not ok:
        raise InputError(f"dose inside structure {name!r} contains NaN or infinite values")
    builder = HistogramBuilder(float(bin_width_gy), top, name=name)
    builder.add(doses, inside, weight, interior)
    return builder.build(
        prescription_gy=prescription_gy,
        extra_dose_gy=extra_dose_gy,
        voxel_dmax_gy=voxel_dmax_gy,
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
    surface_dose_gy: ArrayLike | None = None,
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
    surface_dose_gy : (M,) Gy, doses already sampled on the structure surface: the same role as
        ``boundary_points_mm`` (both may be given).
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
        _sample_same_grid(dose, vox, offsets, jitter_half, JITTER, doses)
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
            JITTER,
            doses,
            inside,
        )
    surface = []
    if boundary_points_mm is not None and np.size(boundary_points_mm):
        surface.append(sample_dose_gy(dose, dgeom, boundary_points_mm))
    if surface_dose_gy is not None and np.size(surface_dose_gy):
        surface.append(np.asarray(surface_dose_gy, dtype=np.float64).reshape(-1))
    extra = np.concatenate(surface) if surface else None
    # Samples of partly occupied voxels may sit just outside the surface: with the true surface
    # doses at hand, only fully occupied voxels' samples count for Dmin/Dmax; without them, the
    # voxels at least half inside (the usual voxel-centre rule).
    interior = frac >= 1.0 - 1e-6 if extra is not None else frac >= 0.5
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
        dose, float(threshold_gy), offsets, 0.5 / offsets.shape[0] if jitter else 0.0, JITTER, box
    )
    return float(n) * geometry.voxel_volume_mm3 / 1000.0
