"""Small plans for the plan-document tests (no CT files needed)."""

from __future__ import annotations

from datetime import date

import numpy as np

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
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


def small_ct(shape=(20, 40, 36), spacing=(0.8, 0.9, 2.5), patient_id="P-1") -> CTVolume:
    """A blank CT on an axial grid with a patient, study, series and frame of reference."""
    g = GridGeometry.axis_aligned(shape, (-20.0, -25.0, -40.0), spacing)
    info = PatientInfo(
        patient_id=patient_id,
        patient_name="TEST^PLAN",
        study_instance_uid="1.2.826.0.1.1",
        series_instance_uid="1.2.826.0.1.2",
        frame_of_reference_uid="1.2.826.0.1.3",
    )
    return CTVolume(np.full(g.shape_zyx, -1000, np.int16), g, info)


def full_plan(ct: CTVolume | None = None, *, random_masks: bool = False, seed: int = 1) -> Plan:
    """A plan with every field filled: 3 structures, prescription, source, needles, seeds,
    goals. ``random_masks``: structures with random (incompressible) voxels."""
    ct = ct or small_ct()
    g = ct.geometry
    rng = np.random.default_rng(seed)
    ref = CTReference.from_volume(ct)
    structures = []
    for k, (name, role) in enumerate((("PTV", "target"), ("SpinalCord", "oar"), ("Body", "other"))):
        if random_masks:
            m = rng.random(g.shape_zyx) < 0.5
        else:
            m = np.zeros(g.shape_zyx, bool)
            m[3 + k : 12 + k, 5 + 3 * k : 25, 4 : 20 + k] = True
        structures.append(
            Structure.from_mask(f"st-{k:012x}", name, role, m, g, (255, 40 * k, 0), f"test {k}")
        )
    needles = (Needle("nd-1", (1.0, -30.0, -20.0), (2.0, 5.0, -21.0), "A"),)
    seeds = (
        Seed("sd-1", (1.5, -5.0, -20.5), (0.0, 1.0, 0.0), "nd-1"),
        Seed("sd-2", (1.8, 0.0, -20.8), (0.0, 0.6, 0.8), "nd-1", 0.55),
    )
    goals = (
        Goal("gl-1", "st-000000000000", "D90", ">=", 110.0, "Gy"),
        Goal("gl-2", "st-000000000001", "D0.1cc", "<=", 50.0, "Gy"),
    )
    return Plan(
        plan_uid="0123456789abcdef0123456789abcdef",
        ct=ref,
        structures=tuple(structures),
        prescription=Prescription(110.0, "st-000000000000", "D90"),
        source=SourceSpec("6711", "ab" * 32, 0.5, "mCi", date(2026, 11, 20), date(2026, 12, 1)),
        needles=needles,
        seeds=seeds,
        goals=goals,
        status="reviewed",
        revision=3,
        name="test plan",
        created_utc="2026-12-01T19:00:00Z",
        previous_sha256="cd" * 32,
    )


def plans_equal(a: Plan, b: Plan) -> bool:
    """Field-by-field equality, masks compared voxel by voxel."""
    if len(a.structures) != len(b.structures):
        return False
    for s, t in zip(a.structures, b.structures, strict=True):
        if (s.id, s.name, s.role, s.color_rgb, s.origin) != (
            t.id,
            t.name,
            t.role,
            t.color_rgb,
            t.origin,
        ):
            return False
        if not np.array_equal(s.mask, t.mask) or s.voxel_count != t.voxel_count:
            return False
    ca, cb = a.ct, b.ct
    same_ct = (
        ca.patient_id,
        ca.patient_name,
        ca.study_instance_uid,
        ca.series_instance_uid,
        ca.frame_of_reference_uid,
        ca.geometry_sha256,
        ca.source_path,
    ) == (
        cb.patient_id,
        cb.patient_name,
        cb.study_instance_uid,
        cb.series_instance_uid,
        cb.frame_of_reference_uid,
        cb.geometry_sha256,
        cb.source_path,
    ) and ca.geometry.same_as(cb.geometry, tol_mm=0.0)
    fields = (
        "plan_uid",
        "prescription",
        "source",
        "needles",
        "seeds",
        "goals",
        "status",
        "revision",
        "name",
        "created_utc",
        "approved_by",
        "approved_utc",
        "previous_sha256",
        "registration",
    )
    return same_ct and all(getattr(a, f) == getattr(b, f) for f in fields)
