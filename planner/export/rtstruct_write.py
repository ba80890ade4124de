"""Write the plan's structures as a DICOM RT Structure Set (RTSTRUCT).

Every non-empty structure becomes one ROI of CLOSED_PLANAR contours on the CT slices
(:func:`planner.structures.contours.structure_contours`: voxel-edge outlines, holes and several
parts per slice as separate contours under the even-odd rule, never fewer than 4 points), each
contour referencing its CT image (SOP Instance UID). Works for any CT direction (contours lie on
the slice planes). Seeds are optionally added as POINT ROIs (``include_seed_points``). The
structure set references the CT series, its study and its frame of reference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.export.uids import CTSlices, ExportUIDs, base_dataset, ds_text
from planner.plan.model import Plan
from planner.structures.contours import structure_contours

__all__ = ["RTSTRUCT_SOP_CLASS", "build_rtstruct", "write_rtstruct"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_ROLE_TYPE = {"target": "PTV", "oar": "ORGAN", "other": ""}
_TARGET_TYPES = {"GTV", "CTV", "PTV"}


def _interpreted_type(name: str, role: str) -> str:
    if role == "target":
        up = name.upper()
        return next((t for t in _TARGET_TYPES if up.startswith(t)), "PTV")
    if role == "oar":
        return "ORGAN"
    return "EXTERNAL" if name.strip().lower() in ("body", "external", "skin") else "CONTROL"


def _points_text(points_mm) -> list[str]:
    return [ds_text(round(float(v), 4)) for v in points_mm.reshape(-1)]


def build_rtstruct(
    plan: Plan,
    ct: CTSlices,
    uids: ExportUIDs,
    *,
    when: datetime,
    include_seed_points: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Dataset:
    """The RTSTRUCT dataset of ``plan`` (see the module docstring)."""
    ds = base_dataset(
        plan,
        ct,
        sop_class_uid=RTSTRUCT_SOP_CLASS,
        instance_uid=uids.instance["RTSTRUCT"],
        series_uid=uids.series["RTSTRUCT"],
        modality="RTSTRUCT",
        series_number=901,
        series_description=f"SeedPlan structures: {plan.name or 'plan'} rev {plan.revision}",
        when=when,
    )
    ds.StructureSetLabel = (plan.name or "SeedPlan")[:16]
    ds.StructureSetName = f"rev {plan.revision}"[:64]
    ds.StructureSetDate = when.strftime("%Y%m%d")
    ds.StructureSetTime = when.strftime("%H%M%S")
    ds.InstanceNumber = plan.revision

    images = Sequence()
    for uid in ct.sop_instance_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = ct.sop_class_uid
        item.ReferencedSOPInstanceUID = uid
        images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = ct.series_instance_uid
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = (
        "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, conventional)
    )
    study.ReferencedSOPInstanceUID = ct.study_instance_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ct.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    rois, contours, observations = Sequence(), Sequence(), Sequence()
    structures = [s for s in plan.structures if s.voxel_count > 0]
    for n, s in enumerate(structures, start=1):
        check_cancelled(cancel, "export cancelled")
        roi = Dataset()
        roi.ROINumber = n
        roi.ReferencedFrameOfReferenceUID = ct.frame_of_reference_uid
        roi.ROIName = s.name[:64]
        roi.ROIGenerationAlgorithm = "MANUAL" if s.origin == "drawn" else "SEMIAUTOMATIC"
        rois.append(roi)
        rc = Dataset()
        rc.ROIDisplayColor = [int(c) for c in s.color_rgb]
        rc.ReferencedROINumber = n
        items = Sequence()
        for c in structure_contours(s.crop, plan.geometry, box=s.box):
            item = Dataset()
            ref = Dataset()
            ref.ReferencedSOPClassUID = ct.sop_class_uid
            ref.ReferencedSOPInstanceUID = ct.sop_instance_uids[c.k]
            item.ContourImageSequence = Sequence([ref])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = int(c.points_mm.shape[0])
            item.ContourNumber = len(items) + 1
            item.ContourData = _points_text(c.points_mm)
            items.append(item)
        rc.ContourSequence = items
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = n
        obs.ReferencedROINumber = n
        obs.RTROIInterpretedType = _interpreted_type(s.name, s.role)
        obs.ROIInterpreter = ""
        observations.append(obs)
        report(progress, n / (len(structures) + 1), f"RTSTRUCT: {s.name}")
    if include_seed_points:
        for seed in plan.seeds:
            n = len(rois) + 1
            roi = Dataset()
            roi.ROINumber = n
            roi.ReferencedFrameOfReferenceUID = ct.frame_of_reference_uid
            roi.ROIName = f"seed {seed.id}"[:64]
            roi.ROIGenerationAlgorithm = "AUTOMATIC"
            rois.append(roi)
            rc = Dataset()
            rc.ROIDisplayColor = [255, 255, 255]
            rc.ReferencedROINumber = n
            item = Dataset()
            item.ContourGeometricType = "POINT"
            item.NumberOfContourPoints = 1
            item.ContourNumber = 1
            item.ContourData = [ds_text(round(v, 4)) for v in seed.position_mm]
            rc.ContourSequence = Sequence([item])
            contours.append(rc)
            obs = Dataset()
            obs.ObservationNumber = n
            obs.ReferencedROINumber = n
            obs.RTROIInterpretedType = "BRACHY_SRC_APP"
            obs.ROIInterpreter = ""
            observations.append(obs)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    ds.ApprovalStatus = "APPROVED" if plan.is_approved else "UNAPPROVED"
    if plan.is_approved:
        _approval(ds, plan)
    return ds


def _approval(ds: Dataset, plan: Plan) -> None:
    """Approval module: reviewer and date/time (ISO 8601 UTC in the plan → DICOM DA/TM)."""
    stamp = plan.approved_utc.replace("-", "").replace(":", "")
    ds.ReviewDate = stamp[:8] if len(stamp) >= 8 else ""
    ds.ReviewTime = stamp[9:15] if len(stamp) >= 15 else ""
    ds.ReviewerName = plan.approved_by


def write_rtstruct(
    path: str | Path,
    plan: Plan,
    ct: CTSlices,
    uids: ExportUIDs,
    *,
    when: datetime,
    force: bool = False,
    include_seed_points: bool = False,
    verify: Callable[[Path], object] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Build and write the RTSTRUCT through the safe-write rule; returns the final path."""
    from planner.files.safe_write import write_with

    ds = build_rtstruct(
        plan,
        ct,
        uids,
        when=when,
        include_seed_points=include_seed_points,
        progress=progress,
        cancel=cancel,
    )
    return write_with(
        path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), force=force, verify=verify
    )
