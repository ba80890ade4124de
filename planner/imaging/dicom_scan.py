"""Header-only scan of a DICOM folder: which series are there, and which files were skipped why.

:func:`scan_dicom` walks a folder (recursively), reads each file's header only (pydicom
``stop_before_pixels`` + ``specific_tags``), groups the images into series and lists every file it
could not use with the reason (INT-1: no silent data loss). It never decodes pixel data; the
loader (:mod:`planner.imaging.ct_loader`) does that for the one series it loads.

A series is split into *parts* when its images do not share one geometry (rows, columns, pixel
spacing, orientation), e.g. a scout image stored in the same series as the axial stack
(reference/dicom-and-integrity.md §4 #2). Parts are addressed as ``"<SeriesInstanceUID>#<n>"``
(``#1`` is the largest).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.imaging.orientation import orientation_name

__all__ = [
    "CT_IMAGE_STORAGE",
    "CT_SOP_CLASSES",
    "ENHANCED_CT_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_SOP_CLASSES",
    "ScanResult",
    "SeriesInfo",
    "SkippedFile",
    "SliceHeader",
    "scan_dicom",
    "transfer_syntax_name",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
CT_SOP_CLASSES = frozenset({CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE})
SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Transfer syntaxes whose pixel data are stored raw (so the file size tells truncation).
_UNCOMPRESSED_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
)

_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "SeriesDescription",
    "PatientName",
    "PatientID",
    "StudyDate",
    "FrameOfReferenceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
    "GantryDetectorTilt",
    "InstanceNumber",
    "AcquisitionNumber",
    "NumberOfFrames",
    "BitsAllocated",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "SliceThickness",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
]


def transfer_syntax_name(uid: str) -> str:
    """``"JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)"``, or the bare UID when unknown."""
    name = UID(uid).name if uid else ""
    return f"{name} ({uid})" if name and name != uid else (uid or "unknown transfer syntax")


@dataclass
class SkippedFile:
    """A file (or frame) that was not used, and why."""

    path: Path
    reason: str


@dataclass
class SliceHeader:
    """Header fields of one image (one file, or one frame of a multi-frame file).

    Positions/orientations are LPS mm; ``iop`` is (row direction, column direction) as in DICOM
    ImageOrientationPatient: the first 3 values point along a row (increasing column index).
    """

    path: Path
    frame: int  # 0-based frame index; 0 for single-frame files
    n_frames: int
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    patient_name: str
    description: str
    study_date: str
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    ipp_mm: tuple[float, float, float] | None
    iop: tuple[float, float, float, float, float, float] | None
    rescale_slope: float
    rescale_intercept: float
    gantry_tilt_deg: float | None
    instance_number: int | None
    transfer_syntax_uid: str
    bits_allocated: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    slice_thickness_mm: float | None

    @property
    def normal(self) -> np.ndarray | None:
        """Unit slice normal n = row × column (LPS), or None without orientation."""
        if self.iop is None:
            return None
        row = np.asarray(self.iop[:3], dtype=float)
        col = np.asarray(self.iop[3:], dtype=float)
        n = np.cross(row, col)
        norm = float(np.linalg.norm(n))
        return n / norm if norm > 1e-6 else None


def _iso_date(da: str) -> str:
    da = (da or "").strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    if len(da) == 10 and da[4] == "." and da[7] == ".":  # old ACR-NEMA style
        return da.replace(".", "-")
    return ""


@dataclass
class SeriesInfo:
    """One series (or one geometry part of a series), from headers only."""

    series_instance_uid: str
    modality: str
    sop_class_uid: str
    description: str
    patient_name: str
    patient_id: str
    study_instance_uid: str
    frame_of_reference_uids: set[str]
    study_date: str  # ISO 8601 or ""
    rows: int
    columns: int
    n_files: int
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    orientation: str  # "axial" | "coronal" | "sagittal" | "oblique" (| "unknown" without IOP)
    files: list[Path]
    # --- beyond the shared API: per-image headers and the part key
    slices: list[SliceHeader] = field(default_factory=list, repr=False)
    key: str = ""  # series UID, or "<uid>#<n>" when the series was split by geometry
    part: int = 0  # 0 when not split, else 1-based part number (1 = largest)
    n_parts: int = 1

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.series_instance_uid

    @property
    def n_slices(self) -> int:
        """Number of images (frames of multi-frame files count one each)."""
        return len(self.slices) if self.slices else self.n_files

    @property
    def is_ct(self) -> bool:
        """Modality CT and a CT SOP class (CT Image Storage or Enhanced CT)."""
        return self.modality == "CT" and self.sop_class_uid in CT_SOP_CLASSES

    @property
    def bytes_per_voxel(self) -> int:
        """2 (int16 HU) unless a non-integer rescale forces float32."""
        for s in self.slices:
            if not (
                float(s.rescale_slope).is_integer() and float(s.rescale_intercept).is_integer()
            ):
                return 4
        return 2

    @property
    def slice_spacing_mm(self) -> float | None:
        """Median distance between neighbouring image planes along the slice normal (mm)."""
        normal = self.slices[0].normal if self.slices else None
        pos = [s.ipp_mm for s in self.slices]
        if normal is None or len(pos) < 2 or any(p is None for p in pos):
            return None
        d = np.sort(np.asarray(pos, dtype=float) @ normal)
        gaps = np.diff(d)
        gaps = gaps[gaps > 1e-3]
        return float(np.median(gaps)) if gaps.size else None

    def estimated_memory_bytes(self) -> int:
        """Memory of the loaded HU array: rows × columns × slices × (2 or 4) bytes."""
        return int(self.rows) * int(self.columns) * int(self.n_slices) * self.bytes_per_voxel

    def summary(self) -> str:
        """One line: modality, description, size, spacing, orientation, slices, memory."""
        desc = self.description or "(no description)"
        if self.rows and self.columns:
            size = f"{self.columns}×{self.rows}"
            sp = f"{self.pixel_spacing_mm[1]:.3g}×{self.pixel_spacing_mm[0]:.3g} mm"
            dz = self.slice_spacing_mm
            if dz is not None:
                sp += f" × {dz:.3g} mm"
        else:
            size, sp = "no image", "-"
        mem_mb = self.estimated_memory_bytes() / 2**20
        part = f" (part {self.part} of {self.n_parts})" if self.n_parts > 1 else ""
        return (
            f"{self.modality or '?'}  {desc!r}{part}  {size}  {sp}  {self.orientation}  "
            f"{self.n_slices} slices  {mem_mb:.1f} MiB  [{self.key}]"
        )

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "series_instance_uid": self.series_instance_uid,
            "modality": self.modality,
            "sop_class_uid": self.sop_class_uid,
            "description": self.description,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_instance_uid": self.study_instance_uid,
            "study_date": self.study_date,
            "frame_of_reference_uids": sorted(self.frame_of_reference_uids),
            "rows": self.rows,
            "columns": self.columns,
            "n_files": self.n_files,
            "n_slices": self.n_slices,
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "slice_spacing_mm": self.slice_spacing_mm,
            "orientation": self.orientation,
            "estimated_memory_bytes": self.estimated_memory_bytes(),
            "is_ct": self.is_ct,
            "part": self.part,
            "n_parts": self.n_parts,
        }


@dataclass
class ScanResult:
    """All series found under ``root`` and every file that was skipped (with the reason)."""

    root: Path
    series: list[SeriesInfo]
    skipped: list[SkippedFile]

    def ct_series(self) -> list[SeriesInfo]:
        """Series with modality CT and a CT SOP class, largest first."""
        return sorted((s for s in self.series if s.is_ct), key=lambda s: (-s.n_slices, s.key))

    def largest_ct(self) -> SeriesInfo | None:
        cts = self.ct_series()
        return cts[0] if cts else None

    def find(self, uid_or_key: str) -> list[SeriesInfo]:
        """Series whose key equals ``uid_or_key``, else all parts of that SeriesInstanceUID."""
        exact = [s for s in self.series if s.key == uid_or_key]
        if exact:
            return exact
        return sorted(
            (s for s in self.series if s.series_instance_uid == uid_or_key),
            key=lambda s: s.part,
        )

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "series": [s.to_dict() for s in self.series],
            "skipped": [{"path": str(f.path), "reason": f.reason} for f in self.skipped],
        }


# ---------------------------------------------------------------------------------- reading


def _str(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _float(value: object, default: float | None) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _first_item(seq_owner: object, keyword: str) -> pydicom.Dataset | None:
    """First item of sequence ``keyword`` in a dataset (or None)."""
    if seq_owner is None:
        return None
    seq = getattr(seq_owner, keyword, None)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _read_header(path: Path) -> tuple[pydicom.Dataset | None, int, str]:
    """(dataset, byte offset where pixel data start, reason-if-unusable)."""
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            offset = fp.tell()
    except InvalidDicomError:
        # Files without the 128-byte preamble/"DICM" (§4 #14): accept only if they look like an
        # image object, never junk that happens to parse.
        try:
            with open(path, "rb") as fp:
                ds = pydicom.dcmread(
                    fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True
                )
                offset = fp.tell()
        except Exception:
            return None, 0, "not a DICOM file"
        if not (_str(ds, "SOPClassUID").startswith("1.2.840.10008.") and "Rows" in ds):
            return None, 0, "not a DICOM file"
        return ds, offset, ""
    except (OSError, EOFError) as exc:
        return None, 0, f"unreadable: {exc}"
    except Exception as exc:  # pydicom raises assorted errors on corrupt headers
        return None, 0, f"unreadable DICOM header: {type(exc).__name__}: {exc}"
    return ds, offset, ""


def _transfer_syntax(ds: pydicom.Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    if ts:
        return ts
    # No file meta: pydicom found the encoding by looking at the data.
    if getattr(ds, "is_little_endian", True) is False:
        return "1.2.840.10008.1.2.2"
    return "1.2.840.10008.1.2" if getattr(ds, "is_implicit_VR", True) else "1.2.840.10008.1.2.1"


def _slices_from_dataset(path: Path, ds: pydicom.Dataset, pixel_offset: int) -> list[SliceHeader]:
    """One SliceHeader per frame; raises ValueError with a reason when the file is unusable."""
    sop_class = _str(ds, "SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    media_class = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") if meta else ""
    if _DICOMDIR_SOP_CLASS in (sop_class, media_class):
        raise ValueError("DICOMDIR index file (not an image)")
    ts = _transfer_syntax(ds)
    rows = int(ds.get("Rows", 0) or 0)
    cols = int(ds.get("Columns", 0) or 0)
    n_frames = int(_float(ds.get("NumberOfFrames", 1), 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    has_pixels = pixel_offset < path.stat().st_size
    looks_like_image = bool(rows or "ImagePositionPatient" in ds) or sop_class in (
        CT_SOP_CLASSES | SECONDARY_CAPTURE_SOP_CLASSES
    )
    if looks_like_image and not has_pixels:
        raise ValueError("truncated or without pixel data (no PixelData element)")
    if looks_like_image and not (rows and cols):
        raise ValueError("truncated or damaged header: no Rows/Columns")
    if rows and cols and ts in _UNCOMPRESSED_SYNTAXES:
        # Header-only truncation check: the raw pixel element must fit in the file (§4 #14).
        expected = rows * cols * spp * n_frames * bits // 8
        available = path.stat().st_size - pixel_offset - 8
        if available < expected:
            raise ValueError(
                f"truncated: pixel data need {expected} bytes, file holds {max(available, 0)}"
            )
    common = {
        "path": path,
        "n_frames": n_frames,
        "sop_instance_uid": _str(ds, "SOPInstanceUID"),
        "sop_class_uid": sop_class,
        "modality": _str(ds, "Modality").upper(),
        "series_instance_uid": _str(ds, "SeriesInstanceUID"),
        "study_instance_uid": _str(ds, "StudyInstanceUID"),
        "patient_id": _str(ds, "PatientID"),
        "patient_name": _str(ds, "PatientName"),
        "description": _str(ds, "SeriesDescription"),
        "study_date": _iso_date(_str(ds, "StudyDate")),
        "rows": rows,
        "columns": cols,
        "gantry_tilt_deg": _float(ds.get("GantryDetectorTilt"), None),
        "instance_number": int(_float(ds.get("InstanceNumber"), -1) or 0)
        if ds.get("InstanceNumber") is not None
        else None,
        "transfer_syntax_uid": ts,
        "bits_allocated": bits,
        "pixel_representation": int(ds.get("PixelRepresentation", 0) or 0),
        "samples_per_pixel": spp,
        "photometric": _str(ds, "PhotometricInterpretation"),
        "slice_thickness_mm": _float(ds.get("SliceThickness"), None),
    }
    for_uid = _str(ds, "FrameOfReferenceUID")
    if n_frames > 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        raise ValueError(
            f"multi-frame image ({n_frames} frames) without per-frame functional groups: "
            "the frames' positions are unknown"
        )
    if n_frames <= 1:
        ps = _floats(ds.get("PixelSpacing"), 2)
        return [
            SliceHeader(
                frame=0,
                frame_of_reference_uid=for_uid,
                pixel_spacing_mm=ps,  # type: ignore[arg-type]
                ipp_mm=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
                iop=_floats(ds.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
                rescale_slope=_float(ds.get("RescaleSlope"), 1.0) or 1.0,
                rescale_intercept=_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
                **common,
            )
        ]
    # Multi-frame (Enhanced CT): geometry and rescale per frame from the functional groups
    # (§4 #8), falling back to the shared groups.
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != n_frames:
        raise ValueError(
            f"multi-frame file has {n_frames} frames but {len(per_frame)} per-frame groups"
        )
    out: list[SliceHeader] = []
    for f, group in enumerate(per_frame):

        def item(keyword: str, group: pydicom.Dataset = group) -> pydicom.Dataset | None:
            return _first_item(group, keyword) or _first_item(shared, keyword)

        pos = item("PlanePositionSequence")
        ori = item("PlaneOrientationSequence")
        meas = item("PixelMeasuresSequence")
        xform = item("PixelValueTransformationSequence")
        out.append(
            SliceHeader(
                frame=f,
                frame_of_reference_uid=for_uid,
                pixel_spacing_mm=_floats(meas.get("PixelSpacing") if meas else None, 2),  # type: ignore[arg-type]
                ipp_mm=_floats(pos.get("ImagePositionPatient") if pos else None, 3),  # type: ignore[arg-type]
                iop=_floats(ori.get("ImageOrientationPatient") if ori else None, 6),  # type: ignore[arg-type]
                rescale_slope=_float(xform.get("RescaleSlope") if xform else None, 1.0) or 1.0,
                rescale_intercept=_float(xform.get("RescaleIntercept") if xform else None, 0.0)
                or 0.0,
                **common,
            )
        )
    return out


# Images of one series belong to one geometry part when rows/columns are equal and pixel
# spacing and orientation agree to these tolerances (5e-4 in IOP ≈ 0.03°: 0.12 mm at 250 mm).
_IOP_TOL = 5e-4
_SPACING_TOL_MM = 1e-3


def _same_geometry(a: SliceHeader, b: SliceHeader) -> bool:
    if (a.rows, a.columns) != (b.rows, b.columns):
        return False
    for x, y, tol in (
        (a.pixel_spacing_mm, b.pixel_spacing_mm, _SPACING_TOL_MM),
        (a.iop, b.iop, _IOP_TOL),
    ):
        if (x is None) != (y is None):
            return False
        if (
            x is not None
            and y is not None
            and max(abs(p - q) for p, q in zip(x, y, strict=True)) > tol
        ):
            return False
    return True


def _split_by_geometry(slices: list[SliceHeader]) -> list[list[SliceHeader]]:
    """Group images by geometry (tolerant, unlike rounding), largest group first."""
    parts: list[list[SliceHeader]] = []
    for s in slices:
        for part in parts:
            if _same_geometry(part[0], s):
                part.append(s)
                break
        else:
            parts.append([s])
    return sorted(parts, key=lambda p: -len(p))


def _series_info(uid: str, slices: list[SliceHeader], part: int, n_parts: int) -> SeriesInfo:
    first = slices[0]
    files: list[Path] = []
    seen: set[Path] = set()
    for s in slices:
        if s.path not in seen:
            seen.add(s.path)
            files.append(s.path)
    # The most common SOP class / modality represents the series (mixtures are checked on load).
    sop_classes = [s.sop_class_uid for s in slices]
    modalities = [s.modality for s in slices]
    return SeriesInfo(
        series_instance_uid=uid,
        modality=max(set(modalities), key=modalities.count),
        sop_class_uid=max(set(sop_classes), key=sop_classes.count),
        description=first.description,
        patient_name=first.patient_name,
        patient_id=first.patient_id,
        study_instance_uid=first.study_instance_uid,
        frame_of_reference_uids={s.frame_of_reference_uid for s in slices},
        study_date=first.study_date,
        rows=first.rows,
        columns=first.columns,
        n_files=len(files),
        pixel_spacing_mm=first.pixel_spacing_mm or (0.0, 0.0),
        orientation=orientation_name(first.normal),
        files=files,
        slices=slices,
        key=uid if n_parts == 1 else f"{uid}#{part}",
        part=0 if n_parts == 1 else part,
        n_parts=n_parts,
    )


def _list_files(root: Path, recursive: bool) -> list[Path]:
    if root.is_file():
        return [root]
    out: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    else:
        out = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    return out


def scan_dicom(
    path: str | Path,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    recursive: bool = True,
) -> ScanResult:
    """Scan a DICOM folder (recursively) or a single file, reading headers only.

    ``progress(fraction 0..1, message)`` (:data:`dose.progress.ProgressFn`) is called per file;
    when ``cancel()`` returns True the scan stops and raises :class:`dose.progress.Cancelled`.
    A missing path raises InputError; an empty folder gives an empty result (the caller
    decides whether that is an error).
    """
    root = Path(path)
    if not root.exists():
        raise InputError("no such file or folder", root)
    try:
        files = _list_files(root, recursive)
    except OSError as exc:
        raise InputError(f"cannot list folder: {exc.strerror or exc}", root) from exc
    skipped: list[SkippedFile] = []
    groups: dict[str, list[SliceHeader]] = {}
    total = len(files)
    for n, f in enumerate(files):
        check_cancelled(cancel, "scan cancelled")
        ds, offset, reason = _read_header(f)
        if ds is None:
            skipped.append(SkippedFile(f, reason))
        else:
            try:
                slices = _slices_from_dataset(f, ds, offset)
            except (ValueError, TypeError, AttributeError, OSError) as exc:
                skipped.append(SkippedFile(f, str(exc)))
            else:
                uid = slices[0].series_instance_uid
                if not uid:
                    skipped.append(SkippedFile(f, "no SeriesInstanceUID"))
                else:
                    groups.setdefault(uid, []).extend(slices)
        report(progress, (n + 1) / max(total, 1), f"scanning headers {n + 1}/{total}")

    series: list[SeriesInfo] = []
    for uid, slices in groups.items():
        ordered = _split_by_geometry(slices)
        for i, part_slices in enumerate(ordered, start=1):
            series.append(_series_info(uid, part_slices, i, len(ordered)))
    series.sort(key=lambda s: (s.modality != "CT", -s.n_slices, s.key))
    return ScanResult(root=root, series=series, skipped=skipped)
