"""Write the plan's dose grid as a DICOM RT Dose (RTDOSE).

* ``DoseUnits`` GY, ``DoseType`` PHYSICAL, ``DoseSummationType`` PLAN: the total permanent-implant
  dose D∞ (TG-43U1 dose to water), referencing the RT Plan.
* Pixels are unsigned 32-bit (default) with ``DoseGridScaling`` = max dose / (2³² − 1) (rounded up
  to what a 16-character DS holds), so the stored integers reproduce every voxel to
  ≤ ½ · scaling ≈ 1.2e-10 × the maximum dose. 16 bits are not enough for seed implants: the grid
  maximum (a voxel at a seed capsule, ~50× the prescription) would set a step of ~0.08 % of the
  maximum, i.e. ~0.2 % at the prescription and ~1 % at cord doses. ``bits_allocated=16`` exists
  for viewers and validators that cannot read 32-bit pixels (the Debian 2022 ``dciodvfy``
  aborts on them); the written file is read back and compared (≤ 0.1 % of each voxel's dose for
  every voxel ≥ 10 % of the prescription, else refused) before it is put in place.
* Geometry: ``ImagePositionPatient`` = the centre of voxel (0, 0, 0); ``ImageOrientationPatient`` =
  the grid's i and j directions; relative ``GridFrameOffsetVector`` (0, dz, 2dz, …) along the
  slice normal.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.export.rtplan_write import RTPLAN_SOP_CLASS
from planner.export.uids import CTSlices, ExportUIDs, base_dataset, ds_text
from planner.plan.model import Plan

__all__ = ["RTDOSE_SOP_CLASS", "build_rtdose", "dose_grid_scaling", "write_rtdose"]

RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
_MAX_STORED = {16: 2**16 - 1, 32: 2**32 - 1}
#: What the read-back must reproduce (relative to the maximum dose; the issue's 0.1 %).
READBACK_TOLERANCE = 1e-3


def dose_grid_scaling(max_dose_gy: float, bits_allocated: int = 32) -> tuple[float, str]:
    """(scaling, its DS text): a 16-character DS just ≥ max / (2^bits − 1)."""
    if not (math.isfinite(max_dose_gy) and max_dose_gy >= 0):
        raise InputError(f"dose maximum {max_dose_gy!r} Gy is not a finite dose")
    if max_dose_gy == 0:
        return 1.0, "1"
    target = max_dose_gy / _MAX_STORED[bits_allocated]
    text = f"{target * (1.0 + 2e-9):.9e}"  # 10 significant digits, rounded up: ≥ target
    value = float(text)
    if value < target:  # pragma: no cover (the factor above always rounds up)
        text = f"{target * (1.0 + 1e-8):.9e}"
        value = float(text)
    return value, text


def build_rtdose(
    plan: Plan,
    ct: CTSlices,
    uids: ExportUIDs,
    dose_gy: NDArray[np.floating],
    geometry: GridGeometry,
    *,
    when: datetime,
    description: str = "",
    bits_allocated: int = 32,
) -> Dataset:
    """The RTDOSE dataset for ``dose_gy`` (z, y, x) in Gy on ``geometry`` (LPS mm)."""
    dose = np.asarray(dose_gy, dtype=np.float64)
    if tuple(dose.shape) != geometry.shape_zyx:
        raise InputError(f"dose shape {dose.shape} is not its grid {geometry.shape_zyx}")
    if not np.all(np.isfinite(dose)) or float(dose.min(initial=0.0)) < 0:
        raise InputError("dose values must be finite and non-negative")
    ds = base_dataset(
        plan,
        ct,
        sop_class_uid=RTDOSE_SOP_CLASS,
        instance_uid=uids.instance["RTDOSE"],
        series_uid=uids.series["RTDOSE"],
        modality="RTDOSE",
        series_number=903,
        series_description=f"SeedPlan dose: {plan.name or 'plan'} rev {plan.revision}",
        when=when,
    )
    ds.InstanceNumber = plan.revision
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    if description:
        ds.ImageComments = description[:10240]
    nz, ny, nx = geometry.shape_zyx
    dx, dy, dz = (float(v) for v in geometry.spacing_mm)
    d = geometry.direction
    ds.ImagePositionPatient = [ds_text(float(v)) for v in geometry.origin_mm]
    ds.ImageOrientationPatient = [ds_text(round(float(v), 9)) for v in (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [ds_text(dy), ds_text(dx)]
    ds.SliceThickness = ds_text(dz)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    if bits_allocated not in _MAX_STORED:
        raise ValueError(f"RTDOSE pixels are 16 or 32 bits, not {bits_allocated}")
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_allocated
    ds.HighBit = bits_allocated - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = 0x3004000C  # GridFrameOffsetVector
    ds.GridFrameOffsetVector = [ds_text(k * dz) for k in range(nz)]
    scaling, scaling_text = dose_grid_scaling(float(dose.max(initial=0.0)), bits_allocated)
    stored = np.rint(dose / scaling)
    top = _MAX_STORED[bits_allocated]
    stored = np.clip(stored, 0, top).astype("<u4" if bits_allocated == 32 else "<u2")
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseComment = "TG-43U1 dose to water, total permanent-implant dose"[:64]
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = scaling_text
    ref = Dataset()
    ref.ReferencedSOPClassUID = RTPLAN_SOP_CLASS
    ref.ReferencedSOPInstanceUID = uids.instance["RTPLAN"]
    ds.ReferencedRTPlanSequence = Sequence([ref])
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def write_rtdose(
    path: str | Path,
    plan: Plan,
    ct: CTSlices,
    uids: ExportUIDs,
    dose_gy: NDArray[np.floating],
    geometry: GridGeometry,
    *,
    when: datetime,
    force: bool = False,
    description: str = "",
    bits_allocated: int = 32,
    prescription_gy: float | None = None,
) -> Path:
    """Build, write, read back (our own reader: same grid, every voxel ≥ 10 % of the
    prescription (of the maximum without one) within 0.1 % of its dose) and put the RTDOSE in
    place through the safe-write rule; returns the final path."""
    from planner.dicom.rtdose import read_rtdose
    from planner.files.safe_write import write_with

    ds = build_rtdose(
        plan,
        ct,
        uids,
        dose_gy,
        geometry,
        when=when,
        description=description,
        bits_allocated=bits_allocated,
    )
    dose = np.asarray(dose_gy, dtype=np.float64)

    def verify(tmp: Path) -> None:
        back = read_rtdose(tmp)
        if not back.geometry.same_as(geometry, tol_mm=1e-3):
            raise InputError("the written RTDOSE does not read back on the same grid", path)
        top = float(dose.max(initial=0.0))
        floor = 0.1 * (prescription_gy if prescription_gy else top)
        sel = dose >= floor
        rel = np.abs(back.dose_gy[sel] - dose[sel]) / dose[sel]
        worst = float(rel.max(initial=0.0))
        if worst > READBACK_TOLERANCE:
            raise InputError(
                f"the written RTDOSE reads back {100 * worst:.3g} % off at doses ≥ "
                f"{floor:.3g} Gy (more than 0.1 %); use 32-bit pixels",
                path,
            )

    return write_with(
        path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), force=force, verify=verify
    )
