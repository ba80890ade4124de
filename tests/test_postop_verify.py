"""Post-implant verification end to end (issue 13): a plan on the demo phantom, a post-op CT of
its seeds moved a little and of the patient shifted rigidly; D90 from the detected seeds within
2 % of D90 from the true implanted seeds. The CLI's JSON says how the seeds were searched
(``thick_slices``, ``slice_thickness_mm``), and ``--store-registration`` attaches the
registration to an approved plan (a verification record) and the next run reuses it."""

from __future__ import annotations

import numpy as np
import pytest

from planner.plan.dosimetry import compute_plan_dosimetry
from planner.plan.model import Plan, Seed, Structure
from planner.postop.verify import verify_plan
from tests.postop_builders import build_postop_case

#: The CTs cut in-plane to the GTV's box + 30 mm: the same scene, a verify 3-4x faster.
CROP_MM = 30.0


@pytest.fixture(scope="module")
def case():
    c = build_postop_case(crop_mm=CROP_MM)
    return c.plan, c.ct, c.postop, c.implanted_mm


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


def test_verify_cli_writes_results(case, tmp_path, capsys) -> None:
    """`seedplan verify PLAN POSTOP_CT --out DIR --json`: the planning CT found from the plan."""
    import json

    from app.cli import main

    plan = case[0]
    plan_path, post_path = _plan_on_disk(case, tmp_path)
    out = tmp_path / "results"
    argv = [
        "verify",
        str(plan_path),
        str(post_path),
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["detection"]["found"] == len(plan.seeds)
    # 2.5 mm slices: the HU threshold search, said in the JSON, the CSV and on stderr.
    det = doc["detection"]
    assert det["thick_slices"] is False and det["slice_thickness_mm"] == 2.5
    assert det["threshold_hu"] > 250
    head = (out / "detected_seeds.csv").read_text().splitlines()[1]
    assert head.startswith("# ") and "threshold" in head and "slices 2.5 mm" in head
    assert "detection: " in captured.err and "slices 2.5 mm" in captured.err
    assert captured.err.count("seeds found") == 1, captured.err  # the count said once
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
    assert main(argv) == 2  # the results folder exists
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(("slice_mm", "thick"), [(5.0, True), (1.25, False)])
def test_detection_json_says_whether_thick_slices_were_searched_by_shape(
    slice_mm: float, thick: bool
) -> None:
    """``detection_dict`` (verify's JSON "detection") on a synthetic scan of seeds in soft
    tissue: ``thick_slices`` true on 5 mm slices (searched by shape; ``threshold_hu`` is only
    the lowest HU looked at), false on 1.25 mm slices; ``slice_thickness_mm`` the scan's."""
    import json

    from dose.geometry import GridGeometry
    from planner.imaging.volume import CTVolume
    from planner.postop.detection.detect import detect_seeds
    from planner.postop.synthetic import PostopScene, render_postop_ct
    from planner.postop.verify import detection_dict

    nz = round(60.0 / slice_mm)
    g = GridGeometry((nz, 80, 80), np.array([-32.0, -32.0, -30.0]), np.array([0.8, 0.8, slice_mm]))
    rng = np.random.default_rng(4)
    base = CTVolume(np.rint(rng.normal(40.0, 10.0, g.shape_zyx)).astype(np.int16), g)
    seeds = np.array(
        [[x, y, z] for x in (-12.0, 0.0, 12.0) for y in (-8.0, 8.0) for z in (-8.0, 8.0)]
    )
    axes = np.tile([0.0, 0.0, 1.0], (len(seeds), 1))
    post = render_postop_ct(base, PostopScene(seeds, axes), rng=2)
    result = detect_seeds(post, expected=len(seeds))
    doc = detection_dict(result, post)
    json.dumps(doc)  # plain JSON values
    assert doc["thick_slices"] is thick and result.thick_slices is thick
    assert doc["slice_thickness_mm"] == slice_mm
    assert doc["threshold_hu"] == result.threshold_hu
    assert doc["found"] == len(result.seeds) >= len(seeds) - 1, result.summary()
    assert doc["expected"] == len(seeds)
    assert ("thick-slice shape search" in result.summary()) is thick


def test_verify_cli_stores_the_registration_in_an_approved_plan(case, tmp_path, capsys) -> None:
    """`seedplan verify APPROVED_PLAN POSTOP --store-registration`: the registration is attached
    to the approved plan (who and when recorded); the plan stays approved and its plan.json is
    byte for byte the same outside the record, its masks too; the next verification reuses
    it, and storing it again rewrites nothing."""
    import json

    from app.cli import main
    from planner.plan.document import PlanDocument, current_user
    from planner.plan.plan_file import approved_content_sha256, load_plan, save_plan
    from tests.test_plan_file import _members
    from tests.test_plan_registration import _registration_block_nulled

    plan_path, post_path = _plan_on_disk(case, tmp_path)
    doc = PlanDocument(load_plan(plan_path).plan)
    doc.approve(user="physicist")
    approved = doc.plan
    save_plan(approved, plan_path, force=True)
    before = _members(plan_path.read_bytes())
    argv = ["verify", str(plan_path), str(post_path), "--store-registration", "--json"]
    assert main([*argv, "--out", str(tmp_path / "r1")]) == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out)
    assert "registration stored in" in captured.err and "approved revision 1" in captured.err
    stored = load_plan(plan_path).plan
    assert stored.is_approved and stored.approved_by == "physicist"
    assert stored.approved_utc == approved.approved_utc and stored.revision == approved.revision
    rec = stored.registration
    assert rec is not None and rec.matches(case[2]) and rec.registered_by == current_user()
    assert rec.registered_utc and first["registration"]["stored"]["registered_by"] == current_user()
    np.testing.assert_allclose(
        rec.matrix, np.array(first["registration"]["stored"]["matrix_lps_mm"])
    )
    after = _members(plan_path.read_bytes())
    assert _registration_block_nulled(after["plan.json"]) == before["plan.json"]
    assert {n: after[n] for n in after if n.startswith("masks/")} == {
        n: before[n] for n in before if n.startswith("masks/")
    }
    assert approved_content_sha256(stored) == approved_content_sha256(approved)
    # The next verification uses the stored registration (no registration run), stores nothing.
    mtime = plan_path.stat().st_mtime_ns
    assert main([*argv, "--out", str(tmp_path / "r2")]) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out)
    assert "using the registration stored in the plan" in captured.err
    assert "already holds this registration" in captured.err
    assert second["registration"]["initialised_by"] == "stored in the plan"
    assert second["registration"]["stored"] == first["registration"]["stored"]
    assert plan_path.stat().st_mtime_ns == mtime and load_plan(plan_path).plan.registration == rec


def _plan_on_disk(case, tmp_path):
    """(plan file on a DICOM copy of the planning CT, post-op CT file) for the CLI."""
    from planner.dicom.ct_write import write_ct_series
    from planner.imaging.ct_loader import load_ct
    from planner.imaging.image_files import write_image
    from planner.plan.plan_file import save_plan

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
    return plan_path, post_path


def test_comparison_starts_with_the_reference_structure(case) -> None:
    """Reading order: the prescription's reference structure, the other targets, the organs
    at risk with the cord first, the rest — not the plan's order (GTV first)."""
    from planner.plan.model import Prescription
    from planner.postop.verify import ComparisonRow, comparison_order, sort_comparison

    plan = case[0]
    gtv, cord = plan.structures
    mask = gtv.mask

    def s(id_: str, name: str, role: str) -> Structure:
        return Structure.from_mask(id_, name, role, mask, gtv.geometry)

    plan2 = plan.evolve(
        structures=(
            s("st-body", "Body", "other"),
            s("st-eso", "Esophagus", "oar"),
            gtv,
            cord,
            s("st-ptv", "PTV_eval", "target"),
        ),
        prescription=Prescription(dose_gy=110.0, structure_id="st-ptv"),
    )
    order = ["PTV_eval", "GTV", "SpinalCord", "Esophagus", "Body"]
    assert comparison_order(plan2) == order
    rows = [
        ComparisonRow(name, metric, "Gy", 1.0, 1.0)
        for name in ("GTV", "Esophagus", "Seeds", "SpinalCord", "PTV_eval", "Body")
        for metric in ("d90_gy", "d100_gy")
    ]
    got = sort_comparison(rows, plan2)
    assert list(dict.fromkeys(r.structure for r in got)) == [*order, "Seeds"]
    assert [r.metric for r in got[:2]] == ["d90_gy", "d100_gy"]  # kept within a structure
    # The plan's own order puts the reference (GTV here) first as well.
    assert comparison_order(plan) == ["GTV", "SpinalCord"]


def test_verify_cli_exclusion_region_drops_the_seed_it_covers(case, tmp_path, capsys) -> None:
    """``verify --exclude MASK``: a region of the post-op CT never searched — the seed under it
    is not detected and its planned seed is left unmatched; a mask off the post-op CT's grid is
    refused in one line naming it (exit 2)."""
    from dataclasses import replace

    from app.cli import main
    from planner.imaging.image_files import write_image

    _plan, _ct, post, _ = case
    plan_path, post_path = _plan_on_disk(case, tmp_path)
    full = _run_verify_json(main, capsys, plan_path, post_path, tmp_path / "all")
    # Back into the post-op frame: x_plan = R x_postop + t.
    rot = np.array(full["registration"]["rotation"])
    shift = np.array(full["registration"]["translation_mm"])
    seed_plan = np.array(full["implanted_seeds"][0]["position_mm"])
    seed_postop = rot.T @ (seed_plan - shift)
    kji = np.rint(post.geometry.world_to_zyx(seed_postop)).astype(int)
    mask = np.zeros(post.geometry.shape_zyx, dtype=np.uint8)
    mask[kji[0] - 2 : kji[0] + 3, kji[1] - 5 : kji[1] + 6, kji[2] - 5 : kji[2] + 6] = 1
    mask_path = write_image(mask, post.geometry, tmp_path / "exclude.nrrd")
    cut = _run_verify_json(
        main, capsys, plan_path, post_path, tmp_path / "cut", "--exclude", str(mask_path)
    )
    assert cut["detection"]["found"] == full["detection"]["found"] - 1
    assert len(cut["matching"]["unmatched_planned"]) == 1
    left = np.array([s["position_mm"] for s in cut["implanted_seeds"]])
    assert np.linalg.norm(left - seed_plan, axis=1).min() > 3.0
    shifted = replace(post.geometry, origin_mm=np.asarray(post.geometry.origin_mm) + 7.0)
    bad = write_image(mask, shifted, tmp_path / "elsewhere.nrrd")
    argv = ["verify", str(plan_path), str(post_path), "--out", str(tmp_path / "bad")]
    assert main([*argv, "--exclude", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "elsewhere.nrrd" in err[0] and "grid" in err[0]


def _run_verify_json(main, capsys, plan_path, post_path, out, *extra: str) -> dict:
    import json

    argv = ["verify", str(plan_path), str(post_path), "--out", str(out), "--json", *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_comparison_order_is_kept_after_a_review_edit(case) -> None:
    """A nudge in review (:meth:`PostopReview.reverify`) gives the same reading order as the
    first verification: the reference structure first, the seed counts last."""
    from planner.postop.edits import PostopReview

    plan, ct, post, _ = case
    plan = plan.evolve(structures=plan.structures[::-1])  # the cord first in plan order
    v = verify_plan(plan, ct, post)
    review = PostopReview(v)
    review.nudge((0.5, 0.0, 0.0))
    after = review.reverify(plan, ct)

    def structures(rows) -> list[str]:
        return list(dict.fromkeys(r.structure for r in rows))

    assert structures(after.comparison) == structures(v.comparison)
    assert structures(v.comparison)[0] == plan.structure(plan.prescription.structure_id).name


def test_postop_summary_says_the_seed_count_once(case) -> None:
    """The post-op window's text (``Verification.summary_lines``): the detection's line and the
    verification's said "N seeds found" twice; now once, every other piece kept (clusters
    split, metal excluded, the count check, planned, matched and unmatched, the formalism).
    After a review edit changed the count, the reviewed count is said as well."""
    from dataclasses import replace

    plan, ct, post, _ = case
    v = verify_plan(plan, ct, post)
    n = len(plan.seeds)
    text = "\n".join(v.summary_lines())
    assert text.count("seeds found") == 1, text
    assert f"{len(v.detection.seeds)} seeds found" in text
    clusters, metal = v.detection.clusters_split, len(v.detection.metal)
    for piece in (
        f"{clusters} cluster{'' if clusters == 1 else 's'} split",
        f"{metal} non-seed metal object{'' if metal == 1 else 's'} excluded",
        f"matches the {n} expected",
        f"{n} planned",
        "seeds matched within",
        "implanted unmatched",
        "inside the target",
        "post-op dose 1D formalism",
    ):
        assert piece in text, (piece, text)
    assert "seeds found" in v.summary()  # alone (the CLI's JSON) it still says the count
    reviewed = replace(v, implanted_mm=v.implanted_mm[:-1])
    text = "\n".join(reviewed.summary_lines())
    assert text.count("seeds found") == 1 and f"{n - 1} seeds after review ({n} planned)" in text
