"""Build small synthetic DICOM CT series with pydicom, for loader tests.

Every pixel value is a known function of the pixel's LPS position (default: a linear ramp,
which linear interpolation reproduces exactly), so a test can check *where* a loaded voxel is by
its value: ``hu == hu_fn(geometry.zyx_to_world(kji))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
MPEG2 = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile video: no pydicom 3.0 decoder

HuFn = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def linear_hu(xyz_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """HU = 150·x + 100·y + 40·z (x, y, z in LPS mm): linear, so linear interpolation
    reproduces it exactly, and steep (≥ 70 HU per voxel step), so a misplaced voxel shows."""
    return 150.0 * xyz_mm[..., 0] + 100.0 * xyz_mm[..., 1] + 40.0 * xyz_mm[..., 2]


def pixel_world_mm(
    ipp: Sequence[float], iop: Sequence[float], pixel_spacing: Sequence[float], rows: int, cols: int
) -> NDArray[np.float64]:
    """LPS position of every pixel (rows, cols, 3): IPP + c·Δc·row_dir + r·Δr·col_dir."""
    row_dir = np.asarray(iop[:3], float)
    col_dir = np.asarray(iop[3:], float)
    r, c = np.mgrid[0:rows, 0:cols]
    return (
        np.asarray(ipp, float)
        + c[..., None] * float(pixel_spacing[1]) * row_dir
        + r[..., None] * float(pixel_spacing[0]) * col_dir
    )


def slice_positions(
    origin: Sequence[float], iop: Sequence[float], spacing_mm: float, n: int
) -> list[tuple[float, float, float]]:
    """IPPs of a regular stack along the normal row × col."""
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return [tuple(np.asarray(origin, float) + k * spacing_mm * normal) for k in range(n)]


def ct_slice_dataset(
    *,
    ipp: Sequence[float],
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    rows: int = 12,
    cols: int = 10,
    pixel_spacing: Sequence[float] = (0.8, 0.7),
    hu_fn: HuFn = linear_hu,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    sop_class: str = CT_IMAGE_STORAGE,
    patient_id: str = "SP-TEST-1",
    patient_name: str = "Test^Phantom",
    series_uid: str,
    study_uid: str,
    frame_of_reference_uid: str,
    instance_number: int = 1,
    description: str = "synthetic CT",
    gantry_tilt: float | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """One CT image whose stored values encode ``hu_fn`` at each pixel's LPS position."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.StudyDate = "20240315"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SliceThickness = "2.0"
    if gantry_tilt is not None:
        ds.GantryDetectorTilt = f"{gantry_tilt:.2f}"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleType = "HU"
    hu = hu_fn(pixel_world_mm(ipp, iop, pixel_spacing, rows, cols))
    raw = np.rint((hu - intercept) / slope)
    assert raw.min() >= -32768 and raw.max() <= 32767, "test HU out of int16 range"
    ds.PixelData = raw.astype("<i2").tobytes()
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_series(
    folder: Path,
    *,
    n_slices: int = 6,
    origin: Sequence[float] = (-4.0, -5.0, -6.0),
    slice_spacing_mm: float = 2.5,
    positions: Sequence[Sequence[float]] | None = None,
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    prefix: str = "CT",
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    per_slice: Callable[[int, Dataset], None] | None = None,
    **kwargs: object,
) -> list[Path]:
    """Write a regular stack (or one at explicit ``positions``) into ``folder``; returns paths.

    ``per_slice(k, ds)`` may modify each dataset before it is saved; other keyword arguments go
    to :func:`ct_slice_dataset`.
    """
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    if positions is None:
        positions = slice_positions(origin, iop, slice_spacing_mm, n_slices)
    paths = []
    for k, ipp in enumerate(positions):
        ds = ct_slice_dataset(
            ipp=ipp,
            iop=iop,
            series_uid=series_uid,
            study_uid=study_uid,
            frame_of_reference_uid=for_uid,
            instance_number=k + 1,
            **kwargs,  # type: ignore[arg-type]
        )
        if per_slice is not None:
            per_slice(k, ds)
        paths.append(save(ds, folder / f"{prefix}{k:03d}.dcm"))
    return paths


def write_enhanced_ct(
    path: Path,
    *,
    n_frames: int = 5,
    origin: Sequence[float] = (-4.0, -5.0, -6.0),
    slice_spacing_mm: float = 2.0,
    rows: int = 8,
    cols: int = 9,
    pixel_spacing: Sequence[float] = (0.9, 0.8),
    hu_fn: HuFn = linear_hu,
    intercept: float = -1024.0,
) -> Path:
    """A multi-frame Enhanced CT (axial) with per-frame positions and shared rescale."""
    iop = (1, 0, 0, 0, 1, 0)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ENHANCED_CT_IMAGE_STORAGE
    ds.Modality = "CT"
    ds.PatientID = "SP-TEST-1"
    ds.PatientName = "Test^Phantom"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesDescription = "enhanced CT"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n_frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    meas = Dataset()
    meas.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    meas.SliceThickness = f"{slice_spacing_mm:g}"
    ori = Dataset()
    ori.ImageOrientationPatient = list(iop)
    xform = Dataset()
    xform.RescaleSlope, xform.RescaleIntercept, xform.RescaleType = "1", f"{intercept:g}", "HU"
    shared.PixelMeasuresSequence = DicomSequence([meas])
    shared.PlaneOrientationSequence = DicomSequence([ori])
    shared.PixelValueTransformationSequence = DicomSequence([xform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    groups = []
    # Frames stored in reverse order along z, to check that the loader sorts by position.
    for f, ipp in enumerate(reversed(slice_positions(origin, iop, slice_spacing_mm, n_frames))):
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        g = Dataset()
        g.PlanePositionSequence = DicomSequence([pos])
        groups.append(g)
        hu = hu_fn(pixel_world_mm(ipp, iop, pixel_spacing, rows, cols))
        frames.append(np.rint(hu - intercept).astype("<i2"))
        del f
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    ds.PixelData = np.stack(frames).tobytes()
    return save(ds, path)


# ------------------------------------------------------------------ broken and foreign files


def write_junk(path: Path, text: str = "not a DICOM file\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def truncate(path: Path, keep_fraction: float = 0.6) -> Path:
    """Cut a file short (a copy interrupted mid-transfer)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def make_compressed_undecodable(path: Path, transfer_syntax: str = JPEG_BASELINE) -> Path:
    """Rewrite a slice with an encapsulated pixel payload that cannot be decoded.

    With ``JPEG_BASELINE`` the payload is garbage behind a JPEG start marker (the decoder fails);
    with ``MPEG2`` pydicom has no decoder at all (unsupported transfer syntax).
    """
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if transfer_syntax == JPEG_BASELINE:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtstruct(path: Path, *, series_uid: str | None = None) -> Path:
    """A minimal non-image DICOM object (RTSTRUCT, no pixel data)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RT_STRUCTURE_SET
    ds.Modality = "RTSTRUCT"
    ds.PatientID = "SP-TEST-1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StructureSetLabel = "test"
    return save(ds, path)


def hu_at(volume_hu: NDArray, kji: Sequence[int]) -> float:
    return float(volume_hu[tuple(int(v) for v in kji)])


def strip_file_meta(path: Path) -> Path:
    """Rewrite a file without preamble, "DICM" and file meta (old ACR-NEMA style, §4 #14)."""
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(path, ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    return path


def set_raw(ds: Dataset, keyword: str, text: str) -> Dataset:
    """Store ``text`` as the raw value of ``keyword`` (e.g. ``"abc\\0.7"`` for PixelSpacing),
    bypassing pydicom's validation, as a damaged or non-conformant file would hold it."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    raw = text.encode("latin-1")
    if len(raw) % 2:
        raw += b" "
    ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)
    return ds


# ------------------------------------------------------------------ RT structure sets (DVH tests)
RT_FRAME_UID = "1.2.826.0.1.3680043.8.498.1"


def write_structure_set(
    path: Path,
    rois: Sequence[tuple[str, Sequence[tuple[str, object]]]],
    *,
    frame_of_reference_uid: str | None = RT_FRAME_UID,
    roi_frames: Sequence[str | None] | None = None,
    number_of_points: Sequence[Sequence[int | None]] | None = None,
) -> Path:
    """An RTSTRUCT whose contour data are written as given (for malformed-input tests).

    rois: (name, [(ContourGeometricType, data), …]); data is an (n, 3) array or a flat list of
    values written verbatim (any count, "nan" allowed). frame_of_reference_uid: the structure
    set's declared frame (None: no ReferencedFrameOfReferenceSequence); roi_frames: per ROI
    ReferencedFrameOfReferenceUID (None: the attribute is absent; default: the declared frame).
    number_of_points: per ROI and contour, NumberOfContourPoints to write (None: the true count).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RT_STRUCTURE_SET
    ds.Modality = "RTSTRUCT"
    ds.PatientID = "SP-TEST-1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "test"
    if frame_of_reference_uid is not None:
        ref = Dataset()
        ref.FrameOfReferenceUID = frame_of_reference_uid
        ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref])
    ssroi, roic = [], []
    for number, (name, contours) in enumerate(rois, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ROIName = name
        frame = frame_of_reference_uid if roi_frames is None else roi_frames[number - 1]
        if frame is not None:
            item.ReferencedFrameOfReferenceUID = frame
        item.ROIGenerationAlgorithm = "MANUAL"
        ssroi.append(item)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        seq = []
        for c_index, (kind, data) in enumerate(contours):
            c = Dataset()
            c.ContourGeometricType = kind
            if isinstance(data, np.ndarray):
                values = [f"{v:.6g}" for v in data.ravel()]
            else:
                values = [str(v) for v in data]  # type: ignore[union-attr]
            declared = None if number_of_points is None else number_of_points[number - 1][c_index]
            c.NumberOfContourPoints = len(values) // 3 if declared is None else declared
            c.ContourData = values
            seq.append(c)
        rc.ContourSequence = DicomSequence(seq)
        roic.append(rc)
    ds.StructureSetROISequence = DicomSequence(ssroi)
    ds.ROIContourSequence = DicomSequence(roic)
    return save(ds, path)
