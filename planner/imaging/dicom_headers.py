"""Read one DICOM file's header (never its pixels) into checked :class:`SliceHeader` records.

Every header value the loader uses is checked here, once: a value that is present but zero,
negative, NaN, infinite, of the wrong type or with the wrong number of items never becomes a
silent default.

* Geometry (PixelSpacing, ImagePositionPatient, ImageOrientationPatient): a bad value is kept as
  ``None`` with the reason in :attr:`SliceHeader.invalid`; the series is then refused, naming the
  file, the tag and the value (a slice that cannot be placed must not be guessed).
* Pixel-value tags (RescaleSlope ≤ 0 / NaN, RescaleIntercept NaN, NumberOfFrames,
  BitsAllocated, SamplesPerPixel, PixelRepresentation, Rows/Columns): the file is refused
  (raised as :class:`UnusableFileError` with the reason; the scan lists it as skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from planner.imaging.paths import SpecialFileError, open_regular

__all__ = [
    "CT_IMAGE_STORAGE",
    "CT_SOP_CLASSES",
    "ENHANCED_CT_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_SOP_CLASSES",
    "SkippedFile",
    "SliceHeader",
    "UnusableFileError",
    "read_header",
    "slices_from_dataset",
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
UNCOMPRESSED_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
)
# ImageOrientationPatient: two unit vectors (±1e-3) that are orthogonal (|cos| ≤ 1e-3, 0.06°).
_IOP_UNIT_TOL = 1e-3
# Plausibility bounds that keep the geometry arithmetic finite (a CT pixel is ≤ ~2 mm; a
# patient position beyond 10 m is a broken header).
_MAX_PIXEL_MM = 100.0
_MAX_MM = 1e4

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


class UnusableFileError(ValueError):
    """A file (or one frame of it) that cannot be used; the message is the reason."""


def transfer_syntax_name(uid: str) -> str:
    """``"JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)"``, or the bare UID when unknown."""
    name = UID(uid).name if uid else ""
    return f"{name} ({uid})" if name and name != uid else (uid or "unknown transfer syntax")


@dataclass
class SkippedFile:
    """A file (or frame) that was not used, and why.

    ``series_instance_uid`` and ``ipp_mm`` (LPS mm) are filled when the header told them, so a
    gap in a series can name the file that would have filled it.
    """

    path: Path
    reason: str
    series_instance_uid: str = ""
    ipp_mm: tuple[float, float, float] | None = None


@dataclass
class SliceHeader:
    """Header fields of one image (one file, or one frame of a multi-frame file).

    Positions/orientations are LPS mm; ``iop`` is (row direction, column direction) as in DICOM
    ImageOrientationPatient: the first 3 values point along a row (increasing column index).
    ``pixel_spacing_mm``/``ipp_mm``/``iop`` are None when missing *or* invalid; ``invalid`` holds
    one reason per invalid geometry tag ("PixelSpacing '0\\0': not two positive numbers (mm)").
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
    acquisition_number: int | None = None
    rescale_missing: bool = False  # no RescaleSlope/RescaleIntercept: 1 and 0 assumed
    invalid: tuple[str, ...] = ()

    @property
    def normal(self) -> np.ndarray | None:
        """Unit slice normal n = row × column (LPS), or None without (valid) orientation."""
        if self.iop is None:
            return None
        row = np.asarray(self.iop[:3], dtype=float)
        col = np.asarray(self.iop[3:], dtype=float)
        n = np.cross(row, col)
        norm = float(np.linalg.norm(n))
        return n / norm if norm > 1e-6 else None

    @property
    def name(self) -> str:
        """File name with its folder (series may span folders) and frame for multi-frame files."""
        frame = f"[frame {self.frame}]" if self.n_frames > 1 else ""
        return f"{self.path.parent.name}/{self.path.name}{frame}"


# ---------------------------------------------------------------------------------- values


def _str(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _items(value: object) -> list[object]:
    if isinstance(value, (str, bytes, int, float)):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def _shown(value: object) -> str:
    """A header value as the user would see it in a DICOM dump: ``'0\\0'``."""
    text = "\\".join(str(v) for v in _items(value))
    return "'" + (text if len(text) <= 60 else text[:57] + "...") + "'"


def _float(value: object, default: float | None) -> float | None:
    """A finite number, else ``default`` (for informational tags only)."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _int(value: object) -> int | None:
    """An integer value (IS/US), or None when missing or not an integer."""
    f = _float(value, None)
    return int(f) if f is not None and f.is_integer() else None


def _numbers(value: object, n: int) -> tuple[tuple[float, ...] | None, str]:
    """(``n`` finite numbers, "") — or (None, "") when missing, (None, why) when invalid."""
    if value is None or value == "":
        return None, ""
    try:
        out = tuple(float(v) for v in _items(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, "not numbers"
    if len(out) != n:
        return None, f"{len(out)} value(s) instead of {n}"
    if not all(math.isfinite(v) for v in out):
        return None, "not finite numbers"
    return out, ""


def _geometry(keyword: str, value: object, problems: list[str]) -> tuple[float, ...] | None:
    """Checked PixelSpacing / ImagePositionPatient / ImageOrientationPatient (None if bad)."""
    n = {"PixelSpacing": 2, "ImagePositionPatient": 3, "ImageOrientationPatient": 6}[keyword]
    out, why = _numbers(value, n)
    if out is not None and keyword == "PixelSpacing" and min(out) <= 0:
        out, why = None, "not two positive numbers (mm)"
    elif out is not None and keyword == "PixelSpacing" and max(out) > _MAX_PIXEL_MM:
        out, why = None, f"implausible (above {_MAX_PIXEL_MM:g} mm)"
    elif out is not None and keyword == "ImagePositionPatient" and max(map(abs, out)) > _MAX_MM:
        out, why = None, f"implausible (beyond ±{_MAX_MM:g} mm)"
    if out is not None and keyword == "ImageOrientationPatient":
        row, col = np.asarray(out[:3]), np.asarray(out[3:])
        norms = (float(np.linalg.norm(row)), float(np.linalg.norm(col)))
        if max(abs(v - 1.0) for v in norms) > _IOP_UNIT_TOL:
            out, why = None, "row and column directions are not unit vectors"
        elif abs(float(row @ col)) > _IOP_UNIT_TOL:
            out, why = None, "row and column directions are not orthogonal"
    if why:
        problems.append(f"{keyword} {_shown(value)}: {why}")
    return out


def _rescale(owner: object, what: str) -> tuple[float, float, bool]:
    """(slope, intercept, missing) from a dataset or functional-group item; raises
    :class:`UnusableFileError` when present but unusable (slope 0/negative/NaN, intercept NaN)."""
    get = getattr(owner, "get", None)
    slope_v = get("RescaleSlope") if get else None
    icpt_v = get("RescaleIntercept") if get else None
    missing = slope_v is None and icpt_v is None
    slope, intercept = 1.0, 0.0
    if slope_v is not None and slope_v != "":
        f = _float(slope_v, None)
        if f is None or f <= 0:
            raise UnusableFileError(
                f"RescaleSlope {_shown(slope_v)}{what}: not a positive number, so the HU of "
                "this image cannot be computed"
            )
        slope = f
    if icpt_v is not None and icpt_v != "":
        f = _float(icpt_v, None)
        if f is None:
            raise UnusableFileError(
                f"RescaleIntercept {_shown(icpt_v)}{what}: not a finite number, so the HU of "
                "this image cannot be computed"
            )
        intercept = f
    return slope, intercept, missing


def _first_item(seq_owner: object, keyword: str) -> pydicom.Dataset | None:
    """First item of sequence ``keyword`` in a dataset (or None)."""
    if seq_owner is None:
        return None
    seq = getattr(seq_owner, keyword, None)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


# ---------------------------------------------------------------------------------- reading


def read_header(path: Path) -> tuple[pydicom.Dataset | None, int, str]:
    """(dataset, byte offset where pixel data start, reason-if-unusable).

    Only regular files are opened (a FIFO or device never blocks, see :mod:`.paths`).
    """
    try:
        with open_regular(path) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            offset = fp.tell()
    except SpecialFileError as exc:
        return None, 0, exc.reason
    except InvalidDicomError:
        # Files without the 128-byte preamble/"DICM" (§4 #14): accept only if they look like an
        # image object, never junk that happens to parse.
        try:
            with open_regular(path) as fp:
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
        return None, 0, f"unreadable: {exc.strerror if isinstance(exc, OSError) else exc}"
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


def _pixel_format(ds: pydicom.Dataset, image: bool) -> tuple[int, int, int, int, int]:
    """(rows, columns, n_frames, bits_allocated, samples_per_pixel), checked for an image."""
    rows, cols = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames_v = ds.get("NumberOfFrames")
    n_frames = 1 if frames_v is None or frames_v == "" else _int(frames_v)
    bits_v, spp_v = ds.get("BitsAllocated"), ds.get("SamplesPerPixel")
    bits = 16 if bits_v is None else _int(bits_v)
    spp = 1 if spp_v is None else _int(spp_v)
    if image:
        if not rows or not cols or rows < 0 or cols < 0:
            what = "no Rows/Columns" if "Rows" not in ds or "Columns" not in ds else "damaged"
            raise UnusableFileError(
                f"truncated or damaged header ({what}): Rows {_shown(ds.get('Rows'))}, Columns "
                f"{_shown(ds.get('Columns'))}; an image needs both > 0"
            )
        if n_frames is None or n_frames < 1:
            raise UnusableFileError(f"NumberOfFrames {_shown(frames_v)}: not a positive integer")
        if bits not in (1, 8, 16, 32, 64):
            raise UnusableFileError(f"BitsAllocated {_shown(bits_v)}: not 1, 8, 16, 32 or 64")
        if spp is None or spp < 1:
            raise UnusableFileError(f"SamplesPerPixel {_shown(spp_v)}: not a positive integer")
        pr = ds.get("PixelRepresentation")
        if pr is not None and _int(pr) not in (0, 1):
            raise UnusableFileError(f"PixelRepresentation {_shown(pr)}: not 0 or 1")
    return rows or 0, cols or 0, n_frames or 1, bits or 16, spp or 1


def slices_from_dataset(path: Path, ds: pydicom.Dataset, pixel_offset: int) -> list[SliceHeader]:
    """One SliceHeader per frame; raises :class:`UnusableFileError` with the reason otherwise."""
    sop_class = _str(ds, "SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    media_class = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") if meta else ""
    if _DICOMDIR_SOP_CLASS in (sop_class, media_class):
        raise UnusableFileError("DICOMDIR index file (not an image)")
    size = path.stat().st_size
    if not sop_class and not _str(ds, "SeriesInstanceUID") and media_class:
        # Only the file meta survived (a copy cut short): say so, not "no SeriesInstanceUID".
        raise UnusableFileError(
            f"truncated: the file ({size} bytes) ends after its file meta header "
            f"({transfer_syntax_name(media_class).split(' (')[0]}), before the image data set"
        )
    ts = _transfer_syntax(ds)
    image_classes = CT_SOP_CLASSES | SECONDARY_CAPTURE_SOP_CLASSES
    looks_like_image = "Rows" in ds or "ImagePositionPatient" in ds or sop_class in image_classes
    rows, cols, n_frames, bits, spp = _pixel_format(ds, looks_like_image)
    if looks_like_image and pixel_offset >= size:
        raise UnusableFileError("truncated or without pixel data (no PixelData element)")
    if rows and cols and ts in UNCOMPRESSED_SYNTAXES:
        # Header-only truncation check: the raw pixel element must fit in the file (§4 #14).
        expected = rows * cols * spp * n_frames * bits // 8
        available = size - pixel_offset - 8
        if available < expected:
            raise UnusableFileError(
                f"truncated: pixel data need {expected} bytes, file holds {max(available, 0)}"
            )
    instance = ds.get("InstanceNumber")
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
        "instance_number": None if instance is None else _int(instance),
        "acquisition_number": _int(ds.get("AcquisitionNumber")),
        "transfer_syntax_uid": ts,
        "bits_allocated": bits,
        "pixel_representation": _int(ds.get("PixelRepresentation")) or 0,
        "samples_per_pixel": spp,
        "photometric": _str(ds, "PhotometricInterpretation"),
        "slice_thickness_mm": _float(ds.get("SliceThickness"), None),
        "frame_of_reference_uid": _str(ds, "FrameOfReferenceUID"),
    }
    if n_frames > 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        raise UnusableFileError(
            f"multi-frame image ({n_frames} frames) without per-frame functional groups: "
            "the frames' positions are unknown"
        )
    if n_frames <= 1:
        problems: list[str] = []
        slope, intercept, missing = _rescale(ds, "")
        return [
            SliceHeader(
                frame=0,
                pixel_spacing_mm=_geometry("PixelSpacing", ds.get("PixelSpacing"), problems),  # type: ignore[arg-type]
                ipp_mm=_geometry(  # type: ignore[arg-type]
                    "ImagePositionPatient", ds.get("ImagePositionPatient"), problems
                ),
                iop=_geometry(  # type: ignore[arg-type]
                    "ImageOrientationPatient", ds.get("ImageOrientationPatient"), problems
                ),
                rescale_slope=slope,
                rescale_intercept=intercept,
                rescale_missing=missing,
                invalid=tuple(problems),
                **common,
            )
        ]
    # Multi-frame (Enhanced CT): geometry and rescale per frame from the functional groups
    # (§4 #8), falling back to the shared groups.
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != n_frames:
        raise UnusableFileError(
            f"multi-frame file has {n_frames} frames but {len(per_frame)} per-frame groups"
        )
    out: list[SliceHeader] = []
    for f, group in enumerate(per_frame):

        def item(keyword: str, group: pydicom.Dataset = group) -> pydicom.Dataset | None:
            return _first_item(group, keyword) or _first_item(shared, keyword)

        pos = item("PlanePositionSequence")
        ori = item("PlaneOrientationSequence")
        meas = item("PixelMeasuresSequence")
        slope, intercept, missing = _rescale(
            item("PixelValueTransformationSequence"), f" (frame {f})"
        )
        problems = []
        out.append(
            SliceHeader(
                frame=f,
                pixel_spacing_mm=_geometry(  # type: ignore[arg-type]
                    "PixelSpacing", meas.get("PixelSpacing") if meas else None, problems
                ),
                ipp_mm=_geometry(  # type: ignore[arg-type]
                    "ImagePositionPatient",
                    pos.get("ImagePositionPatient") if pos else None,
                    problems,
                ),
                iop=_geometry(  # type: ignore[arg-type]
                    "ImageOrientationPatient",
                    ori.get("ImageOrientationPatient") if ori else None,
                    problems,
                ),
                rescale_slope=slope,
                rescale_intercept=intercept,
                rescale_missing=missing,
                invalid=tuple(f"{p} (frame {f})" for p in problems),
                **common,
            )
        )
    return out


def _iso_date(da: str) -> str:
    da = (da or "").strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    if len(da) == 10 and da[4] == "." and da[7] == ".":  # old ACR-NEMA style
        return da.replace(".", "-")
    return ""


def header_position(ds: pydicom.Dataset | None) -> tuple[float, float, float] | None:
    """ImagePositionPatient of a (possibly unusable) dataset, when it is 3 finite numbers."""
    if ds is None:
        return None
    try:
        value, _ = _numbers(ds.get("ImagePositionPatient"), 3)
    except Exception:  # a damaged header must not stop the report
        return None
    return value  # type: ignore[return-value]
