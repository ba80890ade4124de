"""``seedplan autoplan`` and ``seedplan robustness`` end to end (subprocess, the real CLI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.bench_autoplan import make_case
from planner.dicom.ct_write import write_ct_series
from planner.imaging.ct_loader import load_ct
from planner.plan.model import Plan, Structure
from planner.plan.plan_file import load_plan, save_plan
from tests.conftest import REPO_ROOT


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "app", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory):
    plan, ct = make_case("demo")
    d = tmp_path_factory.mktemp("autoplan-cli")
    write_ct_series(ct, d / "ct", uid_entropy=["autoplan-cli"])
    loaded, _ = load_ct(d / "ct")
    on_disk = Plan.new(
        loaded,
        structures=tuple(
            Structure.from_mask(s.id, s.name, s.role, s.mask, loaded.geometry)
            for s in plan.structures
        ),
        prescription=plan.prescription,
        source=plan.source,
        goals=plan.goals,
    )
    return save_plan(on_disk, d / "p.seedplan"), d


def test_autoplan_and_robustness_cli(plan_file) -> None:
    path, d = plan_file
    out = d / "auto.seedplan"
    proc = _cli("autoplan", str(path), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    saved = load_plan(out).plan
    assert doc["needles"] == len(saved.needles) > 0
    assert doc["seeds"] == len(saved.seeds) > 0
    assert doc["metrics"]["SpinalCord"]["d0_1cc_gy"] <= 50.0
    assert doc["metrics"]["PTV_eval"]["d90_gy"] >= 110.0
    assert set(doc["rejected"]) >= {"no_pass", "bone", "leaves_body"} and doc["time_s"] > 0
    assert doc["time_budget_cut"] in (True, False) and doc["phase_seconds"]["dosimetry"] > 0
    # An existing output is not replaced without --force.
    again = _cli("autoplan", str(path), "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr
    # The human summary (and --force) works too.
    text = _cli(
        "autoplan", str(path), "--out", str(out), "--force", "--approach", "0.4,-1,0", "--parallel"
    )
    assert text.returncode == 0, text.stderr
    assert "automatic plan:" in text.stdout and "goal" in text.stdout
    human = _cli("robustness", str(out), "--samples", "5")
    assert human.returncode == 0 and "d90_gy" in human.stdout, human.stderr
    rob = _cli("robustness", str(out), "--samples", "10", "--json")
    assert rob.returncode == 0, rob.stderr
    r = json.loads(rob.stdout)
    assert r["samples"] == 10
    pc = r["percentiles"]["d90_gy"]
    assert pc["p5"] <= pc["median"] <= pc["p95"]
    assert "cord_d0_1cc_gy" in r["percentiles"]


def test_cli_bad_input(plan_file, tmp_path) -> None:
    path, d = plan_file
    bad = _cli("autoplan", str(path), "--out", str(tmp_path / "x.seedplan"), "--approach", "up")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--approach" in bad.stderr
    bad = _cli("autoplan", str(path), "--out", str(tmp_path / "b.seedplan"), "--time-budget-s", "0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--time-budget-s" in bad.stderr and "Traceback" not in bad.stderr
    # No target: one line, exit 2.
    plan = load_plan(path).plan
    no_target = plan.evolve(
        structures=tuple(s for s in plan.structures if s.role != "target"),
        prescription=None,
        goals=(),
    )
    p2 = save_plan(no_target, d / "no_target.seedplan")
    proc = _cli("autoplan", str(p2), "--out", str(tmp_path / "y.seedplan"))
    assert proc.returncode == 2 and "target" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # No CT where the plan says: one line, exit 2.
    proc = _cli(
        "autoplan",
        str(path),
        "--out",
        str(tmp_path / "z.seedplan"),
        "--ct",
        str(tmp_path / "missing"),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # Robustness of a plan without seeds.
    proc = _cli("robustness", str(path))
    assert proc.returncode == 2 and "seeds" in proc.stderr
