"""The one output rule (planner/files/safe_write.py, issue 8): every bad target kind is refused
without touching it, the old bytes survive every failure, no temporary file is left behind, and
messages name the target, never the temporary file."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from dose.errors import InputError
from planner.files.safe_write import (
    OutputError,
    OutputExistsError,
    atomic_open,
    check_output,
    check_output_folder,
    write_bytes,
    write_text,
    write_with,
)
from tests.limited_fs import limited_fs_problem, no_hang, run_limited

OLD = b"old bytes\n"


def _via_text(target: Path, **kw) -> Path:
    return write_text(target, "new\n", **kw)


def _via_bytes(target: Path, **kw) -> Path:
    return write_bytes(target, b"new\n", **kw)


def _via_open(target: Path, **kw) -> Path:
    with atomic_open(target, "w", **kw) as fh:
        fh.write("new\n")
    return target


def _via_with(target: Path, **kw) -> Path:
    return write_with(target, lambda p: p.write_bytes(b"new\n"), **kw)


WRITERS: dict[str, Callable[..., Path]] = {
    "write_text": _via_text,
    "write_bytes": _via_bytes,
    "atomic_open": _via_open,
    "write_with": _via_with,
}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _bad_target(kind: str, d: Path) -> tuple[Path, dict, str, Path | None]:
    """(target, writer kwargs, expected message part, file whose bytes must survive)."""
    old = d / "old.csv"
    old.write_bytes(OLD)
    if kind == "char device":
        return Path("/dev/full"), {}, "is a character device, not a regular file", None
    if kind == "fifo":
        fifo = d / "pipe.csv"
        os.mkfifo(fifo)
        return fifo, {"force": True}, "is a FIFO (named pipe)", None
    if kind == "folder":
        (d / "sub").mkdir()
        return d / "sub", {"force": True}, "is a folder, not a regular file", None
    if kind == "link to device":
        (d / "link.csv").symlink_to("/dev/full")
        return d / "link.csv", {"force": True}, "symbolic link to /dev/full, a character", None
    if kind == "dangling link":
        (d / "dangling.csv").symlink_to(d / "nowhere.csv")
        return d / "dangling.csv", {"force": True}, "symbolic link to a missing file", None
    if kind == "own input":
        return old, {"inputs": [d / "x.csv", old], "force": True}, "is an input of this", old
    if kind == "input via hard link":
        os.link(old, d / "hard.csv")
        return d / "hard.csv", {"inputs": [old], "force": True}, "is an input of this", old
    if kind == "input via symlink":
        (d / "soft.csv").symlink_to(old)
        return d / "soft.csv", {"inputs": [old], "force": True}, "is an input of this", old
    if kind == "exists":
        return old, {}, "exists; use --force to replace it", old
    if kind == "missing folder":
        return d / "no" / "such" / "out.csv", {}, f"folder {d / 'no' / 'such'} does not", None
    raise AssertionError(kind)


BAD_KINDS = [
    "char device",
    "fifo",
    "folder",
    "link to device",
    "dangling link",
    "own input",
    "input via hard link",
    "input via symlink",
    "exists",
    "missing folder",
]


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_every_writer_refuses_every_bad_target(tmp_path: Path, writer: str, kind: str) -> None:
    target, kw, message, keep = _bad_target(kind, tmp_path)
    before = _listing(tmp_path)
    # no_hang: a FIFO opened for writing would block forever
    with no_hang(60), pytest.raises(OutputError) as info:
        WRITERS[writer](target, **kw)
    text = str(info.value)
    assert text.startswith(f"{target}: ") and message in text
    assert ".tmp" not in text and "\n" not in text
    assert isinstance(info.value, InputError)  # the CLI's exit 2
    assert _listing(tmp_path) == before  # no temporary file left, nothing created
    assert (tmp_path / "old.csv").read_bytes() == OLD
    if keep is not None:
        assert keep.read_bytes() == OLD
    if kind == "exists":
        assert isinstance(info.value, OutputExistsError)


def test_dev_full_is_untouched_and_check_output_matches(tmp_path: Path) -> None:
    st = os.stat("/dev/full")
    with pytest.raises(OutputError, match="character device"):
        check_output("/dev/full", force=True)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert os.stat("/dev/full").st_rdev == st.st_rdev  # still the device, not a CSV


def test_force_replaces_keeps_mode_and_follows_links(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_bytes(OLD)
    os.chmod(real, 0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert write_text(link, "new\n", force=True) == real
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert _listing(tmp_path) == ["link.csv", "real.csv"]
    # a new file gets 0666 & ~umask, like open()
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "new.csv", "x\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644


def test_failure_inside_the_writer_leaves_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(OLD)
    # a bug in the caller's code propagates unchanged
    with pytest.raises(ZeroDivisionError), atomic_open(target, "w", force=True) as fh:
        fh.write("half a table\n")
        _ = 1 / 0
    with pytest.raises(ValueError, match="bad"):

        def half_then_fail(p: Path) -> None:
            p.write_bytes(b"half")
            raise ValueError("bad")

        write_with(target, half_then_fail, force=True)
    # a library's own write error type becomes one line naming the target, not the temp file
    with pytest.raises(OutputError) as info:

        def library_fails(p: Path) -> None:
            raise RuntimeError(f"ITK ERROR: could not write {p}")

        write_with(target, library_fails, force=True, io_errors=(RuntimeError,))
    assert f"could not write {target}" in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises(InputError, match="verify says no"):

        def refuse(p: Path) -> None:
            raise InputError("verify says no", target)

        write_with(target, lambda p: p.write_bytes(b"new"), force=True, verify=refuse)
    assert target.read_bytes() == OLD and _listing(tmp_path) == ["out.csv"]


def test_suffix_is_kept_for_libraries(tmp_path: Path) -> None:
    seen: list[str] = []
    write_with(tmp_path / "dose.nii.gz", lambda p: (seen.append(p.name), p.write_bytes(b"x")))
    assert seen[0].endswith(".nii.gz") and seen[0].startswith(".dose.nii.gz.")
    assert _listing(tmp_path) == ["dose.nii.gz"]


def test_output_folder_rule(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(OLD)
    (tmp_path / "dir").mkdir()
    (tmp_path / "to_dev").symlink_to("/dev/full")
    (tmp_path / "to_dir").symlink_to(tmp_path / "dir")
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    assert check_output_folder(tmp_path / "to_dir") == tmp_path / "dir"
    for name, message in [
        ("file", "exists and is a regular file, not a folder"),
        ("to_dev", "a character device, not a folder"),
        ("no/new", "does not exist"),
    ]:
        with pytest.raises(OutputError, match=re.escape(message)):
            check_output_folder(tmp_path / name)
    with pytest.raises(OutputError, match="character device"):
        check_output_folder("/dev/full")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions (see tmpfs test)")
def test_unwritable_folder_by_permissions(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    (d / "old.csv").write_bytes(OLD)
    d.chmod(0o555)
    try:
        for writer in WRITERS.values():
            with pytest.raises(OutputError, match="not writable"):
                writer(d / "old.csv", force=True)
    finally:
        d.chmod(0o755)
    assert (d / "old.csv").read_bytes() == OLD and _listing(d) == ["old.csv"]


_API_ON_LIMITED_FS = """
from planner.files.safe_write import OutputError, write_text, write_bytes, write_with, atomic_open
old = os.path.join(M, "old.csv")
with open(old, "wb") as fh:
    fh.write(b"old bytes\\n")
def via_open(t, **kw):
    with atomic_open(t, "w", **kw) as fh:
        fh.write("y" * 200000)
writers = {
    "write_text": lambda t, **kw: write_text(t, "x" * 200000, **kw),
    "write_bytes": lambda t, **kw: write_bytes(t, b"x" * 200000, **kw),
    "atomic_open": via_open,
    "write_with": lambda t, **kw: write_with(t, lambda p: p.write_bytes(b"z" * 200000), **kw),
}
{prepare}
out = {}
for name, w in writers.items():
    for target in (old, os.path.join(M, "new.csv")):
        try:
            w(target, force=True)
            out[name + ":" + target] = "written"
        except OutputError as exc:
            out[name + ":" + target] = str(exc)
out["old"] = open(old, "rb").read().decode()
out["listing"] = sorted(n for n in os.listdir(M) if n != "filler")
print(json.dumps(out))
"""


@pytest.mark.skipif(limited_fs_problem() is not None, reason=str(limited_fs_problem()))
@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        ("fill()", "cannot write: no space left on the device; nothing was written"),
        ("make_readonly()", "is not writable"),
    ],
    ids=["full disk", "read-only file system"],
)
def test_full_disk_and_read_only_fs(tmp_path: Path, prepare: str, message: str) -> None:
    mount = tmp_path / "small"
    out = run_limited(_API_ON_LIMITED_FS.replace("{prepare}", prepare), mount)
    assert out.pop("old") == "old bytes\n"
    assert out.pop("listing") == ["old.csv"]  # no temp file, no half-written new file
    assert len(out) == 8
    for key, text in out.items():
        target = key.split(":", 1)[1]
        assert text.startswith(f"{target}: ") and message in text, (key, text)
        assert ".tmp" not in text
