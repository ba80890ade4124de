"""Synthetic post-implant CTs with known seeds: the ground truth for detection tests and benchmarks.

A post-op CT is a planning-type CT plus metal. Each I-125 seed (6711-like: a titanium capsule
4.5 mm × 0.8 mm with a silver marker) is rendered as what a CT scanner reports: the seed's
attenuation excess blurred by the scanner's point-spread function — an in-plane Gaussian
(σ ≈ 0.45 mm, a body kernel) times a Gaussian slice-sensitivity profile whose FWHM equals the
slice thickness, or (``slice_profile="box"``) a box of the thickness averaged from 1 mm thin
slices — sampled at the voxel centres, then clipped at the 12-bit scanner maximum
(3071 HU), which is what makes seed HU "saturate". Metal streaks are thin in-plane lines of
alternating sign through each metal object, decaying with distance; noise is white Gaussian.
Non-seed metal — a pedicle screw (titanium cylinder) and vertebroplasty cement (a radio-opaque
ellipsoid) — can be added as confounders.

Everything is in LPS millimetres on the CT's own :class:`~dose.geometry.GridGeometry` (any
direction matrix). The renderer is deterministic for a given ``rng`` seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume

__all__ = [
    "SCANNER_MAX_HU",
    "SEED_DIAMETER_MM",
    "SEED_LENGTH_MM",
    "SLICE_PROFILES",
    "Cement",
    "PostopScene",
    "Screw",
    "TargetMargin",
    "render_postop_ct",
    "reslice_thick",
    "seed_grid_scene",
]

SEED_LENGTH_MM = 4.5
SEED_DIAMETER_MM = 0.8
SCANNER_MAX_HU = 3071.0
#: Integrated HU excess of one seed (HU · mm³): a 2.26 mm³ seed at an effective 25 000 HU
#: (silver marker and titanium capsule, far beyond the 12-bit scale before clipping).
SEED_EXCESS_HU_MM3 = 25_000.0 * np.pi * (SEED_DIAMETER_MM / 2) ** 2 * SEED_LENGTH_MM
INPLANE_PSF_SIGMA_MM = 0.45
#: FWHM of the thin slices a ``"box"`` slice profile averages (mm; a multi-slice scanner's
#: thick slices are sums of its thin ones).
THIN_SLICE_FWHM_MM = 1.0
#: The slice profiles :func:`render_postop_ct` renders seeds with.
SLICE_PROFILES = ("gaussian", "box")
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Screw:
    """A titanium pedicle screw: a cylinder from ``head_mm`` to ``tip_mm`` (LPS mm)."""

    head_mm: tuple[float, float, float]
    tip_mm: tuple[float, float, float]
    radius_mm: float = 3.0
    hu: float = 8000.0


@dataclass(frozen=True)
class Cement:
    """Vertebroplasty cement (PMMA + contrast): an ellipsoid of uniform HU (LPS mm)."""

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float] = (8.0, 6.0, 7.0)
    hu: float = 1800.0


@dataclass
class PostopScene:
    """What is implanted: seed centres ``(N, 3)`` LPS mm, unit axes ``(N, 3)``, other metal."""

    seeds_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    screws: list[Screw] = field(default_factory=list)
    cements: list[Cement] = field(default_factory=list)
    noise_sd_hu: float = 15.0
    streak_hu: float = 150.0
    streaks_per_object: int = 6


def _psf_sigma_mm(geometry: GridGeometry) -> NDArray[np.float64]:
    """PSF standard deviations along the grid axes (i, j, k) in mm; k = slice axis."""
    thickness = float(geometry.spacing_mm[2])
    return np.array([INPLANE_PSF_SIGMA_MM, INPLANE_PSF_SIGMA_MM, thickness * FWHM_TO_SIGMA])


def _splat(
    out: NDArray[np.float32],
    geometry: GridGeometry,
    points_mm: NDArray[np.float64],
    weights: NDArray[np.float64],
    extra_var_mm2: float,
    slice_profile: str = "gaussian",
) -> None:
    """Add Σ w·G(x − p) (HU) at the voxel centres near ``points_mm`` (G: the PSF, 1/mm³; along
    the slice axis the profile of :func:`render_postop_ct`'s ``slice_profile``)."""
    sigma = np.sqrt(_psf_sigma_mm(geometry) ** 2 + extra_var_mm2)  # (i, j, k)
    thickness = float(geometry.spacing_mm[2])
    box = slice_profile == "box"
    if box:  # the thickness averaged from thin slices: a box blurred by the thin profile
        sigma[2] = np.sqrt((THIN_SLICE_FWHM_MM * FWHM_TO_SIGMA) ** 2 + extra_var_mm2)
    rot = np.asarray(geometry.direction, dtype=np.float64)  # columns: i, j, k axes in LPS
    spacing = np.asarray(geometry.spacing_mm, dtype=np.float64)
    reach_mm = 4.0 * sigma + np.array([0.0, 0.0, 0.5 * thickness if box else 0.0])
    reach_vox = np.ceil(reach_mm / spacing).astype(int)
    ijk = geometry.world_to_index(points_mm)
    lo = np.floor(ijk.min(axis=0)).astype(int) - reach_vox
    hi = np.ceil(ijk.max(axis=0)).astype(int) + reach_vox + 1
    shape_xyz = np.asarray(geometry.shape_xyz)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, shape_xyz)
    if np.any(hi <= lo):
        return
    ii, jj, kk = (np.arange(lo[a], hi[a]) for a in range(3))
    # Offsets in the grid frame (mm along i, j, k) between voxel centres and points.
    pts_grid = (points_mm - np.asarray(geometry.origin_mm)) @ rot  # (P, 3) mm along i, j, k
    norm = 1.0 / ((2 * np.pi) ** 1.5 * np.prod(sigma))
    gi = np.exp(-0.5 * ((ii[None, :] * spacing[0] - pts_grid[:, 0:1]) / sigma[0]) ** 2)
    gj = np.exp(-0.5 * ((jj[None, :] * spacing[1] - pts_grid[:, 1:2]) / sigma[1]) ** 2)
    dk = kk[None, :] * spacing[2] - pts_grid[:, 2:3]
    if box:  # the box's erf difference, scaled as the Gaussian's peak (norm holds σ_k)
        u = dk / (np.sqrt(2.0) * sigma[2])
        half = 0.5 * thickness / (np.sqrt(2.0) * sigma[2])
        gk = 0.5 * (erf(u + half) - erf(u - half)) * (np.sqrt(2 * np.pi) * sigma[2] / thickness)
    else:
        gk = np.exp(-0.5 * (dk / sigma[2]) ** 2)
    block = np.einsum("p,pk,pj,pi->kji", weights * norm, gk, gj, gi, optimize=True)
    out[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] += block.astype(np.float32)


def _seed_samples(centre: NDArray[np.float64], axis: NDArray[np.float64], n: int = 24):
    t = (np.arange(n) + 0.5) / n - 0.5
    return centre[None, :] + (t * SEED_LENGTH_MM)[:, None] * axis[None, :]


def _add_streaks(
    out: NDArray[np.float32],
    geometry: GridGeometry,
    centre_mm: NDArray[np.float64],
    amplitude_hu: float,
    n_lines: int,
    rng: np.random.Generator,
    reach_mm: float = 60.0,
) -> None:
    """Thin in-plane streaks (alternating bright/dark) through ``centre_mm``, on nearby slices."""
    k_c = float(geometry.world_to_index(centre_mm)[2])
    sigma_k = max(1.0, 1.2 / float(geometry.spacing_mm[2]))
    spacing = np.asarray(geometry.spacing_mm, dtype=np.float64)
    ny, nx = out.shape[1], out.shape[2]
    c_ij = geometry.world_to_index(centre_mm)[:2]
    half = int(np.ceil(reach_mm / spacing[0]))
    i0, i1 = max(0, int(c_ij[0]) - half), min(nx, int(c_ij[0]) + half + 1)
    j0, j1 = max(0, int(c_ij[1]) - half), min(ny, int(c_ij[1]) + half + 1)
    if i1 <= i0 or j1 <= j0:
        return
    dx = (np.arange(i0, i1) - c_ij[0]) * spacing[0]
    dy = (np.arange(j0, j1) - c_ij[1]) * spacing[1]
    X, Y = np.meshgrid(dx, dy)
    r = np.hypot(X, Y)
    field2d = np.zeros_like(X)
    for n, angle in enumerate(rng.uniform(0, np.pi, n_lines)):
        perp = -np.sin(angle) * X + np.cos(angle) * Y
        sign = 1.0 if n % 2 == 0 else -1.0
        field2d += sign * np.exp(-0.5 * (perp / 0.6) ** 2)
    field2d *= amplitude_hu * np.exp(-r / 15.0) * np.clip((r - 3.0) / 3.0, 0.0, 1.0)
    for k in range(max(0, int(k_c - 3 * sigma_k)), min(out.shape[0], int(k_c + 3 * sigma_k) + 2)):
        w = np.exp(-0.5 * ((k - k_c) / sigma_k) ** 2)
        out[k, j0:j1, i0:i1] += (w * field2d).astype(np.float32)


def _solid_mask_mm(geometry: GridGeometry, inside, box_lo_mm, box_hi_mm):
    """Voxel indices (k, j, i) and supersampled occupancy of a solid given by ``inside(xyz)``."""
    corners = np.array(
        [
            [a, b, c]
            for a in (box_lo_mm[0], box_hi_mm[0])
            for b in (box_lo_mm[1], box_hi_mm[1])
            for c in (box_lo_mm[2], box_hi_mm[2])
        ]
    )
    ijk = geometry.world_to_index(corners)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, np.asarray(geometry.shape_xyz))
    if np.any(hi <= lo):
        return None
    sub = (np.arange(3) + 0.5) / 3 - 0.5
    occ = np.zeros((hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]), dtype=np.float32)
    kk, jj, ii = np.meshgrid(
        np.arange(lo[2], hi[2]), np.arange(lo[1], hi[1]), np.arange(lo[0], hi[0]), indexing="ij"
    )
    for a in sub:
        for b in sub:
            for c in sub:
                ijk_s = np.stack([ii + a, jj + b, kk + c], axis=-1)
                occ += inside(geometry.index_to_world(ijk_s)).astype(np.float32)
    occ /= len(sub) ** 3
    return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), occ


def render_postop_ct(
    base: CTVolume,
    scene: PostopScene,
    *,
    rng: np.random.Generator | int = 0,
    slice_profile: str = "gaussian",
) -> CTVolume:
    """The post-op CT of ``scene`` on ``base``'s grid (a new volume; ``base`` is unchanged).

    ``slice_profile``: the seeds' slice sensitivity profile, ``"gaussian"`` (FWHM the slice
    thickness, the model the detection assumes) or ``"box"`` (the thickness averaged from thin
    slices of FWHM ``THIN_SLICE_FWHM_MM``: flat, with no tails into the next slices — a check
    that the detection holds where the scanner's profile is not its model's).

    ``base.hu`` is the patient without metal (its own noise included); the result adds the
    seeds, screws and cement, their streaks and ``scene.noise_sd_hu`` more noise, and clips to
    [−1024, 3071] HU like a 12-bit scanner. Returns int16 HU.
    """
    if slice_profile not in SLICE_PROFILES:
        raise ValueError(f"unknown slice profile {slice_profile!r} (one of {SLICE_PROFILES})")
    rng = np.random.default_rng(rng)
    geometry = base.geometry
    hu = base.hu.astype(np.float32).copy()
    metal = np.zeros_like(hu)
    for cement in scene.cements:
        c = np.asarray(cement.centre_mm, dtype=np.float64)
        ax = np.asarray(cement.semi_axes_mm, dtype=np.float64)

        def inside_ellipsoid(xyz, c=c, ax=ax):
            return np.sum(((xyz - c) / ax) ** 2, axis=-1) <= 1.0

        got = _solid_mask_mm(geometry, inside_ellipsoid, c - ax, c + ax)
        if got is not None:
            box, occ = got
            hu[box] = hu[box] * (1 - occ) + cement.hu * occ
        _add_streaks(metal, geometry, c, 0.5 * scene.streak_hu, scene.streaks_per_object, rng)
    for screw in scene.screws:
        a = np.asarray(screw.head_mm, dtype=np.float64)
        b = np.asarray(screw.tip_mm, dtype=np.float64)
        u = (b - a) / np.linalg.norm(b - a)
        length = float(np.linalg.norm(b - a))

        def inside_cylinder(xyz, a=a, u=u, length=length, r=screw.radius_mm):
            t = (xyz - a) @ u
            perp = xyz - a - t[..., None] * u
            return (t >= 0) & (t <= length) & (np.sum(perp**2, axis=-1) <= r * r)

        lo = np.minimum(a, b) - screw.radius_mm
        hi = np.maximum(a, b) + screw.radius_mm
        got = _solid_mask_mm(geometry, inside_cylinder, lo, hi)
        if got is not None:
            box, occ = got
            hu[box] = hu[box] * (1 - occ) + screw.hu * occ
        for t in np.linspace(0.1, 0.9, 4):
            _add_streaks(metal, geometry, a + t * (b - a), scene.streak_hu, 4, rng)
    seeds = np.asarray(scene.seeds_mm, dtype=np.float64).reshape(-1, 3)
    axes = np.asarray(scene.axes, dtype=np.float64).reshape(-1, 3)
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    disc_var = (SEED_DIAMETER_MM / 2) ** 2 / 4.0  # variance of a uniform disc along one axis
    for centre, axis in zip(seeds, axes, strict=True):
        pts = _seed_samples(centre, axis)
        w = np.full(len(pts), SEED_EXCESS_HU_MM3 / len(pts))
        _splat(metal, geometry, pts, w, disc_var, slice_profile)
        _add_streaks(metal, geometry, centre, scene.streak_hu, scene.streaks_per_object, rng)
    hu += metal
    if scene.noise_sd_hu > 0:
        hu += rng.normal(0.0, scene.noise_sd_hu, hu.shape).astype(np.float32)
    np.clip(hu, -1024.0, SCANNER_MAX_HU, out=hu)
    return CTVolume(
        hu=np.rint(hu).astype(np.int16),
        geometry=geometry,
        info=base.info,
        source_path="",
    )


class TargetMargin:
    """Whether a voxel (k, j, i) lies within ``margin_mm`` of ``target`` (a (z, y, x) mask;
    ``spacing_mm`` x, y, z): the distance is computed only in the target's box grown by the
    margin (the same distances there as on the whole grid, 0.1 s instead of 2 s on 512 × 512
    slices); every voxel outside that box is farther."""

    def __init__(self, target: NDArray[np.bool_], spacing_mm, margin_mm: float) -> None:
        from scipy.ndimage import distance_transform_edt

        spacing_zyx = np.asarray(spacing_mm, dtype=np.float64)[::-1]
        kji = np.argwhere(target)
        pad = np.ceil(margin_mm / spacing_zyx).astype(int) + 1
        self.lo = np.maximum(kji.min(axis=0) - pad, 0)
        self.hi = np.minimum(kji.max(axis=0) + pad + 1, target.shape)
        box = tuple(slice(a, b) for a, b in zip(self.lo, self.hi, strict=True))
        self.outside_mm = distance_transform_edt(~target[box], sampling=spacing_zyx)
        self.margin_mm = float(margin_mm)

    def __call__(self, k: NDArray[np.int_]) -> bool:
        if np.any(k < self.lo) or np.any(k >= self.hi):
            return False
        return bool(self.outside_mm[tuple(k - self.lo)] <= self.margin_mm)


def needle_implant_scene(
    target: NDArray[np.bool_],
    geometry: GridGeometry,
    *,
    rng: np.random.Generator | int = 0,
    needle_spacing_mm: float = 12.0,
    seed_spacing_mm: float = 10.0,
    jitter_mm: float = 0.5,
    clusters: bool = True,
    screw: bool = True,
    cement: bool = True,
    margin_mm: float = 8.0,
    avoid_lung: NDArray[np.generic] | None = None,
) -> PostopScene:
    """A posterior-approach implant around ``target`` (a (z, y, x) mask on ``geometry``).

    Needles run anterior (−y) on an x–z grid at ``needle_spacing_mm`` across the target's
    bounding box, each with up to 4 seeds at ``seed_spacing_mm`` plus ``jitter_mm`` of
    displacement and ~6° of axis spread; seeds farther than ``margin_mm`` from the target are
    not loaded (as a planner would not); with ``avoid_lung`` (the CT's HU, (z, y, x)) no seed is
    put within 3 mm of CT below −300 HU (seed detection in lung is a known limitation).
    ``clusters`` adds a touching end-to-end pair, an end-to-end triplet and a side-by-side pair
    (3.2 mm apart); ``screw`` a pedicle screw and ``cement`` a vertebroplasty ellipsoid well
    away from the seeds.
    """
    rng = np.random.default_rng(rng)
    kji = np.argwhere(target)
    if kji.size == 0:
        raise ValueError("target mask is empty")
    centre = geometry.zyx_to_world(kji.mean(axis=0))
    lo = geometry.zyx_to_world(kji.min(axis=0).astype(np.float64))
    hi = geometry.zyx_to_world(kji.max(axis=0).astype(np.float64))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    within = TargetMargin(target, geometry.spacing_mm, margin_mm)

    def near_target(p: NDArray[np.float64]) -> bool:
        k = np.rint(geometry.world_to_zyx(p)).astype(int)
        if np.any(k < 0) or np.any(k >= np.asarray(target.shape)):
            return False
        if avoid_lung is not None:
            reach = np.maximum(np.ceil(3.0 / np.asarray(geometry.spacing_mm)[::-1]).astype(int), 1)
            lo_k, hi_k = np.maximum(k - reach, 0), k + reach + 1
            if avoid_lung[lo_k[0] : hi_k[0], lo_k[1] : hi_k[1], lo_k[2] : hi_k[2]].min() < -300:
                return False
        return within(k)

    seeds, axes = [], []
    for x in np.arange(lo[0] - 5, hi[0] + 6, needle_spacing_mm):
        for z in np.arange(lo[2] - 5, hi[2] + 6, needle_spacing_mm):
            d = np.array([rng.normal(0, 0.05), -1.0, rng.normal(0, 0.05)])
            d /= np.linalg.norm(d)
            start = np.array([x, hi[1] + 10, z])
            for s in range(4):
                p = start + d * (s * seed_spacing_mm) + rng.normal(0, jitter_mm, 3)
                a = d + rng.normal(0, 0.1, 3)
                if near_target(p):
                    seeds.append(p)
                    axes.append(a / np.linalg.norm(a))
    if clusters:
        groups = [
            (np.array([-3.0, 42.0, 12.0]), np.array([1.0, 0.0, 0.0]), [0.0, 4.8]),
            (np.array([-28.0, 8.0, 5.0]), np.array([0.0, 0.6, 0.8]), [0.0, 4.9, 9.8]),
        ]
        for offset, u, steps in groups:
            for step in steps:
                seeds.append(centre + offset + u * step)
                axes.append(u)
        side = centre + np.array([0.0, 30.0, -8.0])
        for p in (side, side + np.array([3.2, 0.0, 1.0])):
            seeds.append(p)
            axes.append(np.array([0.0, 0.0, 1.0]))
    scene = PostopScene(np.array(seeds), np.array(axes))
    if screw:
        head = centre + np.array([-20.0, 45.0, -40.0])
        scene.screws.append(Screw(tuple(head), tuple(centre + np.array([-8.0, 5.0, -40.0]))))
    if cement:
        scene.cements.append(Cement(tuple(centre + np.array([0.0, -5.0, 35.0]))))
    return scene


def seed_grid_scene(
    geometry: GridGeometry,
    centre_mm: NDArray[np.float64],
    *,
    extent_mm: tuple[float, float, float] = (56.0, 48.0, 84.0),
    spacing_mm: tuple[float, float, float] = (10.0, 10.0, 12.0),
    jitter_mm: float = 1.0,
    rng: np.random.Generator | int = 0,
    avoid_lung: NDArray[np.generic] | None = None,
) -> PostopScene:
    """Many well-separated seeds for accuracy statistics: a grid (LPS mm) of ``spacing_mm``
    over a box of ``extent_mm`` around ``centre_mm``, each seed jittered by ``jitter_mm`` with
    an axis drawn uniformly on the sphere (in-plane, oblique and through-plane seeds alike),
    so seeds lie in soft tissue, bone and against cortex. With ``avoid_lung`` (the CT's HU,
    (z, y, x)) no seed is put within 3 mm of CT below −300 HU; seeds within 3 mm of the grid's
    edge are dropped."""
    rng = np.random.default_rng(rng)
    half = np.asarray(extent_mm, dtype=np.float64) / 2.0
    c = np.asarray(centre_mm, dtype=np.float64)
    axes_1d = [np.arange(-h, h + 1e-9, st) for h, st in zip(half, spacing_mm, strict=True)]
    spacing_zyx = np.asarray(geometry.spacing_mm, dtype=np.float64)[::-1]
    reach = np.maximum(np.ceil(3.0 / spacing_zyx).astype(int), 1)
    shape = np.asarray(geometry.shape_zyx)
    seeds, axes = [], []
    for dx in axes_1d[0]:
        for dy in axes_1d[1]:
            for dz in axes_1d[2]:
                p = c + np.array([dx, dy, dz]) + rng.normal(0.0, jitter_mm, 3)
                a = rng.normal(size=3)
                a /= np.linalg.norm(a)
                k = np.rint(geometry.world_to_zyx(p)).astype(int)
                if np.any(k - reach < 0) or np.any(k + reach >= shape):
                    continue
                if avoid_lung is not None:
                    lo, hi = k - reach, k + reach + 1
                    if avoid_lung[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].min() < -300:
                        continue
                seeds.append(p)
                axes.append(a)
    return PostopScene(np.array(seeds).reshape(-1, 3), np.array(axes).reshape(-1, 3))


def reslice_thick(
    hu: NDArray[np.generic], geometry: GridGeometry, mask: NDArray[np.bool_], thickness_mm: float
) -> tuple[CTVolume, NDArray[np.bool_]]:
    """A planning-type CT on slices of ``thickness_mm`` (linear in z) and ``mask`` on the same
    slices (nearest): the base of a thick-slice post-op CT. ``hu``: (z, y, x); the slices keep
    the first slice's position and the in-plane grid."""
    f = thickness_mm / float(geometry.spacing_mm[2])
    nz = int(hu.shape[0] / f)
    kk = (np.arange(nz) + 0.5) * f - 0.5
    k0 = np.clip(np.floor(kk).astype(int), 0, hu.shape[0] - 1)
    k1 = np.clip(k0 + 1, 0, hu.shape[0] - 1)
    w = (kk - k0)[:, None, None]
    out = np.rint(hu[k0] * (1 - w) + hu[k1] * w).astype(np.int16)
    resliced = mask[np.clip(np.rint(kk).astype(int), 0, hu.shape[0] - 1)]
    geo = GridGeometry(
        shape_zyx=out.shape,
        origin_mm=geometry.zyx_to_world(np.array([kk[0], 0.0, 0.0])),
        spacing_mm=np.array([geometry.spacing_mm[0], geometry.spacing_mm[1], thickness_mm]),
        direction=geometry.direction,
    )
    return CTVolume(out, geo), resliced
