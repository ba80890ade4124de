"""5 mm detection: a seed in lung beside its needle row (issue 13).

On 5 mm slices a seed in lung straddling two slices reads ≈ −100 HU, under the HU floor of the
candidates; planner/postop/detection/lung_seeds.py finds it beside the seeds found by fitting one
seed's image to what their images leave. The scene is small: soft tissue with a block of lung in one
corner, seeds rendered through the scanner model of planner/postop/synthetic.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import planner.postop.detection.detect as detect
import planner.postop.detection.thick_model as thick_model
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.postop.synthetic import PostopScene, render_postop_ct

SLICE_MM = 5.0
PIXEL_MM = 0.78125
LUNG_FROM_MM = 50.0  # lung where x and y are both beyond this


def _matched(truth: np.ndarray, found: np.ndarray, gate_mm: float = 2.5) -> int:
    d = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(np.where(d < gate_mm, d, 1e6))
    return int((d[r, c] < gate_mm).sum())


def _the_seed_gained(truth: np.ndarray, found: np.ndarray, without: np.ndarray) -> np.ndarray:
    """The one seed ``found`` has that ``without`` (the detection with a rule off) lacks,
    after asserting it is one true seed more and no false seed more."""
    assert _matched(truth, found) == _matched(truth, without) + 1
    assert len(found) - _matched(truth, found) <= len(without) - _matched(truth, without)
    gained = [p for p in found if np.linalg.norm(without - p, axis=1).min() > 2.5]
    assert len(gained) == 1
    return gained[0]


@pytest.fixture(scope="module")
def lung_ct():
    """Four isolated in-plane seeds in tissue and a needle row along y at x = 62 mm: two seeds
    in tissue, the third 6 mm into the lung, all between two slices (z = 27.5 mm)."""
    geo = GridGeometry((14, 112, 112), np.zeros(3), np.array([PIXEL_MM, PIXEL_MM, SLICE_MM]))
    hu = np.full(geo.shape_zyx, 40, dtype=np.int16)
    edge = round(LUNG_FROM_MM / PIXEL_MM)
    hu[:, edge:, edge:] = -800
    isolated = [(20.0, 20.0, 21.0), (40.0, 20.0, 33.0), (20.0, 40.0, 41.0), (20.0, 62.0, 26.0)]
    row = [(62.0, 36.0, 27.5), (62.0, 45.0, 27.5), (62.0, 56.0, 27.5)]
    seeds = np.array(isolated + row)
    axes = np.array([[1.0, 0.0, 0.0]] * len(isolated) + [[0.0, 1.0, 0.0]] * len(row))
    scene = PostopScene(seeds, axes, noise_sd_hu=10.0, streak_hu=0.0)
    return render_postop_ct(CTVolume(hu, geo), scene, rng=5), scene


def test_the_seed_in_lung_is_found(lung_ct, monkeypatch) -> None:
    """All seven seeds within 2.5 mm, none false; without the lung step the seed in lung is
    missed (the test can fail)."""
    ct, scene = lung_ct
    in_lung = scene.seeds_mm[-1]
    k, j, i = np.rint(ct.geometry.world_to_zyx(in_lung[None])[0]).astype(int)
    assert ct.hu[k - 1 : k + 2, j - 3 : j + 4, i - 3 : i + 4].max() < 250  # under the floor
    result = detect.detect_seeds(ct)
    assert _matched(scene.seeds_mm, result.positions_mm) == len(scene.seeds_mm), result.summary()
    assert len(result.positions_mm) == len(scene.seeds_mm), result.summary()
    monkeypatch.setattr(thick_model, "LUNG_SEEDS", False)
    without = detect.detect_seeds(ct).positions_mm
    assert _matched(scene.seeds_mm, without) == len(scene.seeds_mm) - 1
    assert np.min(np.linalg.norm(without - in_lung, axis=1)) > 5.0


def test_lung_without_seeds_gives_none(lung_ct) -> None:
    """The same lung and tissue with only the seeds in tissue: nothing is found in the lung.
    (The lung vessel that fits like a seed, a branching tree of the phantom crossing a slice,
    is in the dense case of tests/test_detect_thick_slices.py, which fails without the width
    test of planner/postop/detection/lung_seeds.py.)"""
    ct, scene = lung_ct
    tissue_only = PostopScene(scene.seeds_mm[:-1], scene.axes[:-1], noise_sd_hu=10.0, streak_hu=0.0)
    hu = np.full(ct.geometry.shape_zyx, 40, dtype=np.int16)
    edge = round(LUNG_FROM_MM / PIXEL_MM)
    hu[:, edge:, edge:] = -800
    found = detect.detect_seeds(render_postop_ct(CTVolume(hu, ct.geometry), tissue_only, rng=5))
    assert len(found.positions_mm) == len(tissue_only.seeds_mm)
    assert _matched(tissue_only.seeds_mm, found.positions_mm) == len(tissue_only.seeds_mm)


def test_freehand_seeds_in_lung_on_the_disc_tophat(monkeypatch) -> None:
    """A freehand implant of the benchmark (5 mm, rng 8: needle trains running into lung):
    the lung fit on the HU above a disc opening finds seeds in lung that the same fit on the
    in-plane excess of the line openings (which take a train, or a seed touching tissue, for a
    line: 0.4 of a seed's amplitude) misses, without more false seeds. The test fails with the
    line openings' data."""
    import planner.postop.detection.lung_seeds as lung_seeds
    from planner.demo.phantom import generate_phantom
    from planner.postop.freehand_scene import freehand_implant_scene
    from planner.postop.synthetic import reslice_thick

    ph = generate_phantom(n_slices=40)
    base, gtv = reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], SLICE_MM)
    scene = freehand_implant_scene(gtv, base.geometry, rng=8)
    ct = render_postop_ct(base, scene, rng=108)
    kji = np.rint(base.geometry.world_to_zyx(scene.seeds_mm)).astype(int)
    in_lung = base.hu[tuple(kji.T)] < -500
    assert in_lung.sum() >= 3

    def score(found: np.ndarray) -> tuple[int, int]:
        return _matched(scene.seeds_mm[in_lung], found), len(found) - _matched(
            scene.seeds_mm, found
        )

    lung_found, false = score(detect.detect_seeds(ct, expected=len(scene.seeds_mm)).positions_mm)
    monkeypatch.setattr(
        lung_seeds,
        "disc_tophat",
        lambda block, radius_px: _inplane_excess_like(block, float(ct.geometry.spacing_mm[0])),
    )
    lines = detect.detect_seeds(ct, expected=len(scene.seeds_mm)).positions_mm
    lung_found_lines, false_lines = score(lines)
    assert lung_found >= lung_found_lines + 2
    assert false <= false_lines


def _inplane_excess_like(block: np.ndarray, pixel_mm: float) -> np.ndarray:
    """``block`` above its in-plane line openings (what the candidates' excess measures)."""
    from planner.postop.detection.thick_slices import compact_excess

    return compact_excess(block.astype(np.float32), pixel_mm)[1]


def test_a_lung_seed_end_to_end_with_its_train(monkeypatch) -> None:
    """A needle row of in-plane seeds 5.8 mm apart (1.3 mm gaps) whose last seed lies 5 mm into
    lung, all between two slices: the seed in lung is found although it lies nearer its found
    neighbour (5.8 mm) than the residual's 6.5 mm; with the lung step held to 6.5 mm it is
    missed (the test can fail)."""
    import planner.postop.detection.lung_seeds as lung_seeds

    geo = GridGeometry((14, 112, 112), np.zeros(3), np.array([PIXEL_MM, PIXEL_MM, SLICE_MM]))
    hu = np.full(geo.shape_zyx, 40, dtype=np.int16)
    hu[:, round(LUNG_FROM_MM / PIXEL_MM) :, :] = -820  # lung beyond y = 50 mm
    isolated = [(20.0, 20.0, 21.0), (40.0, 20.0, 33.0), (60.0, 25.0, 41.0), (80.0, 22.0, 26.0)]
    row = [(40.0, 55.0 - 5.8 * n, 27.5) for n in range(4)]
    seeds = np.array(isolated + row)
    axes = np.array([[1.0, 0.0, 0.0]] * len(isolated) + [[0.0, 1.0, 0.0]] * len(row))
    scene = PostopScene(seeds, axes, noise_sd_hu=10.0, streak_hu=0.0)
    ct = render_postop_ct(CTVolume(hu, geo), scene, rng=6)
    found = detect.detect_seeds(ct).positions_mm
    assert _matched(seeds, found) == len(seeds) and len(found) == len(seeds)
    monkeypatch.setattr(lung_seeds, "LUNG_MIN_DISTANCE_MM", 6.5)
    rule = replace(lung_seeds.SEED_RULE, spot_min_distance_mm=6.5)
    monkeypatch.setattr(lung_seeds, "SEED_RULE", rule)
    held = detect.detect_seeds(ct).positions_mm
    assert _matched(seeds, held) == len(seeds) - 1
    assert np.min(np.linalg.norm(held - seeds[4], axis=1)) > 5.0  # the one in lung


def test_a_faint_seed_in_lung_as_sharp_as_a_seed_is_found(monkeypatch) -> None:
    """Freehand rng 107 (5 mm, the planning CT's bone out): a seed in lung 9 mm from the next
    seed found fits at 0.82 of a seed's amplitude, just under ``MIN_AMPLITUDE_FRACTION``; its
    image is sharper than a vessel's (the line twice as wide leaves 1.5 times the misfit), so
    it is a seed (``SHARP_AMPLITUDE_FRACTION``). Held to the amplitude alone it is missed, and
    the rule adds no false seed. (Measured before step 5a, ``SLICE_AXIS_REFINE``, which is off
    here: with its neighbours placed along the slice axis by it, this seed fits above 0.82; the
    rule still finds 4 seeds of the 5 mm sets that step 5a does not — freehand 1, held-out 2,
    validation 1.)"""
    # This rule alone: the second look where seeds are missing finds the seed too.
    monkeypatch.setattr(detect, "LUNG_WHERE_MISSING", False)
    import planner.postop.detection.lung_seeds as lung_seeds
    import planner.postop.detection.thick_model as thick_model
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=107, render_rng=207)
    scene, ct, bone, base = case.scene, case.ct, case.bone_hu(), case.base
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    monkeypatch.setattr(thick_model, "SLICE_AXIS_REFINE", False)
    sharp = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    rule = replace(lung_seeds.SEED_RULE, sharp_amplitude_fraction=lung_seeds.MIN_AMPLITUDE_FRACTION)
    monkeypatch.setattr(lung_seeds, "SEED_RULE", rule)
    plain = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    assert _matched(truth, sharp) >= _matched(truth, plain) + 1
    assert len(sharp) - _matched(truth, sharp) <= len(plain) - _matched(truth, plain)
    # The seed gained lies in lung, far from every seed found without the rule.
    gained = [p for p in sharp if np.linalg.norm(plain - p, axis=1).min() > 2.5]
    assert len(gained) == 1
    k = np.rint(base.geometry.world_to_zyx(np.asarray(gained)))[0].astype(int)
    assert np.linalg.norm(truth - gained[0], axis=1).min() < 1.0
    assert ct.hu[tuple(k)] < 1000  # faint: a seed in lung on 5 mm slices


def test_an_uncertain_seed_beside_lung_is_placed_along_the_slice_axis_on_the_disc_tophat(
    monkeypatch,
) -> None:
    """Validation scene clusters+lung rng 12 (5 mm, the planning CT's bone out): a seed 1.6 mm
    below its slice's centre, beside lung, was placed 1.9 mm above it by the fits on the line
    openings' excess (3.4 mm off: missed, and a false seed). Placed along the slice axis on the
    HU above a disc opening (``thick_model.SLICE_AXIS_BESIDE_LUNG``) it is found, and no seed
    is lost."""
    from benchmarks.bench_detect import _registration_error, _resample_z
    from planner.demo.phantom import generate_phantom
    from planner.postop.synthetic import needle_implant_scene
    from planner.postop.verify import detect_with_bone_prior

    phantom = generate_phantom(n_slices=40)
    planning = CTVolume(phantom.hu, phantom.geometry)
    base, gtv = _resample_z(phantom, SLICE_MM)
    scene = needle_implant_scene(gtv, base.geometry, rng=12)
    ct = render_postop_ct(base, scene, rng=14)
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    normal = np.asarray(ct.geometry.slice_normal())

    def detect_now() -> np.ndarray:
        return detect_with_bone_prior(
            planning, ct, _registration_error(), n, None, None, None
        ).positions_mm

    placed = detect_now()
    monkeypatch.setattr(thick_model, "SLICE_AXIS_BESIDE_LUNG", False)
    before = detect_now()
    assert _matched(truth, placed) >= _matched(truth, before) + 1
    assert len(placed) - _matched(truth, placed) <= len(before) - _matched(truth, before) - 1
    # The seed gained: off along the slice axis before, found now.
    d_before = np.linalg.norm(truth[:, None] - before[None], axis=-1).min(axis=1)
    d_placed = np.linalg.norm(truth[:, None] - placed[None], axis=-1).min(axis=1)
    gained = np.flatnonzero((d_before > 2.5) & (d_placed < 2.5))
    assert len(gained) >= 1
    k = int(gained[0])
    was = before[np.argmin(np.linalg.norm(before - truth[k], axis=1))]
    assert abs((was - truth[k]) @ normal) > 2.5  # off along the slice axis, not across it


def test_an_isolated_seed_in_lung_with_lung_structure_in_its_box_is_found(monkeypatch) -> None:
    """Held-out clusters+lung rng 6 (5 mm, the planning CT's bone out): a seed in lung 9.5 mm
    from the next seed reads 378 HU at its centre; one seed's image fits it at 0.93 of a
    seed's amplitude, as sharp as a seed (the wider line fits worse), but explains only 0.52
    of the box's variance (lung edges in the box). ``MIN_R2`` 0.4 takes it (0.55 missed it);
    no seed is lost and no false seed added. (With the planning CT's lung vessels out too,
    ``bone_prior.LUNG_VESSELS``, the lung structure leaves the box and either threshold takes
    it: the rule is for what the prior does not hold, seen here with the bone alone out.)"""
    # This rule alone: the second look where seeds are missing finds the seed too.
    monkeypatch.setattr(detect, "LUNG_WHERE_MISSING", False)
    import planner.postop.detection.bone_prior as bone_prior
    import planner.postop.detection.lung_seeds as lung_seeds
    from tests.postop_builders import resampled_scene

    case = resampled_scene("needles", rng=6, render_rng=8)
    with_vessels = case.bone_hu()
    monkeypatch.setattr(bone_prior, "LUNG_VESSELS", False)
    scene, ct, bone, base = case.scene, case.ct, case.bone_hu(), case.base
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    found = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    monkeypatch.setattr(lung_seeds, "SEED_RULE", replace(lung_seeds.SEED_RULE, min_r2=0.55))
    strict = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    gained = _the_seed_gained(truth, found, strict)
    d = np.linalg.norm(truth - gained, axis=1)
    assert d.min() < 1.0 and np.sort(np.linalg.norm(truth - truth[d.argmin()], axis=1))[1] > 9.0
    k = np.rint(base.geometry.world_to_zyx(gained[None]))[0].astype(int)
    assert ct.hu[tuple(k)] < 600  # faint: a seed in lung on 5 mm slices
    # With the vessels out the strict threshold finds it too.
    vessels_out = detect.detect_seeds(ct, expected=n, bone_hu=with_vessels).positions_mm
    assert np.linalg.norm(vessels_out - gained, axis=1).min() < 1.0


def test_a_seed_in_lung_shared_by_two_slices_is_found_when_its_fit_is_sharp(monkeypatch) -> None:
    """Freehand rng 10 (5 mm, the planning CT's bone out): a seed in lung 8 mm from the next
    seed, half in each of two slices, reads 101 HU at its centre and peaks at 277 HU of
    in-plane excess (271 on the other slice). Spots from ``FAINT_PEAK_HU`` (250 HU) up are
    fitted, taken only where the fit is as sharp as a seed's (found: 0.76 of a seed, R² 0.81).
    Searched from 500 HU it is missed and the post-op D90 reads 2.7 % low (−0.8 % with it);
    no false seed is added (from 250 HU without the sharpness condition a held-out grid
    gained one, R² 0.41)."""
    import planner.postop.detection.lung_seeds as lung_seeds
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=10, render_rng=110)
    scene, ct, bone, base = case.scene, case.ct, case.bone_hu(), case.base
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    found = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    monkeypatch.setattr(lung_seeds, "FAINT_PEAK_HU", lung_seeds.MIN_PEAK_HU)
    bright_only = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    gained = _the_seed_gained(truth, found, bright_only)
    assert np.linalg.norm(truth - gained, axis=1).min() < 1.0
    k = np.rint(base.geometry.world_to_zyx(gained[None]))[0].astype(int)
    assert ct.hu[tuple(k)] < 800  # faint: a seed in lung on 5 mm slices


def test_a_seed_in_lung_a_slice_beside_a_brighter_seed_is_found(monkeypatch) -> None:
    """Freehand rng 209 (5 mm, the planning CT's bone out): a seed in lung (−800 HU about it)
    halfway between two slices peaks at about 980 HU of in-plane excess, and a found seed in
    the tissue of the next slice at 1300 HU: the lung step's spots are the maxima of what the
    found seeds' images leave (``SPOTS_ON_RESIDUAL``), where it is one; on the excess itself
    it is none, and the seed is missed."""
    # This rule alone: the second look where seeds are missing finds the seed too.
    monkeypatch.setattr(detect, "LUNG_WHERE_MISSING", False)
    import planner.postop.detection.lung_seeds as lung_seeds
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=209, render_rng=309)
    scene, ct, bone, base = case.scene, case.ct, case.bone_hu(), case.base
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    found = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    monkeypatch.setattr(lung_seeds, "SPOTS_ON_RESIDUAL", False)
    on_excess = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    gained = _the_seed_gained(truth, found, on_excess)
    assert np.linalg.norm(truth - gained, axis=1).min() < 1.5
    k = np.rint(base.geometry.world_to_zyx(gained[None]))[0].astype(int)
    assert base.hu[k[0], k[1] - 3 : k[1] + 4, k[2] - 3 : k[2] + 4].mean() < -500  # in lung
    assert ct.hu[tuple(k)] < 600  # faint on these slices


def _fit(amplitude: float, r2: float, wide: float, faint: bool, lung: float):
    from planner.postop.detection.lung_seeds import LungFit, LungSeed

    seed = LungSeed(np.zeros(3), np.array([0.0, 0.0, 1.0]), amplitude, r2)
    return LungFit(seed, wide, faint, lung)


def test_the_where_missing_rule_is_looser_than_the_seed_rule_but_still_rejects_vessels() -> None:
    """Fits measured on the 5 mm freehand scenes rng 0–323: the seeds in lung the seed rule
    missed (rng 200 at a pleural edge, lung fraction 0.14; rng 218, R² 0.37; rng 309, a faint
    spot not quite sharp) pass the where-missing rule; the fits of no seed there (amplitude
    0.45–0.54 of a seed) and a band wider than a seed (a vessel) pass neither."""
    from planner.postop.detection.lung_seeds import SEED_RULE, WHERE_MISSING_RULE

    missed = [
        _fit(0.73, 0.69, 1.95, False, 0.14),
        _fit(0.79, 0.37, 1.19, False, 0.22),
        _fit(0.70, 0.53, 1.42, True, 0.27),
    ]
    no_seed = [_fit(0.54, 0.29, 1.03, True, 0.15), _fit(0.47, 0.41, 1.15, False, 0.07)]
    vessel = _fit(0.95, 0.70, 0.9, False, 0.6)
    assert not any(SEED_RULE.accepts(f) for f in missed)
    assert all(WHERE_MISSING_RULE.accepts(f) for f in missed)
    for rule in (SEED_RULE, WHERE_MISSING_RULE):
        assert not any(rule.accepts(f) for f in [*no_seed, vessel])
    assert SEED_RULE.accepts(_fit(0.9, 0.5, 1.2, False, 0.3))  # a whole seed in lung


def test_a_seed_at_a_pleural_edge_is_found_where_the_count_says_one_is_missing(
    monkeypatch,
) -> None:
    """Freehand rng 200 (5 mm, the planning CT's bone out): a seed at the pleura, where only
    0.14 of the lung step's box is lung (it looks where ≥ 0.2 is), is missed by the seed rule
    and found by the looser rule the detection applies at its end while the expected count
    says a seed is missing (``LUNG_WHERE_MISSING``), with no false seed; the detection says
    so."""
    from tests.postop_builders import resampled_scene

    case = resampled_scene("freehand", rng=200, render_rng=300)
    scene, ct, bone = case.scene, case.ct, case.bone_hu()
    truth, n = scene.seeds_mm, len(scene.seeds_mm)
    result = detect.detect_seeds(ct, expected=n, bone_hu=bone)
    monkeypatch.setattr(detect, "LUNG_WHERE_MISSING", False)
    without = detect.detect_seeds(ct, expected=n, bone_hu=bone).positions_mm
    gained = _the_seed_gained(truth, result.positions_mm, without)
    assert np.linalg.norm(truth - gained, axis=1).min() < 1.5
    assert any("in lung added by a looser fit" in m for m in result.messages)
