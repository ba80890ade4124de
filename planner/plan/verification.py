"""A post-implant verification as a plan stores it (format 2.3), for the report.

:class:`VerificationRecord` is what ``seedplan verify`` stores in its copy of the plan
(``postop.seedplan``, whose seeds are the implanted ones) and what the GUI's post-op mode hands
the export: which plan was verified on which post-op CT, when and by whom, the dose formalism
of the post-plan dose, the seed counts (expected, detected, clusters split, metal excluded),
both seed sets in the planning frame with their matching, every metric planned vs post-op
(:class:`ComparisonRow`, with the intra-op column when a re-plan was given) and both
cumulative DVHs sampled every :data:`DVH_STEP_GY`. It is self-contained: the report draws
the verification from it alone, whatever plan it is exported with.

Like the registration it is a *post-implant verification record*: it may be attached to an
approved revision without changing that approval (:mod:`planner.plan.document`) and the
approval's checksum excludes it (:func:`planner.plan.plan_file.approved_content_sha256`).

The metric labels and the key metrics' order (:func:`metric_label`, :func:`key_metrics_first`)
live here too, and the structures' reading order in :mod:`planner.plan.reading_order`, so the
CLI's CSV, the GUI's table and the report say the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dose.dvh import DVH

__all__ = [
    "DVH_STEP_GY",
    "FORMALISMS",
    "HIDDEN_METRICS",
    "KEY_METRICS",
    "SEED_COUNT_STRUCTURE",
    "ComparisonRow",
    "DVHPair",
    "VerificationRecord",
    "difference_text",
    "key_metrics_first",
    "matching_line",
    "metric_label",
    "value_text",
]

#: The comparison's pseudo-structure holding the seed counts (planned vs implanted).
SEED_COUNT_STRUCTURE = "Seeds"
#: The post-plan dose formalisms: 1D point source (orientation uncertain) or 2D with axes.
FORMALISMS: tuple[str, ...] = ("1d", "2d")
#: Dose step (Gy) of the stored cumulative DVHs.
DVH_STEP_GY = 1.0
#: Most DVH samples stored per curve: a 1 Gy step to 600 Gy, past the 3 × prescription the
#: report draws (the DVH near the seeds goes on to thousands of Gy).
MAX_DVH_SAMPLES = 601
#: Metrics shown first within a structure, in this order (the rest keep the dosimetry's).
KEY_METRICS: tuple[str, ...] = (
    "d90_gy",
    "v100_percent",
    "d100_gy",
    "v150_percent",
    "d0_1cc_gy",
    "dmax_0_03cc_gy",
    "min_seed_distance_mm",
)
#: Rows not shown: inputs, not results (the prescription is the same in both columns).
HIDDEN_METRICS: tuple[str, ...] = ("prescription_gy",)
_LABELS = {
    "d90_gy": "D90",
    "d100_gy": "D100",
    "v100_percent": "V100",
    "v150_percent": "V150",
    "v200_percent": "V200",
    "dmean_gy": "Dmean",
    "v_t_ref_cm3": "target volume ≥ Rx",
    "v_t_1_5ref_cm3": "target volume ≥ 1.5 Rx",
    "v_ref_cm3": "volume ≥ Rx (all tissue)",
    "ci": "conformity index CI",
    "ei": "external index EI",
    "hi": "homogeneity index HI",
    "bed_d90_gy": "BED of D90",
    "eqd2_d90_gy": "EQD2 of D90",
    "dmax_0_03cc_gy": "Dmax (D0.03 cm³)",
    "dmax_voxel_gy": "Dmax (voxel)",
    "d0_1cc_gy": "D0.1 cm³",
    "d1cc_gy": "D1 cm³",
    "d2cc_gy": "D2 cm³",
    "min_seed_distance_mm": "nearest seed centre",
    "bed_d0_1cc_gy": "BED of D0.1 cm³",
    "eqd2_d0_1cc_gy": "EQD2 of D0.1 cm³",
    "bed_dmax_0_03cc_gy": "BED of D0.03 cm³",
    "eqd2_dmax_0_03cc_gy": "EQD2 of D0.03 cm³",
    "seeds_total": "seeds (all)",
    "seeds_inside": "inside the target",
    "seeds_outside": "outside the target",
    "seeds_migrated": "migrated (far from every needle)",
}
_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_PLAN_UID_RE = re.compile(r"^[0-9a-f]{32}$")
Vec3 = tuple[float, float, float]


def metric_label(metric: str) -> str:
    """The reader's name of a comparison metric key ("d90_gy" → "D90")."""
    return _LABELS.get(metric, metric.removesuffix("_gy").removesuffix("_percent"))


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def value_text(value: float | None, unit: str = "") -> str:
    """A comparison value as the GUI's table and the report print it: seed counts whole,
    ≥ 10 to 0.1, smaller to 0.01, no negative zero, "—" when absent."""
    if value is None or not _finite(value):
        return "—"
    if unit == "seeds":
        return f"{round(value)}"
    text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return text[1:] if text in ("-0.0", "-0.00") else text


def difference_text(
    difference: float | None, planned: float | None, postop: float | None, unit: str = ""
) -> str:
    """``difference`` (post-op − planned) signed, to the decimals of the values it is the
    difference of, so the column reads like the two beside it ("-4.3" beside 111.4 and
    107.2); seed counts whole; no "+0.0"; "—" when absent."""
    if difference is None or not _finite(difference):
        return "—"
    if unit == "seeds":
        return f"{round(difference):+d}" if round(difference) else "0"
    shown = [v for v in (planned, postop) if v is not None and _finite(v)]
    decimals = min((1 if abs(v) >= 10 else 2 for v in shown), default=2)
    text = f"{difference:+.{decimals}f}"
    return f"{0.0:.{decimals}f}" if float(text) == 0.0 else text


@dataclass(frozen=True)
class ComparisonRow:
    """One metric, planned vs implanted: ``difference = postop − planned`` (same unit);
    ``intraop`` the intra-operative re-plan's value, None without one."""

    structure: str
    metric: str
    unit: str
    planned: float | None
    postop: float | None
    intraop: float | None = None

    def __post_init__(self) -> None:
        if not self.structure or not self.metric:
            raise ValueError("a comparison row needs a structure and a metric")
        for name in ("planned", "postop", "intraop"):
            v = getattr(self, name)
            if v is not None and not (
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ):
                raise ValueError(f"comparison {name} value must be a finite number or None")

    @property
    def difference(self) -> float | None:
        if self.planned is None or self.postop is None:
            return None
        return self.postop - self.planned

    def to_dict(self) -> dict[str, object]:
        return {
            "structure": self.structure,
            "metric": self.metric,
            "unit": self.unit,
            "planned": self.planned,
            "intraop": self.intraop,
            "postop": self.postop,
            "difference": self.difference,
        }


def key_metrics_first(
    rows: Iterable[ComparisonRow], structure_order: Sequence[str] | None = None
) -> list[ComparisonRow]:
    """``rows`` without :data:`HIDDEN_METRICS`, one block per structure (``structure_order``
    first, the others in the rows' order) with :data:`KEY_METRICS` first in each block; the
    order within the rest is kept."""
    shown = [r for r in rows if r.metric not in HIDDEN_METRICS]
    names = [*(structure_order or ()), *(r.structure for r in shown)]
    order = {name: n for n, name in enumerate(dict.fromkeys(names))}

    def rank(r: ComparisonRow) -> tuple[int, int]:
        key = KEY_METRICS.index(r.metric) if r.metric in KEY_METRICS else len(KEY_METRICS)
        return (order[r.structure], key)

    return sorted(shown, key=rank)


@dataclass(frozen=True)
class DVHPair:
    """One structure's cumulative DVH, planned and post-op: volume (% of ``volume_cm3``)
    receiving at least ``n · step_gy`` Gy, n = 0, 1, … (curves may differ in length: each
    ends where it reaches 0 %, or at :data:`MAX_DVH_SAMPLES`)."""

    structure: str
    volume_cm3: float
    step_gy: float
    planned_percent: tuple[float, ...]
    postop_percent: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.structure:
            raise ValueError("a DVH needs its structure's name")
        if not (math.isfinite(self.volume_cm3) and self.volume_cm3 >= 0):
            raise ValueError("DVH volume must be a finite number ≥ 0 cm³")
        if not (math.isfinite(self.step_gy) and self.step_gy > 0):
            raise ValueError("DVH dose step must be > 0 Gy")
        for name in ("planned_percent", "postop_percent"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.ndim != 1 or not 1 <= v.size <= MAX_DVH_SAMPLES:
                raise ValueError(f"DVH {name} must hold 1…{MAX_DVH_SAMPLES} samples")
            if not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 100.0 + 1e-6:
                raise ValueError(f"DVH {name} must hold percentages 0…100")
            if np.any(np.diff(v) > 1e-6):
                raise ValueError(f"DVH {name} must not increase with dose (a cumulative DVH)")
            object.__setattr__(self, name, tuple(float(x) for x in v))

    def dose_gy(self, which: str) -> NDArray[np.float64]:
        """The dose axis (Gy) of the ``which`` ("planned" | "postop") curve."""
        n = len(self.planned_percent if which == "planned" else self.postop_percent)
        return np.arange(n, dtype=np.float64) * self.step_gy

    @classmethod
    def sample(cls, structure: str, planned: DVH, postop: DVH) -> DVHPair:
        """Both curves, every :data:`DVH_STEP_GY` up to where each reaches 0 % (at most
        :data:`MAX_DVH_SAMPLES` samples)."""
        return cls(structure, planned.volume_cm3, DVH_STEP_GY, _curve(planned), _curve(postop))


def _curve(dvh: DVH) -> tuple[float, ...]:
    """Cumulative % of ``dvh`` at 0, 1, 2 … × :data:`DVH_STEP_GY`; the last sample past its
    maximum dose (0 %) unless the curve is cut at :data:`MAX_DVH_SAMPLES`."""
    volume = dvh.volume_cm3
    if volume <= 0:
        return (0.0,)
    n = min(math.floor(dvh.dmax_gy / DVH_STEP_GY) + 2, MAX_DVH_SAMPLES)
    pct = np.array([dvh.v_gy(n_ * DVH_STEP_GY) for n_ in range(n)]) * (100.0 / volume)
    pct = np.minimum.accumulate(np.clip(pct, 0.0, 100.0))
    return tuple(round(float(p), 4) for p in pct)


@dataclass(frozen=True)
class VerificationRecord:
    """A post-implant verification (module docstring).

    verified_plan_uid / verified_revision / verified_plan_name: the plan verified.
    postop_series_instance_uid / postop_source_path / slice_thickness_mm: the post-op CT.
    verified_utc (ISO 8601 UTC) / verified_by: when and by whom. formalism: of the post-plan
    dose (:data:`FORMALISMS`). registration: one line on the registration used. seeds_expected
    / seeds_detected / clusters_split / metal_excluded: the automatic detection (the reviewed
    count is ``len(implanted_mm)``). planned_seed_ids, planned_mm: the planned seeds (LPS mm,
    planning frame); implanted_mm: the implanted seeds (planning frame); pairs: (planned
    index, implanted index) matched within gate_mm. comparison: every metric
    (:class:`ComparisonRow`); has_intraop: its intra-op column is filled. dvhs: both DVHs
    per structure. warnings: what the verification warned of.
    """

    verified_plan_uid: str
    verified_revision: int
    verified_plan_name: str
    postop_series_instance_uid: str
    postop_source_path: str
    slice_thickness_mm: float
    verified_utc: str
    verified_by: str
    formalism: str
    registration: str
    seeds_expected: int
    seeds_detected: int
    clusters_split: int
    metal_excluded: int
    gate_mm: float
    planned_seed_ids: tuple[str, ...]
    planned_mm: tuple[Vec3, ...]
    implanted_mm: tuple[Vec3, ...]
    pairs: tuple[tuple[int, int], ...]
    comparison: tuple[ComparisonRow, ...]
    has_intraop: bool = False
    dvhs: tuple[DVHPair, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _PLAN_UID_RE.match(self.verified_plan_uid):
            raise ValueError("the verified plan's UID is not a plan UID (32 hex digits)")
        if not isinstance(self.verified_revision, int) or self.verified_revision < 1:
            raise ValueError("the verified revision must be an integer ≥ 1")
        if self.formalism not in FORMALISMS:
            raise ValueError(f"formalism {self.formalism!r} is not one of {', '.join(FORMALISMS)}")
        if self.verified_utc and not _UTC_RE.match(self.verified_utc):
            raise ValueError(f"verification time {self.verified_utc!r} is not ISO 8601 UTC")
        for name in ("slice_thickness_mm", "gate_mm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0")
        for name in ("seeds_expected", "seeds_detected", "clusters_split", "metal_excluded"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer ≥ 0")
        planned = _points(self.planned_mm, "planned seed")
        implanted = _points(self.implanted_mm, "implanted seed")
        if len(self.planned_seed_ids) != len(planned):
            raise ValueError("one planned seed id per planned seed position")
        if len(set(self.planned_seed_ids)) != len(self.planned_seed_ids):
            raise ValueError("duplicate planned seed id")
        pairs = tuple((int(i), int(j)) for i, j in self.pairs)
        if any(not (0 <= i < len(planned) and 0 <= j < len(implanted)) for i, j in pairs):
            raise ValueError("a matched pair names a seed that is not in the record")
        if len({i for i, _ in pairs}) != len(pairs) or len({j for _, j in pairs}) != len(pairs):
            raise ValueError("a seed is matched twice")
        if len({d.structure for d in self.dvhs}) != len(self.dvhs):
            raise ValueError("two DVHs of the same structure")
        object.__setattr__(self, "planned_mm", planned)
        object.__setattr__(self, "implanted_mm", implanted)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "planned_seed_ids", tuple(self.planned_seed_ids))
        object.__setattr__(self, "comparison", tuple(self.comparison))
        object.__setattr__(self, "dvhs", tuple(self.dvhs))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # ------------------------------------------------------------------ derived
    @property
    def seeds_reviewed(self) -> int:
        """Implanted seeds after review (the detection's, with the reviewer's edits)."""
        return len(self.implanted_mm)

    @property
    def displacement_mm(self) -> NDArray[np.float64]:
        """(M, 3) implanted − planned of each pair (mm, planning frame)."""
        if not self.pairs:
            return np.zeros((0, 3))
        p = np.asarray(self.planned_mm)
        q = np.asarray(self.implanted_mm)
        i, j = np.asarray(self.pairs).T
        return q[j] - p[i]

    @property
    def distances_mm(self) -> NDArray[np.float64]:
        """(M,) displacement of each pair (mm)."""
        return np.linalg.norm(self.displacement_mm, axis=1)

    @property
    def unmatched_planned(self) -> list[str]:
        """Ids of the planned seeds no implanted seed was matched to."""
        done = {i for i, _ in self.pairs}
        return [sid for n, sid in enumerate(self.planned_seed_ids) if n not in done]

    @property
    def unmatched_implanted(self) -> list[int]:
        """Indices (into ``implanted_mm``) of the implanted seeds matched to no planned one."""
        done = {j for _, j in self.pairs}
        return [n for n in range(len(self.implanted_mm)) if n not in done]

    def row(self, structure: str, metric: str) -> ComparisonRow | None:
        """The comparison row of ``metric`` for ``structure``, or None."""
        return next(
            (r for r in self.comparison if r.structure == structure and r.metric == metric), None
        )

    def matching_summary(self) -> str:
        """One line: matched within the gate, median and largest displacement, unmatched."""
        return matching_line(
            self.distances_mm,
            self.gate_mm,
            len(self.unmatched_planned),
            len(self.unmatched_implanted),
            n_planned=len(self.planned_mm),
        )


def matching_line(
    distances_mm: NDArray[np.float64],
    gate_mm: float,
    n_unmatched_planned: int,
    n_unmatched_implanted: int,
    *,
    n_planned: int | None = None,
) -> str:
    """One line on a matching (the CLI's summary, the report): pairs within the gate (of
    ``n_planned`` when given), median and largest displacement (mm), seeds left unmatched."""
    n = len(distances_mm)
    of = f" of {n_planned} planned" if n_planned is not None else ""
    med = (
        f", median displacement {np.median(distances_mm):.1f} mm (max {np.max(distances_mm):.1f})"
        if n
        else ""
    )
    return (
        f"{n}{of} seeds matched within {gate_mm:g} mm{med}; {n_unmatched_planned} planned "
        f"and {n_unmatched_implanted} implanted unmatched"
    )


def _points(values: Sequence[Sequence[float]], what: str) -> tuple[Vec3, ...]:
    out = []
    for p in values:
        v = tuple(float(x) for x in p)
        if len(v) != 3 or not all(math.isfinite(x) and abs(x) <= 1e5 for x in v):
            raise ValueError(f"a {what} position must be 3 finite numbers (mm)")
        out.append((v[0] + 0.0, v[1] + 0.0, v[2] + 0.0))
    return tuple(out)  # type: ignore[return-value]
