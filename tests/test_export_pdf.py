"""The plan summary PDF and the loading sheet: every page's identity block, the body's
checklist (reference/dicom-and-integrity.md §1.2 E), selectable text, rendering; CSV and JSON."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime

import numpy as np
import pytest

from planner.export.export import export_plan
from planner.export.plan_dose import export_dosimetry
from planner.files.csv_io import read_needles_csv, read_seeds_csv
from tests.conftest import require_tool
from tests.test_export_support import demo_export_plan

WHEN = datetime(2026, 12, 1, 20, 0, 0).astimezone()


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    plan, ct = demo_export_plan()
    d = export_dosimetry(plan, ct)
    out = tmp_path_factory.mktemp("pdf") / "out"
    export_plan(plan, ct, out, kinds=["pdf", "csv"], dosimetry=d, now=WHEN)
    return plan, ct, d, out


def pdf_pages(path) -> list[str]:
    tool = require_tool("pdftotext", "poppler-utils")
    text = subprocess.run(
        [tool, "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [p for p in text.split("\f") if p.strip()]


def test_every_page_carries_identity_status_and_page_x_of_y(draft):
    plan, *_, out = draft
    for name in ("plan_summary.pdf", "loading_sheet.pdf"):
        pages = pdf_pages(out / name)
        assert pages
        for i, page in enumerate(pages, start=1):
            flat = " ".join(page.split())
            assert "SEEDPLAN, DEMO" in flat and "ID DEMO-0001" in flat
            assert f"Plan {plan.name} revision {plan.revision}" in flat
            assert "DRAFT — NOT APPROVED FOR TREATMENT" in flat
            assert f"page {i} of {len(pages)}" in flat
            assert "Printed 2026-12-01" in flat
            assert re.search(r"SeedPlan [0-9.]+", flat)


def test_body_checklist(draft):
    plan, _ct, d, out = draft
    text = " ".join(" ".join(pdf_pages(out / "plan_summary.pdf")).split())
    src = plan.source
    for needle in (
        "D90 of GTV ≥ 110 Gy",
        "I-125",
        "6711",
        f"{src.strength_u:.4f} U = {src.strength_u / 1.270:.4f} mCi",
        "factor 1.270 U/mCi",
        "2026-11-24",
        "2026-12-01",
        "59.40 d",
        f"Number of seeds {len(plan.seeds)}",
        "TG-43U1, 2D line-source",
        "dose to water in water",
        str(d.model_sha256),
        "Independent check",
        "Radiation oncologist",
        "Medical physicist",
        "Robustness was not computed",
        "No post-operative verification",
        "Dose-volume histogram",
        "BED",
        "(LPS)",
    ):
        assert needle in text, needle
    # metrics and goals, with their values and results
    gtv = d.metrics["GTV"]
    assert f"{gtv.d90_gy:.1f} Gy" in text
    for g in d.goal_results:
        assert g.label in text and g.status.upper() in text
    # every seed's coordinates
    for s in plan.seeds[:5]:
        assert f"{s.position_mm[1]:.1f}" in text
    total = sum(s.strength_u or src.strength_u for s in plan.seeds)
    assert f"{total:.3f} U at calibration" in text


def test_approved_plan_has_no_draft_banner(tmp_path):
    plan, ct = demo_export_plan()
    approved = plan.evolve(
        status="approved", approved_by="Dr Physicist", approved_utc="2026-12-01T19:30:00Z"
    )
    export_plan(approved, ct, tmp_path / "a", kinds=["pdf"], now=WHEN)
    pages = pdf_pages(tmp_path / "a" / "plan_summary.pdf")
    joined = " ".join(pages)
    assert "NOT APPROVED" not in joined and "Status: APPROVED" in joined
    assert "Dr Physicist" in joined


def test_pages_render(draft, tmp_path):
    *_, out = draft
    tool = require_tool("pdftoppm", "poppler-utils")
    subprocess.run(
        [tool, "-png", "-r", "40", str(out / "plan_summary.pdf"), str(tmp_path / "p")], check=True
    )
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == len(pdf_pages(out / "plan_summary.pdf")) >= 3


def test_seed_and_needle_csv_round_trip(draft):
    plan, _ct, _d, out = draft
    rows = read_seeds_csv(out / "seeds.csv")
    got = np.asarray(rows.positions_mm)
    want = np.array([s.position_mm for s in plan.seeds])
    assert np.max(np.abs(got - want)) <= 0.01
    assert np.allclose(np.asarray(rows.axes), [s.axis for s in plan.seeds], atol=1e-5)
    needles = read_needles_csv(out / "needles.csv")
    dirs = needles.directions()
    assert len(dirs) == len(plan.needles)
    for n in plan.needles:
        v = np.subtract(n.tip_mm, n.entry_mm)
        assert np.allclose(dirs[n.label], v / np.linalg.norm(v), atol=1e-4)


def test_loading_sheet_csv_matches_seed_positions(draft):
    """Rebuild each seed centre from the loading sequence: tip − (offset + L/2)·u."""
    plan, _ct, _d, out = draft
    lines = [ln for ln in (out / "loading_sheet.csv").read_text().splitlines() if ln[:1] != "#"]
    header = lines[0].split(",")
    items = [dict(zip(header, ln.split(","), strict=True)) for ln in lines[1:]]
    by_label = {n.label: n for n in plan.needles}
    seeds = {i + 1: s for i, s in enumerate(plan.seeds)}
    n_seen = 0
    for it in items:
        if it["kind"] != "seed":
            assert float(it["length_mm"]) > 0
            continue
        n = by_label[it["needle"]]
        u = np.subtract(n.entry_mm, n.tip_mm)
        u = u / np.linalg.norm(u)
        centre = np.asarray(n.tip_mm) + (float(it["from_tip_mm"]) + float(it["length_mm"]) / 2) * u
        assert np.linalg.norm(centre - seeds[int(it["seed"])].position_mm) < 0.02
        n_seen += 1
    assert n_seen == len(plan.seeds)


def test_metrics_json(draft):
    plan, _ct, d, out = draft
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["plan"]["plan_uid"] == plan.plan_uid
    assert doc["plan"]["revision"] == plan.revision
    assert doc["dvh"]["GTV"]["volume_cm3"] == pytest.approx(d.dvhs["GTV"].volume_cm3)
    checks = doc["independent_check"]
    assert {c["point"] for c in checks} >= {"GTV centroid", "SpinalCord hottest voxel"}
    for c in checks:
        assert abs(c["difference_percent"]) < 0.5
        assert c["reference_engine_gy"] > 0
