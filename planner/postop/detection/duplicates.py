"""One seed found twice is one seed (:func:`merge_duplicates`; thin slices: :func:`merge_halves`).

A seed cut in two components (its halves on two slices, or split by a streak) gives two seeds
closer than ``DUPLICATE_MM``; two real seeds are never that close apart in two components
(touching seeds are one component): :func:`merge_duplicates` keeps the more confident.

Thin slices: a seed whose blob fell apart into two components a few millimetres apart.
A seed in or against lung reads low, and only a voxel or two of it passes the metal
threshold; a streak across a seed can cut its core too. Its two halves become two components
a few millimetres apart, each counted as a seed (a core that small is counted as one seed,
not by its mass: :data:`planner.postop.detection.detect.MASS_CORE_RATIO`), and the implant gets a
seed that is not there — in the target, its dose counts (one such duplicate moved a 32-seed
implant's D90 by +4.4 %). :func:`merge_halves` joins two single seeds of different components
lying closer than ``HALVES_MM`` when each carries less than ``HALF_MAX_FRACTION`` of a seed's
mass and both together no more than ``PAIR_MAX_FRACTION``: two whole seeds that close would
weigh a seed each.

Measured on the 2.5 mm freehand scenes of ``benchmarks.bench_detect`` (rng 0–11, 100–111) and
validation clusters+lung rng 10–11: the two duplicates (check rng 105, validation rng 11) were
halves 2.9–3.0 mm apart of 0.44–0.64 of a seed each; of the 1081 true seeds found alone in
their component, 1 % weigh less than 0.67 of a seed (the lightest 0.41), and no two of those
lie within ``HALVES_MM``: every seed was still found, on the older scenes (``--scenarios``,
``--heldout``, ``--validation``, 1.25 and 2.5 mm) too.
"""

from __future__ import annotations

import numpy as np

from planner.postop.detection.blobs import Component
from planner.postop.detection.results import DetectedSeed, canonical_axis

#: Two seeds of different components closer than this (mm) are one seed.
DUPLICATE_MM = 2.0
#: Two halves of a seed lie closer than this (mm): less than a seed's length.
HALVES_MM = 4.0
#: ... each carries less than this fraction of a seed's mass,
HALF_MAX_FRACTION = 0.7
#: ... and both together no more than this.
PAIR_MAX_FRACTION = 1.4


def merge_halves(
    seeds: list[DetectedSeed], comps: list[Component], single_mass: float
) -> list[DetectedSeed]:
    """``seeds`` with each pair of single seeds that are the halves of one seed (module
    docstring) replaced by one seed at their mass-weighted centre, its axis the line joining
    them (a seed falls apart across its length). ``comps`` are the components the seeds came
    from (``DetectedSeed.component`` is a label of one), ``single_mass`` one seed's mass
    (HU·mm³)."""
    if single_mass <= 0 or len(seeds) < 2:
        return seeds
    mass = {c.label: c.mass / single_mass for c in comps}
    per_component: dict[int, int] = {}
    for s in seeds:
        per_component[s.component] = per_component.get(s.component, 0) + 1
    light = [
        n
        for n, s in enumerate(seeds)
        if per_component.get(s.component) == 1
        and s.component in mass
        and mass[s.component] < HALF_MAX_FRACTION
    ]
    if len(light) < 2:
        return seeds
    pts = np.array([seeds[n].position_mm for n in light], dtype=np.float64)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    out = list(seeds)
    used: set[int] = set()
    gone: set[int] = set()
    close = [
        (int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(d < HALVES_MM, k=1)), strict=True)
    ]
    # Closest pairs first: a half belongs to its nearest other half.
    for a, b in sorted(close, key=lambda ab: d[ab]):
        if a in used or b in used:
            continue
        sa, sb = seeds[light[a]], seeds[light[b]]
        ma, mb = mass[sa.component], mass[sb.component]
        if ma + mb > PAIR_MAX_FRACTION:
            continue
        used.update((a, b))
        centre = (ma * pts[a] + mb * pts[b]) / (ma + mb)
        axis = canonical_axis((pts[b] - pts[a]) / d[a, b])
        keep, drop = (light[a], light[b]) if ma >= mb else (light[b], light[a])
        out[keep] = DetectedSeed(
            (float(centre[0]), float(centre[1]), float(centre[2])),
            axis,
            min(sa.confidence, sb.confidence),
            1,
            seeds[keep].component,
        )
        gone.add(drop)
    return [s for n, s in enumerate(out) if n not in gone]


def merge_duplicates(
    seeds: list[DetectedSeed], within_mm: float = DUPLICATE_MM
) -> list[DetectedSeed]:
    """``seeds`` without the less confident of each two of different components closer than
    ``within_mm`` (module docstring)."""
    if len(seeds) < 2:
        return seeds
    pts = np.array([s.position_mm for s in seeds])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    drop: set[int] = set()
    for i, j in zip(*np.nonzero(np.triu(d < within_mm, k=1)), strict=True):
        if i in drop or j in drop or seeds[i].component == seeds[j].component:
            continue
        drop.add(int(j) if seeds[i].confidence >= seeds[j].confidence else int(i))
    return [s for k, s in enumerate(seeds) if k not in drop]
