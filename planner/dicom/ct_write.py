"""Write a :class:`~planner.imaging.volume.CTVolume` as a DICOM CT Image Storage series.

One file per slice, explicit VR little endian, HU stored as unsigned 16-bit with
``RescaleSlope`` 1 and ``RescaleIntercept`` −1024 (so HU −1024 … 64511 fit; values below −1024
are clipped). Geometry comes from the volume's :class:`~dose.geometry.GridGeometry`:
``ImageOrientationPatient`` = the i and j direction columns, ``ImagePositionPatient`` = the
centre of voxel (0, 0, k), so non-identity directions are written correctly.

UIDs are random by default; pass ``uid_entropy`` to derive every UID deterministically (same
input → same UIDs → same bytes), as the demo case does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from planner.imaging.volume import CTVolume

__all__ = ["CTSeriesOptions", "ct_series_uids", "deterministic_uid", "write_ct_series"]

#: Namespace of SeedPlan's name-based UUIDs (itself a name-based UUID of the project's name).
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "seedplan.invalid")


def deterministic_uid(*parts: str) -> str:
    """A DICOM UID that depends only on ``parts``: ``2.25.<int>`` of a name-based (SHA-1,
    version 5) UUID (DICOM PS3.5 §B.2 / ISO/IEC 9834-8). Note that pydicom's
    ``generate_uid(prefix=None, entropy_srcs=...)`` ignores the entropy and is random."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(31).join(parts)).int}"


#: Implementation identity written in every file meta header (fixed, derived from our name).
IMPLEMENTATION_CLASS_UID = deterministic_uid("SeedPlan", "implementation")
IMPLEMENTATION_VERSION_NAME = "SEEDPLAN_0_1"
HU_INTERCEPT = -1024.0


@dataclass(frozen=True)
class CTSeriesOptions:
    """What to write besides the pixels (strings are written as given, dates from ``when``)."""

    series_number: int = 1
    series_description: str = "CT"
    study_description: str = ""
    study_id: str = "1"
    accession_number: str = ""
    manufacturer: str = "SeedPlan"
    model_name: str = "SeedPlan"
    software_version: str = ""
    institution: str = ""
    patient_sex: str = ""  # "M", "F", "O" or "" (unknown)
    patient_birth_date: str = ""  # YYYYMMDD or ""
    kvp: float | None = 120.0
    convolution_kernel: str = ""
    body_part: str = ""  # BodyPartExamined, e.g. "CHEST"; "" = unknown (Laterality left empty)
    derived: bool = False  # ImageType DERIVED\SECONDARY (e.g. synthetic or resampled)
    window_center_hu: float = 40.0
    window_width_hu: float = 400.0
    file_prefix: str = "CT"


def ct_series_uids(volume: CTVolume, uid_entropy: Sequence[str] | None) -> dict[str, str]:
    """Study, series and frame-of-reference UIDs: the volume's own when set, else derived from
    ``uid_entropy`` (deterministic) or random."""

    def make(kind: str) -> str:
        if uid_entropy is None:
            return generate_uid()
        return deterministic_uid(*uid_entropy, kind)

    info = volume.info
    return {
        "study": info.study_instance_uid or make("study"),
        "series": info.series_instance_uid or make("series"),
        "frame": info.frame_of_reference_uid or make("frame-of-reference"),
    }


def _ds_number(value: float) -> str:
    """A DS string of at most 16 characters (DICOM limit) without exponent when possible."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if len(text) > 16:
        text = f"{value:.9g}"
    return text


def write_ct_series(
    volume: CTVolume,
    out_dir: str | Path,
    *,
    options: CTSeriesOptions | None = None,
    uid_entropy: Sequence[str] | None = None,
    when: datetime | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[Path]:
    """Write ``volume`` as ``<out_dir>/<prefix>NNNN.dcm`` (one slice per file); returns the paths
    in slice order (k = 0 first).

    ``when`` sets every date/time (default: now); ``uid_entropy`` makes all UIDs deterministic.
    Patient name/ID and existing UIDs are taken from ``volume.info``.
    """
    opts = options or CTSeriesOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    when = when or datetime.now().replace(microsecond=0)
    date = when.strftime("%Y%m%d")
    time = when.strftime("%H%M%S")
    uids = ct_series_uids(volume, uid_entropy)
    geom = volume.geometry
    nz, ny, nx = geom.shape_zyx
    dx, dy, dz = (float(s) for s in geom.spacing_mm)
    row_dir = geom.direction[:, 0]  # direction of increasing column index (i)
    col_dir = geom.direction[:, 1]  # direction of increasing row index (j)
    normal = geom.direction[:, 2]
    iop = [_ds_number(float(v)) for v in (*row_dir, *col_dir)]

    hu = np.asarray(volume.hu)
    if np.issubdtype(hu.dtype, np.floating):
        hu = np.rint(hu)
    stored_all = np.clip(hu.astype(np.int64) - int(HU_INTERCEPT), 0, 65535)

    info = volume.info
    paths: list[Path] = []
    for k in range(nz):
        if uid_entropy is None:
            sop_uid = generate_uid()
        else:
            sop_uid = deterministic_uid(*uid_entropy, uids["series"], str(k))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = (
            ["DERIVED", "SECONDARY", "AXIAL"] if opts.derived else ["ORIGINAL", "PRIMARY", "AXIAL"]
        )
        ds.InstanceCreationDate = date
        ds.InstanceCreationTime = time
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = date
        ds.SeriesDate = date
        ds.AcquisitionDate = date
        ds.ContentDate = date
        ds.StudyTime = time
        ds.SeriesTime = time
        ds.AcquisitionTime = time
        ds.ContentTime = time
        ds.AccessionNumber = opts.accession_number
        ds.Modality = "CT"
        ds.Manufacturer = opts.manufacturer
        if opts.institution:
            ds.InstitutionName = opts.institution
        ds.ReferringPhysicianName = ""
        if opts.study_description:
            ds.StudyDescription = opts.study_description
        ds.SeriesDescription = opts.series_description or info.series_description
        ds.ManufacturerModelName = opts.model_name
        ds.PatientName = info.patient_name
        ds.PatientID = info.patient_id
        ds.PatientBirthDate = opts.patient_birth_date
        ds.PatientSex = opts.patient_sex
        if opts.body_part:
            ds.BodyPartExamined = opts.body_part
        else:
            # Laterality (General Series, type 2C) is required for paired body parts; with the
            # body part unknown it is written empty (= unknown).
            ds.Laterality = ""
        ds.SliceThickness = _ds_number(dz)
        if opts.kvp is not None:
            ds.KVP = _ds_number(opts.kvp)
        ds.SpacingBetweenSlices = _ds_number(dz)
        if opts.software_version:
            ds.SoftwareVersions = opts.software_version
        if opts.convolution_kernel:
            ds.ConvolutionKernel = opts.convolution_kernel
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = uids["study"]
        ds.SeriesInstanceUID = uids["series"]
        ds.StudyID = opts.study_id
        ds.SeriesNumber = opts.series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ipp = geom.index_to_world(np.array([0.0, 0.0, float(k)]))
        ds.ImagePositionPatient = [_ds_number(float(v)) for v in ipp]
        ds.ImageOrientationPatient = iop
        ds.FrameOfReferenceUID = uids["frame"]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds_number(float(np.dot(ipp, normal)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.PixelSpacing = [_ds_number(dy), _ds_number(dx)]  # row spacing, column spacing
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.WindowCenter = _ds_number(opts.window_center_hu)
        ds.WindowWidth = _ds_number(opts.window_width_hu)
        ds.RescaleIntercept = _ds_number(HU_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = stored_all[k].astype("<u2").tobytes()
        path = out / f"{opts.file_prefix}{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        if progress is not None and (k % 8 == 0 or k == nz - 1):
            progress((k + 1) / nz, f"writing DICOM slice {k + 1}/{nz}")
    return paths
