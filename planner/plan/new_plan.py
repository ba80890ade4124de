"""A new plan from a CT, an RTSTRUCT made by another system and/or mask images on the CT grid.

``new_plan(ct, rtstruct=..., masks=..., roles=..., pd_gy=..., model=..., strength_u=...)``
returns the plan and the notes the user should see (skipped ROIs, clipped contours …). It is
what ``seedplan plan new`` runs and what the GUI's "New plan" will run.

Structures become labelmaps on the CT grid (the plan's master representation,
:mod:`planner.plan.model`):

* RTSTRUCT contours are rasterised with the project's sub-voxel rasteriser
  (``rasterise_roi_on_grid``: ½-slice end caps, exact edge coverage) and a voxel is inside when
  at least half of it is covered. The RTSTRUCT's frame of reference must be the CT's, and the
  CT grid must be axial (identity direction), else the import is refused.
* A mask image (NIfTI/MHA/NRRD) must lie on exactly the CT grid (shape, origin, spacing and
  direction to 1 µm); nonzero voxels are inside. A label image with several labels is refused.

Roles default from the names (:func:`default_role`: GTV/CTV/PTV/ITV → target; cord, canal and
other named organs → organ at risk; anything else → other) and can be overridden per name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report
from planner.dicom.rtstruct import read_rtstruct
from planner.imaging.image_files import read_image_array
from planner.imaging.volume import CTVolume
from planner.plan.clock import utc_now
from planner.plan.model import (
    ROLES,
    CTReference,
    Plan,
    Prescription,
    Role,
    SourceSpec,
    Structure,
    new_id,
)
from planner.structures.rasterise import rasterise_roi_on_grid

__all__ = ["default_role", "new_plan"]

_TARGET_RE = re.compile(r"(^|[^a-z])(gtv|ctv|ptv|itv)", re.IGNORECASE)
_OAR_WORDS = (
    "cord", "canal", "cauda", "brainstem", "esophag", "oesophag", "trachea", "bowel", "rectum",
    "bladder", "urethra", "kidney", "aorta", "heart", "lung", "liver", "stomach", "duoden",
    "spleen", "pancrea", "plexus", "nerve", "chiasm",
)  # fmt: skip
_COLORS: dict[str, list[tuple[int, int, int]]] = {
    "target": [(255, 0, 0), (255, 128, 0), (255, 0, 255)],
    "oar": [(255, 255, 0), (0, 200, 255), (0, 255, 128), (160, 120, 255)],
    "other": [(0, 180, 0), (180, 180, 180), (120, 80, 40)],
}
#: A voxel belongs to a rasterised contour when at least this fraction of it is covered.
OCCUPANCY_THRESHOLD = 0.5


def default_role(name: str) -> Role:
    """The role a structure name implies: target, oar (organ at risk) or other."""
    if _TARGET_RE.search(name):
        return "target"
    low = name.lower()
    if any(w in low for w in _OAR_WORDS):
        return "oar"
    return "other"


def _prescription_target(structures: Sequence[Structure]) -> Structure | None:
    targets = [s for s in structures if s.role == "target"]
    if len(targets) <= 1:
        return targets[0] if targets else None
    for prefix in ("ptv", "ctv", "gtv"):  # the outermost target margin is prescribed to
        for s in targets:
            if s.name.lower().startswith(prefix):
                return s
    return targets[0]


def _rtstruct_structures(
    path: Path,
    ct: CTVolume,
    notes: list[str],
    cancel: CancelFn | None,
    progress: ProgressFn | None,
) -> list[tuple[str, np.ndarray, tuple[int, int, int] | None, str]]:
    ss = read_rtstruct(path)
    ct_for = ct.info.frame_of_reference_uid
    if ss.frame_of_reference_uid and ct_for and ss.frame_of_reference_uid != ct_for:
        raise InputError(
            f"frame of reference {ss.frame_of_reference_uid} is not the CT's {ct_for}: these "
            "contours belong to another image",
            path,
        )
    if not ss.frame_of_reference_uid:
        notes.append(f"{path.name}: no frame of reference UID; assumed to be the CT's")
    elif not ct_for:
        notes.append(
            f"{path.name}: the CT has no frame of reference UID (an image file?); the "
            "RTSTRUCT's frame could not be checked against it"
        )
    rs_patient = _patient_id(path)
    if rs_patient and ct.info.patient_id and rs_patient != ct.info.patient_id:
        raise InputError(
            f"patient ID {rs_patient!r} is not the CT's {ct.info.patient_id!r}: these contours "
            "belong to another patient",
            path,
        )
    notes.extend(f"{path.name}: {w}" for w in getattr(ss, "warnings", []))
    if not ct.geometry.is_axis_aligned:
        raise InputError(
            "contours can be imported only onto an axial CT grid (identity direction); this "
            "CT is oblique",
            path,
        )
    out = []
    rois = list(ss.rois)
    slice_mm = float(ct.geometry.spacing_mm[2])
    for i, roi in enumerate(rois):
        check_cancelled(cancel)
        report(progress, 0.3 + 0.5 * i / max(len(rois), 1), f"rasterising {roi.name}")
        if roi.is_point_roi:
            notes.append(f"{path.name}: ROI {roi.name!r} is a point/marker ROI; not imported")
            continue
        if not roi.contours:
            notes.append(f"{path.name}: ROI {roi.name!r} has no closed contours; not imported")
            continue
        pts = np.vstack(roi.contours)
        outside = ~ct.geometry.contains_world(pts)
        occ = rasterise_roi_on_grid(roi, ct.geometry, slice_thickness_mm=slice_mm)
        mask = occ >= OCCUPANCY_THRESHOLD
        if not mask.any():
            notes.append(f"{path.name}: ROI {roi.name!r} lies outside the CT; not imported")
            continue
        if outside.any():
            notes.append(
                f"{path.name}: ROI {roi.name!r} extends beyond the CT ({int(outside.sum())} of "
                f"{len(pts)} contour points outside); clipped to the CT"
            )
        out.append((roi.name, mask, roi.color_rgb, f"RTSTRUCT {path.name} ROI {roi.number}"))
    return out


def _patient_id(path: Path) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # read_rtstruct has already read the file; this is only a check
        return ""
    return str(getattr(ds, "PatientID", "") or "").strip()


def _mask_structure(name: str, path: Path, ct: CTVolume) -> np.ndarray:
    arr, geometry = read_image_array(path, max_memory_bytes=8 * ct.hu.size + 2**20)
    if not geometry.same_as(ct.geometry, tol_mm=1e-3):
        g, c = geometry, ct.geometry
        raise InputError(
            f"mask {name!r} is not on the CT grid (mask {'×'.join(map(str, g.shape_xyz))} voxels"
            f" at origin ({', '.join(f'{v:.2f}' for v in g.origin_mm)}) mm, spacing "
            f"{'/'.join(f'{v:.3g}' for v in g.spacing_mm)} mm; CT "
            f"{'×'.join(map(str, c.shape_xyz))} at ({', '.join(f'{v:.2f}' for v in c.origin_mm)})"
            f" mm, {'/'.join(f'{v:.3g}' for v in c.spacing_mm)} mm)",
            path,
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(f"mask {name!r} holds non-finite values", path)
    inside = arr != 0
    values = arr[inside]
    if values.size and values.min() != values.max():
        labels = np.unique(values)
        shown = ", ".join(f"{v:g}" for v in labels[:5]) + (", …" if labels.size > 5 else "")
        raise InputError(
            f"mask {name!r} has {labels.size} labels ({shown}); give one structure per file",
            path,
        )
    return inside


def new_plan(
    ct: CTVolume,
    *,
    rtstruct: str | Path | None = None,
    masks: Sequence[tuple[str, str | Path]] = (),
    roles: Mapping[str, str] | None = None,
    pd_gy: float | None = None,
    model: str | None = None,
    strength_u: float | None = None,
    activity_mci: float | None = None,
    calibration_date: date | None = None,
    implant_date: date | None = None,
    name: str = "",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[Plan, list[str]]:
    """A new draft plan on ``ct`` and the notes for the user (module docstring).

    pd_gy : prescription (total dose D∞, Gy) as D90 of the target (PTV before CTV before GTV
    when there are several). strength_u / activity_mci : per seed at calibration (U, or mCi ×
    1.270 U/mCi), with ``model`` (a seed model id of resources/seeds). Raises InputError.
    """
    from dose.sources import load_model
    from dose.units import mci_to_u

    notes: list[str] = []
    found: list[tuple[str, np.ndarray, tuple[int, int, int] | None, str]] = []
    if rtstruct is not None:
        report(progress, 0.2, "reading RTSTRUCT")
        found += _rtstruct_structures(Path(rtstruct), ct, notes, cancel, progress)
    for mask_name, mask_path in masks:
        check_cancelled(cancel)
        report(progress, 0.85, f"reading mask {mask_name}")
        mpath = Path(mask_path)
        found.append((mask_name, _mask_structure(mask_name, mpath, ct), None, f"mask {mpath.name}"))
    seen: dict[str, str] = {}
    for sname, _m, _c, origin in found:
        key = sname.strip().lower()
        if not key:
            raise InputError(f"a structure from {origin} has an empty name")
        if key in seen:
            raise InputError(f"structure {sname!r} is given twice ({seen[key]} and {origin})")
        seen[key] = origin
    roles = dict(roles or {})
    by_key = {n.strip().lower(): n for n, *_ in found}
    for rname, role in roles.items():
        if rname.strip().lower() not in by_key:
            known = ", ".join(by_key.values()) or "none"
            raise InputError(f"--role {rname}: no structure of that name (structures: {known})")
        if role not in ROLES:
            raise InputError(f"--role {rname}={role}: the role must be one of {', '.join(ROLES)}")
    role_of = {k.strip().lower(): v for k, v in roles.items()}
    ref = CTReference.from_volume(ct)
    structures: list[Structure] = []
    used: dict[str, int] = {}
    for sname, mask, color, origin in found:
        role = role_of.get(sname.strip().lower(), default_role(sname))
        if color is None:
            palette = _COLORS[role]
            color = palette[used.get(role, 0) % len(palette)]
            used[role] = used.get(role, 0) + 1
        structures.append(
            Structure.from_mask(
                new_id("st"),
                sname.strip(),
                role,  # type: ignore[arg-type]
                mask,
                ref.geometry,
                color,
                origin,
            )
        )
        if not mask.any():
            notes.append(f"structure {sname!r} is empty (0 voxels)")
    prescription = None
    if pd_gy is not None:
        target = _prescription_target(structures)
        if target is None:
            raise InputError(
                "--pd-gy needs a target structure (a GTV/CTV/PTV name, or --role NAME=target)"
            )
        try:
            prescription = Prescription(float(pd_gy), target.id, "D90")
        except ValueError as exc:
            raise InputError(f"--pd-gy: {exc}") from None
    source = None
    if strength_u is not None and activity_mci is not None:
        raise InputError("give --strength-U or --activity-mCi, not both")
    if (strength_u is not None or activity_mci is not None) and model is None:
        raise InputError("a seed strength needs its seed model (--model)")
    if model is not None:
        sm = load_model(model)
        strength = strength_u if activity_mci is None else mci_to_u(float(activity_mci))
        try:
            source = SourceSpec(
                sm.model_id,
                sm.checksum,
                None if strength is None else float(strength),
                "mCi" if activity_mci is not None else "U",
                calibration_date,
                implant_date,
            )
        except ValueError as exc:
            raise InputError(f"source: {exc}") from None
    plan = Plan.new(
        ref,
        structures=tuple(structures),
        prescription=prescription,
        source=source,
        created_utc=utc_now(),
        name=name,
    )
    report(progress, 1.0, "plan ready")
    return plan, notes
