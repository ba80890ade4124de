"""Isodose level colours: the defaults keep theirs, other levels follow the defaults' order."""

from __future__ import annotations

import numpy as np
import pytest

from app.gui.layers.isodoses import LEVEL_RGB, level_rgb


def test_the_default_levels_keep_their_exact_colours() -> None:
    for percent, rgb in LEVEL_RGB.items():
        assert level_rgb(percent) == rgb


@pytest.mark.parametrize(
    ("percent", "lower", "upper"),
    [(70.0, 50.0, 90.0), (95.0, 90.0, 100.0), (120.0, 100.0, 150.0), (175.0, 150.0, 200.0)],
)
def test_a_custom_level_lies_between_the_default_levels_around_it(
    percent: float, lower: float, upper: float
) -> None:
    """120 % is between the yellow 100 % and the orange 150 % (it was purple)."""
    t = (percent - lower) / (upper - lower)
    want = (1 - t) * np.array(LEVEL_RGB[lower]) + t * np.array(LEVEL_RGB[upper])
    np.testing.assert_allclose(level_rgb(percent), want, atol=1e-12)


def test_120_percent_is_a_yellow_orange() -> None:
    r, g, b = level_rgb(120.0)
    assert r == pytest.approx(1.0)
    assert LEVEL_RGB[150.0][1] < g < LEVEL_RGB[100.0][1]
    assert b < 0.15  # not purple: no blue in it


def test_levels_outside_the_defaults_take_the_end_colours() -> None:
    assert level_rgb(30.0) == LEVEL_RGB[50.0]
    assert level_rgb(300.0) == LEVEL_RGB[200.0]


def test_colours_are_plain_floats_in_range() -> None:
    for percent in np.linspace(10.0, 400.0, 40):
        rgb = level_rgb(float(percent))
        assert len(rgb) == 3 and all(isinstance(c, float) and 0.0 <= c <= 1.0 for c in rgb)
