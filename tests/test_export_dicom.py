"""DICOM RT exports of the demo plan: dciodvfy (zero errors), read back with pydicom and our own
importers (structure volumes within 2 %, dose within 0.1 %, seeds within 0.01 mm), references,
stable UIDs, value lengths; RTSTRUCT of holes, tiny parts and a non-axial series."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dose.geometry import GridGeometry
from planner.dicom.ct_write import write_ct_series
from planner.dicom.rtdose import read_rtdose
from planner.dicom.rtstruct import read_rtstruct
from planner.export.export import export_plan
from planner.export.plan_dose import export_dosimetry
from planner.export.rtdose_write import dose_grid_scaling
from planner.export.uids import ct_slices, export_uids
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.plan_file import plan_content_sha256
from planner.structures.rasterise import rasterise_roi_on_grid
from tests.conftest import require_tool
from tests.test_export_support import demo_export_plan, plan_on

WHEN = datetime(2026, 12, 1, 20, 0, 0)


def dciodvfy_errors(path: Path) -> list[str]:
    tool = require_tool("dciodvfy", "dicom3tools")
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert "Assertion" not in text, text
    return [line for line in text.splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    plan, ct = demo_export_plan()
    d = export_dosimetry(plan, ct)
    out = tmp_path_factory.mktemp("export") / "out"
    summary = export_plan(
        plan, ct, out, kinds=["rtstruct", "rtplan", "rtdose"], dosimetry=d, now=WHEN
    )
    return plan, ct, d, out, summary


@pytest.mark.parametrize("name", ["RTSTRUCT.dcm", "RTPLAN.dcm"])
def test_dciodvfy_zero_errors(exported, name):
    *_, out, _summary = exported
    assert dciodvfy_errors(out / name) == []


def test_rtdose_dciodvfy_zero_errors_16_bit_twin(exported, tmp_path):
    """The Debian dciodvfy aborts on 32-bit pixels (an assertion in dicom3tools); every other
    attribute of the RTDOSE is validated on the same dataset written with 16-bit pixels."""
    *_, out, _s = exported
    full = pydicom.dcmread(out / "RTDOSE.dcm")
    dose = full.pixel_array.astype(np.float64) * float(full.DoseGridScaling)
    scaling, text = dose_grid_scaling(float(dose.max()), 16)
    twin = pydicom.dcmread(out / "RTDOSE.dcm")
    twin.BitsAllocated, twin.BitsStored, twin.HighBit = 16, 16, 15
    twin.DoseGridScaling = text
    twin.PixelData = np.rint(dose / scaling).astype("<u2").tobytes()
    twin.save_as(tmp_path / "RD16.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "RD16.dcm") == []
    # the twin is a valid RTDOSE of the same grid (only the pixel depth differs)
    back = read_rtdose(tmp_path / "RD16.dcm")
    assert back.geometry.same_as(read_rtdose(out / "RTDOSE.dcm").geometry)
    assert float(np.max(np.abs(back.dose_gy - dose))) <= 0.5 * scaling * 1.0001


def test_structures_read_back_within_2_percent(exported):
    plan, _ct, _d, out, _s = exported
    ss = read_rtstruct(out / "RTSTRUCT.dcm")
    assert ss.warnings == []
    assert ss.frame_of_reference_uid == plan.ct.frame_of_reference_uid
    by_name = {r.name: r for r in ss.rois}
    for s in plan.structures:
        roi = by_name[s.name]
        assert all(len(c) >= 3 for c in roi.contours)
        occ = rasterise_roi_on_grid(roi, plan.geometry)
        vol = float(occ.sum()) * plan.geometry.voxel_volume_mm3 / 1000.0
        assert vol == pytest.approx(s.volume_cm3, rel=0.02), s.name
        # voxel-edge outlines: centre inclusion gives the voxels back exactly
        assert np.array_equal(occ >= 0.5, s.mask), s.name


def test_dose_reads_back_within_0_1_percent(exported):
    plan, _ct, d, out, _s = exported
    rd = read_rtdose(out / "RTDOSE.dcm")
    assert rd.geometry.same_as(d.geometry, tol_mm=1e-3)
    assert rd.frame_of_reference_uid == plan.ct.frame_of_reference_uid
    nz = d.dose_gy > 0
    rel = np.abs(rd.dose_gy[nz] - d.dose_gy[nz]) / d.dose_gy[nz]
    assert rel.max() <= 1e-3
    assert float(np.max(np.abs(rd.dose_gy - d.dose_gy))) <= 1e-6 * d.dose_gy.max()
    ds = pydicom.dcmread(out / "RTDOSE.dcm")
    assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", "PLAN")


def test_rtplan_seeds_within_0_01_mm_and_slicer_layout(exported):
    plan, _ct, _d, out, _s = exported
    ds = pydicom.dcmread(out / "RTPLAN.dcm")
    assert ds.BrachyTreatmentTechnique == "PERMANENT" and ds.BrachyTreatmentType == "LDR"
    (src,) = ds.SourceSequence
    assert src.SourceIsotopeName == "I-125"
    assert float(src.ReferenceAirKermaRate) == pytest.approx(plan.source.strength_u)
    assert src.SourceStrengthReferenceDate == plan.source.calibration_date.strftime("%Y%m%d")
    (setup,) = ds.ApplicationSetupSequence
    positions = []
    for ch in setup.ChannelSequence:
        cps = ch.BrachyControlPointSequence
        assert int(ch.NumberOfControlPoints) == len(cps) >= 2
        assert [int(cp.ControlPointIndex) for cp in cps] == list(range(len(cps)))
        weights = [float(cp.CumulativeTimeWeight) for cp in cps]
        assert weights == sorted(weights) and weights[-1] == float(ch.FinalCumulativeTimeWeight)
        for cp in cps[::2]:
            positions.append([float(v) for v in cp.ControlPoint3DPosition])
    got = np.array(positions)
    want = np.array([s.position_mm for s in plan.seeds])
    assert got.shape == want.shape
    # every seed exactly once (channels reorder seeds from the tip)
    d = np.linalg.norm(got[:, None, :] - want[None, :, :], axis=2)
    assert np.all(d.min(axis=1) <= 0.01) and len(set(d.argmin(axis=1))) == len(want)
    (rx,) = ds.DoseReferenceSequence
    assert float(rx.TargetPrescriptionDose) == plan.prescription.dose_gy
    rs = pydicom.dcmread(out / "RTSTRUCT.dcm")
    gtv = next(r for r in rs.StructureSetROISequence if r.ROIName == "GTV")
    assert int(rx.ReferencedROINumber) == int(gtv.ROINumber)


def test_one_study_one_frame_and_references(exported):
    plan, _ct, _d, out, _s = exported
    rs, rp, rd = (pydicom.dcmread(out / n) for n in ("RTSTRUCT.dcm", "RTPLAN.dcm", "RTDOSE.dcm"))
    for ds in (rs, rp, rd):
        assert ds.StudyInstanceUID == plan.ct.study_instance_uid
        assert ds.PatientID == plan.ct.patient_id
    assert rp.FrameOfReferenceUID == rd.FrameOfReferenceUID == plan.ct.frame_of_reference_uid
    frame = rs.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == plan.ct.frame_of_reference_uid
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == plan.ct.series_instance_uid
    ct_uids = {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence}
    assert len(ct_uids) == plan.geometry.shape_zyx[0]
    for rc in rs.ROIContourSequence:
        for c in rc.ContourSequence:
            assert c.ContourImageSequence[0].ReferencedSOPInstanceUID in ct_uids
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == rs.SOPInstanceUID
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rp.SOPInstanceUID


def _ds_values(ds):
    for elem in ds.iterall():
        if elem.VR == "DS" and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            for v in values:
                yield elem.keyword, str(v.original_string if hasattr(v, "original_string") else v)


def test_ds_values_fit_16_characters(exported):
    *_, out, _s = exported
    for name in ("RTSTRUCT.dcm", "RTPLAN.dcm", "RTDOSE.dcm"):
        raw = pydicom.dcmread(out / name)
        for kw, text in _ds_values(raw):
            assert len(text) <= 16, (name, kw, text)


def test_uids_stable_per_revision_and_new_for_changed_content(exported):
    plan, *_ = exported
    sha = plan_content_sha256(plan)
    a, b = export_uids(plan, sha), export_uids(plan, sha)
    assert a == b
    moved = plan.evolve(seeds=plan.seeds[1:])
    c = export_uids(moved, plan_content_sha256(moved))
    assert c.series == a.series and set(c.instance.values()).isdisjoint(a.instance.values())
    nxt = plan.evolve(revision=plan.revision + 1)
    assert set(export_uids(nxt, sha).series.values()).isdisjoint(a.series.values())
    assert all(v.startswith("2.25.") and len(v) <= 64 for v in a.instance.values())


def _tricky_ct(tmp_path: Path, direction: np.ndarray) -> CTVolume:
    g = GridGeometry((8, 40, 36), (-10.0, -20.0, 30.0), (0.8, 0.8, 2.0), direction)
    info = PatientInfo("TRICKY^CASE", "TRICKY-1", modality="CT")
    vol = CTVolume(np.zeros(g.shape_zyx, np.int16), g, info)
    paths = write_ct_series(vol, tmp_path / "ct", uid_entropy=("tricky", str(direction.ravel())))
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    info = PatientInfo(
        "TRICKY^CASE",
        "TRICKY-1",
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.FrameOfReferenceUID),
    )
    return CTVolume(vol.hu, g, info, source_path=str(tmp_path / "ct"))


def _tricky_masks(shape) -> dict[str, np.ndarray]:
    gtv = np.zeros(shape, bool)
    gtv[2:6, 8:30, 8:28] = True
    gtv[3:5, 14:22, 14:20] = False  # a hole through two slices
    gtv[4, 34, 30] = True  # a one-voxel part
    gtv[4, 35, 31] = True  # touching it only at a corner
    cord = np.zeros(shape, bool)
    cord[1:7, 30:33, 4:6] = True
    return {"GTV": gtv, "SpinalCord": cord}


def test_rtstruct_holes_and_tiny_parts_axial(tmp_path):
    ct = _tricky_ct(tmp_path, np.eye(3))
    plan = plan_on(ct, _tricky_masks(ct.geometry.shape_zyx))
    export_plan(plan, ct, tmp_path / "out", kinds=["rtstruct", "rtplan"], now=WHEN)
    assert dciodvfy_errors(tmp_path / "out" / "RTSTRUCT.dcm") == []
    assert dciodvfy_errors(tmp_path / "out" / "RTPLAN.dcm") == []
    ss = read_rtstruct(tmp_path / "out" / "RTSTRUCT.dcm")
    for s in plan.structures:
        roi = next(r for r in ss.rois if r.name == s.name)
        occ = rasterise_roi_on_grid(roi, plan.geometry)
        assert np.array_equal(occ >= 0.5, s.mask), s.name  # hole kept, tiny parts kept
        vol = float(occ.sum()) * plan.geometry.voxel_volume_mm3 / 1000.0
        assert vol == pytest.approx(s.volume_cm3, rel=0.02)


def test_rtstruct_non_axial_series(tmp_path):
    """A sagittal series: contours on the sagittal slice planes, each referencing its image."""
    direction = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)
    ct = _tricky_ct(tmp_path, direction)
    plan = plan_on(ct, _tricky_masks(ct.geometry.shape_zyx))
    export_plan(plan, ct, tmp_path / "out", kinds=["rtstruct"], now=WHEN)
    path = tmp_path / "out" / "RTSTRUCT.dcm"
    assert dciodvfy_errors(path) == []
    rs = pydicom.dcmread(path)
    slices = ct_slices(plan)
    g = plan.geometry
    from matplotlib.path import Path as MplPath

    for s, rc in zip(plan.structures, rs.ROIContourSequence, strict=True):
        back = np.zeros(g.shape_zyx, bool)
        for c in rc.ContourSequence:
            pts = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
            assert len(pts) >= 4
            ijk = g.world_to_index(pts)
            k = int(np.rint(ijk[0, 2]))
            assert np.allclose(ijk[:, 2], k, atol=1e-3)  # on the slice plane
            uid = c.ContourImageSequence[0].ReferencedSOPInstanceUID
            assert uid == slices.sop_instance_uids[k]
            jj, ii = np.mgrid[0 : g.shape_zyx[1], 0 : g.shape_zyx[2]]
            centres = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
            back[k] ^= MplPath(ijk[:, :2]).contains_points(centres).reshape(back.shape[1:])
        assert np.array_equal(back, s.mask), s.name


def test_attaching_a_registration_changes_no_uid_of_an_approved_plan(exported, tmp_path):
    """A registration is a verification record on an approved plan: the exported RT objects
    keep their UIDs (derived from the approved content), while a changed seed still changes
    them."""
    from planner.plan.model import Registration
    from planner.plan.plan_file import approved_content_sha256

    plan, ct, *_ = exported
    approved = plan.evolve(
        status="approved", approved_by="physicist", approved_utc="2026-12-01T20:00:00Z"
    )
    m = np.eye(4)
    m[:3, 3] = (2.0, -1.5, 3.0)
    record = Registration("1.2.826.0.1.9", "1.2.826.0.1.8", "ab" * 32, m, registered_by="physicist")
    attached = approved.evolve(registration=record)
    assert plan_content_sha256(attached) != plan_content_sha256(approved)
    assert approved_content_sha256(attached) == approved_content_sha256(approved)

    def uids(p, name):
        export_plan(p, ct, tmp_path / name, kinds=["rtstruct", "rtplan"], now=WHEN)
        out = {}
        for kind in ("RTSTRUCT", "RTPLAN"):
            ds = pydicom.dcmread(tmp_path / name / f"{kind}.dcm", stop_before_pixels=True)
            out[kind] = (ds.SOPInstanceUID, ds.SeriesInstanceUID)
        return out

    before = uids(approved, "approved")
    assert uids(attached, "attached") == before
    moved = approved.evolve(seeds=approved.seeds[1:])
    assert uids(moved, "moved")["RTPLAN"][0] != before["RTPLAN"][0]
