"""Image-grid geometry: the one place where voxel indices and patient coordinates meet.

Conventions (used everywhere in SeedPlan):

* World coordinates are DICOM patient coordinates (LPS), in millimetres, ordered ``(x, y, z)``.
* Arrays are indexed ``[k, j, i]`` = ``[z, y, x]`` (slice, row, column), shape ``shape_zyx``.
* A *continuous index* is ordered ``(i, j, k)`` = (column, row, slice) like ITK / SimpleITK, so that
  ``world = origin + direction @ (spacing * ijk)``. Integer indices are voxel centres.
* ``direction`` is a 3×3 matrix whose **columns** are the unit vectors, in LPS, of the i, j and k
  index axes (ITK's direction matrix). For an axial CT it is the identity; it need not be.

Nothing else in the code base converts between indices and millimetres by hand: call
:meth:`GridGeometry.index_to_world` / :meth:`GridGeometry.world_to_index`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["GridGeometry"]

_ORTHONORMAL_TOL = 1e-4


@dataclass(frozen=True)
class GridGeometry:
    """Geometry of a regular 3-D grid in LPS millimetres.

    Attributes
    ----------
    shape_zyx : (3,) tuple of int
        Number of voxels along (k, j, i) = (z, y, x): the shape of arrays on this grid.
    origin_mm : (3,) float ndarray, mm
        LPS position of the centre of voxel ``[0, 0, 0]``.
    spacing_mm : (3,) float ndarray, mm
        Voxel size along (i, j, k).
    direction : (3, 3) float ndarray
        Columns are the LPS unit vectors of the i, j, k axes. Must be orthonormal.
    """

    shape_zyx: tuple[int, int, int]
    origin_mm: NDArray[np.float64]
    spacing_mm: NDArray[np.float64]
    direction: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape_zyx)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"grid shape must be 3 positive integers (z, y, x), got {shape}")
        origin = np.asarray(self.origin_mm, dtype=np.float64).reshape(3)
        spacing = np.asarray(self.spacing_mm, dtype=np.float64).reshape(3)
        direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if not np.all(np.isfinite(origin)) or not np.all(np.isfinite(spacing)):
            raise ValueError("grid origin and spacing must be finite")
        if np.any(spacing <= 0):
            raise ValueError(f"grid spacing must be positive, got {spacing.tolist()} mm")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=_ORTHONORMAL_TOL):
            raise ValueError("grid direction matrix must be orthonormal")
        for a in (origin, spacing, direction):
            a.setflags(write=False)
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "direction", direction)

    # ------------------------------------------------------------------ construction
    @classmethod
    def axis_aligned(
        cls,
        shape_zyx: tuple[int, int, int],
        origin_mm: ArrayLike,
        spacing_mm: ArrayLike,
    ) -> GridGeometry:
        """An identity-direction grid (rows along +y/posterior, columns along +x/left)."""
        return cls(tuple(shape_zyx), np.asarray(origin_mm), np.asarray(spacing_mm), np.eye(3))

    @classmethod
    def covering_box(
        cls,
        lower_mm: ArrayLike,
        upper_mm: ArrayLike,
        spacing_mm: float | ArrayLike,
    ) -> GridGeometry:
        """Axis-aligned grid whose voxel centres cover the LPS box ``[lower, upper]`` (mm)."""
        lower = np.asarray(lower_mm, dtype=np.float64).reshape(3)
        upper = np.asarray(upper_mm, dtype=np.float64).reshape(3)
        spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
        if np.any(upper < lower):
            raise ValueError("box upper corner must not be below its lower corner")
        n_xyz = np.floor((upper - lower) / spacing + 1e-9).astype(int) + 1
        return cls.axis_aligned((int(n_xyz[2]), int(n_xyz[1]), int(n_xyz[0])), lower, spacing)

    # ------------------------------------------------------------------ properties
    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        """Number of voxels along (i, j, k)."""
        z, y, x = self.shape_zyx
        return (x, y, z)

    @property
    def n_voxels(self) -> int:
        z, y, x = self.shape_zyx
        return x * y * z

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    @property
    def index_to_world_matrix(self) -> NDArray[np.float64]:
        """(3, 3) matrix M with ``world = origin + M @ ijk`` (M = direction · diag(spacing))."""
        return self.direction * self.spacing_mm[np.newaxis, :]

    @property
    def is_axis_aligned(self) -> bool:
        """True when the direction is the identity (to 1e-6)."""
        return bool(np.allclose(self.direction, np.eye(3), atol=1e-6))

    # ------------------------------------------------------------------ conversion
    def index_to_world(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """Continuous index ``(..., 3)`` ordered (i, j, k) → LPS position ``(..., 3)`` in mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return self.origin_mm + ijk @ self.index_to_world_matrix.T

    def world_to_index(self, xyz_mm: ArrayLike) -> NDArray[np.float64]:
        """LPS position ``(..., 3)`` in mm → continuous index ``(..., 3)`` ordered (i, j, k)."""
        xyz = np.asarray(xyz_mm, dtype=np.float64)
        # direction is orthonormal, so its inverse is its transpose.
        return ((xyz - self.origin_mm) @ self.direction) / self.spacing_mm

    def zyx_to_world(self, kji: ArrayLike) -> NDArray[np.float64]:
        """Array index ``(..., 3)`` ordered (k, j, i) → LPS mm ``(..., 3)`` (x, y, z)."""
        kji = np.asarray(kji, dtype=np.float64)
        return self.index_to_world(kji[..., ::-1])

    def world_to_zyx(self, xyz_mm: ArrayLike) -> NDArray[np.float64]:
        """LPS mm ``(..., 3)`` → continuous array index ``(..., 3)`` ordered (k, j, i)."""
        return self.world_to_index(xyz_mm)[..., ::-1]

    def contains_world(self, xyz_mm: ArrayLike, *, margin_voxels: float = 0.5) -> NDArray[np.bool_]:
        """True for positions inside the grid (voxel centres ± ``margin_voxels``)."""
        ijk = self.world_to_index(xyz_mm)
        upper = np.asarray(self.shape_xyz, dtype=np.float64) - 1 + margin_voxels
        return np.all((ijk >= -margin_voxels) & (ijk <= upper), axis=-1)

    def axis_coordinates_mm(self) -> tuple[NDArray[np.float64], ...]:
        """For an axis-aligned grid: 1-D voxel-centre coordinates (x_mm, y_mm, z_mm)."""
        if not self.is_axis_aligned:
            raise ValueError("axis coordinates are defined only for an identity direction")
        nx, ny, nz = self.shape_xyz
        return tuple(
            self.origin_mm[a] + self.spacing_mm[a] * np.arange(n)
            for a, n in enumerate((nx, ny, nz))
        )

    def voxel_centres_world(self) -> NDArray[np.float64]:
        """LPS positions of all voxel centres, shape ``(z, y, x, 3)`` in mm (memory: 24 B/voxel)."""
        nz, ny, nx = self.shape_zyx
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        return self.index_to_world(np.stack([i, j, k], axis=-1))

    def bounds_world_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """LPS bounding box (lower, upper) of all voxel centres."""
        nx, ny, nz = self.shape_xyz
        corners = np.array(
            [[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], float
        )
        world = self.index_to_world(corners)
        return world.min(axis=0), world.max(axis=0)

    def slice_normal(self) -> NDArray[np.float64]:
        """Unit LPS vector of the k (slice) axis."""
        return self.direction[:, 2].copy()

    def with_shape(self, shape_zyx: tuple[int, int, int]) -> GridGeometry:
        return GridGeometry(shape_zyx, self.origin_mm, self.spacing_mm, self.direction)

    def same_as(self, other: GridGeometry, *, tol_mm: float = 1e-3) -> bool:
        """True when both grids put every voxel at the same place (to ``tol_mm``)."""
        return (
            self.shape_zyx == other.shape_zyx
            and np.allclose(self.origin_mm, other.origin_mm, atol=tol_mm)
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def to_dict(self) -> dict[str, list[float] | list[int] | list[list[float]]]:
        return {
            "shape_zyx": list(self.shape_zyx),
            "origin_mm": self.origin_mm.tolist(),
            "spacing_mm": self.spacing_mm.tolist(),
            "direction": self.direction.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> GridGeometry:  # type: ignore[type-arg]
        return cls(
            tuple(d["shape_zyx"]),
            np.asarray(d["origin_mm"]),
            np.asarray(d["spacing_mm"]),
            np.asarray(d["direction"]),
        )
