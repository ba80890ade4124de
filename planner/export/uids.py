"""DICOM identity of the exports: UIDs, the CT they reference, and shared header fields.

UID rule (stable per plan revision)
-----------------------------------
* Study Instance UID and Frame of Reference UID are the CT's (one study, one frame shared with
  the CT; an export never invents either).
* Series Instance UIDs depend only on (plan UID, revision, kind): re-exporting a revision gives
  the same series.
* SOP Instance UIDs depend on (plan UID, revision, kind, plan content SHA-256): the same
  revision with the same content gives byte-identical UIDs; a draft edited without a new
  revision gets new instance UIDs (DICOM forbids one UID for two different contents).

All UIDs are ``2.25.<uuid5>`` (:func:`planner.dicom.ct_write.deterministic_uid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dose.errors import InputError
from planner.dicom.ct_write import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    deterministic_uid,
)
from planner.plan.model import Plan

__all__ = [
    "CTSlices",
    "ExportUIDs",
    "base_dataset",
    "ct_slices",
    "ds_text",
    "export_uids",
    "software_version",
]

KINDS = ("RTSTRUCT", "RTPLAN", "RTDOSE")


def software_version() -> str:
    """The installed SeedPlan version ("" when not installed)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("seedplan")
    except importlib.metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class ExportUIDs:
    """Series and SOP instance UIDs of each export kind (module docstring)."""

    series: dict[str, str]
    instance: dict[str, str]


def export_uids(plan: Plan, content_sha256: str) -> ExportUIDs:
    """The UIDs of ``plan``'s exports (``content_sha256``: the plan's content hash)."""
    base = ("SeedPlan export", plan.plan_uid, f"revision {plan.revision}")
    return ExportUIDs(
        series={k: deterministic_uid(*base, k, "series") for k in KINDS},
        instance={k: deterministic_uid(*base, k, content_sha256, "instance") for k in KINDS},
    )


def ds_text(value: float, max_len: int = 16) -> str:
    """A DS value of at most 16 characters, as precise as fits (no exponent when possible)."""
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"a DS value must be finite, got {value!r}")
    for digits in range(10, -1, -1):
        text = f"{v:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        if len(text) <= max_len:
            return text
    text = f"{v:.6g}"
    if len(text) > max_len:
        text = f"{v:.3e}"
    return text


@dataclass(frozen=True)
class CTSlices:
    """The plan's CT series as DICOM: SOP class and instance UID of each slice k (k = 0 …)."""

    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    study_date: str  # YYYYMMDD or ""
    study_time: str
    study_id: str
    accession_number: str
    referring_physician: str
    patient_birth_date: str
    patient_sex: str


def ct_slices(plan: Plan, ct_path: str | Path | None = None) -> CTSlices:
    """Read the headers of the plan's CT series and match each slice to a CT grid index k.

    ``ct_path``: folder or file of the CT (default: the plan's recorded CT path). Raises
    InputError when the CT is not a DICOM series of the plan (patient, series, frame) or a slice
    of the grid has no image.
    """
    from pydicom import dcmread

    from planner.imaging.dicom_scan import scan_dicom

    path = Path(ct_path or plan.ct.source_path or "")
    if not str(path) or not path.exists():
        raise InputError(
            "the plan's CT is needed to reference its slices (DICOM RT exports) and was not "
            "found; pass the CT folder",
            path if str(path) else None,
        )
    scan = scan_dicom(path)
    series = [s for s in scan.series if s.series_instance_uid == plan.ct.series_instance_uid]
    if not series:
        raise InputError(
            f"holds no DICOM series {plan.ct.series_instance_uid} (the plan's CT); DICOM RT "
            "exports need the plan's CT as DICOM",
            path,
        )
    sl = series[0].slices
    g = plan.geometry
    uids: list[str | None] = [None] * g.shape_zyx[0]
    for h in sl:
        if h.ipp_mm is None:
            continue
        k = float(g.world_to_index(np.asarray(h.ipp_mm))[2])
        kk = round(k)
        if abs(k - kk) < 0.05 and 0 <= kk < len(uids):
            uids[kk] = h.sop_instance_uid
    missing = [k for k, u in enumerate(uids) if u is None]
    if missing:
        raise InputError(
            f"CT series {plan.ct.series_instance_uid} has no image at slice {missing[0]} of the "
            "plan's grid",
            path,
        )
    first = dcmread(sl[0].path, stop_before_pixels=True)
    if str(getattr(first, "FrameOfReferenceUID", "")) != plan.ct.frame_of_reference_uid:
        raise InputError("CT frame of reference is not the plan's", path)
    return CTSlices(
        sop_class_uid=sl[0].sop_class_uid,
        sop_instance_uids=tuple(u for u in uids if u is not None),
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        study_date=str(getattr(first, "StudyDate", "") or ""),
        study_time=str(getattr(first, "StudyTime", "") or ""),
        study_id=str(getattr(first, "StudyID", "") or ""),
        accession_number=str(getattr(first, "AccessionNumber", "") or ""),
        referring_physician=str(getattr(first, "ReferringPhysicianName", "") or ""),
        patient_birth_date=str(getattr(first, "PatientBirthDate", "") or ""),
        patient_sex=str(getattr(first, "PatientSex", "") or ""),
    )


def base_dataset(
    plan: Plan,
    ct: CTSlices,
    *,
    sop_class_uid: str,
    instance_uid: str,
    series_uid: str,
    modality: str,
    series_number: int,
    series_description: str,
    when: datetime,
) -> Dataset:
    """File meta, SOP common, patient, general study (the CT's), RT series, frame of reference
    and general equipment fields shared by every RT export."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = instance_uid
    ds.PatientName = plan.ct.patient_name
    ds.PatientID = plan.ct.patient_id
    ds.PatientBirthDate = ct.patient_birth_date
    ds.PatientSex = ct.patient_sex
    ds.StudyInstanceUID = ct.study_instance_uid
    ds.StudyDate = ct.study_date
    ds.StudyTime = ct.study_time
    ds.ReferringPhysicianName = ct.referring_physician
    ds.StudyID = ct.study_id
    ds.AccessionNumber = ct.accession_number
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = ct.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "SeedPlan"
    ds.ManufacturerModelName = "SeedPlan"
    ds.SoftwareVersions = software_version() or "unknown"
    return ds
