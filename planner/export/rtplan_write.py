"""Write the plan as a DICOM RT Brachy Treatment Plan (RTPLAN) for a permanent seed implant.

Layout (validated by ``dciodvfy`` and read by 3D Slicer's RT reader):

* BrachyTreatmentTechnique ``PERMANENT``, BrachyTreatmentType ``LDR``; RTPlanGeometry
  ``PATIENT`` with the RTSTRUCT referenced.
* SourceSequence: one I-125 source per distinct seed strength: model, manufacturer, half-life
  (days), ReferenceAirKermaRate (µGy h⁻¹ at 1 m, numerically S_K in U) at its reference date
  (the calibration date), plus SourceStrengthUnits ``AIR_KERMA_RATE`` and SourceStrength (old
  validators read a rate below 1 as zero and then require them).
* One ApplicationSetup; one channel per needle (seeds ordered from the tip outward) and one
  per seed not on a needle. Each seed gives two control points at its ControlPoint3DPosition
  (LPS mm) with cumulative time weights k → k + 1, so ControlPointIndex runs 0 … N−1 in every
  channel; SourceMovementType ``FIXED``; ChannelTotalTime = the full decay, 1.4427·T½ (s).
* DoseReferenceSequence: the prescription (VOLUME, the prescription structure's ROI number in
  the RTSTRUCT, TargetPrescriptionDose in Gy).
* Every DS value ≤ 16 characters (:func:`planner.export.uids.ds_text`).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dose.sources import load_model
from dose.units import I125_HALF_LIFE_DAYS, I125_MEAN_LIFE_H
from planner.export.rtstruct_write import RTSTRUCT_SOP_CLASS
from planner.export.uids import CTSlices, ExportUIDs, base_dataset, ds_text
from planner.plan.model import Plan, Seed

__all__ = ["RTPLAN_SOP_CLASS", "build_rtplan", "channels", "roi_numbers", "write_rtplan"]

#: RT Plan Storage (the RT Plan IOD with its brachy modules).
RTPLAN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
#: A permanent implant's channel time: the full decay, τ = T½ / ln 2 (s).
FULL_DECAY_S = I125_MEAN_LIFE_H * 3600.0


def roi_numbers(plan: Plan) -> dict[str, int]:
    """Structure id → ROI number in the RTSTRUCT (non-empty structures, 1-based, plan order)."""
    numbers: dict[str, int] = {}
    for s in plan.structures:
        if s.voxel_count > 0:
            numbers[s.id] = len(numbers) + 1
    return numbers


def channels(plan: Plan) -> list[tuple[str, list[Seed]]]:
    """(label, seeds) per channel: one per needle (seeds from the tip outward), then one per
    seed without a needle. Needles without seeds are left out."""
    out: list[tuple[str, list[Seed]]] = []
    for n in plan.needles:
        on = [s for s in plan.seeds if s.needle_id == n.id]
        if not on:
            continue
        tip = np.asarray(n.tip_mm)
        on.sort(key=lambda s: float(np.linalg.norm(np.asarray(s.position_mm) - tip)))
        out.append((n.label or n.id, on))
    for s in plan.seeds:
        if s.needle_id is None:
            out.append((f"free seed {s.id}", [s]))
    return out


def _dicom_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def build_rtplan(plan: Plan, ct: CTSlices, uids: ExportUIDs, *, when: datetime) -> Dataset:
    """The RT Brachy plan dataset of ``plan`` (module docstring)."""
    from dose.errors import InputError

    src = plan.source
    if src is None or src.strength_u is None:
        raise InputError("the plan has no seed strength; an RT Plan needs the source strength")
    if not plan.seeds:
        raise InputError("the plan has no seeds; an RT Plan needs at least one")
    model = load_model(src.model_id)
    ds = base_dataset(
        plan,
        ct,
        sop_class_uid=RTPLAN_SOP_CLASS,
        instance_uid=uids.instance["RTPLAN"],
        series_uid=uids.series["RTPLAN"],
        modality="RTPLAN",
        series_number=902,
        series_description=f"SeedPlan plan: {plan.name or 'plan'} rev {plan.revision}",
        when=when,
    )
    ds.InstanceNumber = plan.revision
    ds.RTPlanLabel = (plan.name or "SeedPlan")[:16]
    ds.RTPlanName = (plan.name or "SeedPlan")[:64]
    ds.RTPlanDescription = (
        f"Permanent I-125 seed implant, revision {plan.revision}, status {plan.status}; "
        "TG-43U1 dose to water"
    )[:1024]
    ds.RTPlanDate = when.strftime("%Y%m%d")
    ds.RTPlanTime = when.strftime("%H%M%S")
    ds.RTPlanGeometry = "PATIENT"
    ss = Dataset()
    ss.ReferencedSOPClassUID = RTSTRUCT_SOP_CLASS
    ss.ReferencedSOPInstanceUID = uids.instance["RTSTRUCT"]
    ds.ReferencedStructureSetSequence = Sequence([ss])

    # --- prescription
    rois = roi_numbers(plan)
    if plan.prescription is not None and plan.prescription.structure_id in rois:
        rx = plan.prescription
        ref = Dataset()
        ref.DoseReferenceNumber = 1
        ref.DoseReferenceUID = uids.instance["RTPLAN"] + ".1"
        ref.DoseReferenceStructureType = "VOLUME"
        ref.DoseReferenceDescription = (
            f"{rx.metric} of {plan.structure(rx.structure_id).name} >= {rx.dose_gy:g} Gy"
        )[:64]
        ref.ReferencedROINumber = rois[rx.structure_id]
        ref.DoseReferenceType = "TARGET"
        ref.TargetPrescriptionDose = ds_text(rx.dose_gy)
        ds.PrescriptionDescription = (
            f"{rx.metric} >= {rx.dose_gy:g} Gy (total permanent-implant dose D-infinity)"
        )[:1024]
        ds.DoseReferenceSequence = Sequence([ref])

    # --- brachy application setup
    ds.BrachyTreatmentTechnique = "PERMANENT"
    ds.BrachyTreatmentType = "LDR"
    machine = Dataset()
    machine.TreatmentMachineName = "MANUAL"
    machine.Manufacturer = ""
    ds.TreatmentMachineSequence = Sequence([machine])

    ref_date = src.calibration_date or src.implant_date or when.date()
    strengths: list[float] = []
    for s in plan.seeds:
        u = float(s.strength_u if s.strength_u is not None else src.strength_u)
        if not any(abs(u - v) < 1e-6 for v in strengths):
            strengths.append(u)
    sources = Sequence()
    for n, u in enumerate(strengths, start=1):
        item = Dataset()
        item.SourceNumber = n
        item.SourceSerialNumber = ""
        item.SourceModelID = model.model[:64] if model.model else src.model_id
        item.SourceDescription = f"{model.manufacturer} {model.model}"[:64]
        item.SourceType = "CYLINDER"
        item.SourceManufacturer = model.manufacturer[:64]
        item.ActiveSourceLength = ds_text(model.active_length_cm * 10.0)
        item.SourceIsotopeName = "I-125"
        item.SourceIsotopeHalfLife = ds_text(I125_HALF_LIFE_DAYS)
        item.SourceStrengthUnits = "AIR_KERMA_RATE"
        item.ReferenceAirKermaRate = ds_text(u)
        item.SourceStrength = ds_text(u)
        item.SourceStrengthReferenceDate = _dicom_date(ref_date)
        item.SourceStrengthReferenceTime = "000000"
        sources.append(item)
    ds.SourceSequence = sources

    decay = src.decay_factor
    chans = Sequence()
    total_rak = 0.0
    for c, (_label, seeds) in enumerate(channels(plan), start=1):
        ch = Dataset()
        ch.ChannelNumber = c
        ch.ChannelTotalTime = ds_text(round(FULL_DECAY_S * len(seeds), 1))
        ch.SourceMovementType = "FIXED"
        u0 = float(seeds[0].strength_u if seeds[0].strength_u is not None else src.strength_u)
        ch.ReferencedSourceNumber = 1 + next(
            i for i, v in enumerate(strengths) if abs(v - u0) < 1e-6
        )
        ch.NumberOfControlPoints = 2 * len(seeds)
        ch.FinalCumulativeTimeWeight = ds_text(float(len(seeds)))
        ch.ChannelLength = None  # Type 2: no afterloader channel
        ch.TransferTubeNumber = None
        points = Sequence()
        for k, s in enumerate(seeds):
            u = float(s.strength_u if s.strength_u is not None else src.strength_u)
            total_rak += u * decay * I125_MEAN_LIFE_H
            for w in (k, k + 1):
                cp = Dataset()
                cp.ControlPointIndex = len(points)
                cp.CumulativeTimeWeight = ds_text(float(w))
                cp.ControlPointRelativePosition = ds_text(0.0)
                cp.ControlPoint3DPosition = [ds_text(round(v, 3)) for v in s.position_mm]
                cp.ControlPointOrientation = [float(v) for v in s.axis]
                points.append(cp)
        ch.BrachyControlPointSequence = points
        chans.append(ch)
    setup = Dataset()
    setup.ApplicationSetupType = "INTERSTITIAL"
    setup.ApplicationSetupNumber = 1
    setup.ApplicationSetupName = "interstitial seed implant"
    setup.TotalReferenceAirKerma = ds_text(round(total_rak, 3))
    setup.ChannelSequence = chans
    ds.ApplicationSetupSequence = Sequence([setup])
    ds.ApprovalStatus = "APPROVED" if plan.is_approved else "UNAPPROVED"
    if plan.is_approved:
        stamp = plan.approved_utc.replace("-", "").replace(":", "")
        ds.ReviewDate = stamp[:8]
        ds.ReviewTime = stamp[9:15]
        ds.ReviewerName = plan.approved_by
    if not math.isfinite(total_rak):
        raise InputError("seed strengths are not finite")
    return ds


def write_rtplan(
    path: str | Path,
    plan: Plan,
    ct: CTSlices,
    uids: ExportUIDs,
    *,
    when: datetime,
    force: bool = False,
    verify=None,
) -> Path:
    """Build and write the RT Plan through the safe-write rule; returns the final path."""
    from planner.files.safe_write import write_with

    ds = build_rtplan(plan, ct, uids, when=when)
    return write_with(
        path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), force=force, verify=verify
    )
