"""Seed axes from needles: a seed without its own axis points along its needle.

Pure numpy (no planner import). A needle's direction is either given (e.g. tip − entry from a
needles file) or fitted: the principal direction (SVD line fit) of the positions of all seeds on
that needle. A needle whose seeds are not close to one line raises :class:`InputError` — a wrong
seed axis must never be silent.

Public API::

    needle_axes(positions_mm, needle_ids, axes_given, has_axis, *, needle_directions=None,
                line_numbers=None, path=None) -> (N, 3) unit axes
    fit_needle_direction(positions_mm) -> (direction (3,), off_line_mm (M,), span_mm)
    check_seeds_on_tracks(positions_mm, needle_ids, tracks, *, line_numbers=None, path=None)
    orient(direction) -> (3,) the same line, largest-magnitude component positive

Rules, per seed: an explicit axis is kept; else the needle's given direction; else the needle's
fitted direction; a seed without axis and without needle keeps +z (0, 0, 1) (DESIGN.md). The sign
of an axis does not change TG-43 dose (θ is folded to [0°, 90°]); fitted directions are oriented
with :func:`orient` so outputs are reproducible. Given directions keep their sign.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError

__all__ = [
    "DEFAULT_AXIS",
    "MAX_OFF_LINE_MM",
    "MIN_SPAN_MM",
    "check_seeds_on_tracks",
    "distance_to_track_mm",
    "fit_needle_direction",
    "needle_axes",
    "orient",
]

DEFAULT_AXIS = (0.0, 0.0, 1.0)
# A seed farther than this from its needle's fitted line means the needle grouping or a position
# is wrong (needle deflection over a typical implant is ~1 mm; seeds are ~0.8 mm wide).
MAX_OFF_LINE_MM = 2.0
# Seeds on one needle are at least a seed length (~4.5 mm) apart; a smaller span means duplicated
# positions, from which no direction can be fitted.
MIN_SPAN_MM = 1.0


def orient(direction: ArrayLike) -> NDArray[np.float64]:
    """Unit vector along ``direction`` (3,) with its largest-magnitude component positive
    (ties: the first such component)."""
    d = np.asarray(direction, dtype=np.float64).reshape(3)
    d = d / np.linalg.norm(d)
    d = -d if d[int(np.argmax(np.abs(d)))] < 0 else d
    return d + 0.0  # no negative zeros (reproducible text output)


def fit_needle_direction(
    positions_mm: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Principal direction of seed positions (M, 3) mm, M ≥ 2.

    Returns (direction (3,) unit, oriented by :func:`orient`; distance of each seed from the
    fitted line through the centroid (M,) mm; span of the seeds along the direction, mm).
    """
    p = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    centred = p - p.mean(axis=0)
    # First right singular vector = direction of largest variance = least-squares line.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    d = orient(vt[0])
    along = centred @ d
    off = np.linalg.norm(centred - along[:, np.newaxis] * d, axis=1)
    span = float(along.max() - along.min()) if p.shape[0] else 0.0
    return d, off, span


def needle_axes(
    positions_mm: ArrayLike,
    needle_ids: Sequence[Hashable | None],
    axes_given: ArrayLike,
    has_axis: ArrayLike,
    *,
    needle_directions: Mapping[Hashable, ArrayLike] | None = None,
    line_numbers: Sequence[int] | None = None,
    path: str | Path | None = None,
) -> NDArray[np.float64]:
    """Final unit seed axes (N, 3).

    positions_mm (N, 3) LPS mm; needle_ids (N,) a needle id per seed or None; axes_given (N, 3)
    (rows where ``has_axis`` is False are ignored); has_axis (N,) bool; needle_directions: id →
    (3,) direction that wins over the fit. line_numbers (N,) and path only word the errors
    (``line 7: ...``; without them ``seed 3`` is the 1-based seed index).

    Raises InputError for: a needle that needs a fit but has a single seed or a span below
    MIN_SPAN_MM; a seed more than MAX_OFF_LINE_MM from its needle's fitted line; a zero-length
    or non-finite given direction or explicit axis.
    """
    pos = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    n = pos.shape[0]
    given = np.asarray(axes_given, dtype=np.float64).reshape(-1, 3)
    explicit = np.asarray(has_axis, dtype=bool).reshape(-1)
    ids = list(needle_ids)
    if not (given.shape[0] == n and explicit.shape[0] == n and len(ids) == n):
        raise ValueError(
            f"needle_axes: {n} positions, {given.shape[0]} axes, {explicit.shape[0]} has_axis "
            f"flags and {len(ids)} needle ids"
        )
    if line_numbers is not None and len(line_numbers) != n:
        raise ValueError(f"needle_axes: {n} positions but {len(line_numbers)} line numbers")
    directions = {} if needle_directions is None else needle_directions

    def where(i: int) -> str:
        return f"line {line_numbers[i]}" if line_numbers is not None else f"seed {i + 1}"

    axes = np.tile(np.array(DEFAULT_AXIS), (n, 1))
    for i in np.flatnonzero(explicit):
        a = given[i]
        norm = float(np.linalg.norm(a))
        if not np.all(np.isfinite(a)) or norm < 1e-9:
            raise InputError(f"{where(int(i))}: seed axis is zero or not finite", path)
        axes[i] = a / norm

    # Seeds per needle, in file order (dict keeps the first-seen order: errors are reproducible).
    members: dict[Hashable, list[int]] = {}
    for i, nid in enumerate(ids):
        if nid is not None:
            members.setdefault(nid, []).append(i)
    for nid, idx in members.items():
        need = [i for i in idx if not explicit[i]]
        if not need:
            continue
        if nid in directions:
            d = np.asarray(directions[nid], dtype=np.float64).reshape(3)
            norm = float(np.linalg.norm(d))
            if not np.all(np.isfinite(d)) or norm < 1e-9:
                raise InputError(f"needle {nid!r}: direction is zero or not finite", path)
            axes[need] = d / norm
            continue
        if len(idx) < 2:
            raise InputError(
                f"{where(idx[0])}: needle {nid!r} has a single seed, so its direction cannot be "
                "fitted; give the seed axis (dir_x, dir_y, dir_z) or the needle's entry and tip",
                path,
            )
        d, off, span = fit_needle_direction(pos[idx])
        if span < MIN_SPAN_MM:
            raise InputError(
                f"{where(idx[0])}: the seeds of needle {nid!r} span only {span:.2g} mm "
                f"(< {MIN_SPAN_MM:g} mm), so its direction cannot be fitted; give the seed axes "
                "or the needle's entry and tip",
                path,
            )
        worst = int(np.argmax(off))
        if off[worst] > MAX_OFF_LINE_MM:
            raise InputError(
                f"{where(idx[worst])}: seed is {off[worst]:.1f} mm from the line fitted to the "
                f"{len(idx)} seeds of needle {nid!r} (limit {MAX_OFF_LINE_MM:g} mm); check the "
                "needle ids and positions, or give the seed axes",
                path,
            )
        axes[need] = d
    return axes


def distance_to_track_mm(
    positions_mm: ArrayLike, entry_mm: ArrayLike, tip_mm: ArrayLike
) -> NDArray[np.float64]:
    """Distance (M,) mm of each position (M, 3) from the needle track, the segment entry → tip."""
    p = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    e = np.asarray(entry_mm, dtype=np.float64).reshape(3)
    d = np.asarray(tip_mm, dtype=np.float64).reshape(3) - e
    length = float(np.linalg.norm(d))
    u = d / length
    along = (p - e) @ u
    off = np.linalg.norm((p - e) - along[:, np.newaxis] * u, axis=1)
    beyond = np.maximum(np.maximum(-along, along - length), 0.0)
    return np.hypot(off, beyond)


def check_seeds_on_tracks(
    positions_mm: ArrayLike,
    needle_ids: Sequence[Hashable | None],
    tracks: Mapping[Hashable, tuple[ArrayLike, ArrayLike]],
    *,
    line_numbers: Sequence[int] | None = None,
    path: str | Path | None = None,
) -> None:
    """Raise InputError when a seed lies more than MAX_OFF_LINE_MM from its needle's track.

    tracks: needle id → (entry (3,), tip (3,)) mm. Seeds are deposited along the needle as it is
    withdrawn, so a seed off its track (or beyond its tip or entry) means a wrong needle id or
    a wrong position, and the needle's direction would then be a silently wrong seed axis.
    """
    pos = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    for i, nid in enumerate(needle_ids):
        if nid is None or nid not in tracks:
            continue
        entry, tip = tracks[nid]
        dist = float(distance_to_track_mm(pos[i], entry, tip)[0])
        if dist > MAX_OFF_LINE_MM:
            where = f"line {line_numbers[i]}" if line_numbers is not None else f"seed {i + 1}"
            raise InputError(
                f"{where}: seed is {dist:.1f} mm from the track of needle {nid!r} (entry to tip; "
                f"limit {MAX_OFF_LINE_MM:g} mm); check the needle ids and positions",
                path,
            )
