"""CT import from synthetic DICOM series: every bad-input class of
reference/dicom-and-integrity.md §4 and INT-1/INT-2 (§1.2 G).

The builders (tests/dicom_builders.py) store HU = linear_hu(LPS position of the pixel), so a
loaded voxel must hold linear_hu(geometry.zyx_to_world(index)); a voxel misplaced by one step is
off by ≥ 70 HU. Tolerance 1 HU: the stored values are rounded to whole numbers.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from dose.progress import Cancelled
from planner.imaging.ct_loader import CTImportError, inspect_ct, load_ct
from planner.imaging.dicom_scan import scan_dicom
from tests import dicom_builders as db

TOL_HU = 1.0  # stored values are rounded to integers (±0.5) plus float rounding


def expected_hu(volume) -> np.ndarray:
    """linear_hu at every voxel centre of the loaded volume (z, y, x)."""
    return db.linear_hu(volume.geometry.voxel_centres_world())


def assert_geometry_true(volume, *, tol_hu: float = TOL_HU) -> None:
    err = np.abs(volume.hu.astype(float) - expected_hu(volume))
    assert err.size > 0
    assert float(err.max()) <= tol_hu


def reasons(report) -> str:
    return " | ".join(s.reason for s in report.skipped)


# ----------------------------------------------------------------------------- clean loads


def test_clean_axial_series_loads_with_exact_geometry(tmp_path: Path) -> None:
    # Written in reverse file-name order, so sorting by file name would flip the volume.
    positions = db.slice_positions((-4.0, -5.0, -6.0), (1, 0, 0, 0, 1, 0), 2.5, 6)[::-1]
    db.write_ct_series(tmp_path, positions=positions)
    volume, report = load_ct(tmp_path)
    g = volume.geometry
    assert g.shape_zyx == (6, 12, 10)  # builder defaults: 6 slices, 12 rows, 10 columns
    np.testing.assert_allclose(g.origin_mm, (-4.0, -5.0, -6.0), atol=1e-6)
    # PixelSpacing (row 0.8, column 0.7) → spacing (x, y) = (0.7, 0.8); slices 2.5 mm apart.
    np.testing.assert_allclose(g.spacing_mm, (0.7, 0.8, 2.5), atol=1e-6)
    assert g.is_axis_aligned
    assert volume.hu.dtype == np.int16
    assert_geometry_true(volume)
    assert report.ok and report.problems == [] and report.warnings == []
    assert len(report.files_read) == 6 and report.skipped == []
    assert volume.info.patient_id == "SP-TEST-1"
    assert volume.info.study_date == "2024-03-15"
    assert report.estimated_memory_bytes >= volume.hu.nbytes


@pytest.mark.parametrize(
    ("iop", "orientation"),
    [
        ((1, 0, 0, 0, 0, -1), "coronal"),
        ((0, 1, 0, 0, 0, -1), "sagittal"),
        # Oblique: rows along (cos30, sin30, 0), columns tilted out of the axial plane.
        (
            (
                math.cos(math.radians(30)),
                math.sin(math.radians(30)),
                0.0,
                -math.sin(math.radians(30)) * math.cos(math.radians(20)),
                math.cos(math.radians(30)) * math.cos(math.radians(20)),
                -math.sin(math.radians(20)),
            ),
            "oblique",
        ),
    ],
)
def test_non_axial_series_keeps_its_direction(tmp_path: Path, iop, orientation: str) -> None:
    db.write_ct_series(tmp_path, iop=iop, n_slices=5, slice_spacing_mm=1.5)
    scan = scan_dicom(tmp_path)
    assert [s.orientation for s in scan.series] == [orientation]
    volume, report = load_ct(tmp_path)
    g = volume.geometry
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    np.testing.assert_allclose(g.direction[:, 0], row, atol=1e-6)
    np.testing.assert_allclose(g.direction[:, 1], col, atol=1e-6)
    np.testing.assert_allclose(g.direction[:, 2], np.cross(row, col), atol=1e-6)
    assert not g.is_axis_aligned
    assert_geometry_true(volume)
    # A pixel at a known LPS position: slice 3, row 7, column 2 of the written series.
    ipp = db.slice_positions((-4.0, -5.0, -6.0), iop, 1.5, 5)[3]
    xyz = db.pixel_world_mm(ipp, iop, (0.8, 0.7), 12, 10)[7, 2]
    assert abs(float(volume.hu_at_world(xyz)) - float(db.linear_hu(xyz))) <= TOL_HU
    # (the ramp may leave this small volume without air or water: only HU warnings allowed)
    assert [w for w in report.warnings if not w.startswith("implausible HU")] == []


def test_single_file_path_loads_its_series(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path / "a", n_slices=4)
    db.write_ct_series(tmp_path / "a", n_slices=7, prefix="OTHER")  # a larger series beside it
    volume, _report = load_ct(paths[2])
    assert volume.shape_zyx[0] == 4
    assert_geometry_true(volume)


def test_enhanced_ct_multiframe_sorted_by_frame_position(tmp_path: Path) -> None:
    db.write_enhanced_ct(tmp_path / "ect.dcm", n_frames=5)
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx == (5, 8, 9)
    np.testing.assert_allclose(volume.geometry.spacing_mm, (0.8, 0.9, 2.0), atol=1e-6)
    assert_geometry_true(volume)
    assert report.ok


# ----------------------------------------------------------------------------- §4 #1, #15: folders


def test_mixed_folder_lists_every_series_and_picks_the_ct(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path / "ct", n_slices=6)
    db.write_ct_series(
        tmp_path / "mr", n_slices=9, modality="MR", sop_class=db.MR_IMAGE_STORAGE, prefix="MR"
    )
    db.write_rtstruct(tmp_path / "rs" / "RS.dcm")
    db.write_junk(tmp_path / "notes.txt")
    db.write_junk(tmp_path / "ct" / "DICOMDIR.bak", "\x00" * 300)
    scan = scan_dicom(tmp_path)
    assert sorted(s.modality for s in scan.series) == ["CT", "MR", "RTSTRUCT"]
    assert [s.modality for s in scan.ct_series()] == ["CT"]
    assert scan.largest_ct().n_slices == 6  # the larger MR series is not a CT
    skipped = {k.path.name: k.reason for k in scan.skipped}
    assert skipped["notes.txt"] == "not a DICOM file"
    assert "DICOMDIR.bak" in skipped
    for s in scan.series:
        assert s.modality in s.summary() and str(s.n_slices) in s.summary()
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 6
    assert {k.path.name for k in report.skipped} >= {"notes.txt", "DICOMDIR.bak"}
    assert len(report.series_found) == 3


def test_non_ct_modality_is_refused(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, modality="MR", sop_class=db.MR_IMAGE_STORAGE)
    with pytest.raises(InputError, match="no CT series"):
        load_ct(tmp_path)
    uid = scan_dicom(tmp_path).series[0].series_instance_uid
    with pytest.raises(CTImportError, match="modality MR") as err:
        load_ct(tmp_path, series_uid=uid)
    assert err.value.report.problems


def test_ct_modality_with_foreign_sop_class_is_refused(tmp_path: Path) -> None:
    # Modality CT, but stored as an RT structure set SOP class: not a CT image.
    db.write_ct_series(tmp_path, sop_class=db.RT_STRUCTURE_SET)
    uid = scan_dicom(tmp_path).series[0].series_instance_uid
    with pytest.raises(CTImportError, match="not a CT image storage class"):
        load_ct(tmp_path, series_uid=uid)


def test_secondary_capture_with_ct_modality_warns(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, sop_class=db.SECONDARY_CAPTURE)
    scan = scan_dicom(tmp_path)
    assert scan.largest_ct() is None  # never chosen automatically
    volume, report = load_ct(tmp_path, series_uid=scan.series[0].series_instance_uid)
    assert any("secondary capture" in w for w in report.warnings)
    assert any("secondary capture" in w for w in volume.warnings)


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_ct(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty folder"):
        load_ct(tmp_path / "empty")
    db.write_junk(tmp_path / "junk" / "a.txt")
    with pytest.raises(InputError, match="no DICOM images"):
        load_ct(tmp_path / "junk")
    db.write_ct_series(tmp_path / "ct")
    with pytest.raises(InputError, match="no series"):
        load_ct(tmp_path / "ct", series_uid="1.2.3.4")


# ----------------------------------------------------------------------------- §4 #3, #4: spacing


def test_missing_slice_is_resampled_with_warning_or_refused(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=7, slice_spacing_mm=3.0)
    paths[3].unlink()
    with pytest.raises(CTImportError, match="non-uniform slice spacing"):
        load_ct(tmp_path, allow_resample=False)
    volume, report = load_ct(tmp_path)
    g = volume.geometry
    # The regular grid restores the 3 mm spacing over the full 18 mm span: 7 planes.
    assert g.shape_zyx[0] == 7
    assert g.spacing_mm[2] == pytest.approx(3.0)
    assert_geometry_true(volume)  # the missing plane is interpolated (exact for a linear ramp)
    assert any(w.startswith("resampled") and "3.00–6.00 mm" in w for w in report.warnings)
    assert volume.warnings == report.warnings


def test_variable_spacing_is_resampled_to_the_smallest_gap(tmp_path: Path) -> None:
    z = [-6.0, -2.0, 2.0, 3.0, 10.0, 17.0]  # gaps 4, 4, 1, 7, 7 mm like the GE head CT
    db.write_ct_series(tmp_path, positions=[(-4.0, -5.0, zz) for zz in z])
    volume, report = load_ct(tmp_path)
    g = volume.geometry
    assert g.spacing_mm[2] == pytest.approx(1.0)
    assert g.shape_zyx[0] == 24  # 23 mm span / 1 mm + 1
    np.testing.assert_allclose(g.origin_mm, (-4.0, -5.0, -6.0), atol=1e-9)
    assert_geometry_true(volume)
    assert any("slice gaps 1.00–7.00 mm" in w for w in report.warnings)


def test_small_position_jitter_is_tolerated(tmp_path: Path) -> None:
    # 0.02 mm jitter < max(0.05 mm, 1 % of 2.5 mm): the stack counts as uniform.
    z = [-6.0 + 2.5 * k + (0.02 if k % 2 else 0.0) for k in range(6)]
    db.write_ct_series(tmp_path, positions=[(-4.0, -5.0, zz) for zz in z])
    volume, report = load_ct(tmp_path, allow_resample=False)
    assert not any("resampled" in w for w in report.warnings)
    assert volume.geometry.spacing_mm[2] == pytest.approx(2.5, abs=0.01)


# ----------------------------------------------------------------------------- §4 #5: gantry tilt


def _tilted_series(folder: Path, tilt_deg: float, *, n: int = 6, step_mm: float = 3.0):
    """Tilted slice planes (rotation about x) whose origins step along the table (z)."""
    t = math.radians(tilt_deg)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    positions = [(-4.0, -5.0, -6.0 + step_mm * k) for k in range(n)]
    db.write_ct_series(folder, iop=iop, positions=positions, gantry_tilt=tilt_deg)
    return iop, positions


def test_gantry_tilt_is_desheared_onto_the_true_geometry(tmp_path: Path) -> None:
    iop, positions = _tilted_series(tmp_path, 20.0)
    volume, report = load_ct(tmp_path)
    g = volume.geometry
    t = math.radians(20.0)
    # k runs along the slice normal row × col = (0, sin t, cos t).
    np.testing.assert_allclose(g.direction[:, 2], (0.0, math.sin(t), math.cos(t)), atol=1e-6)
    # Step along the normal 3·cos 20° = 2.819 mm; uniform, so the grid keeps it.
    assert g.spacing_mm[2] == pytest.approx(3.0 * math.cos(t), abs=1e-6)
    warning = next(w for w in report.warnings if w.startswith("resampled"))
    assert "gantry tilt 20.0°" in warning
    # Every acquired pixel position holds its own value (first slice exactly, others by the
    # linear interpolation that a linear ramp survives).
    for k, ipp in enumerate(positions):
        xyz = db.pixel_world_mm(ipp, iop, (0.8, 0.7), 12, 10)
        kji = np.rint(g.world_to_zyx(xyz)).astype(int)
        on_grid = np.abs(g.world_to_zyx(xyz) - kji).max(axis=-1) < 1e-6
        if k == 0:
            assert on_grid.all()
        vals = volume.hu[kji[..., 0], kji[..., 1], kji[..., 2]].astype(float)
        assert np.abs(vals - db.linear_hu(xyz))[on_grid].max(initial=0) <= TOL_HU
    # Everywhere inside the acquired slab the values match their LPS positions; outside, air.
    err = np.abs(volume.hu.astype(float) - expected_hu(volume))
    filled = volume.hu == -1024
    assert np.all((err <= TOL_HU) | filled)
    assert (err <= TOL_HU).mean() > 0.5  # the shear moves 15 mm of a 9 mm field out of view


def test_gantry_tilt_refused_without_resampling(tmp_path: Path) -> None:
    _tilted_series(tmp_path, 15.0)
    with pytest.raises(CTImportError, match=r"gantry tilt 15\.0°"):
        load_ct(tmp_path, allow_resample=False)


def test_tilt_detected_from_geometry_when_tag_is_absent(tmp_path: Path) -> None:
    t = math.radians(12.0)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    db.write_ct_series(tmp_path, iop=iop, positions=[(-4.0, -5.0, 2.0 * k) for k in range(5)])
    result = inspect_ct(tmp_path, allow_resample=False)
    assert result.volume is None
    assert any("gantry tilt 12.0°" in p for p in result.report.problems)


def test_tilt_tag_with_orthogonal_geometry_loads_with_warning(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, gantry_tilt=10.0)  # scanner-corrected: positions along normal
    volume, report = load_ct(tmp_path, allow_resample=False)
    assert any("GantryDetectorTilt +10.0°" in w for w in report.warnings)
    assert not any(w.startswith("resampled") for w in report.warnings)
    assert_geometry_true(volume)


# ----------------------------------------------------------------------------- §4 #6, #17: identity


def test_duplicate_sop_instance_is_dropped_and_listed(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    shutil.copy(paths[2], tmp_path / "copy_of_slice.dcm")
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 5
    assert "same SOP Instance UID" in reasons(report)
    assert_geometry_true(volume)


def test_two_different_images_at_one_position_are_refused(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "CT_other.dcm", enforce_file_format=True)
    with pytest.raises(CTImportError, match="same position"):
        load_ct(tmp_path)


def test_mixed_frames_of_reference_are_refused(tmp_path: Path) -> None:
    def other_for(k: int, ds) -> None:
        if k == 3:
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"

    db.write_ct_series(tmp_path, per_slice=other_for)
    with pytest.raises(CTImportError, match="mixed frames of reference"):
        load_ct(tmp_path)


def test_mixed_patient_ids_are_refused(tmp_path: Path) -> None:
    def other_patient(k: int, ds) -> None:
        if k == 0:
            ds.PatientID = "SOMEONE-ELSE"

    db.write_ct_series(tmp_path, per_slice=other_patient)
    result = inspect_ct(tmp_path)
    assert result.volume is None
    assert any("mixed patient IDs" in p for p in result.report.problems)


# ----------------------------------------------------------------------------- §4 #2: split series


def test_series_with_differing_image_size_is_split(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.77"
    db.write_ct_series(tmp_path, n_slices=5, series_uid=uid)
    db.write_ct_series(tmp_path, n_slices=1, series_uid=uid, rows=6, cols=6, prefix="SCOUT")
    scan = scan_dicom(tmp_path)
    assert sorted((s.key, s.n_slices) for s in scan.series) == [(f"{uid}#1", 5), (f"{uid}#2", 1)]
    volume, report = load_ct(tmp_path, series_uid=uid)
    assert volume.shape_zyx == (5, 12, 10)
    assert any("different size/orientation" in s.reason for s in report.skipped)
    assert any("2 differently shaped" in w for w in report.warnings)
    with pytest.raises(CTImportError, match="at least 2 slices"):
        load_ct(tmp_path, series_uid=f"{uid}#2")


# ----------------------------------------------------------------------------- §4 #9, #14: files


def test_truncated_and_junk_files_are_skipped_and_listed(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=6)
    db.truncate(paths[-1])
    db.write_junk(tmp_path / "readme.txt")
    (tmp_path / "zero.dcm").write_bytes(b"")
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 5
    skipped = {k.path.name: k.reason for k in report.skipped}
    assert skipped[paths[-1].name].startswith("truncated")
    assert skipped["readme.txt"] == "not a DICOM file"
    assert "zero.dcm" in skipped
    assert_geometry_true(volume)


def test_truncated_middle_slice_leaves_a_gap_that_is_reported(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=6)
    db.truncate(paths[2], 0.97)  # header intact, pixel data short
    with pytest.raises(CTImportError, match="non-uniform slice spacing") as err:
        load_ct(tmp_path, allow_resample=False)
    assert "truncated" in reasons(err.value.report)
    volume, report = load_ct(tmp_path)
    assert any(w.startswith("resampled") for w in report.warnings)
    assert_geometry_true(volume)


def test_file_without_meta_header_is_read(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=4)
    db.strip_file_meta(paths[1])
    assert paths[1].read_bytes()[128:132] != b"DICM"
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 4 and report.skipped == []
    assert_geometry_true(volume)


@pytest.mark.parametrize(
    ("syntax", "words"),
    [
        (db.JPEG_BASELINE, "JPEG Baseline"),
        (db.MPEG2, "unsupported compression"),
    ],
)
def test_undecodable_compressed_file_is_skipped_with_transfer_syntax(
    tmp_path: Path, syntax: str, words: str
) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    db.make_compressed_undecodable(paths[0], syntax)
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 4
    skipped = {k.path.name: k.reason for k in report.skipped}
    assert words in skipped[paths[0].name]
    assert syntax in skipped[paths[0].name]
    assert paths[0] not in report.files_read
    assert_geometry_true(volume)


# ----------------------------------------------------------------------------- §4 #10: rescale


def test_rescale_is_applied_per_slice(tmp_path: Path) -> None:
    paths = []
    uid, study, for_uid = "1.2.826.0.1.3680043.8.498.5", "1.2.3.5", "1.2.3.6"
    for k, (slope, intercept) in enumerate([(1, -1024), (2, -2048), (1, 0), (1, -1000)]):
        paths += db.write_ct_series(
            tmp_path,
            positions=[(-4.0, -5.0, -6.0 + 2.0 * k)],
            slope=slope,
            intercept=intercept,
            prefix=f"S{k}_",
            series_uid=uid,
            study_uid=study,
            frame_of_reference_uid=for_uid,
        )
    volume, _report = load_ct(tmp_path)
    assert volume.hu.dtype == np.int16
    assert_geometry_true(volume, tol_hu=1.0 + 1e-6)  # slope 2: raw rounding is ±1 HU


def test_pixel_padding_value_loads_as_air(tmp_path: Path) -> None:
    """PixelPaddingValue (PS3.3 C.7.5.1.1.2) marks pixels outside the image: they become air."""

    def pad_corner(_k: int, ds) -> None:
        arr = ds.pixel_array.copy()
        arr[0, 0] = 0  # stored 0 reads as −2000 HU with this intercept, unless it is padding
        ds.PixelData = arr.tobytes()
        ds.PixelPaddingValue = 0

    db.write_ct_series(tmp_path, intercept=-2000.0, per_slice=pad_corner)
    volume, report = load_ct(tmp_path)
    assert np.all(volume.hu[:, 0, 0] == -1024)
    assert any("padding" in w for w in report.warnings)
    # every other voxel keeps its true HU
    err = np.abs(volume.hu.astype(float) - expected_hu(volume))
    err[:, 0, 0] = 0.0
    assert float(err.max()) <= TOL_HU


def test_fractional_slope_gives_float_hu(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, slope=0.5, intercept=-1024.5)
    volume, _ = load_ct(tmp_path)
    assert volume.hu.dtype == np.float32
    err = np.abs(volume.hu - expected_hu(volume))
    assert float(err.max()) <= 0.25 + 1e-3  # raw rounded to 1 → 0.5 HU steps


def test_implausible_hu_range_warns(tmp_path: Path) -> None:
    # The values are stored with intercept 0 although the data need −1024: no air.
    db.write_ct_series(tmp_path, hu_fn=lambda p: db.linear_hu(p) + 2000.0, intercept=0.0)
    _volume, report = load_ct(tmp_path)
    assert any("no air" in w for w in report.warnings)


# --------------------------------------------------------------------------- §4 #16: memory, thread


def test_memory_is_estimated_and_limited_before_loading(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, n_slices=6)
    scan = scan_dicom(tmp_path)
    assert scan.series[0].estimated_memory_bytes() == 12 * 10 * 6 * 2
    with pytest.raises(CTImportError, match="above the limit"):
        load_ct(tmp_path, max_memory_bytes=1000)


def test_progress_and_cancel(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, n_slices=6)
    seen: list[float] = []
    load_ct(tmp_path, progress=lambda f, msg: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 6
    calls = {"n": 0}

    def cancel_after_scan() -> bool:
        calls["n"] += 1
        return calls["n"] > 7  # 6 header reads pass, then the pixel reading is cancelled

    with pytest.raises(Cancelled):
        load_ct(tmp_path, cancel=cancel_after_scan)
    with pytest.raises(Cancelled):
        scan_dicom(tmp_path, cancel=lambda: True)


def test_report_lines_and_dict(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    db.write_junk(tmp_path / "junk.bin", "xx")
    paths[2].unlink()
    _, report = load_ct(tmp_path)
    text = "\n".join(report.lines())
    assert "junk.bin: not a DICOM file" in text and "resampled" in text
    d = report.to_dict()
    assert d["loaded"] is True and d["n_files_read"] == 4
    assert d["geometry"]["shape_zyx"][0] == 5


def test_tilt_with_variable_gaps_never_mixes_tissue_with_fill(tmp_path: Path) -> None:
    # Like the GE head CT: tilted planes, table steps 4.2 ×3, 1.1, 7.4 ×2 mm.
    t = math.radians(18.5)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    z = np.cumsum([0.0, 4.2, 4.2, 4.2, 1.1, 7.4, 7.4]) - 10.0
    db.write_ct_series(tmp_path, iop=iop, positions=[(-4.0, -5.0, zz) for zz in z], rows=30)
    volume, report = load_ct(tmp_path)
    assert volume.geometry.spacing_mm[2] == pytest.approx(1.1 * math.cos(t), rel=0.05)
    err = np.abs(volume.hu.astype(float) - expected_hu(volume))
    good = err <= TOL_HU
    assert np.all(good | (volume.hu == -1024))
    assert good.mean() > 0.5
    warning = next(w for w in report.warnings if w.startswith("resampled"))
    assert "gantry tilt 18.5°" in warning and "slice gaps" in warning


def test_iop_rounding_noise_does_not_split_a_series(tmp_path: Path) -> None:
    # IOP written with 1e-5 noise straddling a rounding boundary (0.94849 vs 0.94851).
    t = math.acos(0.9485)

    def jitter(k: int, ds) -> None:
        c = 0.9485 + (1e-5 if k % 2 else -1e-5)
        ds.ImageOrientationPatient = [1, 0, 0, 0, f"{c:.6f}", f"{-math.sqrt(1 - c * c):.6f}"]

    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    db.write_ct_series(tmp_path, iop=iop, per_slice=jitter)
    scan = scan_dicom(tmp_path)
    assert [s.n_parts for s in scan.series] == [1]
    assert scan.series[0].n_slices == 6


def test_multiframe_without_per_frame_positions_is_skipped(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=4)
    import pydicom

    ds = pydicom.dcmread(paths[0])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(paths[0], enforce_file_format=True)
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 3
    assert "positions are unknown" in reasons(report)


def test_small_gap_errors_that_add_up_are_caught(tmp_path: Path) -> None:
    # Each gap is within tolerance of the median (2.50 vs 2.54 mm, tol 0.05 mm) but the
    # positions drift ~0.2 mm from any regular grid: not uniform.
    gaps = [2.5] * 10 + [2.54] * 10
    z = np.concatenate([[0.0], np.cumsum(gaps)]) - 20.0
    db.write_ct_series(tmp_path, positions=[(-4.0, -5.0, zz) for zz in z])
    with pytest.raises(CTImportError, match="drift up to"):
        load_ct(tmp_path, allow_resample=False)
    volume, report = load_ct(tmp_path)
    assert any(w.startswith("resampled") for w in report.warnings)
    assert_geometry_true(volume)


def test_near_duplicate_slice_does_not_blow_up_the_grid(tmp_path: Path) -> None:
    z = [0.0, 3.0, 6.0, 6.1, 9.0, 12.0]  # a stray slice 0.1 mm from its neighbour
    db.write_ct_series(tmp_path, positions=[(-4.0, -5.0, zz) for zz in z])
    volume, report = load_ct(tmp_path)
    assert volume.geometry.spacing_mm[2] == pytest.approx(0.75)  # a quarter of the 3 mm median
    assert volume.shape_zyx[0] == 17
    assert any("slice gaps 0.10–3.00 mm" in w for w in report.warnings)
    assert_geometry_true(volume)


def test_images_without_position_are_refused(tmp_path: Path) -> None:
    def no_position(k: int, ds) -> None:
        if k == 2:
            del ds.ImagePositionPatient

    db.write_ct_series(tmp_path, per_slice=no_position)
    with pytest.raises(CTImportError, match="cannot be placed in the patient"):
        load_ct(tmp_path)
