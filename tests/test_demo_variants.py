"""Lumbar levels of the phantom (spine_anatomy) and the generated variants (planner.demo.variants).

The default demo phantom must not change (cached demo cases, DICOM UIDs and many tests depend
on it): its spec's repr is pinned here, and its picture by a fingerprint (tests/data): the mean
HU of every 8 × 8 pixel block and each mask's size and centroid. Not its bytes: on an AMD EPYC
(AVX-512, numpy 2.4.6, scipy 1.17.1) the unchanged code gave other bytes than the hash recorded
on an earlier machine (cause not found: with numpy's AVX-512 paths off the bytes are the same;
library builds and CPUs may differ in the last bit of float results). Any real change of the
phantom moves block means by far more than the tolerance (a one-pixel shift: tested).
Variant phantoms are checked at 128² (3.1 mm pixels, 37 slices): quick, and enough to place
the masks.
Reference sizes of lumbar vertebrae (body ~40–50 mm wide, ~30 mm deep, 25–28 mm tall; the
conus at L1–L2) are those given in issue 12's lumbar task.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage as ndi

from dose.errors import InputError
from planner.demo.anatomy import PhantomSpec, default_anatomy, spine_anatomy
from planner.demo.phantom import Phantom, _beyond_levels, generate_phantom
from planner.demo.variants import (
    LEVELS,
    VARIANTS,
    VariantSpec,
    parse_variant,
    variant_phantom,
)

#: Fingerprint of the default phantom at 128² × 6 slices (block means and masks; its "what").
DEFAULT_128X6_FINGERPRINT = Path(__file__).parent / "data" / "default_phantom_128x6.json"
#: Largest change of an 8 × 8 block's mean HU allowed (one voxel's 1 HU moves it by 1/64 HU;
#: the noise alone, SD 12 HU per voxel, gives 1.5 HU per block if its stream changes).
BLOCK_MEAN_TOLERANCE_HU = 0.5


@functools.cache
def _variant(name: str) -> Phantom:
    """Each variant phantom once per session (128²)."""
    return variant_phantom(name, matrix=128)


def _anatomy_z(ph: Phantom) -> NDArray[np.float64]:
    return ph.geometry.axis_coordinates_mm()[2] - ph.spec.patient_offset_mm[2]


def _centroid_anatomy_mm(ph: Phantom, mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    world = ph.geometry.zyx_to_world(np.argwhere(mask).mean(axis=0))
    return np.asarray(world) - np.asarray(ph.spec.patient_offset_mm)


def test_default_phantom_is_unchanged() -> None:
    ph = generate_phantom(n_slices=6, matrix=128)
    ref = json.loads(DEFAULT_128X6_FINGERPRINT.read_text(encoding="utf-8"))
    blocks = ph.hu.astype(np.float64).reshape(6, 16, 8, 16, 8).mean(axis=(2, 4))
    diff = np.abs(blocks - np.asarray(ref["block_mean_hu"]))
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert diff.max() <= BLOCK_MEAN_TOLERANCE_HU, f"block {worst} moved {diff.max():.2f} HU"
    assert (
        set(ph.masks)
        == set(ref["masks"])
        == {
            "GTV",
            "SpinalCord",
            "SpinalCanal",
            "VertebralBody",
        }
    )
    for name, want in ref["masks"].items():
        mask = ph.masks[name]
        assert abs(int(mask.sum()) - want["voxels"]) <= 1, name
        centroid = np.argwhere(mask).mean(axis=0)
        assert np.allclose(centroid, want["centroid_zyx_index"], atol=0.02), name
    # The spec's repr feeds the demo case's DICOM UIDs: unchanged by the new z_centre_mm field.
    assert repr(PhantomSpec()) == (
        "PhantomSpec(matrix=512, fov_mm=400.0, n_slices=52, slice_mm=2.5, noise_sd_hu=12.0, "
        "seed=20240917, patient_offset_mm=(0.0, 0.0, -150.0), table=True)"
    )
    assert "z_centre_mm=-40.0" in repr(PhantomSpec(z_centre_mm=-40.0))


def test_the_phantom_fingerprint_sees_a_one_voxel_shift() -> None:
    """The fingerprint test could fail: the same phantom shifted by one pixel breaks it."""
    ph = generate_phantom(n_slices=6, matrix=128)
    ref = np.asarray(
        json.loads(DEFAULT_128X6_FINGERPRINT.read_text(encoding="utf-8"))["block_mean_hu"]
    )
    shifted = np.roll(ph.hu, 1, axis=2).astype(np.float64)
    blocks = shifted.reshape(6, 16, 8, 16, 8).mean(axis=(2, 4))
    assert np.abs(blocks - ref).max() > 10 * BLOCK_MEAN_TOLERANCE_HU


def test_lumbar_generation_is_deterministic() -> None:
    a = variant_phantom("L2-right-wrap", matrix=64)
    b = variant_phantom("L2-right-wrap", matrix=64)
    np.testing.assert_array_equal(a.hu, b.hu)
    assert (
        set(a.masks)
        == set(b.masks)
        == {
            "GTV",
            "SpinalCord",
            "SpinalCanal",
            "VertebralBody",
            "CaudaEquina",
        }
    )
    for name in a.masks:
        np.testing.assert_array_equal(a.masks[name], b.masks[name])


def test_spine_anatomy_extends_the_demo_spine() -> None:
    demo, full = default_anatomy(), spine_anatomy()
    assert not demo.has_lumbar and full.has_lumbar
    names = [lev.name for lev in full.levels]
    lumbar = ["L1", "L2", "L3", "L4", "L5"]
    assert names == ["T1", "T2", *(lev.name for lev in demo.levels), *lumbar]
    for lev in demo.levels:  # the thoracic bodies are the demo's
        got = full.level(lev.name)
        assert (got.z_mm, got.y_mm, got.height_mm, got.half_width_mm) == (
            lev.z_mm,
            lev.y_mm,
            lev.height_mm,
            lev.half_width_mm,
        )
    for name in ("L1", "L2", "L3"):
        lev = full.level(name)
        assert 40.0 <= 2 * lev.half_width_mm <= 50.0
        assert 28.0 <= 2 * lev.half_depth_mm <= 35.0
        assert 25.0 <= lev.height_mm <= 28.0
        assert lev.canal_half_width_mm > demo.canal_half_width_mm  # wider lumbar canal
    # Caudal order with discs between the bodies; the conus at the L1-L2 disc.
    for upper, lower in zip(full.levels[:-1], full.levels[1:], strict=True):
        gap = (upper.z_mm - upper.height_mm / 2) - (lower.z_mm + lower.height_mm / 2)
        assert 4.9 <= gap <= 10.1, (upper.name, lower.name)
    l1, l2 = full.level("L1"), full.level("L2")
    assert l2.z_mm + l2.height_mm / 2 < full.conus_z_mm < l1.z_mm - l1.height_mm / 2
    assert demo.conus_z_mm == -np.inf


def test_a_slab_beyond_t3_t12_gets_the_whole_spine() -> None:
    low = generate_phantom(PhantomSpec(matrix=64, n_slices=9, z_centre_mm=-150.0))
    assert low.anatomy.has_lumbar and "CaudaEquina" in low.masks
    assert not low.masks["SpinalCord"].any()  # below the conus
    # The demo's slab, and slabs within T3-T12 (e.g. 150 × 1.25 mm), keep the demo's anatomy.
    for spec in (PhantomSpec(), PhantomSpec(n_slices=150, slice_mm=1.25)):
        assert not _beyond_levels(spec, default_anatomy())


@pytest.fixture(scope="module")
def lumbar() -> Phantom:
    """L2 at 128², 61 slices (T12 to L4): conus, cauda equina, kidneys, psoas."""
    an = spine_anatomy()
    lev = an.level("L2")
    an = spine_anatomy(involved_level="L2", tumour_z_mm=lev.z_mm)
    return generate_phantom(PhantomSpec(matrix=128, n_slices=61, z_centre_mm=lev.z_mm), anatomy=an)


def _roi(ph: Phantom, x: float, y: float, r: float, z: float) -> NDArray[np.bool_]:
    off = np.asarray(ph.spec.patient_offset_mm)
    xs, ys, zs = (a - o for a, o in zip(ph.geometry.axis_coordinates_mm(), off, strict=True))
    k = int(np.argmin(np.abs(zs - z)))
    m = np.zeros(ph.hu.shape, dtype=bool)
    m[k] = (xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2 <= r * r
    return m


def test_lumbar_phantom_anatomy(lumbar: Phantom) -> None:
    ph, an = lumbar, lumbar.anatomy
    m = ph.masks
    z = _anatomy_z(ph)
    cord, cauda, canal = m["SpinalCord"], m["CaudaEquina"], m["SpinalCanal"]
    # The cord ends at the conus; the cauda equina (thecal sac) below it, both in the canal.
    cord_z = z[cord.any(axis=(1, 2))]
    cauda_z = z[cauda.any(axis=(1, 2))]
    assert cord_z.min() >= an.conus_z_mm - 2.5
    assert cauda_z.max() <= an.conus_z_mm + 2.5 and cauda_z.min() < an.conus_z_mm - 60.0
    assert not (cord & ~canal).any() and not (cauda & ~canal).any()
    assert not (m["GTV"] & (cord | cauda)).any()
    # The lumbar canal is wider than the thoracic one (in-plane area at L3 vs T12).
    area = canal.sum(axis=(1, 2)) * ph.spec.pixel_mm**2
    k_l3 = int(np.argmin(np.abs(z - an.level("L3").z_mm)))
    k_t12 = int(np.argmin(np.abs(z - an.level("T12").z_mm)))
    assert area[k_l3] > 1.3 * area[k_t12]
    hu = ph.hu.astype(np.float64)
    l3 = an.level("L3")
    # Kidney (~30 HU, unenhanced parenchyma) in its place: lower pole of the right kidney at L3
    # would be partial: sample the left kidney at L1-L2.
    kid = _roi(ph, 70.0, float(an.spine_y_mm(-125.0)) + 16.0 + 5.0, 6.0, -125.0)
    assert 10.0 <= hu[kid].mean() <= 50.0
    # Psoas muscle beside the L3 body; cancellous bone in the body; abdominal fat, no lung:
    # where the posterior lung recess is in the chest there is soft tissue or fat.
    psoas_x = l3.half_width_mm + 0.8 * (4.0 + 11.0 * min(1.0, (-95.0 - l3.z_mm) / 90.0))
    for side in (-1.0, 1.0):
        ps = _roi(ph, side * psoas_x, l3.y_mm + 5.0, 5.0, l3.z_mm)
        assert 25.0 <= hu[ps].mean() <= 75.0
        recess = _roi(ph, side * 110.0, 40.0, 6.0, l3.z_mm)
        assert hu[recess].mean() > -200.0
    body = _roi(ph, 0.0, l3.y_mm, 8.0, l3.z_mm + 5.0)
    assert 150.0 <= hu[body].mean() <= 320.0
    # No ribs at L2-L3: no bone lateral and posterior to the spine (|x| > 60 mm, y > 10 mm).
    off = np.asarray(ph.spec.patient_offset_mm)
    xs, ys, _ = (a - o for a, o in zip(ph.geometry.axis_coordinates_mm(), off, strict=True))
    lateral = (np.abs(xs)[None, :] > 60.0) & (ys[:, None] > 10.0)
    k_l2 = int(np.argmin(np.abs(z - an.level("L2").z_mm)))
    assert not (hu[k_l2] > 400.0)[lateral].any()
    # ... but there is bone at the lumbar spine itself (cortex > 500 HU)
    assert (hu[k_l3] > 500.0).sum() > 20


def test_variant_names() -> None:
    assert parse_variant("L3-right-large") == VariantSpec("L3", "right", "large", False)
    assert parse_variant("T9") == VariantSpec()
    assert parse_variant("T9-wrap-small").name == "T9-small-wrap"
    for bad in ("L6", "T3", "T9-up", "T9-left-right", "T9-small-large", "T9-wrap-wrap", "t9"):
        with pytest.raises(InputError, match="unknown variant"):
            parse_variant(bad)
    assert {parse_variant(n).level for n in VARIANTS if n != "demo"} >= {
        "T4",
        "T8",
        "T11",
        "L1",
        "L3",
    }
    assert "L1" in LEVELS and "L3" in LEVELS


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "demo"] + ["L1-right-small"])
def test_variant_masks_at_their_level(name: str) -> None:
    v = parse_variant(name)
    ph = _variant(name)
    m = ph.masks
    lev = ph.anatomy.level(v.level)
    gtv, canal, cord = m["GTV"], m["SpinalCanal"], m["SpinalCord"]
    neural = cord | m.get("CaudaEquina", np.zeros_like(cord))
    assert gtv.sum() > 50 and canal.any() and neural.any()
    # The GTV sits at the named level, on the named side (LPS +x = patient left).
    c = _centroid_anatomy_mm(ph, gtv)
    assert abs(c[2] - lev.z_mm) <= lev.height_mm / 2 + 2.5, (c, lev)
    if not v.wrap:
        assert c[0] * (1.0 if v.side == "left" else -1.0) > 3.0
    # The involved body is that level's; the cord (or cauda equina) in the canal, the tumour
    # outside it, and next to it (epidural part within ~2 voxels).
    vb = _centroid_anatomy_mm(ph, m["VertebralBody"])
    assert abs(vb[2] - lev.z_mm) < 2.5
    assert not (neural & ~canal).any()
    assert not (gtv & neural).any()
    assert (gtv & canal).any()
    near = ndi.binary_dilation(neural, np.ones((1, 5, 5), dtype=bool))
    assert (near & gtv).any()
    # Below the conus there is no cord on the tumour's slices, and the cauda equina is there.
    tumour_slices = gtv.any(axis=(1, 2))
    if lev.z_mm + lev.height_mm / 2 < ph.anatomy.conus_z_mm:
        assert not cord[tumour_slices].any()
        assert m["CaudaEquina"][tumour_slices].any()
    if v.wrap:
        # Circumferential: on the tumour's central slice the GTV lies in every 45° sector
        # around the neural tissue, within 15 mm of it.
        k = int(np.flatnonzero(tumour_slices).mean())
        cy, cx = np.argwhere(neural[k]).mean(axis=0)
        yy, xx = np.nonzero(gtv[k])
        px = ph.spec.pixel_mm
        r = np.hypot(yy - cy, xx - cx) * px
        ang = np.degrees(np.arctan2(yy - cy, xx - cx))
        sectors = {int((a + 180.0) // 45.0) % 8 for a, rr in zip(ang, r, strict=True) if rr < 15}
        assert sectors == set(range(8))


def test_variant_sizes_grow() -> None:
    vol = {n: int(_variant(n).masks["GTV"].sum()) for n in ("L3-small", "L3", "L3-large")}
    assert vol["L3-small"] < 0.8 * vol["L3"] < 0.8 * vol["L3-large"]
