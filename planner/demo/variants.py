"""Generated variants of the demo case for automatic planning (issue 12): tumour level T4–L3,
side, size and a tumour wrapping the cord, each a plan with the demo plan's structures and goals
and its CT.

A variant is named ``<level>[-left|-right][-small|-large][-wrap]`` (defaults: left, the demo's
size, no wrap), e.g. ``"L3-right-large"``; ``"demo"`` is the demo case itself (the default
T3–T12 phantom, 52 slices centred on T9, byte-identical to ``seedplan demo``'s at 512²). Every
other variant is painted by the phantom generator on the T1–L5 spine
(:func:`planner.demo.anatomy.spine_anatomy`): 37 slices (90 mm) centred on the involved body,
the tumour replacing the posterior body and pedicle on its side with epidural and paravertebral
parts (``small``: parts × 0.65; ``large``: × 1.5 with a larger paravertebral mass), ``wrap``
adding a circumferential epidural ring over 30 mm that infiltrates the posterior elements. So
the CT shows what the masks say (no mask is grown or cut after painting).

Structures and goals: :func:`planner.demo.plan.build_demo_plan` (GTV; PTV = GTV + 5 mm −
(cord + 2 mm); PTV_eval = PTV − (cord + 8 mm), prescribed 110 Gy to D90; SpinalCord
D0.1 cm³ ≤ 50 Gy; SpinalCanal; VertebralBody). Its needles and seeds (the demo plan's search;
when that needs seeds above 10 U — a tumour wrapping the cord — it searches at a quarter of the
dose and the prescription is restored) are kept as a starting point, but the seed strength is
the same for every variant (``VARIANT_STRENGTH_U``, the demo plan's at 256²; ``"demo"`` keeps
its plan exactly as :func:`build_demo_plan` makes it), so the goals are not necessarily met
before :func:`planner.optimise.autoplan.autoplan` replans.

Below the conus (the L1–L2 disc) there is no cord: the neural tissue at risk is the cauda
equina (the thecal sac below the conus, ``CaudaEquina`` mask). The plan's ``SpinalCord``
structure is then the cord *and* the cauda equina, so the PTV margins, the keep-out of PTV_eval
and the hard 50 Gy D0.1 cm³ limit apply to the cauda equina as to the cord (conservative: the
cauda equina tolerates more than the cord). The cauda equina is also its own organ at risk
(``CaudaEquina``, reported only). Needles keep the no-pass margin from the SpinalCanal, which
contains both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from planner.demo.anatomy import PhantomSpec, spine_anatomy
from planner.demo.phantom import Phantom, generate_phantom
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Plan, Structure

__all__ = [
    "LEVELS",
    "VARIANTS",
    "VariantSpec",
    "make_variant",
    "parse_variant",
    "variant_phantom",
]

#: Levels a variant's tumour may sit at.
LEVELS = (
    "T4",
    "T5",
    "T6",
    "T7",
    "T8",
    "T9",
    "T10",
    "T11",
    "T12",
    "L1",
    "L2",
    "L3",
)
#: The standard set (benchmarks/bench_autoplan.py, docs/autoplan.md).
VARIANTS = (
    "demo",
    "T4-right",
    "T8-small",
    "T11-right-large",
    "L1",
    "L3-right",
    "L3-large",
    "T9-wrap",
    "L2-wrap",
)
SIZES = {"small": 0.65, "normal": 1.0, "large": 1.5}
#: Seed strength of every variant (U, air-kerma strength at calibration): the demo plan's at
#: 256² (0.78 mCi), so that autoplan results compare across variants.
VARIANT_STRENGTH_U = 0.995
#: Slices of a variant's slab (2.5 mm): 90 mm centred on the involved body.
VARIANT_SLICES = 37
_NAME_RE = re.compile(r"^(?P<level>[TL]\d{1,2})((?:-(?:left|right|small|large|wrap))*)$")


@dataclass(frozen=True)
class VariantSpec:
    """What a variant changes: tumour level, side ("left"/"right"), size and wrapping."""

    level: str = "T9"
    side: str = "left"
    size: str = "normal"
    wrap: bool = False

    @property
    def name(self) -> str:
        parts = [self.level]
        if self.side != "left":
            parts.append(self.side)
        if self.size != "normal":
            parts.append(self.size)
        if self.wrap:
            parts.append("wrap")
        return "-".join(parts)

    @property
    def lumbar(self) -> bool:
        return self.level.startswith("L")


def parse_variant(name: str) -> VariantSpec:
    """``"L3-right-large"`` → VariantSpec("L3", "right", "large"); InputError when malformed."""
    m = _NAME_RE.match(name)
    if m is None or m.group("level") not in LEVELS:
        raise InputError(
            f"unknown variant {name!r}: <level {LEVELS[0]}-{LEVELS[-1]}>"
            "[-left|-right][-small|-large][-wrap], or 'demo'"
        )
    words = [w for w in m.group(2).split("-") if w]
    if len(set(words)) != len(words) or {"left", "right"} <= set(words):
        raise InputError(f"unknown variant {name!r}: a word repeated or contradicting")
    if {"small", "large"} <= set(words):
        raise InputError(f"unknown variant {name!r}: small and large")
    side = "right" if "right" in words else "left"
    size = "small" if "small" in words else "large" if "large" in words else "normal"
    return VariantSpec(m.group("level"), side, size, "wrap" in words)


def variant_phantom(name: str, *, matrix: int = 256) -> Phantom:
    """The variant's phantom (HU and ground-truth masks; module docstring)."""
    if name == "demo":
        return generate_phantom(matrix=matrix)
    v = parse_variant(name)
    base = spine_anatomy()
    lev = base.level(v.level)
    anatomy = replace(
        base,
        involved_level=v.level,
        tumour_z_mm=lev.z_mm,
        tumour_side=-1.0 if v.side == "right" else 1.0,
        tumour_size=SIZES[v.size],
        tumour_wrap=v.wrap,
    )
    spec = PhantomSpec(matrix=matrix, n_slices=VARIANT_SLICES, z_centre_mm=lev.z_mm)
    return generate_phantom(spec, anatomy=anatomy)


def plan_masks(ph: Phantom) -> dict[str, NDArray[np.bool_]]:
    """The masks :func:`build_demo_plan` gets: SpinalCord = cord ∪ cauda equina."""
    masks = dict(ph.masks)
    cauda = masks.get("CaudaEquina")
    if cauda is not None:
        masks["SpinalCord"] = masks["SpinalCord"] | cauda
    return masks


def make_variant(name: str, *, matrix: int = 256) -> tuple[Plan, CTVolume]:
    """A plan (structures, prescription, source, goals; the demo plan's needles and seeds) and
    its CT for variant ``name`` (module docstring); ``matrix`` 256 gives 1.56 mm pixels."""
    from planner.demo.plan import DemoPlanSettings, build_demo_plan

    ph = variant_phantom(name, matrix=matrix)
    info = PatientInfo(
        patient_id=f"VARIANT-{name}",
        patient_name="TEST^VARIANT",
        frame_of_reference_uid="1.2.3",
        series_description=f"SeedPlan variant {name}",
    )
    ct = CTVolume(ph.hu, ph.geometry, info)
    masks = plan_masks(ph)
    try:
        plan, _ = build_demo_plan(ct, masks)
    except (ValueError, RuntimeError):  # no arrangement, or a strength beyond 10 U
        # A tumour wrapping the cord leaves the search's needles too far from much of the
        # target: search at a quarter of the dose (a strength within 10 U), then restore it.
        cfg = DemoPlanSettings()
        pd = cfg.prescription_gy
        plan, _ = build_demo_plan(ct, masks, settings=replace(cfg, prescription_gy=pd / 4))
        assert plan.prescription is not None
        plan = plan.evolve(
            prescription=replace(plan.prescription, dose_gy=pd),
            goals=tuple(
                replace(g, value=pd) if g.structure_id == plan.prescription.structure_id else g
                for g in plan.goals
            ),
        )
    assert plan.source is not None
    if name == "demo":  # the demo keeps its own plan exactly
        return plan, ct
    plan = plan.evolve(source=replace(plan.source, strength_u=VARIANT_STRENGTH_U))
    level = ph.anatomy.involved_level
    plan = plan.evolve(name=f"Variant {name}: MESCC {level}")
    cauda = ph.masks.get("CaudaEquina")
    if cauda is not None:
        structures = tuple(
            replace(s, origin="phantom cord + cauda equina (neural tissue at risk)")
            if s.name == "SpinalCord"
            else s
            for s in plan.structures
        )
        ce = Structure.from_mask(
            "st-cauda",
            "CaudaEquina",
            "oar",
            cauda,
            ph.geometry,
            (255, 160, 255),
            "phantom thecal sac below the conus",
        )
        plan = plan.evolve(structures=(*structures, ce))
    return plan, ct
