"""A plan and its post-op CT with known implanted seeds, for the verification and post-op GUI
tests: a plan on the demo phantom, every seed implanted ~1 mm off, the patient then shifted
rigidly (2, −1.5, 3 mm; 1°, −0.8°, 1.5°), rendered with partial volume, streaks and noise."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import NDArray

from planner.demo.phantom import generate_phantom
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Plan, Prescription, Seed, SourceSpec, Structure
from planner.postop.register import _image
from planner.postop.synthetic import PostopScene, needle_implant_scene, render_postop_ct


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
) -> PostopCase:
    """``moved_mm``: seed index → an extra displacement (planning frame, LPS mm) of that
    implanted seed, e.g. one seed migrated far from every needle."""
    ph = generate_phantom(n_slices=n_slices)
    info = PatientInfo(
        patient_id="POSTOP-GUI", patient_name="TEST^POSTOP", frame_of_reference_uid="1.2.3"
    )
    ct = CTVolume(ph.hu, ph.geometry, info)
    g = ph.geometry
    gtv = Structure.from_mask("st-gtv", "GTV", "target", ph.masks["GTV"], g)
    cord = Structure.from_mask("st-cord", "SpinalCord", "oar", ph.masks["SpinalCord"], g)
    scene = needle_implant_scene(
        ph.masks["GTV"],
        g,
        rng=11,
        clusters=False,
        screw=False,
        cement=False,
        needle_spacing_mm=needle_spacing_mm,
        seed_spacing_mm=seed_spacing_mm,
        avoid_lung=ph.hu,
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
    centre = g.zyx_to_world(np.argwhere(ph.masks["GTV"]).mean(axis=0))
    shift = sitk.Euler3DTransform()  # maps post-op points to planning points
    shift.SetCenter(tuple(float(v) for v in centre))
    shift.SetRotation(*np.radians([1.0, -0.8, 1.5]))
    shift.SetTranslation((2.0, -1.5, 3.0))
    moved = sitk.Resample(_image(ct), _image(ct), shift, sitk.sitkLinear, -1024.0)
    base = CTVolume(sitk.GetArrayFromImage(moved).astype(np.int16), g, info)
    inverse = shift.GetInverse()
    in_postop = np.array([inverse.TransformPoint(tuple(p)) for p in implanted])
    post = render_postop_ct(base, PostopScene(in_postop, scene.axes), rng=9)
    return PostopCase(plan, ct, post, implanted, in_postop)
