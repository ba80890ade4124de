"""One private Xvfb for a whole test session (started by tests/conftest.py).

``Xvfb -displayfd FD`` picks a free display number itself and writes it to FD once it accepts
connections, so there is no guessed number to race for (``xvfb-run -a`` guesses, and two of
them started at once can collide or fail while cleaning up). The server listens on its Unix
socket only (``-nolisten tcp``: no ports), never resets between clients (``-noreset``: a child
that connects while the previous one disconnects cannot hit a resetting server), and dies with
the process that started it (Linux ``PR_SET_PDEATHSIG``) even if that process is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Screen of the test display (matches DESIGN.md's verified ``xvfb-run -s`` setting).
SCREEN = "1280x1024x24"
START_TIMEOUT_S = 30.0

_PR_SET_PDEATHSIG = 1


class XServerError(RuntimeError):
    """Xvfb could not be started (the message says why, with the tail of its log)."""


@dataclass
class XServer:
    """A running Xvfb: its ``display`` (``":N"``), process and log file."""

    display: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server and wait for it (SIGKILL if it does not exit in time)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _read_display_number(fd: int, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The display number Xvfb writes to ``fd`` ('' when it exits or times out first)."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:  # EOF: the server closed its end (it exited)
                return data.decode().strip() if data.strip().isdigit() else ""
            data += chunk
        elif process.poll() is not None:
            return ""
    return data.decode().split("\n", 1)[0].strip()


def start_xvfb(log_dir: Path, *, screen: str = SCREEN) -> XServer:
    """Start Xvfb on a free display; raises :class:`XServerError` naming the problem."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise XServerError("Xvfb not found (Debian/Ubuntu: apt-get install xvfb)")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "xvfb.log"
    read_fd, write_fd = os.pipe()
    cmd = [exe, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"]
    cmd.append("-noreset")
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            os.close(write_fd)
    try:
        number = _read_display_number(read_fd, process, START_TIMEOUT_S)
    finally:
        os.close(read_fd)
    if not number.isdigit():
        server = XServer("", process, log_path)
        server.stop()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise XServerError(f"Xvfb did not report a display (exit {process.returncode}): {tail}")
    return XServer(f":{number}", process, log_path)
