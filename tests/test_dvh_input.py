"""Malformed or dubious RTSTRUCT/RTDOSE input to ``seedplan dvh`` (issue 8 and its siblings).

Every case is either a refusal (exit 2, one line naming the file and the structure) or a warning
naming the structure with the structure skipped or its volume unchanged — never a silent change of
volume. The reference is a 10 × 10 mm box on planes z = 0…9 mm (1.000 cm³ with ½-slice end caps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.cli import main
from dose.errors import InputError
from planner.dicom.rtstruct import read_rtstruct
from tests.dicom_builders import write_structure_set
from tests.test_rt_io import square, write_rtdose


def _box(z_planes=range(10), x0: float = 0.0) -> list[tuple[str, np.ndarray]]:
    return [("CLOSED_PLANAR", square(x0, 0, 10, z)) for z in z_planes]


@pytest.fixture
def dose_path(tmp_path: Path) -> Path:
    # 10 + z Gy on a 1 mm grid over x, y ∈ [−2, 21], z ∈ [−3, 12] mm.
    z = np.arange(16) - 3.0
    raw = np.broadcast_to(((10.0 + z) * 1e4)[:, None, None], (16, 24, 24)).astype(np.uint32)
    return write_rtdose(tmp_path / "rd.dcm", raw, scaling=1e-4, ipp=(-2, -2, -3))


def _run(rs: Path, rd: Path, capsys) -> tuple[int, dict, str]:
    code = main(["dvh", "--rtstruct", str(rs), "--rtdose", str(rd), "--json"])
    cap = capsys.readouterr()
    return code, (json.loads(cap.out) if code == 0 else {}), cap.err


def _refused(rs: Path, rd: Path, capsys, *words: str) -> str:
    code, _, err = _run(rs, rd, capsys)
    assert code == 2, err
    err = err.strip()
    assert err.startswith("seedplan dvh:") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


# ====================================================================== refusals
def _with_contour(data) -> list:
    return [("Box", _box()), ("Bad", [*_box(range(3)), ("CLOSED_PLANAR", data)])]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["0", "0", "3", "10", "0", "3", "10", "nan", "3"], "NaN"),
        (["0", "0", "3", "10", "0", "3", "10", "10"], "not a multiple of 3"),
        (["0", "0", "3", "10", "0", "3", "10", "10", "3", "0", "10"], "not a multiple of 3"),
        # A bow-tie: (0,0) → (10,10) → (10,0) → (0,10) crosses itself at (5, 5).
        (["0", "0", "3", "10", "10", "3", "10", "0", "3", "0", "10", "3"], "intersects itself"),
        (["0", "0", "3", "1e400", "0", "3", "10", "10", "3"], "NaN or infinite"),
    ],
)
def test_malformed_contour_data_is_refused(tmp_path, dose_path, capsys, data, message) -> None:
    rs = write_structure_set(tmp_path / "rs.dcm", _with_contour(data))
    err = _refused(rs, dose_path, capsys, message, "'Bad'", str(rs))
    assert "contour 4" in err  # which contour of the ROI


def test_number_of_contour_points_mismatch_is_refused(tmp_path, dose_path, capsys) -> None:
    rois = [("Box", _box(range(2)))]
    rs = write_structure_set(tmp_path / "rs.dcm", rois, number_of_points=[[4, 5]])
    _refused(rs, dose_path, capsys, "NumberOfContourPoints is 5", "'Box'")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (square(0, 0, 10, 5), "cross or overlap"),  # an identical duplicate: even-odd cancels
        (square(5, 5, 10, 5), "cross or overlap"),  # two overlapping squares
    ],
)
def test_crossing_or_duplicate_contours_on_a_plane_are_refused(
    tmp_path, dose_path, capsys, extra, message
) -> None:
    rs = write_structure_set(tmp_path / "rs.dcm", [("Box", [*_box(), ("CLOSED_PLANAR", extra)])])
    _refused(rs, dose_path, capsys, message, "'Box'", "z = 5")


def test_near_duplicate_plane_is_refused(tmp_path) -> None:
    planes = [*_box(), ("CLOSED_PLANAR", square(0, 0, 10, 5.02))]
    rs = write_structure_set(tmp_path / "rs.dcm", [("Box", planes)])
    with pytest.raises(InputError, match=r"'Box'.*5 and 5.02 mm are only 0.02 mm apart"):
        read_rtstruct(rs)


def test_roi_frame_checks(tmp_path, dose_path, capsys) -> None:
    other = "1.2.826.0.1.3680043.8.498.99"
    # The ROI's frame is not one the structure set declares.
    rs = write_structure_set(tmp_path / "a.dcm", [("Box", _box())], roi_frames=[other])
    _refused(rs, dose_path, capsys, "'Box'", "does not declare")
    # Structure set and ROI consistently in another frame than the dose.
    rs = write_structure_set(tmp_path / "b.dcm", [("Box", _box())], frame_of_reference_uid=other)
    _refused(rs, dose_path, capsys, "'Box'", other)
    # No frame anywhere: cannot be checked.
    rs = write_structure_set(
        tmp_path / "c.dcm", [("Box", _box())], frame_of_reference_uid=None, roi_frames=[None]
    )
    _refused(rs, dose_path, capsys, "'Box'", "no ReferencedFrameOfReferenceUID")
    # The dose has no frame of reference.
    ds = pydicom.dcmread(dose_path)
    del ds.FrameOfReferenceUID
    ds.save_as(tmp_path / "rd_noframe.dcm")
    rs = write_structure_set(tmp_path / "d.dcm", [("Box", _box())])
    _refused(rs, tmp_path / "rd_noframe.dcm", capsys, "RTDOSE has no FrameOfReferenceUID")


# ====================================================================== warnings
def test_single_plane_and_outside_structures_are_skipped_with_a_warning(
    tmp_path, dose_path, capsys
) -> None:
    rois = [
        ("Box", _box()),
        (
            "Flat",
            [("CLOSED_PLANAR", square(0, 0, 10, 4.0)), ("CLOSED_PLANAR", square(12, 0, 5, 4))],
        ),
        ("Far", _box(x0=200.0)),  # 200 mm beyond the 24 mm dose grid
    ]
    rs = write_structure_set(tmp_path / "rs.dcm", rois)
    code, out, err = _run(rs, dose_path, capsys)
    assert code == 0, err
    assert set(out) == {"Box"}
    assert "'Flat' is contoured on a single plane" in err
    assert "'Far' lies entirely outside the dose grid" in err
    # Only these two: no spurious warning for the box, which lies inside the grid.
    assert err.count("warning:") == 2, err
    # Nothing left: refusal.
    rs = write_structure_set(tmp_path / "rs2.dcm", rois[1:])
    _refused(rs, dose_path, capsys, "no ROI")


def test_partly_outside_is_a_warning_with_the_volume(tmp_path, dose_path, capsys) -> None:
    rs = write_structure_set(tmp_path / "rs.dcm", [("Half", _box(x0=16.5))])  # x 16.5 … 26.5
    code, out, err = _run(rs, dose_path, capsys)
    assert code == 0
    # The dose grid's voxel boxes end at x = 21.5 mm: 5 × 10 × 10 mm³ outside.
    assert "Half: 0.500 cm³ of 1.000 cm³ lies outside the dose grid" in err
    assert out["Half"]["volume_cm3"] == pytest.approx(1.0, rel=3e-3)
    assert out["Half"]["dmin_gy"] == 0.0


def test_degenerate_and_open_contours_warn_without_changing_the_volume(
    tmp_path, dose_path, capsys
) -> None:
    degenerate = [
        ("CLOSED_PLANAR", np.array([[1.0, 1, 3], [5, 1, 3]])),  # 2 points
        ("CLOSED_PLANAR", np.array([[1.0, 1, 4], [3, 3, 4], [5, 5, 4]])),  # collinear: no area
        ("CLOSED_PLANAR", np.array([[1.0, 1, 5], [3, 3, 5], [5, 5, 5], [2, 2, 5]])),  # folded line
        ("CLOSED_PLANAR", np.array([[1.0, 1, 6], [1, 1, 6], [1, 1, 6]])),  # one point thrice
        ("OPEN_PLANAR", np.array([[0.0, 0, 2], [5, 5, 2], [9, 0, 2]])),
    ]
    rs = write_structure_set(tmp_path / "rs.dcm", [("Box", [*_box(), *degenerate])])
    code, out, err = _run(rs, dose_path, capsys)
    assert code == 0, err
    assert out["Box"]["volume_cm3"] == pytest.approx(1.0, rel=3e-3)
    assert "'Box': 4 closed contour(s) with fewer than 3 distinct points or zero area" in err
    assert "'Box': 1 open or non-planar contour(s) ignored" in err


def test_roi_without_its_own_frame_uses_the_only_declared_frame(
    tmp_path, dose_path, capsys
) -> None:
    rs = write_structure_set(tmp_path / "rs.dcm", [("Box", _box())], roi_frames=[None])
    code, out, err = _run(rs, dose_path, capsys)
    assert code == 0
    assert "'Box' has no ReferencedFrameOfReferenceUID; using the structure set's only frame" in err
    assert out["Box"]["volume_cm3"] == pytest.approx(1.0, rel=3e-3)


def test_valid_holes_islands_and_closing_vertex_are_accepted(tmp_path, dose_path, capsys) -> None:
    closed = np.vstack([square(0, 0, 10, 0), square(0, 0, 10, 0)[:1]])  # first vertex repeated
    planes = [("CLOSED_PLANAR", closed)]
    for z in range(1, 5):
        planes += [
            ("CLOSED_PLANAR", square(0, 0, 10, z)),
            ("CLOSED_PLANAR", square(3, 3, 4, z)),  # a hole
            ("CLOSED_PLANAR", square(12, 0, 4, z)),  # an island
        ]
    rs = write_structure_set(tmp_path / "rs.dcm", [("Ring", planes)])
    code, out, err = _run(rs, dose_path, capsys)
    assert code == 0, err
    # Plane 0: 100 mm²; planes 1-4: 100 − 16 + 16 = 100 mm²; 5 planes of 1 mm slabs.
    assert out["Ring"]["volume_cm3"] == pytest.approx(0.5, rel=3e-3)
    assert "warning" not in err
