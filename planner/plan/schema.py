"""Plan ⇄ JSON documents (the current plan-file format), with strict validation on the way in.

Every object must have exactly its keys (no unknown, none missing), every value its type and
range; a violation raises :class:`dose.errors.InputError` naming the file and the JSON path
(``plan.seedplan: plan.json structures[1].role: 'tumour' is not one of target, oar, other``).
Masks are passed separately (the plan file stores them as packed bits, see
:mod:`planner.plan.plan_file`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.plan.masks import Box, PackedBox, bounding_box, box_shape
from planner.plan.model import (
    REGISTRATION_METHODS,
    ROLES,
    STATUSES,
    CTReference,
    Goal,
    Needle,
    Plan,
    Prescription,
    Registration,
    Seed,
    SourceSpec,
    Structure,
)
from planner.plan.verification import FORMALISMS, ComparisonRow, DVHPair, VerificationRecord

__all__ = [
    "MaskRecord",
    "SchemaReader",
    "plan_from_doc",
    "plan_to_doc",
    "registration_to_doc",
    "verification_to_doc",
]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def mask_member(structure_id: str) -> str:
    """Zip member name of a structure's packed mask."""
    return f"masks/{structure_id}.bits"


# ====================================================================== writing
def _opt_date(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def plan_to_doc(plan: Plan) -> tuple[dict[str, Any], dict[str, PackedBox]]:
    """``(plan.json document, {member name: packed mask box})`` for a plan."""
    g = plan.ct.geometry
    masks: dict[str, PackedBox] = {}
    structures = []
    for s in plan.structures:
        tight = bounding_box(s.crop)  # the extent may have grown past erased voxels
        box = tuple(  # type: ignore[assignment]
            slice(b.start + t.start, b.start + t.stop) if t.stop > t.start else slice(0, 0)
            for b, t in zip(s.box, tight, strict=True)
        )
        packed = PackedBox.pack(box, s.crop[tight])
        member = mask_member(s.id)
        masks[member] = packed
        structures.append(
            {
                "id": s.id,
                "name": s.name,
                "role": s.role,
                "color_rgb": list(s.color_rgb),
                "origin": s.origin,
                "volume_cm3": round(s.volume_cm3, 6),
                "mask": {
                    "file": member,
                    "encoding": "packbits-zyx",
                    "box_zyx": [[b.start, b.stop] for b in box],
                    "voxel_count": packed.count,
                },
            }
        )
    rx = plan.prescription
    src = plan.source
    doc: dict[str, Any] = {
        "plan_uid": plan.plan_uid,
        "name": plan.name,
        "status": plan.status,
        "revision": plan.revision,
        "created_utc": plan.created_utc,
        "approved_by": plan.approved_by,
        "approved_utc": plan.approved_utc,
        "previous_sha256": plan.previous_sha256,
        "ct": {
            "patient_id": plan.ct.patient_id,
            "patient_name": plan.ct.patient_name,
            "study_instance_uid": plan.ct.study_instance_uid,
            "series_instance_uid": plan.ct.series_instance_uid,
            "frame_of_reference_uid": plan.ct.frame_of_reference_uid,
            "geometry": g.to_dict(),
            "geometry_sha256": plan.ct.geometry_sha256,
            "source_path": plan.ct.source_path,
        },
        "structures": structures,
        "prescription": None
        if rx is None
        else {"dose_gy": rx.dose_gy, "structure_id": rx.structure_id, "metric": rx.metric},
        "source": None
        if src is None
        else {
            "model_id": src.model_id,
            "model_sha256": src.model_sha256,
            "strength_u": src.strength_u,
            "entered_as": src.entered_as,
            "calibration_date": _opt_date(src.calibration_date),
            "implant_date": _opt_date(src.implant_date),
            "isotope": src.isotope,
        },
        "needles": [
            {"id": n.id, "entry_mm": list(n.entry_mm), "tip_mm": list(n.tip_mm), "label": n.label}
            for n in plan.needles
        ],
        "seeds": [
            {
                "id": s.id,
                "position_mm": list(s.position_mm),
                "axis": list(s.axis),
                "needle_id": s.needle_id,
                "strength_u": s.strength_u,
            }
            for s in plan.seeds
        ],
        "registration": registration_to_doc(plan.registration),
        "verification": verification_to_doc(plan.verification),
        "goals": [
            {
                "id": g_.id,
                "structure_id": g_.structure_id,
                "metric": g_.metric,
                "comparison": g_.comparison,
                "value": g_.value,
                "unit": g_.unit,
            }
            for g_ in plan.goals
        ],
    }
    return doc, masks


def registration_to_doc(reg: Registration | None) -> dict[str, Any] | None:
    """The plan.json form of a plan's registration (also what ``seedplan info --json`` and
    ``seedplan verify`` print), or None."""
    if reg is None:
        return None
    return {
        "postop_series_instance_uid": reg.postop_series_instance_uid,
        "postop_frame_of_reference_uid": reg.postop_frame_of_reference_uid,
        "postop_geometry_sha256": reg.postop_geometry_sha256,
        "postop_source_path": reg.postop_source_path,
        "matrix_lps_mm": [list(row) for row in reg.matrix_lps_mm],
        "method": reg.method,
        "metric_value": reg.metric_value,
        "registered_utc": reg.registered_utc,
        "registered_by": reg.registered_by,
        "nudged": reg.nudged,
    }


def verification_to_doc(rec: VerificationRecord | None) -> dict[str, Any] | None:
    """The plan.json form of a plan's verification record (format 2.3), or None."""
    if rec is None:
        return None
    return {
        "verified_plan_uid": rec.verified_plan_uid,
        "verified_revision": rec.verified_revision,
        "verified_plan_name": rec.verified_plan_name,
        "postop_series_instance_uid": rec.postop_series_instance_uid,
        "postop_source_path": rec.postop_source_path,
        "slice_thickness_mm": rec.slice_thickness_mm,
        "verified_utc": rec.verified_utc,
        "verified_by": rec.verified_by,
        "formalism": rec.formalism,
        "registration": rec.registration,
        "seeds_expected": rec.seeds_expected,
        "seeds_detected": rec.seeds_detected,
        "clusters_split": rec.clusters_split,
        "metal_excluded": rec.metal_excluded,
        "gate_mm": rec.gate_mm,
        "planned_seed_ids": list(rec.planned_seed_ids),
        "planned_mm": [list(p) for p in rec.planned_mm],
        "implanted_mm": [list(p) for p in rec.implanted_mm],
        "pairs": [list(p) for p in rec.pairs],
        "comparison": [
            {
                "structure": c.structure,
                "metric": c.metric,
                "unit": c.unit,
                "planned": c.planned,
                "intraop": c.intraop,
                "postop": c.postop,
            }
            for c in rec.comparison
        ],
        "has_intraop": rec.has_intraop,
        "dvhs": [
            {
                "structure": d.structure,
                "volume_cm3": d.volume_cm3,
                "step_gy": d.step_gy,
                "planned_percent": list(d.planned_percent),
                "postop_percent": list(d.postop_percent),
            }
            for d in rec.dvhs
        ],
        "warnings": list(rec.warnings),
    }


# ====================================================================== reading
class SchemaReader:
    """Typed, strict accessors that raise one-line InputErrors naming ``path`` and the key."""

    def __init__(self, path: str | Path, member: str = "plan.json") -> None:
        self.path = Path(path)
        self.member = member

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(f"{self.member} {where}: {problem}", self.path)

    def obj(self, value: Any, where: str, keys: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        unknown = sorted(set(value) - keys)
        missing = sorted(keys - set(value))
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}")
        if missing:
            raise self.fail(where, f"missing key(s) {', '.join(map(repr, missing))}")
        return value

    def list_(self, value: Any, where: str, max_len: int = 100_000) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(where, f"more than {max_len} entries")
        return value

    def str_(
        self,
        value: Any,
        where: str,
        *,
        max_len: int = 1024,
        pattern: re.Pattern[str] | None = None,
        empty: bool = True,
    ) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(where, f"longer than {max_len} characters")
        if value == "" and empty:
            return value
        if value == "" or (pattern is not None and not pattern.match(value)):
            raise self.fail(where, f"{value[:80]!r} is not valid here")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    def num(self, value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {type(value).__name__}")
        v = float(value)
        if not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(where, f"{value!r} is outside {lo:g}…{hi:g}")
        return v

    def int_(self, value: Any, where: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise self.fail(where, f"{value} is outside {lo}…{hi}")
        return int(value)

    def vec(
        self, value: Any, where: str, n: int = 3, lo: float = -1e5, hi: float = 1e5
    ) -> list[float]:
        items = self.list_(value, where)
        if len(items) != n:
            raise self.fail(where, f"expected {n} numbers, got {len(items)}")
        return [self.num(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(items)]

    def opt(self, value: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return None if value is None else fn(value, *args, **kw)

    def date_(self, value: Any, where: str) -> date:
        text = self.str_(value, where, max_len=10, empty=False)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"{text!r} is not an ISO 8601 date (YYYY-MM-DD)") from None

    def utc(self, value: Any, where: str) -> str:
        return self.str_(value, where, max_len=20, pattern=_UTC_RE)

    def sha(self, value: Any, where: str) -> str:
        return self.str_(value, where, max_len=64, pattern=_SHA_RE)

    def ident(self, value: Any, where: str) -> str:
        return self.str_(value, where, max_len=64, pattern=_ID_RE, empty=False)

    def build(self, where: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)``; its ValueError becomes a one-line InputError at ``where``."""
        try:
            return fn(*args, **kw)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None


_CT_KEYS = {
    "patient_id",
    "patient_name",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
    "geometry",
    "geometry_sha256",
    "source_path",
}
_PLAN_KEYS = {
    "plan_uid",
    "name",
    "status",
    "revision",
    "created_utc",
    "approved_by",
    "approved_utc",
    "previous_sha256",
    "ct",
    "structures",
    "prescription",
    "source",
    "needles",
    "seeds",
    "goals",
    "registration",
    "verification",
}
_REGISTRATION_KEYS = {
    "postop_series_instance_uid",
    "postop_frame_of_reference_uid",
    "postop_geometry_sha256",
    "postop_source_path",
    "matrix_lps_mm",
    "method",
    "metric_value",
    "registered_utc",
    "registered_by",
    "nudged",
}
_STRUCTURE_KEYS = {"id", "name", "role", "color_rgb", "origin", "volume_cm3", "mask"}
_MASK_KEYS = {"file", "encoding", "box_zyx", "voxel_count"}
_SOURCE_KEYS = {
    "model_id",
    "model_sha256",
    "strength_u",
    "entered_as",
    "calibration_date",
    "implant_date",
    "isotope",
}


def _geometry(r: SchemaReader, value: Any, where: str) -> GridGeometry:
    d = r.obj(value, where, {"shape_zyx", "origin_mm", "spacing_mm", "direction"})
    shape = r.list_(d["shape_zyx"], f"{where}.shape_zyx")
    if len(shape) != 3:
        raise r.fail(f"{where}.shape_zyx", "expected 3 integers")
    shape_t = tuple(r.int_(n, f"{where}.shape_zyx[{i}]", 1, 4096) for i, n in enumerate(shape))
    if shape_t[0] * shape_t[1] * shape_t[2] > 2**31:
        raise r.fail(f"{where}.shape_zyx", f"{list(shape_t)} is too large for a CT grid")
    origin = r.vec(d["origin_mm"], f"{where}.origin_mm")
    spacing = r.vec(d["spacing_mm"], f"{where}.spacing_mm", lo=1e-3, hi=100.0)
    rows = r.list_(d["direction"], f"{where}.direction")
    if len(rows) != 3:
        raise r.fail(f"{where}.direction", "expected a 3×3 matrix")
    direction = [
        r.vec(row, f"{where}.direction[{i}]", lo=-1.0, hi=1.0) for i, row in enumerate(rows)
    ]
    return r.build(
        where, GridGeometry, shape_t, np.asarray(origin), np.asarray(spacing), np.asarray(direction)
    )


def _registration(r: SchemaReader, value: Any, where: str) -> Registration | None:
    """The plan's post-op registration (format 2.1; ``registered_by`` since 2.2), or None;
    refuses a matrix that is not 4 × 4, holds a non-finite number or is not rigid, naming the
    field."""
    if value is None:
        return None
    d = r.obj(value, where, _REGISTRATION_KEYS)
    rows = r.list_(d["matrix_lps_mm"], f"{where}.matrix_lps_mm")
    if len(rows) != 4:
        raise r.fail(f"{where}.matrix_lps_mm", f"expected a 4×4 matrix, got {len(rows)} rows")
    matrix = tuple(
        tuple(r.vec(row, f"{where}.matrix_lps_mm[{i}]", n=4)) for i, row in enumerate(rows)
    )
    nudged = d["nudged"]
    if not isinstance(nudged, bool):
        raise r.fail(f"{where}.nudged", f"expected true or false, got {type(nudged).__name__}")
    return r.build(
        f"{where}.matrix_lps_mm",
        Registration,
        postop_series_instance_uid=r.str_(
            d["postop_series_instance_uid"], f"{where}.postop_series_instance_uid", max_len=64
        ),
        postop_frame_of_reference_uid=r.str_(
            d["postop_frame_of_reference_uid"],
            f"{where}.postop_frame_of_reference_uid",
            max_len=64,
        ),
        postop_geometry_sha256=r.str_(
            d["postop_geometry_sha256"],
            f"{where}.postop_geometry_sha256",
            max_len=64,
            pattern=_SHA_RE,
            empty=False,
        ),
        postop_source_path=r.str_(
            d["postop_source_path"], f"{where}.postop_source_path", max_len=4096
        ),
        matrix_lps_mm=matrix,
        method=r.choice(d["method"], f"{where}.method", REGISTRATION_METHODS),
        metric_value=r.opt(d["metric_value"], r.num, f"{where}.metric_value"),
        registered_utc=r.utc(d["registered_utc"], f"{where}.registered_utc"),
        registered_by=r.str_(d["registered_by"], f"{where}.registered_by", max_len=256),
        nudged=nudged,
    )


_VERIFICATION_KEYS = {
    "verified_plan_uid",
    "verified_revision",
    "verified_plan_name",
    "postop_series_instance_uid",
    "postop_source_path",
    "slice_thickness_mm",
    "verified_utc",
    "verified_by",
    "formalism",
    "registration",
    "seeds_expected",
    "seeds_detected",
    "clusters_split",
    "metal_excluded",
    "gate_mm",
    "planned_seed_ids",
    "planned_mm",
    "implanted_mm",
    "pairs",
    "comparison",
    "has_intraop",
    "dvhs",
    "warnings",
}
_COMPARISON_KEYS = {"structure", "metric", "unit", "planned", "intraop", "postop"}
_DVH_KEYS = {"structure", "volume_cm3", "step_gy", "planned_percent", "postop_percent"}
#: Most seeds a verification record holds (planned or implanted).
_MAX_RECORD_SEEDS = 10_000


def _verification(r: SchemaReader, value: Any, where: str) -> VerificationRecord | None:
    """The plan's post-implant verification record (format 2.3), or None; every field
    checked, a violation naming it."""
    if value is None:
        return None
    d = r.obj(value, where, _VERIFICATION_KEYS)

    def points(key: str) -> list[list[float]]:
        items = r.list_(d[key], f"{where}.{key}", _MAX_RECORD_SEEDS)
        return [r.vec(p, f"{where}.{key}[{i}]") for i, p in enumerate(items)]

    def count(key: str) -> int:
        return r.int_(d[key], f"{where}.{key}", 0, _MAX_RECORD_SEEDS)

    ids = [
        r.ident(v, f"{where}.planned_seed_ids[{i}]")
        for i, v in enumerate(r.list_(d["planned_seed_ids"], f"{where}.planned_seed_ids"))
    ]
    pairs = []
    for i, p in enumerate(r.list_(d["pairs"], f"{where}.pairs", _MAX_RECORD_SEEDS)):
        items = r.list_(p, f"{where}.pairs[{i}]")
        if len(items) != 2:
            raise r.fail(f"{where}.pairs[{i}]", "expected [planned index, implanted index]")
        pairs.append(
            tuple(
                r.int_(v, f"{where}.pairs[{i}][{k}]", 0, _MAX_RECORD_SEEDS)
                for k, v in enumerate(items)
            )
        )
    rows = []
    for i, c in enumerate(r.list_(d["comparison"], f"{where}.comparison")):
        w = f"{where}.comparison[{i}]"
        c = r.obj(c, w, _COMPARISON_KEYS)
        rows.append(
            r.build(
                w,
                ComparisonRow,
                r.str_(c["structure"], f"{w}.structure", max_len=256, empty=False),
                r.str_(c["metric"], f"{w}.metric", max_len=64, empty=False),
                r.str_(c["unit"], f"{w}.unit", max_len=16),
                r.opt(c["planned"], r.num, f"{w}.planned"),
                r.opt(c["postop"], r.num, f"{w}.postop"),
                r.opt(c["intraop"], r.num, f"{w}.intraop"),
            )
        )
    dvhs = []
    for i, c in enumerate(r.list_(d["dvhs"], f"{where}.dvhs", 1000)):
        w = f"{where}.dvhs[{i}]"
        c = r.obj(c, w, _DVH_KEYS)

        def curve(key: str, c: dict[str, Any] = c, w: str = w) -> list[float]:
            items = r.list_(c[key], f"{w}.{key}")
            return [r.num(v, f"{w}.{key}[{k}]", 0.0, 100.0 + 1e-6) for k, v in enumerate(items)]

        dvhs.append(
            r.build(
                w,
                DVHPair,
                r.str_(c["structure"], f"{w}.structure", max_len=256, empty=False),
                r.num(c["volume_cm3"], f"{w}.volume_cm3", 0.0, 1e6),
                r.num(c["step_gy"], f"{w}.step_gy", 1e-3, 1e3),
                tuple(curve("planned_percent")),
                tuple(curve("postop_percent")),
            )
        )
    has_intraop = d["has_intraop"]
    if not isinstance(has_intraop, bool):
        raise r.fail(
            f"{where}.has_intraop", f"expected true or false, got {type(has_intraop).__name__}"
        )
    warnings = [
        r.str_(v, f"{where}.warnings[{i}]", max_len=1024)
        for i, v in enumerate(r.list_(d["warnings"], f"{where}.warnings", 1000))
    ]
    return r.build(
        where,
        VerificationRecord,
        verified_plan_uid=r.str_(
            d["verified_plan_uid"],
            f"{where}.verified_plan_uid",
            max_len=32,
            pattern=re.compile(r"^[0-9a-f]{32}$"),
            empty=False,
        ),
        verified_revision=r.int_(d["verified_revision"], f"{where}.verified_revision", 1, 10_000),
        verified_plan_name=r.str_(
            d["verified_plan_name"], f"{where}.verified_plan_name", max_len=256
        ),
        postop_series_instance_uid=r.str_(
            d["postop_series_instance_uid"], f"{where}.postop_series_instance_uid", max_len=64
        ),
        postop_source_path=r.str_(
            d["postop_source_path"], f"{where}.postop_source_path", max_len=4096
        ),
        slice_thickness_mm=r.num(
            d["slice_thickness_mm"], f"{where}.slice_thickness_mm", 1e-3, 100.0
        ),
        verified_utc=r.utc(d["verified_utc"], f"{where}.verified_utc"),
        verified_by=r.str_(d["verified_by"], f"{where}.verified_by", max_len=256),
        formalism=r.choice(d["formalism"], f"{where}.formalism", FORMALISMS),
        registration=r.str_(d["registration"], f"{where}.registration", max_len=1024),
        seeds_expected=count("seeds_expected"),
        seeds_detected=count("seeds_detected"),
        clusters_split=count("clusters_split"),
        metal_excluded=count("metal_excluded"),
        gate_mm=r.num(d["gate_mm"], f"{where}.gate_mm", 1e-3, 1e3),
        planned_seed_ids=tuple(ids),
        planned_mm=tuple(tuple(p) for p in points("planned_mm")),
        implanted_mm=tuple(tuple(p) for p in points("implanted_mm")),
        pairs=tuple(pairs),
        comparison=tuple(rows),
        has_intraop=has_intraop,
        dvhs=tuple(dvhs),
        warnings=tuple(warnings),
    )


class MaskRecord:
    """Where and how a structure's mask is stored (read from plan.json, checked against the
    member's bytes by the plan-file reader)."""

    def __init__(self, member: str, box: Box, voxel_count: int) -> None:
        self.member = member
        self.box = box
        self.voxel_count = voxel_count

    @property
    def n_bytes(self) -> int:
        z, y, x = box_shape(self.box)
        return (z * y * x + 7) // 8


def _mask_record(
    r: SchemaReader, value: Any, where: str, sid: str, shape: tuple[int, ...]
) -> MaskRecord:
    d = r.obj(value, where, _MASK_KEYS)
    member = r.str_(d["file"], f"{where}.file", empty=False)
    if member != mask_member(sid):
        raise r.fail(f"{where}.file", f"expected {mask_member(sid)!r}, got {member!r}")
    r.choice(d["encoding"], f"{where}.encoding", ("packbits-zyx",))
    rows = r.list_(d["box_zyx"], f"{where}.box_zyx")
    if len(rows) != 3:
        raise r.fail(f"{where}.box_zyx", "expected 3 [start, stop] pairs (z, y, x)")
    box = []
    for i, (row, n) in enumerate(zip(rows, shape, strict=True)):
        pair = r.list_(row, f"{where}.box_zyx[{i}]")
        if len(pair) != 2:
            raise r.fail(f"{where}.box_zyx[{i}]", "expected [start, stop]")
        a = r.int_(pair[0], f"{where}.box_zyx[{i}][0]", 0, n)
        b = r.int_(pair[1], f"{where}.box_zyx[{i}][1]", a, n)
        box.append(slice(a, b))
    rec = MaskRecord(member, (box[0], box[1], box[2]), 0)
    z, y, x = box_shape(rec.box)
    rec.voxel_count = r.int_(d["voxel_count"], f"{where}.voxel_count", 0, z * y * x)
    return rec


def plan_from_doc(
    doc: Any, path: str | Path, read_mask: Callable[[MaskRecord, str], PackedBox]
) -> Plan:
    """A validated :class:`Plan` from a plan.json document (current format).

    ``read_mask(record, where)`` returns the packed box of one structure's mask (it checks the
    stored bytes against the record)."""
    r = SchemaReader(path)
    d = r.obj(doc, "(top level)", _PLAN_KEYS)
    ctd = r.obj(d["ct"], "ct", _CT_KEYS)
    geometry = _geometry(r, ctd["geometry"], "ct.geometry")
    ct = r.build(
        "ct",
        CTReference,
        patient_id=r.str_(ctd["patient_id"], "ct.patient_id", max_len=64),
        patient_name=r.str_(ctd["patient_name"], "ct.patient_name", max_len=324),
        study_instance_uid=r.str_(ctd["study_instance_uid"], "ct.study_instance_uid", max_len=64),
        series_instance_uid=r.str_(
            ctd["series_instance_uid"], "ct.series_instance_uid", max_len=64
        ),
        frame_of_reference_uid=r.str_(
            ctd["frame_of_reference_uid"], "ct.frame_of_reference_uid", max_len=64
        ),
        geometry=geometry,
        geometry_sha256=r.sha(ctd["geometry_sha256"], "ct.geometry_sha256"),
        source_path=r.str_(ctd["source_path"], "ct.source_path", max_len=4096),
    )
    structures = []
    for i, sd in enumerate(r.list_(d["structures"], "structures", 1000)):
        w = f"structures[{i}]"
        sd = r.obj(sd, w, _STRUCTURE_KEYS)
        sid = r.ident(sd["id"], f"{w}.id")
        rec = _mask_record(r, sd["mask"], f"{w}.mask", sid, geometry.shape_zyx)
        packed = read_mask(rec, f"{w}.mask")
        crop = packed.unpack()
        crop.setflags(write=False)
        color = r.vec(sd["color_rgb"], f"{w}.color_rgb", lo=0, hi=255)
        s = r.build(
            w,
            Structure,
            sid,
            r.str_(sd["name"], f"{w}.name", max_len=64, empty=False),
            r.choice(sd["role"], f"{w}.role", ROLES),
            geometry,
            packed.box,
            crop,
            (int(color[0]), int(color[1]), int(color[2])),
            r.str_(sd["origin"], f"{w}.origin", max_len=1024),
            packed.count,
        )
        stated = r.num(sd["volume_cm3"], f"{w}.volume_cm3", 0.0, 1e7)
        if abs(stated - s.volume_cm3) > 1e-5 + 1e-9 * s.volume_cm3:
            raise r.fail(
                f"{w}.volume_cm3", f"{stated:g} cm³ does not match its mask ({s.volume_cm3:g} cm³)"
            )
        structures.append(s)
    rx = None
    if d["prescription"] is not None:
        p = r.obj(d["prescription"], "prescription", {"dose_gy", "structure_id", "metric"})
        rx = r.build(
            "prescription",
            Prescription,
            r.num(p["dose_gy"], "prescription.dose_gy"),
            r.ident(p["structure_id"], "prescription.structure_id"),
            r.str_(p["metric"], "prescription.metric", max_len=16, empty=False),
        )
    src = None
    if d["source"] is not None:
        sd = r.obj(d["source"], "source", _SOURCE_KEYS)
        src = r.build(
            "source",
            SourceSpec,
            model_id=r.str_(sd["model_id"], "source.model_id", max_len=64, empty=False),
            model_sha256=r.str_(
                sd["model_sha256"], "source.model_sha256", max_len=64, pattern=_SHA_RE
            ),
            strength_u=r.opt(sd["strength_u"], r.num, "source.strength_u"),
            entered_as=r.choice(sd["entered_as"], "source.entered_as", ("U", "mCi")),
            calibration_date=r.opt(sd["calibration_date"], r.date_, "source.calibration_date"),
            implant_date=r.opt(sd["implant_date"], r.date_, "source.implant_date"),
            isotope=r.choice(sd["isotope"], "source.isotope", ("I-125",)),
        )
    needles = []
    for i, nd in enumerate(r.list_(d["needles"], "needles", 1000)):
        w = f"needles[{i}]"
        nd = r.obj(nd, w, {"id", "entry_mm", "tip_mm", "label"})
        needles.append(
            r.build(
                w,
                Needle,
                r.ident(nd["id"], f"{w}.id"),
                tuple(r.vec(nd["entry_mm"], f"{w}.entry_mm")),
                tuple(r.vec(nd["tip_mm"], f"{w}.tip_mm")),
                r.str_(nd["label"], f"{w}.label", max_len=64),
            )
        )
    seeds = []
    for i, sd in enumerate(r.list_(d["seeds"], "seeds", 10_000)):
        w = f"seeds[{i}]"
        sd = r.obj(sd, w, {"id", "position_mm", "axis", "needle_id", "strength_u"})
        seeds.append(
            r.build(
                w,
                Seed,
                r.ident(sd["id"], f"{w}.id"),
                tuple(r.vec(sd["position_mm"], f"{w}.position_mm")),
                tuple(r.vec(sd["axis"], f"{w}.axis", lo=-1.0, hi=1.0)),
                r.opt(sd["needle_id"], r.ident, f"{w}.needle_id"),
                r.opt(sd["strength_u"], r.num, f"{w}.strength_u"),
            )
        )
    goals = []
    for i, gd in enumerate(r.list_(d["goals"], "goals", 1000)):
        w = f"goals[{i}]"
        gd = r.obj(gd, w, {"id", "structure_id", "metric", "comparison", "value", "unit"})
        goals.append(
            r.build(
                w,
                Goal,
                r.ident(gd["id"], f"{w}.id"),
                r.ident(gd["structure_id"], f"{w}.structure_id"),
                r.str_(gd["metric"], f"{w}.metric", max_len=16, empty=False),
                r.choice(gd["comparison"], f"{w}.comparison", (">=", "<=")),
                r.num(gd["value"], f"{w}.value"),
                r.choice(gd["unit"], f"{w}.unit", ("Gy", "%", "cm3")),
            )
        )
    return r.build(
        "(top level)",
        Plan,
        plan_uid=r.str_(
            d["plan_uid"],
            "plan_uid",
            max_len=32,
            pattern=re.compile(r"^[0-9a-f]{32}$"),
            empty=False,
        ),
        ct=ct,
        structures=tuple(structures),
        prescription=rx,
        source=src,
        needles=tuple(needles),
        seeds=tuple(seeds),
        goals=tuple(goals),
        status=r.choice(d["status"], "status", STATUSES),
        revision=r.int_(d["revision"], "revision", 1, 10_000),
        name=r.str_(d["name"], "name", max_len=256),
        created_utc=r.utc(d["created_utc"], "created_utc"),
        approved_by=r.str_(d["approved_by"], "approved_by", max_len=256),
        approved_utc=r.utc(d["approved_utc"], "approved_utc"),
        previous_sha256=r.sha(d["previous_sha256"], "previous_sha256"),
        registration=_registration(r, d["registration"], "registration"),
        verification=_verification(r, d["verification"], "verification"),
    )
