"""Orientation naming (issue 8: a coronal series was labelled "oblique"): one rule from the
direction cosines — the slice normal within 1° of an LPS axis names it, whatever the axes'
signs (prone, feet-first, flipped) — for the scan, the loaded volume and every label."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from planner.imaging.ct_loader import load_ct
from planner.imaging.dicom_scan import scan_dicom
from planner.imaging.orientation import orientation_from_direction, orientation_name, tilt_deg
from tests import dicom_builders as db


def _rot_x(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])


# (IOP row, IOP column, expected) — DICOM patient positions and their flipped variants.
IOPS = [
    ((1, 0, 0), (0, 1, 0), "axial"),  # head first supine
    ((-1, 0, 0), (0, -1, 0), "axial"),  # head first prone
    ((-1, 0, 0), (0, 1, 0), "axial"),  # feet first supine (rows flipped)
    ((1, 0, 0), (0, -1, 0), "axial"),  # feet first prone / vertically flipped
    ((0, 1, 0), (1, 0, 0), "axial"),  # rows and columns swapped (transposed display)
    ((1, 0, 0), (0, 0, -1), "coronal"),  # standard coronal reformat
    ((-1, 0, 0), (0, 0, -1), "coronal"),  # coronal, prone
    ((1, 0, 0), (0, 0, 1), "coronal"),  # coronal, flipped head-feet
    ((0, 0, 1), (1, 0, 0), "coronal"),  # coronal, transposed
    ((0, 1, 0), (0, 0, -1), "sagittal"),  # standard sagittal reformat
    ((0, -1, 0), (0, 0, -1), "sagittal"),  # sagittal, prone
    ((0, 1, 0), (0, 0, 1), "sagittal"),  # sagittal, flipped
    ((0, 0, -1), (0, 1, 0), "sagittal"),  # sagittal, transposed
]


@pytest.mark.parametrize(("row", "col", "expected"), IOPS)
def test_orientation_from_normal_and_direction(row, col, expected: str) -> None:
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    assert orientation_name(normal) == expected
    assert orientation_name(-normal) == expected
    assert orientation_name(3.5 * normal) == expected  # any length
    assert orientation_from_direction(np.column_stack([row, col, normal])) == expected
    # a left-handed matrix (k reversed) names the same slices
    assert orientation_from_direction(np.column_stack([row, col, -normal])) == expected
    assert tilt_deg(normal) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("deg", "expected"),
    [(0.5, "axial"), (0.99, "axial"), (1.01, "oblique"), (18.5, "oblique"), (45, "oblique")],
)
def test_tilted_slices_become_oblique_beyond_one_degree(deg: float, expected: str) -> None:
    direction = _rot_x(deg)
    assert orientation_from_direction(direction) == expected
    assert tilt_deg(direction[:, 2]) == pytest.approx(deg, abs=1e-9)
    # the same tilt of a coronal plane
    coronal = _rot_x(deg) @ np.column_stack([(1, 0, 0), (0, 0, -1), (0, 1, 0)]).astype(float)
    assert orientation_from_direction(coronal) == expected.replace("axial", "coronal")


@pytest.mark.parametrize("normal", [None, (0, 0, 0), (np.nan, 0, 1), (1, 2), "abc"])
def test_unknown_orientation(normal) -> None:
    assert orientation_name(normal) == "unknown"


@pytest.mark.parametrize(("row", "col", "expected"), IOPS[::2])
def test_scanned_and_loaded_series_carry_the_name(tmp_path: Path, row, col, expected: str) -> None:
    iop = (*row, *col)
    db.write_ct_series(tmp_path, iop=iop, n_slices=4, slice_spacing_mm=2.0)
    scan = scan_dicom(tmp_path)
    assert [s.orientation for s in scan.series] == [expected]
    assert expected in scan.series[0].summary()
    volume, _report = load_ct(tmp_path)
    assert volume.orientation == expected
    if expected != "axial":
        assert not volume.geometry.is_axis_aligned  # the label the GUI used to derive from this


def test_gantry_tilted_series_is_oblique_after_deshearing(tmp_path: Path) -> None:
    t = math.radians(18.5)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    db.write_ct_series(tmp_path, iop=iop, positions=[(-4.0, -5.0, 3.0 * k) for k in range(5)])
    volume, _ = load_ct(tmp_path)
    assert volume.orientation == "oblique"
    assert tilt_deg(volume.geometry.direction[:, 2]) == pytest.approx(18.5, abs=1e-3)
