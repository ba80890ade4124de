"""The post-implant verification a plan stores for the report (issue 13; format 2.3): the
record's checks, its plan.json form with strict reading, the 2.2 → 2.3 migration, its place
among the verification records of an approved plan, its DVH samples, and the report's table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dose.errors import InputError
from planner.export.plan_dose import export_formalism
from planner.export.report_verification import (
    ABSENT,
    comparison_table_rows,
    verification_section,
)
from planner.plan.document import PlanDocument
from planner.plan.dvh import structure_dvh
from planner.plan.plan_file import (
    FORMAT_VERSION,
    approved_content_sha256,
    load_plan,
    plan_content_sha256,
    plan_file_bytes,
    save_plan,
)
from planner.plan.verification import (
    DVH_STEP_GY,
    ComparisonRow,
    DVHPair,
    VerificationRecord,
    key_metrics_first,
)
from tests.plan_builders import full_plan, plans_equal
from tests.test_plan_file import _members, _one_line_naming, _rehash, _zip


def _record(plan, **changes) -> VerificationRecord:
    """A record of ``plan``'s two seeds: the first found 1.5 mm off, the second missed, one
    extra seed found far away."""
    fields = {
        "verified_plan_uid": plan.plan_uid,
        "verified_revision": plan.revision,
        "verified_plan_name": "test plan",
        "postop_series_instance_uid": "1.2.3.4",
        "postop_source_path": "/data/postop",
        "slice_thickness_mm": 2.5,
        "verified_utc": "2026-12-03T10:00:00Z",
        "verified_by": "physicist",
        "formalism": "1d",
        "registration": "mattes-mi-bone: translation 4.4 mm, rotation 1.52°",
        "seeds_expected": 2,
        "seeds_detected": 2,
        "clusters_split": 0,
        "metal_excluded": 1,
        "gate_mm": 10.0,
        "planned_seed_ids": tuple(s.id for s in plan.seeds),
        "planned_mm": tuple(s.position_mm for s in plan.seeds),
        "implanted_mm": ((3.0, -5.0, -20.5), (40.0, 40.0, 40.0)),
        "pairs": ((0, 0),),
        "comparison": (
            ComparisonRow("PTV", "dmean_gy", "Gy", 150.0, 140.0),
            ComparisonRow("PTV", "d90_gy", "Gy", 112.0, 104.5),
            ComparisonRow("PTV", "prescription_gy", "Gy", 110.0, 110.0),
            ComparisonRow("SpinalCord", "d0_1cc_gy", "Gy", 40.0, 41.2),
            ComparisonRow("Seeds", "seeds_total", "seeds", 2.0, 2.0),
        ),
        "dvhs": (DVHPair("PTV", 12.5, DVH_STEP_GY, (100.0, 100.0, 40.0, 0.0), (100.0, 60.0, 0.0)),),
        "warnings": ("1 detected seed(s) are more than 10 mm from every planned seed",),
    }
    return VerificationRecord(**{**fields, **changes})


def test_the_record_derives_matching_and_refuses_what_cannot_be() -> None:
    plan = full_plan()
    rec = _record(plan)
    assert rec.seeds_reviewed == 2
    np.testing.assert_allclose(rec.displacement_mm, [[1.5, 0.0, 0.0]])
    assert rec.unmatched_planned == ["sd-2"] and rec.unmatched_implanted == [1]
    assert "1 of 2 planned seeds matched within 10 mm" in rec.matching_summary()
    assert "median displacement 1.5 mm" in rec.matching_summary()
    assert rec.row("PTV", "d90_gy").difference == pytest.approx(-7.5)
    for bad, match in (
        ({"formalism": "3d"}, "formalism"),
        ({"pairs": ((0, 5),)}, "not in the record"),
        ({"pairs": ((0, 0), (1, 0))}, "matched twice"),
        ({"planned_seed_ids": ("sd-1",)}, "one planned seed id"),
        ({"implanted_mm": ((np.nan, 0.0, 0.0), (1.0, 2.0, 3.0))}, "finite"),
        ({"verified_utc": "yesterday"}, "ISO 8601"),
        ({"seeds_detected": -1}, "seeds_detected"),
    ):
        with pytest.raises(ValueError, match=match):
            _record(plan, **bad)
    with pytest.raises(ValueError, match="finite"):
        ComparisonRow("PTV", "d90_gy", "Gy", float("inf"), 1.0)
    with pytest.raises(ValueError, match="not increase"):
        DVHPair("PTV", 1.0, 1.0, (50.0, 60.0), (0.0,))
    with pytest.raises(ValueError, match="VerificationRecord"):
        plan.evolve(verification="a text")  # type: ignore[arg-type]


def test_round_trip_keeps_the_record(tmp_path: Path) -> None:
    plan = full_plan()
    plan = plan.evolve(verification=_record(plan))
    path = save_plan(plan, tmp_path / "postop.seedplan")
    loaded = load_plan(path)
    assert loaded.format_version == "2.3" == f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
    assert loaded.plan.verification == plan.verification
    assert plans_equal(loaded.plan, plan)
    # Without one, the key is stored as null.
    doc = json.loads(_members(plan_file_bytes(full_plan()))["plan.json"])
    assert doc["verification"] is None


def _with(doc: dict, path: list, value: object) -> dict:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["formalism"], "3d", r"verification\.formalism: '3d' is not one of 1d, 2d"),
        (["pairs"], [[0, 9]], r"verification: a matched pair names a seed"),
        (["pairs"], [[0]], r"verification\.pairs\[0\]: expected \[planned index"),
        (["dvhs", 0, "postop_percent"], [10.0, 50.0], r"verification\.dvhs\[0\]: DVH postop"),
        (["dvhs", 0, "planned_percent", 1], 140.0, r"planned_percent\[1\]: 140"),
        (["comparison", 0, "postop"], "a lot", r"comparison\[0\]\.postop: expected a number"),
        (["comparison", 0, "extra"], 1, r"comparison\[0\]: unknown key"),
        (["verified_utc"], "3 Dec", r"verification\.verified_utc"),
        (["has_intraop"], "yes", r"verification\.has_intraop: expected true or false"),
        (["implanted_mm", 0], [1.0, 2.0], r"implanted_mm\[0\]: expected 3 numbers"),
        (["seeds_expected"], 2.5, r"seeds_expected: expected an integer"),
    ],
)
def test_a_damaged_record_is_refused_in_one_line_naming_the_field(
    tmp_path: Path, path: list, value: object, message: str
) -> None:
    plan = full_plan()
    members = _members(plan_file_bytes(plan.evolve(verification=_record(plan))))
    doc = json.loads(members["plan.json"])
    members["plan.json"] = json.dumps(_with(doc, ["verification", *path], value)).encode()
    bad = tmp_path / "bad.seedplan"
    bad.write_bytes(_zip(_rehash(members)))
    with pytest.raises(InputError, match=message) as exc:
        load_plan(bad)
    _one_line_naming(exc, bad)


def test_format_2_2_is_migrated_to_2_3(tmp_path: Path) -> None:
    plan = full_plan()
    members = _members(plan_file_bytes(plan))
    doc = json.loads(members["plan.json"])
    assert doc.pop("verification") is None
    members["plan.json"] = json.dumps(doc).encode()
    old = tmp_path / "v22.seedplan"
    data = _zip(_rehash(members, format_version="2.2"))
    old.write_bytes(data)
    loaded = load_plan(old)
    assert loaded.migrated and loaded.read_version == "2.2" and loaded.format_version == "2.3"
    assert loaded.plan.verification is None and plans_equal(loaded.plan, plan)
    assert old.read_bytes() == data
    # A 2.2 file cannot carry the 2.3 field.
    mixed = tmp_path / "mixed.seedplan"
    mixed.write_bytes(_zip(_rehash(_members(plan_file_bytes(plan)), format_version="2.2")))
    with pytest.raises(InputError, match=r"format 2\.2.*'verification'") as exc:
        load_plan(mixed)
    _one_line_naming(exc, mixed)


def test_the_record_is_a_verification_record_of_an_approved_plan() -> None:
    doc = PlanDocument(full_plan())
    doc.approve(user="dr approver")
    approved = doc.plan
    verified = approved.evolve(verification=_record(approved))
    # The approval's checksum excludes it; the content hash does not.
    assert approved_content_sha256(verified) == approved_content_sha256(approved)
    assert plan_content_sha256(verified) != plan_content_sha256(approved)
    # A new revision does not carry the verification of the one before.
    doc.replace_plan(verified)
    assert doc.new_revision().verification is None


def test_dvh_samples_follow_the_dvh() -> None:
    plan = full_plan()
    g = plan.geometry
    k = np.arange(g.shape_zyx[0], dtype=np.float64)[:, None, None]
    dose = np.broadcast_to(20.0 + 9.0 * k, g.shape_zyx).copy()  # 20 … 191 Gy along z
    sid = plan.structures[0].id
    planned = structure_dvh(plan, sid, dose)
    postop = structure_dvh(plan, sid, 0.8 * dose)
    pair = DVHPair.sample("PTV", planned, postop)
    assert pair.volume_cm3 == pytest.approx(planned.volume_cm3)
    assert pair.planned_percent[0] == pytest.approx(100.0)
    assert pair.planned_percent[-1] == 0.0 and pair.postop_percent[-1] == 0.0
    assert len(pair.postop_percent) < len(pair.planned_percent)  # the lower dose ends sooner
    for d_gy in (30.0, 75.0, 120.0):
        expected = 100.0 * planned.v_gy(d_gy) / planned.volume_cm3
        assert pair.planned_percent[int(d_gy / DVH_STEP_GY)] == pytest.approx(expected, abs=1e-3)
    assert np.all(np.diff(pair.planned_percent) <= 0)


def test_report_table_reads_like_the_gui_and_the_formalism_follows_the_record() -> None:
    plan = full_plan()
    rec = _record(plan)
    rows = comparison_table_rows(rec, plan)
    # Key metrics first within the target's block, the prescription hidden, counts whole.
    assert [r[:2] for r in rows] == [
        ("PTV", "D90"),
        ("PTV", "Dmean"),
        ("SpinalCord", "D0.1 cm³"),
        ("Seeds", "seeds (all)"),
    ]
    # Differences to the decimals of the values beside them, as the GUI's table prints them.
    assert rows[0][3:] == ("112.0", "104.5", "-7.5")
    assert rows[2][3:] == ("40.0", "41.2", "+1.2")
    assert rows[3][3:] == ("2", "2", "0")
    three = comparison_table_rows(
        replace(rec, has_intraop=True, comparison=(replace(rec.comparison[1], intraop=108.0),)),
        plan,
    )
    assert three == [("PTV", "D90", "Gy", "112.0", "108.0", "104.5", "-7.5")]
    assert [r.metric for r in key_metrics_first(rec.comparison)][:2] == ["d90_gy", "dmean_gy"]
    assert verification_section(None, plan).flowables[0].text == ABSENT
    assert export_formalism(plan) == "2d"
    assert export_formalism(plan.evolve(verification=rec)) == "1d"
    assert export_formalism(plan.evolve(verification=replace(rec, formalism="2d"))) == "2d"
