"""Making engines: :func:`make_engine` (numba or reference) and :func:`cross_check` (the
independent check a report quotes). The numba engine is imported on first use only."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from dose.engine.base import DoseEngine
from dose.engine.reference import ReferenceEngine
from dose.engine.values import SeedSet
from dose.sources import SourceModel, load_model

__all__ = ["EngineKind", "cross_check", "make_engine"]

EngineKind = Literal["numba", "reference"]


def make_engine(
    model: str | SourceModel,
    formalism: str = "2d",
    kind: EngineKind = "numba",
    *,
    cutoff_mm: float | None = None,
) -> DoseEngine:
    """An engine for ``model`` (id, alias, path or SourceModel); ``kind`` "numba" or "reference"."""
    m = model if isinstance(model, SourceModel) else load_model(model)
    if kind == "numba":
        from dose.engine.numba_engine import NumbaEngine  # imports numba: only when needed

        return NumbaEngine(m, formalism, cutoff_mm=cutoff_mm)
    if kind == "reference":
        return ReferenceEngine(m, formalism, cutoff_mm=cutoff_mm)
    raise ValueError(f"unknown engine kind {kind!r}")


def cross_check(
    model: str | SourceModel,
    formalism: str,
    seeds: SeedSet,
    points_mm: ArrayLike,
    *,
    min_distance_mm: float = 1.0,
) -> dict[str, object]:
    """Independent check for reports: fast vs reference engine at ``points_mm`` (P, 3).

    Points closer than ``min_distance_mm`` to a seed centre are skipped. Returns a dict with
    ``n_points, max_rel_diff, mean_rel_diff, reference_rate_cgy_h, fast_rate_cgy_h, formalism,
    model_id, table_checksum``.
    """
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    if len(seeds):
        d = np.full(pts.shape[0], np.inf)
        for p in seeds.positions_mm:
            d = np.minimum(d, np.linalg.norm(pts - p, axis=1))
        pts = pts[d > min_distance_mm]
    fast = make_engine(model, formalism, "numba").dose_rate_at_points(seeds, pts)
    ref = make_engine(model, formalism, "reference").dose_rate_at_points(seeds, pts)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(fast.dose_rate_cgy_h - ref.dose_rate_cgy_h) / ref.dose_rate_cgy_h
    rel = rel[np.isfinite(rel)]
    return {
        "n_points": int(pts.shape[0]),
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "mean_rel_diff": float(rel.mean()) if rel.size else 0.0,
        "reference_rate_cgy_h": ref.dose_rate_cgy_h,
        "fast_rate_cgy_h": fast.dose_rate_cgy_h,
        "formalism": ref.formalism,
        "model_id": ref.model_id,
        "table_checksum": ref.table_checksum,
    }
