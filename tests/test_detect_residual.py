"""5 mm detection: seeds found in what the found seeds leave unexplained (issue 13).

On 5 mm slices the 3-slice opening takes seeds of one column (needle rows 8 mm apart) for bone:
two of them become one blob, one seed between them, or a seed between two found ones has no
slice maximum of its own. planner/postop/detection/residual.py splits the first (``stacked_pairs``)
and finds the second (``unexplained_seeds``) in the residual of the found seeds' model images. The
scenes are small: soft tissue with seeds rendered through the scanner model of
planner/postop/synthetic.py, and a cortical ring (the curved end of a small bone, which no
straight line opening removes) beside the seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import planner.postop.detection.detect as detect
import planner.postop.detection.thick_model as thick_model
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume
from planner.postop.detection.residual import stacked_pairs, unexplained_seeds
from planner.postop.detection.thick_slices import compact_excess
from planner.postop.synthetic import PostopScene, render_postop_ct

SLICE_MM = 5.0
PIXEL_MM = 0.78125


def _geometry(shape_zyx=(14, 112, 112)) -> GridGeometry:
    return GridGeometry(shape_zyx, np.zeros(3), np.array([PIXEL_MM, PIXEL_MM, SLICE_MM]))


def _tissue(geo: GridGeometry) -> CTVolume:
    return CTVolume(np.full(geo.shape_zyx, 40, dtype=np.int16), geo)


def _column_scene() -> PostopScene:
    """Four isolated in-plane seeds and a column of three, 8 mm apart along the slice axis
    (the outer two at slice centres, the middle one between slices: no slice maximum of its
    own)."""
    x_axis = np.array([1.0, 0.0, 0.0])
    isolated = [(20.0, 20.0, 21.0), (68.0, 20.0, 33.0), (20.0, 68.0, 41.0), (68.0, 68.0, 27.0)]
    column = [(44.0, 44.0, 20.0), (44.0, 44.0, 28.0), (44.0, 44.0, 36.5)]
    seeds = np.array(isolated + column)
    return PostopScene(seeds, np.tile(x_axis, (len(seeds), 1)), noise_sd_hu=10.0, streak_hu=0.0)


def _matched(truth: np.ndarray, found: np.ndarray, gate_mm: float = 2.5) -> int:
    if len(found) == 0:
        return 0
    d = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    r, c = linear_sum_assignment(np.where(d < gate_mm, d, 1e6))
    return int((d[r, c] < gate_mm).sum())


@pytest.fixture(scope="module")
def column_ct():
    geo = _geometry()
    scene = _column_scene()
    return render_postop_ct(_tissue(geo), scene, rng=4), scene


def test_every_seed_of_a_column_is_found(column_ct, monkeypatch) -> None:
    """All seven seeds found within 2.5 mm, none false. Without splitting stacked pairs the
    upper two seeds of the column are one seed between them (the test can fail)."""
    ct, scene = column_ct
    result = detect.detect_seeds(ct)
    found = result.positions_mm
    assert _matched(scene.seeds_mm, found) == len(scene.seeds_mm), result.summary()
    assert len(found) == len(scene.seeds_mm), result.summary()
    monkeypatch.setattr(thick_model, "STACKED_PAIRS", False)
    without = detect.detect_seeds(ct).positions_mm
    assert _matched(scene.seeds_mm, without) == len(scene.seeds_mm) - 2
    assert len(without) == len(scene.seeds_mm) - 1


def test_stacked_pairs_splits_only_the_merged_seed(column_ct) -> None:
    """The upper two seeds of the column given as one seed between them: split into two within
    1 mm of the true centres; the isolated seeds and the lowest seed of the column stay
    whole."""
    ct, scene = column_ct
    inplane, usable = _excess_and_usable(ct)
    merged = 0.5 * (scene.seeds_mm[5] + scene.seeds_mm[6])
    seeds = np.vstack([scene.seeds_mm[:5], merged])
    axes = scene.axes[:6]
    pairs = stacked_pairs(inplane, usable, ct.geometry, seeds, axes, np.arange(len(seeds)))
    assert list(pairs) == [5]
    err = np.linalg.norm(np.sort(pairs[5], axis=0) - np.sort(scene.seeds_mm[5:7], axis=0), axis=1)
    assert err.max() < 1.0, err


def _excess_and_usable(ct: CTVolume):
    _, inplane = compact_excess(ct.hu.astype(np.float32), PIXEL_MM)
    return inplane, ct.hu >= 250


def test_unexplained_seeds_finds_the_one_left_out(column_ct) -> None:
    """Given every seed but the middle one of the column (true centres and axes: it lies
    between slices, between two found seeds 8 mm away), the residual holds exactly that one,
    placed within 1.5 mm of it."""
    ct, scene = column_ct
    inplane, usable = _excess_and_usable(ct)
    keep = np.ones(len(scene.seeds_mm), dtype=bool)
    keep[5] = False
    more = unexplained_seeds(inplane, usable, ct.geometry, scene.seeds_mm[keep], scene.axes[keep])
    assert len(more) == 1
    assert np.linalg.norm(more[0].position_mm - scene.seeds_mm[5]) < 1.5
    assert 0.5 < more[0].seed_fraction < 1.6
    # Every seed given: nothing is left to explain.
    assert unexplained_seeds(inplane, usable, ct.geometry, scene.seeds_mm, scene.axes) == []


def _ring(hu: np.ndarray, geo: GridGeometry, centre_xy, radius_mm: float, value: float) -> None:
    """A cortical ring (``value`` HU, 1.2 mm thick) about ``centre_xy`` (mm) on every slice."""
    jj, ii = np.mgrid[0 : hu.shape[1], 0 : hu.shape[2]]
    r = np.hypot(ii * PIXEL_MM - centre_xy[0], jj * PIXEL_MM - centre_xy[1])
    hu[:, np.abs(r - radius_mm) < 0.6] = value


def test_a_cortical_ring_beside_the_seeds_is_not_a_seed() -> None:
    """A small ring of 1000 HU cortex (4 mm radius) 12 mm from a seed leaves a residual the
    size of a seed or more, but spread over the footprint: no seed is reported there."""
    geo = _geometry()
    base = _tissue(geo)
    hu = base.hu.copy()
    _ring(hu, geo, (44.0, 56.0), 4.0, 1000.0)
    scene = _column_scene()
    ct = render_postop_ct(CTVolume(hu, geo), scene, rng=5)
    inplane, usable = _excess_and_usable(ct)
    ring_excess = inplane[:, 66:78, 50:64]
    assert ring_excess.max() > 700.0  # the line openings leave the ring: the case is real
    more = unexplained_seeds(inplane, usable, geo, scene.seeds_mm, scene.axes)
    assert more == []


def test_a_residual_seed_is_placed_by_the_image_model(column_ct) -> None:
    """A seed found in the residual starts where its residual's centroid put it (here 2.5 mm
    off along the slice axis and 1 mm in-plane, as on the grid scenes, where it was up to
    3.5 mm off); fitting its image with every other seed held fixed puts it within 0.7 mm of
    the true centre. The other seeds do not move."""
    from planner.postop.detection.residual import ModelledSeeds
    from planner.postop.detection.results import DetectedSeed
    from planner.postop.detection.thick_fit import FitContext
    from planner.postop.detection.thick_slices import thick_components

    ct, scene = column_ct
    exclude = np.zeros(ct.hu.shape, dtype=bool)
    _, inplane, labels, *_ = thick_components(ct, exclude, None)
    ctx = FitContext.build(ct, inplane, labels, exclude)
    data = np.where(ct.hu >= 250, np.maximum(inplane, 0.0), 0.0).astype(np.float32)
    amplitude = ModelledSeeds(data, ct.geometry, scene.seeds_mm, scene.axes).amplitude
    seeds = [
        DetectedSeed(tuple(p), tuple(a), 0.9, 1, 1 + n)
        for n, (p, a) in enumerate(zip(scene.seeds_mm, scene.axes, strict=True))
    ]
    start = scene.seeds_mm[5] + np.array([1.0, 0.0, 2.5])
    seeds[5] = DetectedSeed(tuple(start), (1.0, 0.0, 0.0), 0.3, 1, 0)
    placed = thick_model.place_residual_seeds(seeds, ctx, amplitude)
    assert np.linalg.norm(np.array(placed[5].position_mm) - scene.seeds_mm[5]) < 0.7
    for n in (0, 1, 2, 3, 4, 6):
        assert placed[n] == seeds[n]


def test_the_search_box_gives_what_the_whole_grid_gives(column_ct) -> None:
    """The residual search works in the box about the found seeds: on the same CT embedded
    in a grid four times wider (the same voxels at the same LPS positions, tissue around), it
    finds the same seed at the same place."""
    ct, scene = column_ct
    inplane, usable = _excess_and_usable(ct)
    pad = 64
    wide = GridGeometry(
        (ct.hu.shape[0], ct.hu.shape[1] + 2 * pad, ct.hu.shape[2] + 2 * pad),
        ct.geometry.origin_mm - pad * PIXEL_MM * np.array([1.0, 1.0, 0.0]),
        ct.geometry.spacing_mm,
    )
    inplane_wide = np.zeros(wide.shape_zyx, dtype=np.float32)
    usable_wide = np.zeros(wide.shape_zyx, dtype=bool)
    inplane_wide[:, pad:-pad, pad:-pad], usable_wide[:, pad:-pad, pad:-pad] = inplane, usable
    keep = np.ones(len(scene.seeds_mm), dtype=bool)
    keep[5] = False
    args = (scene.seeds_mm[keep], scene.axes[keep])
    small = unexplained_seeds(inplane, usable, ct.geometry, *args)
    large = unexplained_seeds(inplane_wide, usable_wide, wide, *args)
    assert len(small) == len(large) == 1
    assert np.allclose(small[0].position_mm, large[0].position_mm, atol=1e-3)
    assert np.linalg.norm(large[0].position_mm - scene.seeds_mm[5]) < 1.5
