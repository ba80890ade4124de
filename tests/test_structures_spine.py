"""Spine helpers on the demo CT (planner.structures.spine): canal and cord grown from one
click vs the ground-truth masks, bone by threshold, and the usual PTV."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dose.errors import InputError
from planner.demo.case import load_demo_masks
from planner.imaging.ct_loader import load_ct
from planner.structures.patch import apply_patch
from planner.structures.spine import bone_by_threshold, grow_canal, grow_cord, make_ptv
from tests.conftest import shared_demo_case


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo CT and its ground-truth masks (the run's shared demo case)."""
    case = shared_demo_case(tmp_path_factory)
    ct, _ = load_ct(case / "ct")
    masks = {k: v.voxels for k, v in load_demo_masks(case, ct.geometry).items()}
    ct.hu.setflags(write=False)
    return {"ct": ct, "geometry": ct.geometry, "masks": masks}


def _click_in(mask: np.ndarray, geometry, k: int) -> np.ndarray:
    """LPS mm of the centroid of ``mask`` in slice k (a click in the middle of it)."""
    return geometry.zyx_to_world(np.r_[k, np.argwhere(mask[k]).mean(axis=0)])


@pytest.mark.parametrize(
    ("k", "offset_mm"),
    [(5, (0, 0, 0)), (25, (0, 0, 0)), (10, (4, 0, 0)), (30, (0, -4, 0)), (40, (3, 4, 0))],
    ids=["T7", "T9-tumour", "T8-4mm-left", "T9-4mm-anterior", "T10-off-centre"],
)
def test_canal_from_one_click_matches_the_ground_truth(
    demo: dict, k: int, offset_mm: tuple[float, float, float]
) -> None:
    """Clicks at the canal's centre and up to 5 mm off it (a user's click is not central)."""
    g, truth = demo["geometry"], demo["masks"]["SpinalCanal"]
    empty = np.zeros(g.shape_zyx, bool)
    progress: list[float] = []
    click = _click_in(truth, g, k) + np.asarray(offset_mm, float)
    assert truth[tuple(np.rint(g.world_to_zyx(click)).astype(int))]
    patch = grow_canal(empty, g, demo["ct"].hu, click, progress=lambda f, _m: progress.append(f))
    canal = apply_patch(empty, patch)
    assert _dice(canal, truth) >= 0.9
    # It follows the canal through every slice, across discs, foramina and the lytic T9.
    assert canal.any(axis=(1, 2)).sum() == g.shape_zyx[0]
    assert canal.sum() == pytest.approx(truth.sum(), rel=0.15)
    assert progress and max(progress) <= 1.0


def test_canal_click_on_bone_or_outside_is_refused(demo: dict) -> None:
    g, hu = demo["geometry"], demo["ct"].hu
    empty = np.zeros(g.shape_zyx, bool)
    body = demo["masks"]["VertebralBody"]
    bone_voxel = np.argwhere(body & (hu > 400))[0]
    with pytest.raises(InputError, match="on bone"):
        grow_canal(empty, g, hu, g.zyx_to_world(bone_voxel))
    with pytest.raises(InputError, match="outside the CT volume"):
        grow_canal(empty, g, hu, (0.0, 0.0, 500.0))


def test_cord_from_one_click_is_a_starting_contour(demo: dict) -> None:
    """Away from the compression the cord is found well; at T9 it is bridged (check it)."""
    g, masks = demo["geometry"], demo["masks"]
    truth = masks["SpinalCord"]
    empty = np.zeros(g.shape_zyx, bool)
    cord = apply_patch(
        empty,
        grow_cord(empty, g, demo["ct"].hu, _click_in(truth, g, 5), canal=masks["SpinalCanal"]),
    )
    assert _dice(cord, truth) >= 0.8
    assert not np.any(cord & ~masks["SpinalCanal"])
    far = np.r_[0:15, 36:52]  # slices away from the compression (T9 at slices 19-32)
    assert _dice(cord[far], truth[far]) >= 0.85


def test_bone_by_threshold(demo: dict) -> None:
    g, hu, masks = demo["geometry"], demo["ct"].hu, demo["masks"]
    empty = np.zeros(g.shape_zyx, bool)
    bone = apply_patch(empty, bone_by_threshold(empty, g, hu, hu_min=200.0))
    raw = (hu >= 200) & (hu <= 3071)
    assert not np.any(bone & ~raw)
    # Only specks were dropped (each < 50 mm³), and most of the intact T9 body is bone.
    labels, _ = ndimage.label(raw & ~bone)
    sizes = np.bincount(labels.ravel())[1:] * g.voxel_volume_mm3
    assert sizes.size == 0 or sizes.max() < 50.0
    body = masks["VertebralBody"] & ~masks["GTV"]
    assert (bone & body).sum() / body.sum() > 0.75
    assert (bone & masks["SpinalCanal"]).sum() == 0
    with pytest.raises(InputError, match="hu_min <= hu_max"):
        bone_by_threshold(empty, g, hu, hu_min=500, hu_max=100)


def test_ptv_is_gtv_plus_5_mm_minus_cord_plus_2_mm(demo: dict) -> None:
    g, masks = demo["geometry"], demo["masks"]
    gtv, cord = masks["GTV"], masks["SpinalCord"]
    empty = np.zeros(g.shape_zyx, bool)
    ptv = apply_patch(
        empty, make_ptv(empty, g, gtv, margin_mm=5.0, avoid=cord, avoid_margin_mm=2.0)
    )
    spacing_zyx = g.spacing_mm[::-1]
    # Independent distances (voxel centre to voxel centre, scipy EDT on the real spacing), in a
    # crop 10 voxels around the GTV and PTV: exact below 7.8 mm, more than enough here.
    from planner.structures.patch import bounding_box, grow_box

    crop = grow_box(bounding_box(gtv | ptv), 10, g.shape_zyx)
    gtv, cord, ptv = gtv[crop], cord[crop], ptv[crop]
    d_cord = ndimage.distance_transform_edt(~cord, sampling=spacing_zyx)
    d_gtv = ndimage.distance_transform_edt(~gtv, sampling=spacing_zyx)
    assert d_cord[ptv].min() >= 2.0  # never touches the cord + 2 mm
    assert d_gtv[ptv].max() <= 5.0 + 1.0  # no farther than the margin (+ voxel tolerance)
    # Everything within 4 mm of the GTV and 3 mm clear of the cord is in the PTV.
    must = (d_gtv <= 4.0) & (d_cord > 3.0)
    assert np.all(ptv[must])
    assert gtv.sum() < ptv.sum() < 4 * gtv.sum()
    with pytest.raises(InputError, match="below one voxel"):
        make_ptv(empty, g, masks["GTV"], margin_mm=0.3)
    with pytest.raises(InputError, match="empty"):
        make_ptv(empty, g, empty)


def test_canal_growing_can_be_cancelled(demo: dict) -> None:
    from dose.progress import Cancelled

    g, truth = demo["geometry"], demo["masks"]["SpinalCanal"]
    empty = np.zeros(g.shape_zyx, bool)
    with pytest.raises(Cancelled):
        grow_canal(empty, g, demo["ct"].hu, _click_in(truth, g, 10), cancel=lambda: True)
    assert not empty.any()
