"""``seedplan dvh --rtstruct RS.dcm --rtdose RD.dcm [--json]`` (DESIGN.md, "Command line")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from tests.conftest import shared_data
from tests.test_rt_io import circle, square, write_rtdose, write_rtstruct

KEYS = {
    "volume_cm3",
    "dmin_gy",
    "dmax_gy",
    "dmean_gy",
    "d99_gy",
    "d95_gy",
    "d90_gy",
    "d5_gy",
    "d1_gy",
    "d0_03cc_gy",
}


@pytest.fixture
def rt_pair(tmp_path: Path) -> tuple[Path, Path]:
    # Dose 10 + z Gy (z in mm) on a 1 mm grid covering z ∈ [-3, 12] mm; stored as µGy·1e3.
    z = np.arange(16) - 3.0
    raw = np.broadcast_to(((10.0 + z) * 1e4)[:, None, None], (16, 24, 24)).astype(np.uint32)
    rd = write_rtdose(tmp_path / "rd.dcm", raw, scaling=1e-4, ipp=(-2, -2, -3))
    rs = write_rtstruct(
        tmp_path / "rs.dcm",
        [
            ("Box", [("CLOSED_PLANAR", square(0, 0, 10, z)) for z in range(10)]),
            ("Marker", [("POINT", np.array([[1.0, 2.0, 3.0]]))]),
            ("Cord", [("CLOSED_PLANAR", circle(10, 10, 2.5, z)) for z in range(4, 9)]),
        ],
    )
    return rs, rd


def test_dvh_json(rt_pair, capsys) -> None:
    rs, rd = rt_pair
    assert main(["dvh", "--rtstruct", str(rs), "--rtdose", str(rd), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # one JSON object
    assert set(out) == {"Box", "Cord"}  # the point ROI is skipped
    for vals in out.values():
        assert set(vals) == KEYS
    box = out["Box"]
    # 10×10 mm on planes 0…9 with ½-slice end caps → 1 cm³, dose 9.5…19.5 Gy (10 + z).
    assert box["volume_cm3"] == pytest.approx(1.0, rel=3e-3)
    assert box["dmin_gy"] == pytest.approx(9.5, abs=1e-3)
    assert box["dmax_gy"] == pytest.approx(19.5, abs=1e-3)
    assert box["dmean_gy"] == pytest.approx(14.5, abs=0.01)
    assert box["d90_gy"] == pytest.approx(10.5, abs=0.05)  # 90 % above z = 0.5 mm
    assert out["Cord"]["volume_cm3"] == pytest.approx(np.pi * 2.5**2 * 5 / 1000, rel=0.01)


def test_dvh_table(rt_pair, capsys) -> None:
    rs, rd = rt_pair
    assert main(["dvh", "--rtstruct", str(rs), "--rtdose", str(rd)]) == 0
    text = capsys.readouterr().out
    assert "Volume cm³" in text and "D0.03cm³ Gy" in text
    assert "Box" in text and "Marker" not in text


def test_dvh_bad_input_exit_2(rt_pair, tmp_path: Path, capsys) -> None:
    rs, rd = rt_pair
    relative = write_rtdose(tmp_path / "rel.dcm", np.ones((2, 2, 2), np.uint32), units="RELATIVE")
    junk = tmp_path / "junk.dcm"
    junk.write_text("nope")
    cases = [
        ["dvh", "plan.seedplan"],
        ["dvh", "--rtstruct", str(rs)],
        ["dvh", "--rtstruct", str(junk), "--rtdose", str(rd)],
        ["dvh", "--rtstruct", str(rs), "--rtdose", str(relative)],
        ["dvh", "--rtstruct", str(rd), "--rtdose", str(rd)],
        ["dvh", "--rtstruct", str(tmp_path / "missing.dcm"), "--rtdose", str(rd)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("seedplan dvh:") and "\n" not in err, err
        assert "Traceback" not in err


def test_dvh_nelms_real_pair(capsys) -> None:
    # Nelms 2015 analytic values (analytical-d-points.csv, Sphere_10_0, 1 mm, SI gradient):
    # V 7.23828 cm³, Dmean 16.00 Gy, D5 24.75 Gy, D0.03cc 27.095 Gy.
    rs = shared_data("dvh-nelms", "structures", "Sphere_10_0.dcm")
    rd = shared_data("dvh-nelms", "dose", "Linear_SupInf_1mm_Aligned.dcm")
    assert main(["dvh", "--rtstruct", str(rs), "--rtdose", str(rd), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out["Sphere_10_0"]
    assert s["volume_cm3"] == pytest.approx(7.23828, rel=0.03)
    assert s["dmean_gy"] == pytest.approx(16.0, rel=0.03)
    assert s["d5_gy"] == pytest.approx(24.75, rel=0.03)
    assert s["d0_03cc_gy"] == pytest.approx(27.095, rel=0.03)
