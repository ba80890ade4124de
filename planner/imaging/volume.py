"""CT volumes and label masks on a :class:`~dose.geometry.GridGeometry`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from planner.imaging.orientation import orientation_from_direction

__all__ = ["CTVolume", "Mask", "PatientInfo"]


@dataclass(frozen=True)
class PatientInfo:
    """Who and what a volume belongs to (empty strings when unknown)."""

    patient_name: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    series_description: str = ""
    modality: str = "CT"
    study_date: str = ""  # ISO 8601 (YYYY-MM-DD) when known


@dataclass
class CTVolume:
    """A CT image in Hounsfield units.

    Attributes
    ----------
    hu : (z, y, x) ndarray of int16 or float32, HU
    geometry : GridGeometry
        Where every voxel is in LPS mm (origin, spacing, direction).
    info : PatientInfo
    warnings : list of str
        Problems found while loading that the user must see (e.g. "resampled: gantry tilt 18.5°").
    source_path : str
        File or folder it was loaded from ("" when generated).
    """

    hu: NDArray[np.generic]
    geometry: GridGeometry
    info: PatientInfo = field(default_factory=PatientInfo)
    warnings: list[str] = field(default_factory=list)
    source_path: str = ""

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"CT array must be 3-D (z, y, x), got shape {self.hu.shape}")
        if tuple(self.hu.shape) != self.geometry.shape_zyx:
            raise ValueError(
                f"CT array shape {self.hu.shape} does not match geometry {self.geometry.shape_zyx}"
            )

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.geometry.shape_zyx

    @property
    def orientation(self) -> str:
        """ "axial" | "coronal" | "sagittal" | "oblique": how the stored slices lie in the
        patient (:func:`planner.imaging.orientation.orientation_from_direction`)."""
        return orientation_from_direction(self.geometry.direction)

    def hu_at_world(self, xyz_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Nearest-voxel HU at LPS positions ``(..., 3)``; NaN outside the volume."""
        kji = np.rint(self.geometry.world_to_zyx(xyz_mm)).astype(np.int64)
        inside = np.all((kji >= 0) & (kji < np.asarray(self.shape_zyx)), axis=-1)
        out = np.full(kji.shape[:-1], np.nan)
        k, j, i = (kji[inside][:, a] for a in range(3))
        out[inside] = self.hu[k, j, i]
        return out


@dataclass
class Mask:
    """A binary structure on a grid: ``voxels[z, y, x]`` is True inside.

    ``name`` is the structure name ("GTV", "SpinalCord", …), ``color_rgb`` in 0–255.
    """

    name: str
    voxels: NDArray[np.bool_]
    geometry: GridGeometry
    color_rgb: tuple[int, int, int] = (255, 0, 0)

    def __post_init__(self) -> None:
        if tuple(self.voxels.shape) != self.geometry.shape_zyx:
            raise ValueError(
                f"mask {self.name!r} shape {self.voxels.shape} does not match its geometry"
            )

    @property
    def volume_cm3(self) -> float:
        """Voxel-count volume (cm³): the volume rule of plan structures, whose DVHs integrate
        exactly these voxels (contour DVHs from an RTSTRUCT use sub-voxel occupancy)."""
        return float(self.voxels.sum()) * self.geometry.voxel_volume_mm3 / 1000.0
