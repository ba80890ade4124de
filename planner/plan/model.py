"""The plan document: immutable values with stable ids.

A :class:`Plan` is a tree of frozen values. An edit never changes a plan: it makes a new one that
shares every unchanged value (and every unchanged mask array) with the old one (see
:mod:`planner.plan.commands`). Ids are stable strings (``"st-…"`` structures, ``"nd-…"``
needles, ``"sd-…"`` seeds, ``"gl-…"`` goals) that survive renames, saves and reloads.

Structures: one master representation
-------------------------------------
A structure *is* a binary labelmap on the plan's CT grid (as 3D Slicer's segmentations are):
``Structure.mask`` is a read-only ``(z, y, x)`` bool array with exactly the CT's shape and
geometry (stored as its extent: a box and the values inside it, see :class:`Structure`).
Contours (for display, for RTSTRUCT export) are derived from it; imported RTSTRUCT contours are
rasterised once, on import, into it. **One volume rule:** a structure's volume is
its voxel count × the CT voxel volume (:attr:`Structure.volume_cm3`), and the plan's DVH
(:func:`planner.plan.dvh.structure_dvh`) integrates exactly those voxels, each with weight 1, so
the volume the structure panel shows is the volume under the DVH.

Coordinates are LPS millimetres; strengths are air-kerma strength S_K in U (apparent activity in
mCi is derived with 1.270 U/mCi for I-125); doses are total permanent-implant doses D∞ in Gy.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.source_strength import PLAUSIBLE_STRENGTH_U, decay_between
from dose.units import U_PER_MCI_I125
from planner.imaging.volume import CTVolume
from planner.plan.masks import (
    Box,
    bounding_box,
    box_intersection,
    box_shape,
    box_size,
    box_union,
    normalise_box,
    relative_box,
)
from planner.plan.verification import VerificationRecord

__all__ = [
    "REGISTRATION_METHODS",
    "ROLES",
    "STATUSES",
    "CTReference",
    "Goal",
    "Needle",
    "Plan",
    "Prescription",
    "Registration",
    "Role",
    "Seed",
    "SourceSpec",
    "Status",
    "Structure",
    "geometry_sha256",
    "new_id",
]

Role = Literal["target", "oar", "other"]
Status = Literal["draft", "reviewed", "approved"]
ROLES: tuple[str, ...] = ("target", "oar", "other")
STATUSES: tuple[str, ...] = ("draft", "reviewed", "approved")
#: Prescription metrics: D<x> = the dose covering x % of the reference structure's volume.
_METRIC_RE = re.compile(r"^D(100|[1-9][0-9]?)(\.[0-9]+)?$")
#: Plausible total permanent-implant prescription doses (Gy) for I-125.
MIN_PD_GY, MAX_PD_GY = 1.0, 400.0
#: Plausible I-125 seed strengths (U): the one rule of :mod:`dose.source_strength`.
MIN_STRENGTH_U, MAX_STRENGTH_U = PLAUSIBLE_STRENGTH_U
Vec3 = tuple[float, float, float]


def new_id(prefix: str) -> str:
    """A new stable id: ``"<prefix>-"`` + 12 random hex digits (e.g. ``"st-3fa9c1d20b7e"``)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _vec3(values: object, what: str) -> Vec3:
    try:
        v = tuple(float(c) for c in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be 3 numbers") from None
    if len(v) != 3 or not all(math.isfinite(c) for c in v):
        raise ValueError(f"{what} must be 3 finite numbers (mm), got {v}")
    return (v[0], v[1], v[2])


def geometry_sha256(geometry: GridGeometry) -> str:
    """SHA-256 of a grid's shape, origin, spacing (rounded to 1 µm) and direction (to 1e-7)."""
    doc = {
        "shape_zyx": [int(n) for n in geometry.shape_zyx],
        "origin_mm": [round(float(v), 3) + 0.0 for v in geometry.origin_mm],
        "spacing_mm": [round(float(v), 3) + 0.0 for v in geometry.spacing_mm],
        "direction": [round(float(v), 7) + 0.0 for v in geometry.direction.reshape(-1)],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ====================================================================== CT reference
@dataclass(frozen=True, eq=False)
class CTReference:
    """The CT a plan belongs to: who, which series, and where every voxel is.

    A plan is never attached to a CT with another patient ID, frame of reference or geometry
    (:meth:`mismatches`). ``geometry`` is the CT grid (LPS mm) every mask lives on.
    """

    patient_id: str
    patient_name: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    geometry: GridGeometry
    geometry_sha256: str = ""
    source_path: str = ""  # where the CT was loaded from (information only)

    def __post_init__(self) -> None:
        digest = geometry_sha256(self.geometry)
        if self.geometry_sha256 and self.geometry_sha256 != digest:
            raise ValueError("CT reference: geometry checksum does not match its geometry")
        object.__setattr__(self, "geometry_sha256", digest)

    @classmethod
    def from_volume(cls, ct: CTVolume) -> CTReference:
        info = ct.info
        return cls(
            patient_id=info.patient_id,
            patient_name=info.patient_name,
            study_instance_uid=info.study_instance_uid,
            series_instance_uid=info.series_instance_uid,
            frame_of_reference_uid=info.frame_of_reference_uid,
            geometry=ct.geometry,
            source_path=ct.source_path,
        )

    def mismatches(self, ct: CTVolume) -> tuple[list[str], list[str]]:
        """``(problems, warnings)`` of attaching this plan to ``ct``.

        Problems (refuse): another patient ID, frame of reference UID, or grid geometry.
        Warnings (show): another series or study with the same patient, frame and grid.
        """
        info = ct.info
        problems: list[str] = []
        warnings: list[str] = []
        if info.patient_id != self.patient_id:
            problems.append(f"patient ID {info.patient_id!r} is not the plan's {self.patient_id!r}")
        if info.frame_of_reference_uid != self.frame_of_reference_uid:
            problems.append(
                f"frame of reference {info.frame_of_reference_uid or '(none)'} is not the "
                f"plan's {self.frame_of_reference_uid or '(none)'}"
            )
        if not ct.geometry.same_as(self.geometry, tol_mm=1e-3):
            problems.append(
                "CT grid (shape, origin, spacing or direction) is not the plan's "
                f"(CT {'×'.join(map(str, ct.geometry.shape_xyz))}, plan "
                f"{'×'.join(map(str, self.geometry.shape_xyz))} voxels)"
            )
        if not problems and info.series_instance_uid != self.series_instance_uid:
            warnings.append(
                f"CT series {info.series_instance_uid} is not the plan's "
                f"{self.series_instance_uid} (same patient, frame of reference and grid)"
            )
        return problems, warnings


# ====================================================================== structures
@dataclass(frozen=True, eq=False)
class Structure:
    """One structure: a bool labelmap on the CT grid (the master representation).

    Stored as its *extent*: ``box`` (a (z, y, x) tuple of slices on the CT grid) and ``crop``,
    the read-only bool values inside it (shape ``box_shape(box)``); every voxel outside the box
    is outside the structure. An edit copies only the extent, never the whole grid.
    :attr:`mask` gives the full ``(z, y, x)`` read-only array on the CT grid (built once per
    structure value, 1-40 ms on 512×512×150: use it for whole-volume work such as DVHs); for
    interactive work use :meth:`values_in` (a box) and :meth:`slice_mask` (one slice), which
    cost only the box (≈0.1 ms for a 512² slice).

    geometry : the plan's CT grid (LPS mm)
    role : "target", "oar" (organ at risk) or "other"
    color_rgb : 0–255 each
    origin : where it came from ("RTSTRUCT RS.dcm ROI 3", "mask GTV.nrrd", "drawn")
    """

    id: str
    name: str
    role: Role
    geometry: GridGeometry
    box: Box
    crop: NDArray[np.bool_]
    color_rgb: tuple[int, int, int] = (255, 0, 0)
    origin: str = ""
    _count: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValueError("a structure needs a non-empty id")
        if not self.name.strip():
            raise ValueError("a structure needs a non-empty name")
        if self.role not in ROLES:
            raise ValueError(f"structure role {self.role!r} is not one of {', '.join(ROLES)}")
        if len(self.color_rgb) != 3 or not all(0 <= int(c) <= 255 for c in self.color_rgb):
            raise ValueError(f"structure color {self.color_rgb} is not three values in 0–255")
        box = normalise_box(self.box, self.geometry.shape_zyx)
        c = self.crop
        if not isinstance(c, np.ndarray) or c.dtype != np.bool_ or c.flags.writeable:
            raise ValueError("a structure's voxels must be a read-only bool ndarray")
        if tuple(c.shape) != box_shape(box):
            raise ValueError(
                f"structure {self.name!r}: voxels of shape {c.shape} do not fill its box "
                f"{box_shape(box)}"
            )
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "color_rgb", tuple(int(v) for v in self.color_rgb))

    @classmethod
    def from_mask(
        cls,
        id: str,
        name: str,
        role: Role,
        mask: ArrayLike,
        geometry: GridGeometry,
        color_rgb: tuple[int, int, int] = (255, 0, 0),
        origin: str = "",
    ) -> Structure:
        """A structure from a full ``(z, y, x)`` mask on ``geometry`` (nonzero = inside)."""
        m = np.asarray(mask)
        if tuple(m.shape) != geometry.shape_zyx:
            raise ValueError(
                f"structure {name!r}: mask shape {m.shape} is not the CT grid {geometry.shape_zyx}"
            )
        if m.dtype != np.bool_:
            m = m != 0
        box = bounding_box(m)
        crop = np.array(m[box], dtype=np.bool_, order="C", copy=True)
        crop.setflags(write=False)
        return cls(id, name, role, geometry, box, crop, color_rgb, origin)

    @cached_property
    def mask(self) -> NDArray[np.bool_]:
        """The full ``(z, y, x)`` read-only bool array on the CT grid."""
        full = np.zeros(self.geometry.shape_zyx, dtype=np.bool_)
        full[self.box] = self.crop
        full.setflags(write=False)
        return full

    @cached_property
    def voxel_count(self) -> int:
        """Number of voxels inside."""
        return int(np.count_nonzero(self.crop)) if self._count is None else int(self._count)

    @property
    def volume_cm3(self) -> float:
        """Voxel count × CT voxel volume (cm³): the one volume rule (module docstring)."""
        return self.voxel_count * self.geometry.voxel_volume_mm3 / 1000.0

    def values_in(self, box: Box) -> NDArray[np.bool_]:
        """The mask's values inside ``box`` (a normalised box on the CT grid), a new array."""
        out = np.zeros(box_shape(box), dtype=np.bool_)
        inner = box_intersection(box, self.box)
        if box_size(inner):
            out[relative_box(inner, box)] = self.crop[relative_box(inner, self.box)]
        return out

    def slice_mask(self, k: int) -> NDArray[np.bool_]:
        """The ``(y, x)`` mask of slice ``k`` (cheap: for drawing and per-slice tools)."""
        _, ny, nx = self.geometry.shape_zyx
        return self.values_in((slice(k, k + 1), slice(0, ny), slice(0, nx)))[0]

    def patched(
        self, box: Box, values: NDArray[np.bool_], *, voxel_count: int | None = None
    ) -> Structure:
        """The same structure with ``values`` written into ``box`` (normalised, on the CT
        grid); copies only the union of its extent and ``box``."""
        if box_size(box) == 0:
            return self
        union = box_union(self.box, box)
        crop = np.zeros(box_shape(union), dtype=np.bool_)
        if box_size(self.box):
            crop[relative_box(self.box, union)] = self.crop
        crop[relative_box(box, union)] = values
        crop.setflags(write=False)
        return Structure(
            self.id,
            self.name,
            self.role,
            self.geometry,
            union,
            crop,
            self.color_rgb,
            self.origin,
            voxel_count,
        )

    def with_fields(self, **changes: object) -> Structure:
        """The same structure (same voxels and count) with other name/role/color/origin."""
        return replace(self, _count=self.voxel_count, **changes)  # type: ignore[arg-type]


# ====================================================================== prescription, source
@dataclass(frozen=True)
class Prescription:
    """Prescribed dose: ``metric`` (e.g. "D90") of structure ``structure_id`` ≥ ``dose_gy``.

    dose_gy : total permanent-implant dose D∞ (Gy)
    """

    dose_gy: float
    structure_id: str
    metric: str = "D90"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dose_gy) and MIN_PD_GY <= self.dose_gy <= MAX_PD_GY):
            raise ValueError(
                f"prescription dose {self.dose_gy:g} Gy is outside the plausible range "
                f"{MIN_PD_GY:g}-{MAX_PD_GY:g} Gy"
            )
        if not _METRIC_RE.match(self.metric):
            raise ValueError(f"prescription metric {self.metric!r} is not of the form D90")


@dataclass(frozen=True)
class SourceSpec:
    """The seed model and its strength.

    model_id : a model of resources/seeds ("6711"); model_sha256 : its table checksum at
    planning time (INT-4). strength_u : air-kerma strength S_K per seed at calibration (U), or
    None when not yet given. entered_as : "U" or "mCi" (what the user typed; mCi is shown
    beside U). calibration_date / implant_date : ISO dates, or None.
    """

    model_id: str
    model_sha256: str = ""
    strength_u: float | None = None
    entered_as: Literal["U", "mCi"] = "U"
    calibration_date: date | None = None
    implant_date: date | None = None
    isotope: str = "I-125"

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("a source needs a seed model id")
        if self.strength_u is not None and not (
            math.isfinite(self.strength_u) and MIN_STRENGTH_U <= self.strength_u <= MAX_STRENGTH_U
        ):
            raise ValueError(
                f"seed strength {self.strength_u:g} U is outside the plausible range "
                f"{MIN_STRENGTH_U}-{MAX_STRENGTH_U} U for I-125"
            )
        if self.entered_as not in ("U", "mCi"):
            raise ValueError(f"strength unit {self.entered_as!r} is not U or mCi")
        if (self.calibration_date is None) != (self.implant_date is None):
            raise ValueError("give both the calibration and the implant date, or neither")
        if self.calibration_date is not None and self.implant_date is not None:
            try:
                decay = decay_between(self.calibration_date, self.implant_date)
            except InputError as exc:
                raise ValueError(exc.problem) from None
            at_implant = None if self.strength_u is None else self.strength_u * decay.factor
            if at_implant is not None and not MIN_STRENGTH_U <= at_implant <= MAX_STRENGTH_U:
                raise ValueError(
                    f"seed strength at implant {at_implant:.3g} U is outside the plausible "
                    f"range {MIN_STRENGTH_U}-{MAX_STRENGTH_U} U for I-125"
                )

    @property
    def activity_mci(self) -> float | None:
        """Apparent activity (mCi) = S_K / 1.270 U/mCi."""
        return None if self.strength_u is None else self.strength_u / U_PER_MCI_I125

    @property
    def decay_factor(self) -> float:
        """Strength left at implant / strength at calibration (1 when the dates are unknown)."""
        if self.calibration_date is None or self.implant_date is None:
            return 1.0
        return decay_between(self.calibration_date, self.implant_date).factor

    @property
    def strength_at_implant_u(self) -> float | None:
        return None if self.strength_u is None else self.strength_u * self.decay_factor


# ====================================================================== needles, seeds, goals
@dataclass(frozen=True)
class Needle:
    """A needle track from ``entry_mm`` to ``tip_mm`` (LPS mm)."""

    id: str
    entry_mm: Vec3
    tip_mm: Vec3
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "entry_mm", _vec3(self.entry_mm, "needle entry"))
        object.__setattr__(self, "tip_mm", _vec3(self.tip_mm, "needle tip"))


@dataclass(frozen=True)
class Seed:
    """A seed at ``position_mm`` (LPS mm) with unit axis ``axis``, on needle ``needle_id``
    (or free, None); ``strength_u`` overrides the source's strength when set."""

    id: str
    position_mm: Vec3
    axis: Vec3 = (0.0, 0.0, 1.0)
    needle_id: str | None = None
    strength_u: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "position_mm", _vec3(self.position_mm, "seed position"))
        a = np.asarray(_vec3(self.axis, "seed axis"))
        n = float(np.linalg.norm(a))
        if not n > 0:
            raise ValueError("a seed axis must not be zero")
        object.__setattr__(self, "axis", _vec3(a / n, "seed axis"))
        if self.strength_u is not None and not (
            math.isfinite(self.strength_u) and MIN_STRENGTH_U <= self.strength_u <= MAX_STRENGTH_U
        ):
            raise ValueError(f"seed strength {self.strength_u:g} U is outside the plausible range")


@dataclass(frozen=True)
class Goal:
    """A planning goal: ``metric`` of ``structure_id`` ``comparison`` ``value`` ``unit``.

    E.g. ``Goal("gl-…", "st-…", "D90", ">=", 110.0, "Gy")``, ``Goal(…, "D0.1cc", "<=", 50.0,
    "Gy")``, ``Goal(…, "V100", ">=", 95.0, "%")``.
    """

    id: str
    structure_id: str
    metric: str
    comparison: Literal[">=", "<="]
    value: float
    unit: Literal["Gy", "%", "cm3"]

    def __post_init__(self) -> None:
        if self.comparison not in (">=", "<="):
            raise ValueError(f"goal comparison {self.comparison!r} is not >= or <=")
        if self.unit not in ("Gy", "%", "cm3"):
            raise ValueError(f"goal unit {self.unit!r} is not Gy, % or cm3")
        if not self.metric or not math.isfinite(self.value):
            raise ValueError("a goal needs a metric and a finite value")


# ====================================================================== registration
#: How a stored registration was made: "mattes-mi-bone" (automatic, Mattes mutual information
#: on bone, :mod:`planner.postop.register`) or "manual" (entered by hand, no optimiser).
REGISTRATION_METHODS: tuple[str, ...] = ("mattes-mi-bone", "manual")
_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: Tolerance of the rigidity check (‖RRᵀ − I‖, |det R − 1|, bottom row) of a stored matrix.
RIGID_TOL = 1e-6
Matrix4 = tuple[
    tuple[float, float, float, float],
    tuple[float, float, float, float],
    tuple[float, float, float, float],
    tuple[float, float, float, float],
]


@dataclass(frozen=True)
class Registration:
    """The rigid registration of a post-op CT to the plan's CT (post-implant verification).

    postop_series_instance_uid / postop_frame_of_reference_uid / postop_geometry_sha256: the
    post-op CT it belongs to (:func:`geometry_sha256` of its grid); postop_source_path: where
    it was loaded from (information only). matrix_lps_mm: 4 × 4 homogeneous rigid map from the
    post-op CT to the planning CT, ``x_plan = M · (x_postop, 1)`` (LPS mm; rotation block
    orthonormal with det +1, bottom row 0 0 0 1). method: one of
    :data:`REGISTRATION_METHODS`; metric_value: the optimiser's final metric (Mattes MI,
    negative: lower is better), None when not optimised; registered_utc: when (ISO 8601 UTC);
    registered_by: who made or stored it (the user name; "" when unknown: files before format
    2.2); nudged: True when the automatic result was corrected by hand.

    A registration is a *post-implant verification record*, not part of what is planned and
    approved: it may be attached to (or removed from, or replaced on) an approved revision
    without changing that approval (:mod:`planner.plan.document`), which is why it records who
    and when. The approval's checksum excludes it
    (:func:`planner.plan.plan_file.approved_content_sha256`).
    """

    postop_series_instance_uid: str
    postop_frame_of_reference_uid: str
    postop_geometry_sha256: str
    matrix_lps_mm: Matrix4
    method: str = "mattes-mi-bone"
    metric_value: float | None = None
    registered_utc: str = ""
    nudged: bool = False
    postop_source_path: str = ""
    registered_by: str = ""

    def __post_init__(self) -> None:
        try:
            m = np.asarray(self.matrix_lps_mm, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("registration matrix must be a 4×4 matrix of numbers") from None
        if m.shape != (4, 4):
            raise ValueError(f"registration matrix must be 4×4, got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("registration matrix must hold finite numbers (no NaN or infinity)")
        rot = m[:3, :3]
        if (
            np.abs(m[3] - (0.0, 0.0, 0.0, 1.0)).max() > RIGID_TOL
            or np.abs(rot @ rot.T - np.eye(3)).max() > RIGID_TOL
            or abs(float(np.linalg.det(rot)) - 1.0) > RIGID_TOL
        ):
            raise ValueError(
                "registration matrix is not rigid (its 3×3 block must be a rotation, "
                "its last row 0 0 0 1)"
            )
        if np.abs(m[:3, 3]).max() > 1e4:
            raise ValueError("registration translation is larger than 10 m")
        if self.method not in REGISTRATION_METHODS:
            raise ValueError(
                f"registration method {self.method!r} is not one of "
                f"{', '.join(REGISTRATION_METHODS)}"
            )
        if self.metric_value is not None and not (
            isinstance(self.metric_value, (int, float)) and math.isfinite(self.metric_value)
        ):
            raise ValueError("registration metric value must be a finite number or None")
        if not _SHA_RE.match(self.postop_geometry_sha256):
            raise ValueError("registration post-op geometry checksum is not a SHA-256")
        if self.registered_utc and not _UTC_RE.match(self.registered_utc):
            raise ValueError(f"registration time {self.registered_utc!r} is not ISO 8601 UTC")
        if not isinstance(self.nudged, bool):
            raise ValueError("registration 'nudged' must be true or false")
        if not isinstance(self.registered_by, str) or len(self.registered_by) > 256:
            raise ValueError("registration 'registered_by' must be a user name (≤ 256 characters)")
        rows = tuple(tuple(float(v) + 0.0 for v in row) for row in m)
        object.__setattr__(self, "matrix_lps_mm", rows)
        if self.metric_value is not None:
            object.__setattr__(self, "metric_value", float(self.metric_value))

    @property
    def matrix(self) -> NDArray[np.float64]:
        """The 4 × 4 matrix as an array (a new one)."""
        return np.asarray(self.matrix_lps_mm, dtype=np.float64)

    @property
    def rotation(self) -> NDArray[np.float64]:
        """The 3 × 3 rotation block."""
        return self.matrix[:3, :3]

    @property
    def translation_mm(self) -> NDArray[np.float64]:
        """The translation (LPS mm)."""
        return self.matrix[:3, 3]

    def matches(self, ct: CTVolume) -> bool:
        """True when this registration belongs to ``ct`` (same series and grid)."""
        return (
            ct.info.series_instance_uid == self.postop_series_instance_uid
            and geometry_sha256(ct.geometry) == self.postop_geometry_sha256
        )


# ====================================================================== the plan
@dataclass(frozen=True, eq=False)
class Plan:
    """One revision of a plan (immutable; see the module docstring).

    status : "draft" → "reviewed" → "approved". An approved plan is read-only: editing it means
    starting revision + 1 (:meth:`planner.plan.document.PlanDocument.new_revision`); only its
    post-implant verification record (``registration``) may still be attached.
    approved_by / approved_utc : who approved this revision and when (ISO 8601 UTC), or "".
    previous_sha256 : approved-content checksum of the revision this one was started from
    (:func:`planner.plan.plan_file.approved_content_sha256`: its verification record
    excluded; "" for 1).
    registration : the post-op CT's registration to this plan's CT (post-implant
    verification), or None (format 2.1; its user since 2.2). verification : the post-implant
    verification this plan reports (:class:`planner.plan.verification.VerificationRecord`;
    ``seedplan verify`` stores it in its copy of the plan, whose seeds are the implanted
    ones), or None (format 2.3). Both are verification records: the fields that may change
    on an approved revision (:mod:`planner.plan.document`).
    """

    plan_uid: str
    ct: CTReference
    structures: tuple[Structure, ...] = ()
    prescription: Prescription | None = None
    source: SourceSpec | None = None
    needles: tuple[Needle, ...] = ()
    seeds: tuple[Seed, ...] = ()
    goals: tuple[Goal, ...] = ()
    status: Status = "draft"
    revision: int = 1
    name: str = ""
    created_utc: str = ""
    approved_by: str = ""
    approved_utc: str = ""
    previous_sha256: str = ""
    registration: Registration | None = None
    verification: VerificationRecord | None = None

    def __post_init__(self) -> None:
        if self.registration is not None and not isinstance(self.registration, Registration):
            raise ValueError("a plan's registration must be a Registration record or None")
        if self.verification is not None and not isinstance(self.verification, VerificationRecord):
            raise ValueError("a plan's verification must be a VerificationRecord or None")
        object.__setattr__(self, "structures", tuple(self.structures))
        object.__setattr__(self, "needles", tuple(self.needles))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "goals", tuple(self.goals))
        if self.status not in STATUSES:
            raise ValueError(f"plan status {self.status!r} is not one of {', '.join(STATUSES)}")
        if not isinstance(self.revision, int) or self.revision < 1:
            raise ValueError(f"plan revision must be an integer ≥ 1, got {self.revision!r}")
        ids = [s.id for s in self.structures]
        _unique(ids, "structure id")
        _unique([s.name.strip().lower() for s in self.structures], "structure name")
        for s in self.structures:
            if s.geometry is not self.ct.geometry and not s.geometry.same_as(self.ct.geometry):
                raise ValueError(f"structure {s.name!r} is not on the plan's CT grid")
        _unique([n.id for n in self.needles], "needle id")
        _unique([s.id for s in self.seeds], "seed id")
        _unique([g.id for g in self.goals], "goal id")
        known = set(ids)
        if self.prescription is not None and self.prescription.structure_id not in known:
            raise ValueError(
                f"prescription structure {self.prescription.structure_id!r} is not in the plan"
            )
        for g in self.goals:
            if g.structure_id not in known:
                raise ValueError(f"goal {g.id} refers to a missing structure {g.structure_id!r}")
        needle_ids = {n.id for n in self.needles}
        for s in self.seeds:
            if s.needle_id is not None and s.needle_id not in needle_ids:
                raise ValueError(f"seed {s.id} is on a missing needle {s.needle_id!r}")

    @classmethod
    def new(cls, ct: CTReference | CTVolume, **fields: object) -> Plan:
        """A new draft, revision 1, with a fresh plan UID."""
        ref = ct if isinstance(ct, CTReference) else CTReference.from_volume(ct)
        return cls(plan_uid=uuid.uuid4().hex, ct=ref, **fields)  # type: ignore[arg-type]

    @property
    def geometry(self) -> GridGeometry:
        """The CT grid every mask lives on."""
        return self.ct.geometry

    @property
    def is_approved(self) -> bool:
        return self.status == "approved"

    def check_ct(self, ct: CTVolume, *, where: str | Path | None = None) -> list[str]:
        """Refuse to attach this plan to ``ct`` when its patient ID, frame of reference or grid
        differ (InputError, one line naming ``where`` or the CT's path); returns the warnings
        to show otherwise (e.g. another series with the same frame and grid)."""
        problems, warnings = self.ct.mismatches(ct)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InputError(
                f"this CT is not the plan's: {problems[0]}{more}",
                where if where is not None else (ct.source_path or None),
            )
        return warnings

    def structure(self, structure_id: str) -> Structure:
        """The structure with this id (KeyError naming it when absent)."""
        for s in self.structures:
            if s.id == structure_id:
                return s
        raise KeyError(f"no structure with id {structure_id!r} in the plan")

    def structure_index(self, structure_id: str) -> int:
        for i, s in enumerate(self.structures):
            if s.id == structure_id:
                return i
        raise KeyError(f"no structure with id {structure_id!r} in the plan")

    def structure_named(self, name: str) -> Structure | None:
        """The structure called ``name`` (case-insensitive), or None."""
        key = name.strip().lower()
        return next((s for s in self.structures if s.name.strip().lower() == key), None)

    def evolve(self, **changes: object) -> Plan:
        """A new plan with ``changes`` (validated); everything else is shared."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}")
        seen.add(v)
