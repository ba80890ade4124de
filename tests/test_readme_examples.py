"""Every command example in the README runs as written (issue 8, "README").

The README marks its runnable examples with ``<!-- runnable example -->`` on the line before a
```` ``` ```` block; each such block runs in a fresh temporary folder under bash with
``set -euo pipefail``, with this environment's ``seedplan`` first on PATH. A block that fails
fails the test with its output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

MARKER = "<!-- runnable example -->"


def _blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(re.escape(MARKER) + r"\s*\n```[a-z]*\n(.*?)\n```", text, flags=re.S)
    return found


def test_readme_has_runnable_examples() -> None:
    assert _blocks(), f"README.md marks no example with {MARKER}"


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    script = _blocks()[index]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"README example {index} failed (exit {proc.returncode}):\n{script}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
