"""`seedplan info PLAN [--json]`: the info command dispatches plan files to the plan summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from planner.plan.plan_file import save_plan
from tests.conftest import REPO_ROOT
from tests.plan_builders import full_plan


def _info(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "info", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_info_plan_json_lists_structures_and_format(tmp_path: Path) -> None:
    plan = full_plan()
    path = save_plan(plan, tmp_path / "case.seedplan")
    proc = _info(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "plan" and doc["format_version"]
    names = {s["name"] for s in doc["structures"]}
    assert names == {s.name for s in plan.structures}
    for s in doc["structures"]:
        expected = next(p for p in plan.structures if p.name == s["name"]).volume_cm3
        assert abs(s["volume_cm3"] - expected) < 1e-6
    text = _info(str(path))
    assert text.returncode == 0 and "SeedPlan plan" in text.stdout


def test_info_on_a_damaged_plan_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.seedplan"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    proc = _info(str(bad))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "broken.seedplan" in proc.stderr
    assert "Traceback" not in proc.stderr
