"""CT import on real data from ../shared/data (skipped when absent).

* Nelms 3 mm CT (dvh-nelms/ct/3mm): a clean axial series.
* GE head CT (ct-gantry-tilt-ge): gantry tilt +18.5°, table steps 4.22 mm ×13, 1.14, 7.38 mm ×13
  (shared/data/README.md). SimpleITK reads it as a uniform 5.63 mm volume (wrong); we must
  de-shear it onto its true geometry or refuse it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from planner.imaging.ct_loader import CTImportError, load_ct
from tests.conftest import shared_data


def _pixels_and_positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """HU (rows, cols) of one file and the LPS position (rows, cols, 3) of every pixel,
    computed here from its own IPP/IOP/PixelSpacing (independently of the loader)."""
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    hu = stored.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    if "PixelPaddingValue" in ds:  # PS3.3 C.7.5.1.1.2: padding = outside the image: air
        hu[stored == ds.PixelPaddingValue] = -1024.0
    ipp = np.asarray(ds.ImagePositionPatient, float)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    ps = np.asarray(ds.PixelSpacing, float)
    r, c = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
    xyz = ipp + c[..., None] * ps[1] * iop[:3] + r[..., None] * ps[0] * iop[3:]
    return hu, xyz


# ----------------------------------------------------------------------------- Nelms 3 mm


def test_nelms_3mm_clean_load_matches_reference_geometry() -> None:
    folder = shared_data("dvh-nelms", "ct", "3mm")
    volume, report = load_ct(folder)
    g = volume.geometry
    # reference/dicom-and-integrity.md §2.2: 512×512×20, 0.6/0.6/3.0 mm, origin (−153.3,
    # −153.3, −27.0) [V]; checked again here against the files' IPPs.
    assert g.shape_zyx == (20, 512, 512)
    np.testing.assert_allclose(g.spacing_mm, (0.6, 0.6, 3.0), atol=1e-9)
    np.testing.assert_allclose(g.origin_mm, (-153.3, -153.3, -27.0), atol=1e-9)
    assert g.is_axis_aligned
    assert report.ok and len(report.files_read) == 20 and report.skipped == []
    assert not any(w.startswith("resampled") for w in report.warnings)
    # Independent reader: SimpleITK agrees on voxels and geometry for this clean series.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in sorted(folder.iterdir())])
    ref = reader.Execute()
    np.testing.assert_array_equal(volume.hu, sitk.GetArrayFromImage(ref))
    np.testing.assert_allclose(ref.GetOrigin(), g.origin_mm, atol=1e-6)
    # Every pixel of every file sits where its own IPP says.
    for f in sorted(folder.iterdir())[::7]:
        hu, xyz = _pixels_and_positions(f)
        kji = g.world_to_zyx(xyz[::37, ::37])
        np.testing.assert_allclose(kji, np.rint(kji), atol=1e-6)
        k, j, i = np.rint(kji).astype(int).transpose(2, 0, 1)
        np.testing.assert_array_equal(volume.hu[k, j, i], hu[::37, ::37])


def test_nelms_3mm_missing_slice_is_detected(tmp_path: Path) -> None:
    folder = shared_data("dvh-nelms", "ct", "3mm")
    files = sorted(
        folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
    )
    for f in files[:9] + files[10:]:  # drop the 10th slice (z = 0 mm), via symlinks
        (tmp_path / f.name).symlink_to(f)
    # SimpleITK would average the spacing to 3.1579 mm (§4 #3); we refuse or resample.
    with pytest.raises(CTImportError, match=r"gaps 3\.00–6\.00 mm"):
        load_ct(tmp_path, allow_resample=False)
    volume, _report = load_ct(tmp_path)
    assert volume.shape_zyx == (20, 512, 512)
    np.testing.assert_allclose(volume.geometry.spacing_mm, (0.6, 0.6, 3.0), atol=1e-9)
    assert any(w.startswith("resampled") for w in volume.warnings)
    # The gap is named: its position (z = 0 mm), its neighbours, and that no file fills it.
    gap = [w for w in volume.warnings if w.startswith("missing slice")]
    assert len(gap) == 1
    assert "(-153.30, -153.30, 0.00) mm LPS" in gap[0]
    assert files[8].name in gap[0] and files[10].name in gap[0]
    assert "no file for it in the folder" in gap[0]


def test_nelms_two_folders_sharing_one_series_uid_are_refused() -> None:
    # The 2 mm and 3 mm Nelms CTs carry the same SeriesInstanceUID: loading the parent folder
    # would interleave two different scans; images at the same position must refuse it (§4 #6).
    folder = shared_data("dvh-nelms", "ct")
    with pytest.raises(CTImportError, match="same position"):
        load_ct(folder)


# ----------------------------------------------------------------------------- GE gantry tilt


@pytest.fixture(scope="module")
def ge_tilt():
    folder = shared_data("ct-gantry-tilt-ge")
    volume, report = load_ct(folder)
    files = sorted(folder.glob("*.dcm"))
    return folder, volume, report, files


def test_ge_tilt_is_reported_and_resampled(ge_tilt) -> None:
    _, volume, report, _files = ge_tilt
    warning = next(w for w in report.warnings if w.startswith("resampled"))
    assert "gantry tilt 18.5°" in warning  # shared/data/README.md: tilt +18.5°
    assert "slice gaps" in warning
    assert warning in volume.warnings
    assert len(report.files_read) == 28
    assert [k.path.name for k in report.skipped] == ["LICENSE"]
    # k runs along the slice normal row × col of the IOP (1,0,0, 0,0.9483,−0.3173).
    np.testing.assert_allclose(
        volume.geometry.direction[:, 2], (0.0, 0.3173047, 0.9483237), atol=1e-6
    )
    # Smallest gap along the normal: 1.14 mm × cos 18.5° = 1.081 mm → grid ≈ 1.08 mm.
    assert volume.geometry.spacing_mm[2] == pytest.approx(1.08, abs=0.01)


def test_ge_tilt_first_slice_pixels_are_reproduced_exactly(ge_tilt) -> None:
    _, volume, _, files = ge_tilt
    hu, xyz = _pixels_and_positions(files[0])  # 01.dcm: lowest along the normal
    kji = volume.geometry.world_to_zyx(xyz)
    np.testing.assert_allclose(kji, np.rint(kji), atol=1e-4)
    k, j, i = np.rint(kji).astype(int).transpose(2, 0, 1)
    assert np.all(k == 0)
    np.testing.assert_array_equal(volume.hu[k, j, i], hu)


def test_ge_tilt_last_slice_matches_independent_interpolation(ge_tilt) -> None:
    _, volume, _, files = ge_tilt
    g = volume.geometry
    hu, xyz = _pixels_and_positions(files[-1])
    kji = g.world_to_zyx(xyz)
    k_last = g.shape_zyx[0] - 1
    np.testing.assert_allclose(kji[..., 0], k_last, atol=1e-4)  # lies on the last plane
    # Output plane k_last, voxel (j, i): find it in 28.dcm from the file's own IPP/IOP.
    ds = pydicom.dcmread(files[-1], stop_before_pixels=True)
    ipp = np.asarray(ds.ImagePositionPatient, float)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    ps = np.asarray(ds.PixelSpacing, float)
    jj, ii = np.mgrid[0 : g.shape_zyx[1], 0 : g.shape_zyx[2]]
    world = g.zyx_to_world(np.stack([np.full_like(jj, k_last), jj, ii], axis=-1))
    r = (world - ipp) @ iop[3:] / ps[0]
    c = (world - ipp) @ iop[:3] / ps[1]
    inside = (r >= 0) & (r <= ds.Rows - 1) & (c >= 0) & (c <= ds.Columns - 1)
    expected = ndimage.map_coordinates(hu, [r[inside], c[inside]], order=1)
    assert inside.sum() > 0.8 * 512 * 512
    # ±0.5 HU: the volume is rounded to int16; +0.05 for float32 arithmetic in the loader.
    np.testing.assert_allclose(volume.hu[k_last][inside], expected, atol=0.55)


@pytest.mark.parametrize("index", [5, 14, 20])
def test_ge_tilt_inner_slices_land_where_their_positions_say(ge_tilt, index: int) -> None:
    """Sampling the volume at an acquired slice's pixel positions gives that slice back (up to
    interpolation), far better than at positions 2–4 mm off (what a wrong geometry gives)."""
    _, volume, _, files = ge_tilt
    g = volume.geometry
    hu, xyz = _pixels_and_positions(files[index])
    hu, xyz = hu[::2, ::2], xyz[::2, ::2]  # every 4th pixel is plenty (and 4× faster)
    body = hu > -1400  # skip the −1500 padding outside the reconstruction circle

    def mad(shift_mm: tuple[float, float, float]) -> float:
        kji = g.world_to_zyx(xyz + np.asarray(shift_mm))
        vals = ndimage.map_coordinates(
            volume.hu,
            [kji[..., 0], kji[..., 1], kji[..., 2]],
            output=np.float64,
            order=1,
            mode="nearest",
        )
        return float(np.abs(vals - hu)[body].mean())

    right = mad((0.0, 0.0, 0.0))
    # Measured here: 17, 3.1, 5.7 HU for slices 6, 15, 21; 52–153 HU when 2–4 mm off.
    assert right < 20.0
    for wrong in [(0.0, 0.0, 4.22), (0.0, 0.0, -4.22), (0.0, 2.0, 0.0)]:
        assert right < 0.4 * mad(wrong)


def test_ge_tilt_refused_when_resampling_is_off() -> None:
    folder = shared_data("ct-gantry-tilt-ge")
    with pytest.raises(CTImportError, match=r"gantry tilt 18\.5°") as err:
        load_ct(folder, allow_resample=False)
    problems = " ".join(err.value.report.problems)
    assert "non-uniform slice spacing" in problems
    assert str(folder) in str(err.value)


def test_ge_padding_pixels_become_air(ge_tilt) -> None:
    """The GE slices mark pixels outside the reconstruction circle with PixelPaddingValue −1500
    (read from the file); they must load as air (−1024 HU), with a warning, not as −1500 HU."""
    _, volume, report, _ = ge_tilt
    assert float(volume.hu.min()) >= -1024.0
    assert any("padding" in w for w in report.warnings), report.warnings


def test_ge_gap_warnings_name_each_run_of_gaps(ge_tilt) -> None:
    """shared/data/README.md: table steps 4.22 mm ×13, 1.14 mm, 7.38 mm ×13, i.e. along the
    tilted slice normal 4.00, 1.08 and 7.00 mm (× cos 18.5°): one warning per run, not per gap,
    and none calls an acquisition gap a missing slice."""
    _, _volume, report, _files = ge_tilt
    gaps = [w for w in report.warnings if "slice gap" in w and not w.startswith("resampled")]
    assert len(gaps) == 2
    assert gaps[0].startswith("slice gap 1.08 mm (median 4.00 mm)")
    assert "14.dcm to ct-gantry-tilt-ge/15.dcm" in gaps[0]
    assert gaps[1].startswith("13 slice gaps of 7.00 mm (median 4.00 mm)")
    assert "15.dcm to ct-gantry-tilt-ge/28.dcm" in gaps[1]
    assert not any(w.startswith("missing slice") for w in report.warnings)
    assert not any("shifted in-plane" in w for w in report.warnings)  # a true tilt, no outlier
