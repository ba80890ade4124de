"""Run Python code on a real, tiny, full or read-only file system (tests of write failures);
:func:`no_hang` turns a blocked call (e.g. opening a FIFO) into a test failure.

A private mount namespace (``unshare -rm``: user + mount namespaces, no root needed where
unprivileged user namespaces are enabled, as on Debian 12) mounts a small tmpfs over a test
folder. Inside, :func:`fill` writes until the kernel answers ENOSPC and :func:`make_readonly`
remounts it read-only (EROFS). Nothing is simulated: the writers see the kernel's own errors.

``run_limited(code, mount_dir)`` runs ``code`` with these helpers and ``M`` (the mount folder,
a str) predefined, plus ``run_cli(argv) -> (exit code, everything written on fd 2)``; the code
prints one JSON line last, which is returned parsed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PRELUDE = '''
import json, os, subprocess, sys, tempfile
M = sys.argv[1]

def fill():
    """Fill the tmpfs until the kernel refuses (ENOSPC)."""
    with open(os.path.join(M, "filler"), "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\\0" * 4096)
                fh.flush()
        except OSError as exc:
            assert exc.errno == 28, exc

def make_readonly():
    subprocess.run(["mount", "-o", "remount,ro", M], check=True)

def run_cli(argv):
    from app.cli import main
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            rc = main(argv)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return rc, f.read().decode()
'''


@contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when the block takes longer than ``seconds``."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s (opened a FIFO?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@cache
def limited_fs_problem() -> str | None:
    """None when ``unshare -rm`` can mount a tmpfs here, else why not (the skip reason)."""
    if shutil.which("unshare") is None:
        return "needs util-linux 'unshare' to mount a tiny tmpfs in a private namespace"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k none /tmp"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return (
            "cannot mount a tmpfs in a user+mount namespace here "
            f"({probe.stderr.strip() or probe.returncode}); enable unprivileged user namespaces"
        )
    return None


def run_limited(code: str, mount_dir: Path, *, size: str = "512k", timeout_s: float = 300) -> dict:
    """Run ``code`` (see the module docstring) with a ``size`` tmpfs mounted on ``mount_dir``."""
    mount_dir.mkdir(parents=True, exist_ok=True)
    script = _PRELUDE + "\n" + textwrap.dedent(code)
    cmd = (
        f"mount -t tmpfs -o size={size},mode=755 none '{mount_dir}' && "
        f"exec '{sys.executable}' -c \"$0\" '{mount_dir}'"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd, script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"limited-fs script failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
