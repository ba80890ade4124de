"""Header-only scan of a DICOM folder: which series are there, and which files were skipped why.

:func:`scan_dicom` walks a folder (recursively), reads each regular file's header only (pydicom
``stop_before_pixels`` + ``specific_tags``; checked in :mod:`.dicom_headers`), groups the images
into series and lists every file it could not use with the reason (INT-1: no silent data loss),
including entries it never opens (FIFOs, sockets, devices, broken or looping symlinks,
unreadable files and folders: :mod:`.paths`). It never decodes pixel data; the loader
(:mod:`planner.imaging.ct_loader`) does that for the one series it loads.

A series is split into *parts* when its images do not share one geometry (rows, columns, pixel
spacing, orientation), e.g. a scout image stored in the same series as the axial stack
(reference/dicom-and-integrity.md §4 #2). Parts are addressed as ``"<SeriesInstanceUID>#<n>"``
(``#1`` is the largest).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.imaging.dicom_headers import (
    CT_IMAGE_STORAGE,
    CT_SOP_CLASSES,
    ENHANCED_CT_IMAGE_STORAGE,
    SECONDARY_CAPTURE_SOP_CLASSES,
    SkippedFile,
    SliceHeader,
    UnusableFileError,
    header_position,
    read_header,
    slices_from_dataset,
    transfer_syntax_name,
)
from planner.imaging.orientation import orientation_name
from planner.imaging.paths import folder_problem, regular_file_problem, walk_files

__all__ = [
    "CT_IMAGE_STORAGE",
    "CT_SOP_CLASSES",
    "ENHANCED_CT_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_SOP_CLASSES",
    "ScanResult",
    "SeriesInfo",
    "SkippedFile",
    "SliceHeader",
    "geometry_difference",
    "scan_dicom",
    "transfer_syntax_name",
]


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


# Images of one series belong to one geometry part when rows/columns are equal and pixel
# spacing and orientation agree to these tolerances (5e-4 in IOP ≈ 0.03°: 0.12 mm at 250 mm).
_IOP_TOL = 5e-4
_SPACING_TOL_MM = 1e-3


def _same_geometry_value(
    x: tuple[float, ...] | None, y: tuple[float, ...] | None, tol: float
) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return max(abs(p - q) for p, q in zip(x, y, strict=True)) <= tol


def _same_geometry(a: SliceHeader, b: SliceHeader) -> bool:
    return (
        (a.rows, a.columns) == (b.rows, b.columns)
        and _same_geometry_value(a.pixel_spacing_mm, b.pixel_spacing_mm, _SPACING_TOL_MM)
        and _same_geometry_value(a.iop, b.iop, _IOP_TOL)
    )


def _split_by_geometry(slices: list[SliceHeader]) -> list[list[SliceHeader]]:
    """Group images by geometry (tolerant, unlike rounding), largest group first.

    Images whose pixel spacing or orientation is missing or invalid have no geometry to
    compare: they stay with the largest part, whose load then refuses them by name (a part of
    their own would let the rest load with a silently interpolated gap).
    """
    parts: list[list[SliceHeader]] = []
    unplaced: list[SliceHeader] = []
    for s in slices:
        if s.pixel_spacing_mm is None or s.iop is None:
            unplaced.append(s)
            continue
        for part in parts:
            if _same_geometry(part[0], s):
                part.append(s)
                break
        else:
            parts.append([s])
    parts.sort(key=lambda p: -len(p))
    if unplaced:
        if parts:
            parts[0].extend(unplaced)
        else:
            parts.append(unplaced)
    return parts


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


def geometry_difference(image: SliceHeader, reference: SliceHeader) -> str:
    """What differs between two images' geometry, for a skip reason (empty when nothing does).

    E.g. "pixel spacing 0.9×0.9 mm instead of 0.7×0.8 mm (column × row)".
    """

    def spacing(h: SliceHeader) -> str:
        ps = h.pixel_spacing_mm
        return "none" if ps is None else f"{ps[1]:.4g}×{ps[0]:.4g} mm"

    def orient(h: SliceHeader) -> str:
        iop = h.iop
        if iop is None:
            return "no orientation"
        return f"{orientation_name(h.normal)} ({', '.join(f'{v:.4g}' for v in iop)})"

    out = []
    if (image.columns, image.rows) != (reference.columns, reference.rows):
        out.append(
            f"image size {image.columns}×{image.rows} instead of "
            f"{reference.columns}×{reference.rows} pixels (columns × rows)"
        )
    if not _same_geometry_value(
        image.pixel_spacing_mm, reference.pixel_spacing_mm, _SPACING_TOL_MM
    ):
        out.append(f"pixel spacing {spacing(image)} instead of {spacing(reference)} (column × row)")
    if not _same_geometry_value(image.iop, reference.iop, _IOP_TOL):
        out.append(f"orientation {orient(image)} instead of {orient(reference)}")
    return "; ".join(out)


def _skip_from_header(path: Path, ds: object, reason: str) -> SkippedFile:
    """A skip record that keeps what the header told about the file's place (if anything)."""
    uid = ""
    try:
        uid = str(ds.get("SeriesInstanceUID", "") or "").strip() if ds is not None else ""  # type: ignore[attr-defined]
    except Exception:  # a damaged header must not stop the report
        uid = ""
    return SkippedFile(path, reason, uid, header_position(ds))  # type: ignore[arg-type]


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
    Only regular files are read: FIFOs, sockets, devices, dangling symlinks, symlink loops,
    unreadable files and folders are listed as skipped with what they are. A missing,
    special or unreadable ``path`` raises InputError; an empty folder gives an empty result
    (the caller decides whether that is an error).
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise InputError("no such file or folder", root)
    if root.is_dir():
        problem = folder_problem(root)
        if problem:
            raise InputError(problem, root)
        files, odd = walk_files(root, recursive=recursive)
    else:
        problem = regular_file_problem(root)
        if problem:
            raise InputError(problem, root)
        files, odd = [root], []
    skipped: list[SkippedFile] = [SkippedFile(p, reason) for p, reason in odd]
    groups: dict[str, list[SliceHeader]] = {}
    total = len(files)
    with warnings.catch_warnings():
        # pydicom warns on every invalid value (e.g. DS 'abc'); the checks here give the reason.
        warnings.simplefilter("ignore")
        for n, f in enumerate(files):
            check_cancelled(cancel, "scan cancelled")
            ds, offset, reason = read_header(f)
            if ds is None:
                skipped.append(SkippedFile(f, reason))
            else:
                try:
                    slices = slices_from_dataset(f, ds, offset)
                except (UnusableFileError, ValueError, TypeError, AttributeError, OSError) as exc:
                    skipped.append(_skip_from_header(f, ds, str(exc)))
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
