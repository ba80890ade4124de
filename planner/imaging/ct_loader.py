"""Load a CT series into a :class:`~planner.imaging.volume.CTVolume`, checking it
and saying what it found: the load entry points :func:`inspect_ct` and :func:`load_ct`.

The loader never loads a series silently wrong (reference/dicom-and-integrity.md §4, INT-1/INT-2):

* identity: modality CT and a CT SOP class (CT Image Storage, Enhanced CT; secondary captures
  with modality CT load with a warning), one PatientID, one FrameOfReferenceUID
  (:mod:`~planner.imaging.series_checks`);
* files: only regular files are read (:mod:`~planner.imaging.paths`); unreadable, truncated,
  undecodable files are skipped and listed with the reason; duplicate SOP Instance UIDs are
  dropped and listed; two *different* images at one position refuse the series;
* geometry: slice positions along the slice normal; missing slices / non-uniform spacing and
  gantry tilt are resampled onto a regular grid with a warning, or refused
  (``allow_resample=False``) (:mod:`~planner.imaging.slice_stack`);
* HU: RescaleSlope/Intercept are applied per slice (:mod:`~planner.imaging.pixels`), and the
  HU range is checked for air.

The report types live in :mod:`~planner.imaging.import_report`; they are importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dose.errors import InputError
from dose.progress import CancelFn, Cancelled, ProgressFn, sub_progress
from planner.imaging.dicom_scan import (
    ScanResult,
    SeriesInfo,
    SkippedFile,
    SliceHeader,
    geometry_difference,
    scan_dicom,
)
from planner.imaging.import_report import CTImportError, ImportReport, ImportResult
from planner.imaging.paths import IMAGE_SUFFIXES, is_image_file, path_kind, regular_file_problem
from planner.imaging.pixels import read_pixels
from planner.imaging.series_checks import check_hu, check_identity, interleaving_warning
from planner.imaging.slice_stack import (
    StackGeometry,
    analyse_stack,
    irregular_reasons,
    resample,
    storage_dtype,
    store_plane,
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

# Refuse to load more than this (override with SEEDPLAN_MAX_CT_MB or max_memory_bytes=).
DEFAULT_MAX_MEMORY_BYTES = 4 * 2**30


def _max_memory_default() -> int:
    env = os.environ.get("SEEDPLAN_MAX_CT_MB", "").strip()
    if env:
        try:
            return int(float(env) * 2**20)
        except ValueError:
            pass
    return DEFAULT_MAX_MEMORY_BYTES


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
            shown = "; ".join(reasons[:4]) + ("; …" if len(reasons) > 4 else "")
            raise InputError(
                f"no DICOM images to load: {len(scan.skipped)} file(s) skipped ({shown})" + hint,
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
    kind = path_kind(source)
    if kind == "missing":
        raise InputError("no such file or folder", source)
    if kind not in ("file", "folder"):
        problem = regular_file_problem(source)
        raise InputError(problem.replace("not a regular file", "not a file or folder"), source)
    if kind == "file" and is_image_file(source):
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

    file_hint = source if kind == "file" else None
    scan_root = source.parent if file_hint is not None else source
    if file_hint is not None and source.name.upper() == "DICOMDIR":
        file_hint = None  # a DICOMDIR stands for its whole folder (scanned recursively)

    scan = scan_dicom(
        scan_root,
        progress=sub_progress(report_progress, 0.0, 0.2),
        cancel=cancel,
        recursive=file_hint is None,
    )
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
            for h in other.slices:
                report.skipped.append(
                    SkippedFile(
                        h.path,
                        _other_part_reason(h, series.slices[0], series.part, other.key),
                        h.series_instance_uid,
                        h.ipp_mm,
                    )
                )
        report.warnings.append(
            f"series {series.series_instance_uid} holds {series.n_parts} differently shaped "
            f"image sets; loaded part {series.part} ({series.n_slices} images), the others "
            "are listed as skipped"
        )
    volume = _load_series(series, report, allow_resample, limit, report_progress, cancel)
    return ImportResult(volume, report, scan, series)


def _other_part_reason(h: SliceHeader, ref: SliceHeader, part: int, key: str) -> str:
    """Why an image of the same series is not in the loaded part: what differs, truthfully."""
    diff = geometry_difference(h, ref)
    size_or_orientation = diff.startswith("image size") or "orientation" in diff
    what = "size/orientation" if size_or_orientation else "pixel spacing"
    return (
        f"same series but different {what} than the loaded part {part}: {diff}; load it as "
        f"--series {key}"
    )


def _load_series(
    series: SeriesInfo,
    report: ImportReport,
    allow_resample: bool,
    limit: int,
    progress: ProgressFn,
    cancel: CancelFn | None,
) -> CTVolume | None:
    usable = check_identity(series, report)
    if report.problems:
        return None
    if len(usable) < 2:
        report.problems.append(
            f"only {len(usable)} usable image(s): a CT volume needs at least 2 slices"
        )
        return None

    # Header-level geometry first: refuse early, and estimate memory before reading pixels.
    try:
        stack = analyse_stack(usable)
        grid = None if stack.problems else stack.output_grid()
    except ValueError as exc:  # headers the checks let through but no grid fits: refuse
        report.problems.append(f"no regular grid fits the slice headers: {exc}")
        return None
    if stack.problems or grid is None:
        report.problems.extend(stack.problems)
        return None
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
        _refuse_irregular(stack, report)
        return None

    by_file: dict[Path, list[SliceHeader]] = {}
    for s in stack.slices:
        by_file.setdefault(s.path, []).append(s)
    planes = read_pixels(
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
        stack = analyse_stack(kept)
        grid = stack.output_grid()
        if not stack.regular and not allow_resample:
            _refuse_irregular(stack, report)
            return None
    if len(stack.slices) >= 2:
        interleaved = interleaving_warning(stack.slices, float(np.median(stack.gaps_mm)))
        if interleaved:
            report.warnings.append(interleaved)

    tags = {s.gantry_tilt_deg for s in stack.slices if s.gantry_tilt_deg}
    if tags and not stack.tilted:
        report.warnings.append(
            f"GantryDetectorTilt {max(tags, key=abs):+.1f}° in the header, but the slice positions "
            "follow the slice normal: loaded as the positions and orientation describe (no "
            "shear to correct); check against the scanner if in doubt"
        )
    elif stack.tilted and tags:
        tag = max(tags, key=abs)
        if abs(abs(tag) - stack.tilt_deg) > 0.5:
            report.warnings.append(
                f"GantryDetectorTilt {tag:+.1f}° in the header but the slice positions give "
                f"{stack.tilt_deg:.1f}°: the positions were used"
            )

    ordered = [planes[(s.path, s.frame)] for s in stack.slices]
    del planes
    # The final array is filled plane by plane: no second full-size float copy.
    hu = np.empty(grid.shape_zyx, dtype=storage_dtype(ordered, stack.slices))
    if stack.regular:
        for k, plane in enumerate(ordered):
            store_plane(hu, k, plane)
        progress(0.9, "stacking")
    else:
        report.warnings.append(stack.describe_resampling(grid))
        resample(
            stack, ordered, grid, hu, lambda f: progress(0.85 + 0.15 * f, "resampling"), cancel
        )
    del ordered
    report.warnings.extend(stack.describe_gaps(report.skipped))
    check_hu(hu, report)
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


def _refuse_irregular(stack: StackGeometry, report: ImportReport) -> None:
    """Refuse an irregular stack (resampling switched off), saying where and why."""
    report.problems.extend(irregular_reasons(stack))
    report.warnings.extend(stack.describe_gaps(report.skipped))


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
        raise result.report.refusal()
    return result.volume, result.report
