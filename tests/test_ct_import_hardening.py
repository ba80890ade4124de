"""CT import hardening (issue 8): every class of bad header value, every special-file kind, and
a report whose reasons are true (skipped files named with their real reason, missing slices
named with position and file, shifted slices not called gantry tilt, interleaved series warned).

Each test here failed before the fix (a traceback, a hang, a silent default, or a misleading
reason); the builders in tests/dicom_builders.py write the synthetic series.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dose.errors import InputError
from planner.imaging.ct_loader import CTImportError, inspect_ct, load_ct
from planner.imaging.dicom_scan import scan_dicom
from planner.imaging.image_files import read_image, write_image
from tests import dicom_builders as db

TOL_HU = 1.0


def assert_geometry_true(volume) -> None:
    err = np.abs(volume.hu.astype(float) - db.linear_hu(volume.geometry.voxel_centres_world()))
    assert float(err.max()) <= TOL_HU


class BlockedError(BaseException):
    """Raised by :func:`deadline`; a BaseException, so no ``except Exception`` can swallow it."""


@contextlib.contextmanager
def deadline(seconds: float = 10.0) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the code under test blocks on a special file
    (a FIFO open) or reads one forever (/dev/zero); re-fires every second if swallowed."""

    def on_alarm(_sig: int, _frame: object) -> None:
        raise BlockedError(f"blocked or reading for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """Python warnings (numpy RuntimeWarning, pydicom UserWarning) would reach the user's
    terminal as extra lines: none may be emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


# ------------------------------------------------------------------ geometry header values


GEOMETRY_CASES = {
    # tag: [(raw DS text, words expected in the reason), ...]
    "PixelSpacing": [
        ("0\\0", "not two positive numbers"),
        ("-0.8\\0.7", "not two positive numbers"),
        ("0.8\\0", "not two positive numbers"),
        ("nan\\0.7", "not finite"),
        ("inf\\0.7", "not finite"),
        ("abc\\0.7", "not numbers"),
        ("0.8", "1 value(s) instead of 2"),
        ("1e300\\0.7", "implausible"),
    ],
    "ImagePositionPatient": [
        ("nan\\0\\0", "not finite"),
        ("1\\x\\3", "not numbers"),
        ("1\\2", "2 value(s) instead of 3"),
        ("1e308\\0\\0", "implausible"),
    ],
    "ImageOrientationPatient": [
        ("1\\0\\0\\1\\0\\0", "not orthogonal"),  # degenerate: row = column
        ("0\\0\\0\\0\\0\\0", "not unit vectors"),
        ("2\\0\\0\\0\\1\\0", "not unit vectors"),
        ("1\\0\\0\\0.6\\0.8\\0", "not orthogonal"),
        ("1\\0\\0\\0\\nan\\0", "not finite"),
        ("1\\0\\0\\0\\1", "5 value(s) instead of 6"),
    ],
}


@pytest.mark.parametrize(
    ("keyword", "raw", "words"),
    [(k, raw, words) for k, cases in GEOMETRY_CASES.items() for raw, words in cases],
)
@pytest.mark.parametrize("which", ["all", "one"])
def test_bad_geometry_value_refuses_naming_tag_value_and_file(
    tmp_path: Path, keyword: str, raw: str, words: str, which: str
) -> None:
    def damage(k: int, ds) -> None:
        if which == "all" or k == 2:
            db.set_raw(ds, keyword, raw)

    db.write_ct_series(tmp_path, per_slice=damage)
    with no_warnings(), pytest.raises(CTImportError) as err:
        load_ct(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path) in message  # the GUI and the CLI show this line: it names the folder
    problem = err.value.report.problems[0]
    assert problem.startswith(f"{keyword} '{raw}'") and words in problem
    assert "CT002.dcm" in problem and "cannot be placed in the patient" in problem
    assert err.value.report.geometry is None


def test_missing_geometry_tag_is_named(tmp_path: Path) -> None:
    def no_spacing(k: int, ds) -> None:
        if k == 4:
            del ds.PixelSpacing

    db.write_ct_series(tmp_path, per_slice=no_spacing)
    with pytest.raises(CTImportError, match=r"no PixelSpacing in 1 image\(s\) \(.*CT004\.dcm\)"):
        load_ct(tmp_path)


def test_bad_geometry_in_enhanced_ct_frame_is_named(tmp_path: Path) -> None:
    path = db.write_enhanced_ct(tmp_path / "ect.dcm", n_frames=4)
    ds = pydicom.dcmread(path)
    db.set_raw(
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0], "PixelSpacing", "0\\0"
    )
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(CTImportError, match=r"PixelSpacing '0\\0': not two positive numbers"):
        load_ct(tmp_path)


# ------------------------------------------------------------------ pixel-value header values


PIXEL_VALUE_CASES = [
    ("RescaleSlope", "0", "RescaleSlope '0': not a positive number"),
    ("RescaleSlope", "-1", "RescaleSlope '-1': not a positive number"),
    ("RescaleSlope", "nan", "RescaleSlope 'nan': not a positive number"),
    ("RescaleSlope", "abc", "RescaleSlope 'abc': not a positive number"),
    ("RescaleIntercept", "nan", "RescaleIntercept 'nan': not a finite number"),
    ("RescaleIntercept", "x1", "RescaleIntercept 'x1': not a finite number"),
    ("NumberOfFrames", "0", "NumberOfFrames '0': not a positive integer"),
    ("NumberOfFrames", "-2", "NumberOfFrames '-2': not a positive integer"),
    ("NumberOfFrames", "2.5", "NumberOfFrames '2.5': not a positive integer"),
]


@pytest.mark.parametrize(("keyword", "raw", "reason"), PIXEL_VALUE_CASES)
def test_bad_pixel_value_tag_refuses_the_slice_and_names_it_in_the_gap(
    tmp_path: Path, keyword: str, raw: str, reason: str
) -> None:
    """RescaleSlope 0 used to be replaced by 1 silently: now the slice is refused with the reason
    and its gap is interpolated only with a warning naming the position and the file."""

    def damage(k: int, ds) -> None:
        if k == 2:
            db.set_raw(ds, keyword, raw)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns when it writes the invalid IS value
        paths = db.write_ct_series(tmp_path, per_slice=damage)
    with no_warnings():
        volume, report = load_ct(tmp_path)
    skipped = {k.path.name: k.reason for k in report.skipped}
    assert reason in skipped[paths[2].name]
    assert paths[2] not in report.files_read
    gap = [w for w in report.warnings if w.startswith("missing slice")]
    assert len(gap) == 1
    # slice 2 of the builder's stack: z = −6 + 2 × 2.5 = −1 mm
    assert "at -1.00 mm along the slice normal" in gap[0]
    assert f"{paths[2].name} was skipped ({reason}" in gap[0]
    assert "interpolated" in gap[0]
    assert_geometry_true(volume)
    with pytest.raises(CTImportError) as err:
        load_ct(tmp_path, allow_resample=False)
    assert any(paths[2].name in w and reason in w for w in err.value.report.warnings)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"BitsAllocated": 12}, "BitsAllocated '12': not 1, 8, 16, 32 or 64"),
        ({"SamplesPerPixel": 0}, "SamplesPerPixel '0': not a positive integer"),
        ({"PixelRepresentation": 3}, "PixelRepresentation '3': not 0 or 1"),
        ({"Rows": 0}, "Rows '0', Columns '10'; an image needs both > 0"),
    ],
)
def test_bad_image_format_tag_refuses_the_slice(tmp_path: Path, change: dict, reason: str) -> None:
    def damage(k: int, ds) -> None:
        if k == 3:
            for key, value in change.items():
                setattr(ds, key, value)

    paths = db.write_ct_series(tmp_path, per_slice=damage)
    volume, report = load_ct(tmp_path)
    assert reason in {k.path.name: k.reason for k in report.skipped}[paths[3].name]
    assert any(w.startswith("missing slice") and paths[3].name in w for w in report.warnings)
    assert_geometry_true(volume)


def test_slope_zero_in_every_slice_is_never_loaded(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, per_slice=lambda k, ds: db.set_raw(ds, "RescaleSlope", "0"))
    with pytest.raises(InputError, match=r"no DICOM images to load: 6 file\(s\) skipped"):
        load_ct(tmp_path)


def test_missing_rescale_is_a_warning_not_silent(tmp_path: Path) -> None:
    def no_rescale(k: int, ds) -> None:
        if k == 1:
            del ds.RescaleSlope
            del ds.RescaleIntercept

    db.write_ct_series(tmp_path, per_slice=no_rescale, intercept=0.0, hu_fn=lambda p: 0 * p[..., 0])
    _volume, report = load_ct(tmp_path)
    assert any(
        "without RescaleSlope/RescaleIntercept" in w and "CT001.dcm" in w for w in report.warnings
    )


# ------------------------------------------------------------------ special files


def _make_special(folder: Path, kind: str) -> Path:
    """One non-regular entry of ``kind`` in ``folder``; returns its path."""
    p = folder / f"{kind}.dcm"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(p))
        sock.close()
    elif kind == "dev_zero":
        os.symlink("/dev/zero", p)
    elif kind == "char_device":
        os.symlink("/dev/null", p)
    elif kind == "block_device":
        if os.geteuid() == 0:
            os.mknod(p, stat.S_IFBLK | 0o600, os.makedev(7, 0))
        else:
            devices = [d for d in Path("/dev").iterdir() if d.is_block_device()]
            if not devices:
                pytest.skip("no block device to link to on this machine (and not root)")
            os.symlink(devices[0], p)
    elif kind == "symlink_to_fifo":
        os.mkfifo(folder / "real_fifo")
        os.symlink(folder / "real_fifo", p)
    elif kind == "dangling":
        os.symlink(folder / "gone.dcm", p)
    elif kind == "loop":
        os.symlink(p, p)
    elif kind == "loop_pair":
        os.symlink(folder / "other_link", p)
        os.symlink(p, folder / "other_link")
    elif kind == "folder_link":
        os.symlink(folder, p)  # a link back up: following it would loop
    return p


SPECIAL = {
    "fifo": "not a regular file: FIFO (named pipe)",
    "socket": "not a regular file: socket",
    "dev_zero": "not a regular file: symlink to a character device (/dev/zero)",
    "char_device": "not a regular file: symlink to a character device (/dev/null)",
    "block_device": "block device",
    "symlink_to_fifo": "not a regular file: symlink to a FIFO (named pipe)",
    "dangling": "dangling symlink (to ",
    "loop": "symlink loop",
    "loop_pair": "symlink loop",
    "folder_link": "symlink to a folder",
}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_special_entry_in_a_folder_is_skipped_and_named(tmp_path: Path, kind: str) -> None:
    """A FIFO or a link to /dev/zero used to hang `info` and `gui` forever."""
    folder = tmp_path / "ct"
    db.write_ct_series(folder, n_slices=4)
    special = _make_special(folder, kind)
    with deadline():
        volume, report = load_ct(folder)
        scan = scan_dicom(folder)
    assert volume.shape_zyx[0] == 4
    reasons = {k.path.name: k.reason for k in report.skipped}
    assert SPECIAL[kind] in reasons[special.name]
    assert special.name in {k.path.name for k in scan.skipped}


@pytest.mark.parametrize("kind", ["fifo", "socket", "dev_zero", "block_device", "dangling", "loop"])
def test_special_path_given_directly_is_one_line(tmp_path: Path, kind: str) -> None:
    special = _make_special(tmp_path, kind)
    with deadline(), pytest.raises(InputError) as err:
        load_ct(special)
    assert str(special) in str(err.value) and "\n" not in str(err.value)
    words = SPECIAL[kind].replace("not a regular file", "not a file or folder")
    assert words in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "dangling"])
@pytest.mark.parametrize("suffix", [".nii", ".mha", ".nrrd"])
def test_special_image_file_is_refused_without_blocking(
    tmp_path: Path, kind: str, suffix: str
) -> None:
    special = _make_special(tmp_path, kind).rename(tmp_path / f"image{suffix}")
    what = {"fifo": "FIFO", "dev_zero": "character device", "dangling": "dangling symlink"}[kind]
    with deadline(), pytest.raises(InputError) as err:
        read_image(special)
    assert str(special) in str(err.value) and what in str(err.value)
    with deadline(), pytest.raises(InputError) as err:
        load_ct(special)
    assert what in str(err.value) and "empty folder" not in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "dangling"])
@pytest.mark.parametrize(
    ("suffix", "key"), [(".mhd", "ElementDataFile = "), (".nhdr", "data file: ")]
)
def test_detached_header_whose_voxel_file_is_special_is_refused(
    tmp_path: Path, kind: str, suffix: str, key: str
) -> None:
    from dose.geometry import GridGeometry

    g = GridGeometry.axis_aligned((3, 4, 5), (0, 0, 0), (1, 1, 1))
    header = write_image(np.zeros(g.shape_zyx, np.int16), g, tmp_path / f"ct{suffix}")
    special = _make_special(tmp_path, kind)
    text = header.read_text(encoding="latin-1")
    lines = [
        key + special.name if ln.lower().startswith(key.split()[0].lower()) else ln
        for ln in text.splitlines()
    ]
    assert any(special.name in ln for ln in lines)
    header.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with deadline(), pytest.raises(InputError, match=f"voxel data file {special.name}"):
        read_image(header)


def _run_unprivileged(fn: Callable[[], list[str]]) -> list[str]:
    """Run ``fn`` where ``chmod 000`` protects: root reads anything, so as root a forked child
    drops to 'nobody' first (no exec: the interpreter may live in a folder 'nobody' cannot
    read). Returns the lines ``fn`` produced."""
    if os.geteuid() != 0:
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            out = "\n".join(fn())
            os.write(write_fd, out.encode())
            code = 0
        except BaseException as exc:
            os.write(write_fd, f"CHILD FAILED: {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text.splitlines()


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary folder the unprivileged child can reach (pytest's tmp_path is 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="seedplan-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            with contextlib.suppress(OSError):
                if not p.is_symlink():
                    p.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


def test_unreadable_file_and_folder_are_named_not_empty(world_tmp: Path) -> None:
    folder = world_tmp / "ct"
    paths = db.write_ct_series(folder, n_slices=5)
    sub = folder / "more"
    db.write_ct_series(sub, n_slices=2, prefix="X")
    for p in [world_tmp, *world_tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)

    def child() -> list[str]:
        v, r = load_ct(folder)
        return [
            str(v.shape_zyx[0]),
            *(f"SKIP {k.path.name} | {k.reason}" for k in r.skipped),
            *(f"WARN {w}" for w in r.warnings),
        ]

    load_ct(sub)  # warm every lazy import before dropping privileges
    sub.chmod(0o000)
    paths[2].chmod(0o000)
    lines = _run_unprivileged(child)
    assert lines[0] == "5"  # 4 slices read, the gap of the unreadable one interpolated
    assert f"SKIP {paths[2].name} | unreadable: permission denied" in lines
    assert "SKIP more | unreadable folder: permission denied" in lines
    assert any(ln.startswith("WARN missing slice") and paths[2].name in ln for ln in lines)


def test_unreadable_top_folder_is_not_called_empty(world_tmp: Path) -> None:
    folder = world_tmp / "ct"
    db.write_ct_series(folder, n_slices=3)
    load_ct(folder)  # warm every lazy import before dropping privileges
    folder.chmod(0o000)

    def child() -> list[str]:
        try:
            load_ct(folder)
        except InputError as exc:
            return [str(exc)]
        return ["loaded"]

    out = "\n".join(_run_unprivileged(child))
    assert out.strip() == f"{folder}: unreadable folder: permission denied"


# ------------------------------------------------------------------ true skip reasons


def test_shifted_slice_is_not_reported_as_gantry_tilt(tmp_path: Path) -> None:
    """A slice shifted 5 mm in-plane used to be reported as a small 'gantry tilt'."""
    positions = db.slice_positions((-4.0, -5.0, -6.0), (1, 0, 0, 0, 1, 0), 2.5, 20)
    positions[7] = (positions[7][0] + 5.0, positions[7][1], positions[7][2])
    paths = db.write_ct_series(tmp_path, positions=positions)
    volume, report = load_ct(tmp_path)
    text = " ".join(report.warnings)
    assert "gantry tilt" not in text
    assert f"{paths[7].name} by 5.00 mm" in text and "shifted in-plane" in text
    # placed where its own IPP says: the linear ramp is reproduced wherever there is data
    err = np.abs(volume.hu.astype(float) - db.linear_hu(volume.geometry.voxel_centres_world()))
    assert np.all((err <= TOL_HU) | (volume.hu == -1024))
    with pytest.raises(CTImportError, match=r"shifted in-plane.*CT007\.dcm by 5\.00 mm"):
        load_ct(tmp_path, allow_resample=False)


def test_tilt_with_one_shifted_slice_reports_both_truthfully(tmp_path: Path) -> None:
    import math

    t = math.radians(20.0)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    positions = [(-4.0, -5.0, -6.0 + 3.0 * k) for k in range(8)]
    positions[4] = (positions[4][0] + 4.0, positions[4][1], positions[4][2])  # along the rows
    paths = db.write_ct_series(tmp_path, iop=iop, positions=positions, gantry_tilt=20.0)
    _volume, report = load_ct(tmp_path)
    warning = next(w for w in report.warnings if w.startswith("resampled"))
    assert "gantry tilt 20.0°" in warning
    assert f"{paths[4].name} by 4.00 mm" in warning
    assert not any("GantryDetectorTilt" in w for w in report.warnings)  # tag and geometry agree


def test_spacing_mismatch_is_not_called_size_or_orientation(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.79"
    db.write_ct_series(tmp_path, n_slices=5, series_uid=uid)
    other = db.write_ct_series(
        tmp_path, n_slices=2, series_uid=uid, pixel_spacing=(0.9, 0.9), prefix="B", origin=(0, 0, 9)
    )
    _volume, report = load_ct(tmp_path, series_uid=uid)
    reason = {k.path.name: k.reason for k in report.skipped}[other[0].name]
    assert "size/orientation" not in reason
    assert "pixel spacing 0.9×0.9 mm instead of 0.7×0.8 mm" in reason
    assert f"--series {uid}#2" in reason


def test_orientation_mismatch_names_both_orientations(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.80"
    db.write_ct_series(tmp_path, n_slices=5, series_uid=uid)
    other = db.write_ct_series(
        tmp_path, n_slices=1, series_uid=uid, iop=(1, 0, 0, 0, 0, -1), prefix="COR"
    )
    _volume, report = load_ct(tmp_path, series_uid=uid)
    reason = {k.path.name: k.reason for k in report.skipped}[other[0].name]
    assert "orientation coronal" in reason and "instead of axial" in reason


def test_300_byte_file_is_truncated_not_missing_its_series_uid(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=5)
    paths[2].write_bytes(paths[2].read_bytes()[:300])
    _volume, report = load_ct(tmp_path)
    reason = {k.path.name: k.reason for k in report.skipped}[paths[2].name]
    assert reason.startswith("truncated") and "SeriesInstanceUID" not in reason
    gap = next(w for w in report.warnings if w.startswith("missing slice"))
    assert paths[2].name in gap and "before their position was known" in gap


@pytest.mark.parametrize("damage", ["truncated_pixels", "undecodable", "deleted", "junk"])
def test_every_missing_middle_slice_is_named_with_position_and_file(
    tmp_path: Path, damage: str
) -> None:
    """The generic 'slice gaps' warning used to be all: now each gap says where and why."""
    paths = db.write_ct_series(tmp_path, n_slices=7, slice_spacing_mm=3.0)
    target = paths[4]  # z = −6 + 4 × 3 = 6 mm
    if damage == "truncated_pixels":
        db.truncate(target, 0.97)
    elif damage == "undecodable":
        db.make_compressed_undecodable(target)
    elif damage == "deleted":
        target.unlink()
    elif damage == "junk":
        target.write_bytes(b"\x00" * 5000)
    volume, report = load_ct(tmp_path)
    gap = [w for w in report.warnings if w.startswith("missing slice")]
    assert len(gap) == 1
    assert "at 6.00 mm along the slice normal" in gap[0]
    assert "(-4.00, -5.00, 6.00) mm LPS" in gap[0]
    assert paths[3].name in gap[0] and paths[5].name in gap[0]  # its neighbours
    if damage == "deleted":
        assert "no file for it in the folder" in gap[0]
    else:
        assert target.name in gap[0]
    assert volume.warnings == report.warnings
    assert_geometry_true(volume)


def test_skipped_end_slice_is_warned(tmp_path: Path) -> None:
    paths = db.write_ct_series(tmp_path, n_slices=6)
    db.make_compressed_undecodable(paths[-1])
    volume, report = load_ct(tmp_path)
    assert volume.shape_zyx[0] == 5
    end = [w for w in report.warnings if "beyond the last loaded slice" in w]
    assert len(end) == 1 and paths[-1].name in end[0]


def test_interleaved_acquisitions_in_one_series_warn(tmp_path: Path) -> None:
    uid, study, frame = "1.2.826.0.1.3680043.8.498.81", "1.2.3.81", "1.2.3.82"
    common = {"series_uid": uid, "study_uid": study, "frame_of_reference_uid": frame}

    def acquisition(n: int):
        def set_number(_k: int, ds) -> None:
            ds.AcquisitionNumber = n

        return set_number

    db.write_ct_series(
        tmp_path, n_slices=5, slice_spacing_mm=4.0, prefix="A", per_slice=acquisition(1), **common
    )
    db.write_ct_series(
        tmp_path,
        n_slices=5,
        slice_spacing_mm=4.0,
        origin=(-4.0, -5.0, -4.0),
        prefix="B",
        per_slice=acquisition(2),
        **common,
    )
    volume, report = load_ct(tmp_path)
    assert volume.geometry.spacing_mm[2] == pytest.approx(2.0)
    warning = next(w for w in report.warnings if "InstanceNumber" in w)
    assert "interleaved" in warning and "2.00 mm" in warning
    assert "AcquisitionNumbers 1, 2" in warning and "A000.dcm" in warning
    clean = tmp_path / "clean"
    db.write_ct_series(clean, n_slices=5)
    assert not any("InstanceNumber" in w for w in load_ct(clean)[1].warnings)


def test_inspect_reports_refusal_without_raising(tmp_path: Path) -> None:
    db.write_ct_series(tmp_path, per_slice=lambda k, ds: db.set_raw(ds, "PixelSpacing", "0\\0"))
    result = inspect_ct(tmp_path)
    assert result.volume is None and not result.report.ok
    assert "PixelSpacing '0\\0'" in result.report.problems[0]


def test_variable_spacing_is_described_once_per_run_of_gaps(tmp_path: Path) -> None:
    z = [-6.0, -2.0, 2.0, 6.0, 7.0, 14.0, 21.0, 28.0]  # 4, 4, 4, then 1, then 7 ×3 mm
    paths = db.write_ct_series(tmp_path, positions=[(-4.0, -5.0, zz) for zz in z])
    _volume, report = load_ct(tmp_path)
    gaps = [w for w in report.warnings if "slice gap" in w and not w.startswith("resampled")]
    assert len(gaps) == 2
    assert gaps[0].startswith("slice gap 1.00 mm (median 4.00 mm)")
    assert paths[3].name in gaps[0] and paths[4].name in gaps[0]
    assert gaps[1].startswith("3 slice gaps of 7.00 mm (median 4.00 mm)")
    assert paths[4].name in gaps[1] and paths[7].name in gaps[1]
    assert "7.00 to 28.00 mm along the slice normal" in gaps[1]


def test_small_inplane_jitter_is_described_not_called_tilt(tmp_path: Path) -> None:
    # Origins alternate 0.08 mm in x: above the 0.05 mm shear tolerance, no consistent slope,
    # no single outlier — the reason must still say what it is.
    positions = [(-4.0 + (0.08 if k % 2 else 0.0), -5.0, -6.0 + 2.5 * k) for k in range(6)]
    db.write_ct_series(tmp_path, positions=positions)
    result = inspect_ct(tmp_path, allow_resample=False)
    text = " ".join(result.report.problems)
    assert "gantry tilt" not in text
    assert "in-plane" in text and "resampling is switched off" in text
