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
