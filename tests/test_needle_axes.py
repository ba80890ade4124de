"""Seed axes from needles: line fit, explicit axes and directions, errors (dose/needles.py and the
``needle`` column / needles CSV of planner/csv_io.py). CLI tests are in test_dose_cli.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from dose.needles import (
    MAX_OFF_LINE_MM,
    check_seeds_on_tracks,
    distance_to_track_mm,
    fit_needle_direction,
    needle_axes,
    orient,
)
from planner.files.csv_io import read_needles_csv, read_seeds_csv

# An oblique needle (≈ 37° from +z), not aligned with any axis or diagonal.
TRUE_DIR = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between lines (sign-free: a seed axis and its opposite give the same TG-43 dose)."""
    cos = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b))
    return np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))


def _needle_seeds(n: int, start, direction, step_mm: float = 5.0) -> np.ndarray:
    return np.asarray(start, float) + np.arange(n)[:, None] * step_mm * np.asarray(direction)


def _no_axes(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 3)), np.zeros(n, bool)


def test_fit_recovers_an_oblique_needle_with_noise() -> None:
    rng = np.random.default_rng(3)
    pos = _needle_seeds(8, [12.0, -40.0, 7.0], TRUE_DIR)
    noisy = pos + rng.normal(0.0, 0.1, pos.shape)  # 0.1 mm localisation noise (brief)
    axes = needle_axes(noisy, ["N1"] * 8, *_no_axes(8))
    assert np.all(_angle_deg(axes, TRUE_DIR) < 1.0)
    np.testing.assert_allclose(np.linalg.norm(axes, axis=1), 1.0, rtol=1e-12)
    # every seed of the needle gets the same axis, oriented with its largest component positive
    assert np.all(axes == axes[0]) and axes[0, 2] > 0
    # noise-free seeds: the fit is the line itself
    exact = needle_axes(pos, ["N1"] * 8, *_no_axes(8))
    np.testing.assert_allclose(np.abs(exact @ TRUE_DIR), 1.0, atol=1e-12)


def test_orientation_is_reproducible() -> None:
    pos = _needle_seeds(5, [0.0, 0.0, 0.0], -TRUE_DIR)  # seeds listed tip first
    a = needle_axes(pos, ["x"] * 5, *_no_axes(5))
    np.testing.assert_array_equal(a, needle_axes(pos, ["x"] * 5, *_no_axes(5)))
    # the same needle listed in the other order: the same sign (to rounding)
    np.testing.assert_allclose(a, needle_axes(pos[::-1], ["x"] * 5, *_no_axes(5)), atol=1e-12)
    np.testing.assert_allclose(a[0], TRUE_DIR, atol=1e-12)  # TRUE_DIR has z (largest) > 0
    np.testing.assert_array_equal(orient([0.0, -2.0, 1.0]), [0.0, 1.0, -0.5] / np.sqrt(1.25))


def test_explicit_axis_and_no_needle() -> None:
    pos = np.vstack([_needle_seeds(3, [0, 0, 0], TRUE_DIR), [[50.0, 0.0, 0.0]]])
    given = np.zeros((4, 3))
    given[1] = [2.0, 0.0, 0.0]
    has = np.array([False, True, False, False])
    axes = needle_axes(pos, ["A", "A", "A", None], given, has)
    np.testing.assert_array_equal(axes[1], [1.0, 0.0, 0.0])  # explicit axis wins (normalised)
    assert np.all(_angle_deg(axes[[0, 2]], TRUE_DIR) < 1e-6)  # the fit still uses all 3 seeds
    np.testing.assert_array_equal(axes[3], [0.0, 0.0, 1.0])  # no axis, no needle: +z


def test_given_needle_direction_wins_over_the_fit() -> None:
    pos = _needle_seeds(4, [0, 0, 0], TRUE_DIR)
    axes = needle_axes(pos, ["A"] * 4, *_no_axes(4), needle_directions={"A": (0.0, -3.0, 0.0)})
    np.testing.assert_array_equal(axes, np.tile([0.0, -1.0, 0.0], (4, 1)))  # its sign is kept
    with pytest.raises(InputError, match="needle 'A': direction is zero"):
        needle_axes(pos, ["A"] * 4, *_no_axes(4), needle_directions={"A": (0.0, 0.0, 0.0)})


def test_single_seed_needle_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "s.csv", "x_mm,y_mm,z_mm,needle\n0,0,0,A\n0,0,5,A\n# c\n9,9,9,B\n")
    with pytest.raises(InputError, match=r"s\.csv: line 5: needle 'B' has a single seed"):
        read_seeds_csv(p)
    with pytest.raises(InputError, match=r"^seed 1: needle 7 has a single seed"):
        needle_axes([[0.0, 0.0, 0.0]], [7], *_no_axes(1))
    # fine with its own axis, or with a given direction
    given = _write(
        tmp_path / "g.csv",
        "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,needle\n0,0,0,,,,A\n0,0,5,,,,A\n9,9,9,1,0,0,B\n",
    )
    rows = read_seeds_csv(given)
    np.testing.assert_allclose(rows.axes, [[0, 0, 1], [0, 0, 1], [1, 0, 0]], atol=1e-12)
    rows = read_seeds_csv(p, {"A": (0.0, 1.0, 0.0), "B": (1.0, 0.0, 0.0)})
    np.testing.assert_array_equal(rows.axes, [[0, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_needle_seeds_not_on_a_line_is_an_error(tmp_path: Path) -> None:
    pos = _needle_seeds(5, [0, 0, 0], TRUE_DIR)
    side = np.cross(TRUE_DIR, [1.0, 0.0, 0.0])
    side /= np.linalg.norm(side)
    bent = pos.copy()
    bent[2] += 3.0 * side  # middle seed 3 mm sideways: its distance to the fit is > 2 mm
    _, off, _ = fit_needle_direction(bent)
    assert off.max() > MAX_OFF_LINE_MM
    with pytest.raises(InputError, match=r"line 12: seed is \d\.\d mm from the line fitted to"):
        needle_axes(bent, ["A"] * 5, *_no_axes(5), line_numbers=[10, 11, 12, 13, 14])
    slight = pos.copy()
    slight[2] += 1.0 * side  # 1 mm needle deflection is tolerated
    assert np.all(_angle_deg(needle_axes(slight, ["A"] * 5, *_no_axes(5)), TRUE_DIR) < 5.0)
    # two needles mixed up under one id: seeds on parallel lines 10 mm apart
    mixed = np.vstack([pos[:3], pos[:3] + 10.0 * side])
    text = "x_mm,y_mm,z_mm,needle\n" + "".join(f"{x},{y},{z},N\n" for x, y, z in mixed)
    with pytest.raises(InputError, match=r"m\.csv: line \d: seed is .* needle 'N'"):
        read_seeds_csv(_write(tmp_path / "m.csv", text))
    dup = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.2]])
    with pytest.raises(InputError, match=r"needle 'D' span only 0\.2 mm"):
        needle_axes(dup, ["D"] * 3, *_no_axes(3))


def test_seeds_csv_needle_column_and_empty_dirs(tmp_path: Path) -> None:
    pos = _needle_seeds(3, [1.0, 2.0, 3.0], TRUE_DIR)
    body = "".join(f"{x:.6f},{y:.6f},{z:.6f},,,,7\n" for x, y, z in pos)
    p = _write(
        tmp_path / "s.csv",
        "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,Needle,strength_U\n"
        + body
        + "0,0,40,1,1,0,8,0.5\n"  # explicit axis on needle 8
        + "0,0,60,,,,,\n"  # no axis, no needle
        + "0,0,80,,,,  ,\n",  # a blank needle id is no needle
    )
    rows = read_seeds_csv(p)
    assert rows.needle_ids == ("7", "7", "7", "8", None, None)
    np.testing.assert_array_equal(rows.has_axis, [False, False, False, True, False, False])
    assert rows.axis_source_counts() == (3, 1, 2)
    assert np.all(_angle_deg(rows.axes[:3], TRUE_DIR) < 1e-3)  # positions rounded to 1e-6 mm
    np.testing.assert_allclose(rows.axes[3], [2**-0.5, 2**-0.5, 0.0], rtol=1e-12)
    np.testing.assert_array_equal(rows.axes[4:], [[0, 0, 1], [0, 0, 1]])
    # on needle 7, the explicit-axis seed still counts in the fit: it is off the line → error
    p7 = _write(tmp_path / "s7.csv", p.read_text().replace("0,0,40,1,1,0,8", "0,0,40,1,1,0,7"))
    with pytest.raises(InputError, match=r"line \d: seed is .* the 4 seeds of needle '7'"):
        read_seeds_csv(p7)
    with pytest.raises(InputError, match="line 2: give all of dir_x, dir_y, dir_z or none"):
        read_seeds_csv(_write(tmp_path / "h.csv", "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n0,0,0,1,,\n"))
    # a row that stops before the dir columns keeps the old error
    with pytest.raises(InputError, match="line 2: missing value for dir_x"):
        read_seeds_csv(_write(tmp_path / "t.csv", "x_mm,y_mm,z_mm,dir_x,dir_y,dir_z\n0,0,0\n"))


def test_needles_csv(tmp_path: Path) -> None:
    n = _write(
        tmp_path / "n.csv",
        "# planned needles\nneedle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm\n"
        "A,0,0,100,0,30,60\nB,5,5,5,5,5,-5\n",
    )
    needles = read_needles_csv(n)
    assert needles.ids == ("A", "B") and needles.line_numbers == (3, 4)
    d = needles.directions()
    np.testing.assert_allclose(d["A"], [0.0, 0.6, -0.8], rtol=1e-12)  # (0, 30, −40) / 50
    np.testing.assert_array_equal(d["B"], [0.0, 0.0, -1.0])
    # the needles file wins over the fit to the seeds
    s = _write(tmp_path / "s.csv", "x_mm,y_mm,z_mm,needle\n0,0,0,A\n10,0,0,A\n20,0,0,A\n")
    assert np.all(read_seeds_csv(s).axes == [1.0, 0.0, 0.0])
    np.testing.assert_allclose(read_seeds_csv(s, d).axes, np.tile(d["A"], (3, 1)), rtol=1e-12)
    with pytest.raises(InputError, match=r"u\.csv: line 3: needle 'C' is not in the needles"):
        read_seeds_csv(_write(tmp_path / "u.csv", "x_mm,y_mm,z_mm,needle\n0,0,0,A\n1,0,0,C\n"), d)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm\n", "missing column"),
        (",entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm\n", "missing column"),
        ("needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm\n", "no needles"),
        ("{h}\nA,1,2,3,1,2,3\n", "line 2: needle 'A' has zero length"),
        (
            "{h}\nA,1,2,3,1,2,4\nA,0,0,0,0,0,1\n",
            "line 3: needle 'A' appears twice (first on line 2)",
        ),
        ("{h}\n,1,2,3,1,2,4\n", "line 2: empty needle id"),
        ("{h}\nA,1,2,3,1,x,4\n", "line 2: tip_y_mm is not a number"),
        ("{h}\nA,1,2,3,1,2\n", "line 2: missing value for tip_z_mm"),
    ],
)
def test_bad_needles_csv(tmp_path: Path, text: str, message: str) -> None:
    header = "needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm"
    p = _write(tmp_path / "n.csv", text.replace("{h}", header))
    with pytest.raises(InputError) as info:
        read_needles_csv(p)
    assert message in str(info.value) and str(info.value).startswith(str(p))


def test_distance_to_track_and_the_track_check() -> None:
    # track from (0,0,0) to (0,0,10): beside it, on it, beyond the tip, before the entry
    entry, tip = np.zeros(3), np.array([0.0, 0.0, 10.0])
    pts = [[3.0, 4.0, 5.0], [0.0, 0.0, 7.0], [0.0, 0.0, 13.0], [0.0, 3.0, -4.0]]
    np.testing.assert_allclose(distance_to_track_mm(pts, entry, tip), [5.0, 0.0, 3.0, 5.0])
    tracks = {"A": (entry, tip)}
    near = [[1.5, 0.0, 2.0], [0.0, 1.9, 8.0], [0.0, 0.0, 11.5]]
    check_seeds_on_tracks(near, ["A", "A", "A"], tracks)  # all within 2 mm: no error
    check_seeds_on_tracks([[9.0, 9.0, 9.0]], [None], tracks)  # no needle: not checked
    with pytest.raises(InputError, match=r"line 7: seed is 2\.5 mm from the track of needle 'A'"):
        check_seeds_on_tracks([[0.0, 0.0, 12.5]], ["A"], tracks, line_numbers=[7])
