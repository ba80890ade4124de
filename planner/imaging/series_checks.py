"""Series-level checks before and after loading: identity (modality, SOP class, one patient,
one frame of reference, duplicates) and a plausible HU range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from planner.imaging.dicom_scan import (
    CT_SOP_CLASSES,
    SECONDARY_CAPTURE_SOP_CLASSES,
    SeriesInfo,
    SkippedFile,
    SliceHeader,
    transfer_syntax_name,
)
from planner.imaging.import_report import ImportReport

__all__ = ["check_hu", "check_identity", "interleaving_warning"]


def check_identity(series: SeriesInfo, report: ImportReport) -> list[SliceHeader]:
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
    _check_placement(usable, report)
    no_rescale = [s for s in usable if s.rescale_missing]
    if no_rescale:
        report.warnings.append(
            f"{len(no_rescale)} image(s) without RescaleSlope/RescaleIntercept "
            f"({_names(no_rescale)}): stored values taken as HU (slope 1, intercept 0)"
        )
    colour = [s for s in usable if s.samples_per_pixel != 1]
    if colour:
        report.problems.append(
            f"colour images (SamplesPerPixel {colour[0].samples_per_pixel}): not CT data"
        )
    return usable


def _names(slices: list[SliceHeader], limit: int = 3) -> str:
    """ "a/CT001.dcm, a/CT002.dcm and 4 more"."""
    names = [s.name for s in slices[:limit]]
    more = len(slices) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _check_placement(usable: list[SliceHeader], report: ImportReport) -> None:
    """Refuse images whose position, orientation or pixel spacing is missing or invalid,
    naming the tag, the value and the files (one problem per distinct reason)."""
    by_reason: dict[str, list[SliceHeader]] = {}
    for s in usable:
        reasons = list(s.invalid)
        for keyword, value in (
            ("ImagePositionPatient", s.ipp_mm),
            ("ImageOrientationPatient", s.iop),
            ("PixelSpacing", s.pixel_spacing_mm),
        ):
            if value is None and not any(r.startswith(keyword) for r in reasons):
                reasons.append(f"no {keyword}")
        for r in reasons:
            # Multi-frame reasons end in "(frame n)": group the frames of one reason.
            by_reason.setdefault(r.split(" (frame ")[0], []).append(s)
    for reason, slices in by_reason.items():
        report.problems.append(
            f"{reason} in {len(slices)} image(s) ({_names(slices)}): they cannot be placed in "
            "the patient"
        )


def interleaving_warning(slices: list[SliceHeader], spacing_mm: float) -> str:
    """A warning when images of one series repeat InstanceNumbers (two acquisitions stored
    in one SeriesInstanceUID and merged into one stack at ``spacing_mm``), else ""."""
    by_number: dict[int, list[SliceHeader]] = {}
    for s in slices:
        if s.instance_number is not None and s.n_frames == 1:
            by_number.setdefault(s.instance_number, []).append(s)
    repeated = {n: group for n, group in by_number.items() if len(group) > 1}
    if not repeated:
        return ""
    n, group = min(repeated.items())
    acquisitions = sorted({s.acquisition_number for s in slices if s.acquisition_number})
    acq = (
        f"; AcquisitionNumbers {', '.join(str(a) for a in acquisitions)}"
        if len(acquisitions) > 1
        else ""
    )
    return (
        f"{len(repeated)} InstanceNumber(s) occur more than once (e.g. {n}: "
        f"{_names(group, 2)}{acq}): two interleaved acquisitions in one series? They were "
        f"merged into one volume at {spacing_mm:.2f} mm slice spacing — check that this is "
        "one scan"
    )


def _sop_name(uid: str) -> str:
    return transfer_syntax_name(uid) if uid else "no SOP class"


def check_hu(hu: NDArray, report: ImportReport) -> None:
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
