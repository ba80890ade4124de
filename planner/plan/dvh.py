"""The plan's DVH of a structure: the one volume rule (see :mod:`planner.plan.model`).

A structure is its labelmap on the CT grid, so its DVH integrates exactly its voxels, each with
weight 1 (voxel volume): ``structure_dvh(...).volume_cm3 == structure.volume_cm3`` (up to
floating-point summation), whatever the dose grid.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from dose.dvh import DVH
from dose.dvh_calc import compute_dvh
from dose.geometry import GridGeometry
from planner.plan.model import Plan

__all__ = ["structure_dvh"]


def structure_dvh(
    plan: Plan,
    structure_id: str,
    dose_gy: ArrayLike,
    dose_geometry: GridGeometry | None = None,
    *,
    samples_per_voxel: int = 4,
    bin_width_gy: float | None = None,
) -> DVH:
    """DVH of one structure of ``plan``.

    dose_gy : (z, y, x) total dose D∞ (Gy) on ``dose_geometry`` (default: the CT grid).
    Each structure voxel is sampled ``samples_per_voxel`` times in the dose (trilinear), with
    weight voxel volume / samples, so the DVH volume is the structure's voxel-count volume.
    """
    s = plan.structure(structure_id)
    rx = plan.prescription
    return compute_dvh(
        dose_gy,
        s.mask,
        plan.geometry,
        dose_geometry=dose_geometry,
        samples_per_voxel=samples_per_voxel,
        bin_width_gy=bin_width_gy,
        name=s.name,
        prescription_gy=None if rx is None else rx.dose_gy,
    )
