"""The demo plan's post-op CT (planner/demo/postop.py): its truth is what verification finds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from planner.demo.phantom import generate_phantom
from planner.demo.postop import make_postop_ct
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Needle, Plan, Seed
from planner.postop.detection.detect import detect_seeds
from planner.postop.register import register_rigid


@pytest.fixture(scope="module")
def plan_and_ct():
    ph = generate_phantom(n_slices=40)
    ct = CTVolume(ph.hu, ph.geometry, PatientInfo(patient_id="DEMO-POSTOP"))
    centre = ph.geometry.zyx_to_world(np.argwhere(ph.masks["GTV"]).mean(axis=0))
    needles, seeds = [], []
    for n, dx in enumerate((-8.0, 0.0, 8.0)):
        entry = centre + np.array([dx, 60.0, 0.0])
        tip = centre + np.array([dx, -10.0, 0.0])
        needles.append(Needle(f"nd-{n}", tuple(entry), tuple(tip)))
        u = (tip - entry) / np.linalg.norm(tip - entry)
        for k in range(3):
            p = tip - u * (4.0 + 9.0 * k)
            seeds.append(Seed(f"sd-{n}-{k}", tuple(p), tuple(u), needle_id=f"nd-{n}"))
    return Plan.new(ct, needles=tuple(needles), seeds=tuple(seeds)), ct


def test_postop_truth_is_consistent_and_deterministic(plan_and_ct) -> None:
    plan, ct = plan_and_ct
    a = make_postop_ct(plan, ct)
    b = make_postop_ct(plan, ct)
    assert np.array_equal(a.ct.hu, b.ct.hu)  # byte-identical for the same rng
    # The two truths are the same seeds through the stored rigid map.
    assert np.allclose(a.postop_to_plan.apply(a.seeds_postop_mm), a.seeds_plan_mm, atol=1e-6)
    # Seeds moved a little (needle error + jitter), not a lot.
    planned = np.array([s.position_mm for s in plan.seeds])
    moved = np.linalg.norm(a.seeds_plan_mm - planned, axis=1)
    assert 0.1 < np.median(moved) < 6.0
    # Detection + registration on the post-op CT recover the planning-frame truth.
    found = detect_seeds(a.ct, expected=len(plan.seeds))
    assert len(found.seeds) == len(plan.seeds)
    reg = register_rigid(ct, a.ct, around_mm=planned.mean(axis=0))
    mapped = reg.transform.apply(found.positions_mm)
    d = np.linalg.norm(mapped[:, None] - a.seeds_plan_mm[None], axis=-1).min(axis=1)
    assert d.max() < 1.0


def test_demo_case_postop_verifies(tmp_path) -> None:
    """`seedplan demo` writes the plan's post-op CT and its truth; `seedplan verify` on it finds
    every seed, and the post-op D90 is within 2 % of D90 from the true implanted seeds."""
    import subprocess
    import sys

    from planner.demo.case import DEMO_POSTOP_TRUTH, ensure_demo_case
    from planner.imaging.ct_loader import load_ct
    from planner.plan.dosimetry import compute_plan_dosimetry
    from planner.plan.plan_file import load_plan
    from tests.conftest import REPO_ROOT

    case = ensure_demo_case()
    manifest = json.loads((case / "case.json").read_text())
    assert manifest["postop"]["seeds"] == manifest["plan"]["seeds"]
    out = tmp_path / "verify"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "verify",
            str(case / "plan.seedplan"),
            str(case / "postop"),
            "--out",
            str(out),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    n = manifest["plan"]["seeds"]
    assert doc["detection"]["found"] == n and len(doc["matching"]["pairs"]) == n
    truth = np.loadtxt(case / DEMO_POSTOP_TRUTH, delimiter=",", skiprows=2)
    plan = load_plan(case / "plan.seedplan").plan
    ct, _ = load_ct(case / "ct")
    true_plan = plan.evolve(
        seeds=tuple(Seed(f"sd-t{i}", tuple(p)) for i, p in enumerate(truth[:, 3:6])), needles=()
    )
    target = plan.structure(plan.prescription.structure_id).name
    d90_true = compute_plan_dosimetry(true_plan, ct, formalism="1d").metrics[target].d90_gy
    row = next(r for r in doc["comparison"] if r["structure"] == target and r["metric"] == "d90_gy")
    assert row["postop"] == pytest.approx(d90_true, rel=0.02)
    # The plan's copy in another folder still names the planning CT (the demo plan names it
    # "ct", relative to its own folder): `seedplan export` of the copy finds it.
    from planner.plan.plan_ct import find_plan_ct

    assert plan.ct.source_path == "ct"
    copy = load_plan(out / "postop.seedplan").plan
    assert Path(copy.ct.source_path) == (case / "ct").absolute()
    found, note = find_plan_ct(copy, out / "postop.seedplan")
    assert found is not None, note
    # The copy carries the verification for the report; its export computes the copy's dose
    # in the verification's formalism and shows the comparison, with both pictures.
    rec = copy.verification
    assert rec is not None and rec.formalism == doc["formalism"] == "1d"
    assert rec.seeds_detected == n and len(rec.pairs) == n and not rec.unmatched_planned
    assert rec.row(target, "d90_gy").postop == pytest.approx(row["postop"])
    assert {d.structure for d in rec.dvhs} >= {target}
    _export_shows_the_verification(copy, ct, tmp_path / "export", row)


def _export_shows_the_verification(copy, ct, out: Path, d90_row: dict) -> None:
    import subprocess

    from planner.export.export import export_plan
    from tests.conftest import require_tool
    from tests.test_export_pdf import pdf_pages

    summary = export_plan(copy, ct, out, kinds=["pdf", "csv"])
    assert not any("verification" in w for w in summary.warnings)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["formalism"] == "1d"
    target = copy.structure(copy.prescription.structure_id).name
    # The copy's own dose is the post-plan dose the verification compared.
    assert metrics["targets"][target]["d90_gy"] == pytest.approx(d90_row["postop"], rel=1e-6)
    v = metrics["verification"]
    assert v["seeds"]["matched"] == v["seeds"]["detected"] == len(copy.seeds)
    pages = pdf_pages(out / "plan_summary.pdf")
    text = " ".join(" ".join(pages).split())
    assert "No post-operative verification is recorded" not in text
    assert "Post-operative verification" in text and "1D point-source formalism" in text
    planned, postop = f"{d90_row['planned']:.1f}", f"{d90_row['postop']:.1f}"
    assert re.search(rf"{target} D90 Gy {planned} {postop} -", text), text[-3000:]
    assert f"{len(copy.seeds)} of {len(copy.seeds)} planned seeds matched" in text
    # Two pictures more than a plan's report (DVH and three isodose planes): both DVHs, and
    # the seeds planned vs implanted.
    images = subprocess.run(
        [require_tool("pdfimages", "poppler-utils"), "-list", str(out / "plan_summary.pdf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kinds = [line.split()[2] for line in images.splitlines()[2:] if line.strip()]
    assert kinds.count("image") == 1 + 3 + 2


def test_seeds_after_a_needle_miss() -> None:
    """The miss geometry shared by the demo's post-op CT and the synthetic cohort: the lateral
    offset goes from the entry's to the tip's along the needle, the depth error along it."""
    from planner.demo.postop import NeedleMiss, seeds_after_miss

    entry, tip = np.array([0.0, 60.0, 0.0]), np.array([0.0, 0.0, 0.0])  # needle along −y
    pts = np.array([[0.0, 60.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 0.0], [0.0, -6.0, 0.0]])
    none = NeedleMiss(np.zeros(3), np.zeros(3), 0.0)
    assert np.array_equal(seeds_after_miss(pts, entry, tip, none), pts)
    miss = NeedleMiss(np.array([2.0, 0.0, 0.0]), np.array([0.0, 0.0, 4.0]), 3.0)
    got = seeds_after_miss(pts, entry, tip, miss)
    assert np.allclose(got[0], [2.0, 57.0, 0.0])  # entry: its offset, 3 mm deeper (−y)
    assert np.allclose(got[1], [1.0, 27.0, 2.0])  # half way: half of each
    assert np.allclose(got[2], [0.0, -3.0, 4.0])  # tip: the tip's offset
    assert np.allclose(got[3], [0.0, -9.0, 4.0])  # beyond the tip: as the tip
    assert np.array_equal(pts[1], [0.0, 30.0, 0.0])  # the input is not changed
