"""Load a CT series into a :class:`~planner.imaging.volume.CTVolume`, checking it
 and saying what it found.

The loader never loads a series silently wrong (reference/dicom-and-integrity.md §4, INT-1/INT-2):

* identity: modality CT and a CT SOP class (CT Image Storage, Enhanced CT; secondary captures
  with modality CT load with a warning), one PatientID, one FrameOfReferenceUID;
* files: unreadable, truncated, undecodable (compressed with an unsupported transfer syntax) files
  are skipped and listed with the reason; duplicate SOP Instance UIDs are dropped and listed;
  two *different* images at one position refuse the series;
* geometry: slice positions are computed along the slice normal n = row × column from each
  image's ImagePositionPatient/ImageOrientationPatient (SimpleITK only warns and averages).
  Missing slices / non-uniform spacing and gantry tilt (GantryDetectorTilt ≠ 0, or the position
  step not parallel to n, i.e. a *shear*) are either resampled onto a regular grid — with a
  warning in the report and in ``CTVolume.warnings`` — or refused (``allow_resample=False``);
* HU: RescaleSlope/Intercept are applied per slice, and the HU range is checked for air.

Resampling geometry (tilt and gaps). The slices of a tilted acquisition are parallel planes (the
IOP is tilted) whose origins step along the table axis, not along n. The output grid keeps the
slices' own row/column axes and pixel spacing and puts k along n (direction columns = row, col,
n), so it is the acquisition's true, orthogonal geometry. Each input slice is shifted in-plane by
its own IPP offset (linear interpolation, exact when the offset is a whole pixel) and output
planes are linearly interpolated between the two neighbouring slices along n. The first
(lowest-n) input slice lies exactly on output plane k = 0 and the last one on the last plane.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.progress import CancelFn, Cancelled, ProgressFn
from planner.imaging.dicom_scan import (
    CT_SOP_CLASSES,
    SECONDARY_CAPTURE_SOP_CLASSES,
    ScanResult,
    SeriesInfo,
    SkippedFile,
    SliceHeader,
    scan_dicom,
    transfer_syntax_name,
)
from planner.imaging.volume import CTVolume, PatientInfo

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "IMAGE_SUFFIXES",
    "CTImportError",
    "Cancelled",
    "ImportReport",
    "ImportResult",
    "inspect_ct",
    "is_image_file",
    "load_ct",
]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
# Refuse to load more than this (override with SEEDPLAN_MAX_CT_MB or max_memory_bytes=).
DEFAULT_MAX_MEMORY_BYTES = 4 * 2**30
# Geometry tolerances (§4 #3): a position deviates when it is off by more than
# max(0.05 mm, 1 % of the slice spacing); in-plane offsets above 0.05 mm mean a shear.
_POS_TOL_MM = 0.05
_POS_TOL_FRACTION = 0.01
_INPLANE_TOL_MM = 0.05
AIR_HU = -1024.0  # air: fill for voxels outside every acquired slice, and for padding pixels


@dataclass
class ImportReport:
    """What an import read, skipped and found (INT-1). ``problems`` non-empty = refused."""

    source: Path
    series_uid: str
    files_read: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    estimated_memory_bytes: int = 0
    geometry: GridGeometry | None = None
    series_found: list[str] = field(default_factory=list)  # one summary line per series

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Human-readable report, one entry per line."""
        out = [f"Source: {self.source}"]
        if self.series_uid:
            out.append(f"Series: {self.series_uid}")
        if self.series_found:
            out.append(f"Series found ({len(self.series_found)}):")
            out.extend(f"  {s}" for s in self.series_found)
        out.append(f"Files read: {len(self.files_read)}")
        out.append(f"Estimated memory: {self.estimated_memory_bytes / 2**20:.1f} MiB")
        if self.geometry is not None:
            g = self.geometry
            out.append(
                "Geometry: "
                + "×".join(str(n) for n in g.shape_xyz)
                + " voxels (x×y×z), spacing "
                + "/".join(f"{v:.4g}" for v in g.spacing_mm)
                + " mm, origin ("
                + ", ".join(f"{v:.2f}" for v in g.origin_mm)
                + ") mm LPS"
                + ("" if g.is_axis_aligned else ", direction " + _fmt_direction(g.direction))
            )
        if self.skipped:
            out.append(f"Skipped ({len(self.skipped)}):")
            out.extend(f"  {s.path}: {s.reason}" for s in self.skipped)
        if self.warnings:
            out.append(f"Warnings ({len(self.warnings)}):")
            out.extend(f"  - {w}" for w in self.warnings)
        if self.problems:
            out.append(f"NOT LOADED ({len(self.problems)} problem(s)):")
            out.extend(f"  - {p}" for p in self.problems)
        return out

    def to_dict(self) -> dict:
        return {
            "source": str(self.source),
            "series_uid": self.series_uid,
            "loaded": self.ok,
            "files_read": [str(p) for p in self.files_read],
            "n_files_read": len(self.files_read),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
            "warnings": list(self.warnings),
            "problems": list(self.problems),
            "estimated_memory_bytes": int(self.estimated_memory_bytes),
            "geometry": None if self.geometry is None else self.geometry.to_dict(),
        }


class CTImportError(InputError):
    """The series was refused; ``report`` says why (the GUI shows it, the CLI prints one line)."""

    def __init__(self, problem: str, path: str | Path | None, report: ImportReport) -> None:
        super().__init__(problem, path)
        self.report = report


@dataclass
class ImportResult:
    """Outcome of :func:`inspect_ct`: the volume (None when refused), report, scan and series."""

    volume: CTVolume | None
    report: ImportReport
    scan: ScanResult | None = None
    series: SeriesInfo | None = None


def _fmt_direction(d: NDArray[np.float64]) -> str:
    return (
        "["
        + "; ".join(" ".join(f"{round(v, 4) + 0.0:.4f}" for v in d[:, c]) for c in range(3))
        + "] (i; j; k)"
    )


def is_image_file(path: str | Path) -> bool:
    """True for .nii/.nii.gz/.mha/.mhd/.nrrd/.nhdr paths (by name)."""
    name = str(path).lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _max_memory_default() -> int:
    env = os.environ.get("SEEDPLAN_MAX_CT_MB", "").strip()
    if env:
        try:
            return int(float(env) * 2**20)
        except ValueError:
            pass
    return DEFAULT_MAX_MEMORY_BYTES


# ------------------------------------------------------------------------------ geometry


@dataclass
class _StackGeometry:
    """Geometry of a set of parallel slices, sorted along the normal."""

    slices: list[SliceHeader]  # sorted by position along n
    d_mm: NDArray[np.float64]  # position of each slice along n
    offsets_px: NDArray[np.float64]  # (N, 2) in-plane offset of each slice vs slice 0 (row, col)
    row_dir: NDArray[np.float64]
    col_dir: NDArray[np.float64]
    normal: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    uniform: bool
    sheared: bool
    tilt_deg: float  # from geometry (0 when not sheared)
    gaps_mm: NDArray[np.float64]
    problems: list[str]

    @property
    def regular(self) -> bool:
        return self.uniform and not self.sheared

    def output_grid(self) -> GridGeometry:
        """The regular grid the volume is stored on (exact stack, or the resampling target)."""
        ps_row, ps_col = self.pixel_spacing_mm
        rows, cols = self.slices[0].rows, self.slices[0].columns
        direction = np.column_stack([self.row_dir, self.col_dir, self.normal])
        p0 = np.asarray(self.slices[0].ipp_mm, dtype=float)
        n = len(self.slices)
        span = float(self.d_mm[-1] - self.d_mm[0])
        if self.regular:
            return GridGeometry((n, rows, cols), p0, (ps_col, ps_row, span / (n - 1)), direction)
        # Resampling target: k spacing = smallest gap (no acquired detail lost), adjusted so the
        # first and last slices lie exactly on grid planes; in-plane extent covers every slice.
        # (not below a quarter of the median gap: a stray near-duplicate slice must not blow
        # the grid up; slices closer than that are sampled, not averaged)
        dk = max(float(np.min(self.gaps_mm)), 0.25 * float(np.median(self.gaps_mm)))
        n_out = round(span / dk) + 1
        dk = span / (n_out - 1)
        lo = np.floor(self.offsets_px.min(axis=0) + 1e-6).astype(int)  # (row, col) ≤ 0
        hi = np.ceil(self.offsets_px.max(axis=0) - 1e-6).astype(int)  # ≥ 0
        origin = p0 + lo[1] * ps_col * self.row_dir + lo[0] * ps_row * self.col_dir
        shape = (n_out, rows + int(hi[0] - lo[0]), cols + int(hi[1] - lo[1]))
        return GridGeometry(shape, origin, (ps_col, ps_row, dk), direction)

    def describe_resampling(self, grid: GridGeometry) -> str:
        why = []
        if self.sheared:
            why.append(
                f"gantry tilt {self.tilt_deg:.1f}° (slice origins step along the table, not the "
                "slice normal)"
            )
        if not self.uniform:
            why.append(
                f"slice gaps {self.gaps_mm.min():.2f}–{self.gaps_mm.max():.2f} mm along the "
                "slice normal"
            )
        return (
            "resampled: "
            + "; ".join(why)
            + f" → regular {grid.spacing_mm[2]:.2f} mm grid along the slice normal "
            f"({len(self.slices)} slices → {grid.shape_zyx[0]}, "
            f"{grid.shape_zyx[2]}×{grid.shape_zyx[1]} pixels; linear interpolation; "
            f"areas outside the acquired slices set to {AIR_HU:.0f} HU)"
        )


def _analyse_stack(slices: list[SliceHeader]) -> _StackGeometry:
    """Positions along n, in-plane offsets, uniformity and shear of parallel slices."""
    problems: list[str] = []
    first = slices[0]
    assert first.iop is not None and first.pixel_spacing_mm is not None
    row = np.asarray(first.iop[:3], dtype=float)
    col = np.asarray(first.iop[3:], dtype=float)
    if abs(float(row @ col)) > 1e-3 or not (
        abs(np.linalg.norm(row) - 1) < 1e-3 and abs(np.linalg.norm(col) - 1) < 1e-3
    ):
        problems.append(
            f"ImageOrientationPatient is not two orthogonal unit vectors: {list(first.iop)}"
        )
    # Orthonormalise the rounding noise of DS strings away.
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    pos = np.asarray([s.ipp_mm for s in slices], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    slices = [slices[i] for i in order]
    pos, d = pos[order], d[order]
    ps_row, ps_col = first.pixel_spacing_mm
    rel = pos - pos[0]
    offsets_px = np.column_stack([(rel @ col) / ps_row, (rel @ row) / ps_col])
    offsets_mm = np.column_stack([rel @ col, rel @ row])
    gaps = np.diff(d) if len(d) > 1 else np.zeros(0)
    uniform, sheared, tilt = True, False, 0.0
    if len(slices) >= 2:
        median_gap = float(np.median(gaps))
        tol = max(_POS_TOL_MM, _POS_TOL_FRACTION * median_gap)
        # Duplicate positions: two different images on one plane (§4 #6).
        dups = [a for a in range(len(slices) - 1) if gaps[a] <= _POS_TOL_MM]
        if dups:
            a = dups[0]
            more = f" (and {len(dups) - 1} more position(s))" if len(dups) > 1 else ""
            problems.append(
                f"two different images at the same position ({d[a]:.2f} mm along the slice "
                f"normal): {_slice_name(slices[a])} and {_slice_name(slices[a + 1])}{more}"
            )
        # Uniform: every gap near the median AND every position near its place on the regular
        # grid from the first to the last slice (small gap errors must not add up).
        k = np.arange(len(d))
        regular_d = d[0] + k * (d[-1] - d[0]) / (len(d) - 1)
        uniform = bool(
            np.max(np.abs(gaps - median_gap)) <= tol and np.max(np.abs(d - regular_d)) <= tol
        )
        sheared = bool(np.max(np.abs(offsets_mm)) > _INPLANE_TOL_MM)
        if sheared:
            span = float(d[-1] - d[0])
            if span > 0:
                # Least-squares shear (mm in-plane per mm along n) → tilt angle.
                slope = np.linalg.lstsq((d - d[0])[:, None], offsets_mm, rcond=None)[0][0]
                tilt = math.degrees(math.atan(float(np.linalg.norm(slope))))
    return _StackGeometry(
        slices=slices,
        d_mm=d,
        offsets_px=offsets_px,
        row_dir=row,
        col_dir=col,
        normal=normal,
        pixel_spacing_mm=(float(ps_row), float(ps_col)),
        uniform=uniform,
        sheared=sheared,
        tilt_deg=tilt,
        gaps_mm=gaps,
        problems=problems,
    )


def _slice_name(s: SliceHeader) -> str:
    """File name with its folder (series may span folders) and frame for multi-frame files."""
    return f"{s.path.parent.name}/{s.path.name}" + (f"[frame {s.frame}]" if s.n_frames > 1 else "")


def _resample(
    stack: _StackGeometry,
    planes: list[NDArray[np.float32]],
    grid: GridGeometry,
    out: NDArray,
    progress: Callable[[float], None],
    cancel: CancelFn | None,
) -> None:
    """Resample the slices (sorted along n) onto ``grid``, into ``out`` (z, y, x)."""
    nz, ny, nx = grid.shape_zyx
    # Output (row, col) of slice 0's pixel (0, 0): whole numbers by construction of the grid.
    base = np.rint(grid.world_to_index(np.asarray(stack.slices[0].ipp_mm))[[1, 0]]).astype(int)
    cache: dict[int, tuple[NDArray[np.float32], NDArray[np.bool_]]] = {}

    def shifted(s: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Slice s on the output in-plane grid, and where it has data (bool (ny, nx))."""
        # Output pixel (j, i) sits at slice-s pixel (j, i) - off.
        if s not in cache:
            off = stack.offsets_px[s] + base
            src = planes[s]
            rows_in = np.arange(ny) - off[0]
            cols_in = np.arange(nx) - off[1]
            valid = ((rows_in > -1e-6) & (rows_in < src.shape[0] - 1 + 1e-6))[:, None] & (
                (cols_in > -1e-6) & (cols_in < src.shape[1] - 1 + 1e-6)
            )[None, :]
            # Bilinear shift as a weighted sum of whole-pixel placements (separable, exact for
            # whole-pixel offsets, and much faster than a general interpolator).
            whole = np.floor(off + 1e-6)
            frac = np.clip(off - whole, 0.0, 1.0)
            frac[frac < 1e-6] = 0.0
            plane = np.zeros((ny, nx), dtype=np.float32)
            for dr, wr in ((0, 1.0 - frac[0]), (1, frac[0])):
                for dc, wc in ((0, 1.0 - frac[1]), (1, frac[1])):
                    weight = wr * wc
                    if weight <= 0.0:
                        continue
                    r0, c0 = int(whole[0]) + dr, int(whole[1]) + dc
                    # Place src at (r0, c0), clipped to the output plane.
                    rs, cs = max(0, -r0), max(0, -c0)
                    re, ce = min(src.shape[0], ny - r0), min(src.shape[1], nx - c0)
                    if re > rs and ce > cs:
                        plane[r0 + rs : r0 + re, c0 + cs : c0 + ce] += (
                            np.float32(weight) * src[rs:re, cs:ce]
                        )
            plane[~valid] = AIR_HU
            cache[s] = (plane, valid)
        return cache[s]

    d0 = float(stack.d_mm[0])
    dk = float(grid.spacing_mm[2])
    n_in = len(stack.slices)
    s = 0
    for k in range(nz):
        if cancel is not None and cancel():
            raise Cancelled("load cancelled")
        d = d0 + k * dk
        while s < n_in - 2 and stack.d_mm[s + 1] <= d + 1e-9:
            s += 1
        for old in [key for key in cache if key < s]:
            del cache[old]
        gap = float(stack.d_mm[s + 1] - stack.d_mm[s])
        w = min(max((d - float(stack.d_mm[s])) / gap, 0.0), 1.0)
        if w < 1e-6:
            _store(out, k, shifted(s)[0])
        elif w > 1 - 1e-6:
            _store(out, k, shifted(s + 1)[0])
        else:
            (a, va), (b, vb) = shifted(s), shifted(s + 1)
            # Only where both neighbours have data: no mixing of tissue with the fill value.
            _store(out, k, np.where(va & vb, (1.0 - w) * a + w * b, AIR_HU))
        progress((k + 1) / nz)


# ------------------------------------------------------------------------------ pixels


def _read_pixels(
    by_file: dict[Path, list[SliceHeader]],
    report: ImportReport,
    progress: Callable[[float], None],
    cancel: CancelFn | None,
) -> dict[tuple[Path, int], NDArray[np.float32]]:
    """Decode and rescale each image to HU (float32); undecodable files are skipped."""
    out: dict[tuple[Path, int], NDArray[np.float32]] = {}
    total = len(by_file)
    n_padding_voxels = 0
    for n, (path, headers) in enumerate(by_file.items()):
        if cancel is not None and cancel():
            raise Cancelled("load cancelled")
        ts = headers[0].transfer_syntax_uid
        try:
            ds = pydicom.dcmread(path, force=True)
            meta = getattr(ds, "file_meta", None)
            if meta is None or "TransferSyntaxUID" not in meta:
                # No file meta (§4 #14): use the encoding the header scan found.
                meta = meta if meta is not None else pydicom.dataset.FileMetaDataset()
                meta.TransferSyntaxUID = ts
                ds.file_meta = meta
            raw = ds.pixel_array
        except (NotImplementedError, RuntimeError, ImportError) as exc:
            report.skipped.append(
                SkippedFile(
                    path,
                    f"pixel data cannot be decoded: unsupported compression "
                    f"{transfer_syntax_name(ts)} ({_one_line(exc)})",
                )
            )
            continue
        except Exception as exc:  # truncated or corrupt: pydicom raises ValueError & co.
            what = (
                "compressed pixel data could not be decoded"
                if ts not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
                else "pixel data unreadable"
            )
            report.skipped.append(
                SkippedFile(path, f"{what} ({transfer_syntax_name(ts)}): {_one_line(exc)}")
            )
            continue
        h0 = headers[0]
        expected = (h0.n_frames, h0.rows, h0.columns) if h0.n_frames > 1 else (h0.rows, h0.columns)
        if raw.shape != expected:
            report.skipped.append(
                SkippedFile(path, f"pixel array shape {raw.shape} does not match header {expected}")
            )
            continue
        frames = raw if h0.n_frames > 1 else raw[np.newaxis]
        padding = _padding_range(ds)
        for h in headers:
            stored = frames[h.frame]
            plane = stored.astype(np.float32)
            # Rescale per slice: slope/intercept may differ between slices (§4 #10).
            if h.rescale_slope != 1.0:
                plane *= np.float32(h.rescale_slope)
            if h.rescale_intercept != 0.0:
                plane += np.float32(h.rescale_intercept)
            if padding is not None:
                # Padding marks pixels outside the reconstructed field (e.g. −1500 on GE);
                # they are air, not "very low HU" tissue.
                outside = (stored >= padding[0]) & (stored <= padding[1])
                n_padding_voxels += int(outside.sum())
                plane[outside] = AIR_HU
            out[(h.path, h.frame)] = plane
        report.files_read.append(path)
        progress((n + 1) / max(total, 1))
    if n_padding_voxels:
        report.warnings.append(
            f"{n_padding_voxels} padding pixels (PixelPaddingValue: outside the reconstructed "
            f"field of view) set to {AIR_HU:.0f} HU (air)"
        )
    return out


def _padding_range(ds: Any) -> tuple[float, float] | None:
    """Stored-value range marked as padding (PixelPaddingValue [..PixelPaddingRangeLimit])."""
    value = ds.get("PixelPaddingValue")
    if value is None or isinstance(value, (bytes, list)):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    lo = float(value)
    hi = float(limit) if isinstance(limit, (int, float)) else lo
    return (min(lo, hi), max(lo, hi))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("…" if len(text) > 200 else "")


# ------------------------------------------------------------------------------ checks


def _check_identity(series: SeriesInfo, report: ImportReport) -> list[SliceHeader]:
    """Modality/SOP class, one patient, one frame of reference; returns the usable slices."""
    if series.modality != "CT":
        report.problems.append(
            f"modality {series.modality or '(none)'} ({_sop_name(series.sop_class_uid)}): "
            "not a CT series"
        )
        return []
    if series.sop_class_uid in SECONDARY_CAPTURE_SOP_CLASSES:
        report.warnings.append(
            "secondary capture with modality CT (a screen capture or summary image, not "
            "acquired CT data): check that this is really the CT"
        )
    elif series.sop_class_uid not in CT_SOP_CLASSES:
        report.problems.append(
            f"SOP class {_sop_name(series.sop_class_uid)} is not a CT image storage class"
        )
        return []
    usable: list[SliceHeader] = []
    seen_uids: dict[tuple[str, int], Path] = {}
    for s in series.slices:
        if s.modality != series.modality or s.sop_class_uid != series.sop_class_uid:
            report.skipped.append(
                SkippedFile(
                    s.path,
                    f"modality {s.modality} / {_sop_name(s.sop_class_uid)} differs from the "
                    "rest of the series",
                )
            )
            continue
        key = (s.sop_instance_uid, s.frame)
        if s.sop_instance_uid and key in seen_uids:
            report.skipped.append(
                SkippedFile(
                    s.path,
                    f"duplicate of {seen_uids[key].name} (same SOP Instance UID), ignored",
                )
            )
            continue
        seen_uids[key] = s.path
        usable.append(s)
    patient_ids = sorted({s.patient_id for s in usable})
    if len(patient_ids) > 1:
        report.problems.append(
            f"mixed patient IDs in one series: {', '.join(repr(p) for p in patient_ids)}"
        )
    fors = sorted({s.frame_of_reference_uid for s in usable})
    if len(fors) > 1:
        report.problems.append(
            f"mixed frames of reference in one series ({len(fors)} FrameOfReferenceUIDs): "
            "the images may not share one coordinate system"
        )
    studies = sorted({s.study_instance_uid for s in usable})
    if len(studies) > 1:
        report.warnings.append(f"{len(studies)} different StudyInstanceUIDs in one series")
    missing = [s for s in usable if s.ipp_mm is None or s.iop is None or s.pixel_spacing_mm is None]
    if missing:
        report.problems.append(
            f"{len(missing)} image(s) without ImagePositionPatient/ImageOrientationPatient/"
            f"PixelSpacing (e.g. {missing[0].path.name}): they cannot be placed in the patient"
        )
    colour = [s for s in usable if s.samples_per_pixel != 1]
    if colour:
        report.problems.append(
            f"colour images (SamplesPerPixel {colour[0].samples_per_pixel}): not CT data"
        )
    return usable


def _sop_name(uid: str) -> str:
    return transfer_syntax_name(uid) if uid else "no SOP class"


def _check_hu(hu: NDArray, report: ImportReport) -> None:
    """Warn when the HU range does not look like CT (no air, nothing denser than fat)."""
    sample = hu[:, ::4, ::4] if hu.shape[1] > 64 else hu
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    hu_min, hu_max = float(sample.min()), float(sample.max())
    if hu_min > -900:
        report.warnings.append(
            f"implausible HU range {hu_min:.0f}…{hu_max:.0f}: no air (≈ −1000 HU) in the image; "
            "check the rescale slope/intercept"
        )
    elif hu_max < -100:
        report.warnings.append(
            f"implausible HU range {hu_min:.0f}…{hu_max:.0f}: no water or tissue (≈ 0 HU)"
        )
    if hi > 3000:
        report.warnings.append(
            f"implausible HU range: more than 0.5 % of the voxels above {hi:.0f} HU; "
            "check the rescale slope"
        )
    del lo


# ------------------------------------------------------------------------------ entry points


def _choose_series(
    scan: ScanResult, series_uid: str | None, source: Path, file_hint: Path | None
) -> SeriesInfo:
    if series_uid:
        found = scan.find(series_uid)
        if not found:
            listing = ", ".join(s.key for s in scan.series[:5])
            raise InputError(
                f"no series {series_uid!r} (found {len(scan.series)}: {listing})", source
            )
        return found[0]
    if file_hint is not None:
        for s in scan.series:
            if file_hint in s.files:
                return s
        reason = next((k.reason for k in scan.skipped if k.path == file_hint), "not usable")
        raise InputError(reason, file_hint)
    chosen = scan.largest_ct()
    if chosen is None:
        if not scan.series and not scan.skipped:
            raise InputError("empty folder: no files", source)
        if not scan.series:
            reasons = sorted({k.reason.split(":")[0] for k in scan.skipped})
            images = [k.path.name for k in scan.skipped if is_image_file(k.path)]
            hint = f"; open an image file directly, e.g. {images[0]}" if images else ""
            raise InputError(
                f"no DICOM images: {len(scan.skipped)} file(s) skipped ({'; '.join(reasons)})"
                + hint,
                source,
            )
        counts: dict[str, int] = {}
        for s in scan.series:
            counts[s.modality or "?"] = counts.get(s.modality or "?", 0) + 1
        found = ", ".join(f"{n} {m} series" for m, n in sorted(counts.items()))
        raise InputError(f"no CT series (found {found})", source)
    return chosen


def inspect_ct(
    path: str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    allow_resample: bool = True,
    max_memory_bytes: int | None = None,
) -> ImportResult:
    """Like :func:`load_ct` but returns a refused series as a report instead of raising.

    Still raises InputError for unusable input (missing path, empty folder, no CT, unknown
    series UID) and :class:`Cancelled`.
    """
    source = Path(path)
    report_progress = progress or (lambda f, m: None)
    limit = _max_memory_default() if max_memory_bytes is None else int(max_memory_bytes)
    if not source.exists():
        raise InputError("no such file or folder", source)
    if source.is_file() and is_image_file(source):
        from planner.imaging.image_files import read_image

        report_progress(0.0, f"reading {source.name}")
        volume = read_image(source, max_memory_bytes=limit)
        report = ImportReport(
            source=source,
            series_uid="",
            files_read=[source],
            warnings=list(volume.warnings),
            estimated_memory_bytes=int(volume.hu.nbytes),
            geometry=volume.geometry,
        )
        report_progress(1.0, "done")
        return ImportResult(volume, report)

    file_hint = source if source.is_file() else None
    scan_root = source.parent if file_hint is not None else source
    if file_hint is not None and source.name.upper() == "DICOMDIR":
        file_hint = None  # a DICOMDIR stands for its whole folder (scanned recursively)

    def scan_progress(done: int, total: int) -> None:
        report_progress(0.2 * done / max(total, 1), f"scanning headers {done}/{total}")

    scan = scan_dicom(scan_root, progress=scan_progress, cancel=cancel, recursive=file_hint is None)
    series = _choose_series(scan, series_uid, source, file_hint)
    report = ImportReport(
        source=source,
        series_uid=series.key,
        skipped=list(scan.skipped),
        series_found=[s.summary() for s in scan.series],
    )
    if series.n_parts > 1:
        others = [s for s in scan.series if s.series_instance_uid == series.series_instance_uid]
        for other in others:
            if other is series:
                continue
            for f in other.files:
                report.skipped.append(
                    SkippedFile(
                        f,
                        f"same series but different size/orientation ({other.columns}×"
                        f"{other.rows} {other.orientation}); load it as --series {other.key}",
                    )
                )
        report.warnings.append(
            f"series {series.series_instance_uid} holds {series.n_parts} differently shaped "
            f"image sets; loaded part {series.part} ({series.n_slices} images), the others "
            "are listed as skipped"
        )
    volume = _load_series(series, report, allow_resample, limit, report_progress, cancel)
    return ImportResult(volume, report, scan, series)


def _load_series(
    series: SeriesInfo,
    report: ImportReport,
    allow_resample: bool,
    limit: int,
    progress: ProgressFn,
    cancel: CancelFn | None,
) -> CTVolume | None:
    usable = _check_identity(series, report)
    if report.problems:
        return None
    if len(usable) < 2:
        report.problems.append(
            f"only {len(usable)} usable image(s): a CT volume needs at least 2 slices"
        )
        return None

    # Header-level geometry first: refuse early, and estimate memory before reading pixels.
    stack = _analyse_stack(usable)
    if stack.problems:
        report.problems.extend(stack.problems)
        return None
    grid = stack.output_grid()
    in_bytes = len(usable) * series.rows * series.columns * 4  # float32 planes while loading
    out_bytes = grid.n_voxels * series.bytes_per_voxel
    report.estimated_memory_bytes = in_bytes + out_bytes
    if report.estimated_memory_bytes > limit:
        report.problems.append(
            f"needs about {report.estimated_memory_bytes / 2**20:.0f} MiB "
            f"({grid.shape_zyx[2]}×{grid.shape_zyx[1]}×{grid.shape_zyx[0]} voxels), above the "
            f"limit of {limit / 2**20:.0f} MiB (set SEEDPLAN_MAX_CT_MB to raise it)"
        )
        return None
    if not stack.regular and not allow_resample:
        report.problems.extend(_irregular_reasons(stack))
        return None

    by_file: dict[Path, list[SliceHeader]] = {}
    for s in stack.slices:
        by_file.setdefault(s.path, []).append(s)
    planes = _read_pixels(
        by_file, report, lambda f: progress(0.2 + 0.65 * f, "reading images"), cancel
    )
    kept = [s for s in stack.slices if (s.path, s.frame) in planes]
    if len(kept) < len(stack.slices):
        # Undecodable files leave holes: redo the geometry with what was actually read.
        if len(kept) < 2:
            report.problems.append(
                f"only {len(kept)} image(s) could be decoded: a CT volume needs at least 2"
            )
            return None
        stack = _analyse_stack(kept)
        grid = stack.output_grid()
        if not stack.regular and not allow_resample:
            report.problems.extend(_irregular_reasons(stack))
            return None

    tags = {s.gantry_tilt_deg for s in stack.slices if s.gantry_tilt_deg}
    if tags and not stack.sheared:
        report.warnings.append(
            f"GantryDetectorTilt {max(tags, key=abs):+.1f}° in the header, but the slice positions "
            "follow the slice normal: loaded as the positions and orientation describe (no "
            "shear to correct); check against the scanner if in doubt"
        )
    elif stack.sheared and tags:
        tag = max(tags, key=abs)
        if abs(abs(tag) - stack.tilt_deg) > 0.5:
            report.warnings.append(
                f"GantryDetectorTilt {tag:+.1f}° in the header but the slice positions give "
                f"{stack.tilt_deg:.1f}°: the positions were used"
            )

    ordered = [planes[(s.path, s.frame)] for s in stack.slices]
    del planes
    # The final array is filled plane by plane: no second full-size float copy.
    hu = np.empty(grid.shape_zyx, dtype=_storage_dtype(ordered, stack.slices))
    if stack.regular:
        for k, plane in enumerate(ordered):
            _store(hu, k, plane)
        progress(0.9, "stacking")
    else:
        message = stack.describe_resampling(grid)
        report.warnings.append(message)
        _resample(
            stack, ordered, grid, hu, lambda f: progress(0.85 + 0.15 * f, "resampling"), cancel
        )
    del ordered
    _check_hu(hu, report)
    report.geometry = grid
    report.estimated_memory_bytes = max(report.estimated_memory_bytes, int(hu.nbytes))
    first = stack.slices[0]
    info = PatientInfo(
        patient_name=first.patient_name,
        patient_id=first.patient_id,
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        series_description=series.description,
        modality=series.modality,
        study_date=series.study_date,
    )
    progress(1.0, "done")
    return CTVolume(
        hu=hu,
        geometry=grid,
        info=info,
        warnings=list(report.warnings),
        source_path=str(report.source),
    )


def _irregular_reasons(stack: _StackGeometry) -> list[str]:
    out = []
    if stack.sheared:
        out.append(
            f"gantry tilt {stack.tilt_deg:.1f}°: slice origins step along the table, not the "
            "slice normal (a shear); loading it as a stack would misplace every slice — "
            "resampling is switched off"
        )
    if not stack.uniform:
        median = float(np.median(stack.gaps_mm))
        n_odd = int(np.sum(np.abs(stack.gaps_mm - median) > max(_POS_TOL_MM, 0.01 * median)))
        d = stack.d_mm
        drift = float(np.max(np.abs(d - np.linspace(d[0], d[-1], len(d)))))
        detail = (
            f"{n_odd} gap(s) differ: missing slices?"
            if n_odd
            else f"positions drift up to {drift:.2f} mm from a regular grid"
        )
        out.append(
            f"non-uniform slice spacing: gaps {stack.gaps_mm.min():.2f}–"
            f"{stack.gaps_mm.max():.2f} mm along the slice normal (median {median:.2f} mm, "
            f"{detail}) — resampling is switched off"
        )
    return out


def _storage_dtype(planes: list[NDArray[np.float32]], slices: list[SliceHeader]) -> type:
    """int16 when every rescale is integral and the values fit, else float32.

    Linear interpolation stays within the planes' range (and the −1024 HU fill), so the
    decision holds for resampled volumes too.
    """
    integral = all(
        float(s.rescale_slope).is_integer() and float(s.rescale_intercept).is_integer()
        for s in slices
    )
    if integral and planes:
        lo = min(float(p.min()) for p in planes)
        hi = max(float(p.max()) for p in planes)
        if lo >= -32768 and hi <= 32767:
            return np.int16
    return np.float32


def _store(hu: NDArray, k: int, plane: NDArray[np.float32]) -> None:
    """hu[k] = plane, rounded to the nearest integer for an integer array."""
    hu[k] = np.rint(plane) if hu.dtype.kind == "i" else plane


def load_ct(
    path: str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    allow_resample: bool = True,
    max_memory_bytes: int | None = None,
) -> tuple[CTVolume, ImportReport]:
    """Load a CT from a DICOM folder/file or a .nii/.nii.gz/.mha/.mhd/.nrrd file.

    ``series_uid``: SeriesInstanceUID (or ``"<uid>#<n>"`` for one part of a split series);
    None = the largest CT series. ``progress(fraction 0..1, message)`` and ``cancel()`` may be
    called from a worker thread. Raises :class:`CTImportError` (an InputError whose message is
    one line: path + problem, and whose ``report`` says everything) when the series is refused,
    InputError for unusable paths, :class:`Cancelled` when cancelled.
    """
    result = inspect_ct(
        path,
        series_uid=series_uid,
        progress=progress,
        cancel=cancel,
        allow_resample=allow_resample,
        max_memory_bytes=max_memory_bytes,
    )
    if result.volume is None:
        report = result.report
        more = (
            f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        )
        raise CTImportError(f"CT not loaded: {report.problems[0]}{more}", report.source, report)
    return result.volume, result.report
