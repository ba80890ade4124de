"""Seed candidates on thick slices (> ``THICK_SLICE_MM``), searched by shape instead of HU.

An in-plane seed smeared over a 5 mm slice reads ≈ 1000 HU, like cortical bone. The excess of
each voxel over the largest of its grey openings by in-plane line segments of 9.5 mm (24
directions) and by 3 slices along the slice axis (:func:`compact_excess`) removes cortex, ribs
and streaks (long in some direction), not a seed (≤ 5.5 mm with its blur, in every direction).
:func:`thick_components` gives the components, each with its sub-slice centre
(:func:`slice_centre`) and the pixels of as-bright structure attached to it
(:func:`attached_pixels`: bone, not a seed); :func:`column_masses` the in-plane excess of each
component's column, which two seeds one above the other keep whole.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from dose.progress import CancelFn, check_cancelled
from planner.imaging.volume import CTVolume
from planner.postop.detection.blobs import FWHM_TO_SIGMA, Component, bbox, label26

#: Slices thicker than this are searched by shape (:func:`thick_components`), not by HU.
THICK_SLICE_MM = 3.0
THICK_LINE_MM = 9.5  # longer than a seed and its blur (≈ 5.5 mm), shorter than a cortex arc
THICK_LINE_ANGLES = 24
USE_Z_OPENING = True
THICK_FLOOR_HU = 250.0  # a seed in lung on 5 mm slices reads ≈ 500 HU
THICK_EXCESS_HU = 700.0  # an in-plane seed's worst-sampled peak on 5 mm slices ≈ 750 HU
THICK_LOW_HU = 300.0
#: On thick slices a component is part of bone when the structure connected to its brightest
#: voxel at HU ≥ tissue + this fraction of its peak excess reaches this many pixels beyond it.
ATTACHED_FRACTION = 0.75
ATTACHED_MAX_PX = 8
#: Seeds stacked along the slice axis (≈ 9 mm apart: 3 bright slices at 5 mm) vanish in the
#: 3-slice opening; their in-plane blobs at the slice maxima of the in-plane excess become
#: candidates too (:func:`stacked_candidates`) when their column spans at most
#: ``STACKED_MAX_MM`` and their in-plane excess is ≥ ``STACKED_EXCESS_FACTOR`` × the excess
#: threshold (stacked seeds measured 1040–1870 HU; single-slice bone spots 700–790 HU).
STACKED_CANDIDATES = True
STACKED_MAX_MM = 20.0
STACKED_EXCESS_FACTOR = 1.3
#: Candidates closer than the openings' reach are searched in one box (:func:`thick_components`).
MERGE_BOXES = True
#: Threads for the line openings (2 cores: 1.4–1.8 × one thread on a block).
OPENING_THREADS = max(1, min(4, os.cpu_count() or 1))


def line_footprint(length_px: float, angle_rad: float) -> NDArray[np.bool_]:
    """``(1, h, w)`` footprint of an in-plane line segment of ``length_px`` pixels at an angle."""
    half = max(1, round(length_px / 2.0))
    t = np.linspace(-half, half, 4 * half + 1)
    x = np.rint(t * np.cos(angle_rad)).astype(int)
    y = np.rint(t * np.sin(angle_rad)).astype(int)
    r = int(max(np.abs(x).max(), np.abs(y).max()))
    fp = np.zeros((1, 2 * r + 1, 2 * r + 1), dtype=bool)
    fp[0, y + r, x + r] = True
    return fp


def compact_excess(
    hu: NDArray[np.float32],
    pixel_mm: float,
    line_mm: float = THICK_LINE_MM,
    n_angles: int = THICK_LINE_ANGLES,
    pool: Executor | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """HU above what any elongated structure explains: ``hu`` minus the largest of its grey
    openings by in-plane line segments of ``line_mm`` (``n_angles`` directions) and by 3 slices
    along the slice axis. Cortical bone, ribs and streaks are long in some direction and
    vanish; a seed (≤ 4.5 mm + blur) is shorter than ``line_mm`` in every direction and stays.
    ``hu`` is a (z, y, x) block. Returns (that excess, the excess over the in-plane openings
    alone: seeds stacked along the slice axis keep theirs), both of ``hu``'s shape. ``pool``
    (threads: scipy.ndimage releases the GIL) runs the openings side by side; their maximum is
    the same in any order."""
    inplane = np.full(hu.shape, -np.inf, dtype=np.float32)
    length_px = line_mm / pixel_mm

    def opening(angle: float) -> NDArray[np.float32]:
        return ndi.grey_opening(hu, footprint=line_footprint(length_px, angle))

    angles = np.arange(n_angles) * np.pi / n_angles
    for opened in pool.map(opening, angles) if pool is not None else map(opening, angles):
        np.maximum(inplane, opened, out=inplane)
    background = (
        np.maximum(inplane, ndi.grey_opening(hu, size=(min(3, hu.shape[0]), 1, 1)))
        if USE_Z_OPENING
        else inplane
    )
    return hu - background, hu - inplane


def thick_components(
    ct: CTVolume,
    exclude: NDArray[np.bool_],
    cancel: CancelFn | None,
    floor_hu: float = THICK_FLOOR_HU,
    excess_hu: float = THICK_EXCESS_HU,
    low_hu: float = THICK_LOW_HU,
    relative_level: float = 0.2,
) -> tuple[list[Component], NDArray[np.float32], NDArray[np.int32]]:
    """Candidate seed components on thick slices (> ``THICK_SLICE_MM``), where an in-plane
    seed smeared over the slice reads ≈ 1000 HU, like cortical bone: no absolute threshold can
    tell them apart, shape can. Candidates are voxels of HU ≥ ``floor_hu`` whose compact excess
    (:func:`compact_excess`) is ≥ ``excess_hu``; the excess is computed only in the boxes
    around voxels whose box top-hat (an upper bound of it) passes. Each component is weighted
    by its compact excess over the voxels above ``relative_level`` × its peak, one voxel
    around it (the blur tails, not the neighbouring bone). Returns (components, the in-plane
    excess (z, y, x) HU of :func:`compact_excess`, zero outside the searched boxes, the
    components' labels (z, y, x)) — the last two for the model fit of :mod:`thick_fit`."""
    hu = ct.hu
    sp = np.asarray(ct.geometry.spacing_mm, dtype=np.float64)
    pixel_mm = float(min(sp[0], sp[1]))
    reach = int(np.ceil(THICK_LINE_MM / pixel_mm)) + 2
    grow_px = max(1, int(np.ceil(1.6 / pixel_mm)))
    size = (1, 2 * round(4.5 / sp[1]) + 1, 2 * round(4.5 / sp[0]) + 1)
    bright = (hu >= floor_hu) & ~exclude
    excess = np.zeros(hu.shape, dtype=np.float32)
    inplane_excess = np.zeros(hu.shape, dtype=np.float32)
    box = bbox(bright, size)
    if box is None:
        return [], inplane_excess, np.zeros(hu.shape, dtype=np.int32)
    local = hu[box].astype(np.float32)
    upper = local - ndi.grey_opening(local, size=size)
    check_cancelled(cancel, "seed detection cancelled")
    maybe = np.zeros(hu.shape, dtype=bool)
    maybe[box] = bright[box] & (upper >= low_hu)
    # Compact excess only around what may pass: one box per 2-D component of the candidates,
    # grown by the line length (an opening sees that far), all slices of the component ± 1.
    grow = ndi.binary_dilation(maybe, structure=np.ones((3, 1, 1), dtype=bool))
    if MERGE_BOXES:
        # Candidates closer than a box's reach share one box: many small ones (the edges of
        # bone taken out by a slightly misregistered prior) would each open their own.
        near = ndi.maximum_filter(grow, size=(1, reach + 1, reach + 1))
        _, objects = label26(near)
        objects = [_shrunk(sl, reach // 2, hu.shape) for sl in objects]
    else:
        _, objects = label26(grow)
    done = np.zeros(hu.shape, dtype=bool)
    with ThreadPoolExecutor(max_workers=OPENING_THREADS) as pool:
        _fill_excess(hu, objects, reach, pixel_mm, excess, inplane_excess, done, pool, cancel)
    candidates = bright & (excess >= excess_hu)
    labels, objects = label26(candidates)
    if STACKED_CANDIDATES:
        # Stacked seeds erased by the 3-slice opening: more components, weighted by their
        # in-plane excess (the slice axis opening removed theirs).
        extra = np.zeros(hu.shape, dtype=bool)
        extra[box] = stacked_candidates(
            inplane_excess[box],
            excess[box],
            bright[box],
            candidates[box],
            excess_hu,
            low_hu,
            STACKED_MAX_MM / float(sp[2]),
        )
        lab_x, obj_x = label26(extra)
        labels = np.where(extra, lab_x + len(objects), labels).astype(labels.dtype)
        objects = list(objects) + list(obj_x)
        excess = np.where(extra, inplane_excess, excess)
    comps: list[Component] = []
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        pad = (1, grow_px, grow_px)
        lo_c = [max(0, s.start - q) for s, q in zip(sl, pad, strict=True)]
        hi_c = [min(nn, s.stop + q) for s, nn, q in zip(sl, hu.shape, pad, strict=True)]
        big = tuple(slice(a, b) for a, b in zip(lo_c, hi_c, strict=True))
        core = labels[big] == lab
        e = excess[big]
        peak = float(e[core].max())
        level = max(low_hu, relative_level * peak)
        # The seed's blur tails: up to 1.6 mm in-plane beyond the core, above ``level`` (further
        # would reach into cortical corners), never another component's core. Along the slice
        # axis the core is the seed: a seed's share of the next slice is ≥ ``excess_hu`` or small.
        above = (e >= level) & ((labels[big] == 0) | core) & ~exclude[big]
        region = core | ndi.binary_dilation(
            core, structure=np.ones((1, 3, 3), dtype=bool), iterations=grow_px, mask=above
        )
        kji = np.argwhere(region) + np.array(lo_c)
        coords = ct.geometry.zyx_to_world(kji.astype(np.float64))
        comp = Component(lab, coords, e[region].astype(np.float64), int(core.sum()))
        footprint = region.any(axis=0)
        per_slice = np.array([float(e[k][footprint].sum()) for k in range(e.shape[0])])
        comp.slice_index = slice_centre(per_slice, float(sp[2])) + lo_c[0]
        comp.attached_px = attached_pixels(hu, lab, labels, sl, footprint, lo_c, reach)
        comps.append(comp)
    return comps, inplane_excess, labels


def _shrunk(sl, px: int, shape) -> tuple[slice, slice, slice] | None:
    """``sl`` less ``px`` pixels in-plane on each side (what :func:`_fill_excess` grows back)."""
    if sl is None:
        return None
    return (
        sl[0],
        slice(min(sl[1].start + px, shape[1] - 1), max(sl[1].stop - px, sl[1].start + px + 1)),
        slice(min(sl[2].start + px, shape[2] - 1), max(sl[2].stop - px, sl[2].start + px + 1)),
    )


def _fill_excess(
    hu: NDArray[np.generic],
    objects: list,
    reach: int,
    pixel_mm: float,
    excess: NDArray[np.float32],
    inplane_excess: NDArray[np.float32],
    done: NDArray[np.bool_],
    pool: Executor,
    cancel: CancelFn | None,
) -> None:
    """Fill ``excess`` and ``inplane_excess`` (z, y, x) with :func:`compact_excess` in one box
    per object slice of ``objects``, grown in-plane by ``reach`` pixels and by a slice along
    the slice axis; ``done`` marks the voxels filled (the first box to reach a voxel fills it)."""
    for sl in objects:
        check_cancelled(cancel, "seed detection cancelled")
        if sl is None:
            continue
        blk = (
            sl[0],
            slice(max(0, sl[1].start - reach), min(hu.shape[1], sl[1].stop + reach)),
            slice(max(0, sl[2].start - reach), min(hu.shape[2], sl[2].stop + reach)),
        )
        zs = slice(max(0, blk[0].start - 1), min(hu.shape[0], blk[0].stop + 1))
        block = hu[zs, blk[1], blk[2]].astype(np.float32)
        e, e_xy = compact_excess(block, pixel_mm, pool=pool)
        inner = slice(blk[0].start - zs.start, blk[0].stop - zs.start)
        fresh = ~done[blk]
        excess[blk][fresh] = e[inner][fresh]
        inplane_excess[blk][fresh] = e_xy[inner][fresh]
        done[blk] = True


def stacked_candidates(
    inplane_excess: NDArray[np.float32],
    excess: NDArray[np.float32],
    bright: NDArray[np.bool_],
    candidates: NDArray[np.bool_],
    excess_hu: float,
    erased_hu: float,
    max_slices: float,
) -> NDArray[np.bool_]:
    """(z, y, x) mask of the seeds the 3-slice opening of :func:`compact_excess` erased: voxels
    of in-plane excess ≥ ``STACKED_EXCESS_FACTOR`` × ``excess_hu`` that are its maximum along
    the slice axis (a seed's centre slice) and lost ≥ ``erased_hu`` to the opening, whose
    in-plane blob comes within 2 pixels of no candidate on its slice and whose column (the
    connected in-plane excess ≥ ``excess_hu``) spans ≤ ``max_slices`` slices (longer: bone).
    All arrays (z, y, x) of one shape; HU."""
    e = inplane_excess
    high = bright & (e >= excess_hu)
    strong = e >= STACKED_EXCESS_FACTOR * excess_hu
    up = np.full(e.shape, -np.inf, dtype=np.float32)
    down = np.full(e.shape, -np.inf, dtype=np.float32)
    up[:-1], down[1:] = e[1:], e[:-1]
    peak = high & strong & (e >= up) & (e >= down) & ~candidates & (e - excess >= erased_hu)
    col, col_obj = label26(high)
    out = np.zeros(e.shape, dtype=bool)
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = True
    blobs, n = ndi.label(peak, structure=in_plane)
    if n == 0:
        return out
    near = ndi.binary_dilation(candidates, structure=np.ones((1, 5, 5), dtype=bool))
    for lab, sl in enumerate(ndi.find_objects(blobs), start=1):
        if sl is None:
            continue
        blob = blobs[sl] == lab
        if near[sl][blob].any():
            continue
        c = int(col[sl][blob][0])
        c_sl = col_obj[c - 1]
        if c_sl is None or c_sl[0].stop - c_sl[0].start > max_slices:
            continue
        out[sl] |= blob
    return out


def attached_pixels(
    hu: NDArray[np.generic],
    lab: int,
    labels: NDArray[np.int32],
    sl: tuple[slice, slice, slice],
    footprint: NDArray[np.bool_],
    lo_c: list[int],
    reach: int,
    fraction: float = ATTACHED_FRACTION,
    tissue_hu: float = 40.0,
) -> int:
    """Pixels, beyond a component's own footprint (grown by 2 pixels), of the in-plane
    structure that is as bright as the component and connected to its brightest voxel: HU ≥
    tissue + ``fraction`` × (peak − tissue) on the peak's slice. A seed is brighter than the
    bone it touches (its excess adds to it); the tightly curved end of a small cortical ring,
    which no straight line opening removes, is as bright as the rest of the ring."""
    core = labels[sl] == lab
    local = hu[sl]
    k, j, i = np.unravel_index(int(np.argmax(np.where(core, local, -32768))), core.shape)
    k_abs, j_abs, i_abs = k + sl[0].start, j + sl[1].start, i + sl[2].start
    peak = float(hu[k_abs, j_abs, i_abs])
    j0, j1 = max(0, j_abs - reach), min(hu.shape[1], j_abs + reach + 1)
    i0, i1 = max(0, i_abs - reach), min(hu.shape[2], i_abs + reach + 1)
    plane = hu[k_abs, j0:j1, i0:i1].astype(np.float32)
    bright = plane >= tissue_hu + fraction * (peak - tissue_hu)
    conn, _ = ndi.label(bright, structure=np.ones((3, 3), dtype=bool))
    mine = conn == conn[j_abs - j0, i_abs - i0]
    own = np.zeros(plane.shape, dtype=bool)
    oy, ox = lo_c[1] - j0, lo_c[2] - i0
    ys, xs = np.nonzero(footprint)
    ys, xs = ys + oy, xs + ox
    ok = (ys >= 0) & (ys < plane.shape[0]) & (xs >= 0) & (xs < plane.shape[1])
    own[ys[ok], xs[ok]] = True
    own = ndi.binary_dilation(own, structure=np.ones((3, 3), dtype=bool), iterations=2)
    return int((mine & ~own).sum())


def column_masses(
    comps: list[Component],
    labels: NDArray[np.int32],
    inplane_excess: NDArray[np.float32],
    hu: NDArray[np.generic],
    floor_hu: float,
    excluded: NDArray[np.bool_],
    voxel_mm3: float,
) -> NDArray[np.float64]:
    """``(len(comps),)`` each component's column mass (HU·mm³): the in-plane excess (not thinned
    by the 3-slice opening) over its in-plane footprint grown by 2 pixels, on its slices and
    one more on either side, at voxels of it or of no component, not ``excluded`` and of ``hu``
    ≥ ``floor_hu``. Seeds stacked along the slice axis keep their whole mass here; the
    component's mass (of the excess the 3-slice opening left) holds about one of them.
    ``labels`` (of ``comps``), ``inplane_excess`` (HU), ``hu`` and ``excluded`` are (z, y, x)
    of one shape."""
    objects = ndi.find_objects(labels)
    grow = np.ones((3, 3), dtype=bool)
    out = np.zeros(len(comps), dtype=np.float64)
    for n, c in enumerate(comps):
        sl = objects[c.label - 1] if c.label - 1 < len(objects) else None
        if sl is None:
            continue
        box = (
            slice(max(sl[0].start - 1, 0), min(sl[0].stop + 1, labels.shape[0])),
            slice(max(sl[1].start - 2, 0), min(sl[1].stop + 2, labels.shape[1])),
            slice(max(sl[2].start - 2, 0), min(sl[2].stop + 2, labels.shape[2])),
        )
        lab = labels[box]
        footprint = ndi.binary_dilation((lab == c.label).any(axis=0), grow, iterations=2)
        usable = (hu[box] >= floor_hu) & ~excluded[box]
        mine = footprint[None] & ((lab == 0) | (lab == c.label)) & usable
        out[n] = float(np.maximum(inplane_excess[box], 0.0)[mine].sum()) * voxel_mm3
    return out


def slice_centre(per_slice: NDArray[np.float64], thickness_mm: float) -> float:
    """Sub-slice centre (fractional index) of a seed from its excess per slice ``(K,)``.

    With a Gaussian slice profile of FWHM = thickness (σ ≈ 0.42 slices) the two largest
    neighbouring samples m₀ (slice k) and m₁ (slice k ± 1) of a point give its offset exactly:
    d = σ²·ln(m₁/m₀)/Δ + Δ/2 from slice k; the centroid of the samples would be pulled toward
    the slice centres by up to half a slice. Clipped to ± half a slice."""
    k = int(np.argmax(per_slice))
    m0 = float(per_slice[k])
    if m0 <= 0:
        return float(k)
    below = float(per_slice[k - 1]) if k > 0 else 0.0
    above = float(per_slice[k + 1]) if k + 1 < len(per_slice) else 0.0
    step, m1 = (1.0, above) if above >= below else (-1.0, below)
    if m1 <= 0:
        return float(k)
    sigma = thickness_mm * FWHM_TO_SIGMA
    d_mm = sigma**2 * np.log(m1 / m0) / thickness_mm + 0.5 * thickness_mm
    return float(k + step * np.clip(d_mm / thickness_mm, 0.0, 0.5))
