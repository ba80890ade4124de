"""Live dose on oblique view planes (a rotated CT seen on the fixed LPS views)."""

from __future__ import annotations

import numpy as np
import pytest

from dose.engine import make_engine
from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, PatientInfo
from planner.plan.document import PlanDocument
from planner.plan.dosimetry import plan_seed_set
from planner.plan.live_dose import LiveDose
from planner.plan.model import Needle, Plan, Prescription, Seed, SourceSpec, Structure
from planner.plan.needle_commands import MoveSeedAlongNeedle

AXIAL_N, AXIAL_RIGHT, AXIAL_UP = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0)


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


@pytest.fixture(scope="module")
def engine():
    return make_engine("6711", "2d", "numba")


def _oblique_plan() -> Plan:
    """A CT rotated 25° in-plane and tilted 15°, a PTV and 3 seeds on one needle."""
    direction = _rotation(2, 25.0) @ _rotation(0, 15.0)
    shape = (24, 48, 48)
    spacing = np.array([1.0, 1.0, 2.0])
    centre_ijk = (np.array(shape[::-1]) - 1) / 2.0
    origin = -(direction @ (spacing * centre_ijk))  # the grid centred on (0, 0, 0)
    g = GridGeometry(shape, origin, spacing, direction)
    ct = CTVolume(np.zeros(shape, np.int16), g, PatientInfo("OBL", "1.2.3"))
    world = g.voxel_centres_world()
    ptv = np.linalg.norm(world, axis=-1) <= 12.0
    needle = Needle("nd-1", (0.0, 40.0, 0.0), (0.0, -15.0, 0.0), "A")
    seeds = tuple(
        Seed(f"sd-{i}", (0.0, y, 0.0), (0.0, -1.0, 0.0), "nd-1")
        for i, y in enumerate((-8.0, 0.0, 8.0))
    )
    return Plan.new(
        ct,
        structures=(Structure.from_mask("st-ptv", "PTV", "target", ptv, g),),
        prescription=Prescription(110.0, "st-ptv"),
        source=SourceSpec("6711", strength_u=0.5),
        needles=(needle,),
        seeds=seeds,
    )


def _check_plane_dose(engine, live: LiveDose, point_mm: np.ndarray) -> None:
    plane = live.plane("axial")
    g = plane.geometry
    pts = g.voxel_centres_world().reshape(-1, 3)
    # Every pixel lies on the axial (LPS) plane through the point.
    np.testing.assert_allclose(pts @ np.array(AXIAL_N), point_mm[2], atol=1e-9)
    seeds, _ = plan_seed_set(live.plan)
    exact = engine.dose_rate_on_grid(seeds, g).dose_gy[0].reshape(-1)
    fast = live.region_dose_gy("axial").reshape(-1)
    far = np.min(np.linalg.norm(pts[:, None] - seeds.positions_mm[None], axis=2), axis=1) > 1.0
    assert exact.max() > 50.0
    rel = np.abs(fast[far] - exact[far]) / exact[far]
    assert rel.max() <= 0.02


def test_an_oblique_plane_is_the_lps_plane_and_follows_edits(engine) -> None:
    doc = PlanDocument(_oblique_plan())
    live = LiveDose(doc.plan, engine=engine, crop_margin_mm=10.0)
    live.attach(doc)
    point = np.array([0.0, 0.0, 1.3])
    assert live.set_oblique("axial", AXIAL_N, AXIAL_RIGHT, AXIAL_UP, point)
    assert live.plane("axial").index == -1 and live.oblique("axial") is not None
    assert not live.set_oblique("axial", AXIAL_N, AXIAL_RIGHT, AXIAL_UP, point)  # unchanged
    _check_plane_dose(engine, live, point)
    # A CT slice index does not move an oblique view; a seed drag updates it incrementally.
    before = live.plane("axial")
    live.set_slice("axial", 3)
    assert live.plane("axial") is before
    doc.execute(MoveSeedAlongNeedle("sd-1", distance_mm=9.0))
    _check_plane_dose(engine, live, point)
    # Isodose segments lie on the plane, where the exact dose is the level.
    segs = live.isodose_segments("axial", (100.0,))[100.0]
    assert len(segs) > 10
    world = live.plane("axial").rc_to_world_mm(segs.reshape(-1, 2))
    np.testing.assert_allclose(world[:, 2], point[2], atol=1e-9)
    seeds, _ = plan_seed_set(doc.plan)
    at = engine.dose_rate_at_points(seeds, world[::7]).dose_gy
    err = np.abs(at / 110.0 - 1.0)  # linear interpolation across 1 mm pixels of a 1/r² field
    assert err.max() < 0.06 and err.mean() < 0.025
    # Moving the plane recomputes it; clearing returns to the CT slice grid.
    assert live.set_oblique(
        "axial", AXIAL_N, AXIAL_RIGHT, AXIAL_UP, point + np.array([0.0, 0.0, 4.0])
    )
    _check_plane_dose(engine, live, point + np.array([0.0, 0.0, 4.0]))
    live.clear_oblique("axial")
    assert live.oblique("axial") is None and live.plane("axial").index == 3
