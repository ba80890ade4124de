"""Synthetic cohort for ``seedplan cohort`` (issue 15): N cases, each a plan plus its post-op CT.

Every case is the demo phantom (:func:`planner.demo.phantom.generate_phantom`, small grid) with

* the tumour at a varied **level** (T8, T9 or T10) and of varied **size**: the phantom's epidural
  GTV plus a paraspinal extension (an ellipsoid painted with tumour HU into soft tissue, never
  into lung, bone or the canal) whose size sets the target volume and hence the seed count
  (7–103 over a cohort);
* a **plan**: parallel posterior needles (−y) on an x–z grid, seeds along them inside the target
  at 5 mm or more from the spinal canal and away from lung (a seed in lung is a known detection
  limitation), S_K scaled so the pre-plan D90 is about 1.15 × the 110 Gy prescription;
* **placement errors** as measured in CT-guided practice (JRR 2021), drawn by the robustness
  model's own sampler (:data:`NEEDLE_ERRORS`, the default
  :class:`~planner.optimise.robustness.NeedleErrorModel`, through
  :func:`~planner.optimise.robustness.perturb_points`: one piece of code for both): per
  needle an entry offset 3.4 ± 1.7 mm, an angle error 2.8 ± 1.7° whose lever is capped at
  55 mm (``max_lever_mm``: the tip moves as on a needle of at most 55 mm, 4.4 ± 2.2 mm
  lateral, the measured tip error), a depth error 5.2 ± 4.8 mm (magnitudes, random
  direction/sign), the seeds moving rigidly with their needle (:func:`needle_miss`), plus
  0.5 mm of seed settling per axis; implanted seeds that would land in lung, in the canal,
  outside the CT or within 5.5 mm of another seed are redrawn (then with every error halved,
  quartered, and finally none);
* a small **rigid patient shift** between the CTs (≈1° rotations, ≈2 mm translations), and the
  post-op CT scanned by :func:`planner.demo.postop.scan_postop` (the demo's post-op scan: the
  scanner model of :mod:`planner.postop.synthetic`).

Case folder (``write_cohort_case``)::

    ct/CT0001.dcm …     planning CT (DICOM series)
    plan.seedplan        the plan (CT path ``ct``, relative to the plan file)
    postop.nrrd          post-op CT (HU, LPS geometry)
    case.json            case id, level, seeds implanted (the clinical record)
    truth.json           true implanted seeds (planning frame, LPS mm), needle errors (and the
                         error model), patient shift, and the 1D D90 of the true implanted
                         seeds (Gy)

Deterministic for a given (cohort seed, case index).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.progress import CancelFn, ProgressFn, check_cancelled, report, sub_progress
from planner.demo.postop import scan_postop
from planner.optimise.robustness import NeedleErrorModel, perturb_points

__all__ = [
    "COHORT_FORMAT",
    "NEEDLE_ERRORS",
    "CohortCaseSpec",
    "SyntheticCase",
    "cohort_specs",
    "make_case",
    "needle_miss",
    "planned_seed_count",
    "write_cohort",
    "write_cohort_case",
]

COHORT_FORMAT = "seedplan-demo-cohort"
COHORT_VERSION = 2
PRESCRIPTION_GY = 110.0
LEVELS = ("T8", "T9", "T10")
#: The implant's needle errors: the robustness model (its defaults, 55 mm lever cap included).
NEEDLE_ERRORS = NeedleErrorModel()
#: Then each implanted seed settles by this much (mm per axis; the cohort's own, in place of
#: the model's 1 mm per-seed jitter: the 5.5 mm seed gap leaves less room for more).
SEED_SETTLING_MM = 0.5
MIN_SEED_GAP_MM = 5.5
#: Sizes below this are part of the phantom's GTV; above, the GTV plus an extension.
SMALL = 0.25
#: Semi-axes (x, y, z; mm) of the paraspinal extension at size 1 (4 mm each just above SMALL).
EXTENSION_RADII_MM = (31.0, 22.0, 33.0)
#: A large extension's centre moves this fraction of the way from its level towards T9 (the
#: slab's centre): a tumour over several levels stays inside the CT.
EXTENSION_Z_PULL = 0.6
#: Planned seeds keep this many slices from the slab's ends (implanted ones 4).
SLAB_MARGIN_SLICES = 5
#: Seeds are loaded up to this far outside the target (peripheral coverage).
SEED_MARGIN_MM = 2.0
#: No seed (planned or implanted) within this distance of CT below −300 HU.
LUNG_REACH_MM = 3.0


@dataclass(frozen=True)
class CohortCaseSpec:
    """One synthetic case: tumour level and size (0 = GTV only … 1 = largest extension)."""

    case_id: str
    level: str = "T9"
    size: float = 0.5
    needle_spacing_mm: float = 10.0
    seed_spacing_mm: float = 9.0
    seed: int = 0
    matrix: int = 256
    fov_mm: float = 200.0
    n_slices: int = 44


@dataclass
class SyntheticCase:
    """A generated case in memory (CT volumes, plan and the truth)."""

    spec: CohortCaseSpec
    planning_ct: object  # CTVolume
    postop_ct: object  # CTVolume
    plan: object  # Plan (CT source path "ct")
    truth: dict


def cohort_specs(
    n: int,
    *,
    seed: int = 0,
    n_slices: int = 44,
    sizes: tuple[float, float] = (0.0, 1.0),
    matrix: int = 256,
) -> list[CohortCaseSpec]:
    """``n`` case specs spread over sizes (stratified) and levels; deterministic in ``seed``.
    ``matrix``: pixels per CT row over the 200 mm field of view (256: 0.78 mm)."""
    if n < 1:
        raise InputError(f"a cohort needs at least 1 case (got {n})")
    rng = np.random.default_rng([COHORT_VERSION, seed])
    strata = (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n
    size = sizes[0] + (sizes[1] - sizes[0]) * rng.permutation(strata)
    out = []
    for i in range(n):
        out.append(
            CohortCaseSpec(
                case_id=f"case-{i + 1:03d}",
                level=LEVELS[int(rng.integers(len(LEVELS)))],
                size=float(size[i]),
                needle_spacing_mm=float(rng.uniform(8.0, 9.0)),
                seed_spacing_mm=float(rng.uniform(7.5, 8.5)),
                seed=int(rng.integers(2**31)),
                matrix=matrix,
                n_slices=n_slices,
            )
        )
    return out


# ---------------------------------------------------------------- anatomy
def _phantom(spec: CohortCaseSpec, progress: ProgressFn | None):
    from planner.demo.phantom import PhantomSpec, default_anatomy, ellipsoid, generate_phantom

    base = default_anatomy()
    lev = base.level(spec.level)
    anatomy = replace(base, involved_level=spec.level, tumour_z_mm=lev.z_mm)
    pspec = PhantomSpec(
        matrix=spec.matrix, fov_mm=spec.fov_mm, n_slices=spec.n_slices, seed=1000 + spec.seed % 997
    )
    extension: dict[str, NDArray[np.bool_]] = {}
    # Size s: below SMALL, a part of the GTV (a ball around its centre, radius 12–20 mm); above,
    # the whole GTV plus a left paraspinal extension whose semi-axes grow with √s' (s' the size
    # above SMALL, rescaled to 0…1), so that the seed count grows about linearly with s: ≈ 7
    # seeds at s = 0, 12 at SMALL, 35 at 0.5, 110 at 1 (at 8.5 × 8 mm spacing).
    s = float(np.clip(spec.size, 0.0, 1.0))
    e = math.sqrt(max(0.0, (s - SMALL) / (1.0 - SMALL)))
    radii = tuple(4.0 + (r - 4.0) * e for r in EXTENSION_RADII_MM)
    centre = (
        14.0 + 8.0 * e,
        lev.y_mm + lev.half_depth_mm + 16.0 + 6.0 * e,
        lev.z_mm * (1.0 - EXTENSION_Z_PULL * e),
    )

    def paint_extension(ctx, hu) -> None:
        lo = [c - r - 2 for c, r in zip(centre, radii, strict=True)]
        hi = [c + r + 2 for c, r in zip(centre, radii, strict=True)]
        blk = ctx.block(lo, hi)
        mask = np.zeros(ctx.shape, dtype=bool)
        if blk is not None:
            shape = ellipsoid(ctx, blk, centre, radii, 10.0)
            view = hu[blk.sl]
            soft = (view > -250.0) & (view < 250.0)  # muscle/fat: never bone, lung or air
            occ = ctx.ramp(shape.sd, shape.w) * soft
            ctx.paint(hu, blk, occ, ctx.anatomy.hu["tumour"])
            mask[blk.sl] = (shape.sd < 0) & soft
        extension["mask"] = mask

    ph = generate_phantom(
        pspec, anatomy=anatomy, extra_painters=[paint_extension], progress=progress
    )
    from scipy.ndimage import binary_opening

    gtv = ph.masks["GTV"]
    if s < SMALL:
        g = ph.geometry
        kji = np.argwhere(gtv)
        c = kji.mean(axis=0)
        r_mm = 12.0 + 8.0 * s / SMALL
        zz, yy, xx = np.ogrid[: gtv.shape[0], : gtv.shape[1], : gtv.shape[2]]
        sz, sy, sx = np.asarray(g.spacing_mm)[::-1]
        ball = ((zz - c[0]) * sz) ** 2 + ((yy - c[1]) * sy) ** 2 + ((xx - c[2]) * sx) ** 2
        return ph, gtv & (ball <= r_mm**2)
    target = (gtv | extension["mask"]) & ~ph.masks["SpinalCanal"]
    return ph, binary_opening(target, iterations=1) | gtv


# ---------------------------------------------------------------- plan
def _layout(
    ph, target: NDArray[np.bool_], spec: CohortCaseSpec
) -> tuple[list[tuple[NDArray, NDArray, list[NDArray]]], NDArray]:
    """Needles (entry, tip, seeds) on an x–z grid, seeds inside the target; and the canal
    distance map (mm)."""
    from scipy.ndimage import distance_transform_edt

    g: GridGeometry = ph.geometry
    sampling = np.asarray(g.spacing_mm)[::-1]
    canal_mm = distance_transform_edt(~ph.masks["SpinalCanal"], sampling=sampling)
    lung_near = _lung_near(ph.hu, g, LUNG_REACH_MM)
    inside = distance_transform_edt(~target, sampling=sampling) <= SEED_MARGIN_MM
    kji = np.argwhere(target)
    lo = g.zyx_to_world(kji.min(axis=0).astype(np.float64))
    hi = g.zyx_to_world(kji.max(axis=0).astype(np.float64))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    centre = 0.5 * (lo + hi)
    sn, ss = spec.needle_spacing_mm, spec.seed_spacing_mm

    def grid(a: float, b: float, c: float, step: float) -> NDArray[np.float64]:
        k = math.ceil((max(c - a, b - c)) / step) + 1
        return c + step * np.arange(-k, k + 1)

    needles = []
    direction = np.array([0.0, -1.0, 0.0])  # posterior → anterior
    entry_y = hi[1] + 40.0
    for x in grid(lo[0], hi[0], centre[0], sn):
        for z in grid(lo[2], hi[2], centre[2], sn):
            seeds = []
            for y in grid(lo[1], hi[1], centre[1], ss)[::-1]:
                p = np.array([x, y, z])
                k = np.rint(g.world_to_zyx(p)).astype(int)
                if np.any(k < 0) or np.any(k >= np.asarray(target.shape)):
                    continue
                if not SLAB_MARGIN_SLICES <= k[0] < target.shape[0] - SLAB_MARGIN_SLICES:
                    continue
                if inside[tuple(k)] and canal_mm[tuple(k)] >= 5.0 and not lung_near[tuple(k)]:
                    seeds.append(p)
            if seeds:
                entry = np.array([x, entry_y, z])
                tip = seeds[-1] + 5.0 * direction
                needles.append((entry, tip, seeds))
    return needles, canal_mm


def _lung_near(hu: NDArray, g: GridGeometry, reach_mm: float = 3.0) -> NDArray[np.bool_]:
    """Voxels within ``reach_mm`` of CT below −300 HU (lung or air)."""
    from scipy.ndimage import maximum_filter

    size = np.maximum(2 * np.ceil(reach_mm / np.asarray(g.spacing_mm)[::-1]).astype(int) + 1, 3)
    return maximum_filter(hu < -300, size=tuple(int(v) for v in size))


def _build_plan(ct, ph, target, needles, strength_u: float):
    from planner.plan.model import Needle, Plan, Prescription, Seed, SourceSpec, Structure

    g = ph.geometry
    structures = (
        Structure.from_mask("st-ptv", "GTV", "target", target, g, (255, 0, 0), "cohort"),
        Structure.from_mask(
            "st-cord", "SpinalCord", "oar", ph.masks["SpinalCord"], g, (255, 255, 0), "cohort"
        ),
    )
    plan_needles, seeds = [], []
    for n, (entry, tip, pts) in enumerate(needles):
        nid = f"nd-{n + 1:03d}"
        plan_needles.append(Needle(nid, tuple(map(float, entry)), tuple(map(float, tip))))
        axis = (tip - entry) / np.linalg.norm(tip - entry)
        for p in pts:
            seeds.append(
                Seed(f"sd-{len(seeds) + 1:03d}", tuple(map(float, p)), tuple(map(float, axis)), nid)
            )
    return Plan.new(
        ct,
        structures=structures,
        prescription=Prescription(PRESCRIPTION_GY, "st-ptv", "D90"),
        source=SourceSpec(
            model_id="6711",
            strength_u=float(strength_u),
            calibration_date=dt.date(2026, 11, 1),
            implant_date=dt.date(2026, 11, 1),
        ),
        needles=tuple(plan_needles),
        seeds=tuple(seeds),
        name="cohort case",
    )


def planned_seed_count(spec: CohortCaseSpec) -> int:
    """The number of seeds :func:`make_case` plans for ``spec`` (its ``seeds_planned``): the
    phantom and the needle layout only, without the plan's dose, the implant or the post-op
    scan (about half the time of a case; the seed-count spread of a cohort from its specs)."""
    ph, target = _phantom(spec, None)
    needles, _ = _layout(ph, target, spec)
    return sum(len(pts) for _, _, pts in needles)


# ---------------------------------------------------------------- implant
def _scaled(model: NeedleErrorModel, scale: float) -> NeedleErrorModel:
    """``model`` with every needle-error magnitude (means, SDs) × ``scale``; the same cap."""
    return replace(
        model,
        entry_mm=(model.entry_mm[0] * scale, model.entry_mm[1] * scale),
        angle_deg=(model.angle_deg[0] * scale, model.angle_deg[1] * scale),
        depth_mm=(model.depth_mm[0] * scale, model.depth_mm[1] * scale),
    )


def needle_miss(
    rng: np.random.Generator,
    entry_mm: NDArray[np.float64],
    tip_mm: NDArray[np.float64],
    points_mm: NDArray[np.float64],
    *,
    scale: float = 1.0,
    model: NeedleErrorModel = NEEDLE_ERRORS,
) -> tuple[NDArray[np.float64], dict[str, float]]:
    """Where the seeds planned at ``points_mm`` (M, 3) on the needle ``entry_mm`` → ``tip_mm``
    land: one draw of the robustness model's needle error
    (:func:`planner.optimise.robustness.perturb_points`: entry shift, turn with the lever cap,
    depth; the seeds move rigidly with the needle; no per-seed jitter), every magnitude ×
    ``scale``. Returns the (M, 3) positions (LPS mm) and the sizes of the miss:
    ``entry_mm`` (lateral entry shift), ``angle_deg`` (the needle's turn, after the cap),
    ``depth_mm`` (+: deeper) and ``tip_lateral_mm`` (the tip's error ⟂ the planned axis)."""
    m = _scaled(model, scale)
    e0 = np.asarray(entry_mm, dtype=np.float64)
    t0 = np.asarray(tip_mm, dtype=np.float64)
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    moved = perturb_points(np.vstack([pts, e0, t0]), e0, t0, m, rng)
    new, e1, t1 = moved[:-2], moved[-2], moved[-1]
    d = (t0 - e0) / np.linalg.norm(t0 - e0)
    d1 = (t1 - e1) / np.linalg.norm(t1 - e1)
    cos = float(np.clip(d1 @ d, -1.0, 1.0))
    depth = float((e1 - e0) @ d) / cos  # e1 = e0 + shift (⟂ d) + depth · d1
    shift = e1 - e0 - depth * d1
    err = t1 - t0
    lateral = err - (err @ d) * d
    sizes = {
        "entry_mm": float(np.linalg.norm(shift)),
        "angle_deg": math.degrees(math.acos(cos)),
        "depth_mm": depth,
        "tip_lateral_mm": float(np.linalg.norm(lateral)),
    }
    return new, sizes


def _implant(ph, needles, canal_mm, rng: np.random.Generator):
    """Implanted seed positions (planning frame) and per-needle errors."""
    g: GridGeometry = ph.geometry
    lung_near = _lung_near(ph.hu, g, LUNG_REACH_MM)
    shape = np.asarray(ph.hu.shape)
    placed: list[NDArray] = []
    errors = []

    def acceptable(pts: NDArray) -> bool:
        k = np.rint(g.world_to_zyx(pts)).astype(int)
        margin = np.array([4, 12, 12])
        if np.any(k < margin) or np.any(k >= shape - margin):
            return False
        if np.any(lung_near[k[:, 0], k[:, 1], k[:, 2]]) or np.any(canal_mm[tuple(k.T)] < 1.5):
            return False
        # Only pairs with a new seed: a pair placed earlier (a forced error-free needle) that
        # is already too close must not make every later needle fail too.
        others = np.array(placed) if placed else np.empty((0, 3))
        d = np.linalg.norm(pts[:, None] - np.vstack([others, pts])[None], axis=-1)
        d[:, len(others) :][np.diag_indices(len(pts))] = np.inf
        return bool(d.min() >= MIN_SEED_GAP_MM) if d.size > len(pts) else True

    for entry, tip, pts in needles:
        chosen = None
        for attempt in range(121):
            scale = 1.0 if attempt < 40 else 0.5 if attempt < 80 else 0.25 if attempt < 120 else 0.0
            new, sizes = needle_miss(rng, entry, tip, np.array(pts), scale=scale)
            new = new + rng.normal(0.0, SEED_SETTLING_MM, new.shape) * (scale > 0)
            if acceptable(new) or scale == 0.0:
                chosen = (new, sizes, scale)
                break
        assert chosen is not None
        new, sizes, scale = chosen
        placed.extend(new)
        errors.append({**sizes, "error_scale": scale})
    return np.array(placed), errors


def make_case(
    spec: CohortCaseSpec,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> SyntheticCase:
    """Generate one case in memory (module docstring)."""
    from planner.imaging.volume import CTVolume, PatientInfo
    from planner.plan.dosimetry import compute_plan_dosimetry
    from planner.plan.model import Seed

    rng = np.random.default_rng([COHORT_VERSION, spec.seed])
    ph, target = _phantom(spec, sub_progress(progress, 0.0, 0.4))
    check_cancelled(cancel)
    info = PatientInfo(
        patient_id=f"COHORT-{spec.case_id}",
        patient_name=f"COHORT^{spec.case_id.upper()}",
        frame_of_reference_uid=f"1.2.826.0.1.3680043.10.1015.{spec.seed % 10**9}",
    )
    ct = CTVolume(ph.hu, ph.geometry, info)
    needles, canal_mm = _layout(ph, target, spec)
    if sum(len(n[2]) for n in needles) < 2:
        raise InputError(f"{spec.case_id}: the target is too small for a seed implant")
    report(progress, 0.45, "planning")
    plan = _build_plan(ct, ph, target, needles, 1.0)
    unit = compute_plan_dosimetry(plan, ct, formalism="2d", cancel=cancel)
    d90_per_u = unit.metrics["GTV"].d90_gy
    strength_u = float(np.clip(1.15 * PRESCRIPTION_GY / max(d90_per_u, 1e-6), 0.3, 1.27))
    plan = plan.evolve(source=replace(plan.source, strength_u=round(strength_u, 3)))
    report(progress, 0.6, "implant")
    implanted, errors = _implant(ph, needles, canal_mm, rng)
    axes = []
    for entry, tip, pts in needles:
        axes.extend([(tip - entry) / np.linalg.norm(tip - entry)] * len(pts))
    axes = np.array(axes) + rng.normal(0.0, 0.08, (len(implanted), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    centre = ph.geometry.zyx_to_world(np.argwhere(target).mean(axis=0))
    # The patient on the couch (≈1° rotations, ≈2 mm translations) and the day-0 scan.
    rotation_deg, shift_mm = rng.normal(0.0, 0.8, 3), rng.normal(0.0, 2.0, 3)
    check_cancelled(cancel)
    report(progress, 0.7, "post-op CT")
    scan = scan_postop(
        ct,
        implanted,
        axes,
        centre_mm=centre,
        rotation_deg=rotation_deg,
        shift_mm=shift_mm,
        rng=int(rng.integers(2**31)),
    )
    post = scan.ct
    shift = {
        "rotation_deg": rotation_deg.tolist(),
        "translation_mm": shift_mm.tolist(),
        "postop_to_plan": scan.postop_to_plan.to_dict(),
    }
    truth_plan = plan.evolve(
        seeds=tuple(Seed(f"sd-t{i:03d}", tuple(map(float, p))) for i, p in enumerate(implanted)),
        needles=(),
    )
    report(progress, 0.8, "true post-op dose")
    truth_dose = compute_plan_dosimetry(truth_plan, ct, formalism="1d", cancel=cancel)
    truth = {
        "case_id": spec.case_id,
        "spec": asdict(spec),
        "seeds_planned": len(plan.seeds),
        "seeds_implanted": len(implanted),
        "strength_U": plan.source.strength_u,
        "target_volume_cm3": plan.structures[0].voxel_count
        * float(np.prod(ph.geometry.spacing_mm))
        / 1000.0,
        "implanted_mm": implanted.tolist(),
        "needle_errors": errors,
        "needle_error_model": NEEDLE_ERRORS.to_dict(),
        "patient_shift": shift,
        "true_postop_d90_gy_1d": truth_dose.metrics["GTV"].d90_gy,
        "true_postop_v100_percent_1d": truth_dose.metrics["GTV"].v100_percent,
    }
    report(progress, 1.0, "case ready")
    return SyntheticCase(spec, ct, post, plan, truth)


# ---------------------------------------------------------------- files
def write_cohort_case(
    spec: CohortCaseSpec,
    folder: str | Path,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Generate ``spec`` and write it into the new folder ``folder`` (module docstring)."""
    from planner.dicom.ct_write import write_ct_series
    from planner.files.safe_write import write_text
    from planner.imaging.ct_loader import load_ct
    from planner.imaging.image_files import write_image
    from planner.plan.model import CTReference, Structure
    from planner.plan.plan_file import save_plan

    folder = Path(folder)
    case = make_case(spec, progress=sub_progress(progress, 0.0, 0.9), cancel=cancel)
    folder.mkdir()
    write_ct_series(
        case.planning_ct, folder / "ct", uid_entropy=["cohort", spec.case_id, str(spec.seed)]
    )
    loaded, _ = load_ct(folder / "ct")
    plan = case.plan
    plan_on_disk = plan.evolve(
        ct=replace(CTReference.from_volume(loaded), source_path="ct"),
        structures=tuple(
            Structure.from_mask(
                s.id, s.name, s.role, s.mask, loaded.geometry, s.color_rgb, s.origin
            )
            for s in plan.structures
        ),
    )
    save_plan(plan_on_disk, folder / "plan.seedplan")
    write_image(case.postop_ct.hu, case.postop_ct.geometry, folder / "postop.nrrd")
    meta = {
        "format": COHORT_FORMAT,
        "version": COHORT_VERSION,
        "case_id": spec.case_id,
        "level": spec.level,
        "seeds_implanted": case.truth["seeds_implanted"],
    }
    write_text(folder / "case.json", json.dumps(meta, indent=1) + "\n")
    write_text(folder / "truth.json", json.dumps(case.truth, indent=1) + "\n")
    report(progress, 1.0, f"{spec.case_id} written")
    return folder


def _is_previous_cohort(out: Path) -> bool:
    try:
        doc = json.loads((out / "cohort.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == COHORT_FORMAT


def write_cohort(
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    force: bool = False,
    n_slices: int = 44,
    sizes: tuple[float, float] = (0.0, 1.0),
    matrix: int = 256,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> list[Path]:
    """Write ``n`` synthetic cases into ``out`` (``out/case-001`` …, plus ``cohort.json``).

    ``out`` is new, empty, or (with ``force``) a previous demo cohort, replaced only once the
    new one is complete (built in a hidden sibling folder, then renamed into place).
    """
    from planner.files.safe_write import check_output_folder, fsync_tree

    out = check_output_folder(out)
    if out.exists() and any(out.iterdir()):
        if not _is_previous_cohort(out):
            raise InputError("is not empty and not a previous demo cohort: choose another", out)
        if not force:
            raise InputError("holds a demo cohort (use --force to replace it)", out)
    specs = cohort_specs(n, seed=seed, n_slices=n_slices, sizes=sizes, matrix=matrix)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for i, spec in enumerate(specs):
            check_cancelled(cancel)
            write_cohort_case(
                spec, tmp / spec.case_id, progress=sub_progress(progress, i / n, (i + 1) / n)
            )
        doc = {
            "format": COHORT_FORMAT,
            "version": COHORT_VERSION,
            "seed": seed,
            "cases": [asdict(s) for s in specs],
        }
        (tmp / "cohort.json").write_text(json.dumps(doc, indent=1) + "\n")
        fsync_tree(tmp)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / s.case_id for s in specs]
