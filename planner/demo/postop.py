"""The demo plan's post-op CT: what a day-0 scan after the implant would show.

From the planning CT and a plan with seeds: every needle lands a little off (entry and tip
displacements and a depth error drawn from the measured CT-guided errors, scaled down for a
well-executed implant), every seed moves with its needle plus a small jitter, and the patient
lies a little differently on the couch (a small rigid shift and rotation). The post-op CT is the
planning CT moved by that rigid shift, with the implanted seeds rendered through the scanner
model of :mod:`planner.postop.synthetic` (partial volume, 12-bit clipping, metal streaks,
noise). Deterministic for a given ``rng``.

The truth is returned with it: seed positions in the post-op CT's frame and in the planning
frame, and the rigid map between the two (``x_plan = R · x_postop + t``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import NDArray

from planner.imaging.volume import CTVolume
from planner.plan.model import Plan
from planner.postop.register import RigidTransform, _image
from planner.postop.synthetic import PostopScene, render_postop_ct

__all__ = ["DemoPostop", "make_postop_ct"]


@dataclass
class DemoPostop:
    """The post-op CT and its truth (LPS mm)."""

    ct: CTVolume
    seeds_postop_mm: NDArray[np.float64]  # (N, 3) in the post-op CT's frame
    seeds_plan_mm: NDArray[np.float64]  # (N, 3) the same seeds in the planning frame
    axes_plan: NDArray[np.float64]  # (N, 3)
    postop_to_plan: RigidTransform


def make_postop_ct(
    plan: Plan,
    planning_ct: CTVolume,
    *,
    rng: int = 20_241_001,
    needle_error_scale: float = 0.35,
    seed_jitter_mm: float = 0.6,
    shift_mm: tuple[float, float, float] = (1.8, -1.2, 2.5),
    rotation_deg: tuple[float, float, float] = (0.8, -0.5, 1.2),
) -> DemoPostop:
    """The post-op CT of ``plan`` on ``planning_ct``'s grid (module docstring).

    ``needle_error_scale`` scales the JRR 2021 CT-guided needle errors (entry 3.4, tip 4.4,
    depth 5.2 mm) for this demo; ``seed_jitter_mm`` is the per-seed displacement (SD, mm).
    """
    gen = np.random.default_rng(rng)
    seeds = np.array([s.position_mm for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    axes = np.array([s.axis for s in plan.seeds], dtype=np.float64).reshape(-1, 3)
    moved = seeds.copy()
    needles = {n.id: n for n in plan.needles}
    for nid, needle in needles.items():
        idx = [i for i, s in enumerate(plan.seeds) if s.needle_id == nid]
        if not idx:
            continue
        entry = np.asarray(needle.entry_mm)
        tip = np.asarray(needle.tip_mm)
        u = (tip - entry) / np.linalg.norm(tip - entry)
        # A lateral offset growing from entry to tip, and a depth error along the needle.
        entry_off = gen.normal(0.0, 3.4 * needle_error_scale, 3)
        tip_off = gen.normal(0.0, 4.4 * needle_error_scale, 3)
        entry_off -= (entry_off @ u) * u
        tip_off -= (tip_off @ u) * u
        depth = gen.normal(0.0, 5.2 * needle_error_scale)
        length = float(np.linalg.norm(tip - entry))
        for i in idx:
            f = float(np.clip((seeds[i] - entry) @ u / length, 0.0, 1.0))
            moved[i] = seeds[i] + (1 - f) * entry_off + f * tip_off + depth * u
    moved += gen.normal(0.0, seed_jitter_mm, moved.shape)
    # The patient on the couch: x_plan = R·x_post + t about the target's centre.
    centre = moved.mean(axis=0)
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(v) for v in centre))
    transform.SetRotation(*np.radians(rotation_deg))
    transform.SetTranslation(tuple(float(v) for v in shift_mm))
    moved_ct = sitk.Resample(
        _image(planning_ct), _image(planning_ct), transform, sitk.sitkLinear, -1024.0
    )
    base = CTVolume(
        np.rint(sitk.GetArrayFromImage(moved_ct)).astype(np.int16),
        planning_ct.geometry,
        planning_ct.info,
    )
    inverse = transform.GetInverse()
    seeds_post = np.array([inverse.TransformPoint(tuple(p)) for p in moved])
    rot = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    axes_post = axes @ rot  # R⁻¹ = Rᵀ: rows · R
    post = render_postop_ct(base, PostopScene(seeds_post, axes_post), rng=gen)
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    return DemoPostop(
        ct=post,
        seeds_postop_mm=seeds_post,
        seeds_plan_mm=moved,
        axes_plan=axes,
        postop_to_plan=RigidTransform(
            tuple(tuple(float(v) for v in r) for r in rot), tuple(float(v) for v in origin)
        ),
    )
