"""Components of candidate metal voxels and what is measured on them (every detection step).

* :func:`bbox`, :func:`label26`, :func:`ball_footprint`: sparse-mask helpers (boxes,
  26-connected labels, a ball in voxels of anisotropic spacing).
* :class:`Component`: one blob's voxel centres (LPS mm) and weights (HU of excess over the local
  background); :func:`measure` gives its mass (HU·mm³), centre and blur-corrected covariance;
  :func:`axis_confidence` says how seed-like elongated that covariance is.
* :func:`blur_cov_mm2`: the covariance the scanner's blur adds to a point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from planner.imaging.volume import CTVolume

SEED_LENGTH_MM = 4.5
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
INPLANE_PSF_SIGMA_MM = 0.45
#: Lung (and air) reads below this (HU): what every "in or against lung" test of the detection
#: counts as lung.
LUNG_HU = -500.0


def lung_fraction_map(
    hu: NDArray[np.generic], size, lung_hu: float = LUNG_HU
) -> NDArray[np.float32]:
    """``hu``-shaped fraction of the box of ``size`` voxels (z, y, x) about each voxel of ``hu``
    that reads below ``lung_hu``."""
    return ndi.uniform_filter((hu < lung_hu).astype(np.float32), size=size)


@dataclass
class Component:
    label: int
    coords_mm: NDArray[np.float64]  # (M, 3) voxel centres, LPS mm
    weights: NDArray[np.float64]  # (M,) top-hat excess HU
    core_voxels: int
    mass: float = 0.0
    centre: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    eigvals: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    eigvecs: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))
    n_seeds: int = 1
    n_float: float = 1.0
    #: The most seeds its shape can hold (a thin line:
    #: :data:`planner.postop.detection.detect.LINE_WIDTH_MM`).
    max_seeds: int = 1_000_000
    slice_index: float | None = None  # sub-slice centre along the slice axis, when measured
    #: Thick slices: pixels of as-bright structure attached beyond the component (bone).
    attached_px: int = 0
    #: Thick slices: counted two seeds one above the other by its column of in-plane excess.
    column_pair: bool = False


def blur_cov_mm2(ct: CTVolume, *, voxel_box: bool = False) -> NDArray[np.float64]:
    """Covariance (LPS mm²) the scanner's blur adds to a point: the in-plane PSF and the slice
    profile (FWHM = the slice thickness). The voxels are samples of the blurred image at their
    centres (the slice profile is the integration along the slice axis), so the sampling adds
    nothing more: with the box term h²/12 of a voxel also removed, the axes of seeds on 2.5 mm
    slices came out 8–11° too flat (median error 8.9–10.2° on the grid scenes; 6.2–7.2°
    without it). ``voxel_box``: add it anyway (the thick-slice rules of
    :mod:`planner.postop.detection.detect` were measured with it: their components are weighted by
    an excess the 3-slice opening truncated along the slice axis)."""
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    sig = np.array([INPLANE_PSF_SIGMA_MM, INPLANE_PSF_SIGMA_MM, sp[2] * FWHM_TO_SIGMA])
    var_grid = sig**2 + (sp**2 / 12.0 if voxel_box else 0.0)
    rot = np.asarray(ct.geometry.direction, dtype=np.float64)
    return rot @ np.diag(var_grid) @ rot.T


def ball_footprint(radius_mm: float, spacing_zyx: NDArray[np.float64]) -> NDArray[np.bool_]:
    r = np.maximum(np.floor(radius_mm / spacing_zyx).astype(int), 0)
    grids = np.meshgrid(
        *(np.arange(-a, a + 1) * s for a, s in zip(r, spacing_zyx, strict=True)), indexing="ij"
    )
    return sum(g**2 for g in grids) <= radius_mm**2 + 1e-9


def bbox(mask: NDArray[np.bool_], pad=(0, 0, 0)) -> tuple[slice, slice, slice] | None:
    """Box (z, y, x slices) around the True voxels of ``mask`` grown by ``pad`` voxels, clipped
    to the volume; None when ``mask`` is empty. Three projections: cheaper than argwhere."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lo = max(0, int(hit[0]) - int(pad[axis]))
        hi = min(mask.shape[axis], int(hit[-1]) + int(pad[axis]) + 1)
        box.append(slice(lo, hi))
    return (box[0], box[1], box[2])


def label26(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], list]:
    """26-connected labels of ``mask`` (full size) and each label's slices (full-volume
    indices), labelling only the box around the True voxels (metal is sparse)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    box = bbox(mask)
    if box is None:
        return labels, []
    sub, _ = ndi.label(mask[box], structure=np.ones((3, 3, 3)))
    labels[box] = sub
    objects = [
        None
        if o is None
        else tuple(slice(a.start + b.start, a.stop + b.start) for a, b in zip(o, box, strict=True))
        for o in ndi.find_objects(sub)
    ]
    return labels, objects


def measure(c: Component, voxel_mm3: float, blur: NDArray[np.float64], geometry=None) -> None:
    w = c.weights
    c.mass = float(w.sum()) * voxel_mm3
    if w.sum() <= 0:
        c.centre = c.coords_mm.mean(axis=0)
        return
    c.centre = (c.coords_mm * w[:, None]).sum(axis=0) / w.sum()
    if c.slice_index is not None and geometry is not None:
        normal = np.asarray(geometry.slice_normal(), dtype=np.float64)
        at = geometry.zyx_to_world(np.array([c.slice_index, 0.0, 0.0])) @ normal
        c.centre = c.centre + normal * (at - c.centre @ normal)
    d = c.coords_mm - c.centre
    cov = (d * w[:, None]).T @ d / w.sum() - blur
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    c.eigvals = np.clip(vals[order], 0.0, None)
    c.eigvecs = vecs[:, order]


def axis_confidence(eigvals: NDArray[np.float64]) -> float:
    """How clearly elongated: 1 for a seed-like (L²/12 ≈ 1.7 mm²) line, 0 for a round blob."""
    expected = SEED_LENGTH_MM**2 / 12.0
    return float(np.clip((eigvals[0] - eigvals[1]) / expected, 0.0, 1.0))
