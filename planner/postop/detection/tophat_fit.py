"""Thick slices, the planning CT's bone taken out: seed fits on the HU above an in-plane disc
opening.

Where the planning CT's bone has been taken out, the HU above a grey opening by an in-plane
disc (:data:`TOPHAT_RADIUS_MM`; seeds are narrower than the disc, soft tissue is not) holds
every seed whole, two seeds end to end along a needle too, which the in-plane line openings of
:mod:`planner.postop.detection.thick_slices` take for bone. :func:`fit_data` gives a box of it about
a point for :func:`planner.postop.detection.seed_fit.fit_seeds`, :func:`single_amplitude` one seed's
amplitude on it (the median fit of the isolated seeds). Used by
:mod:`planner.postop.detection.between_pairs` and :mod:`planner.postop.detection.end_to_end`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.detection.lung_seeds import disc_tophat
from planner.postop.detection.residual import voxel_centres
from planner.postop.detection.results import DetectedSeed
from planner.postop.detection.seed_fit import SeedImageModel, fit_seeds

#: What the fits see: the HU above its grey opening by an in-plane disc of this radius (mm).
TOPHAT_RADIUS_MM = 3.5
#: One seed's amplitude on the top-hat is the median fit of the seeds with no other this close
#: (mm), at least ``MIN_ISOLATED`` of them (up to ``MAX_ISOLATED``).
ISOLATED_MM = 7.5
MIN_ISOLATED = 3
MAX_ISOLATED = 15


def fit_data(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    centre_mm: NDArray[np.float64],
    reach_mm: float,
    slices: int = 1,
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """(coords ``(M, 3)`` LPS mm, HU above the disc opening ``(M,)``) of the voxels not
    ``excluded`` in the box of ± ``reach_mm`` in-plane and ± ``slices`` slices about
    ``centre_mm``; None where it leaves the CT or holds too little. ``hu`` (the CT less the
    planning CT's bone) and ``excluded`` are (z, y, x) on ``geometry``'s grid."""
    sp = np.asarray(geometry.spacing_mm, dtype=np.float64)
    radius_px = TOPHAT_RADIUS_MM / float(sp[0])
    r = round(reach_mm / float(sp[0]))
    grow = int(np.ceil(radius_px))
    k, j, i = np.rint(geometry.world_to_zyx(np.asarray(centre_mm)[None])[0]).astype(int)
    lo = np.maximum([k - slices, j - r, i - r], 0)
    hi = np.minimum([k + slices + 1, j + r + 1, i + r + 1], hu.shape)
    if np.any(hi - lo < 3):
        return None
    # The opening sees ``grow`` pixels beyond the box, as it would on the whole slice.
    margin = np.array([0, grow, grow])
    lo_g = np.maximum(lo - margin, 0)
    hi_g = np.minimum(hi + margin, hu.shape)
    block = disc_tophat(
        hu[tuple(slice(int(a), int(b)) for a, b in zip(lo_g, hi_g, strict=True))], radius_px
    )
    inner = tuple(slice(int(a - g), int(b - g)) for a, b, g in zip(lo, hi, lo_g, strict=True))
    keep = ~excluded[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))].ravel()
    if keep.sum() < 50:
        return None
    coords = voxel_centres(geometry, lo, hi)[keep]
    return coords, block[inner].ravel()[keep].astype(np.float64)


def single_amplitude(
    hu: NDArray[np.generic],
    excluded: NDArray[np.bool_],
    geometry: GridGeometry,
    model: SeedImageModel,
    seeds: list[DetectedSeed],
    reach_mm: float,
) -> float | None:
    """One seed's amplitude (HU·mm³) on the top-hat in boxes of ± ``reach_mm``: the median fit
    of the isolated seeds with a blob of their own; None with fewer than ``MIN_ISOLATED``."""
    pts = np.array([s.position_mm for s in seeds], dtype=np.float64).reshape(-1, 3)
    axes = np.array([s.axis for s in seeds], dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2:
        return None
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    isolated = [
        n for n in range(len(seeds)) if d[n].min() > ISOLATED_MM and seeds[n].component != 0
    ][:MAX_ISOLATED]
    amps = []
    guess = 5.0e4
    for n in isolated:
        data = fit_data(hu, excluded, geometry, pts[n], reach_mm)
        if data is None:
            continue
        fit = fit_seeds(
            data[0], data[1], pts[n][None], axes[n][None], guess, model, amplitude_range=(0.1, 5.0)
        )
        amps.append(float(fit.amplitudes[0]))
    return float(np.median(amps)) if len(amps) >= MIN_ISOLATED else None
