"""Post-implant verification end to end (issue 13): a plan on the demo phantom, a post-op CT of
its seeds moved a little and of the patient shifted rigidly; D90 from the detected seeds within
2 % of D90 from the true implanted seeds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the conventional name)

from planner.demo.phantom import generate_phantom
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.dosimetry import compute_plan_dosimetry
from planner.plan.model import Plan, Prescription, Seed, SourceSpec, Structure
from planner.postop.register import _image
from planner.postop.synthetic import PostopScene, needle_implant_scene, render_postop_ct
from planner.postop.verify import verify_plan


@pytest.fixture(scope="module")
def case():
    ph = generate_phantom(n_slices=40)
    info = PatientInfo(
        patient_id="VERIFY-1", patient_name="TEST^VERIFY", frame_of_reference_uid="1.2.3"
    )
    ct = CTVolume(ph.hu, ph.geometry, info)
    g = ph.geometry
    gtv = Structure.from_mask("st-gtv", "GTV", "target", ph.masks["GTV"], g)
    cord = Structure.from_mask("st-cord", "SpinalCord", "oar", ph.masks["SpinalCord"], g)
    scene = needle_implant_scene(
        ph.masks["GTV"],
        g,
        rng=11,
        clusters=False,
        screw=False,
        cement=False,
        needle_spacing_mm=9.0,
        seed_spacing_mm=8.0,
        avoid_lung=ph.hu,
    )
    seeds = tuple(
        Seed(id=f"sd-{i:03d}", position_mm=tuple(p), axis=tuple(a))
        for i, (p, a) in enumerate(zip(scene.seeds_mm, scene.axes, strict=True))
    )
    plan = Plan.new(
        ct,
        structures=(gtv, cord),
        prescription=Prescription(dose_gy=110.0, structure_id="st-gtv"),
        source=SourceSpec(
            model_id="6711",
            strength_u=0.8,
            calibration_date=dt.date(2026, 1, 1),
            implant_date=dt.date(2026, 1, 1),
        ),
        seeds=seeds,
        name="verify test",
    )
    # What was implanted: every seed displaced ~1 mm; the patient then moved rigidly.
    rng = np.random.default_rng(5)
    implanted = scene.seeds_mm + rng.normal(0.0, 0.8, scene.seeds_mm.shape)
    centre = g.zyx_to_world(np.argwhere(ph.masks["GTV"]).mean(axis=0))
    shift = sitk.Euler3DTransform()  # maps post-op points to planning points
    shift.SetCenter(tuple(float(v) for v in centre))
    shift.SetRotation(*np.radians([1.0, -0.8, 1.5]))
    shift.SetTranslation((2.0, -1.5, 3.0))
    moved = sitk.Resample(_image(ct), _image(ct), shift, sitk.sitkLinear, -1024.0)
    base = CTVolume(sitk.GetArrayFromImage(moved).astype(np.int16), g, info)
    inverse = shift.GetInverse()
    in_postop = np.array([inverse.TransformPoint(tuple(p)) for p in implanted])
    post = render_postop_ct(base, PostopScene(in_postop, scene.axes), rng=9)
    return plan, ct, post, implanted


def test_verification_recovers_the_implant(case) -> None:
    plan, ct, post, implanted = case
    v = verify_plan(plan, ct, post)
    n = len(plan.seeds)
    assert len(v.match.pairs) == n and not v.match.unmatched_implanted
    # Detected seeds, mapped into the planning frame, land on the true implanted positions.
    d = np.linalg.norm(v.implanted_mm[:, None] - implanted[None], axis=-1).min(axis=1)
    assert np.sqrt(np.mean(d**2)) < 0.7
    # Post-op D90 from the detected seeds within 2 % of D90 from the true seeds (same 1D rule).
    truth_plan = plan.evolve(
        seeds=tuple(Seed(id=f"sd-t{i}", position_mm=tuple(p)) for i, p in enumerate(implanted))
    )
    truth = compute_plan_dosimetry(truth_plan, ct, formalism="1d")
    d90_truth = truth.metrics["GTV"].d90_gy
    d90_found = v.row("GTV", "d90_gy").postop
    assert d90_found == pytest.approx(d90_truth, rel=0.02)
    # The comparison holds both columns and is labelled with its formalism.
    row = v.row("GTV", "d90_gy")
    assert row.planned is not None and row.difference is not None and row.unit == "Gy"
    assert v.postop.formalism == "1d" and v.planned.formalism == "2d"
    assert "seeds matched" in v.summary()


def test_verify_cli_writes_results(case, tmp_path) -> None:
    """`seedplan verify PLAN POSTOP_CT --out DIR --json`: the planning CT found from the plan."""
    import json
    import subprocess
    import sys

    from planner.dicom.ct_write import write_ct_series
    from planner.imaging.ct_loader import load_ct
    from planner.imaging.image_files import write_image
    from planner.plan.plan_file import save_plan
    from tests.conftest import REPO_ROOT

    plan, ct, post, _ = case
    ct_dir = tmp_path / "ct"
    write_ct_series(ct, ct_dir, uid_entropy=["verify-cli"])
    loaded_ct, _ = load_ct(ct_dir)
    plan_on_disk = Plan.new(
        loaded_ct,
        structures=tuple(
            Structure.from_mask(s.id, s.name, s.role, s.mask, loaded_ct.geometry)
            for s in plan.structures
        ),
        prescription=plan.prescription,
        source=plan.source,
        seeds=plan.seeds,
    )
    plan_path = save_plan(plan_on_disk, tmp_path / "p.seedplan")
    post_path = tmp_path / "postop.nrrd"
    write_image(post.hu, post.geometry, post_path)
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "app",
        "verify",
        str(plan_path),
        str(post_path),
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["detection"]["found"] == len(plan.seeds)
    assert len(doc["matching"]["pairs"]) == len(plan.seeds)
    assert any(r["metric"] == "d90_gy" and r["structure"] == "GTV" for r in doc["comparison"])
    for name in (
        "detected_seeds.csv",
        "matching.csv",
        "comparison.csv",
        "verification.json",
        "postop.seedplan",
    ):
        assert (out / name).is_file()
    again = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
