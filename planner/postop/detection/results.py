"""What seed detection on a post-op CT returns: seeds, other metal, and the numbers behind them.

Positions are LPS mm on the CT's own geometry; axes are unit vectors with a fixed sign
(:func:`canonical_axis`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DetectedSeed:
    """One seed found: centre (LPS mm), unit axis, confidence in [0, 1], cluster size (1 alone)."""

    position_mm: tuple[float, float, float]
    axis: tuple[float, float, float]
    confidence: float
    cluster_size: int
    component: int


@dataclass(frozen=True)
class MetalObject:
    """Metal that is not seeds: centre (LPS mm), volume above threshold (mm³), why excluded."""

    centre_mm: tuple[float, float, float]
    volume_mm3: float
    seed_equivalents: float
    reason: str


@dataclass
class DetectionResult:
    """What :func:`planner.postop.detection.detect.detect_seeds` found, and every number a reviewer
    needs to trust it."""

    seeds: list[DetectedSeed]
    metal: list[MetalObject]
    #: Thin slices: the absolute HU threshold used (adapted to the scan unless given). Thick
    #: slices (``thick_slices``): only the lowest HU the shape search looks at.
    threshold_hu: float
    single_seed_mass: float  # HU·mm³
    clusters_split: int  # components that held more than one seed
    expected: int | None = None
    messages: list[str] = field(default_factory=list)
    #: Slices thicker than ``THICK_SLICE_MM``: searched by shape (``thick_components``).
    thick_slices: bool = False

    @property
    def positions_mm(self) -> NDArray[np.float64]:
        """``(N, 3)`` seed centres, LPS mm."""
        return np.array([s.position_mm for s in self.seeds], dtype=np.float64).reshape(-1, 3)

    @property
    def axes(self) -> NDArray[np.float64]:
        """``(N, 3)`` unit seed axes."""
        return np.array([s.axis for s in self.seeds], dtype=np.float64).reshape(-1, 3)

    def summary(self) -> str:
        """One line: count, clusters split, metal excluded, how the metal was searched (the
        HU threshold, or on thick slices the shape search and its lowest HU), the count check."""
        search = (
            f"thick-slice shape search (≥ {self.threshold_hu:.0f} HU)"
            if self.thick_slices
            else f"threshold {self.threshold_hu:.0f} HU"
        )
        text = (
            f"{_count(len(self.seeds), 'seed')} found "
            f"({_count(self.clusters_split, 'cluster')} split), "
            f"{_count(len(self.metal), 'non-seed metal object')} excluded, {search}"
        )
        if self.expected is not None:
            diff = len(self.seeds) - self.expected
            if diff == 0:
                text += f"; matches the {self.expected} expected"
            else:
                word = "extra" if diff > 0 else "missing"
                text += f"; expected {self.expected}: {abs(diff)} {word}"
        return text


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 ("1 seed", "0 seeds", "31 seeds")."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def canonical_axis(axis: NDArray[np.float64]) -> tuple[float, float, float]:
    """A unit axis with a fixed sign (largest |component| positive): seeds have no head/tail."""
    a = axis / np.linalg.norm(axis)
    if a[np.argmax(np.abs(a))] < 0:
        a = -a
    return (float(a[0]), float(a[1]), float(a[2]))
