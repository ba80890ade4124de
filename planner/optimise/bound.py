"""An upper bound on target V100 under the cord limit and the no-pass rule (issue 12).

Why: on cord-hugging targets the automatic plans reach V100 90-92 % with the cord D0.1 cm³
at its limit; this bound says how much *any* plan could reach with the same rules, so a failed
V100 goal is explained, not just flagged.

The argument, per target voxel v (LPS voxel centre):

* a seed s at position p with axis d gives dose a(v − p; d) to v and a(c − p; d) to a cord
  voxel c (TG-43, per unit strength and time: both scale together), so for any plan,
  D(v) = Σ_s w_s a_vs ≤ R(v, c) · D(c) with R(v, c) = max over admissible seeds of a_vs / a_cs;
* the cord goal D0.1 cm³ ≤ L means at most k − 1 cord voxels receive more than L
  (k = ⌈0.1 cm³ / voxel volume⌉): of any k cord voxels, one gets ≤ L. So for any set C of k
  cord voxels, D(v) ≤ L · max over c in C of R(v, c); the best such set gives
  D(v) ≤ L · (k-th smallest R(v, c) over c). When that is below the prescription dose, v
  cannot be covered by any plan that keeps the cord goal;
* the fraction of target voxels that *can* be covered is an upper bound on V100.

Admissible seeds: a superset of the seeds any plan with the same rules can hold. Positions are
voxel centres of the seed region (every target structure), orientations the approach's needle
directions (:func:`planner.optimise.candidates.approach_directions`); (p, d) is admissible when
the straight line from p back along −d reaches the skin inside the CT, within the needle
length limit, with no sample closer than the no-pass margin (less half a voxel diagonal, so
the needle-warning rule on voxel boxes implies it) to a no-pass structure, and with no more
bone than allowed between the skin and p. Every rule is applied leniently (the true rule
implies it), so the bound can only be too high, never too low. Discretisation (stated in the
result): seed positions at voxel centres (every ``stride``-th voxel in-plane on fine grids),
the approach's discrete directions; the cord voxels considered for each v are its
``cord_neighbours`` nearest (a subset: the bound is then still valid, only less tight).

Which it is on the demo case and its six variants (docs/autoplan.md): neither reached nor
proven infeasible. The posterolateral plans reach V100 90-92 % (the small target 95.6 %) at the
50 Gy cord limit, and this bound is 100 % on every case: every target voxel has an admissible
seed position close enough that a single seed gives it more than PD / L times the dose it
gives the cord (the bound is still 97 % at a 2 Gy limit). The shortfall comes from many seeds'
cord dose together, which a per-voxel argument cannot see. With ``--approach any`` the demo
reaches 94.4-95.4 % (one or two rounds) at the limit. The bound is reported so that a
V100 goal that *is* out of reach (a voxel bound below PD) is explained, and so that a shortfall
is not called infeasible when it is not proven.

Cost: R(v, c) is first bounded from below with each v's nearest admissible seeds (a v that
passes is coverable as far as this bound goes); only the remaining voxels are maximised over
every admissible seed (10-60 s on the demo cases on the loaded 2-core box: an option,
``--v100-bound``, not part of every run).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from dose.engine import SeedSet, make_engine, rate_to_dose_gy
from dose.progress import CancelFn, check_cancelled
from planner.imaging.volume import CTVolume
from planner.optimise.candidates import (
    DEFAULT_NO_PASS_RE,
    CandidateSettings,
    _body_slice,
    _Lookup,
    approach_directions,
)
from planner.optimise.influence import structure_points_mm
from planner.plan.model import Plan, Structure

#: Ray step (mm) when tracing back from a seed position to the skin; bone counted at this step
#: is allowed one extra step over the limit (the candidates sample at 0.5 mm).
RAY_STEP_MM = 1.0

__all__ = ["V100Bound", "admissible_seed_positions", "v100_upper_bound"]


@dataclass
class V100Bound:
    """The bound and how it was made: ``v100_max_percent`` is the most any plan can reach."""

    v100_max_percent: float
    cord_limit_gy: float
    pd_gy: float
    target: str
    cord: str
    target_voxels: int  # voxels evaluated (all, or a uniform sample: ``sampled``)
    uncoverable_voxels: int
    admissible_seeds: int  # (position, direction) pairs
    directions: int
    hot_voxels_k: int
    stride: int
    sampled: bool
    seconds: float
    uncoverable_points_mm: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))

    def to_dict(self) -> dict[str, object]:
        return {
            "v100_max_percent": self.v100_max_percent,
            "cord_limit_gy": self.cord_limit_gy,
            "pd_gy": self.pd_gy,
            "target": self.target,
            "cord": self.cord,
            "target_voxels": self.target_voxels,
            "uncoverable_voxels": self.uncoverable_voxels,
            "admissible_seeds": self.admissible_seeds,
            "directions": self.directions,
            "hot_voxels_k": self.hot_voxels_k,
            "position_stride": self.stride,
            "sampled": self.sampled,
            "seconds": self.seconds,
            "method": "per-voxel dose ratio to the k nearest cord voxels over admissible seeds "
            "(planner.optimise.bound)",
        }


def _seed_region_points(plan: Plan, stride: int) -> NDArray[np.float64]:
    """Voxel centres (M, 3) of the union of the target structures, every ``stride``-th voxel
    in-plane."""
    union = np.zeros(plan.geometry.shape_zyx, dtype=bool)
    for s in plan.structures:
        if s.role == "target" and s.voxel_count > 0:
            union[s.box] |= s.crop
    kji = np.argwhere(union)
    if stride > 1:
        kji = kji[(kji[:, 1] % stride == 0) & (kji[:, 2] % stride == 0)]
    return plan.geometry.zyx_to_world(kji.astype(np.float64))


def admissible_seed_positions(
    plan: Plan,
    ct: CTVolume,
    settings: CandidateSettings,
    *,
    stride: int = 1,
    strict: bool = False,
    cancel: CancelFn | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Admissible (position, axis) pairs (module docstring): positions (S, 3), axes (S, 3).
    ``strict``: the candidate generator's no-pass screen (margin + half a voxel diagonal)
    instead of the lenient one (a subset: seeds a real candidate could carry)."""
    no_pass = [s for s in plan.structures if DEFAULT_NO_PASS_RE.search(s.name)]
    for name in settings.no_pass_names:
        s = plan.structure_named(name)
        if s is not None and s not in no_pass:
            no_pass.append(s)
    targets = [s for s in plan.structures if s.role == "target" and s.voxel_count > 0]
    look = _Lookup(plan, ct, targets[0], no_pass, settings, settings.no_pass_margin_mm)
    half_diag = 0.5 * float(np.linalg.norm(plan.geometry.spacing_mm))
    np_min = settings.no_pass_margin_mm - (-half_diag if strict else half_diag)
    bone_limit = settings.bone_min_mm if settings.bone == "avoid" else settings.max_bone_mm
    pts = _seed_region_points(plan, stride)
    if look.body_structure is not None:
        body_vol = look.body_structure.mask
    else:
        body_vol = np.stack([_body_slice(h, settings.body_hu) for h in ct.hu])
    n_steps = math.ceil(settings.max_length_mm / RAY_STEP_MM) + 1
    ts = np.arange(n_steps) * RAY_STEP_MM  # distance back from p
    g = plan.geometry
    shape = np.asarray(g.shape_zyx)
    origin_idx = g.world_to_zyx(np.zeros((1, 3)))[0]
    out_p, out_d = [], []
    for d in approach_directions(settings.approach):
        for c0 in range(0, len(pts), 512):
            check_cancelled(cancel)
            p = pts[c0 : c0 + 512]
            m = len(p)
            # The ray p − t·d in CT index space (k, j, i): the map is affine.
            ip = g.world_to_zyx(p)
            step = g.world_to_zyx(d[np.newaxis])[0] - origin_idx
            ray = ip[:, np.newaxis, :] - ts[np.newaxis, :, np.newaxis] * step  # (m, T, 3)
            kji = np.floor(ray + 0.5).astype(np.int64).reshape(-1, 3)
            inside_flat = np.all((kji >= 0) & (kji < shape), axis=1)
            kji = np.clip(kji, 0, shape - 1)
            inside = inside_flat.reshape(m, n_steps)
            body = (body_vol[kji[:, 0], kji[:, 1], kji[:, 2]] & inside_flat).reshape(m, n_steps)
            # The skin going back from p: the first sample outside the body.
            outside = ~body
            has_exit = outside.any(axis=1)
            exit_i = np.where(has_exit, outside.argmax(axis=1), n_steps)
            steps = np.arange(n_steps)[np.newaxis, :]
            seg = steps < exit_i[:, np.newaxis]  # p … skin (inside the body)
            ok = has_exit & (exit_i > 0)
            # The CT must hold the whole segment and the skin point.
            ok &= np.all(inside | ~(steps <= exit_i[:, np.newaxis]), axis=1)
            dist = look.no_pass_distance(kji).reshape(m, n_steps)
            ok &= ~np.any(seg & (dist < np_min), axis=1)
            hu = look.hu[kji[:, 0], kji[:, 1], kji[:, 2]].reshape(m, n_steps)
            bone_mm = np.count_nonzero(seg & (hu > settings.bone_hu), axis=1) * RAY_STEP_MM
            ok &= bone_mm <= bone_limit + 2.0 * RAY_STEP_MM
            ok &= (exit_i - 1) * RAY_STEP_MM <= settings.max_length_mm
            out_p.append(p[ok])
            out_d.append(np.repeat(d[np.newaxis], int(ok.sum()), axis=0))
    if not out_p:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(out_p), np.concatenate(out_d)


def _kernel_gy(eng, axis: NDArray[np.float64], rel_mm: NDArray[np.float64]) -> NDArray:
    """Dose (Gy, per unit strength) of one seed at the origin along ``axis`` at ``rel_mm``."""
    seed = SeedSet.create(np.zeros((1, 3)), axis[np.newaxis], 1.0)
    return rate_to_dose_gy(eng.dose_rate_at_points(seed, rel_mm).dose_rate_cgy_h)


def _ratios(
    eng,
    v: NDArray[np.float64],
    cords: NDArray[np.float64],
    seed_p: NDArray[np.float64],
    seed_d: NDArray[np.float64],
) -> NDArray[np.float64]:
    """max over the given seeds of a(v − p) / a(c − p): v (n, 3), cords (n, M, 3), seeds
    (n, S, 3) per voxel (or (S, 3) shared) → (n, M)."""
    n, m = cords.shape[:2]
    shared = seed_p.ndim == 2
    best = np.zeros((n, m))
    dirs = np.unique(np.round(seed_d.reshape(-1, 3), 9), axis=0)
    for d in dirs:
        sel = np.all(np.abs(seed_d - d) < 1e-6, axis=-1)  # (S,) or (n, S)
        if shared:
            p = seed_p[sel]
            if len(p) == 0:
                continue
            a_v = _kernel_gy(eng, d, (v[:, None, :] - p[None]).reshape(-1, 3)).reshape(n, -1)
            a_c = _kernel_gy(eng, d, (cords[:, :, None, :] - p[None, None]).reshape(-1, 3))
            a_c = a_c.reshape(n, m, -1)
            r = a_v[:, None, :] / np.maximum(a_c, 1e-30)
            best = np.maximum(best, r.max(axis=2))
        else:
            if not sel.any():
                continue
            s = seed_p.shape[1]
            a_v = _kernel_gy(eng, d, (v[:, None, :] - seed_p).reshape(-1, 3)).reshape(n, s)
            a_c = _kernel_gy(eng, d, (cords[:, :, None, :] - seed_p[:, None]).reshape(-1, 3))
            a_c = a_c.reshape(n, m, s)
            r = np.where(sel[:, None, :], a_v[:, None, :] / np.maximum(a_c, 1e-30), 0.0)
            best = np.maximum(best, r.max(axis=2))
    return best


def v100_upper_bound(
    plan: Plan,
    ct: CTVolume,
    target: Structure,
    cord: Structure,
    pd_gy: float,
    cord_limit_gy: float,
    settings: CandidateSettings,
    *,
    formalism: str = "2d",
    max_target_voxels: int = 8000,
    cord_neighbours: int | None = None,
    screen_seeds: int = 12,
    cancel: CancelFn | None = None,
) -> V100Bound:
    """The most V100 (%) any plan keeping cord D0.1 cm³ ≤ ``cord_limit_gy`` can reach on
    ``target`` under ``settings``' approach, no-pass and bone rules (module docstring)."""
    t0 = time.perf_counter()
    assert plan.source is not None
    pixel = float(min(plan.geometry.spacing_mm[:2]))
    stride = max(1, round(1.5 / pixel))
    seed_p, seed_d = admissible_seed_positions(plan, ct, settings, stride=stride, cancel=cancel)
    k = math.ceil(100.0 / cord.geometry.voxel_volume_mm3 - 1e-9)
    m = max(k, cord_neighbours or 2 * k)
    vox = structure_points_mm(target)
    sampled = len(vox) > max_target_voxels
    if sampled:
        pick = np.random.default_rng(5).choice(len(vox), max_target_voxels, replace=False)
        vox = vox[np.sort(pick)]
    cpts = structure_points_mm(cord)
    base = dict(
        cord_limit_gy=float(cord_limit_gy),
        pd_gy=float(pd_gy),
        target=target.name,
        cord=cord.name,
        target_voxels=len(vox),
        directions=len(approach_directions(settings.approach)),
        hot_voxels_k=k,
        stride=stride,
        sampled=sampled,
    )
    if len(seed_p) == 0 or len(cpts) < k:
        unc = len(vox) if len(seed_p) == 0 else 0
        return V100Bound(
            100.0 * (1 - unc / max(len(vox), 1)),
            uncoverable_voxels=unc,
            admissible_seeds=len(seed_p),
            seconds=time.perf_counter() - t0,
            **base,  # type: ignore[arg-type]
        )
    eng = make_engine(plan.source.model_id, formalism, "numba")
    need = pd_gy / cord_limit_gy  # v is coverable only if the k-th smallest R reaches this
    m = min(m, len(cpts))
    _, ci = cKDTree(cpts).query(vox, k=m)
    ci = np.asarray(ci).reshape(len(vox), m)
    ns = min(screen_seeds, len(seed_p))
    _, si = cKDTree(seed_p).query(vox, k=ns)
    si = np.asarray(si).reshape(len(vox), ns)
    hard = np.zeros(len(vox), dtype=bool)
    for c0 in range(0, len(vox), 256):
        check_cancelled(cancel)
        sl = slice(c0, c0 + 256)
        r = _ratios(eng, vox[sl], cpts[ci[sl]], seed_p[si[sl]], seed_d[si[sl]])
        hard[sl] = np.sort(r, axis=1)[:, k - 1] < need
    out = np.zeros(len(vox), dtype=bool)
    idx = np.flatnonzero(hard)
    for c0 in range(0, len(idx), 4):
        check_cancelled(cancel)
        j = idx[c0 : c0 + 4]
        r = _ratios(eng, vox[j], cpts[ci[j]], seed_p, seed_d)
        out[j] = np.sort(r, axis=1)[:, k - 1] < need
    uncoverable = int(out.sum())
    return V100Bound(
        100.0 * (1.0 - uncoverable / len(vox)),
        uncoverable_points_mm=vox[out],
        uncoverable_voxels=uncoverable,
        admissible_seeds=len(seed_p),
        seconds=time.perf_counter() - t0,
        **base,  # type: ignore[arg-type]
    )
