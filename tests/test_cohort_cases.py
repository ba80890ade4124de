"""Cohort case discovery (folder of case folders, CSV manifest) and content hashes (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dose.errors import InputError
from planner.cohort.cases import HashCache, case_content_sha256, discover_cases, read_manifest

OPTS = {"formalism": "1d", "gate_mm": 10.0}


def _case(root: Path, name: str, *, plans=("plan.seedplan",), postop=True, verification=False):
    d = root / name
    d.mkdir(parents=True)
    for p in plans:
        (d / p).write_bytes(b"not really a plan " + name.encode())
    if postop:
        (d / "postop.nrrd").write_bytes(b"NRRD0004 " + name.encode())
    if verification:
        (d / "verification.json").write_text('{"postop_metrics": {}}')
    return d


def test_folder_cases_and_their_problems(tmp_path) -> None:
    root = tmp_path / "cases"
    _case(root, "a")
    _case(root, "b", plans=())
    _case(root, "c", plans=("x.seedplan", "y.seedplan"))
    _case(root, "d", postop=False)
    _case(root, "e", postop=False, verification=True)
    (root / ".hidden").mkdir()
    (root / "notes.txt").write_text("ignored")
    (root / "f").mkdir()
    (root / "f" / "plan.seedplan").write_bytes(b"p")
    (root / "f" / "postop").mkdir()
    (root / "f" / "case.json").write_text('{"seeds_implanted": 0}')
    cases = {c.case_id: c for c in discover_cases(root)}
    assert sorted(cases) == ["a", "b", "c", "d", "e", "f"]
    assert cases["a"].problem == "" and cases["a"].postop_ct.endswith("postop.nrrd")
    assert "no plan" in cases["b"].problem
    assert "2 plans" in cases["c"].problem
    assert "no post-op CT" in cases["d"].problem
    assert cases["e"].problem == "" and cases["e"].verification.endswith("verification.json")
    assert cases["e"].postop_ct == ""
    assert "seeds_implanted" in cases["f"].problem


def test_bad_cases_argument(tmp_path) -> None:
    with pytest.raises(InputError, match="no such"):
        discover_cases(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no case folders"):
        discover_cases(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(InputError, match="CSV manifest"):
        discover_cases(tmp_path / "x.txt")


def test_manifest(tmp_path) -> None:
    _case(tmp_path, "one")
    _case(tmp_path, "two", postop=False)
    m = tmp_path / "cohort.csv"
    m.write_text(
        "# a cohort\ncase_id,plan,postop_ct,seeds_implanted,comment\n"
        "P01,one/plan.seedplan,one/postop.nrrd,48,extra column\n"
        "P02,two/plan.seedplan,two/postop.nrrd,,\n"
        "P03,missing.seedplan,,,\n"
    )
    cases = {c.case_id: c for c in discover_cases(m)}
    assert cases["P01"].problem == "" and cases["P01"].seeds_implanted == 48
    assert Path(cases["P01"].plan) == tmp_path / "one" / "plan.seedplan"
    assert "no post-op CT" in cases["P02"].problem
    assert "no plan file" in cases["P03"].problem
    for text, match in (
        ("case_id,postop_ct\nA,x\n", "no 'plan' column"),
        ("case_id,plan\nA,x\nA,y\n", "twice"),
        ("case_id,plan,seeds_implanted\nA,x,-3\n", "positive integer"),
        ("case_id,plan\n../up,x\n", "plain name"),
        ("# nothing\n", "empty manifest"),
    ):
        m.write_text(text)
        with pytest.raises(InputError, match=match) as err:
            read_manifest(m)
        assert str(m) in str(err.value)


def test_content_hash_follows_content_not_location(tmp_path) -> None:
    root = tmp_path / "cases"
    _case(root, "a")
    cache = HashCache()
    (a,) = discover_cases(root)
    h1 = case_content_sha256(a, OPTS, cache)
    assert h1 == case_content_sha256(a, OPTS, HashCache())  # the cache changes nothing
    assert h1 != case_content_sha256(a, {**OPTS, "formalism": "2d"})
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    (b,) = discover_cases(moved)
    assert case_content_sha256(b, OPTS) == h1  # same bytes, same names: same case
    post = moved / "a" / "postop.nrrd"
    post.write_bytes(post.read_bytes() + b"!")
    assert case_content_sha256(b, OPTS, cache) != h1
    (moved / "a" / "case.json").write_text('{"seeds_implanted": 7}')
    (c,) = discover_cases(moved)
    assert c.seeds_implanted == 7
    assert case_content_sha256(c, OPTS) != case_content_sha256(b, OPTS)
