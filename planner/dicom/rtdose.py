"""Read a DICOM RT Dose (RTDOSE) file into a dose array (Gy) and its grid geometry.

Public API
----------
``read_rtdose(path) -> RTDose``

Rules (see ../shared/reference/dicom-and-integrity.md §4 row 11):

* The stored pixel values are multiplied by ``DoseGridScaling`` (neither pydicom nor SimpleITK
  does this); a missing or non-positive scaling is refused.
* ``DoseUnits`` must be ``GY``; ``RELATIVE`` (or anything else) is refused: a relative dose cannot
  give absolute DVH numbers.
* The frame positions come from ``GridFrameOffsetVector``, in either DICOM form: *relative*
  (first offset 0, offsets along the slice normal from ``ImagePositionPatient``) or *absolute*
  (first offset equals the first frame's coordinate along the normal, allowed for axial grids).
  Offsets must be evenly spaced (to 0.01 mm + 0.1 % of the step): a non-uniform stack cannot be a
  :class:`~dose.geometry.GridGeometry` and is refused rather than silently resampled. Decreasing
  offsets are accepted by reversing the frame order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.dicom.read import read_dicom_object

__all__ = ["RTDose", "read_rtdose"]

RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"


@dataclass
class RTDose:
    """A dose grid read from RTDOSE.

    Attributes
    ----------
    dose_gy : (z, y, x) float64 ndarray, Gy (DoseGridScaling applied)
    geometry : GridGeometry (LPS mm)
    dose_type : str ("PHYSICAL", "EFFECTIVE", …)
    summation_type : str ("PLAN", "FRACTION", …)
    frame_of_reference_uid : str
    source_path : str
    """

    dose_gy: NDArray[np.float64]
    geometry: GridGeometry
    dose_type: str = ""
    summation_type: str = ""
    frame_of_reference_uid: str = ""
    source_path: str = ""


def _floats(ds: object, keyword: str, n: int | None, path: Path) -> NDArray[np.float64]:
    value = getattr(ds, keyword, None)
    if value is None:
        raise InputError(f"RTDOSE has no {keyword}", path)
    try:
        arr = np.asarray([float(v) for v in (value if hasattr(value, "__len__") else [value])])
    except (TypeError, ValueError) as exc:
        raise InputError(f"RTDOSE {keyword} is not numeric ({value!r})", path) from exc
    if n is not None and arr.size != n:
        raise InputError(f"RTDOSE {keyword} must have {n} values, has {arr.size}", path)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"RTDOSE {keyword} is not finite", path)
    return arr


def read_rtdose(path: str | Path) -> RTDose:
    """Read an RTDOSE file; raises :class:`InputError` for anything SeedPlan cannot use."""
    path = Path(path)
    ds = read_dicom_object(path, modality="RTDOSE", sop_class_uid=RTDOSE_SOP_CLASS)
    units = str(getattr(ds, "DoseUnits", "")).strip().upper()
    if units != "GY":
        raise InputError(
            f"DoseUnits is {units or 'missing'!s}; only absolute dose in GY is supported", path
        )
    if "PixelData" not in ds:
        raise InputError("RTDOSE has no pixel data (DVH-only dose objects are not supported)", path)
    scaling = _floats(ds, "DoseGridScaling", 1, path)[0]
    if not scaling > 0:
        raise InputError(f"DoseGridScaling must be positive, is {scaling}", path)

    ipp = _floats(ds, "ImagePositionPatient", 3, path)
    iop = _floats(ds, "ImageOrientationPatient", 6, path)
    pixel_spacing = _floats(ds, "PixelSpacing", 2, path)  # (row spacing, column spacing)
    row_dir, col_dir = iop[:3], iop[3:]
    if (
        abs(np.linalg.norm(row_dir) - 1) > 1e-3
        or abs(np.linalg.norm(col_dir) - 1) > 1e-3
        or abs(float(row_dir @ col_dir)) > 1e-3
    ):
        raise InputError("ImageOrientationPatient is not two orthonormal vectors", path)
    row_dir = row_dir / np.linalg.norm(row_dir)
    col_dir = col_dir / np.linalg.norm(col_dir)
    normal = np.cross(row_dir, col_dir)
    if np.any(pixel_spacing <= 0):
        raise InputError(f"PixelSpacing must be positive, is {pixel_spacing.tolist()}", path)

    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for undecodable pixel data
        raise InputError(f"cannot decode the dose pixel data ({exc})", path) from exc
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    raw = np.asarray(raw).reshape(n_frames, int(ds.Rows), int(ds.Columns))
    dose = raw.astype(np.float64) * scaling

    if n_frames > 1:
        offsets = _floats(ds, "GridFrameOffsetVector", n_frames, path)
        ipp_n = float(ipp @ normal)
        if abs(offsets[0]) < 1e-6:
            rel = offsets
        elif abs(offsets[0] - ipp_n) < 1e-3 and abs(abs(normal[2]) - 1) < 1e-6:
            rel = offsets - offsets[0]  # absolute form (axial grids only)
        else:
            raise InputError(
                f"GridFrameOffsetVector starts at {offsets[0]:g} mm, neither 0 (relative) nor the"
                f" first frame's position {ipp_n:g} mm (absolute)",
                path,
            )
        steps = np.diff(rel)
        step = float(np.mean(steps))
        if step == 0 or np.any(np.sign(steps) != np.sign(step)):
            raise InputError("GridFrameOffsetVector is not monotonic", path)
        if np.max(np.abs(steps - step)) > 0.01 + 1e-3 * abs(step):
            raise InputError(
                "GridFrameOffsetVector is not evenly spaced (frame steps "
                f"{np.min(steps):g}..{np.max(steps):g} mm); non-uniform dose grids are not"
                " supported",
                path,
            )
        if step < 0:
            # Reverse the frames so that k runs along +normal with a positive spacing.
            dose = dose[::-1]
            ipp = ipp + rel[-1] * normal
            step = -step
    else:
        thickness = getattr(ds, "SliceThickness", None)
        step = float(thickness) if thickness not in (None, "") and float(thickness) > 0 else 1.0

    direction = np.stack([row_dir, col_dir, normal], axis=1)
    try:
        geometry = GridGeometry(
            tuple(dose.shape),
            ipp,
            np.array([pixel_spacing[1], pixel_spacing[0], step]),
            direction,
        )
    except ValueError as exc:
        raise InputError(f"unusable dose grid geometry ({exc})", path) from exc
    if not np.all(np.isfinite(dose)):
        raise InputError("dose values are not finite", path)
    return RTDose(
        dose_gy=np.ascontiguousarray(dose),
        geometry=geometry,
        dose_type=str(getattr(ds, "DoseType", "")),
        summation_type=str(getattr(ds, "DoseSummationType", "")),
        frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "")),
        source_path=str(path),
    )
