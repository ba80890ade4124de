"""A plan and its post-op CT with known implanted seeds, for the verification and post-op GUI
tests: a plan on the demo phantom, every seed implanted ~1 mm off, the patient then shifted
rigidly (2, −1.5, 3 mm; 1°, −0.8°, 1.5°), rendered with partial volume, streaks and noise.

``crop_mm`` keeps only the in-plane box around the GTV (plus that margin) of the 512 x 512
phantom: the same scene, CTs a fifth the size (faster registration, detection and drawing). The
phantom is generated once per process for each slice count."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.demo.phantom import Phantom, generate_phantom
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Plan, Prescription, Seed, SourceSpec, Structure
from planner.postop.detection.bone_prior import planning_bone_hu
from planner.postop.freehand_scene import freehand_implant_scene
from planner.postop.register import RigidTransform, sitk_image
from planner.postop.synthetic import (
    PostopScene,
    needle_implant_scene,
    render_postop_ct,
    reslice_thick,
)

#: In-plane margin (mm) around the GTV where the implant scene is planned: seeds are loaded
#: within 8 mm of the GTV, and no seed within 3 mm of lung.
SCENE_MARGIN_MM = 20.0


@dataclass
class PostopCase:
    plan: Plan
    ct: CTVolume
    postop: CTVolume
    implanted_mm: NDArray[np.float64]  # (N, 3) true implanted seeds, planning frame
    implanted_postop_mm: NDArray[np.float64]  # (N, 3) the same in the post-op CT frame


def build_postop_case(
    *,
    n_slices: int = 40,
    needle_spacing_mm: float = 9.0,
    seed_spacing_mm: float = 8.0,
    strength_u: float = 0.8,
    moved_mm: dict[int, tuple[float, float, float]] | None = None,
    crop_mm: float | None = None,
) -> PostopCase:
    """``moved_mm``: seed index → an extra displacement (planning frame, LPS mm) of that
    implanted seed, e.g. one seed migrated far from every needle. ``crop_mm``: both CTs cut
    in-plane to the GTV's bounding box grown by this margin (mm); every slice is kept."""
    ph = _phantom(n_slices)
    hu, masks, g = ph.hu, ph.masks, ph.geometry
    if crop_mm is not None:
        hu, masks, g = _cropped(ph, crop_mm)
    info = PatientInfo(
        patient_id="POSTOP-GUI", patient_name="TEST^POSTOP", frame_of_reference_uid="1.2.3"
    )
    ct = CTVolume(hu, g, info)
    gtv = Structure.from_mask("st-gtv", "GTV", "target", masks["GTV"], g)
    cord = Structure.from_mask("st-cord", "SpinalCord", "oar", masks["SpinalCord"], g)
    # The scene needs only the GTV's neighbourhood: planned on a crop of it (the same seeds in
    # LPS mm, a small fraction of the distance transform on the full grid).
    scene_margin_mm = SCENE_MARGIN_MM if crop_mm is None else min(crop_mm, SCENE_MARGIN_MM)
    scene_hu, scene_masks, scene_g = _cropped(ph, scene_margin_mm)
    scene = needle_implant_scene(
        scene_masks["GTV"],
        scene_g,
        rng=11,
        clusters=False,
        screw=False,
        cement=False,
        needle_spacing_mm=needle_spacing_mm,
        seed_spacing_mm=seed_spacing_mm,
        avoid_lung=scene_hu,
    )
    seeds = tuple(
        Seed(id=f"sd-{i:03d}", position_mm=tuple(p), axis=tuple(a))
        for i, (p, a) in enumerate(zip(scene.seeds_mm, scene.axes, strict=True))
    )
    plan = Plan.new(
        ct,
        structures=(gtv, cord),
        prescription=Prescription(dose_gy=110.0, structure_id="st-gtv"),
        source=SourceSpec(
            model_id="6711",
            strength_u=strength_u,
            calibration_date=dt.date(2026, 1, 1),
            implant_date=dt.date(2026, 1, 1),
        ),
        seeds=seeds,
        name="post-op GUI test",
    )
    rng = np.random.default_rng(5)
    implanted = scene.seeds_mm + rng.normal(0.0, 0.8, scene.seeds_mm.shape)
    for i, offset in (moved_mm or {}).items():
        implanted[i] += np.asarray(offset, dtype=np.float64)
    centre = g.zyx_to_world(np.argwhere(masks["GTV"]).mean(axis=0))
    shift = sitk.Euler3DTransform()  # maps post-op points to planning points
    shift.SetCenter(tuple(float(v) for v in centre))
    shift.SetRotation(*np.radians([1.0, -0.8, 1.5]))
    shift.SetTranslation((2.0, -1.5, 3.0))
    moved = sitk.Resample(sitk_image(ct), sitk_image(ct), shift, sitk.sitkLinear, -1024.0)
    base = CTVolume(sitk.GetArrayFromImage(moved).astype(np.int16), g, info)
    inverse = shift.GetInverse()
    in_postop = np.array([inverse.TransformPoint(tuple(p)) for p in implanted])
    post = render_postop_ct(base, PostopScene(in_postop, scene.axes), rng=9)
    return PostopCase(plan, ct, post, implanted, in_postop)


@lru_cache(maxsize=2)
def _phantom(n_slices: int) -> Phantom:
    """The demo phantom of ``n_slices`` slices (read-only arrays: shared by every case)."""
    ph = generate_phantom(n_slices=n_slices)
    for a in (ph.hu, *ph.masks.values()):
        a.setflags(write=False)
    return ph


def _cropped(
    ph: Phantom, margin_mm: float
) -> tuple[NDArray[np.int16], dict[str, NDArray[np.bool_]], GridGeometry]:
    """The phantom's HU and masks (z, y, x) in the GTV's in-plane box + ``margin_mm``, and
    the grid of that box (the same voxels at the same places)."""
    g = ph.geometry
    kji = np.argwhere(ph.masks["GTV"])
    reach = np.ceil(margin_mm / np.asarray(g.spacing_mm)[::-1]).astype(int)
    lo = np.maximum(kji.min(axis=0) - reach, 0)
    hi = np.minimum(kji.max(axis=0) + reach + 1, g.shape_zyx)
    lo[0], hi[0] = 0, g.shape_zyx[0]
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    origin = g.zyx_to_world(lo.astype(np.float64))
    sub = GridGeometry(tuple(int(n) for n in hi - lo), origin, g.spacing_mm, g.direction)
    masks = {name: np.ascontiguousarray(m[box]) for name, m in ph.masks.items()}
    return np.ascontiguousarray(ph.hu[box]), masks, sub


@dataclass(frozen=True)
class ResampledScene:
    """A post-op scene on the demo anatomy resampled to thick slices, as ``bench_detect``
    builds it: the planning CT (the phantom's own 2.5 mm grid), the anatomy and GTV on the
    thick grid, the scene, its post-op CT, and a registration 0.9 mm and 0.5° off."""

    planning: CTVolume
    base: CTVolume
    gtv: NDArray[np.bool_]
    scene: PostopScene
    ct: CTVolume
    registration: RigidTransform

    def bone_hu(self) -> NDArray[np.float32]:
        """The planning CT's bone on the post-op grid through ``registration``."""
        return planning_bone_hu(self.planning, self.ct, self.registration)


def resampled_scene(
    kind: str,
    rng: int,
    render_rng: int,
    thickness_mm: float = 5.0,
    slice_profile: str = "gaussian",
):
    """:class:`ResampledScene` of a ``"freehand"`` (:func:`freehand_implant_scene`) or
    ``"needles"`` (:func:`needle_implant_scene`) implant drawn with ``rng``, rendered with
    ``render_rng`` and ``slice_profile`` (:func:`render_postop_ct`), on slices of
    ``thickness_mm``."""
    ph = _phantom(40)
    base, gtv = reslice_thick(ph.hu, ph.geometry, ph.masks["GTV"], thickness_mm)
    make = {"freehand": freehand_implant_scene, "needles": needle_implant_scene}[kind]
    scene = make(gtv, base.geometry, rng=rng)
    ct = render_postop_ct(base, scene, rng=render_rng, slice_profile=slice_profile)
    off = RigidTransform().nudged(shift_mm=(0.5, -0.4, 0.6), rotation_deg=(0.0, 0.0, 0.5))
    return ResampledScene(CTVolume(ph.hu, ph.geometry), base, gtv, scene, ct, off)
