"""planner.open_case: the one Qt-free way to open a case (GUI, CLI and scripts share it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the library's own convention)

from dose.errors import InputError
from dose.progress import Cancelled
from planner.demo.case import DEMO_CT_SUBDIR, load_demo_masks, write_demo_case
from planner.demo.phantom import PhantomSpec
from planner.open_case import OpenedCase, SeriesChoice, open_case, open_case_or_choose
from planner.session.session import Session
from tests.dicom_builders import write_ct_series, write_junk

UID_A, UID_B = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"


@pytest.fixture
def two_series(tmp_path: Path) -> Path:
    folder = tmp_path / "two-series"
    write_ct_series(folder, n_slices=7, prefix="A", series_uid=UID_A)
    write_ct_series(folder, n_slices=4, prefix="B", series_uid=UID_B)
    return folder


def test_several_series_open_the_largest_and_say_so(two_series: Path) -> None:
    case = open_case(two_series)
    assert isinstance(case, OpenedCase)
    assert case.volume.shape_zyx[0] == 7 and case.series_uid == UID_A
    assert any("2 series" in line and UID_A in line for line in case.report_lines)
    assert case.masks == {} and case.demo_case_dir is None


def test_or_choose_returns_the_choice_then_loads_the_chosen_series(two_series: Path) -> None:
    choice = open_case_or_choose(two_series)
    assert isinstance(choice, SeriesChoice)
    assert sorted(s.key for s in choice.scan.series) == [UID_A, UID_B]
    case = open_case_or_choose(two_series, series_uid=UID_B)
    assert isinstance(case, OpenedCase)
    assert case.volume.shape_zyx[0] == 4 and case.volume.info.series_instance_uid == UID_B


def test_image_file_and_progress_contract(tmp_path: Path) -> None:
    hu = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-10.0, 20.0, 30.0))
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    calls: list[tuple[float, str]] = []
    case = open_case(path, progress=lambda f, m: calls.append((f, m)))
    assert np.array_equal(case.volume.hu, hu)
    assert np.allclose(case.volume.geometry.spacing_mm, (0.8, 0.9, 2.5))
    fractions = [f for f, _ in calls]
    assert fractions and all(0.0 <= f <= 1.0 for f in fractions) and fractions[-1] == 1.0
    assert all(isinstance(m, str) for _, m in calls)


def test_cancel_raises_cancelled(two_series: Path) -> None:
    with pytest.raises(Cancelled):
        open_case(two_series, cancel=lambda: True)


def test_bad_paths_are_one_line_input_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError, match="no such file") as info:
        open_case(missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    junk = tmp_path / "junk"
    for n in range(3):
        write_junk(junk / f"IM{n}.dcm")
    with pytest.raises(InputError, match="no CT series") as info:
        open_case(junk)
    assert str(junk) in str(info.value) and "3 file(s) skipped" in str(info.value)
    choice = open_case_or_choose(junk)
    assert isinstance(choice, SeriesChoice) and "no CT series" in choice.no_ct_message()


def test_demo_case_folder_or_its_ct_folder_opens_with_masks(tmp_path: Path) -> None:
    case_dir = write_demo_case(
        tmp_path / "demo", spec=replace(PhantomSpec(), n_slices=4, matrix=96)
    )
    for given in (case_dir, case_dir / DEMO_CT_SUBDIR):
        case = open_case(given)
        assert case.demo_case_dir == case_dir and case.source_path == given
        truth = load_demo_masks(case_dir, case.volume.geometry)
        assert sorted(case.masks) == sorted(truth)
        for name, mask in truth.items():
            assert np.array_equal(case.masks[name].voxels, mask.voxels)
    session = Session()
    session.set_case(case)
    assert session.volume is case.volume and set(session.masks) == set(truth)
