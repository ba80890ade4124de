"""Fill between slices (planner.structures.interpolate): ITK morphological contour
interpolation and shape-based (signed distance) interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.structures.interpolate import fill_between_slices
from planner.structures.patch import apply_patch

GRID = GridGeometry.axis_aligned((20, 64, 64), (-25.2, -25.2, -25.0), (0.8, 0.8, 2.5))
W = GRID.voxel_centres_world()


def _disc(k: int, centre_xy: tuple[float, float], r_mm: float) -> np.ndarray:
    m = np.zeros(GRID.shape_zyx, bool)
    w = W[k]
    m[k] = (w[..., 0] - centre_xy[0]) ** 2 + (w[..., 1] - centre_xy[1]) ** 2 <= r_mm**2
    return m


def _drawn() -> np.ndarray:
    """Discs of 6 mm at slice 4 and 12 mm at slice 12, centres 6 mm apart in x."""
    m = _disc(4, (-3.0, 0.0), 6.0) | _disc(12, (3.0, 0.0), 12.0)
    m.setflags(write=False)
    return m


@pytest.mark.parametrize("method", ["distance", "morphological"])
def test_fill_between_two_discs_morphs_size_and_position(method: str) -> None:
    drawn = _drawn()
    out = apply_patch(drawn, fill_between_slices(drawn, GRID, method=method))
    np.testing.assert_array_equal(out[[4, 12]], drawn[[4, 12]])  # drawn slices kept
    assert not out[:4].any() and not out[13:].any()  # nothing outside the drawn range
    for k in range(5, 12):
        t = (k - 4) / 8
        r_mm = 6.0 + 6.0 * t
        area_mm2 = out[k].sum() * 0.64
        assert area_mm2 == pytest.approx(np.pi * r_mm**2, rel=0.2), (k, method)
        cx = W[k][out[k]][:, 0].mean()
        assert cx == pytest.approx(-3.0 + 6.0 * t, abs=1.2), (k, method)
    # Areas grow monotonically between the two drawn sizes.
    areas = out[4:13].sum(axis=(1, 2))
    assert np.all(np.diff(areas) >= 0)


def test_coronal_drawing_axis() -> None:
    m = np.zeros(GRID.shape_zyx, bool)
    m[5:15, 10, 20:40] = True  # a rectangle on coronal row 10
    m[5:15, 30, 25:35] = True  # a narrower one on row 30
    out = apply_patch(m, fill_between_slices(m, GRID, axis=1, method="distance"))
    widths = out[10, 10:31].sum(axis=1)
    assert widths[0] == 20 and widths[-1] == 10
    assert np.all((widths[1:-1] <= 20) & (widths[1:-1] >= 10))
    assert np.all(np.diff(widths) <= 0)


def test_refusals() -> None:
    one = _disc(4, (0.0, 0.0), 5.0)
    with pytest.raises(InputError, match="nothing to fill"):
        fill_between_slices(one, GRID, method="distance")
    adjacent = one | _disc(5, (0.0, 0.0), 5.0)
    with pytest.raises(InputError, match="nothing to fill"):
        fill_between_slices(adjacent, GRID, method="distance")
    with pytest.raises(InputError, match="nothing drawn"):
        fill_between_slices(np.zeros(GRID.shape_zyx, bool), GRID)
    with pytest.raises(InputError, match="unknown interpolation"):
        fill_between_slices(one, GRID, method="linear")
    with pytest.raises(InputError, match="slice axis"):
        fill_between_slices(one, GRID, axis=3)
