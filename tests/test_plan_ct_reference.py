"""A plan written to another folder keeps naming its CT (planner/plan/plan_ct.ct_reference_at).

A plan's ``ct.source_path`` may be relative to the plan file's folder (the demo case writes
``ct``). A copy written elsewhere — ``seedplan verify``'s ``postop.seedplan``, ``seedplan
autoplan --out`` in another folder, Save As — would name a folder that is not there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from planner.plan.plan_ct import ct_reference_at
from tests.plan_builders import full_plan


def _with_source(source: str):
    plan = full_plan()
    return plan.evolve(ct=replace(plan.ct, source_path=source))


def test_a_relative_path_is_made_absolute_in_another_folder(tmp_path: Path) -> None:
    plan = _with_source("ct")
    ct = tmp_path / "case" / "ct"
    out = ct_reference_at(plan, tmp_path / "verify" / "postop.seedplan", ct)
    assert Path(out.ct.source_path) == ct and Path(out.ct.source_path).is_absolute()
    assert out.ct.series_instance_uid == plan.ct.series_instance_uid  # only the path changes


def test_a_path_that_still_names_the_ct_is_kept(tmp_path: Path) -> None:
    plan = _with_source("ct")
    ct = tmp_path / "case" / "ct"
    assert ct_reference_at(plan, tmp_path / "case" / "copy.seedplan", ct) is plan
    absolute = _with_source(str(ct))
    assert ct_reference_at(absolute, tmp_path / "elsewhere" / "p.seedplan", ct) is absolute


def test_without_a_loaded_ct_nothing_changes(tmp_path: Path) -> None:
    plan = _with_source("ct")
    assert ct_reference_at(plan, tmp_path / "x" / "p.seedplan", None) is plan
