"""The demo case on disk: ``seedplan demo``, the DICOM series (read back by pydicom and
SimpleITK, validated by dciodvfy), the masks, case.json, the user-cache copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813 (the library's own convention)

from app.cli import main
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.demo.case import (
    DEMO_CT_SUBDIR,
    DEMO_MASK_NAMES,
    demo_cache_dir,
    ensure_demo_case,
    is_demo_case,
    load_demo_masks,
    write_demo_case,
    write_demo_case_atomically,
)
from planner.demo.phantom import PhantomSpec
from tests.conftest import built_once

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"  # DICOM PS3.4 Annex B
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"  # DICOM PS3.5 §A.2
SMALL = replace(PhantomSpec(), n_slices=4, matrix=96)


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full-size case written by the command line, once per run (read-only)."""

    def write(out: Path) -> None:
        assert main(["demo", "--out", str(out)]) == 0

    return built_once(tmp_path_factory, "demo-cli-case", write)


def _digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file of the case below ``root`` by relative path (the exports that
    ``seedplan demo`` adds are not part of the deterministic case: the PDF has a print time)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "exports"
    }


def test_demo_command_writes_the_plan_exports(case_dir: Path) -> None:
    exports = case_dir / "exports"
    for name in (
        "plan_summary.pdf",
        "loading_sheet.pdf",
        "RTSTRUCT.dcm",
        "RTPLAN.dcm",
        "RTDOSE.dcm",
        "seeds.csv",
        "needles.csv",
        "metrics.json",
    ):
        assert (exports / name).is_file() and (exports / name).stat().st_size > 0, name


def _sorted_slices(case: Path) -> list[pydicom.Dataset]:
    files = sorted((case / DEMO_CT_SUBDIR).glob("*.dcm"))
    return [pydicom.dcmread(f) for f in files]


def _read_series_sitk(case: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(case / DEMO_CT_SUBDIR))
    reader.SetFileNames(names)
    return reader.Execute()


def _geometry(img: sitk.Image) -> GridGeometry:
    return GridGeometry(
        tuple(reversed(img.GetSize())),
        np.asarray(img.GetOrigin()),
        np.asarray(img.GetSpacing()),
        np.asarray(img.GetDirection()).reshape(3, 3),
    )


def test_cli_writes_every_file(case_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((case_dir / "case.json").read_text())
    assert manifest["patient"] == {"name": "SEEDPLAN^DEMO", "id": "DEMO-0001"}
    assert manifest["suggested_prescription"]["dose_gy"] == 110.0
    assert set(manifest["structures"]) == set(DEMO_MASK_NAMES)
    for name in DEMO_MASK_NAMES:
        assert (case_dir / "masks" / f"{name}.nrrd").is_file()
        assert manifest["structures"][name]["volume_cm3"] > 0
    files = manifest["ct"]["files"]
    assert len(files) == 52
    assert all((case_dir / f).is_file() for f in files)
    assert is_demo_case(case_dir, complete=True)


def test_dicom_headers(case_dir: Path) -> None:
    slices = _sorted_slices(case_dir)
    assert len(slices) == 52
    uids = {s.SOPInstanceUID for s in slices}
    assert len(uids) == 52
    z_prev = None
    for k, ds in enumerate(slices):
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
        assert ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "CT"
        assert str(ds.PatientName) == "SEEDPLAN^DEMO"
        assert ds.PatientID == "DEMO-0001"
        assert ds.Manufacturer == "SeedPlan synthetic phantom"
        assert ds.InstanceNumber == k + 1
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == -1024.0
        assert ds.BitsAllocated == 16 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.SliceThickness) == 2.5 == float(ds.SpacingBetweenSlices)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.78125, 0.78125])
        z = float(ds.ImagePositionPatient[2])
        if z_prev is not None:
            assert z - z_prev == pytest.approx(2.5, abs=1e-4)
        z_prev = z
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID):
            assert len(uid) <= 64 and all(p.isdigit() for p in uid.split("."))
    assert len({s.SeriesInstanceUID for s in slices}) == 1
    assert len({s.FrameOfReferenceUID for s in slices}) == 1


def test_series_reads_back_with_geometry_and_hu(case_dir: Path) -> None:
    manifest = json.loads((case_dir / "case.json").read_text())
    img = _read_series_sitk(case_dir)
    geom = _geometry(img)
    assert geom.same_as(GridGeometry.from_dict(manifest["ct"]["geometry"]), tol_mm=1e-3)
    hu = sitk.GetArrayFromImage(img).astype(np.int16)
    assert hashlib.sha256(hu.tobytes()).hexdigest() == manifest["ct"]["hu_sha256"]
    # pydicom's rescaled pixels agree with SimpleITK's.
    ds = _sorted_slices(case_dir)[10]
    hu_pd = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu_pd, hu[10])
    # Masks sit on the same grid and mark what they should.
    masks = load_demo_masks(case_dir, geom)
    assert set(masks) == set(DEMO_MASK_NAMES)
    assert 30.0 <= hu[masks["SpinalCord"].voxels].mean() <= 40.0
    for name in DEMO_MASK_NAMES:
        mask_img = sitk.ReadImage(str(case_dir / "masks" / f"{name}.nrrd"))
        assert mask_img.GetPixelID() == sitk.sitkUInt8
        assert _geometry(mask_img).same_as(geom)


def test_masks_refuse_another_grid(case_dir: Path) -> None:
    geom = _geometry(_read_series_sitk(case_dir))
    shifted = GridGeometry(geom.shape_zyx, geom.origin_mm + 1.0, geom.spacing_mm, geom.direction)
    with pytest.raises(InputError, match="not on the CT grid"):
        load_demo_masks(case_dir, shifted)


def test_dciodvfy_reports_no_error(case_dir: Path) -> None:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    proc = subprocess.run(
        [tool, str(case_dir / DEMO_CT_SUBDIR / "CT0026.dcm")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert "CTImage" in out  # it recognised the IOD
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert errors == []


def test_refuses_non_empty_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(foreign)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(foreign) in err and "not empty" in err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    # A previous demo case with the user's own files added is not replaced either.
    case = write_demo_case(tmp_path / "case", spec=SMALL)
    (case / "my-plan.json").write_text("{}")
    assert main(["demo", "--out", str(case)]) == 2
    assert "my-plan.json" in capsys.readouterr().err
    assert (case / "my-plan.json").is_file()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["demo", "--out", str(a_file)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_whole_case_is_byte_identical_and_replaceable(tmp_path: Path) -> None:
    a = write_demo_case(tmp_path / "a", spec=SMALL)
    b = write_demo_case_atomically(tmp_path / "b", spec=SMALL)

    first = _digest(a)
    assert len(first) == 4 + 4 + 1  # 4 slices, 4 masks, case.json
    assert _digest(b) == first
    # Writing over a previous demo case replaces it (stale files disappear).
    (b / "ct" / "stale.dcm").write_bytes(b"old")
    write_demo_case_atomically(b, spec=SMALL, force=True)
    assert _digest(b) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp folders left


def test_ensure_demo_case_uses_the_user_cache(
    case_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache of its own: this test deletes from it (the run's cache is shared: conftest).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = demo_cache_dir()
    assert cache.is_relative_to(Path(os.environ["XDG_CACHE_HOME"]))
    shutil.rmtree(cache, ignore_errors=True)
    # First use generates the case: byte-identical to what `seedplan demo` wrote.
    case = ensure_demo_case()
    assert case == cache
    assert is_demo_case(case, complete=True)
    assert _digest(case) == _digest(case_dir)
    # Later uses return it as is; a case with a missing file no longer counts as complete
    # (ensure_demo_case would regenerate it, as on first use).
    mtime = (case / "case.json").stat().st_mtime_ns
    assert ensure_demo_case() == case
    assert (case / "case.json").stat().st_mtime_ns == mtime
    (case / DEMO_CT_SUBDIR / "CT0007.dcm").unlink()
    assert not is_demo_case(case, complete=True)
    assert is_demo_case(case)  # still recognisable as a demo case (may be replaced)
    leftovers = [p.name for p in case.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("char device", "exists and is a character device, not a folder"),
        ("fifo", "is a FIFO (named pipe), not a folder"),
        ("link to device", "symbolic link to /dev/full, a character device, not a folder"),
        ("missing parent", "does not exist (create it first)"),
        ("previous case", "holds a demo case already; use --force to replace it"),
    ],
)
def test_demo_out_follows_the_output_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    # issue 8: one rule for every writer; these are refused before any generation starts
    target = {"char device": Path("/dev/full"), "missing parent": tmp_path / "no" / "case"}.get(
        kind, tmp_path / "out"
    )
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "link to device":
        target.symlink_to("/dev/full")
    elif kind == "previous case":
        write_demo_case(target, spec=SMALL)
    before = _digest(tmp_path), sorted(p.name for p in tmp_path.iterdir())
    assert main(["demo", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{target}: " in err and message in err, err
    assert (_digest(tmp_path), sorted(p.name for p in tmp_path.iterdir())) == before
    assert os.stat("/dev/full").st_rdev == os.makedev(1, 7)
