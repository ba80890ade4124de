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

__all__ = ["check_hu", "check_identity"]


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
