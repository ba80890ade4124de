"""Freehand CT-guided implants of random geometry: post-op scenes that are not near-copies.

:func:`~planner.postop.synthetic.needle_implant_scene` puts its needles on a fixed x–z grid
running straight anterior, so two draws differ only by 0.5 mm of jitter and every seed sits at
the same place relative to the slices. A detector tuned on such scenes can be right on them and
wrong on the next patient. :func:`freehand_implant_scene` draws the implant itself at random, as
a CT-guided freehand implant varies from patient to patient:

- the approach (posterior, posterior-oblique or lateral, tilted up to ±25° out of the axial
  plane), the needle spacing (8–14 mm), the orientation and phase of the needle pattern across
  the target, and each needle's own divergence from the approach (freehand needles fan out);
- per needle, the seed spacing (5.5–11 mm centre to centre: seeds with and without spacers,
  end to end at the short end) and where along the needle the train starts;
- the seed jitter (0.3–1.2 mm) and axis spread; seeds are loaded within ``margin_mm`` of the
  target, lung included;
- the noise (10–25 HU) and streak amplitude (100–250 HU); a pedicle screw and cement as in the
  needle scenes, with no seed within 4 mm of either (a seed touching a screw is not a seed a
  detector can be asked to separate).

No two seeds overlap (their 0.8 mm capsules keep ≥ 0.2 mm apart) and no two centres are
closer than 2.5 mm, so a one-to-one match within 2.5 mm scores the scene unambiguously.
Deterministic for a given ``rng``; LPS millimetres on the target's grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.postop.synthetic import (
    SEED_DIAMETER_MM,
    SEED_LENGTH_MM,
    Cement,
    PostopScene,
    Screw,
    TargetMargin,
)

__all__ = ["freehand_implant_scene"]

#: Closest allowed approach of two seeds' capsules (mm, surface to surface).
MIN_CAPSULE_GAP_MM = 0.2
#: Closest allowed approach of two seed centres (mm): the scoring gate.
MIN_CENTRE_DISTANCE_MM = 2.5
#: No seed within this distance (mm) of a screw's or the cement's surface.
METAL_CLEARANCE_MM = 4.0


def _axis_points(centre: NDArray[np.float64], axis: NDArray[np.float64], n: int = 9):
    """(n, 3) points along a seed's capsule axis (LPS mm)."""
    t = np.linspace(-0.5, 0.5, n) * (SEED_LENGTH_MM - SEED_DIAMETER_MM)
    return centre[None, :] + t[:, None] * axis[None, :]


def _overlaps(p: NDArray[np.float64], a: NDArray[np.float64], seeds, axes) -> bool:
    """Whether a seed at ``p`` along ``a`` comes too close to any seed already placed."""
    if not seeds:
        return False
    centres = np.asarray(seeds)
    dist = np.linalg.norm(centres - p, axis=1)
    if dist.min() < MIN_CENTRE_DISTANCE_MM:
        return True
    mine = _axis_points(p, a)
    for k in np.flatnonzero(dist < SEED_LENGTH_MM + 1.0):
        theirs = _axis_points(centres[k], axes[k])
        gap = np.linalg.norm(mine[:, None] - theirs[None], axis=-1).min() - SEED_DIAMETER_MM
        if gap < MIN_CAPSULE_GAP_MM:
            return True
    return False


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v / np.linalg.norm(v)


def _approach(rng: np.random.Generator) -> NDArray[np.float64]:
    """A needle direction (LPS unit vector, pointing into the patient): posterior (−y),
    posterior-oblique or lateral (±x), tilted out of the axial plane by up to ±25°."""
    azimuth = np.radians(rng.choice([0.0, -35.0, 35.0, -80.0, 80.0]) + rng.normal(0.0, 8.0))
    tilt = np.radians(rng.uniform(-25.0, 25.0))
    in_plane = np.array([np.sin(azimuth), -np.cos(azimuth), 0.0])
    return _unit(np.cos(tilt) * in_plane + np.array([0.0, 0.0, np.sin(tilt)]))


def freehand_implant_scene(
    target: NDArray[np.bool_],
    geometry: GridGeometry,
    *,
    rng: np.random.Generator | int = 0,
    margin_mm: float = 6.0,
    screw: bool = True,
    cement: bool = True,
) -> PostopScene:
    """A random freehand implant around ``target`` (a (z, y, x) mask on ``geometry``); see the
    module docstring for what is drawn. Raises ValueError for an empty target."""
    rng = np.random.default_rng(rng)
    kji = np.argwhere(target)
    if kji.size == 0:
        raise ValueError("target mask is empty")
    within = TargetMargin(target, geometry.spacing_mm, margin_mm)
    centre = geometry.zyx_to_world(kji.mean(axis=0))
    corners = geometry.zyx_to_world(np.array([kji.min(axis=0), kji.max(axis=0)], dtype=float))
    radius = 0.5 * float(np.linalg.norm(corners[1] - corners[0])) + margin_mm + 10.0

    approach = _approach(rng)
    # The needle pattern: a square grid across the approach, rotated and shifted at random.
    helper = np.array([0.0, 0.0, 1.0]) if abs(approach[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = _unit(np.cross(approach, helper))
    v = np.cross(approach, u)
    turn = rng.uniform(0.0, np.pi)
    u, v = np.cos(turn) * u + np.sin(turn) * v, -np.sin(turn) * u + np.cos(turn) * v
    needle_spacing = rng.uniform(8.0, 14.0)
    phase = rng.uniform(0.0, needle_spacing, 2)
    steps = np.arange(-radius, radius + needle_spacing, needle_spacing)
    divergence = rng.uniform(0.02, 0.12)  # rad, this operator's freehand spread
    jitter = rng.uniform(0.3, 1.2)

    screws, cements = [], []
    if screw:
        head = centre + np.array([-20.0, 45.0, -40.0])
        screws.append(Screw(tuple(head), tuple(centre + np.array([-8.0, 5.0, -40.0]))))
    if cement:
        cements.append(Cement(tuple(centre + np.array([0.0, -5.0, 35.0]))))

    def clear_of_metal(p: NDArray[np.float64]) -> bool:
        for s in screws:
            a, b = np.asarray(s.head_mm), np.asarray(s.tip_mm)
            t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0.0, 1.0)
            if np.linalg.norm(p - a - t * (b - a)) < s.radius_mm + METAL_CLEARANCE_MM:
                return False
        for c in cements:
            grown = np.asarray(c.semi_axes_mm) + METAL_CLEARANCE_MM
            if np.sum(((p - np.asarray(c.centre_mm)) / grown) ** 2) <= 1.0:
                return False
        return True

    def loadable(p: NDArray[np.float64]) -> bool:
        k = np.rint(geometry.world_to_zyx(p)).astype(int)
        if np.any(k < 1) or np.any(k >= np.asarray(target.shape) - 1):
            return False
        return within(k) and clear_of_metal(p)

    seeds: list[NDArray[np.float64]] = []
    axes: list[NDArray[np.float64]] = []
    for a in steps + phase[0]:
        for b in steps + phase[1]:
            direction = _unit(approach + rng.normal(0.0, divergence, 3))
            through = centre + a * u + b * v  # where the needle crosses the target's centre
            seed_spacing = rng.uniform(5.5, 11.0)
            offsets = np.arange(-radius, radius, seed_spacing) + rng.uniform(0.0, seed_spacing)
            for t in offsets:
                p = through + t * direction + rng.normal(0.0, jitter, 3)
                axis = _unit(direction + rng.normal(0.0, 0.08, 3))
                if loadable(p) and not _overlaps(p, axis, seeds, axes):
                    seeds.append(p)
                    axes.append(axis)
    return PostopScene(
        np.array(seeds).reshape(-1, 3),
        np.array(axes).reshape(-1, 3),
        screws=screws,
        cements=cements,
        noise_sd_hu=float(rng.uniform(10.0, 25.0)),
        streak_hu=float(rng.uniform(100.0, 250.0)),
    )
