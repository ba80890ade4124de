"""Where the seeds lie after registration (issue 13): inside the target (which structure),
outside it (how far), migrated far from every planned needle track — on a small plan, then end
to end on a synthetic post-op CT with one seed moved far away; ``seedplan verify`` lists them,
stores the registration in the plan copy (``seedplan info`` shows it), reuses a stored one, and
gives the three-column comparison with ``--intraop``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from planner.plan.model import Plan, Seed, Structure
from planner.postop.locations import locate_seeds
from planner.postop.verify import SEED_COUNT_STRUCTURE, verify_plan
from tests.plan_builders import full_plan
from tests.postop_builders import PostopCase, build_postop_case

#: The seed carried away, and how far (planning frame, LPS mm: 35 mm anterior).
MOVED = 5
MOVED_BY_MM = (0.0, -35.0, 0.0)
#: The CTs cut in-plane to the GTV's box + 30 mm: the same scene, 4 s instead of 15 s a verify.
CROP_MM = 30.0


def test_locate_seeds_inside_outside_and_migrated() -> None:
    plan = full_plan()  # PTV (target), needle nd-1 from (1, -30, -20) to (2, 5, -21)
    g = plan.geometry
    ptv = plan.structure_named("PTV")
    kji = np.argwhere(ptv.mask)
    inside = g.zyx_to_world(kji[len(kji) // 2])
    corner = g.zyx_to_world(kji.min(axis=0).astype(float))  # the PTV is a box: in it
    # Two voxel columns beyond the PTV's low-x face (23 mm from the needle), and a point 35 mm
    # beyond the needle's tip.
    beside = corner - np.array([2.0 * g.spacing_mm[0], 0.0, 0.0])
    far = np.array([2.0, 40.0, -21.0])
    loc = locate_seeds(plan, [inside, beside, far], migration_mm=10.0)
    a, b, c = loc.seeds
    assert (a.location, a.structure, a.distance_to_target_mm) == ("inside", "PTV", 0.0)
    assert (b.location, b.structure) == ("migrated", "PTV")
    assert b.distance_to_target_mm == pytest.approx(2.0 * g.spacing_mm[0], abs=1e-6)
    assert b.distance_to_track_mm > 20.0
    assert c.location == "migrated" and c.distance_to_track_mm == pytest.approx(35.0, abs=0.1)
    assert loc.counts() == {"inside": 1, "outside": 0, "migrated": 2, "unknown": 0}
    # With a planned free seed 3 mm from it (its own track), the seed beside the PTV is only
    # outside it.
    tracked = plan.evolve(
        seeds=(*plan.seeds, Seed("sd-9", tuple(beside + np.array([0.0, 3.0, 0.0]))))
    )
    assert locate_seeds(tracked, [beside]).seeds[0].location == "outside"
    assert "1 inside the target" in loc.summary() and "> 10 mm" in loc.summary()
    # The same seed 35 mm from the track is not migrated with a 40 mm migration distance.
    assert locate_seeds(plan, [far], migration_mm=40.0).seeds[0].location == "outside"
    # Without a target: nothing is inside; the location is unknown unless migrated.
    no_target = plan.evolve(
        structures=tuple(s.with_fields(role="other") for s in plan.structures),
        prescription=None,
        goals=(),
    )
    near = np.array([1.5, -5.0, -20.5])
    assert locate_seeds(no_target, [inside, near]).seeds[1].location == "unknown"
    with pytest.raises(InputError):
        locate_seeds(plan, [[np.nan, 0, 0]])
    with pytest.raises(InputError):
        locate_seeds(plan, [inside], migration_mm=0.0)


@pytest.fixture(scope="module")
def moved_case() -> PostopCase:
    return build_postop_case(moved_mm={MOVED: MOVED_BY_MM}, crop_mm=CROP_MM)


def test_a_seed_moved_far_away_is_reported_migrated(moved_case: PostopCase) -> None:
    case = moved_case
    v = verify_plan(case.plan, case.ct, case.postop)
    assert v.locations is not None and len(v.locations) == len(v.implanted_mm)
    migrated = v.locations.of("migrated")
    assert len(migrated) == 1
    (m,) = migrated
    assert np.linalg.norm(np.subtract(m.position_mm, case.implanted_mm[MOVED])) < 1.5
    assert m.distance_to_track_mm > 25.0 and m.distance_to_target_mm > 20.0
    assert m.structure == "GTV"
    # Every other seed is inside the GTV or outside it within its 8 mm loading margin.
    for s in v.locations.seeds:
        if s is not m:
            assert s.location in ("inside", "outside") and s.distance_to_target_mm < 10.0
            assert s.distance_to_track_mm < 5.0
    # Summary line, warnings and the comparison's counts.
    assert "1 migrated" in v.summary()
    assert any("migrated" in w for w in v.warnings)
    row = v.row(SEED_COUNT_STRUCTURE, "seeds_migrated")
    assert (row.planned, row.postop, row.unit) == (0.0, 1.0, "seeds")
    total = v.row(SEED_COUNT_STRUCTURE, "seeds_total")
    assert total.planned == len(case.plan.seeds) == total.postop
    inside = v.row(SEED_COUNT_STRUCTURE, "seeds_inside")
    assert inside.planned == v.planned_locations.counts()["inside"]
    # The registration is recorded in the implanted plan, for this post-op CT.
    rec = v.implanted_plan.registration
    assert rec is not None and rec.matches(case.postop) and not rec.nudged
    assert rec.method == "mattes-mi-bone" and rec.metric_value == v.registration.metric_value
    np.testing.assert_allclose(rec.matrix[:3, :3], v.registration.transform.matrix)


def test_verify_cli_lists_locations_stores_registration_and_intraop(
    moved_case: PostopCase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main
    from app.commands.plan_info import run_plan_info
    from planner.dicom.ct_write import write_ct_series
    from planner.imaging.ct_loader import load_ct
    from planner.imaging.image_files import write_image
    from planner.plan.plan_file import load_plan, save_plan

    case = moved_case
    ct_dir = tmp_path / "ct"
    write_ct_series(case.ct, ct_dir, uid_entropy=["locations-cli"])
    loaded_ct, _ = load_ct(ct_dir)
    plan = Plan.new(
        loaded_ct,
        structures=tuple(
            Structure.from_mask(s.id, s.name, s.role, s.mask, loaded_ct.geometry)
            for s in case.plan.structures
        ),
        prescription=case.plan.prescription,
        source=case.plan.source,
        seeds=case.plan.seeds,
    )
    plan_path = save_plan(plan, tmp_path / "p.seedplan")
    # The intra-op re-plan: the same plan with its first seed left out.
    intraop_path = save_plan(
        plan.evolve(seeds=plan.seeds[1:], revision=2), tmp_path / "p-intraop.seedplan"
    )
    post_path = tmp_path / "postop.nrrd"
    write_image(case.postop.hu, case.postop.geometry, post_path)
    out = tmp_path / "results"
    argv = ["verify", str(plan_path), str(post_path), "--out", str(out), "--json"]
    assert main([*argv, "--intraop", str(intraop_path)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "1 migrated" in doc["summary"] and "1 migrated" in captured.err
    counts = doc["seed_locations"]["counts"]
    assert counts["migrated"] == 1 and sum(counts.values()) == doc["detection"]["found"]
    assert doc["seed_locations"]["migration_mm"] == 10.0
    # Three columns: pre-plan, intra-op, post-op.
    rows = {(r["structure"], r["metric"]): r for r in doc["comparison"]}
    total = rows[(SEED_COUNT_STRUCTURE, "seeds_total")]
    n = len(plan.seeds)
    assert (total["planned"], total["intraop"], total["postop"]) == (n, n - 1, n)
    d90 = rows[("GTV", "d90_gy")]
    assert d90["intraop"] is not None and d90["intraop"] < d90["planned"]
    assert doc["intraop_metrics"]["targets"]["GTV"]["d90_gy"] == pytest.approx(d90["intraop"])
    with open(out / "comparison.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == [
        "structure", "metric", "unit", "planned", "intraop", "postop", "difference"
    ]  # fmt: skip
    seeds_row = next(r for r in table if r["metric"] == "seeds_migrated")
    assert (seeds_row["planned"], seeds_row["postop"]) == ("0.000", "1.000")
    # detected_seeds.csv: one row per detected seed with its location.
    with open(out / "detected_seeds.csv", newline="") as fh:
        seeds = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert len(seeds) == doc["detection"]["found"]
    assert [r["location"] for r in seeds].count("migrated") == 1
    far = next(r for r in seeds if r["location"] == "migrated")
    assert far["structure"] == "GTV" and float(far["track_distance_mm"]) > 25.0
    # The plan copy carries the registration; `seedplan info --json` shows it.
    stored = load_plan(out / "postop.seedplan").plan.registration
    assert stored is not None and not stored.nudged
    assert doc["registration"]["stored"]["matrix_lps_mm"] == [list(r) for r in stored.matrix_lps_mm]
    assert run_plan_info(out / "postop.seedplan", as_json=True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["registration"]["method"] == "mattes-mi-bone"
    assert info["registration"]["postop_geometry_sha256"] == stored.postop_geometry_sha256
    np.testing.assert_allclose(info["registration"]["matrix_lps_mm"], stored.matrix)
    # … and the verification: the same comparison and seed locations as verification.json.
    ver = info["verification"]
    assert ver["comparison"] == [
        {k: v for k, v in r.items() if k != "difference"} for r in doc["comparison"]
    ]
    assert len(ver["implanted_mm"]) == doc["detection"]["found"] and "dvhs" not in ver
    assert run_plan_info(out / "postop.seedplan", as_json=False) == 0
    text = capsys.readouterr().out
    assert "Post-op registration: mattes-mi-bone" in text
    assert "Post-op verification: of revision 1" in text and "1D formalism" in text
    # A plan that stores a registration of this post-op CT: used as it is (not re-registered).
    nudged = stored.__class__(
        **{**stored.__dict__, "nudged": True, "matrix_lps_mm": _shifted(stored.matrix, 1.0)}
    )
    with_reg = save_plan(plan.evolve(registration=nudged), tmp_path / "p-reg.seedplan")
    out2 = tmp_path / "results2"
    assert main(["verify", str(with_reg), str(post_path), "--out", str(out2), "--json"]) == 0
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert "using the registration stored in the plan" in captured.err
    assert again["registration"]["initialised_by"] == "stored in the plan"
    np.testing.assert_allclose(again["registration"]["translation_mm"], nudged.translation_mm)
    assert again["registration"]["stored"]["nudged"] is True
    assert any("stored in the plan" in w and "corrected by hand" in w for w in again["warnings"])
    # --reregister: the automatic registration again, stored (not nudged) in the plan copy.
    out3 = tmp_path / "results3"
    argv3 = ["verify", str(with_reg), str(post_path), "--out", str(out3), "--reregister"]
    assert main([*argv3, "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["registration"]["initialised_by"] != "stored in the plan"
    assert fresh["registration"]["stored"]["nudged"] is False
    np.testing.assert_allclose(
        fresh["registration"]["stored"]["matrix_lps_mm"], stored.matrix, atol=0.05
    )
    # An intra-op plan on another CT is refused with one line naming it.
    other = save_plan(full_plan(), tmp_path / "other.seedplan")  # another patient and grid
    code = main([*argv, "--force", "--intraop", str(other)])
    err = capsys.readouterr().err
    assert code == 2 and str(other) in err and len(err.strip().splitlines()) == 1


def _shifted(matrix: np.ndarray, dx_mm: float) -> tuple[tuple[float, ...], ...]:
    m = np.array(matrix, dtype=np.float64)
    m[0, 3] += dx_mm
    return tuple(tuple(float(v) for v in row) for row in m)
