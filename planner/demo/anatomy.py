"""Grid specification and anatomy parameters of the demo phantom (anatomy-frame LPS mm).

The anatomy frame has x = 0 on the midline, y = 0 near the centre of the chest and z = 0 at the
centre of the T9 vertebral body; the CT grid is that frame translated by
``PhantomSpec.patient_offset_mm`` (identity direction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry

__all__ = ["Anatomy", "Level", "PhantomSpec", "default_anatomy", "phantom_geometry"]


@dataclass(frozen=True)
class PhantomSpec:
    """Grid and acquisition of the synthetic CT.

    The field of view stays ``fov_mm`` whatever ``matrix`` is (a smaller matrix gives bigger
    pixels); the slab of ``n_slices`` slices is centred on the T9 body (anatomy z = 0).
    """

    matrix: int = 512
    fov_mm: float = 400.0
    n_slices: int = 52
    slice_mm: float = 2.5
    noise_sd_hu: float = 12.0
    seed: int = 20_240_917
    #: World (LPS) = anatomy frame + this offset (a table-referenced z like a real scanner's).
    patient_offset_mm: tuple[float, float, float] = (0.0, 0.0, -150.0)
    table: bool = True

    @property
    def pixel_mm(self) -> float:
        return self.fov_mm / self.matrix


@dataclass(frozen=True)
class Level:
    """One vertebra: name, body centre (anatomy mm) and body size."""

    name: str
    z_mm: float  # centre of the body along z (superior +)
    y_mm: float  # centre of the body along y (posterior +)
    height_mm: float
    half_width_mm: float  # body, left-right
    half_depth_mm: float  # body, antero-posterior


@dataclass(frozen=True)
class Anatomy:
    """Parameters of the anatomy model (anatomy-frame mm) and landmarks for later generators."""

    levels: tuple[Level, ...]
    involved_level: str = "T9"
    canal_half_width_mm: float = 8.6
    canal_half_depth_mm: float = 8.0
    cord_half_width_mm: float = 5.0
    cord_half_depth_mm: float = 4.0
    #: Tumour (epidural part) centre z and craniocaudal half-extent of the cord compression.
    tumour_z_mm: float = 0.0
    compression_sigma_mm: float = 8.0
    hu: dict[str, float] = field(
        default_factory=lambda: {
            "air": -1000.0,
            "skin": 40.0,
            "fat": -100.0,
            "muscle": 50.0,
            "lung": -845.0,
            "mediastinal_fat": -90.0,
            "myocardium": 100.0,
            "blood_pool": 150.0,
            "aorta": 170.0,
            "vein": 150.0,
            "oesophagus": 45.0,
            "liver": 100.0,
            "spleen": 110.0,
            "stomach_wall": 50.0,
            "stomach_fluid": 15.0,
            "cortical_bone": 1000.0,
            "cancellous_bone": 220.0,
            "rib_marrow": 280.0,
            "cartilage": 120.0,
            "disc": 90.0,
            "csf": 8.0,
            "cord": 35.0,
            "epidural_fat": -80.0,
            "tumour": 60.0,
            "table_shell": 150.0,
            "table_foam": -900.0,
        }
    )

    def level(self, name: str) -> Level:
        for lev in self.levels:
            if lev.name == name:
                return lev
        raise KeyError(name)

    # Spine axis (kyphosis): the body-centre y as a smooth function of z.
    @staticmethod
    def spine_y_mm(z_mm: NDArray[np.floating] | float) -> NDArray[np.floating] | float:
        """Antero-posterior position (mm) of the vertebral-body centres at height ``z_mm``."""
        return 15.0 - 0.0007 * (np.asarray(z_mm) - 35.0) ** 2

    def canal_centre_y_mm(self, z_mm: NDArray[np.floating] | float) -> NDArray[np.floating]:
        lev = self.level(self.involved_level)
        return (
            np.asarray(self.spine_y_mm(z_mm)) + lev.half_depth_mm + self.canal_half_depth_mm + 0.6
        )

    def compression(self, z_mm: NDArray[np.floating] | float) -> NDArray[np.floating]:
        """0..1 profile of the cord compression along z (1 at the tumour centre)."""
        return np.exp(
            -0.5 * ((np.asarray(z_mm) - self.tumour_z_mm) / self.compression_sigma_mm) ** 2
        )

    def cord_ellipse(self, z_mm: NDArray[np.floating] | float) -> tuple[NDArray[np.floating], ...]:
        """Cord centre (x, y) and half-axes (x, y) in mm at height ``z_mm``: flattened and pushed
        to the right (−x) and backwards (+y) where the epidural tumour is."""
        t = self.compression(z_mm)
        cy = self.canal_centre_y_mm(z_mm) - 0.5 + 2.4 * t
        cx = -1.6 * t
        ax = self.cord_half_width_mm * (1.0 + 0.16 * t)
        ay = self.cord_half_depth_mm * (1.0 - 0.45 * t)
        return cx, cy, ax, ay


def default_anatomy() -> Anatomy:
    """T5–T12 with thoracic body heights growing caudally and 5 mm discs; T9 centred at z = 0."""
    names = ("T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12")
    heights = (18.0, 18.5, 19.0, 19.5, 20.0, 20.5, 21.5, 22.0, 23.0, 24.0)
    disc_mm = 5.0
    i9 = names.index("T9")
    z = [0.0] * len(names)
    for i in range(i9 - 1, -1, -1):  # above T9
        z[i] = z[i + 1] + heights[i + 1] / 2 + disc_mm + heights[i] / 2
    for i in range(i9 + 1, len(names)):  # below T9
        z[i] = z[i - 1] - heights[i - 1] / 2 - disc_mm - heights[i] / 2
    levels = tuple(
        Level(
            name=n,
            z_mm=float(zc),
            y_mm=float(Anatomy.spine_y_mm(zc)),
            height_mm=h,
            half_width_mm=16.5 + 0.5 * i,
            half_depth_mm=12.3 + 0.35 * i,
        )
        for i, (n, zc, h) in enumerate(zip(names, z, heights, strict=True))
    )
    return Anatomy(levels=levels)


def phantom_geometry(spec: PhantomSpec) -> GridGeometry:
    """Axis-aligned CT grid (identity direction) of ``spec`` in world LPS mm."""
    px = spec.pixel_mm
    n = spec.matrix
    off = np.asarray(spec.patient_offset_mm, dtype=np.float64)
    origin_anat = np.array(
        [-(n - 1) / 2 * px, -(n - 1) / 2 * px, -(spec.n_slices - 1) / 2 * spec.slice_mm]
    )
    return GridGeometry.axis_aligned(
        (spec.n_slices, n, n), origin_anat + off, (px, px, spec.slice_mm)
    )
