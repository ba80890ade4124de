"""Image files (NIfTI, MetaImage, NRRD) → CTVolume with the full LPS geometry."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.ct_loader import load_ct
from planner.imaging.image_files import read_image, write_image


def _rotation(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _oblique_geometry() -> GridGeometry:
    direction = _rotation("z", 25.0) @ _rotation("x", -15.0)
    return GridGeometry(
        (7, 9, 11), np.array([12.5, -40.0, 7.25]), np.array([0.8, 0.9, 2.5]), direction
    )


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_round_trip_keeps_oblique_geometry_and_values(tmp_path: Path, suffix: str) -> None:
    g = _oblique_geometry()
    rng = np.random.default_rng(7)
    hu = rng.integers(-1024, 2000, size=g.shape_zyx).astype(np.int16)
    path = write_image(hu, g, tmp_path / f"ct{suffix}")
    volume = read_image(path)
    assert volume.geometry.same_as(g, tol_mm=1e-4)
    assert volume.hu.dtype == np.int16
    np.testing.assert_array_equal(volume.hu, hu)
    # The value at a known LPS position is the voxel written there.
    xyz = g.zyx_to_world([3, 4, 5])
    assert volume.hu_at_world(xyz) == hu[3, 4, 5]
    assert volume.warnings == []


def _nifti1_bytes(data_zyx: np.ndarray, affine_ras: np.ndarray) -> bytes:
    """A minimal NIfTI-1 (.nii) file with an sform in RAS (written by hand, per nifti1.h)."""
    nz, ny, nx = data_zyx.shape
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)  # dim
    struct.pack_into("<hh", hdr, 70, 4, 16)  # datatype INT16, bitpix
    spacing = np.linalg.norm(affine_ras[:3, :3], axis=0)
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing, 1.0, 1.0, 1.0, 1.0)  # pixdim
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    struct.pack_into("<ff", hdr, 112, 1.0, 0.0)  # scl_slope, scl_inter
    struct.pack_into("<B", hdr, 123, 2)  # xyzt_units: mm
    struct.pack_into("<hh", hdr, 252, 0, 1)  # qform_code 0, sform_code 1 (scanner)
    for r in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * r, *affine_ras[r])
    hdr[344:348] = b"n+1\x00"
    # NIfTI stores x fastest: C-order (z, y, x) bytes are exactly that.
    return bytes(hdr) + b"\x00" * 4 + data_zyx.astype("<i2").tobytes()


def test_nifti_ras_sform_is_converted_to_lps(tmp_path: Path) -> None:
    # RAS affine: spacing (0.5, 0.7, 2.0) mm, rotated 30° about z, origin (10, −20, 30) RAS.
    rot = _rotation("z", 30.0)
    affine = np.eye(4)
    affine[:3, :3] = rot * np.array([0.5, 0.7, 2.0])
    affine[:3, 3] = (10.0, -20.0, 30.0)
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 1100
    path = tmp_path / "ras.nii.gz"
    path.write_bytes(gzip.compress(_nifti1_bytes(data, affine)))
    volume = read_image(path)
    g = volume.geometry
    flip = np.diag([-1.0, -1.0, 1.0])  # RAS → LPS
    np.testing.assert_allclose(g.origin_mm, (-10.0, 20.0, 30.0), atol=1e-4)
    np.testing.assert_allclose(g.spacing_mm, (0.5, 0.7, 2.0), atol=1e-5)
    np.testing.assert_allclose(g.direction, flip @ rot, atol=1e-5)
    np.testing.assert_array_equal(volume.hu, data)
    # Voxel (i, j, k) = (2, 3, 1) is at RAS affine @ (2, 3, 1): the same place in LPS.
    ras = affine @ np.array([2.0, 3.0, 1.0, 1.0])
    lps = flip @ ras[:3]
    assert volume.hu_at_world(lps) == data[1, 3, 2]


def test_float_image_stays_float(tmp_path: Path) -> None:
    g = GridGeometry.axis_aligned((3, 4, 5), (0, 0, 0), (1, 1, 1))
    hu = np.linspace(-1000, 500, 60, dtype=np.float32).reshape(3, 4, 5)
    volume = read_image(write_image(hu, g, tmp_path / "f.nrrd"))
    assert volume.hu.dtype == np.float32
    np.testing.assert_allclose(volume.hu, hu)


def test_load_ct_accepts_image_files(tmp_path: Path) -> None:
    g = _oblique_geometry()
    hu = np.full(g.shape_zyx, -1000, np.int16)
    hu[3, 4, 5] = 40
    path = write_image(hu, g, tmp_path / "ct.mha")
    volume, report = load_ct(path)
    assert report.ok and report.files_read == [path]
    assert report.geometry is not None and report.geometry.same_as(g, tol_mm=1e-4)
    assert volume.hu_at_world(g.zyx_to_world([3, 4, 5])) == 40


def test_implausible_hu_in_image_warns(tmp_path: Path) -> None:
    g = GridGeometry.axis_aligned((3, 4, 5), (0, 0, 0), (1, 1, 1))
    volume = read_image(write_image(np.full(g.shape_zyx, 1024, np.int16), g, tmp_path / "u.nii"))
    assert any("no air" in w for w in volume.warnings)


def test_bad_image_files_raise_one_line_input_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"this is not nifti" * 10)
    with pytest.raises(InputError) as err:
        read_image(junk)
    assert str(junk) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.nrrd")
    with pytest.raises(InputError, match="unsupported image format"):
        read_image(junk.rename(tmp_path / "junk.png"))
    import SimpleITK as sitk  # noqa: N813

    flat = tmp_path / "flat.mha"
    sitk.WriteImage(sitk.Image(4, 5, sitk.sitkInt16), str(flat))
    with pytest.raises(InputError, match="3-D"):
        read_image(flat)
    rgb = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.Image([4, 5, 3], sitk.sitkVectorUInt8, 3), str(rgb))
    with pytest.raises(InputError, match="scalar"):
        read_image(rgb)
    big = write_image(
        np.zeros((3, 4, 5), np.int16),
        GridGeometry.axis_aligned((3, 4, 5), (0, 0, 0), (1, 1, 1)),
        tmp_path / "big.nrrd",
    )
    with pytest.raises(InputError, match="above the limit"):
        read_image(big, max_memory_bytes=10)


@pytest.mark.parametrize("suffix", [".nii", ".mha", ".nrrd", ".nii.gz"])
def test_truncated_image_files_are_refused(tmp_path: Path, suffix: str) -> None:
    # ITK reads an uncompressed .nii cut short without error (zeros for the missing voxels):
    # the loader must notice.
    g = GridGeometry.axis_aligned((10, 20, 30), (0, 0, 0), (1, 1, 1))
    path = tmp_path / f"ct{suffix}"
    import SimpleITK as sitk  # noqa: N813

    from planner.imaging.image_files import sitk_image

    sitk.WriteImage(sitk_image(np.full(g.shape_zyx, -700, np.int16), g), str(path), False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(InputError) as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
