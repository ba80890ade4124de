"""RTDOSE and RTSTRUCT reading and contour rasterisation (dicom-and-integrity.md §4 row 11, §C).

Synthetic files are written with pydicom in tmp_path (helpers below, also used by
test_dvh_cli.py); the real Nelms files come from ../shared/data/dvh-nelms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dose.dvh_calc import compute_dvh, sample_dose_gy
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.dicom.rtdose import read_rtdose
from planner.dicom.rtstruct import ROI, read_rtstruct
from planner.structures.rasterise import rasterise_roi, rasterise_roi_on_grid, roi_dvh
from tests.conftest import shared_data

RTDOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
FRAME_UID = "1.2.826.0.1.3680043.8.498.1"


def _base(sop_class: str, modality: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "TEST"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = FRAME_UID
    return ds


def write_rtdose(
    path: Path,
    raw: np.ndarray,
    *,
    scaling: float | None = 0.001,
    ipp: Sequence[float] = (0.0, 0.0, 0.0),
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    offsets: Sequence[float] | None = None,
    units: str = "GY",
    modality: str = "RTDOSE",
) -> Path:
    """raw: (frames, rows, columns) uint32 stored values; offsets default 0, 1, 2 … mm."""
    raw = np.ascontiguousarray(raw, dtype=np.uint32)
    ds = _base(RTDOSE_SOP, modality)
    nf, rows, cols = raw.shape
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, nf
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.GridFrameOffsetVector = [float(v) for v in (offsets if offsets is not None else range(nf))]
    ds.FrameIncrementPointer = 0x3004000C
    ds.DoseUnits = units
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    if scaling is not None:
        ds.DoseGridScaling = scaling
    ds.PixelData = raw.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtstruct(
    path: Path,
    rois: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    *,
    interpreted: Sequence[str] | None = None,
) -> Path:
    """rois: (name, [(ContourGeometricType, points (n, 3) mm), …]) in ROI number order 1, 2, …"""
    ds = _base(RTSTRUCT_SOP, "RTSTRUCT")
    ds.StructureSetLabel = "TEST"
    ref = Dataset()
    ref.FrameOfReferenceUID = FRAME_UID
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref])
    ssroi, roic, obs = [], [], []
    for number, (name, contours) in enumerate(rois, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ROIName = name
        item.ReferencedFrameOfReferenceUID = FRAME_UID
        item.ROIGenerationAlgorithm = "MANUAL"
        ssroi.append(item)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        seq = []
        for kind, pts in contours:
            c = Dataset()
            c.ContourGeometricType = kind
            pts = np.asarray(pts, dtype=float).reshape(-1, 3)
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [f"{v:.6g}" for v in pts.ravel()]
            seq.append(c)
        rc.ContourSequence = DicomSequence(seq)
        roic.append(rc)
        o = Dataset()
        o.ObservationNumber = number
        o.ReferencedROINumber = number
        o.RTROIInterpretedType = interpreted[number - 1] if interpreted else "ORGAN"
        obs.append(o)
    ds.StructureSetROISequence = DicomSequence(ssroi)
    ds.ROIContourSequence = DicomSequence(roic)
    ds.RTROIObservationsSequence = DicomSequence(obs)
    ds.save_as(path, enforce_file_format=True)
    return path


def square(x0: float, y0: float, size: float, z: float) -> np.ndarray:
    """Closed square contour (4 vertices) on the plane z."""
    return np.array(
        [[x0, y0, z], [x0 + size, y0, z], [x0 + size, y0 + size, z], [x0, y0 + size, z]]
    )


def circle(cx: float, cy: float, r: float, z: float, n: int = 128) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


# ====================================================================== RTDOSE
def test_rtdose_scaling_and_geometry(tmp_path: Path) -> None:
    raw = np.arange(3 * 4 * 5, dtype=np.uint32).reshape(3, 4, 5) * 1000
    p = write_rtdose(
        tmp_path / "rd.dcm",
        raw,
        scaling=2e-6,
        ipp=(-10.0, 20.0, 30.0),
        pixel_spacing=(2.0, 1.5),
        offsets=[0.0, 3.0, 6.0],
    )
    rd = read_rtdose(p)
    np.testing.assert_allclose(rd.dose_gy, raw * 2e-6)  # DoseGridScaling applied (§4 row 11)
    g = rd.geometry
    assert g.shape_zyx == (3, 4, 5)
    # PixelSpacing is (row spacing = Δy, column spacing = Δx).
    np.testing.assert_allclose(g.spacing_mm, [1.5, 2.0, 3.0])
    np.testing.assert_allclose(g.zyx_to_world([1, 1, 1]), [-8.5, 22.0, 33.0])
    assert rd.frame_of_reference_uid == FRAME_UID


def test_rtdose_absolute_offsets_equal_relative(tmp_path: Path) -> None:
    raw = np.ones((3, 2, 2), dtype=np.uint32)
    rel = read_rtdose(write_rtdose(tmp_path / "a.dcm", raw, ipp=(0, 0, 30.0), offsets=[0, 2, 4]))
    ab = read_rtdose(write_rtdose(tmp_path / "b.dcm", raw, ipp=(0, 0, 30.0), offsets=[30, 32, 34]))
    assert ab.geometry.same_as(rel.geometry)
    np.testing.assert_allclose(ab.geometry.spacing_mm, [1, 1, 2])


def test_rtdose_decreasing_offsets_are_reversed(tmp_path: Path) -> None:
    raw = np.stack([np.full((2, 2), v, dtype=np.uint32) for v in (10, 20, 30)])
    rd = read_rtdose(write_rtdose(tmp_path / "d.dcm", raw, scaling=1.0, offsets=[0, -2, -4]))
    assert rd.geometry.spacing_mm[2] == pytest.approx(2.0)
    # Frame 0 (10 Gy) is at z = 0, frame 2 (30 Gy) at z = −4 mm.
    pts = [[0.0, 0.0, 0.0], [0.0, 0.0, -4.0], [0.0, 0.0, -2.0]]
    np.testing.assert_allclose(sample_dose_gy(rd.dose_gy, rd.geometry, pts), [10, 30, 20])


def test_rtdose_non_axial_orientation(tmp_path: Path) -> None:
    # Sagittal: rows along +y, columns along −z; normal = row × column = −x.
    raw = np.zeros((2, 3, 4), dtype=np.uint32)
    raw[1, 2, 3] = 5000
    rd = read_rtdose(
        write_rtdose(
            tmp_path / "s.dcm",
            raw,
            ipp=(5.0, -1.0, 7.0),
            iop=(0, 1, 0, 0, 0, -1),
            pixel_spacing=(2.0, 1.0),
            offsets=[0.0, 4.0],
        )
    )
    g = rd.geometry
    np.testing.assert_allclose(g.direction[:, 0], [0, 1, 0])
    np.testing.assert_allclose(g.direction[:, 1], [0, 0, -1])
    np.testing.assert_allclose(g.direction[:, 2], [-1, 0, 0])
    # Voxel (frame 1, row 2, column 3): 5 − 4 = 1, −1 + 3·1 = 2, 7 − 2·2 = 3.
    np.testing.assert_allclose(g.zyx_to_world([1, 2, 3]), [1.0, 2.0, 3.0])
    assert sample_dose_gy(rd.dose_gy, g, [[1.0, 2.0, 3.0]])[0] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offsets": [0.0, 3.0, 7.0]}, "not evenly spaced"),
        ({"units": "RELATIVE"}, "DoseUnits is RELATIVE"),
        ({"scaling": None}, "DoseGridScaling"),
        ({"scaling": 0.0}, "DoseGridScaling must be positive"),
        ({"modality": "CT"}, "not an RTDOSE"),
        ({"offsets": [5.0, 6.0, 7.0]}, "neither 0"),
        ({"offsets": [0.0, 2.0, 1.0]}, "not monotonic"),
    ],
)
def test_rtdose_refuses_bad_input(tmp_path: Path, kwargs: dict, message: str) -> None:
    p = write_rtdose(tmp_path / "bad.dcm", np.ones((3, 2, 2), dtype=np.uint32), **kwargs)
    with pytest.raises(InputError, match=message) as err:
        read_rtdose(p)
    assert str(p) in str(err.value)  # one line naming the file


def test_rtdose_not_dicom(tmp_path: Path) -> None:
    p = tmp_path / "x.dcm"
    p.write_text("not dicom")
    with pytest.raises(InputError, match="not a readable DICOM"):
        read_rtdose(p)


def test_rtdose_nelms_real_file() -> None:
    # Nelms 2015 data README: 1 Gy/mm gradient, 16 Gy at the structure centre (0, −6, 6) mm,
    # DoseGridScaling must be applied.
    rd = read_rtdose(shared_data("dvh-nelms", "dose", "Linear_AntPost_1mm_Aligned.dcm"))
    assert rd.dose_gy.max() == pytest.approx(36.0, abs=1e-4)
    d = sample_dose_gy(rd.dose_gy, rd.geometry, [[0, -6, 6], [0, 6, 6], [0, -18, 6]])
    np.testing.assert_allclose(d, [16.0, 4.0, 28.0], atol=1e-4)
    si = read_rtdose(shared_data("dvh-nelms", "dose", "Linear_SupInf_3mm_Aligned.dcm"))
    d = sample_dose_gy(si.dose_gy, si.geometry, [[0, -6, 6], [0, -6, 18]])
    np.testing.assert_allclose(d, [16.0, 28.0], atol=1e-4)


# ====================================================================== RTSTRUCT
def test_rtstruct_reads_rois_and_skips_points(tmp_path: Path) -> None:
    p = write_rtstruct(
        tmp_path / "rs.dcm",
        [
            ("Box", [("CLOSED_PLANAR", square(0, 0, 10, z)) for z in range(10)]),
            ("Marker", [("POINT", np.array([[1.0, 2.0, 3.0]]))]),
        ],
        interpreted=["ORGAN", "MARKER"],
    )
    ss = read_rtstruct(p)
    assert [r.name for r in ss.rois] == ["Box", "Marker"]
    assert ss.rois[1].is_point_roi and not ss.rois[0].is_point_roi
    assert [r.name for r in ss.contoured()] == ["Box"]
    assert ss.rois[0].interpreted_type == "ORGAN"
    assert ss.frame_of_reference_uid == FRAME_UID
    np.testing.assert_allclose(ss.rois[0].contours[3], square(0, 0, 10, 3))


def test_rtstruct_oblique_contour_refused(tmp_path: Path) -> None:
    tilted = square(0, 0, 10, 0.0)
    tilted[:, 2] = [0.0, 0.0, 1.0, 1.0]  # not on an axial plane
    p = write_rtstruct(tmp_path / "rs.dcm", [("Tilted", [("CLOSED_PLANAR", tilted)])])
    with pytest.raises(InputError, match="axial"):
        read_rtstruct(p)


def test_rtstruct_not_rtstruct(tmp_path: Path) -> None:
    p = write_rtdose(tmp_path / "rd.dcm", np.ones((2, 2, 2), dtype=np.uint32))
    with pytest.raises(InputError, match="not an RTSTRUCT"):
        read_rtstruct(p)


def _roi(contours) -> ROI:
    return ROI(number=1, name="r", contours=[np.asarray(c, float) for c in contours])


def test_rasterise_box_end_caps() -> None:
    # 10 planes z = 0…9 mm of a 10×10 mm square: slabs of 1 mm incl. ½-slice end caps give
    # z ∈ [−0.5, 9.5] → 10 × 10 × 10 mm³ = 1.000 cm³ (Nelms end-cap rule).
    r = rasterise_roi(_roi([square(0.1, 0.3, 10, z) for z in range(10)]))
    assert r.volume_cm3 == pytest.approx(1.0, rel=2e-3)
    assert r.geometry.spacing_mm[0] == pytest.approx(0.25)
    lo, hi = r.geometry.bounds_world_mm()
    assert lo[2] == pytest.approx(-0.5 + r.geometry.spacing_mm[2] / 2)
    assert hi[2] == pytest.approx(9.5 - r.geometry.spacing_mm[2] / 2)


def test_rasterise_end_caps_used_for_dose() -> None:
    # DVH-3: dose = 10 + z Gy (1 Gy/mm along z) over the box above: the end caps extend the dose
    # range to [9.5, 19.5] Gy (first/last contour at 10 and 19 Gy); mean 14.5 Gy.
    r = rasterise_roi(_roi([square(0, 0, 10, z) for z in range(10)]))
    dg = GridGeometry.axis_aligned((16, 16, 16), (-2.0, -2.0, -3.0), (1.0, 1.0, 1.0))
    z = dg.axis_coordinates_mm()[2]
    dose = np.broadcast_to((10.0 + z)[:, None, None], dg.shape_zyx).copy()
    dvh = roi_dvh(r, dose, dg)
    assert dvh.volume_cm3 == pytest.approx(r.volume_cm3, rel=1e-9)  # volume = sum of bins
    assert dvh.dmin_gy == pytest.approx(9.5, abs=1e-6)
    assert dvh.dmax_gy == pytest.approx(19.5, abs=1e-6)
    assert dvh.dmean_gy == pytest.approx(14.5, abs=0.01)
    assert dvh.d_percent(50) == pytest.approx(14.5, abs=0.05)


def test_rasterise_circle_hole_gap_and_single_plane() -> None:
    # Circle polygon (128 vertices, r = 5 mm) on 11 planes: shoelace area × 11 mm.
    poly = circle(0, 0, 5.0, 0.0)
    area = 0.5 * abs(
        np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1))
    )
    r = rasterise_roi(_roi([circle(0, 0, 5.0, float(z)) for z in range(11)]))
    assert r.volume_cm3 == pytest.approx(area * 11 / 1000, rel=3e-3)
    # Hole by the even-odd rule: 20×20 minus 10×10 on 5 planes → 300 × 5 mm³.
    planes = []
    for z in range(5):
        planes += [square(0, 0, 20, z), square(5, 5, 10, z)]
    assert rasterise_roi(_roi(planes)).volume_cm3 == pytest.approx(1.5, rel=3e-3)
    # A gap (> 1.5 × the plane spacing) splits the ROI: 2 runs of 3 planes → 6 slabs, not 13.
    gap = [square(0, 0, 10, z) for z in (0, 1, 2, 10, 11, 12)]
    assert rasterise_roi(_roi(gap)).volume_cm3 == pytest.approx(0.6, rel=3e-3)
    # One plane: needs a slice thickness.
    with pytest.raises(InputError, match="single plane"):
        rasterise_roi(_roi([square(0, 0, 10, 0)]))
    one = rasterise_roi(_roi([square(0, 0, 10, 0)]), slice_thickness_mm=2.0)
    assert one.volume_cm3 == pytest.approx(0.2, rel=3e-3)


def test_rasterise_nelms_sphere_volume() -> None:
    # Nelms analytic volume with ½-slice end caps, Sphere_20_0: 7.23833 cm³ (CSV); the slab rule
    # loses the sphere's curvature between 2 mm planes: −0.7 % here (the benchmark test prints
    # every case).
    ss = read_rtstruct(shared_data("dvh-nelms", "structures", "Sphere_20_0.dcm"))
    rois = ss.contoured()
    assert [r.name for r in rois] == ["Sphere_20_0"]
    r = rasterise_roi(rois[0])
    assert r.volume_cm3 == pytest.approx(7.23833, rel=0.01)
    assert r.plane_z_mm.size == 13 and np.diff(r.plane_z_mm) == pytest.approx(2.0)


def test_rasterise_on_a_given_grid() -> None:
    # Box 10×10 mm on planes 0…9 (1 cm³ with end caps) onto a 1 mm grid offset by 0.3 mm, and
    # onto a CT-like 0.8 × 0.8 × 2.5 mm grid: the occupancy integral is the volume.
    roi = _roi([square(0, 0, 10, z) for z in range(10)])
    g1 = GridGeometry.axis_aligned((20, 20, 20), (-4.7, -4.7, -4.7), (1.0, 1.0, 1.0))
    occ = rasterise_roi_on_grid(roi, g1)
    assert occ.dtype == np.float32 and occ.shape == g1.shape_zyx
    assert occ.sum() * 1e-3 == pytest.approx(1.0, rel=2e-3)
    # Voxel i = 5 spans x ∈ [−0.2, 0.8] mm: 80 % inside the box edge at x = 0.
    assert occ[8, 8, 5] == pytest.approx(0.8, abs=0.01)
    assert occ[8, 8, 6] == pytest.approx(1.0)
    g2 = GridGeometry.axis_aligned((10, 30, 30), (-6.0, -6.0, -4.0), (0.8, 0.8, 2.5))
    occ2 = rasterise_roi_on_grid(roi, g2)
    assert occ2.sum() * g2.voxel_volume_mm3 * 1e-3 == pytest.approx(1.0, rel=3e-3)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="axis-aligned"):
        rasterise_roi_on_grid(roi, GridGeometry((4, 4, 4), np.zeros(3), np.ones(3), rot))


def test_thin_cord_contours_on_the_dose_grid() -> None:
    # A 10 mm cord (contours every 2.5 mm, z 0…40) across a 10 Gy/mm gradient D = 100 + 10·x,
    # rasterised onto the 1 mm dose grid itself (the plan path): circular-segment analytic values
    # (test_dvh_brachy.py): D90 = 100 + 10·5·u90 with segment fraction(u90) = 0.9, u90 = −0.6870.
    roi = _roi([circle(0, 0, 5.0, z, n=256) for z in np.arange(0.0, 40.1, 2.5)])
    g = GridGeometry.axis_aligned((50, 20, 20), (-9.5, -9.5, -4.5), (1.0, 1.0, 1.0))
    x = g.axis_coordinates_mm()[0]
    dose = np.broadcast_to(100.0 + 10.0 * x, g.shape_zyx).copy()
    occ = rasterise_roi_on_grid(roi, g)
    dvh = compute_dvh(dose, occ, g)
    assert dvh.volume_cm3 == pytest.approx(np.pi * 25 * 42.5 / 1000, rel=3e-3)
    assert dvh.dmean_gy == pytest.approx(100.0, abs=0.1)
    assert dvh.d_percent(90) == pytest.approx(100 + 50 * -0.6870, rel=0.01)
