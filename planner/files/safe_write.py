"""The one rule for every file SeedPlan writes (CLI ``--out``/``--grid-out``, plan files,
exports, the demo case, the GUI's Save).

The rule
--------
1. **Target kind.** The target is absent or a regular file. A folder, a device (``/dev/full``),
   a FIFO or a socket is refused without being opened (so a FIFO never blocks). A symbolic link
   is followed: the regular file it points to is what gets replaced (the link stays a link); a
   link to anything else, or a dangling link, is refused.
2. **Never an input.** The target is not the same file (device and inode, so hard links and
   symbolic links count) as any input of the command. ``force`` does not change this.
3. **No silent overwrite.** An existing target is refused (:class:`OutputExistsError`) unless
   ``force=True`` (the CLI's ``--force``; the GUI asks first).
4. **Folders are never created.** The target's folder must exist; a missing folder is refused
   with one line (the same for every command and option).
5. **Atomic replace.** Bytes go to a hidden temporary file in the same folder
   (``.NAME.<random>.tmp<suffix>``, created ``O_EXCL`` with mode 0666 & ~umask; a replaced file
   keeps its permission bits, and its owner when running as root). The temporary file is flushed
   and fsynced, optionally verified, checked against rules 1-3 again, renamed over the target with
   :func:`os.replace`, and the folder is fsynced. On any failure (full disk, read-only folder,
   an exception in the caller's code) the temporary file is removed and the target is untouched,
   byte for byte.
6. **Errors name the target.** Failures raise :class:`OutputError` (an
   :class:`~dose.errors.InputError`: the CLI prints one line and exits 2) whose message names the
   target the user asked for, never the temporary file.

API
---
::

    check_output(target, *, inputs=(), force=False) -> Path
        # rules 1-4 only: call it before long work so a bad target fails fast; returns the
        # final path (symbolic links followed)
    write_text(target, text, *, inputs=(), force=False) -> Path
    write_bytes(target, data, *, inputs=(), force=False) -> Path
    with atomic_open(target, "w" | "wb", *, inputs=(), force=False) as fh:  # streaming writers
        fh.write(...)
    write_with(target, write_fn, *, inputs=(), force=False, verify=None, io_errors=()) -> Path
        # for libraries that write by file name (SimpleITK, pydicom, PDF): write_fn(tmp_path);
        # the temporary name keeps the target's suffix (".nii.gz", ".nrrd", ".dcm") so the
        # library picks the right format; verify(tmp_path) may read it back before the rename
    check_output_folder(target) -> Path
        # a folder output (demo case, export folder): absent with an existing parent, or an
        # existing folder; refuses devices, FIFOs, regular files, dangling links, missing parents
    fsync_tree(folder)    # fsync every file and folder below ``folder`` (before a folder swap)
    fsync_folder(folder)  # fsync one folder's entries (after a rename inside it)

``inputs`` is any iterable of paths (``None`` entries are skipped), e.g.
``inputs=(args.seeds, args.points)``.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from dose.errors import InputError

__all__ = [
    "OutputError",
    "OutputExistsError",
    "atomic_open",
    "check_output",
    "check_output_folder",
    "fsync_folder",
    "fsync_tree",
    "kind_of_mode",
    "write_bytes",
    "write_text",
    "write_with",
]

PathLike = str | os.PathLike[str]
Inputs = Iterable[PathLike | None]

#: What the "exists" refusal tells the user to do (the CLI flag of every writing command).
FORCE_HINT = "use --force to replace it"


class OutputError(InputError):
    """A target SeedPlan refuses or fails to write; the message names the target."""


class OutputExistsError(OutputError):
    """The target exists and ``force`` was not given (the GUI may ask and retry with force)."""


def kind_of_mode(mode: int) -> str:
    """What a ``st_mode`` is, in words ("file", "folder", "FIFO (named pipe)", …)."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _stat_or_none(path: Path, target: Path, *, follow: bool) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot check the output: {exc.strerror or exc}", target) from None


def _resolve(target: Path) -> tuple[Path, os.stat_result | None]:
    """(final path, its stat or None when absent); rule 1."""
    lst = _stat_or_none(target, target, follow=False)
    if lst is None:
        return Path(os.path.abspath(target)), None
    if stat.S_ISLNK(lst.st_mode):
        real = Path(os.path.realpath(target))
        st = _stat_or_none(real, target, follow=True)
        if st is None:
            raise OutputError(
                f"is a symbolic link to a missing file ({real}); not writing through it", target
            )
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(
                f"is a symbolic link to {real}, a {kind_of_mode(st.st_mode)}; only regular files "
                "are written",
                target,
            )
        return real, st
    if not stat.S_ISREG(lst.st_mode):
        raise OutputError(f"is a {kind_of_mode(lst.st_mode)}, not a regular file", target)
    return Path(os.path.abspath(target)), lst


def _check_folder(folder: Path, target: Path) -> None:
    """Rule 4: the folder exists, is a folder and looks writable."""
    st = _stat_or_none(folder, target, follow=True)
    if st is None:
        raise OutputError(f"folder {folder} does not exist (create it first)", target)
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{folder} is not a folder", target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"folder {folder} is not writable", target)


def _check_not_input(st: os.stat_result, inputs: Inputs, target: Path) -> None:
    for inp in inputs:
        if inp is None:
            continue
        try:
            ist = os.stat(inp)
        except OSError:
            continue  # an input that does not exist cannot be overwritten
        if (ist.st_dev, ist.st_ino) == (st.st_dev, st.st_ino):
            raise OutputError(
                f"is an input of this command ({inp}); write the output to another file", target
            )


def check_output(target: PathLike, *, inputs: Inputs = (), force: bool = False) -> Path:
    """Apply rules 1-4 to ``target``; return the final path (absolute, links followed).

    Raises :class:`OutputError` (or :class:`OutputExistsError`) naming ``target``.
    """
    target = Path(target)
    inputs = tuple(inputs)
    final, st = _resolve(target)
    _check_folder(final.parent, target)
    if st is not None:
        _check_not_input(st, inputs, target)
        if not force:
            raise OutputExistsError(f"exists; {FORCE_HINT}", target)
    return final


def _keep_suffix(name: str) -> str:
    """The suffix a library needs to pick the format: ``.nii.gz``, ``.nrrd``, ``.csv`` …"""
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() == ".gz":
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def _create_temp(final: Path, suffix: str, target: Path) -> tuple[int, Path]:
    """Create ``.NAME.<random>.tmp<suffix>`` beside ``final`` (O_EXCL, 0666 & ~umask)."""
    stem = final.name[:80]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = final.parent / f".{stem}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(_why(exc, final.parent), target) from None
    raise OutputError("cannot create a temporary file beside it", target)


def _why(exc: OSError, folder: Path) -> str:
    """One line for a failed write (full disk, read-only or unwritable folder …)."""
    if exc.errno == errno.ENOSPC:
        return "cannot write: no space left on the device; nothing was written"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write in folder {folder}: {exc.strerror}; nothing was written"
    return f"cannot write: {exc.strerror or exc}; nothing was written"


def _no_space(folder: Path) -> bool:
    """True when the file system of ``folder`` has no free block left for us."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):
        return False


def _copy_mode(fd: int, old: os.stat_result | None) -> None:
    if old is None:
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    if os.geteuid() == 0 and (old.st_uid, old.st_gid) != (0, 0):
        with suppress(OSError):  # keep root's ownership rather than fail the save
            os.fchown(fd, old.st_uid, old.st_gid)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows: folders cannot be opened
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _commit(tmp: Path, target: Path, inputs: tuple[PathLike | None, ...], force: bool) -> Path:
    """Rules 1-3 again (time has passed), then rename over the target and sync the folder."""
    final = check_output(target, inputs=inputs, force=force)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def write_with(
    target: PathLike,
    write_fn: Callable[[Path], Any],
    *,
    inputs: Inputs = (),
    force: bool = False,
    verify: Callable[[Path], Any] | None = None,
    io_errors: tuple[type[BaseException], ...] = (),
) -> Path:
    """Write ``target`` by calling ``write_fn(tmp_path)`` (a library that writes by file name),
    then fsync, ``verify(tmp_path)`` (optional; raise to refuse), and atomically replace.

    ``io_errors``: exception types the library uses for write failures (e.g. ``RuntimeError``
    for SimpleITK); they become :class:`OutputError` naming ``target``. Other exceptions
    propagate unchanged (after the temporary file is removed). Returns the final path.
    """
    target = Path(target)
    inputs = tuple(inputs)
    final = check_output(target, inputs=inputs, force=force)
    old = _stat_or_none(final, target, follow=True)
    fd, tmp = _create_temp(final, _keep_suffix(final.name), target)
    try:
        try:
            _copy_mode(fd, old)
        finally:
            os.close(fd)
        write_fn(tmp)
        _fsync_file(tmp)
        if verify is not None:
            verify(tmp)
        return _commit(tmp, target, inputs, force)
    except OutputError:
        _remove(tmp)
        raise
    except OSError as exc:
        _remove(tmp)
        raise OutputError(_why(exc, final.parent), target) from None
    except BaseException as exc:
        _remove(tmp)
        if io_errors and isinstance(exc, io_errors):
            if _no_space(final.parent):  # libraries rarely say why a write failed
                raise OutputError(_why(OSError(errno.ENOSPC, ""), final.parent), target) from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            first = first.replace(str(tmp), str(target)).replace(tmp.name, target.name)
            why = f"cannot write: {first.strip()}; nothing was written"
            raise OutputError(why, target) from None
        raise


@contextmanager
def atomic_open(
    target: PathLike,
    mode: str = "w",
    *,
    inputs: Inputs = (),
    force: bool = False,
    encoding: str = "utf-8",
    newline: str | None = "",
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on a clean exit of the ``with`` block it replaces
    ``target`` atomically, on any exception it is removed and ``target`` is untouched.

    ``mode`` is ``"w"`` (text, ``encoding``/``newline``) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', not {mode!r}")
    target = Path(target)
    inputs = tuple(inputs)
    final = check_output(target, inputs=inputs, force=force)
    old = _stat_or_none(final, target, follow=True)
    fd, tmp = _create_temp(final, _keep_suffix(final.name), target)
    try:
        try:
            _copy_mode(fd, old)
            if mode == "wb":
                fh: IO[Any] = os.fdopen(fd, "wb")
            else:
                fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, target, inputs, force)
    except OutputError:
        _remove(tmp)
        raise
    except OSError as exc:
        _remove(tmp)
        raise OutputError(_why(exc, final.parent), target) from None
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(target: PathLike, data: bytes, *, inputs: Inputs = (), force: bool = False) -> Path:
    """Write ``data`` to ``target`` under the rule; returns the final path."""
    with atomic_open(target, "wb", inputs=inputs, force=force) as fh:
        fh.write(data)
    return Path(os.path.realpath(target))


def write_text(
    target: PathLike,
    text: str,
    *,
    inputs: Inputs = (),
    force: bool = False,
    encoding: str = "utf-8",
) -> Path:
    """Write ``text`` (``encoding``, newlines as given) to ``target``; returns the final path."""
    with atomic_open(target, "w", inputs=inputs, force=force, encoding=encoding) as fh:
        fh.write(text)
    return Path(os.path.realpath(target))


def check_output_folder(target: PathLike) -> Path:
    """A folder output: absent (its parent must exist; the caller creates it) or an existing
    folder (links followed). Returns the final absolute path. What may already be inside is the
    caller's rule (e.g. the demo case refuses foreign files and needs ``--force`` to replace)."""
    target = Path(target)
    lst = _stat_or_none(target, target, follow=False)
    final = Path(os.path.abspath(target))
    if lst is not None and stat.S_ISLNK(lst.st_mode):
        real = Path(os.path.realpath(target))
        st = _stat_or_none(real, target, follow=True)
        if st is None:
            raise OutputError(f"is a symbolic link to a missing folder ({real})", target)
        if not stat.S_ISDIR(st.st_mode):
            kind = "regular file" if stat.S_ISREG(st.st_mode) else kind_of_mode(st.st_mode)
            raise OutputError(f"is a symbolic link to {real}, a {kind}, not a folder", target)
        final = real
    elif lst is not None and not stat.S_ISDIR(lst.st_mode):
        kind = "regular file" if stat.S_ISREG(lst.st_mode) else kind_of_mode(lst.st_mode)
        raise OutputError(f"exists and is a {kind}, not a folder", target)
    _check_folder(final.parent, target)
    return final


def fsync_folder(folder: PathLike) -> None:
    """fsync ``folder`` itself (its entries: a rename inside it becomes durable)."""
    _fsync_dir(Path(folder))


def fsync_tree(folder: PathLike) -> None:
    """fsync every regular file and folder below ``folder`` (and ``folder`` itself)."""
    root = Path(folder)
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            _fsync_file(Path(dirpath) / name)
        _fsync_dir(Path(dirpath))
