"""planner.session.session: the Qt-free model the viewer observes (no GUI needed)."""

from __future__ import annotations

import numpy as np
import pytest

from dose.geometry import GridGeometry
from planner.imaging.volume import CTVolume, Mask
from planner.session.session import WINDOW_PRESETS, Session


def _volume() -> CTVolume:
    geometry = GridGeometry((5, 6, 7), np.array([10.0, -20.0, 30.0]), np.array([0.5, 0.8, 2.0]))
    hu = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)  # each voxel unique
    return CTVolume(hu, geometry)


def test_set_volume_emits_and_centres_crosshair_on_a_voxel() -> None:
    s = Session()
    events: list[str] = []
    s.volume_changed.connect(lambda: events.append("volume"))
    v = _volume()
    s.set_volume(v)
    assert events == ["volume"]
    ijk = v.geometry.world_to_index(s.crosshair_mm)
    # Central voxel (floor((n-1)/2) per axis) of a 7×6×5 (i, j, k) grid.
    assert np.allclose(ijk, [3, 2, 2])
    assert (s.window_hu, s.level_hu) == (WINDOW_PRESETS[0].window_hu, WINDOW_PRESETS[0].level_hu)


def test_crosshair_snaps_to_voxel_centres_and_stays_inside() -> None:
    s = Session()
    v = _volume()
    s.set_volume(v)
    moved: list[np.ndarray] = []
    s.crosshair_changed.connect(moved.append)
    target = v.geometry.index_to_world([1.3, 4.6, 0.8])
    s.set_crosshair(target)
    assert np.allclose(v.geometry.world_to_index(s.crosshair_mm), [1, 5, 1])
    assert len(moved) == 1 and np.allclose(moved[0], s.crosshair_mm)
    s.set_crosshair(s.crosshair_mm)  # no move, no event
    assert len(moved) == 1
    s.set_crosshair([1e6, -1e6, 1e6])  # far outside: clamped to the last voxels
    assert np.allclose(v.geometry.world_to_index(s.crosshair_mm), [6, 0, 4])
    s.set_crosshair(target, snap=False)
    assert np.allclose(s.crosshair_mm, target)
    with pytest.raises(ValueError):
        s.set_crosshair([np.nan, 0, 0])


def test_hu_at_is_the_nearest_voxel_value() -> None:
    s = Session()
    assert np.isnan(s.hu_at([0, 0, 0]))  # nothing loaded
    v = _volume()
    s.set_volume(v)
    k, j, i = 3, 2, 5
    xyz = v.geometry.index_to_world([i + 0.3, j - 0.4, k + 0.2])
    assert s.hu_at(xyz) == float(v.hu[k, j, i])
    assert np.isnan(s.hu_at(v.geometry.index_to_world([-3.0, 0, 0])))


def test_window_level_presets_and_minimum_width() -> None:
    s = Session()
    seen: list[tuple[float, float]] = []
    s.window_level_changed.connect(lambda w, lv: seen.append((w, lv)))
    s.apply_preset("lung")
    # Lung window W1500/L-600 HU (Radiopaedia "Windowing (CT)").
    assert seen[-1] == (1500.0, -600.0)
    s.set_window_level(-50.0, 10.0)
    assert s.window_hu == 1.0  # never zero or negative
    with pytest.raises(ValueError):
        s.apply_preset("no-such-window")


def test_masks_must_be_on_the_ct_grid() -> None:
    s = Session()
    v = _volume()
    other = GridGeometry((5, 6, 7), np.zeros(3), np.ones(3))
    bad = Mask("GTV", np.zeros((5, 6, 7), bool), other)
    with pytest.raises(ValueError, match="GTV"):
        s.set_volume(v, masks={"GTV": bad})
    good = Mask("GTV", np.zeros((5, 6, 7), bool), v.geometry)
    s.set_volume(v, masks={"GTV": good})
    assert list(s.masks) == ["GTV"]


# ---------------------------------------------------------------------- events (psygnal)


def test_one_raising_listener_does_not_stop_the_others() -> None:
    """Every listener runs; the first error still reaches the emitter (never silent)."""
    from psygnal import EmitLoopError

    s = Session()
    s.set_volume(_volume())
    seen: list[str] = []

    def broken(_xyz: np.ndarray) -> None:
        seen.append("broken")
        raise RuntimeError("overlay failed")

    s.crosshair_changed.connect(lambda _xyz: seen.append("first"))
    s.crosshair_changed.connect(broken)
    s.crosshair_changed.connect(lambda _xyz: seen.append("after"))
    target = s.volume.geometry.index_to_world([1.0, 1.0, 1.0])
    with pytest.raises(EmitLoopError) as info:
        s.set_crosshair(target)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert seen == ["first", "broken", "after"]
    assert np.allclose(s.crosshair_mm, target)  # the model changed despite the listener


def test_a_deleted_views_listener_is_dropped() -> None:
    """Listeners are weak references: a view that is gone stops listening by itself."""
    import gc

    class View:
        def __init__(self) -> None:
            self.calls = 0

        def on_volume(self) -> None:
            self.calls += 1

    s = Session()
    kept, dropped = View(), View()
    for listener in (kept, dropped):
        s.volume_changed.connect(listener.on_volume)
        s.crosshair_changed.connect(listener.on_volume)
    del listener
    assert len(s.volume_changed) == 2 and len(s.crosshair_changed) == 2
    del dropped
    gc.collect()
    assert len(s.volume_changed) == 1 and len(s.crosshair_changed) == 1
    s.set_volume(_volume())
    assert kept.calls == 1


def test_document_and_view_state_are_separate() -> None:
    """The case (document) is immutable; crosshair, window and visibility live in the view."""
    from planner.open_case import OpenedCase

    s = Session()
    v = _volume()
    mask = Mask("GTV", np.ones((5, 6, 7), bool), v.geometry)
    s.set_volume(v, masks={"GTV": mask}, report_lines=["loaded"])
    case = s.case
    assert isinstance(case, OpenedCase) and case.volume is v
    with pytest.raises(TypeError):
        case.masks["CTV"] = mask  # type: ignore[index]  # read-only mapping
    shown: list[tuple[str, bool]] = []
    s.view.visibility_changed.connect(lambda name, on: shown.append((name, on)))
    s.view.set_visible("GTV", False)
    s.view.set_visible("GTV", False)  # unchanged: no event
    s.set_crosshair(v.geometry.index_to_world([0, 0, 0]))
    s.set_window_level(1500.0, -600.0)
    assert shown == [("GTV", False)] and not s.view.is_visible("GTV")
    assert s.case is case  # view changes never touch the document
    s.set_volume(v)  # a new document resets the view state
    assert s.view.is_visible("GTV") and s.window_hu == WINDOW_PRESETS[0].window_hu
    assert not hasattr(Session, "load")  # one way to open a case: planner.open_case


# ---------------------------------------------------------------------- LPS formatting


@pytest.mark.parametrize(
    ("axis", "value", "text"),
    [
        (0, 49.6, "x = 49.6 mm (L)"),
        (0, -49.6, "x = -49.6 mm (R)"),
        (1, 12.34, "y = 12.3 mm (P)"),
        (1, -0.06, "y = -0.1 mm (A)"),
        (2, 151.25, "z = 151.2 mm (S)"),
        (2, -151.2, "z = -151.2 mm (I)"),
        (2, -0.04, "z = 0.0 mm"),  # rounds to zero: no sign, no side
        (0, 0.0, "x = 0.0 mm"),
    ],
)
def test_lps_coordinate_text_has_the_sign_and_side_of_the_value(
    axis: int, value: float, text: str
) -> None:
    from planner.session.coordinates import format_lps_coordinate

    assert format_lps_coordinate(axis, value) == text


def test_lps_point_text_round_trips_through_a_parser() -> None:
    """Parse the text back: value and letter agree with the LPS convention for any point."""
    import re

    from planner.session.coordinates import format_lps_point

    rng = np.random.default_rng(7)
    for xyz in rng.uniform(-300, 300, (200, 3)):
        text = format_lps_point(xyz)
        parts = re.findall(r"([xyz]) = (-?\d+\.\d) mm(?: \(([LRAPSI])\))?", text)
        assert [p[0] for p in parts] == ["x", "y", "z"], text
        for axis, (_, value, side) in enumerate(parts):
            assert float(value) == pytest.approx(xyz[axis], abs=0.05 + 1e-9)
            expected = ("L", "P", "S")[axis] if xyz[axis] > 0 else ("R", "A", "I")[axis]
            assert side == ("" if abs(xyz[axis]) < 0.05 else expected), text
    with pytest.raises(ValueError):
        format_lps_point([1.0, 2.0])
