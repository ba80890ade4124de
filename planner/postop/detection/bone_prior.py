"""Thick slices: the planning CT's bone (and lung vessels) as the post-op scan sees it, to take out
before the search.

On 5 mm slices a seed lying in the slice plane reads about as bright as cortical bone, and a
row of seeds nearly end to end is as long as a cortex arc: the search by shape
(:mod:`planner.postop.detection.thick_slices`) must open such structures away, and takes some seeds
with them or keeps some bone. The planning CT shows the same bone without seeds. Registered to the
post-op CT (:mod:`planner.postop.register`), resampled onto its grid and averaged over each of
its slices (the post-op scanner's slice profile), its HU above soft tissue
(:data:`BONE_FROM_HU`) is the bone the post-op voxel holds: :func:`planning_bone_hu`.
:func:`planner.postop.detection.detect.detect_seeds` subtracts it (``bone_hu``) before searching
thick slices; seeds, streaks and what changed since planning remain. In lung the prior also
holds the planning CT's vessels and small nodules (``LUNG_VESSELS``, :func:`lung_vessels_hu`):
on 5 mm slices a vessel beside a seed, lifted by the seed's blur, read as a seed more.

Measured on the 5 mm scenes of ``benchmarks.bench_detect --scenarios --bone-prior`` (the
planning CT is the anatomy on its own 2.5 mm slices, registered 0.9 mm and 0.5° off on
purpose; without → with the prior): freehand rng 0–11 504/535 found, 14 false → 509/535, 6
false; check rng 100–111 442/468, 9 → 450/468, 4; the needle-grid scenes (scenarios,
held-out, validation) 2016/2046, 18 → 2022/2046, 7. On thin slices the search by HU already
keeps bone out, and subtracting a slightly misregistered bone left its edges as false seeds
(172 on 24 scenes of 2.5 mm): there the prior only tells a seed found on cortex brightened
by the seeds' streaks from a seed (:func:`bone_spots`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.ndimage as ndi
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import NDArray

from planner.imaging.volume import CTVolume
from planner.postop.detection.blobs import lung_fraction_map
from planner.postop.register import RigidTransform, sitk_image

#: HU of the planning CT above this are bone (or contrast) to take out: soft tissue reads
#: 0–80 HU and stays.
BONE_FROM_HU = 100.0
#: Planes sampled across each post-op slice (its slice profile, a box of the slice spacing).
SLAB_SAMPLES = 5
#: Outside the planning CT: air (no bone to take out).
OUTSIDE_HU = -1000.0


#: Lung vessels: where at least ``LUNG_FRACTION`` of the ``LUNG_WINDOW_MM`` square about a voxel
#: (in-plane) is lung (slab HU below :data:`~planner.postop.detection.blobs.LUNG_HU`), what the
#: planning CT holds narrower than ``VESSEL_WIDTH_MM`` in-plane (a white top-hat: HU above the grey
#: opening of that square) less ``VESSEL_MARGIN_HU`` is a vessel (or a small nodule), which the
#: post-op scan shows the same beside a seed (a phantom vessel at about −230 HU slab-averaged, 3–5
#: mm from a true seed, was 6 of the 13 false seeds of the 5 mm fresh draws rng 200–223). Broad
#: soft tissue against the lung (the chest wall, a tumour) fills the square and holds none. The
#: prior is the larger of the bone and the vessel at each voxel: a cut on HU instead (vessels only
#: below −100 HU) hollowed a vessel's core out of its rim, and the core read as a seed.
LUNG_VESSELS = True
LUNG_WINDOW_MM = 15.0
LUNG_FRACTION = 0.5
VESSEL_WIDTH_MM = 10.0
VESSEL_MARGIN_HU = 100.0


def planning_bone_hu(
    planning: CTVolume, postop: CTVolume, transform: RigidTransform
) -> NDArray[np.float32]:
    """``(z, y, x)`` on ``postop``'s grid: the HU above :data:`BONE_FROM_HU` of ``planning``
    (≥ 0), each post-op slice the mean of :data:`SLAB_SAMPLES` planes across its thickness,
    and (``LUNG_VESSELS``) in lung the vessels' HU above the lung about them
    (:func:`lung_vessels_hu`). ``transform`` maps post-op points into the planning frame
    (``x_plan = R x_postop + t``, as :func:`planner.postop.register.register_rigid` gives it)."""
    slab = planning_slab_hu(planning, postop, transform)
    prior = np.maximum(slab - np.float32(BONE_FROM_HU), 0.0).astype(np.float32)
    if LUNG_VESSELS:
        prior = np.maximum(prior, lung_vessels_hu(slab, float(postop.geometry.spacing_mm[0])))
    return prior


def planning_slab_hu(
    planning: CTVolume, postop: CTVolume, transform: RigidTransform
) -> NDArray[np.float32]:
    """``(z, y, x)`` on ``postop``'s grid: ``planning``'s HU through ``transform``, each
    post-op slice the mean of :data:`SLAB_SAMPLES` planes across its thickness (the post-op
    scanner's slice profile); :data:`OUTSIDE_HU` outside the planning CT."""
    g = postop.geometry
    nz, ny, nx = g.shape_zyx
    sp = np.asarray(g.spacing_mm, dtype=np.float64)
    direction = np.asarray(g.direction, dtype=np.float64)
    # A fine grid: each post-op slice split into SLAB_SAMPLES planes along its normal.
    fine_dz = sp[2] / SLAB_SAMPLES
    first = np.asarray(g.origin_mm, dtype=np.float64) + direction[:, 2] * (
        -0.5 * sp[2] + 0.5 * fine_dz
    )
    reference = sitk.Image(int(nx), int(ny), int(nz * SLAB_SAMPLES), sitk.sitkFloat32)
    reference.SetOrigin(tuple(float(v) for v in first))
    reference.SetSpacing((float(sp[0]), float(sp[1]), float(fine_dz)))
    reference.SetDirection(tuple(float(v) for v in direction.reshape(-1)))
    # sitk's resampling maps output (post-op) points to input (planning) points: our transform.
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(tuple(float(v) for v in transform.matrix.reshape(-1)))
    affine.SetTranslation(tuple(float(v) for v in transform.translation_mm))
    fine = sitk.Resample(
        sitk_image(planning), reference, affine, sitk.sitkLinear, OUTSIDE_HU, sitk.sitkFloat32
    )
    planes = sitk.GetArrayViewFromImage(fine).reshape(nz, SLAB_SAMPLES, ny, nx)
    return planes.mean(axis=1, dtype=np.float32)


def lung_vessels_hu(slab_hu: NDArray[np.float32], pixel_mm: float) -> NDArray[np.float32]:
    """``(z, y, x)`` HU (≥ 0) of the lung vessels of the planning CT's slab HU ``slab_hu``
    (in-plane pixels of ``pixel_mm``): see ``LUNG_VESSELS``; zero away from lung."""
    window = max(3, round(LUNG_WINDOW_MM / pixel_mm) | 1)
    fraction = lung_fraction_map(slab_hu, (1, window, window))
    width = max(3, round(VESSEL_WIDTH_MM / pixel_mm) | 1)
    narrow = slab_hu - ndi.grey_opening(slab_hu, size=(1, width, width), mode="nearest")
    vessel = np.where(fraction >= LUNG_FRACTION, narrow - np.float32(VESSEL_MARGIN_HU), 0.0)
    return np.maximum(vessel, 0.0).astype(np.float32)


#: Thin slices: a seed found where the planning CT has bone (≥ ``SPOT_BONE_HU`` above soft
#: tissue about it) is cortex brightened by the seeds' streaks, not a seed, when the post-op HU
#: about it exceeds the planning CT's there by less than ``SPOT_FRACTION`` of the scan's metal
#: threshold. The prior only takes seeds out here, never adds any (on thin slices its
#: subtraction left a misregistered bone's edges as seeds). Measured on the 2.5 mm freehand
#: (rng 0–11, 100–111) and validation scenes of ``bench_detect``, registration 0.9 mm off:
#: seeds where the planning CT has bone exceed it by 1911 HU or more (seeds in lung, no bone,
#: peak at 1142 HU or more), the cortex spot taken for a seed (threshold 1301 HU) by 892.
SPOT_BONE_HU = 200.0
SPOT_FRACTION = 0.8
#: Half-size (slices, pixels) of the neighbourhood of a seed's voxel searched for its peak.
SPOT_REACH = (1, 2, 2)


def planning_bone_at(
    planning: CTVolume, postop: CTVolume, transform: RigidTransform, kji: NDArray[np.int64]
) -> NDArray[np.float32]:
    """The bone of :func:`planning_bone_hu` (not its lung vessels: on thin slices the prior only
    tells cortex from seeds) at the voxels ``kji`` ``(M, 3)`` (z, y, x) of ``postop`` only
    (linear interpolation, the same :data:`SLAB_SAMPLES` planes across each slice): ``(M,)``.
    A few voxels about each seed cost milliseconds where the whole grid costs a second or two
    on thin slices."""
    g = postop.geometry
    centres = g.zyx_to_world(np.asarray(kji, dtype=np.float64).reshape(-1, 3))
    thickness = float(g.spacing_mm[2])
    offsets = (np.arange(SLAB_SAMPLES) + 0.5) / SLAB_SAMPLES - 0.5
    normal = np.asarray(g.slice_normal(), dtype=np.float64)
    across = centres[:, None, :] + offsets[None, :, None] * thickness * normal  # (M, S, 3)
    at_plan = planning.geometry.world_to_zyx(transform.apply(across.reshape(-1, 3)))
    # As SimpleITK's resampling: inside within half a voxel of the edge voxels (clamped there),
    # air beyond.
    size = np.asarray(planning.hu.shape, dtype=np.float64)
    inside = np.all((at_plan >= -0.5) & (at_plan <= size - 0.5), axis=1)
    sampled = ndi.map_coordinates(
        planning.hu.astype(np.float32), np.clip(at_plan, 0.0, size - 1.0).T, order=1
    )
    hu = np.where(inside, sampled, np.float32(OUTSIDE_HU)).reshape(len(centres), SLAB_SAMPLES)
    return np.maximum(hu.mean(axis=1) - np.float32(BONE_FROM_HU), 0.0).astype(np.float32)


def bone_spots(
    hu: NDArray[np.generic],
    bone_at: Callable[[NDArray[np.int64]], NDArray[np.float32]],
    kji: NDArray[np.int64],
    threshold_hu: float,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which seeds at voxels ``kji`` ``(N, 3)`` (z, y, x) of the thin-slice CT ``hu`` are bone
    (see ``SPOT_FRACTION``), and their peak excess (HU) over the planning CT's bone;
    ``bone_at(voxels (M, 3)) -> (M,)`` gives that bone (:func:`planning_bone_at`),
    ``threshold_hu`` is the scan's metal threshold."""
    shape = np.asarray(hu.shape)
    reach = np.asarray(SPOT_REACH)
    grid = np.stack(np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij"), -1).reshape(
        -1, 3
    )
    boxes = np.clip(np.asarray(kji, dtype=np.int64)[:, None, :] + grid[None], 0, shape - 1)
    flat = boxes.reshape(-1, 3)
    bone = np.asarray(bone_at(flat), dtype=np.float32).reshape(boxes.shape[:2])
    post = hu[tuple(flat.T)].astype(np.float32).reshape(boxes.shape[:2])
    excess = (post - bone).max(axis=1).astype(np.float64)
    spot = (bone.max(axis=1) >= SPOT_BONE_HU) & (excess < SPOT_FRACTION * threshold_hu)
    return spot, excess
