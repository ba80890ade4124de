"""Thin slices: how many seeds a component holds (planner/postop/detection/detect.py, issue 13).

Rules, each shown on a freehand implant on 2.5 mm slices where it decides, and shown to fail
with the rule off:

* a line-thin blob holds its seeds end to end, so its length bounds their number: a pair end
  to end whose mass rounds to three (the partial volume between them adds mass) is two;
* a seed against the pleura is counted by its voxels above the threshold when its mass, which
  counts the tissue beside it as excess over the lung, says far more: two such seeds measured
  7.5 seeds and were called non-seed metal;
* close parts of a split: two whole seeds side by side stay two, a seed beside bone cut in two
  is one (the pair must fit clearly better than one seed), and a seed's two halves in two
  components are one (``CLOSE_SPLITS``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import planner.postop.detection.detect as detect
from planner.demo.phantom import generate_phantom
from planner.postop.detection.detect import detect_seeds
from planner.postop.freehand_scene import freehand_implant_scene
from planner.postop.synthetic import render_postop_ct, reslice_thick


@pytest.fixture(scope="module")
def base_2_5mm():
    ph = generate_phantom(n_slices=40)
    return reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], 2.5)


def _scene(base_2_5mm, rng: int):
    base, gtv = base_2_5mm
    scene = freehand_implant_scene(gtv, base.geometry, rng=rng)
    return render_postop_ct(base, scene, rng=rng + 100), scene


def _found_false(ct, scene) -> tuple[set[int], int, list[str]]:
    """(indices of the true seeds found within 2.5 mm, false seeds, why metal was excluded)."""
    result = detect_seeds(ct, expected=len(scene.seeds_mm))
    d = np.linalg.norm(scene.seeds_mm[:, None] - result.positions_mm[None], axis=-1)
    r, c = linear_sum_assignment(np.where(d < 2.5, d, 1e6))
    ok = d[r, c] < 2.5
    found = set(int(i) for i in r[ok])
    return found, len(result.positions_mm) - int(ok.sum()), [m.reason for m in result.metal]


def test_a_pair_end_to_end_is_not_split_in_three(base_2_5mm, monkeypatch) -> None:
    ct, scene = _scene(base_2_5mm, 5)
    found, false, _ = _found_false(ct, scene)
    assert len(found) == len(scene.seeds_mm) and false == 0
    monkeypatch.setattr(detect, "LINE_WIDTH_MM", 0.0)  # the length rule off
    found_off, false_off, _ = _found_false(ct, scene)
    assert found_off == found and false_off == 1


def test_seeds_against_the_pleura_are_counted_by_their_core(base_2_5mm, monkeypatch) -> None:
    ct, scene = _scene(base_2_5mm, 3)
    found, false, metal = _found_false(ct, scene)
    pleura = {62, 63}  # two seeds end to end against the lung (their mass: 7.5 seeds)
    assert pleura <= found and len(found) == len(scene.seeds_mm) and false <= 1
    assert not any("as bright as" in why for why in metal)
    monkeypatch.setattr(detect, "MASS_CORE_RATIO", np.inf)  # the core count off
    found_off, _, metal_off = _found_false(ct, scene)
    assert not (pleura & found_off)
    assert any("as bright as" in why for why in metal_off)


# Three rules on 2.5 mm freehand scenes of the check set (rng 100–111), each where it decides:
# (scene, the rule switched off, what the detection does then: a seed missed / a false seed).
CLOSE_SPLITS = {
    # Two seeds side by side 2.9 mm apart, offset 2.1 mm along the slice axis: k-means finds
    # both (1.15 and 1.34 seeds, elongated), the 2.8 mm merge of close splits joined them.
    "side-by-side pair": (
        100,
        ("planner.postop.detection.cluster_split", "WHOLE_PART_FRACTION", 99.0),
    ),
    # A seed beside bone (1.5 seeds of mass) cut in two whole-looking parts: one seed's fit
    # explains its voxels about as well as the pair's, so it is one.
    "seed beside bone": (110, ("planner.postop.detection.thin_fit", "CLOSE_PAIR_TEST", False)),
    # A seed in lung whose two halves (0.56 and 0.44 of a seed) are two components 3 mm apart.
    "seed in two halves": (105, ("planner.postop.detection.duplicates", "HALVES_MM", 0.0)),
}


@pytest.mark.parametrize("case", list(CLOSE_SPLITS))
def test_close_parts_are_counted_as_the_seeds_they_are(base_2_5mm, monkeypatch, case) -> None:
    rng, (module, name, off) = CLOSE_SPLITS[case]
    ct, scene = _scene(base_2_5mm, rng)
    found, false, _ = _found_false(ct, scene)
    assert len(found) == len(scene.seeds_mm) and false == 0
    monkeypatch.setattr(f"{module}.{name}", off)
    found_off, false_off, _ = _found_false(ct, scene)
    if case == "side-by-side pair":
        assert len(found_off) == len(found) - 1 and false_off == 0
    else:
        assert found_off == found and false_off == 1
