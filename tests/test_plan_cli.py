"""``seedplan plan new`` and ``info PLAN --json`` on the demo case; an RTSTRUCT written by an
independent writer (pydicom + skimage.measure.find_contours) imports within 2 % of its masks."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from skimage.measure import find_contours

from app.cli import main
from app.commands.plan_info import run_plan_info
from dose.geometry import GridGeometry
from planner.demo.case import write_demo_case
from planner.demo.phantom import PhantomSpec
from planner.plan.new_plan import default_role
from planner.plan.plan_file import load_plan

RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
NAMES = ("GTV", "SpinalCord", "SpinalCanal", "VertebralBody")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reduced demo case: 256² pixels of 1.56 mm, 12 slices of 2.5 mm."""
    out = tmp_path_factory.mktemp("plancase") / "case"
    write_demo_case(out, spec=replace(PhantomSpec(), n_slices=12, matrix=256))
    return out


def _truth(case: Path, name: str) -> tuple[np.ndarray, GridGeometry]:
    img = sitk.ReadImage(str(case / "masks" / f"{name}.nrrd"))
    g = GridGeometry(
        tuple(reversed(img.GetSize())),
        np.asarray(img.GetOrigin()),
        np.asarray(img.GetSpacing()),
        np.asarray(img.GetDirection()).reshape(3, 3),
    )
    return sitk.GetArrayFromImage(img) != 0, g


def _info(path: Path) -> dict:
    buf = io.StringIO()
    assert run_plan_info(path, as_json=True, out=buf) == 0
    return json.loads(buf.getvalue())


def _masks_args(case: Path) -> list[str]:
    out: list[str] = []
    for name in NAMES:
        out += ["--mask", f"{name}={case / 'masks' / f'{name}.nrrd'}"]
    return out


def test_plan_new_from_demo_masks_and_info_json(case: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo.seedplan"
    argv = ["plan", "new", "--ct", str(case / "ct"), *_masks_args(case), "--pd-gy", "110",
            "--model", "6711", "--activity-mCi", "0.4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    info = _info(out)
    manifest = json.loads((case / "case.json").read_text())
    assert info["kind"] == "plan" and info["format_version"] == "2.3"
    assert (info["status"], info["revision"]) == ("draft", 1)
    assert info["ct"]["patient_id"] == manifest["patient"]["id"]
    assert info["ct"]["frame_of_reference_uid"] == manifest["ct"]["frame_of_reference_uid"]
    assert info["ct"]["series_instance_uid"] == manifest["ct"]["series_instance_uid"]
    by_name = {s["name"]: s for s in info["structures"]}
    assert list(by_name) == list(NAMES)
    for name in NAMES:
        truth, g = _truth(case, name)
        expected_cm3 = truth.sum() * g.voxel_volume_mm3 / 1000.0
        assert by_name[name]["volume_cm3"] == pytest.approx(expected_cm3, rel=1e-12)
        assert by_name[name]["volume_cm3"] == pytest.approx(
            manifest["structures"][name]["volume_cm3"], abs=1e-3
        )
    roles = {n: s["role"] for n, s in by_name.items()}
    assert roles == {"GTV": "target", "SpinalCord": "oar", "SpinalCanal": "oar",
                     "VertebralBody": "other"}  # fmt: skip
    assert info["prescription"]["structure"] == "GTV"
    assert info["prescription"]["dose_gy"] == 110.0 and info["prescription"]["metric"] == "D90"
    assert info["source"]["strength_U"] == pytest.approx(0.4 * 1.270)
    assert info["source"]["activity_mCi"] == pytest.approx(0.4)
    assert info["source"]["entered_as"] == "mCi"
    assert info["needles"] == [] and info["seeds"] == []
    # The masks are the ground truth voxel for voxel.
    plan = load_plan(out).plan
    for s in plan.structures:
        np.testing.assert_array_equal(s.mask, _truth(case, s.name)[0])


def test_existing_out_needs_force_and_is_replaced_atomically(
    case: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "p.seedplan"
    base = ["plan", "new", "--ct", str(case / "ct"), "--out", str(out)]
    assert main([*base, "--mask", f"GTV={case / 'masks' / 'GTV.nrrd'}"]) == 0
    old = out.read_bytes()
    capsys.readouterr()
    assert main([*base, *_masks_args(case)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(out) in err and "--force" in err
    assert out.read_bytes() == old
    assert main([*base, *_masks_args(case), "--force"]) == 0
    assert len(_info(out)["structures"]) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["p.seedplan"]  # no temporary file left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--role", "Tumour=target"], "--role Tumour: no structure of that name"),
        (["--role", "GTV=boss"], "must be one of target, oar, other"),
        (["--strength-U", "0.5"], "needs its seed model"),
        (["--model", "6711", "--strength-U", "50"], "outside the plausible range"),
        (["--model", "nosuch", "--strength-U", "0.5"], "nosuch"),
        (["--pd-gy", "110", "--role", "GTV=other"], "--pd-gy needs a target structure"),
        (["--pd-gy", "5000"], "outside the plausible range"),
        (["--mask", "GTV=elsewhere.nrrd"], "given twice"),
    ],
)
def test_bad_input_is_one_line_exit_2(case, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "bad.seedplan"
    argv = ["plan", "new", "--ct", str(case / "ct"),
            "--mask", f"GTV={case / 'masks' / 'GTV.nrrd'}", *extra, "--out", str(out)]  # fmt: skip
    if "elsewhere.nrrd" in " ".join(extra):
        argv[-3] = f"GTV={case / 'masks' / 'SpinalCord.nrrd'}"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not out.exists()


def test_mask_on_another_grid_is_refused(case: Path, tmp_path: Path, capsys) -> None:
    truth, g = _truth(case, "GTV")
    img = sitk.GetImageFromArray(truth[:, :, ::2].astype(np.uint8))
    img.SetSpacing((g.spacing_mm[0] * 2, g.spacing_mm[1], g.spacing_mm[2]))
    img.SetOrigin(tuple(g.origin_mm))
    bad = tmp_path / "half.nrrd"
    sitk.WriteImage(img, str(bad))
    argv = ["plan", "new", "--ct", str(case / "ct"), "--mask", f"GTV={bad}",
            "--out", str(tmp_path / "x.seedplan")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "is not on the CT grid" in err and str(bad) in err and "\n" not in err


def _write_rtstruct(
    path: Path, case: Path, names: tuple[str, ...], frame_uid: str, patient_id: str | None = None
) -> None:
    """An RTSTRUCT as another system would write it: the masks' iso-0.5 contours per slice
    (skimage.measure.find_contours), in LPS mm, CLOSED_PLANAR, written with pydicom."""
    ct0 = pydicom.dcmread(sorted((case / "ct").glob("*.dcm"))[0], stop_before_pixels=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RT_STRUCTURE_SET
    ds.Modality = "RTSTRUCT"
    ds.PatientID = ct0.PatientID if patient_id is None else patient_id
    ds.PatientName = ct0.PatientName
    ds.StudyInstanceUID = ct0.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "OtherTPS"
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([Dataset()])
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = frame_uid
    rois, contours, observations = [], [], []
    for number, name in enumerate(names, start=1):
        mask, g = _truth(case, name)
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        items = []
        for k in range(mask.shape[0]):
            if not mask[k].any():
                continue
            padded = np.pad(mask[k], 1).astype(float)
            for c in find_contours(padded, 0.5):
                rc = c[:-1] - 1.0  # closed: drop the repeated point; undo the padding
                ijk = np.column_stack([rc[:, 1], rc[:, 0], np.full(len(rc), k)])
                xyz = g.index_to_world(ijk)
                item = Dataset()
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(xyz)
                item.ContourData = [f"{v:.4f}" for v in xyz.ravel()]
                items.append(item)
        rc_ds = Dataset()
        rc_ds.ReferencedROINumber = number
        rc_ds.ROIDisplayColor = [255, 0, 0]
        rc_ds.ContourSequence = DicomSequence(items)
        contours.append(rc_ds)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV" if name == "GTV" else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.save_as(path, enforce_file_format=True)


def test_rtstruct_from_another_writer_imports_within_2_percent(case: Path, tmp_path: Path) -> None:
    manifest = json.loads((case / "case.json").read_text())
    rs = tmp_path / "RS.dcm"
    names = ("GTV", "SpinalCord", "VertebralBody")
    _write_rtstruct(rs, case, names, manifest["ct"]["frame_of_reference_uid"])
    out = tmp_path / "rs.seedplan"
    argv = ["plan", "new", "--ct", str(case / "ct"), "--rtstruct", str(rs), "--out", str(out)]
    assert main(argv) == 0
    info = _info(out)
    by_name = {s["name"]: s for s in info["structures"]}
    assert list(by_name) == list(names)
    for name in names:
        truth, g = _truth(case, name)
        truth_cm3 = truth.sum() * g.voxel_volume_mm3 / 1000.0
        assert by_name[name]["volume_cm3"] == pytest.approx(truth_cm3, rel=0.02), name
        assert by_name[name]["origin"].startswith("RTSTRUCT RS.dcm ROI")
    assert by_name["GTV"]["role"] == "target" and by_name["SpinalCord"]["role"] == "oar"
    # Voxel agreement, not only volume: Dice ≥ 0.97 for each structure.
    plan = load_plan(out).plan
    for s in plan.structures:
        truth = _truth(case, s.name)[0]
        dice = 2 * np.sum(s.mask & truth) / (s.mask.sum() + truth.sum())
        assert dice >= 0.97, (s.name, dice)


def test_rtstruct_of_another_frame_of_reference_is_refused(case, tmp_path, capsys) -> None:
    rs = tmp_path / "RS_other.dcm"
    _write_rtstruct(rs, case, ("GTV",), "1.2.3.4.5.6.7")
    argv = ["plan", "new", "--ct", str(case / "ct"), "--rtstruct", str(rs),
            "--out", str(tmp_path / "x.seedplan")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "frame of reference 1.2.3.4.5.6.7 is not the CT's" in err and "\n" not in err


@pytest.mark.parametrize(
    ("name", "role"),
    [("GTV", "target"), ("PTV_1", "target"), ("ctv-high", "target"), ("SpinalCord", "oar"),
     ("Canal", "oar"), ("Cord_PRV", "oar"), ("VertebralBody", "other"), ("BODY", "other"),
     ("Esophagus", "oar")],
)  # fmt: skip
def test_default_roles(name: str, role: str) -> None:
    assert default_role(name) == role


def test_rtstruct_of_another_patient_is_refused(case, tmp_path, capsys) -> None:
    manifest = json.loads((case / "case.json").read_text())
    rs = tmp_path / "RS_patient.dcm"
    _write_rtstruct(rs, case, ("GTV",), manifest["ct"]["frame_of_reference_uid"], "OTHER-7")
    argv = ["plan", "new", "--ct", str(case / "ct"), "--rtstruct", str(rs),
            "--out", str(tmp_path / "x.seedplan")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "patient ID 'OTHER-7' is not the CT's 'DEMO-0001'" in err and "\n" not in err
