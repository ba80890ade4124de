"""planner.dicom.ct_write: any CTVolume (also oblique) round-trips through a DICOM CT series."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813 (the library's own convention)
from scipy.spatial.transform import Rotation

from dose.geometry import GridGeometry
from planner.dicom.ct_write import CTSeriesOptions, deterministic_uid, write_ct_series
from planner.imaging.volume import CTVolume, PatientInfo


def _oblique_volume() -> CTVolume:
    rng = np.random.default_rng(7)
    direction = Rotation.from_euler("zx", [30.0, 12.0], degrees=True).as_matrix()
    geom = GridGeometry(
        (6, 7, 5), np.array([-20.0, 35.5, -110.25]), np.array([0.7, 0.9, 2.0]), direction
    )
    hu = rng.integers(-1024, 3000, size=geom.shape_zyx).astype(np.int16)
    info = PatientInfo(patient_name="TEST^OBLIQUE", patient_id="T-1")
    return CTVolume(hu=hu, geometry=geom, info=info)


def _read_back(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_oblique_volume_round_trips(tmp_path: Path) -> None:
    vol = _oblique_volume()
    paths = write_ct_series(vol, tmp_path, options=CTSeriesOptions(series_description="obl"))
    assert len(paths) == 6
    img = _read_back(tmp_path)
    back = GridGeometry(
        tuple(reversed(img.GetSize())),
        np.asarray(img.GetOrigin()),
        np.asarray(img.GetSpacing()),
        np.asarray(img.GetDirection()).reshape(3, 3),
    )
    assert back.same_as(vol.geometry, tol_mm=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), vol.hu)
    ds = pydicom.dcmread(paths[3])
    assert str(ds.PatientName) == "TEST^OBLIQUE"
    np.testing.assert_allclose(
        [float(v) for v in ds.ImagePositionPatient],
        vol.geometry.index_to_world([0.0, 0.0, 3.0]),
        atol=1e-4,
    )


def test_uids_random_by_default_and_deterministic_on_request(tmp_path: Path) -> None:
    vol = _oblique_volume()
    when = datetime(2024, 1, 2, 3, 4, 5)
    a = write_ct_series(vol, tmp_path / "a", when=when)
    b = write_ct_series(vol, tmp_path / "b", when=when)
    assert pydicom.dcmread(a[0]).SOPInstanceUID != pydicom.dcmread(b[0]).SOPInstanceUID
    c = write_ct_series(vol, tmp_path / "c", when=when, uid_entropy=("x", "1"))
    d = write_ct_series(vol, tmp_path / "d", when=when, uid_entropy=("x", "1"))
    assert [p.read_bytes() for p in c] == [p.read_bytes() for p in d]
    e = write_ct_series(vol, tmp_path / "e", when=when, uid_entropy=("x", "2"))
    assert pydicom.dcmread(e[0]).SeriesInstanceUID != pydicom.dcmread(c[0]).SeriesInstanceUID
    uid = deterministic_uid("a", "b")
    assert uid == deterministic_uid("a", "b") != deterministic_uid("ab")
    assert uid.startswith("2.25.") and len(uid) <= 64


def test_oblique_slice_passes_dciodvfy(tmp_path: Path) -> None:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    for name, options in (("known", CTSeriesOptions(body_part="PELVIS")), ("unknown", None)):
        paths = write_ct_series(_oblique_volume(), tmp_path / name, options=options)
        proc = subprocess.run([tool, str(paths[0])], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], name
