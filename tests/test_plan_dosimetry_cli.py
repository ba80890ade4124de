"""``seedplan dose PLAN``, ``seedplan dvh PLAN [--json]`` and the needles/seeds of
``seedplan info PLAN --json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from app.cli import main
from dose.engine import make_engine
from planner.plan.dosimetry import dose_grid_geometry, plan_seed_set
from planner.plan.plan_file import save_plan
from tests.plan_builders import full_plan


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    plan = full_plan()
    path = save_plan(plan, tmp_path_factory.mktemp("plan") / "p.seedplan")
    return path, plan


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_dose_points_from_a_plan(plan_file, tmp_path, capsys):
    path, plan = plan_file
    pts = np.array([[0.0, 0.0, -18.0], [5.0, -10.0, -25.0], [-8.0, 4.0, -20.0]])
    csv = tmp_path / "pts.csv"
    csv.write_text("x_mm,y_mm,z_mm\n" + "\n".join(",".join(map(str, p)) for p in pts) + "\n")
    out = tmp_path / "dose.csv"
    assert main(["dose", str(path), "--points", str(csv), "--out", str(out)]) == 0
    lines = [ln for ln in out.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "x_mm,y_mm,z_mm,dose_rate_cGy_h,dose_Gy"
    values = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    seeds, _ = plan_seed_set(plan)
    ref = make_engine("6711", "2d", "reference").dose_rate_at_points(seeds, pts)
    np.testing.assert_allclose(values[:, 4], ref.dose_gy, rtol=1e-3)
    text = out.read_text()
    assert "decay from calibration 2026-11-20 to implant 2026-12-01" in text
    assert "seed axes: 2 from the plan" in text


def test_dose_grid_from_a_plan_is_the_plans_grid(plan_file, tmp_path):
    path, plan = plan_file
    out = tmp_path / "grid.nrrd"
    assert main(["dose", str(path), "--grid-out", str(out)]) == 0
    img = sitk.ReadImage(str(out))
    seeds, _ = plan_seed_set(plan)
    g = dose_grid_geometry(plan, seeds.positions_mm)
    assert tuple(reversed(img.GetSize())) == g.shape_zyx
    np.testing.assert_allclose(img.GetOrigin(), g.origin_mm, atol=1e-6)
    arr = sitk.GetArrayFromImage(img)
    p = g.zyx_to_world(np.array([[3.0, 4.0, 5.0]]))
    ref = make_engine("6711", "2d", "reference").dose_rate_at_points(seeds, p).dose_gy[0]
    assert arr[3, 4, 5] == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize(
    "extra", [["--seeds", "x.csv"], ["--model", "6711"], ["--strength-U", "0.5"]]
)
def test_dose_refuses_source_options_with_a_plan(plan_file, tmp_path, capsys, extra):
    path, _ = plan_file
    out = tmp_path / "d.nrrd"
    assert main(["dose", str(path), "--grid-out", str(out), *extra]) == 2
    err = _one_line_error(capsys)
    assert extra[0] in err and "cannot be used with a plan file" in err
    assert not out.exists()


def test_dvh_json_of_a_plan(plan_file, capsys):
    path, plan = plan_file
    assert main(["dvh", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for s in plan.structures:
        assert d[s.name]["volume_cm3"] == pytest.approx(s.volume_cm3, rel=1e-9)
        assert set(d[s.name]) == {
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
    m = d["metrics"]
    assert m["prescription_gy"] == 110.0 and m["formalism"] == "2d"
    assert m["targets"]["PTV"]["d90_gy"] == pytest.approx(d["PTV"]["d90_gy"], rel=1e-9)
    cord = m["oars"]["SpinalCord"]
    assert {
        "dmax_voxel_gy",
        "d0_1cc_gy",
        "d1cc_gy",
        "min_seed_distance_mm",
        "bed_d0_1cc_gy",
    } <= set(cord)
    goals = {g["id"]: g for g in m["goals"]}
    assert goals["gl-2"]["value"] == pytest.approx(cord["d0_1cc_gy"])
    v = goals["gl-1"]["value"]
    expected = "pass" if v >= 110.0 else ("warn" if v >= 0.95 * 110.0 else "fail")
    assert goals["gl-1"]["status"] == expected


def test_dvh_text_of_a_plan(plan_file, capsys):
    path, _ = plan_file
    assert main(["dvh", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Goals:" in out and "PTV D90 ≥ 110 Gy" in out and "Gy" in out


def test_info_lists_needles_with_geometry_and_seeds(plan_file, capsys):
    path, _ = plan_file
    assert main(["info", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    (n,) = d["needles"]
    assert n["id"] == "nd-1" and n["entry_mm"] == [1.0, -30.0, -20.0]
    assert n["length_mm"] == pytest.approx(np.linalg.norm([1.0, 35.0, -1.0]), abs=1e-3)
    assert isinstance(n["warnings"], list) and n["n_seeds"] == 2
    assert "CT was not found" in d["needle_checks"]
    seeds = {s["id"]: s for s in d["seeds"]}
    assert seeds["sd-1"]["needle"] == "nd-1" and seeds["sd-1"]["strength_U"] == 0.5
    assert seeds["sd-2"]["strength_U"] == 0.55
    assert d["loading"]["total_seeds"] == 2
    assert d["loading"]["total_strength_U"] == pytest.approx(1.05)
