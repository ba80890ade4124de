"""Post-op review edits (issue 13): undoable add/delete/merge/split of detected seeds and the
manual registration nudge (planner/postop/edits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dose.errors import InputError
from planner.postop.edits import EditedSeeds, SeedEdits, nudge_transform
from planner.postop.register import RigidTransform


def _seeds() -> EditedSeeds:
    p = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [10.0, 2.0, 0.0], [0.0, 30.0, 5.0]])
    a = np.array([[0, 0, 1], [0, 0, 1], [0, 0, -1], [1, 0, 0]], dtype=float)
    return EditedSeeds(p, a, np.array([0.9, 0.8, 0.7, 0.6]), ("detected",) * 4)


def test_add_delete_undo_redo_restore_exact_states() -> None:
    edits = SeedEdits(_seeds())
    labels: list[str] = []
    edits.changed.connect(labels.append)
    start = edits.seeds
    edits.add((5.0, 5.0, 5.0), (0.0, 0.0, 2.0))
    assert len(edits.seeds) == 5 and edits.seeds.origin[-1] == "added"
    np.testing.assert_allclose(edits.seeds.axes[-1], [0, 0, 1])  # normalised
    edits.delete([0, 2])
    assert len(edits.seeds) == 3
    np.testing.assert_allclose(edits.seeds.positions_mm[0], [10.0, 0.0, 0.0])
    assert edits.undo_label == "Delete 2 seeds"
    assert edits.undo() and edits.undo()
    assert edits.seeds is start and not edits.can_undo
    assert edits.redo()
    assert len(edits.seeds) == 5
    edits.delete([4])  # a new edit clears the redo stack
    assert not edits.can_redo
    assert labels == [
        "Add seed",
        "Delete 2 seeds",
        "Undo Delete 2 seeds",
        "Undo Add seed",
        "Redo Add seed",
        "Delete seed",
    ]


def test_merge_takes_the_mean_and_aligns_opposite_axes() -> None:
    edits = SeedEdits(_seeds())
    edits.merge([1, 2])
    s = edits.seeds
    assert len(s) == 3 and s.origin[-1] == "merged"
    np.testing.assert_allclose(s.positions_mm[-1], [10.0, 1.0, 0.0])
    # Axes (0,0,1) and (0,0,-1) are the same seed direction: the merged axis is ±z, not zero.
    assert abs(s.axes[-1][2]) == pytest.approx(1.0)
    with pytest.raises(InputError):
        edits.merge([0])
    with pytest.raises(IndexError):
        edits.delete([7])


def test_split_places_seeds_along_the_axis_centred() -> None:
    edits = SeedEdits(_seeds())
    edits.split(3, 3, spacing_mm=5.0)
    s = edits.seeds
    assert len(s) == 6 and s.origin[-3:] == ("split",) * 3
    np.testing.assert_allclose(s.positions_mm[-3:, 0], [-5.0, 0.0, 5.0])
    np.testing.assert_allclose(s.positions_mm[-3:].mean(axis=0), [0.0, 30.0, 5.0])
    edits.undo()
    assert len(edits.seeds) == 4


def test_nearest_respects_the_distance_limit() -> None:
    edits = SeedEdits(_seeds())
    assert edits.nearest((9.0, 0.4, 0.0)) == 1
    assert edits.nearest((50.0, 50.0, 50.0), within_mm=5.0) is None


def test_nudge_rotates_about_the_given_point_then_shifts() -> None:
    base = RigidTransform(translation_mm=(2.0, -1.0, 0.5))
    centre = np.array([10.0, 20.0, -30.0])
    # A rotation about the centre leaves the point that maps onto the centre where it was.
    source = centre - np.asarray(base.translation_mm)
    t = nudge_transform(base, (0, 0, 0), (0.0, 0.0, 5.0), about_mm=centre)
    np.testing.assert_allclose(t.apply(source), centre, atol=1e-9)
    # A point 10 mm to the right of it turns by 5° about z.
    moved = t.apply(source + np.array([10.0, 0.0, 0.0])) - centre
    assert np.degrees(np.arctan2(moved[1], moved[0])) == pytest.approx(5.0)
    assert np.linalg.norm(moved) == pytest.approx(10.0)
    # A shift adds in the planning frame, whatever the rotation before it.
    s = nudge_transform(t, (1.0, 0.0, -2.0))
    np.testing.assert_allclose(s.apply(source) - t.apply(source), [1.0, 0.0, -2.0], atol=1e-9)
    np.testing.assert_allclose(s.matrix @ s.matrix.T, np.eye(3), atol=1e-12)
