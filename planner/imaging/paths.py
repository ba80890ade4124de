"""User paths the CT import opens: only regular files are read, everything else is named.

A FIFO, a socket, a character or block device (``/dev/zero``), a symlink to one of them, a
dangling symlink or a symlink loop would hang a reader or make it read forever; an unreadable file
or folder must not look like an empty one. Every place that opens a user path goes through
:func:`regular_file_problem` (before) and :func:`open_regular` (which re-checks the opened
descriptor, so a file swapped for a FIFO in between cannot block).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from planner.files.safe_write import kind_of_mode

__all__ = [
    "IMAGE_SUFFIXES",
    "SpecialFileError",
    "folder_problem",
    "is_image_file",
    "open_regular",
    "path_kind",
    "regular_file_problem",
    "walk_files",
]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


class SpecialFileError(OSError):
    """A path that is not a readable regular file; ``reason`` says what it is instead."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(reason)
        self.path = Path(path)
        self.reason = reason


def is_image_file(path: str | Path) -> bool:
    """True for .nii/.nii.gz/.mha/.mhd/.nrrd/.nhdr paths (by name)."""
    name = str(path).lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop (the link points back to itself)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "unreadable: permission denied"
    return f"unreadable: {exc.strerror or exc}"


def path_kind(path: str | Path) -> str:
    """What ``path`` is, following symlinks: "file", "folder", "FIFO (named pipe)", "socket",
    "character device", "block device", "missing", "dangling symlink", "symlink loop…"."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return "dangling symlink" if os.path.islink(p) else "missing"
    except OSError as exc:
        return _os_reason(exc)
    return kind_of_mode(mode)


def regular_file_problem(path: str | Path) -> str:
    """ "" when ``path`` is a readable regular file (symlinks followed), else the reason it is not.

    The reason names the kind: "not a regular file: FIFO (named pipe)", "not a regular file:
    symlink to a character device (/dev/zero)", "dangling symlink (to missing.dcm)", "symlink
    loop …", "unreadable: permission denied", "no such file".
    """
    p = Path(path)
    is_link = os.path.islink(p)
    target = ""
    if is_link:
        try:
            target = os.readlink(p)
        except OSError:
            target = "?"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return f"dangling symlink (to {target})" if is_link else "no such file"
    except OSError as exc:
        return _os_reason(exc)
    if not stat.S_ISREG(st.st_mode):
        kind = kind_of_mode(st.st_mode)
        return f"not a regular file: {f'symlink to a {kind} ({target})' if is_link else kind}"
    if not os.access(p, os.R_OK):
        return "unreadable: permission denied"
    return ""


def folder_problem(path: str | Path) -> str:
    """ "" when ``path`` is a folder whose entries can be listed, else the reason."""
    p = Path(path)
    try:
        with os.scandir(p):
            pass
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return f"not a folder: {path_kind(p)}"
        return _os_reason(exc).replace("unreadable", "unreadable folder", 1)
    return ""


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file for binary reading without ever blocking on a special file.

    The file is opened non-blocking (a FIFO then opens at once instead of waiting for a
    writer), and the *opened descriptor* is checked to be a regular file before anything is
    read. Raises :class:`SpecialFileError` (an OSError) with the reason otherwise.
    """
    p = Path(path)
    problem = regular_file_problem(p)
    if problem:
        raise SpecialFileError(p, problem)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise SpecialFileError(p, _os_reason(exc)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecialFileError(p, f"not a regular file: {kind_of_mode(st.st_mode)}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def walk_files(root: str | Path, *, recursive: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Regular files in a folder (recursively: in its sub-folders too), sorted, and every entry
    that is *not* read with the reason: ``(files, [(path, reason), ...])``.

    Hidden names (starting with ".") are ignored. Symlinks to files are followed (once, to a
    regular file); symlinks to folders are not followed (a link back up would loop) and are
    listed. Sub-folders that cannot be listed are listed with the reason. Without
    ``recursive``, sub-folders are ignored. Raises OSError when ``root`` cannot be listed.
    """
    files: list[Path] = []
    odd: list[tuple[Path, str]] = []

    def visit(folder: Path, top: bool) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if top:
                raise
            odd.append((folder, _os_reason(exc).replace("unreadable", "unreadable folder", 1)))
            return
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if recursive:
                    subfolders.append(p)
                continue
            if entry.is_symlink() and path_kind(p) == "folder":
                if recursive:
                    odd.append((p, f"symlink to a folder ({os.readlink(p)}): not followed"))
                continue
            problem = regular_file_problem(p)
            if problem:
                odd.append((p, problem))
            else:
                files.append(p)
        for sub in subfolders:
            visit(sub, False)

    visit(Path(root), True)
    return files, odd
