"""The demo plan's post-op CT (planner/demo/postop.py): its truth is what verification finds."""

from __future__ import annotations

import numpy as np
import pytest

from planner.demo.phantom import generate_phantom
from planner.demo.postop import make_postop_ct
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.model import Needle, Plan, Seed
from planner.postop.detect import detect_seeds
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
