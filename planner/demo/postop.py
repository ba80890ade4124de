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

The synthetic cohort (:mod:`planner.demo.cohort`) shares :func:`scan_postop` (the patient
shift and the scanner model). This demo keeps its own needle errors (:class:`NeedleMiss`,
:func:`seeds_after_miss`: a well-executed implant, pinned by the demo's tests); the cohort
draws the robustness model's (:class:`planner.optimise.robustness.NeedleErrorModel`, with its
lever cap, and retries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional name)
from numpy.typing import NDArray

from planner.imaging.volume import CTVolume
from planner.plan.model import Plan
from planner.postop.register import RigidTransform, sitk_image
from planner.postop.synthetic import PostopScene, render_postop_ct

__all__ = ["DemoPostop", "NeedleMiss", "make_postop_ct", "scan_postop", "seeds_after_miss"]


@dataclass
class DemoPostop:
    """The post-op CT and its truth (LPS mm)."""

    ct: CTVolume
    seeds_postop_mm: NDArray[np.float64]  # (N, 3) in the post-op CT's frame
    seeds_plan_mm: NDArray[np.float64]  # (N, 3) the same seeds in the planning frame
    axes_plan: NDArray[np.float64]  # (N, 3)
    postop_to_plan: RigidTransform


@dataclass(frozen=True)
class NeedleMiss:
    """How one needle missed its plan (LPS mm): lateral offsets (perpendicular to the planned
    axis) at its entry and at its tip, and a depth error along the planned axis (+: deeper)."""

    entry_offset_mm: NDArray[np.float64]  # (3,)
    tip_offset_mm: NDArray[np.float64]  # (3,)
    depth_mm: float


def seeds_after_miss(
    points_mm: NDArray[np.float64],
    entry_mm: NDArray[np.float64] | tuple[float, float, float],
    tip_mm: NDArray[np.float64] | tuple[float, float, float],
    miss: NeedleMiss,
) -> NDArray[np.float64]:
    """Where the seeds planned at ``points_mm`` (N, 3) on the needle ``entry_mm`` → ``tip_mm``
    land when the needle misses by ``miss``: each moves by the lateral offset interpolated
    linearly from the entry's to the tip's at its place along the needle (clipped to the
    needle), plus the depth error along the planned axis. Returns (N, 3) mm."""
    entry = np.asarray(entry_mm, dtype=np.float64)
    tip = np.asarray(tip_mm, dtype=np.float64)
    u = (tip - entry) / np.linalg.norm(tip - entry)
    length = float(np.linalg.norm(tip - entry))
    out = np.array(points_mm, dtype=np.float64).reshape(-1, 3)
    for i, p in enumerate(out):
        f = float(np.clip((p - entry) @ u / length, 0.0, 1.0))
        out[i] = p + (1 - f) * miss.entry_offset_mm + f * miss.tip_offset_mm + miss.depth_mm * u
    return out


def scan_postop(
    planning_ct: CTVolume,
    seeds_plan_mm: NDArray[np.float64],
    axes_plan: NDArray[np.float64],
    *,
    centre_mm: NDArray[np.float64] | tuple[float, float, float],
    rotation_deg: NDArray[np.float64] | tuple[float, float, float],
    shift_mm: NDArray[np.float64] | tuple[float, float, float],
    rng: int | np.random.Generator,
) -> DemoPostop:
    """The day-0 scan of implanted seeds: the patient lies a little differently on the couch
    (``x_plan = R · x_postop + t``, R the rotation by ``rotation_deg`` (x, y, z Euler angles)
    about ``centre_mm`` and t from ``shift_mm``), so the post-op CT is ``planning_ct``
    resampled through that rigid map, with the seeds (planning frame ``seeds_plan_mm`` (N, 3),
    unit ``axes_plan`` (N, 3)) rendered through :func:`planner.postop.synthetic.render_postop_ct`
    (``rng`` seeds its noise). Used by the demo plan's post-op CT and the synthetic cohort."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(v) for v in centre_mm))
    transform.SetRotation(*np.radians(rotation_deg))
    transform.SetTranslation(tuple(float(v) for v in shift_mm))
    moved_ct = sitk.Resample(
        sitk_image(planning_ct), sitk_image(planning_ct), transform, sitk.sitkLinear, -1024.0
    )
    base = CTVolume(
        np.rint(sitk.GetArrayFromImage(moved_ct)).astype(np.int16),
        planning_ct.geometry,
        planning_ct.info,
    )
    inverse = transform.GetInverse()
    seeds_post = np.array([inverse.TransformPoint(tuple(p)) for p in seeds_plan_mm])
    rot = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    axes_post = axes_plan @ rot  # R⁻¹ = Rᵀ: rows · R
    post = render_postop_ct(base, PostopScene(seeds_post, axes_post), rng=rng)
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    return DemoPostop(
        ct=post,
        seeds_postop_mm=seeds_post,
        seeds_plan_mm=seeds_plan_mm,
        axes_plan=axes_plan,
        postop_to_plan=RigidTransform(
            tuple(tuple(float(v) for v in r) for r in rot), tuple(float(v) for v in origin)
        ),
    )


def _demo_miss(gen: np.random.Generator, u: NDArray[np.float64], scale: float) -> NeedleMiss:
    """The demo's miss: Gaussian lateral offsets at entry and tip (SD 3.4 and 4.4 mm × scale,
    projected perpendicular to the unit axis ``u``) and depth (SD 5.2 mm × scale)."""
    entry_off = gen.normal(0.0, 3.4 * scale, 3)
    tip_off = gen.normal(0.0, 4.4 * scale, 3)
    entry_off -= (entry_off @ u) * u
    tip_off -= (tip_off @ u) * u
    return NeedleMiss(entry_off, tip_off, gen.normal(0.0, 5.2 * scale))


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
    for needle in plan.needles:
        idx = [i for i, s in enumerate(plan.seeds) if s.needle_id == needle.id]
        if not idx:
            continue
        entry, tip = np.asarray(needle.entry_mm), np.asarray(needle.tip_mm)
        u = (tip - entry) / np.linalg.norm(tip - entry)
        miss = _demo_miss(gen, u, needle_error_scale)
        moved[idx] = seeds_after_miss(seeds[idx], entry, tip, miss)
    moved += gen.normal(0.0, seed_jitter_mm, moved.shape)
    # The patient on the couch, about the implant's centre.
    return scan_postop(
        planning_ct,
        moved,
        axes,
        centre_mm=moved.mean(axis=0),
        rotation_deg=rotation_deg,
        shift_mm=shift_mm,
        rng=gen,
    )
