"""Seed detection on 5 mm slices (issue 13): found / false / centre error against known seeds.

On 5 mm slices an in-plane seed smeared over the slice reads ≈ 1000 HU, like cortical bone, so
the detector searches thick slices by shape (planner/postop/detection/detect.py,
``_thick_components``). The scenes are the demo phantom resampled to 5 mm plus seeds rendered
through the scanner model (planner/postop/synthetic.py). Detections are matched to the truth by the
Hungarian algorithm on distances gated at 2.5 mm (pairs beyond the gate cost the same, so they
cannot pull the matching). Seeds in lung are left out of most scenes: on thick slices a seed against
the pleura reads ≈ 500 HU and is a known limitation; the clusters-and-lung scenes keep them (and a
triplet of seeds end to end through the slice).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import planner.postop.detection.detect as detect
import planner.postop.detection.thick_model as thick_model
from planner.demo.phantom import generate_phantom
from planner.postop.detection.detect import detect_seeds
from planner.postop.detection.thick_slices import stacked_candidates
from planner.postop.synthetic import needle_implant_scene, render_postop_ct, seed_grid_scene
from tests.test_postop_detect import _resample_z


@pytest.fixture(scope="module")
def phantom_5mm():
    base, gtv = _resample_z(generate_phantom(n_slices=40), 5.0)
    return base, gtv


def _gated_match(truth: np.ndarray, found: np.ndarray, gate_mm: float = 2.5):
    """Indices (truth, found) of the Hungarian matches within ``gate_mm``."""
    if len(found) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    dist = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(np.where(dist < gate_mm, dist, 1e6))
    ok = dist[r, c] < gate_mm
    return r[ok], c[ok]


@pytest.mark.parametrize(("rng", "measured"), [(1, 134), (3, 130)])
def test_5mm_many_seeds_every_orientation(phantom_5mm, rng: int, measured: int) -> None:
    """130–134 seeds on a 10 × 10 × 12 mm grid around the target (in soft tissue, bone and
    against cortex), axes uniform on the sphere: ≥ 99 % found (measured 134/134 and 130/130;
    131/134 and 129/130 before the seeds found in the residual of
    planner/postop/detection/residual.py), ≤ 1 % false (measured 0 and 0), centre ≤ 0.7 mm RMS
    (measured 0.45 and 0.38 mm), axis ≤ 10° median (measured 4.5° and 5.5°: uncertain single seeds
    placed by the image model fit; 23° and 22° before). Seeds 12 mm apart along the slice axis make
    one blob too long for its mass; it holds one seed more (without that rule rng 3 found
    125/130)."""
    base, gtv = phantom_5mm
    centre = base.geometry.zyx_to_world(np.argwhere(gtv).mean(axis=0))
    scene = seed_grid_scene(base.geometry, centre, rng=rng, avoid_lung=base.hu)
    n = len(scene.seeds_mm)
    assert n >= 120
    post = render_postop_ct(base, scene, rng=rng + 2)
    result = detect_seeds(post, expected=n)
    found = result.positions_mm
    r, c = _gated_match(scene.seeds_mm, found)
    assert len(r) >= int(np.ceil(0.99 * n)), (measured, result.summary())
    assert len(found) - len(r) <= int(0.01 * n), result.summary()
    err = np.linalg.norm(scene.seeds_mm[r] - found[c], axis=1)
    assert np.sqrt(np.mean(err**2)) <= 0.7
    cosang = np.abs(np.sum(scene.axes[r] * result.axes[c], axis=1))
    assert np.median(np.degrees(np.arccos(np.clip(cosang, 0, 1)))) <= 10.0


def test_5mm_dense_implant_no_seed_in_bone_far_from_the_implant() -> None:
    """The dense benchmark case on 30 slices of 5 mm (49 seeds on needles 9 mm apart): the
    tightly curved ends of the small cortical ring at the tip of the sternum survive every
    straight line opening and read like seeds (7 false seeds, 130 mm from the implant, before
    the attached-structure rule); they are part of a structure as bright as themselves and are
    reported as bone. Every seed reported lies within 5 mm of a true seed; ≥ 93 % found
    (measured 47/49: the middle seeds of columns 8 mm apart along the slice axis found in the
    residual; 43/49 before, 41/49 before the stacked candidates of ``stacked_candidates``,
    39/49 before seeds stacked along the slice axis were split one per slice; the two missed
    lie in lung and beside a seed 5 mm away). A lung vessel crossing a slice fits one seed's
    image at 0.80 of its amplitude: without the width test of planner/postop/detection/lung_seeds.py
    (``WIDE_FACTOR``) it is a false seed 12.7 mm from the implant."""
    from benchmarks.bench_detect import make_case

    post, scene = make_case(n_slices=30, slice_mm=5.0)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    found = result.positions_mm
    nearest = np.linalg.norm(found[:, None] - scene.seeds_mm[None], axis=-1).min(axis=1)
    assert nearest.max() < 5.0, (np.round(found[nearest >= 5.0], 1), result.summary())
    r, _ = _gated_match(scene.seeds_mm, found)
    assert len(r) >= int(np.ceil(0.93 * len(scene.seeds_mm))), result.summary()
    assert any("as bright as itself" in m.reason for m in result.metal)


@pytest.mark.parametrize("rng", [1, 3])
def test_5mm_needle_implant_with_screw_and_cement(phantom_5mm, rng: int) -> None:
    """A posterior needle implant (seeds along the needles, in-plane on 5 mm slices) beside a
    pedicle screw and vertebroplasty cement: every seed found, none false, none in the metal."""
    base, gtv = phantom_5mm
    scene = needle_implant_scene(gtv, base.geometry, rng=rng, clusters=False, avoid_lung=base.hu)
    post = render_postop_ct(base, scene, rng=rng + 2)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    found = result.positions_mm
    r, c = _gated_match(scene.seeds_mm, found)
    assert len(r) == len(scene.seeds_mm), result.summary()
    assert len(found) == len(r), result.summary()
    assert np.sqrt(np.mean(np.sum((scene.seeds_mm[r] - found[c]) ** 2, axis=1))) <= 1.0
    screw = scene.screws[0]
    a, b = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    u = (b - a) / np.linalg.norm(b - a)
    t = np.clip((found - a) @ u, 0.0, np.linalg.norm(b - a))
    assert np.linalg.norm(found - (a + t[:, None] * u), axis=1).min() > screw.radius_mm + 2.0
    cem = scene.cements[0]
    inside = np.sum(((found - np.asarray(cem.centre_mm)) / np.asarray(cem.semi_axes_mm)) ** 2, 1)
    assert inside.min() > 1.0
    assert any("solid metal" in m.reason for m in result.metal)
    # What 5 mm slices cannot promise is said, once, whatever was found.
    caveats = [m for m in result.messages if m.startswith("5 mm slices:")]
    assert len(caveats) == 1 and "scan at ≤ 3 mm" in caveats[0]


def test_5mm_clusters_and_lung_no_duplicate_seed(phantom_5mm) -> None:
    """A needle implant with a touching pair, an end-to-end triplet, a side-by-side pair and
    seeds against lung, beside a screw and cement, on 5 mm slices: all 28 found (27 before the
    triplet through the slice was cut along its axis) and no false seed; a seed cut
    into two components (one seed reported twice 1–2 mm apart, before duplicates were merged)
    is one seed; none in the screw."""
    base, gtv = phantom_5mm
    scene = needle_implant_scene(gtv, base.geometry, rng=2)
    post = render_postop_ct(base, scene, rng=4)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    found = result.positions_mm
    r, _ = _gated_match(scene.seeds_mm, found)
    assert len(r) == len(scene.seeds_mm), result.summary()
    assert len(found) == len(r), result.summary()
    gaps = np.linalg.norm(found[:, None] - found[None], axis=-1) + np.eye(len(found)) * 1e9
    assert gaps.min() >= 2.0
    screw = scene.screws[0]
    a, b = np.asarray(screw.head_mm), np.asarray(screw.tip_mm)
    u = (b - a) / np.linalg.norm(b - a)
    t = np.clip((found - a) @ u, 0.0, np.linalg.norm(b - a))
    assert np.linalg.norm(found - (a + t[:, None] * u), axis=1).min() > screw.radius_mm + 2.0


@pytest.mark.parametrize("rng", [1, 2])
def test_5mm_triplet_through_the_slice_split_along_its_axis(phantom_5mm, rng: int) -> None:
    """The end-to-end triplet running through the 5 mm slices (axis 0.6 in-plane, 0.8 along
    the slice normal, seeds 4.9 mm apart) is one blob k-means splits into two (its middle seed
    draws both centres): cut into three parts of equal mass along the blob's axis, each placed
    on the axis from its in-plane offset, all three seeds are found within the 2.5 mm match
    gate (measured 1.2–1.9 and 0.9–2.3 mm, the end seeds placed a little inward; before: the
    middle seed's nearest detection 3.4 mm away in both scenes, clusters+lung 26/28, 27/28)."""
    base, gtv = phantom_5mm
    scene = needle_implant_scene(gtv, base.geometry, rng=rng)
    post = render_postop_ct(base, scene, rng=rng + 2)
    result = detect_seeds(post, expected=len(scene.seeds_mm))
    found = result.positions_mm
    triplet = scene.seeds_mm[-5:-2]
    dist = np.linalg.norm(triplet[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(dist)
    assert dist[r, c].max() < 2.5, (np.round(dist[r, c], 2), result.summary())
    assert len(set(c)) == 3


def test_5mm_steep_triplet_keeps_three_parts_where_its_mass_counts_three(
    phantom_5mm, monkeypatch
) -> None:
    """Clusters+lung rng 11 with the planning CT's bone out: the end-to-end triplet (37° from
    the slice axis, seeds 4.9 mm apart) is one blob of 3.1 seeds' mass. Re-assigning its voxels
    to the nearest part centre drained an end part to 0.43 of a seed, so the chain was cut in
    two and one seed missed (validation clusters+lung rng 10, 11, 13, 14 each 1 seed short).
    Where the mass counts three the cut before the re-assignment stands: all three within the
    2.5 mm gate. The same blob counted 2.4 seeds (the count check asking for one more) is cut
    by the re-assigned partition alone, which leaves no third part."""
    from planner.imaging.volume import CTVolume
    from planner.postop.detection.cluster_split import axis_partition
    from planner.postop.register import RigidTransform
    from planner.postop.verify import detect_with_bone_prior

    base, gtv = phantom_5mm
    phantom = generate_phantom(n_slices=40)
    scene = needle_implant_scene(gtv, base.geometry, rng=11)
    post = render_postop_ct(base, scene, rng=13)
    triplet = scene.seeds_mm[-5:-2]
    assert np.allclose(np.linalg.norm(np.diff(triplet, axis=0), axis=1), 4.9, atol=0.1)
    calls = []
    split = detect.split_cluster

    def recording_split(c, n, *args):
        if n == 3 and np.linalg.norm(c.centre - triplet[1]) < 3.0:
            calls.append((c, n, args))
        return split(c, n, *args)

    monkeypatch.setattr(detect, "split_cluster", recording_split)
    off = RigidTransform().nudged(shift_mm=(0.5, -0.4, 0.6), rotation_deg=(0.0, 0.0, 0.5))
    planning = CTVolume(phantom.hu, phantom.geometry)
    result = detect_with_bone_prior(planning, post, off, len(scene.seeds_mm), None, None, None)
    dist = np.linalg.norm(triplet[:, None] - result.positions_mm[None], axis=-1)
    r, c = linear_sum_assignment(dist)
    assert dist[r, c].max() < 2.5, (np.round(dist[r, c], 2), result.summary())

    assert calls, "the triplet's blob was not split into three"
    blob, n, (voxel_mm3, blur, normal, thickness, min_part, _single) = calls[0]
    assert blob.n_float == pytest.approx(3.1, abs=0.1)
    parts = axis_partition(blob, n, voxel_mm3, blur, normal, thickness, min_part)
    assert parts is not None
    d = np.linalg.norm(triplet[:, None] - parts[0][None], axis=-1)
    r, c = linear_sum_assignment(d)
    assert d[r, c].max() < 2.5
    blob.n_float = 2.4
    assert axis_partition(blob, n, voxel_mm3, blur, normal, thickness, min_part) is None


def test_5mm_touching_pair_whose_mass_counts_two_is_cut_along_its_axis(monkeypatch) -> None:
    """Freehand rng 215 (a draw no rule was set on) with the planning CT's bone out: two seeds
    touching end to end (4.5 mm apart, 27° out of the slice plane) are one blob 8.8 mm long
    weighing 2.0 seeds. k-means cut it slice by slice into 0.54 and 1.46 seeds, the light part
    was merged back, and one seed was missed. Where the blob weighs two seeds
    (``PAIR_MIN_SEEDS``) and its axis lies near the slice plane (``PAIR_MIN_INPLANE``) it is
    cut along its axis as chains are: both seeds within the gate. With either condition
    refused the same blob gives one seed."""
    from planner.postop.detection import cluster_split
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=215, render_rng=315)
    truth = case.scene.seeds_mm
    pair = truth[[22, 23]]
    assert np.linalg.norm(pair[1] - pair[0]) == pytest.approx(4.5, abs=0.1)
    calls = []
    split = detect.split_cluster

    def recording_split(c, n, *args):
        if n == 2 and np.linalg.norm(c.centre - pair.mean(axis=0)) < 3.0:
            calls.append((c, n, args))
        return split(c, n, *args)

    monkeypatch.setattr(detect, "split_cluster", recording_split)
    found = detect_seeds(case.ct, expected=len(truth), bone_hu=case.bone_hu()).positions_mm
    d = np.linalg.norm(pair[:, None] - found[None], axis=-1)
    assert d.min(axis=1).max() < 2.5, np.round(d.min(axis=1), 2)

    assert calls, "the pair's blob was not split into two"
    blob, n, args = calls[0]
    assert blob.n_float == pytest.approx(2.0, abs=0.15)
    pts, _, _ = split(blob, n, *args)
    assert len(pts) == 2
    d = np.linalg.norm(pair[:, None] - np.asarray(pts)[None], axis=-1)
    r, c = linear_sum_assignment(d)
    assert d[r, c].max() < 2.5
    monkeypatch.setattr(cluster_split, "PAIR_MIN_INPLANE", 1.01)
    assert len(split(blob, n, *args)[0]) == 1
    monkeypatch.setattr(cluster_split, "PAIR_MIN_INPLANE", 0.7)
    monkeypatch.setattr(cluster_split, "PAIR_MIN_SEEDS", blob.n_float + 0.01)
    assert len(split(blob, n, *args)[0]) == 1


def test_5mm_confident_seeds_are_placed_along_the_slice_axis_by_their_image(
    monkeypatch,
) -> None:
    """Freehand rng 5 on 5 mm slices, the planning CT's bone out: its single seeds of
    confident axis were placed by their blobs' centroids, too near the slice centres
    (slice-axis RMS 0.50 mm, post-op D90 2.6 % below the true seeds'). Moved along the slice
    normal to where their image fits (``SLICE_AXIS_REFINE``), measured 0.47 mm and −1.6 %,
    every seed still found; each moved along the slice normal only, by at most 1 mm."""
    from benchmarks.bench_detect import gtv_d90_gy
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=5, render_rng=105)
    scene, ct, bone, base, gtv = case.scene, case.ct, case.bone_hu(), case.base, case.gtv
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    normal = np.asarray(ct.geometry.slice_normal())
    steps = []
    refine = thick_model.refine_along_slice_axis

    def recording_refine(seeds, *args):
        out = refine(seeds, *args)
        steps.append((np.array([s.position_mm for s in seeds]), [s.position_mm for s in out]))
        return out

    monkeypatch.setattr(thick_model, "refine_along_slice_axis", recording_refine)
    runs = {}
    for on in (False, True):
        monkeypatch.setattr(thick_model, "SLICE_AXIS_REFINE", on)
        runs[on] = detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    ((before, after),) = steps
    move = np.array(after) - before
    along = move @ normal
    assert np.allclose(move, along[:, None] * normal[None], atol=1e-6)
    assert np.abs(along).max() <= 1.0 + 1e-9 and np.count_nonzero(along) >= 0.5 * n

    def slice_axis_rms(found):
        r, c = _gated_match(truth, found)
        assert len(r) == n  # every seed found within the gate
        return float(np.sqrt(np.mean(((found[c] - truth[r]) @ normal) ** 2)))

    assert slice_axis_rms(runs[True]) < slice_axis_rms(runs[False]) - 0.02
    gtv_mm = base.geometry.zyx_to_world(np.argwhere(gtv).astype(np.float64))
    d90_true = gtv_d90_gy(truth, gtv_mm)
    error = {k: abs(gtv_d90_gy(v, gtv_mm) / d90_true - 1.0) for k, v in runs.items()}
    assert error[True] < 0.02 < error[False]


def test_5mm_two_seeds_stacked_along_the_slice_axis_are_two(phantom_5mm, monkeypatch) -> None:
    """Grid rng 2 holds two seeds 9 mm apart along the slice axis at one in-plane spot (1.8
    slices): one blob 13.1 mm long of 1.36 seeds' mass, which without the stacked-length rule
    (``detect.THICK_STACKED_LENGTH_MM``) is one seed between them (131/134 found, 2 false);
    with it both are found and the grid gives 133/134, 1 false (measured)."""
    base, gtv = phantom_5mm
    centre = base.geometry.zyx_to_world(np.argwhere(gtv).mean(axis=0))
    scene = seed_grid_scene(base.geometry, centre, rng=2, avoid_lung=base.hu)
    post = render_postop_ct(base, scene, rng=4)
    truth = scene.seeds_mm
    zyx = base.geometry.world_to_zyx(truth)
    d_inplane = np.hypot(*(zyx[:, None, 1:] - zyx[None, :, 1:]).transpose(2, 0, 1))
    dz = np.abs(zyx[:, None, 0] - zyx[None, :, 0])
    pairs = np.argwhere(np.triu((d_inplane < 3.0) & (dz > 1.5) & (dz < 2.0), k=1))
    assert len(pairs) >= 1  # the case is in the scene

    def pairs_found(result) -> int:
        r, _ = _gated_match(truth, result.positions_mm)
        return sum(int(a in r and b in r) for a, b in pairs)

    result = detect_seeds(post, expected=len(truth))
    assert pairs_found(result) == len(pairs), result.summary()
    r, _ = _gated_match(truth, result.positions_mm)
    assert len(r) >= int(np.ceil(0.99 * len(truth))), result.summary()
    assert len(result.seeds) - len(r) <= int(0.01 * len(truth)), result.summary()
    monkeypatch.setattr(detect, "THICK_STACKED_LENGTH_MM", 1e9)
    assert pairs_found(detect_seeds(post, expected=len(truth))) < len(pairs)


@pytest.mark.parametrize("rng", [7, 8])
def test_5mm_seeds_end_to_end_in_plane_are_two(phantom_5mm, monkeypatch, rng: int) -> None:
    """The touching pair of the needle implant (two in-plane seeds end to end, 4.8 mm apart)
    weighs 2.7 seeds on 5 mm slices (in-plane seeds keep more of their mass than the oblique
    ones the single mass is learned on): split in three, a part 2.3 mm from a seed was a false
    seed. The parts would overlap along their axes, and the image model fit of one seed fewer
    is better (BIC): exactly two seeds there, both found. Without that fit
    (``thick_model.REFIT_FEWER``) three are reported."""
    base, gtv = phantom_5mm
    scene = needle_implant_scene(gtv, base.geometry, rng=rng)
    post = render_postop_ct(base, scene, rng=rng + 2)
    pair = scene.seeds_mm[-7:-5]
    assert np.linalg.norm(pair[1] - pair[0]) < 5.0  # the end-to-end pair of the scene
    middle = pair.mean(axis=0)

    def near_pair(result) -> int:
        return int((np.linalg.norm(result.positions_mm - middle, axis=1) < 5.0).sum())

    result = detect_seeds(post, expected=len(scene.seeds_mm))
    assert near_pair(result) == 2, result.summary()
    dist = np.linalg.norm(pair[:, None] - result.positions_mm[None], axis=-1)
    assert dist.min(axis=1).max() < 2.5
    monkeypatch.setattr(thick_model, "REFIT_FEWER", False)
    assert near_pair(detect_seeds(post, expected=len(scene.seeds_mm))) == 3


def test_stacked_candidates_only_erased_short_columns() -> None:
    """A seed-sized blob whose in-plane excess peaks on one slice of a 3-slice column (two
    seeds stacked along the slice axis: the 3-slice opening erased it) becomes a candidate;
    the same blob in a 6-slice column (bone along the slice axis), a blob the opening did not
    erase, a blob beside an existing candidate and a blob below 1.3 × the excess do not."""
    shape = (12, 20, 60)
    inplane = np.zeros(shape, dtype=np.float32)
    excess = np.zeros(shape, dtype=np.float32)
    candidates = np.zeros(shape, dtype=bool)
    xy = (slice(8, 11), slice(8, 11))
    inplane[(slice(1, 4), *xy)] = 1000.0
    inplane[(2, *xy)] = 1500.0  # stacked pair: erased, short column
    xy = (slice(8, 11), slice(20, 23))
    inplane[(slice(1, 7), *xy)] = 1000.0
    inplane[(3, *xy)] = 1500.0  # 6 slices: bone
    xy = (slice(8, 11), slice(32, 35))
    inplane[(5, *xy)] = excess[(5, *xy)] = 1500.0  # not erased: already a candidate's case
    xy = (slice(8, 11), slice(44, 47))
    inplane[(slice(1, 4), *xy)] = 800.0
    inplane[(2, *xy)] = 850.0  # erased but weak
    bright = inplane > 0
    out = stacked_candidates(inplane, excess, bright, candidates, 700.0, 300.0, 4.0)
    assert out[2, 8:11, 8:11].all()
    assert out.sum() == 9
    candidates[2, 12, 12] = True  # a candidate 2 px away on the same slice
    assert not stacked_candidates(inplane, excess, bright, candidates, 700.0, 300.0, 4.0).any()


def test_5mm_seeds_stacked_along_the_slice_axis_are_refit(phantom_5mm, monkeypatch) -> None:
    """Needles rng 1 holds seeds of one in-plane column 1–2 slices apart: they share a slice,
    whose excess the 3-slice z-opening takes out, and were each placed at their own slice's
    centre, 0.6–1.3 mm off along the slice axis and pushed apart. Fitted together
    (``thick_model.COLUMN_REFIT``) each is closer (measured 0.45 and 0.09 mm; 0.92 and 1.26 mm
    without)."""
    base, gtv = phantom_5mm
    scene = needle_implant_scene(gtv, base.geometry, rng=1, clusters=False, avoid_lung=base.hu)
    post = render_postop_ct(base, scene, rng=3)
    truth = scene.seeds_mm
    zyx = base.geometry.world_to_zyx(truth)
    d_inplane = np.hypot(*(zyx[:, None, 1:] - zyx[None, :, 1:]).transpose(2, 0, 1))
    dz = np.abs(zyx[:, None, 0] - zyx[None, :, 0])
    stacked = np.flatnonzero(((d_inplane < 3.0) & (dz > 1.0) & (dz < 2.2)).any(axis=1))
    assert len(stacked) >= 2  # the case is in the scene
    normal = np.asarray(base.geometry.slice_normal())

    def slice_axis_errors_mm() -> np.ndarray:
        found = detect_seeds(post, expected=len(truth)).positions_mm
        r, c = _gated_match(truth, found)
        assert len(r) == len(truth) and len(found) == len(truth)
        by_truth = dict(zip(r.tolist(), c.tolist(), strict=True))
        return np.array([abs((found[by_truth[i]] - truth[i]) @ normal) for i in stacked])

    refit = slice_axis_errors_mm()
    monkeypatch.setattr(thick_model, "COLUMN_REFIT", False)
    placed_by_slices = slice_axis_errors_mm()
    assert refit.max() < 0.65
    assert placed_by_slices.min() > 0.9
    assert np.all(refit < placed_by_slices - 0.3)
