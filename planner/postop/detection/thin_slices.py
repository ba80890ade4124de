"""Seed candidates on slices ≤ ``THICK_SLICE_MM`` (3 mm): by HU and a white top-hat.

A seed is far brighter than its neighbourhood: a white top-hat (the CT minus its grey opening by
a box of about 9 mm in-plane) removes bone and other wide structures, and an absolute threshold
adapted to the scan (:func:`adaptive_threshold`) keeps the edges of ribs against lung out; seeds
in or against lung, dimmed by partial volume, are found by :func:`lung_candidates`.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.progress import CancelFn, check_cancelled
from planner.imaging.volume import CTVolume
from planner.postop.detection.blobs import LUNG_HU, Component, bbox, label26, lung_fraction_map


def adaptive_threshold(hu: NDArray[np.generic], exclude: NDArray[np.bool_]) -> float:
    """Absolute metal threshold adapted to this scan: its bright bone (99th percentile of the
    voxels of 200–2900 HU, robust to up to a few hundred seeds) + 300 HU, within [1000, 2200]."""
    step = max(1, hu.size // 2_000_000)
    sample = hu.reshape(-1)[::step]
    keep = (sample > 200) & (sample < 2900) & ~exclude.reshape(-1)[::step]
    if keep.sum() < 100:
        return 1000.0
    bone_top = float(np.percentile(sample[keep].astype(np.float32), 99.0))
    return float(np.clip(bone_top + 300.0, 1000.0, 2200.0))


def lung_candidates(
    hu: NDArray[np.generic],
    exclude: NDArray[np.bool_],
    floor_hu: float,
    size: tuple[int, int, int],
    tophat: NDArray[np.float32],
    cancel: CancelFn | None,
    lung_hu: float = LUNG_HU,
    lung_fraction: float = 0.5,
    low_hu: float = 850.0,
    excess_hu: float = 1700.0,
) -> NDArray[np.bool_]:
    """Seed voxels in or against lung, where partial volume leaves a seed below the absolute
    threshold (≈ 900–1200 HU in 2.5 mm slices): HU ≥ ``low_hu``, at least ``lung_fraction`` of
    the ≈ 9 mm box around it lung (HU < ``lung_hu``), and ≥ ``excess_hu`` above the grey opening.
    On the demo phantom seeds in lung read 1060–1100 HU, 0.63–0.66 lung, 1900 HU of excess;
    the rib and vessel edges that pass the looser 600 HU / 0.35 / 1200 HU read 630–770 HU,
    0.30–0.45 lung, ≤ 1610 HU: the defaults sit between."""
    dim = (hu >= low_hu) & (hu < floor_hu) & ~exclude & (tophat >= excess_hu)
    box = bbox(dim, size)
    if box is None:
        return dim
    lung = lung_fraction_map(hu[box], size, lung_hu)
    check_cancelled(cancel, "seed detection cancelled")
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = dim[box] & (lung >= lung_fraction)
    return out


def thin_components(
    ct: CTVolume,
    floor_hu: float,
    excess_hu: float,
    exclude: NDArray[np.bool_],
    cancel: CancelFn | None,
    relative_level: float = 0.25,
) -> tuple[list[Component], NDArray[np.float32], NDArray[np.int32]]:
    """Candidate metal components, each measured on its own voxels above a local level.

    Candidates are voxels of HU ≥ ``floor_hu`` whose white top-hat (excess over the grey opening
    by a ≈ 9 mm box) is ≥ ``excess_hu``. Weights are HU above the component's local
    background (median of a shell 2–3 voxels out); only voxels above background +
    ``relative_level`` × (peak − background) count, so neighbouring bone and streaks do not
    widen or brighten a seed. Returns the components, the white top-hat (z, y, x) HU (zero
    outside the box of everything bright) and the candidates' labels (z, y, x): the data and
    the cores of :mod:`planner.postop.detection.thin_fit`.
    """
    hu = ct.hu
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    bright = (hu >= floor_hu) & ~exclude
    half = np.maximum(np.round(np.array([4.5 / sp[2], 4.5 / sp[1], 4.5 / sp[0]])).astype(int), 1)
    size = (max(1, min(int(2 * half[0] + 1), 3)), int(2 * half[1] + 1), int(2 * half[2] + 1))
    tophat = np.zeros(hu.shape, dtype=np.float32)
    box = bbox(bright, size)
    if box is not None:
        # One opening over the bounding box of everything bright (bone and metal).
        local = hu[box]
        opened = ndi.grey_opening(local, size=size)
        check_cancelled(cancel, "seed detection cancelled")
        tophat[box] = local.astype(np.float32) - opened.astype(np.float32)
    candidates = bright & (tophat >= excess_hu)
    candidates |= lung_candidates(hu, exclude, floor_hu, size, tophat, cancel)
    labels, objects = label26(candidates)
    comps: list[Component] = []
    g = 3
    shell_in = np.ones((3, 3, 3), dtype=bool)
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        lo = [max(0, s.start - g) for s in sl]
        hi = [min(nn, s.stop + g) for s, nn in zip(sl, hu.shape, strict=True)]
        big = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        core = labels[big] == lab
        local = hu[big].astype(np.float64)
        near = ndi.binary_dilation(core, structure=shell_in, iterations=1)
        shell = ndi.binary_dilation(core, structure=shell_in, iterations=3) & ~ndi.binary_dilation(
            core, structure=shell_in, iterations=2
        )
        shell &= ~candidates[big] & ~exclude[big]
        background = float(np.median(local[shell])) if shell.any() else float(np.median(local))
        peak = float(local[core].max())
        level = background + relative_level * (peak - background)
        region = near & (local >= level) & ((labels[big] == 0) | core)
        w = local[region] - background
        kji = np.argwhere(region) + np.array(lo)
        coords = ct.geometry.zyx_to_world(kji.astype(np.float64))
        comps.append(Component(lab, coords, w, int(core.sum())))
    return comps, tophat, labels
