"""The demo plan: a finished, deterministic example plan on the demo case (``plan.seedplan``).

Structures (on the CT grid, from the phantom's ground-truth masks): GTV; PTV = GTV + 5 mm
minus (SpinalCord + 2 mm) (:func:`planner.structures.spine.make_ptv`); PTV_eval = PTV minus
(SpinalCord + ``eval_cord_margin_mm``, default 8 mm), the structure the prescription and the
coverage goal are evaluated on; SpinalCord and SpinalCanal (organs at risk); VertebralBody.
The PTV and the GTV stay targets of the plan, so their coverage (D90, V100 …) is in its metrics.

Why PTV_eval, and why 8 mm. The demo tumour is epidural and compresses the cord: 7.4 % of the
PTV lies inside the SpinalCanal, 21 % within 5 mm of it (where no needle may pass), 6.4 % within
5 mm of the cord and 14.7 % within 8 mm. Measured on the demo case (needles ≥ 5 mm from the cord
and the canal, cord D0.1 cm³ ≤ 50 Gy, PD 110 Gy), the best D90 of PTV_eval for each cord
exclusion (2 mm = the PTV itself):

    =========  ====================  ============================  =================
    exclusion  autoplan (greedy)     this search, at cord = 50 Gy  PTV's own D90
    =========  ====================  ============================  =================
    2 mm       67-70 Gy              68 Gy                         = PTV_eval
    4 mm       81 Gy                 79 Gy                         66-69 Gy
    5 mm       87 Gy                 86 Gy                         66-69 Gy
    6 mm       98 Gy                 95 Gy                         66-69 Gy
    7 mm       107 Gy                104 Gy                        66-69 Gy
    8 mm       117 Gy                114 Gy (plan: 111, cord 48)   65-69 Gy
    =========  ====================  ============================  =================

(autoplan: :func:`planner.optimise.autoplan.autoplan`, 0.6 U, seed spacing 10 and 5 mm, V100
goal 95 %; this search: angles 20-60°, seed spacings 10/7.5/5 mm, the best candidate's D90
scaled to cord D0.1 cm³ = 50 Gy; the plan itself: 111.4 Gy, cord 47.8 Gy, 0.80 mCi.) With I-125's
steep fall-off no loading from needles that keep clear of the canal brings the cord-adjacent
rim to PD while the cord keeps its limit: the PTV's own D90 stays at ~65-69 Gy (V100 ~77 %)
whatever the exclusion. 8 mm is the smallest exclusion for which D90 ≥ PD is met, so the
prescription is evaluated on PTV − (cord + 8 mm), as clinics crop a PTV from the cord (the rim
is deliberately under-dosed and reported: the PTV's metrics are in the plan's DVH and metrics).

Needles and seeds: a small deterministic search. For approach angles θ in ``angles_deg``
(posterolateral from the tumour's side: direction (∓sin θ, −cos θ, 0), θ = 0 straight
posterior) and grid offsets in ``grid_offsets_mm``, parallel template needles 10 mm apart
through the PTV (entry at the skin, tip 5 mm beyond the PTV), keeping those whose track stays ≥
``needle_avoid_clearance_mm`` (5 mm) from the cord and the canal (the rule of the needle
warnings, :func:`planner.plan.needles.needle_warnings`, so no needle of the plan carries one);
seeds loaded along them in the PTV at each spacing in ``seed_spacings_mm`` (10 and 7.5 mm: seeds
5 mm apart merge on the post-op CT and its verification misses some), dropping seeds
closer than ``seed_cord_clearances_mm`` to the cord. Each candidate's strength makes D90 of
PTV_eval (voxel-centre doses, exact engine) ``d90_headroom`` (2 %) above PD; candidates are ranked
by cord D0.1 cm³ among those whose strength is 0.4–0.8 mCi (0.51–1.02 U; any strength if
none). The ``refine_best`` best ones then drop, one at a time, the seed whose removal lowers the
cord D0.1 cm³ most at the strength that keeps that D90 (while the strength stays ≤ 0.8 mCi),
and the best result is kept. The chosen plan is then checked with :func:`compute_plan_dosimetry`
(1 mm exact grid, DVHs by the one volume rule) and its strength raised until PTV_eval D90 ≥ PD.

Everything is derived from the phantom only (no random numbers, no clock): ids, UID and dates
are fixed, so ``seedplan demo`` writes byte-identical plan files. :data:`DEMO_PLAN_VERSION`
changes with the search, so cached demo cases made before it are regenerated.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.engine import SeedSet, make_engine
from dose.progress import ProgressFn, report
from dose.units import U_PER_MCI_I125
from planner.imaging.volume import CTVolume
from planner.plan.loading import load_needle_seeds, template_needles
from planner.plan.model import (
    CTReference,
    Goal,
    Needle,
    Plan,
    Prescription,
    Seed,
    SourceSpec,
    Structure,
)
from planner.plan.needles import AVOID_NAME_RE, structure_distance_mm

__all__ = [
    "DEMO_CALIBRATION_DATE",
    "DEMO_IMPLANT_DATE",
    "DEMO_PLAN_FILE",
    "DEMO_PLAN_VERSION",
    "DemoPlanSettings",
    "build_demo_plan",
    "demo_plan_is_current",
    "demo_plan_stamp",
    "write_demo_plan",
]

DEMO_PLAN_FILE = "plan.seedplan"
#: Bumped whenever the search below changes its plan: a cached demo case with another version
#: (or made with other seed tables) is regenerated (:func:`demo_plan_stamp`).
DEMO_PLAN_VERSION = 3
DEMO_CALIBRATION_DATE = date(2024, 9, 10)
DEMO_IMPLANT_DATE = date(2024, 9, 17)
DEMO_PLAN_UTC = "2024-09-17T10:00:00Z"
_UID = hashlib.sha256(b"SeedPlan demo plan v1").hexdigest()[:32]
#: 0.4-0.8 mCi per seed (clinical.md §2.2), in U.
_STRENGTH_RANGE_U = (0.4 * U_PER_MCI_I125, 0.8 * U_PER_MCI_I125)


@dataclass(frozen=True)
class DemoPlanSettings:
    """The demo plan's choices (module docstring); lengths mm, doses Gy."""

    prescription_gy: float = 110.0
    cord_d0_1cc_limit_gy: float = 50.0
    ptv_margin_mm: float = 5.0
    ptv_cord_margin_mm: float = 2.0
    eval_cord_margin_mm: float = 8.0
    # 30° and a half-spacing grid offset were tried too: never better on the demo (and slower).
    angles_deg: tuple[float, ...] = (45.0, 55.0, 60.0, 65.0)
    grid_offsets_mm: tuple[float, ...] = (0.0,)
    needle_spacing_mm: float = 10.0
    # 5 mm is allowed (clinical.md) but seeds that close merge on the post-op CT.
    seed_spacings_mm: tuple[float, ...] = (10.0, 7.5)
    needle_avoid_clearance_mm: float = 5.0
    seed_cord_clearances_mm: tuple[float, ...] = (12.0,)
    refine_best: int = 3
    d90_headroom: float = 1.02  # the search aims at PTV_eval D90 = 1.02 × PD (voxel centres)
    model_id: str = "6711"


@dataclass
class DemoPlanReport:
    """What the search tried and chose (for logs and tests)."""

    candidates: list[dict[str, float]] = field(default_factory=list)
    chosen: dict[str, float] = field(default_factory=dict)
    d90_gy: float = math.nan
    cord_d0_1cc_gy: float = math.nan


def demo_plan_stamp(settings: DemoPlanSettings | None = None) -> dict[str, object]:
    """What a demo case's manifest records of its plan: the plan version and the seed tables'
    checksum. A cached case whose stamp differs predates the current plan and is regenerated."""
    from dose.sources import load_model

    cfg = settings or DemoPlanSettings()
    return {"version": DEMO_PLAN_VERSION, "model_sha256": load_model(cfg.model_id).checksum}


def demo_plan_is_current(manifest: dict[str, object]) -> bool:
    """True when a demo case's manifest (``case.json``) lists a plan with the current stamp."""
    entry = manifest.get("plan")
    return isinstance(entry, dict) and all(entry.get(k) == v for k, v in demo_plan_stamp().items())


def _structures(
    masks: dict[str, NDArray[np.bool_]], geometry, cfg: DemoPlanSettings
) -> tuple[Structure, ...]:
    from planner.structures.margins import expand
    from planner.structures.patch import apply_patch
    from planner.structures.spine import make_ptv

    gtv, cord = masks["GTV"], masks["SpinalCord"]
    empty = np.zeros_like(gtv)
    ptv = apply_patch(
        empty,
        make_ptv(
            empty,
            geometry,
            gtv,
            margin_mm=cfg.ptv_margin_mm,
            avoid=cord,
            avoid_margin_mm=cfg.ptv_cord_margin_mm,
        ),
    )
    keep_out = apply_patch(cord, expand(cord, geometry, cfg.eval_cord_margin_mm, name="cord"))
    ptv_eval = ptv & ~keep_out
    spec = [
        ("st-gtv", "GTV", "target", gtv, (255, 0, 0), "demo ground truth"),
        ("st-ptv", "PTV", "target", ptv, (255, 128, 0), "GTV + 5 mm − (SpinalCord + 2 mm)"),
        (
            "st-ptv-eval",
            "PTV_eval",
            "target",
            ptv_eval,
            (255, 0, 255),
            f"PTV − (SpinalCord + {cfg.eval_cord_margin_mm:g} mm)",
        ),
        ("st-cord", "SpinalCord", "oar", cord, (255, 255, 0), "demo ground truth"),
        (
            "st-canal",
            "SpinalCanal",
            "oar",
            masks["SpinalCanal"],
            (0, 200, 255),
            "demo ground truth",
        ),
        (
            "st-vb",
            "VertebralBody",
            "other",
            masks["VertebralBody"],
            (0, 180, 0),
            "demo ground truth",
        ),
    ]
    return tuple(
        Structure.from_mask(sid, name, role, m, geometry, color, origin)  # type: ignore[arg-type]
        for sid, name, role, m, color, origin in spec
    )


def _renumber(needles: list[Needle], seeds: list[Seed]) -> tuple[list[Needle], list[Seed]]:
    """Fixed ids and labels: needles nd-01 … (labels N1 …), seeds sd-001 … in needle order."""
    ids = {n.id: f"nd-{i + 1:02d}" for i, n in enumerate(needles)}
    out_n = [Needle(ids[n.id], n.entry_mm, n.tip_mm, f"N{i + 1}") for i, n in enumerate(needles)]
    out_s = [
        Seed(f"sd-{i + 1:03d}", s.position_mm, s.axis, ids[s.needle_id or ""], None)
        for i, s in enumerate(seeds)
    ]
    return out_n, out_s


def _drop_cord_seeds(
    engine, seeds: list[Seed], eval_pts, cord_pts, n01: int, d90_goal_gy: float, decay: float
) -> list[Seed]:
    """Greedily drop the seed whose removal lowers the cord D0.1 cm³ most once the strength is
    rescaled to keep the PTV_eval D90 at ``d90_goal_gy`` (voxel-centre doses; points (P, 3) LPS
    mm), while the strength stays within 0.4-0.8 mCi; stop when no removal helps."""
    if len(seeds) <= 4:
        return seeds
    pts = np.concatenate([eval_pts, cord_pts])
    cols = np.empty((len(pts), len(seeds)))
    by_axis: dict[tuple[float, ...], list[int]] = {}
    for j, s in enumerate(seeds):
        by_axis.setdefault(tuple(np.round(s.axis, 9)), []).append(j)
    for axis, js in by_axis.items():
        # Seeds of one axis (parallel needles) in one launch: the dose of a seed at p at a point
        # x is that of the same seed at the origin at x - p.
        origin = SeedSet.create([(0.0, 0.0, 0.0)], [axis], 1.0)
        shifted = pts[np.newaxis, :, :] - np.array([seeds[j].position_mm for j in js])[:, None]
        dose = engine.dose_rate_at_points(origin, shifted.reshape(-1, 3)).dose_gy
        cols[:, js] = dose.reshape(len(js), len(pts)).T
    a_eval, a_cord = cols[: len(eval_pts)], cols[len(eval_pts) :]
    k10 = max(0, round(0.1 * (len(eval_pts) - 1)))
    k_hot = len(cord_pts) - n01

    def scores(d_eval: NDArray, d_cord: NDArray) -> tuple[NDArray, NDArray]:
        """Per column: (cord D0.1 cm³ at the strength meeting the goal (Gy), that strength (U))."""
        d90 = np.partition(d_eval, k10, axis=0)[k10]
        u = np.ceil(d90_goal_gy / np.maximum(d90, 1e-12) / decay / 0.005) * 0.005  # as written
        return np.partition(d_cord, k_hot, axis=0)[k_hot] * u * decay, u

    keep = np.ones(len(seeds), dtype=bool)
    tot_eval, tot_cord = a_eval.sum(axis=1), a_cord.sum(axis=1)
    current = float(scores(tot_eval[:, None], tot_cord[:, None])[0][0])
    while keep.sum() > 4:
        idx = np.flatnonzero(keep)  # try removing each kept seed at once
        cord01, u = scores(tot_eval[:, None] - a_eval[:, idx], tot_cord[:, None] - a_cord[:, idx])
        cord01 = np.where(u <= _STRENGTH_RANGE_U[1] + 1e-9, np.round(cord01, 9), np.inf)
        best = int(np.argmin(cord01))  # first of equals: deterministic
        if not cord01[best] < current * (1.0 - 1e-4):
            break
        current, j = float(cord01[best]), int(idx[best])
        keep[j] = False
        tot_eval -= a_eval[:, j]
        tot_cord -= a_cord[:, j]
    return [s for s, k in zip(seeds, keep, strict=True) if k]


def build_demo_plan(
    ct: CTVolume,
    masks: dict[str, NDArray[np.bool_]],
    *,
    settings: DemoPlanSettings | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Plan, DemoPlanReport]:
    """The demo plan on ``ct`` (its UIDs and grid) from the ground-truth ``masks`` (module
    docstring). Deterministic."""
    from planner.plan.dosimetry import compute_plan_dosimetry

    cfg = settings or DemoPlanSettings()
    g = ct.geometry
    structures = _structures(masks, g, cfg)
    by_name = {s.name: s for s in structures}
    cord = by_name["SpinalCord"]
    pd = float(cfg.prescription_gy)
    goals = (
        Goal("gl-d90", "st-ptv-eval", "D90", ">=", pd, "Gy"),
        Goal("gl-cord", "st-cord", "D0.1cc", "<=", float(cfg.cord_d0_1cc_limit_gy), "Gy"),
    )
    base = Plan(
        plan_uid=_UID,
        ct=CTReference.from_volume(ct),
        structures=structures,
        prescription=Prescription(pd, "st-ptv-eval", "D90"),
        source=SourceSpec("6711", "", 0.6, "U", DEMO_CALIBRATION_DATE, DEMO_IMPLANT_DATE),
        goals=goals,
        name="Demo: MESCC T9, posterolateral needles",
        created_utc=DEMO_PLAN_UTC,
    )
    engine = make_engine(cfg.model_id, "2d", "numba")
    from dose.sources import load_model

    model = load_model(cfg.model_id)
    eval_pts = g.zyx_to_world(
        (np.argwhere(by_name["PTV_eval"].crop) + [b.start for b in by_name["PTV_eval"].box]).astype(
            float
        )
    )
    cord_kji = np.argwhere(cord.crop) + [b.start for b in cord.box]
    cord_pts = g.zyx_to_world(cord_kji.astype(float))
    n01 = max(1, round(0.1 / (g.voxel_volume_mm3 / 1000.0)))
    gtv_x = float(eval_pts[:, 0].mean() - cord_pts[:, 0].mean())
    side = 1.0 if gtv_x >= 0 else -1.0  # approach from the tumour's side (LPS +x = left)
    decay = base.source.decay_factor  # type: ignore[union-attr]
    rep = DemoPlanReport()
    best: tuple[float, float, int, list[Needle], list[Seed], float] | None = None
    ranked: list[tuple[tuple[float, float, int], int, list[Needle], list[Seed], dict]] = []
    avoid = [st for st in structures if AVOID_NAME_RE.search(st.name) and st.voxel_count]
    n_steps = len(cfg.angles_deg) * len(cfg.grid_offsets_mm)
    for step, (theta, offset) in enumerate(itertools.product(cfg.angles_deg, cfg.grid_offsets_mm)):
        report(progress, 0.8 * step / n_steps, f"demo plan: {theta:g}°, grid offset {offset:g} mm")
        th = math.radians(theta)
        direction = (-side * math.sin(th), -math.cos(th), 0.0)
        needles = template_needles(
            base.evolve(prescription=Prescription(pd, "st-ptv", "D90")),
            direction,
            spacing_mm=cfg.needle_spacing_mm,
            ct=ct,
            offset_mm=(offset, 0.0),
        )
        # The needle-warning rule (planner.plan.needles): >= 5 mm from the cord and the canal.
        needles = [
            n
            for n in needles
            if all(
                structure_distance_mm(st, np.asarray(n.entry_mm), np.asarray(n.tip_mm))[0]
                >= cfg.needle_avoid_clearance_mm
                for st in avoid
            )
        ]
        with_needles = base.evolve(needles=tuple(needles))
        for spacing in cfg.seed_spacings_mm:
            loaded = [
                s
                for n in needles
                for s in load_needle_seeds(
                    with_needles, n.id, target_id="st-ptv", spacing_mm=spacing
                )
            ]
            gaps = [
                float(np.min(np.linalg.norm(cord_pts - np.asarray(s.position_mm), axis=1)))
                for s in loaded
            ]
            for clearance in cfg.seed_cord_clearances_mm:
                seeds = [s for s, gap in zip(loaded, gaps, strict=True) if gap >= clearance]
                if len(seeds) < 4:
                    continue
                ss = SeedSet.create([s.position_mm for s in seeds], [s.axis for s in seeds], 1.0)
                d_eval = engine.dose_rate_at_points(ss, eval_pts).dose_gy
                d_cord = engine.dose_rate_at_points(ss, cord_pts).dose_gy
                d90 = float(np.percentile(d_eval, 10.0))
                u_implant = cfg.d90_headroom * pd / d90
                u_cal = math.ceil(u_implant / decay / 0.005) * 0.005
                cord01 = float(np.sort(d_cord)[-n01]) * u_cal * decay
                used = [n for n in needles if any(s.needle_id == n.id for s in seeds)]
                cand: dict[str, float] = {
                    "angle_deg": theta,
                    "grid_offset_mm": offset,
                    "seed_spacing_mm": spacing,
                    "seed_cord_clearance_mm": clearance,
                    "needles": len(used),
                    "seeds": len(seeds),
                    "strength_u": u_cal,
                    "cord_d0_1cc_gy": cord01,
                }
                rep.candidates.append(cand)
                in_range = _STRENGTH_RANGE_U[0] <= u_cal <= _STRENGTH_RANGE_U[1]
                key = (0.0 if in_range else 1.0, round(cord01, 6), len(seeds))
                ranked.append((key, len(ranked), needles, seeds, cand))
    ranked.sort(key=lambda r: (r[0], r[1]))
    for key, _, needles, seeds, cand in ranked[: cfg.refine_best]:
        if key[0] == 0.0:  # strength in range: drop seeds that heat the cord most
            seeds = _drop_cord_seeds(
                engine, seeds, eval_pts, cord_pts, n01, cfg.d90_headroom * pd, decay
            )
        ss = SeedSet.create([s.position_mm for s in seeds], [s.axis for s in seeds], 1.0)
        d90 = float(np.percentile(engine.dose_rate_at_points(ss, eval_pts).dose_gy, 10.0))
        u_cal = math.ceil(cfg.d90_headroom * pd / d90 / decay / 0.005) * 0.005
        d_cord = engine.dose_rate_at_points(ss, cord_pts).dose_gy
        cord01 = float(np.sort(d_cord)[-n01]) * u_cal * decay
        in_range = _STRENGTH_RANGE_U[0] <= u_cal <= _STRENGTH_RANGE_U[1]
        key = (0.0 if in_range else 1.0, round(cord01, 6), len(seeds))
        if best is None or key < best[:3]:
            used = [n for n in needles if any(s.needle_id == n.id for s in seeds)]
            best = (*key, used, seeds, u_cal)  # type: ignore[assignment]
            rep.chosen = {
                **cand,
                "needles": len(used),
                "seeds": len(seeds),
                "seeds_dropped": int(cand["seeds"]) - len(seeds),
                "strength_u": u_cal,
                "cord_d0_1cc_gy": cord01,
            }
    if best is None:
        raise RuntimeError("demo plan: no needle arrangement reaches the target")
    _, _, _, needles, seeds, u_cal = best
    needles, seeds = _renumber(needles, seeds)
    source = SourceSpec(
        model.model_id, model.checksum, u_cal, "U", DEMO_CALIBRATION_DATE, DEMO_IMPLANT_DATE
    )
    plan = base.evolve(needles=tuple(needles), seeds=tuple(seeds), source=source)
    for _ in range(4):  # the DVH's D90 (sub-voxel samples) may differ slightly from the search's
        report(progress, 0.9, "demo plan: checking the dose")
        d = compute_plan_dosimetry(plan)
        d90 = d.metrics["PTV_eval"].d90_gy  # type: ignore[union-attr]
        rep.d90_gy = d90
        rep.cord_d0_1cc_gy = d.metrics["SpinalCord"].d0_1cc_gy  # type: ignore[union-attr]
        if d90 >= pd:
            break
        u_cal = math.ceil(u_cal * 1.01 * pd / d90 / 0.005) * 0.005
        plan = plan.evolve(
            source=SourceSpec(
                model.model_id, model.checksum, u_cal, "U", DEMO_CALIBRATION_DATE, DEMO_IMPLANT_DATE
            )
        )
    report(progress, 1.0, "demo plan ready")
    return plan, rep


def write_demo_plan(
    case_dir: str | Path,
    ct: CTVolume,
    masks: dict[str, NDArray[np.bool_]],
    *,
    settings: DemoPlanSettings | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Path, DemoPlanReport]:
    """Build the demo plan and write ``case_dir/plan.seedplan`` (fixed save time: the bytes
    depend on the plan only)."""
    from planner.plan.plan_file import plan_file_bytes

    plan, rep = build_demo_plan(ct, masks, settings=settings, progress=progress)
    path = Path(case_dir) / DEMO_PLAN_FILE
    path.write_bytes(plan_file_bytes(plan, saved_utc=DEMO_PLAN_UTC, app_version=""))
    return path, rep
