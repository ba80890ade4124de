"""Helpers for the planning GUI tests: a plan on the demo case, waiting for the exact dose."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.gui.main_window import MainWindow
from planner.demo.case import load_demo_masks
from planner.plan.document import PlanDocument
from planner.plan.model import Goal, Plan, Prescription, SourceSpec, Structure, new_id
from tests.gui.inner._helpers import settle, wait_until

ROLES = {"GTV": "target", "SpinalCord": "oar", "SpinalCanal": "other", "VertebralBody": "other"}


def demo_plan(window: MainWindow, demo_ct: Path, *, strength_u: float = 0.6) -> Plan:
    """A draft plan on the demo CT: its masks as structures, PD 110 Gy D90 of the GTV, model
    6711, goals (GTV D90 ≥ 110 Gy, SpinalCord D0.1cc ≤ 50 Gy); no needles."""
    volume = window.session.volume
    assert volume is not None
    masks = load_demo_masks(demo_ct.parent, volume.geometry)
    structures = []
    for name, mask in masks.items():
        structures.append(
            Structure.from_mask(
                new_id("st"),
                name,
                ROLES.get(name, "other"),
                mask.voxels,
                volume.geometry,  # type: ignore[arg-type]
                mask.color_rgb,
            )
        )
    gtv = next(s for s in structures if s.name == "GTV")
    cord = next(s for s in structures if s.name == "SpinalCord")
    from dose.sources import load_model

    model = load_model("6711")
    return Plan.new(
        volume,
        structures=tuple(structures),
        prescription=Prescription(110.0, gtv.id),
        source=SourceSpec(model.model_id, model.checksum, strength_u),
        goals=(
            Goal(new_id("gl"), gtv.id, "D90", ">=", 110.0, "Gy"),
            Goal(new_id("gl"), cord.id, "D0.1cc", "<=", 50.0, "Gy"),
        ),
    )


def open_plan(window: MainWindow, plan: Plan, path: Path | None = None) -> PlanDocument:
    doc = PlanDocument(plan, path=path)
    window.session.set_document(doc)
    settle()
    return doc


def wait_for_live(window: MainWindow, timeout_s: float = 120.0) -> None:
    wait_until(lambda: window.planning.live is not None, timeout_s)
    settle()


def wait_for_exact(window: MainWindow, timeout_s: float = 120.0) -> None:
    """Until the exact refresh of the current plan state has arrived."""
    planning = window.planning
    live = planning.live

    def done() -> bool:
        return (
            not planning.exact_pending
            and planning.exact is not None
            and live is not None
            and live.latest_exact is planning.exact
            and planning._exact_generation == planning.live.generation
        )

    wait_until(done, timeout_s)
    settle()


def gtv_centre_mm(plan: Plan) -> np.ndarray:
    gtv = next(s for s in plan.structures if s.name == "GTV")
    kji = np.argwhere(gtv.crop) + [b.start for b in gtv.box]
    return plan.geometry.zyx_to_world(kji.mean(axis=0)[None, :].astype(float))[0]


def window_with_loaded_needle(window: MainWindow, demo_ct: Path) -> MainWindow:
    """``window`` with a fresh demo plan, one needle through the GTV loaded at 10 mm, and the
    crosshair on one of its seeds (live dose ready): the start of a seed drag."""
    from planner.plan.needle_commands import AddNeedle

    plan = demo_plan(window, demo_ct)
    open_plan(window, plan)
    planning = window.planning
    c = gtv_centre_mm(plan)
    entry = c + np.array([25.0, 60.0, 5.0])
    cmd = AddNeedle(tuple(entry), tuple(c - 0.15 * (entry - c)))
    assert planning.execute(cmd)
    planning.select(cmd.needle_id, None)
    planning.needle_panel.spacing.setValue(10.0)
    planning.needle_panel.load_selected_button.click()
    wait_for_live(window)
    seed = next(s for s in planning.plan.seeds if s.needle_id == cmd.needle_id)
    window.session.set_crosshair(np.asarray(seed.position_mm))
    settle()
    return window
