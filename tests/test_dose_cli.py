"""``seedplan dose`` (and the CSV readers behind it): results, labels, exit codes, messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from dose.engine import SeedSet, make_engine
from dose.errors import InputError
from dose.sources import load_model
from planner.files.csv_io import read_points_csv, read_seeds_csv


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Path]:
    seeds = _write(
        tmp_path / "S.csv",
        # "label" is an extra column (ignored); "needle" would set the seed axes (test_needle_axes)
        "# two seeds\nx_mm,y_mm,z_mm,label\n0,0,0,A\n10,0,0,B\n",
    )
    points = _write(tmp_path / "P.csv", "x_mm,y_mm,z_mm\n0,10,0\n5,5,5\n0,0,1\n-20,3,4\n")
    return {"seeds": seeds, "points": points, "out": tmp_path / "D.csv", "dir": tmp_path}


def _read_dose(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body[0] == "x_mm,y_mm,z_mm,dose_rate_cGy_h,dose_Gy"
    return comments, np.array([[float(v) for v in ln.split(",")] for ln in body[1:]])


def test_points_dose_matches_engine_and_is_labelled(case, capsys) -> None:
    rc = main(
        [
            "dose",
            "--seeds",
            str(case["seeds"]),
            "--model",
            "6711",
            "--strength-U",
            "0.8",
            "--points",
            str(case["points"]),
            "--out",
            str(case["out"]),
        ]
    )
    assert rc == 0
    comments, table = _read_dose(case["out"])
    seeds = SeedSet.create([[0, 0, 0], [10, 0, 0]], None, 0.8)
    expected = make_engine("6711").dose_rate_at_points(seeds, table[:, :3])
    np.testing.assert_allclose(table[:, 3], expected.dose_rate_cgy_h, rtol=1e-5)
    np.testing.assert_allclose(table[:, 4], expected.dose_gy, rtol=1e-5)
    checksum = load_model("6711").checksum
    text = "\n".join(comments)
    assert "2D formalism" in text and checksum in text and "capsule" in text
    err = capsys.readouterr().err
    assert "2D line source" in err and checksum[:12] in err and "1 inside a capsule" in err


def test_activity_and_per_seed_strength_and_1d(case) -> None:
    out2 = case["dir"] / "D2.csv"
    assert (
        main(
            [
                "dose",
                "--seeds",
                str(case["seeds"]),
                "--model",
                "6711",
                "--activity-mCi",
                "0.5",
                "--points",
                str(case["points"]),
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "dose",
                "--seeds",
                str(case["seeds"]),
                "--model",
                "6711",
                "--strength-U",
                "0.635",
                "--points",
                str(case["points"]),
                "--out",
                str(case["out"]),
            ]
        )
        == 0
    )
    # 0.5 mCi × 1.270 U/mCi = 0.635 U (tg43.md §3.5)
    np.testing.assert_allclose(_read_dose(out2)[1], _read_dose(case["out"])[1], rtol=1e-5)
    per_seed = _write(case["dir"] / "S2.csv", "x_mm,y_mm,z_mm,strength_U\n0,0,0,0.635\n10,0,0,\n")
    out3 = case["dir"] / "D3.csv"
    assert (
        main(
            [
                "dose",
                "--seeds",
                str(per_seed),
                "--model",
                "6711",
                "--strength-U",
                "0.635",
                "--points",
                str(case["points"]),
                "--out",
                str(out3),
            ]
        )
        == 0
    )
    np.testing.assert_allclose(_read_dose(out3)[1], _read_dose(out2)[1], rtol=1e-5)
    out4 = case["dir"] / "D4.csv"
    assert (
        main(
            [
                "dose",
                "--seeds",
                str(case["seeds"]),
                "--model",
                "6711",
                "--strength-U",
                "0.635",
                "--points",
                str(case["points"]),
                "--out",
                str(out4),
                "--formalism",
                "1d",
            ]
        )
        == 0
    )
    comments, t1d = _read_dose(out4)
    assert any("1D formalism" in c for c in comments)
    assert not np.allclose(t1d[:, 3], _read_dose(out2)[1][:, 3], rtol=1e-3)


def test_decay_dates_scale_the_dose(case) -> None:
    out2 = case["dir"] / "D2.csv"
    args = [
        "dose",
        "--seeds",
        str(case["seeds"]),
        "--model",
        "6711",
        "--strength-U",
        "0.8",
        "--points",
        str(case["points"]),
    ]
    assert main([*args, "--out", str(case["out"])]) == 0
    # one half-life (59.4 d) between calibration and implant halves the dose
    assert (
        main(
            [
                *args,
                "--out",
                str(out2),
                "--calibration-date",
                "2026-01-01",
                "--implant-date",
                "2026-03-01",
            ]
        )
        == 0
    )
    ratio = _read_dose(out2)[1][:, 3] / _read_dose(case["out"])[1][:, 3]
    np.testing.assert_allclose(ratio, 0.5 ** (59.0 / 59.4), rtol=1e-4)


def test_grid_out_nrrd(case) -> None:
    import SimpleITK as sitk  # noqa: N813

    grid = case["dir"] / "dose.nrrd"
    assert (
        main(
            [
                "dose",
                "--seeds",
                str(case["seeds"]),
                "--model",
                "2301",
                "--strength-U",
                "0.5",
                "--grid-out",
                str(grid),
                "--spacing-mm",
                "2",
                "--margin-mm",
                "10",
            ]
        )
        == 0
    )
    img = sitk.ReadImage(str(grid))
    assert img.GetSpacing() == (2.0, 2.0, 2.0)
    assert img.GetOrigin() == (-10.0, -10.0, -10.0)  # bounding box (0..10, 0, 0) minus margin
    assert img.GetSize() == (16, 11, 11)
    arr = sitk.GetArrayFromImage(img)  # (z, y, x), Gy
    seeds = SeedSet.create([[0, 0, 0], [10, 0, 0]], None, 0.5)
    p = np.array([[6.0, 4.0, -2.0]])  # voxel (i, j, k) = (8, 7, 4)
    expected = make_engine("2301").dose_rate_at_points(seeds, p).dose_gy[0]
    assert float(arr[4, 7, 8]) == pytest.approx(expected, rel=1e-5)
    assert img.GetMetaData("seedplan_formalism") == "2d"
    assert img.GetMetaData("seedplan_seed_axes") == "0 from needles, 0 explicit, 2 default +z"


@pytest.mark.parametrize(
    ("extra", "seeds_text", "message"),
    [
        (["--model", "9999", "--strength-U", "0.8"], None, "known models: 2301"),
        (["--model", "6711", "--strength-U", "12"], None, "outside the plausible range"),
        (["--model", "6711", "--strength-U", "-1"], None, "outside the plausible range"),
        (["--model", "6711", "--strength-U", "0.8"], "x_mm,y_mm,z_mm\n1,2,abc\n", "line 2: z_mm"),
        (["--model", "6711", "--strength-U", "0.8"], "x_mm,y_mm\n1,2\n", "missing column"),
        (["--model", "6711", "--strength-U", "0.8"], "# only\nx_mm,y_mm,z_mm\n", "no seeds"),
        (["--model", "6711", "--strength-U", "0.8"], "", "empty file"),
        (["--model", "6711"], "x_mm,y_mm,z_mm\n1,2,3\n", "no strength_U"),
        (["--model", "IAI-125A", "--strength-U", "0.8", "--formalism", "1d"], None, "φ_an"),
        (
            ["--model", "6711", "--strength-U", "0.8"],
            "x_mm,y_mm,z_mm,strength_U\n1,2,3,50\n",
            "outside the plausible range",
        ),
    ],
)
def test_bad_input_one_line_exit_2(case, capsys, extra, seeds_text, message) -> None:
    seeds = case["seeds"] if seeds_text is None else _write(case["dir"] / "bad.csv", seeds_text)
    rc = main(
        [
            "dose",
            "--seeds",
            str(seeds),
            *extra,
            "--points",
            str(case["points"]),
            "--out",
            str(case["out"]),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not case["out"].exists()


def test_usage_errors_exit_2(case, capsys) -> None:
    base = ["dose", "--seeds", str(case["seeds"]), "--model", "6711", "--strength-U", "0.8"]
    assert main([*base, "--points", str(case["points"])]) == 2  # no --out
    assert main(base) == 2  # neither points nor grid
    assert main([*base, "--grid-out", str(case["dir"] / "x.png")]) == 2
    empty_pts = _write(case["dir"] / "E.csv", "x_mm,y_mm,z_mm\n")
    assert main([*base, "--points", str(empty_pts), "--out", str(case["out"])]) == 2
    assert "no points" in capsys.readouterr().err


def test_csv_readers(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "s.csv",
        "# comment\n X_MM , y_mm,z_mm,dir_x,dir_y,dir_z,extra\n\n1,2,3,0,0,2,foo\n# mid\n"
        "4,5,6,1,0,0,bar\n",
    )
    rows = read_seeds_csv(p)
    np.testing.assert_array_equal(rows.positions_mm, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(rows.axes, [[0, 0, 1], [1, 0, 0]])
    assert rows.line_numbers == (4, 6) and not rows.has_strengths
    with pytest.raises(InputError, match="dir_x, dir_y, dir_z"):
        read_seeds_csv(_write(tmp_path / "d.csv", "x_mm,y_mm,z_mm,dir_x\n1,2,3,1\n"))
    with pytest.raises(InputError, match=r"z\.csv: line 3: seed direction"):
        read_seeds_csv(
            _write(
                tmp_path / "z.csv", "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n1,2,3,0,0,1\n1,2,3,0,0,0\n"
            )
        )
    with pytest.raises(InputError, match="line 2: y_mm is not finite"):
        read_points_csv(_write(tmp_path / "n.csv", "x_mm,y_mm,z_mm\n1,inf,3\n"))


# --------------------------------------------------------------------------- needles (issue 3)
_NEEDLE_DIR = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])  # oblique needle


def _needle_case(tmp_path: Path) -> dict[str, Path]:
    """4 seeds 5 mm apart on one oblique needle; points around it (none inside a capsule)."""
    pos = np.arange(4)[:, None] * 5.0 * _NEEDLE_DIR
    rows = [f"{x:.9f},{y:.9f},{z:.9f}" for x, y, z in pos]
    # seeds listed with negative explicit dirs: the sign of an axis does not change TG-43 dose
    dx, dy, dz = -_NEEDLE_DIR
    return {
        "needle": _write(
            tmp_path / "SN.csv", "x_mm,y_mm,z_mm,needle\n" + "".join(f"{r},N1\n" for r in rows)
        ),
        "explicit": _write(
            tmp_path / "SE.csv",
            "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n"
            + "".join(f"{r},{dx:.12f},{dy:.12f},{dz:.12f}\n" for r in rows),
        ),
        "default": _write(tmp_path / "SD.csv", "x_mm,y_mm,z_mm\n" + "\n".join(rows) + "\n"),
        "points": _write(
            tmp_path / "P.csv",
            "x_mm,y_mm,z_mm\n10,0,0\n0,10,5\n-5,-5,20\n3,-30,30\n-8,4,-6\n12,-10,12\n",
        ),
    }


def _dose_table(seeds: Path, points: Path, out: Path, *extra: str) -> np.ndarray:
    args = ["dose", "--seeds", str(seeds), "--model", "6711", "--strength-U", "0.8"]
    assert main([*args, *extra, "--points", str(points), "--out", str(out)]) == 0
    return _read_dose(out)[1]


def test_needle_column_dose_equals_explicit_needle_axes(tmp_path: Path, capsys) -> None:
    c = _needle_case(tmp_path)
    from_needle = _dose_table(c["needle"], c["points"], tmp_path / "DN.csv")
    err = capsys.readouterr().err
    assert "axes: 4 from needles, 0 explicit, 0 default +z" in err
    comments = _read_dose(tmp_path / "DN.csv")[0]
    assert any("seed axes: 4 from needles" in ln for ln in comments)
    explicit = _dose_table(c["explicit"], c["points"], tmp_path / "DE.csv")
    assert "axes: 0 from needles, 4 explicit, 0 default +z" in capsys.readouterr().err
    default = _dose_table(c["default"], c["points"], tmp_path / "DD.csv")
    np.testing.assert_allclose(from_needle[:, 3:], explicit[:, 3:], rtol=1e-5)
    # and the needle axis matters: +z axes (37° off) give a clearly different dose
    assert np.max(np.abs(default[:, 3] / from_needle[:, 3] - 1.0)) > 0.01


def test_needles_file_wins_over_the_fit(tmp_path: Path) -> None:
    # a track through the seeds' centroid, turned 14° from their line: every seed stays within
    # 7.5 mm · sin 14° = 1.8 mm of it (the 2 mm limit), yet its direction is not the fitted one
    c = _needle_case(tmp_path)
    perp = np.cross(_NEEDLE_DIR, [0.0, 0.0, 1.0])
    perp /= np.linalg.norm(perp)
    turned = np.cos(np.radians(14)) * _NEEDLE_DIR + np.sin(np.radians(14)) * perp
    centre = 7.5 * _NEEDLE_DIR
    entry, tip = centre - 20 * turned, centre + 20 * turned
    track = ",".join(f"{v:.12f}" for v in (*entry, *tip))
    needles = _write(
        tmp_path / "N.csv",
        "needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm\n"
        f"N1,{track}\nN2,0,0,0,0,1,0\n",  # N2 unused
    )
    with_file = _dose_table(
        c["needle"], c["points"], tmp_path / "DN.csv", "--needles", str(needles)
    )
    seed_rows = c["default"].read_text().splitlines()[1:]
    along = ",".join(f"{v:.12f}" for v in turned)
    explicit = _write(
        tmp_path / "SX.csv",
        "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n" + "".join(f"{r},{along}\n" for r in seed_rows),
    )
    explicit_turned = _dose_table(explicit, c["points"], tmp_path / "DX.csv")
    np.testing.assert_allclose(with_file[:, 3:], explicit_turned[:, 3:], rtol=1e-5)
    fitted = _dose_table(c["needle"], c["points"], tmp_path / "DF.csv")
    assert np.max(np.abs(fitted[:, 3] / with_file[:, 3] - 1.0)) > 0.01


def test_seed_off_its_needle_track_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a needle file whose track misses the seeds (wrong ids or positions): the needle's
    # direction would be a silently wrong seed axis, so it is an input error naming the line
    c = _needle_case(tmp_path)
    needles = _write(
        tmp_path / "N.csv",
        "needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm\nN1,0,0,0,1,0,0\n",
    )
    args = ["dose", "--seeds", str(c["needle"]), "--needles", str(needles), "--model", "6711"]
    out = tmp_path / "D.csv"
    code = main([*args, "--strength-U", "0.8", "--points", str(c["points"]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1
    assert "SN.csv" in err and "line 3: seed is" in err and "from the track of needle 'N1'" in err


@pytest.mark.parametrize(
    ("seeds_text", "needles_text", "message"),
    [
        ("x_mm,y_mm,z_mm,needle\n0,0,0,A\n", None, "line 2: needle 'A' has a single seed"),
        (
            "x_mm,y_mm,z_mm,needle\n0,0,0,A\n6,0,5,A\n0,0,10,A\n",
            None,
            "line 3: seed is 4.0 mm from the line fitted to the 3 seeds of needle 'A'",
        ),
        (None, "needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm\n", "missing column"),
        (None, "{h}\nA,1,2,3,1,2,3\n", "line 2: needle 'A' has zero length"),
        (None, "{h}\nA,1,2,3,1,2,x\n", "line 2: tip_z_mm is not a number"),
        (None, "{h}\n", "no needles"),
        (
            "x_mm,y_mm,z_mm,needle\n0,0,0,A\n0,0,5,B\n",
            "{h}\nA,0,0,0,0,0,1\n",
            "line 3: needle 'B' is not in the needles file",
        ),
    ],
)
def test_bad_needles_one_line_exit_2(case, capsys, seeds_text, needles_text, message) -> None:
    seeds = _write(
        case["dir"] / "S3.csv", seeds_text or "x_mm,y_mm,z_mm,needle\n0,0,0,A\n0,0,5,A\n"
    )
    extra: list[str] = []
    if needles_text is not None:
        header = "needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm"
        needles = _write(case["dir"] / "N.csv", needles_text.replace("{h}", header))
        extra = ["--needles", str(needles)]
    args = ["dose", "--seeds", str(seeds), "--model", "6711", "--strength-U", "0.8", *extra]
    rc = main([*args, "--points", str(case["points"]), "--out", str(case["out"])])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not case["out"].exists()
