"""Split a component holding several seeds into seeds: (centres, axes, confidences).

:func:`split_cluster` runs intensity-weighted k-means (scikit-learn) and merges splits that are
too close or too light; on thick slices :func:`axis_partition` cuts chains k-means cannot split
and :func:`more_by_slices` splits seeds stacked along the slice axis one per slice.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from planner.postop.detection.blobs import SEED_LENGTH_MM, Component, axis_confidence, measure
from planner.postop.detection.thick_slices import THICK_SLICE_MM

MIN_SPLIT_DISTANCE_MM = 2.8
#: Thin slices: a split closer than ``MIN_SPLIT_DISTANCE_MM`` (slice-aware) stands when every
#: part is a whole seed — at least ``WHOLE_PART_FRACTION`` of a seed's mass and elongated
#: (axis confidence ≥ ``WHOLE_PART_CONFIDENCE``) — and its centres lie at least
#: ``MIN_WHOLE_SPLIT_DISTANCE_MM`` apart: two seeds side by side, offset along the slice axis
#: (a pair 2.9 mm apart on 2.5 mm slices measured 2.1 mm, parts 1.15 and 1.34 seeds, axis
#: confidence 0.75 and 0.83), where a single seed cut in two gives halves of about half a seed
#: that are not elongated.
MIN_WHOLE_SPLIT_DISTANCE_MM = 1.5
WHOLE_PART_FRACTION = 0.9
WHOLE_PART_CONFIDENCE = 0.5
#: Thick slices, seeds stacked along the slice axis: each slice part of a split carries at
#: least this many times the least part mass (0.9 of a seed: half of one tilted seed is not a
#: seed).
SLICE_PART_FACTOR = 1.5
#: Thick slices: a chain is cut along its axis (:func:`axis_partition`) only when the axis
#: has at least this in-plane component (the parts' in-plane offsets place them along it).
CHAIN_MIN_INPLANE = 0.5
#: ... and a pair (two seeds end to end whose blob weighs two seeds, split unevenly by k-means)
#: only when its axis has at least this in-plane component: a pair stacked steeply along the
#: slice axis is placed by its slices instead (:func:`more_by_slices`; cut along an axis 54°
#: from the slice plane, one part landed between the two seeds).
PAIR_MIN_INPLANE = 0.7
#: ... and whose blob weighs this many seeds or more: touching pairs cut right weighed
#: 1.90–2.10 seeds, single seeds beside another cut in two 1.52–1.84 (5 mm freehand rng
#: 205, 215, 219, 314, 317, 320 of ``bench_detect``).
PAIR_MIN_SEEDS = 1.85
#: Thick slices: times :func:`axis_partition` re-assigns voxels to the nearest part centre.
PARTITION_REASSIGNMENTS = 2


def separation_mm(
    pts: NDArray[np.float64], slice_normal: NDArray[np.float64], thickness_mm: float
) -> float:
    """Smallest distance between split centres, the along-slice part shortened by half a slice
    (the slice profile blurs a seed by about that much along the slice normal)."""
    d = pts[:, None, :] - pts[None, :, :]
    along = d @ slice_normal
    inplane2 = np.sum(d**2, axis=-1) - along**2
    eff = np.sqrt(
        np.maximum(inplane2, 0.0) + np.maximum(np.abs(along) - 0.5 * thickness_mm, 0.0) ** 2
    )
    return float((eff + np.eye(len(pts)) * 1e9).min())


def split_cluster(
    c: Component,
    n: int,
    voxel_mm3: float,
    blur: NDArray[np.float64],
    slice_normal,
    thickness_mm,
    min_part_mass: float = 0.0,
    seed_mass: float = 0.0,
):
    """Split a component into ``n`` seeds: (centres, axes, confidences), merging close splits
    and splits with a part lighter than ``min_part_mass`` (HU·mm³: a seed's worth of metal;
    a single seed cut in two gives two halves). ``seed_mass`` (HU·mm³, one seed's; 0: unknown)
    lets a close split of whole seeds stand on thin slices (``MIN_WHOLE_SPLIT_DISTANCE_MM``)."""
    from sklearn.cluster import KMeans

    n0 = n
    while n > 1:
        # Deterministic start: n centres spread along the blob's principal axis (chains and
        # side-by-side pairs both split along it); one Lloyd run from there.
        length = float(np.sqrt(12.0 * max(c.eigvals[0], 1e-6)))
        offsets = ((np.arange(n) + 0.5) / n - 0.5) * length
        init = c.centre[None, :] + offsets[:, None] * c.eigvecs[:, 0][None, :]
        km = KMeans(n_clusters=n, init=init, n_init=1, random_state=0)
        lab = km.fit_predict(c.coords_mm, sample_weight=np.maximum(c.weights, 1e-6))
        centres, axes, confs, masses, own = [], [], [], [], []
        for m in range(n):
            sub = Component(c.label, c.coords_mm[lab == m], c.weights[lab == m], 0)
            measure(sub, voxel_mm3, blur)
            centres.append(sub.centre)
            masses.append(sub.mass)
            # A sub-cluster's own PCA is cut by the k-means boundary: trust it only if elongated.
            conf = axis_confidence(sub.eigvals)
            own.append(conf)
            axis = sub.eigvecs[:, 0] if conf >= 0.3 else c.eigvecs[:, 0]
            axes.append(axis)
            confs.append(0.7 * max(conf, 0.3))
        pts = np.array(centres)
        # A seed cut in pieces gives pieces that are not elongated, out of a blob no longer
        # than one seed: not a cluster (each seed of a real cluster is a whole seed).
        halves = max(own) < 0.5 and length <= SEED_LENGTH_MM + 1.5
        separation = separation_mm(pts, slice_normal, thickness_mm)
        whole_seeds = (
            thickness_mm <= THICK_SLICE_MM
            and seed_mass > 0
            and min(masses) >= WHOLE_PART_FRACTION * seed_mass
            and min(own) >= WHOLE_PART_CONFIDENCE
            and separation >= MIN_WHOLE_SPLIT_DISTANCE_MM
        )
        if (
            (separation >= MIN_SPLIT_DISTANCE_MM or whole_seeds)
            and min(masses) >= min_part_mass
            and not halves
        ):
            return more_by_slices(
                c,
                n0,
                pts,
                np.array(axes),
                confs,
                slice_normal,
                thickness_mm,
                min_part_mass,
                voxel_mm3,
            )
        if thickness_mm > THICK_SLICE_MM and n == n0 and (n >= 3 or c.n_float >= PAIR_MIN_SEEDS):
            # A pair weighing two seeds that k-means cut unevenly (slice by slice) is cut
            # along its axis too, where that axis lies near the slice plane.
            part = axis_partition(
                c,
                n,
                voxel_mm3,
                blur,
                slice_normal,
                thickness_mm,
                min_part_mass,
                CHAIN_MIN_INPLANE if n >= 3 else PAIR_MIN_INPLANE,
            )
            if part is not None:
                return part
        n -= 1
    return more_by_slices(
        c,
        n0,
        c.centre[None, :],
        c.eigvecs[:, 0][None, :],
        [axis_confidence(c.eigvals)],
        slice_normal,
        thickness_mm,
        min_part_mass,
        voxel_mm3,
    )


def axis_partition(
    c: Component,
    n: int,
    voxel_mm3: float,
    blur: NDArray[np.float64],
    slice_normal,
    thickness_mm: float,
    min_part_mass: float,
    min_inplane: float = CHAIN_MIN_INPLANE,
):
    """Thick slices: a chain of ``n`` ≥ 3 seeds k-means cannot split (its middle seed, smeared
    over the slice, draws both neighbours' centres), or a pair it cut unevenly slice by slice,
    whose axis has ``min_inplane`` or more in the slice plane: cut the blob into ``n`` parts
    of equal mass along its principal axis, then re-assign each voxel to the nearest part
    centre along that axis (up to ``PARTITION_REASSIGNMENTS`` times) and take each part's
    weighted centroid. The last partition whose every part carries ``min_part_mass`` (HU·mm³)
    and whose centres are at least ``MIN_SPLIT_DISTANCE_MM`` apart is the split (centres, axes,
    confidences) — the earlier ones only where the blob's mass (``c.n_float``) counts ``n``
    seeds; None when none is."""
    axis = c.eigvecs[:, 0]
    normal = np.asarray(slice_normal, dtype=np.float64)
    inplane = axis - normal * (axis @ normal)
    if float(inplane @ inplane) < min_inplane**2:
        return None
    t = (c.coords_mm - c.centre) @ axis
    w = np.maximum(c.weights, 1e-9)
    order = np.argsort(t)
    cum = np.cumsum(w[order]) / w.sum()
    lab = np.empty(len(t), dtype=int)
    lab[order] = np.minimum((cum * n).astype(int), n - 1)
    partitions = [lab]
    for _ in range(PARTITION_REASSIGNMENTS):
        if len(np.unique(lab)) < n:
            break
        ct = np.array([(t[lab == m] * w[lab == m]).sum() / w[lab == m].sum() for m in range(n)])
        lab = np.argmin(np.abs(t[:, None] - ct[None, :]), axis=1)
        partitions.append(lab)
    # Re-assignment moves the cuts toward the slices' mass: on a steep chain over 5 mm slices
    # it can drain an end part below a seed's mass (three seeds end to end, 37° from the
    # slice axis: 0.43 and 0.57 of a seed, the partitions before it 0.68–1.03). Where the
    # blob's mass itself counts ``n`` seeds an earlier partition then stands; where only the
    # count check asks for one seed more, the re-assigned one decides (two seeds 6 mm apart
    # measuring 2.4 seeds: the equal-mass cut gives 0.76–0.87 each, re-assignment drains the
    # middle part to 0.34).
    mass_counts_n = round(c.n_float) >= n
    for lab in reversed(partitions if mass_counts_n else partitions[-1:]):
        part = _chain_parts(c, w, lab, n, axis, inplane, normal, voxel_mm3, min_part_mass)
        if part is not None:
            return part
    return None


def _chain_parts(c, w, lab, n, axis, inplane, normal, voxel_mm3, min_part_mass):
    """(centres, axes, confidences) of the ``n`` parts ``lab`` labels of the chain ``c`` (voxel
    weights ``w``, floored above 0) along ``axis``, or None when a part is missing, lighter
    than ``min_part_mass`` (HU·mm³) or two centres lie closer than ``MIN_SPLIT_DISTANCE_MM``."""
    if len(np.unique(lab)) < n:
        return None
    centres, masses = [], []
    for m in range(n):
        sel = lab == m
        p = (c.coords_mm[sel] * w[sel, None]).sum(axis=0) / w[sel].sum()
        # Along the slice normal a part's centroid sits on a slice centre: place it on the
        # chain's axis instead, from its in-plane offset (which the slice does not quantise).
        s_m = float((p - c.centre) @ inplane) / float(inplane @ inplane)
        p = p + normal * ((c.centre + s_m * axis) @ normal - p @ normal)
        centres.append(p)
        masses.append(float(c.weights[sel].sum()) * voxel_mm3)
    pts = np.array(centres)
    if min(masses) < min_part_mass:
        return None
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(n) * 1e9
    if d.min() < MIN_SPLIT_DISTANCE_MM:
        return None
    return pts, np.repeat(axis[None, :], n, axis=0), [0.35] * n


def more_by_slices(c, n0, pts, axes, confs, slice_normal, thickness_mm, min_part_mass, voxel_mm3):
    """Thick slices: when the split found fewer than the ``n0`` seeds the mass asks for, seeds
    stacked along the slice axis (same in-plane place, neighbouring slices) may be what k-means
    cannot separate (their spread along the slice axis is the slice profile's): one part per
    slice carrying ``SLICE_PART_FACTOR`` × ``min_part_mass`` (HU·mm³), a lighter slice joining
    its heavier neighbour; each part's centre is its weighted centroid (on its slice). Used
    when it gives more parts (at most ``n0``) than the split did; else the split's result."""
    if thickness_mm <= THICK_SLICE_MM or len(pts) >= n0:
        return pts, axes, confs
    normal = np.asarray(slice_normal, dtype=np.float64)
    along = c.coords_mm @ normal
    idx = np.rint((along - along.min()) / thickness_mm).astype(int)
    masses = np.bincount(idx, weights=np.maximum(c.weights, 0.0)) * voxel_mm3
    groups = [[k] for k in range(len(masses)) if masses[k] > 0]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        gm = [masses[g].sum() for g in groups]
        light = int(np.argmin(gm))
        if gm[light] >= SLICE_PART_FACTOR * min_part_mass:
            break
        nb = [j for j in (light - 1, light + 1) if 0 <= j < len(groups)]
        j = max(nb, key=lambda q: gm[q])
        lo, hi = sorted((light, j))
        groups[lo : hi + 1] = [groups[lo] + groups[hi]]
        changed = True
    if not (len(pts) < len(groups) <= n0):
        return pts, axes, confs
    out_pts, out_axes, out_conf = [], [], []
    for g in groups:
        m = np.isin(idx, g)
        w = np.maximum(c.weights[m], 1e-9)
        out_pts.append((c.coords_mm[m] * w[:, None]).sum(axis=0) / w.sum())
        out_axes.append(c.eigvecs[:, 0])
        out_conf.append(0.3)
    return np.array(out_pts), np.array(out_axes), out_conf
