"""Fault injection for plan saving: a save killed midway (SIGKILL), a full disk, a read-only
folder. Each must leave the previous file byte-identical and tell the user.

The full disk and the read-only folder are real: a small tmpfs (and its read-only remount) in a
private mount namespace (``unshare``; as root directly, otherwise as a mapped user).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from planner.plan.plan_file import load_plan, save_plan
from tests.plan_builders import full_plan, plans_equal, small_ct

ROOT = Path(__file__).resolve().parent.parent


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_save_killed_midway_keeps_the_old_file(tmp_path: Path) -> None:
    target = save_plan(full_plan(), tmp_path / "plan.seedplan")
    old = target.read_bytes()
    # The child saves a bigger plan over it and is killed while writing the masks.
    script = textwrap.dedent(
        f"""
        import sys, time
        from planner.plan.plan_file import save_plan
        from tests.plan_builders import full_plan, small_ct
        plan = full_plan(small_ct(shape=(40, 96, 96)), random_masks=True)
        def progress(fraction, message):
            if message.startswith("writing masks/"):
                print("WRITING", flush=True)
                time.sleep(60)
        save_plan(plan, {str(target)!r}, force=True, progress=progress)
        print("DONE", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=ROOT,
    )
    try:
        line = child.stdout.readline().strip()
        assert line == "WRITING"
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".plan.seedplan.")]
        assert temps and temps[0].stat().st_size > 0  # the new file is half written
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == old
    assert plans_equal(load_plan(target).plan, full_plan())
    # The next save works (the stale temporary file is not in its way).
    save_plan(full_plan(random_masks=True), target, force=True)
    assert plans_equal(load_plan(target).plan, full_plan(random_masks=True))


def _run_in_private_tmpfs(tmp_path: Path, body: str) -> dict:
    """Run ``body`` (Python; ``MNT`` is a fresh 512 KiB tmpfs) in a private mount namespace."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs util-linux unshare and mount for a real tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(
        "import json, os, subprocess, sys\n"
        f"MNT = {str(mnt)!r}\n"
        "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', MNT], check=True)\n"
        + textwrap.dedent(body)
    )
    ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns.insert(1, "--map-root-user")
    probe = subprocess.run([*ns, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.strip()}")
    out = subprocess.run(
        [*ns, sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


_SETUP = """
from planner.files.safe_write import OutputError
from planner.plan.plan_file import load_plan, save_plan
from tests.plan_builders import full_plan, plans_equal, small_ct
target = os.path.join(MNT, "plan.seedplan")
save_plan(full_plan(), target)
old = open(target, "rb").read()
big = full_plan(small_ct(shape=(40, 96, 96)), random_masks=True)  # ~140 KB, incompressible
"""

_CHECK = """
try:
    save_plan(big, target, force=True)
    result = {"saved": True}
except OutputError as exc:
    result = {"saved": False, "message": str(exc)}
result["identical"] = open(target, "rb").read() == old
result["loads"] = plans_equal(load_plan(target).plan, full_plan())
result["left"] = sorted(n for n in os.listdir(MNT) if n != "filler")
print(json.dumps(result))
"""


def test_full_disk_keeps_the_old_file(tmp_path: Path) -> None:
    fill = """
    with open(os.path.join(MNT, "filler"), "wb") as fh:  # leave about 40 KB free
        free = os.statvfs(MNT).f_bavail * os.statvfs(MNT).f_frsize
        fh.write(os.urandom(max(free - 40_000, 0)))
    """
    r = _run_in_private_tmpfs(tmp_path, _SETUP + textwrap.dedent(fill) + _CHECK)
    assert r["saved"] is False
    assert "no space left" in r["message"] and r["message"].startswith(
        str(tmp_path / "mnt" / "plan.seedplan")
    )
    assert "\n" not in r["message"]
    assert r["identical"] and r["loads"]
    assert r["left"] == ["plan.seedplan"]  # no temporary file left behind


def test_read_only_folder_keeps_the_old_file(tmp_path: Path) -> None:
    ro = "subprocess.run(['mount', '-o', 'remount,ro', MNT], check=True)\n"
    r = _run_in_private_tmpfs(tmp_path, _SETUP + ro + _CHECK)
    assert r["saved"] is False
    assert "not writable" in r["message"] or "Read-only" in r["message"], r["message"]
    assert r["identical"] and r["loads"]
    assert r["left"] == ["plan.seedplan"]


def test_unwritable_folder_without_namespaces(tmp_path: Path) -> None:
    """The plain permission case (as a normal user; root ignores folder permissions)."""
    if os.geteuid() == 0:
        pytest.skip("root bypasses folder permissions; covered by the read-only tmpfs test")
    folder = tmp_path / "ro"
    folder.mkdir()
    target = save_plan(full_plan(), folder / "plan.seedplan")
    old = target.read_bytes()
    folder.chmod(0o555)
    try:
        with pytest.raises(Exception, match="not writable"):
            save_plan(full_plan(small_ct(), random_masks=True), target, force=True)
    finally:
        folder.chmod(0o755)
    assert target.read_bytes() == old
