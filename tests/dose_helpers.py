"""Test helpers shared by the dose-engine tests."""

from __future__ import annotations

import numpy as np

from dose.engine import DoseGrid


def random_edits(acc: DoseGrid, rng: np.random.Generator, ids: list[int], n_edits: int) -> None:
    """Apply ``n_edits`` random add/remove/move/re-axis edits to ``acc``; ``ids`` is updated.

    New seeds get ids above every id in ``ids``; positions ~ N(0, 7 mm), strengths 0.3–1 U.
    """
    next_id = max(ids, default=-1) + 1
    for _ in range(n_edits):
        op = rng.integers(4)
        if op == 0 or len(ids) < 3:
            acc.add(next_id, rng.normal(0, 7, 3), rng.normal(size=3), rng.uniform(0.3, 1.0))
            ids.append(next_id)
            next_id += 1
        elif op == 1:
            acc.remove(ids.pop(int(rng.integers(len(ids)))))
        elif op == 2:
            acc.move(ids[int(rng.integers(len(ids)))], position_mm=rng.normal(0, 7, 3))
        else:
            acc.move(
                ids[int(rng.integers(len(ids)))],
                axis=rng.normal(size=3),
                strength_u=rng.uniform(0.3, 1.0),
            )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix (3, 3) (det +1): grid direction columns."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
