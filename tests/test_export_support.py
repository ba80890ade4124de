"""Plans for the export tests, built from the demo case (no test functions here).

:func:`demo_export_plan` loads the demo CT and masks and places needles in an A-P lattice
through the GTV (posterior entries, 8 mm apart in x and z) with a seed every 10 mm inside the
GTV: a realistic MESCC implant of a few dozen seeds, made from the model values only.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np

from planner.imaging.volume import CTVolume
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

ROLES = {"GTV": "target", "SpinalCord": "oar", "SpinalCanal": "other", "VertebralBody": "other"}


@lru_cache(maxsize=1)
def demo_ct() -> tuple[CTVolume, str]:
    """The demo case's CT (loaded once per process) and the case folder."""
    from planner.demo.case import ensure_demo_case
    from planner.imaging.ct_loader import load_ct

    case = ensure_demo_case()
    ct, _ = load_ct(case / "ct")
    return ct, str(case)


def plan_on(ct: CTVolume, masks: dict[str, np.ndarray], *, status: str = "draft") -> Plan:
    """A plan with the given masks (name → (z, y, x) bool) and a needle lattice through GTV."""
    g = ct.geometry
    structures = []
    colors = {
        "GTV": (255, 0, 0),
        "SpinalCord": (230, 200, 0),
        "SpinalCanal": (0, 200, 255),
        "VertebralBody": (0, 170, 0),
    }
    for n, (name, m) in enumerate(masks.items()):
        structures.append(
            Structure.from_mask(
                f"st-{n:012x}",
                name,
                ROLES.get(name, "other"),
                m,
                g,  # type: ignore[arg-type]
                colors.get(name, (0, 180, 255)),
                "test",
            )
        )
    gtv = masks["GTV"]
    world = g.zyx_to_world(np.argwhere(gtv).astype(float))
    lo, hi = world.min(axis=0), world.max(axis=0)
    needles, seeds = [], []
    cord = masks.get("SpinalCord")
    cord_mm = None if cord is None else g.zyx_to_world(np.argwhere(cord).astype(float))
    xs = np.arange(lo[0] + 3.0, hi[0] - 1.0, 7.0)
    zs = np.arange(lo[2] + 2.5, hi[2] - 1.0, 7.5)
    for x in xs:
        for z in zs:
            ys = np.arange(lo[1] + 2.5, hi[1], 8.0)
            pts = np.array([[x, y, z] for y in ys])
            kji = np.rint(g.world_to_zyx(pts)).astype(int)
            ok = np.all((kji >= 0) & (kji < np.asarray(g.shape_zyx)), axis=1)
            inside = np.zeros(len(pts), bool)
            inside[ok] = gtv[tuple(kji[ok].T)]
            if cord_mm is not None:  # keep seed centres ≥ 7 mm from the cord
                far = [float(np.min(np.linalg.norm(cord_mm - p, axis=1))) >= 7.0 for p in pts]
                inside &= np.asarray(far)
            if not inside.any():
                continue
            nid = f"nd-{len(needles):04d}"
            tip = (float(x), float(pts[inside][:, 1].min() - 5.0), float(z))
            entry = (float(x), float(hi[1] + 60.0), float(z))
            needles.append(Needle(nid, entry, tip, f"N{len(needles) + 1}"))
            for p in pts[inside]:
                seeds.append(Seed(f"sd-{len(seeds):04d}", tuple(p), (0.0, 1.0, 0.0), nid))
    ref = CTReference.from_volume(ct)
    goals = [Goal("gl-1", "st-000000000000", "D90", ">=", 110.0, "Gy")]
    if "SpinalCord" in masks:
        cord = next(s.id for s in structures if s.name == "SpinalCord")
        goals.append(Goal("gl-2", cord, "D0.1cc", "<=", 45.0, "Gy"))
    return Plan(
        plan_uid="5eed0000000000000000000000000001",
        ct=ref,
        structures=tuple(structures),
        prescription=Prescription(110.0, "st-000000000000", "D90"),
        source=SourceSpec("6711", "", 0.45, "U", date(2026, 11, 24), date(2026, 12, 1)),
        needles=tuple(needles),
        seeds=tuple(seeds),
        goals=tuple(goals),
        status=status,  # type: ignore[arg-type]
        revision=2,
        name="MESCC T9",
        created_utc="2026-12-01T19:00:00Z",
    )


@lru_cache(maxsize=1)
def demo_export_plan() -> tuple[Plan, CTVolume]:
    """The demo case as a plan (GTV target, cord OAR, canal and body 'other')."""
    from planner.demo.case import load_demo_masks

    ct, case = demo_ct()
    masks = {k: v.voxels for k, v in load_demo_masks(case, ct.geometry).items()}
    order = ["GTV", "SpinalCord", "SpinalCanal", "VertebralBody"]
    return plan_on(ct, {k: masks[k] for k in order if k in masks}), ct
