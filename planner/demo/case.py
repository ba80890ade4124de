"""The demo case: a synthetic thoracic-spine CT with an epidural tumour at T9 and its masks.

Layout of a case folder (all bytes deterministic)::

    case.json            manifest (format, generator version, files, patient, structures,
                         suggested prescription, anatomical landmarks in LPS mm)
    ct/CT0001.dcm …      DICOM CT Image Storage series, one file per slice
    masks/<Name>.nrrd    uint8 label maps (1 inside) on the exact CT grid: GTV, SpinalCord,
                         SpinalCanal, VertebralBody (the involved T9 body)
    plan.seedplan        a finished example plan that meets its goals (full-size case only;
                         :mod:`planner.demo.plan`)
    postop/CT0001.dcm …  the plan's day-0 post-implant CT (:mod:`planner.demo.postop`)
    postop_true_seeds.csv  its true seed positions (post-op and planning frames, LPS mm)

:func:`ensure_demo_case` generates it once into the user cache (atomically) and returns it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own convention)

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.demo.phantom import PHANTOM_VERSION, Phantom, PhantomSpec, generate_phantom
from planner.dicom.ct_write import CTSeriesOptions, write_ct_series
from planner.imaging.volume import CTVolume, Mask, PatientInfo

__all__ = [
    "DEMO_CASE_FILE",
    "DEMO_CT_SUBDIR",
    "DEMO_MASK_NAMES",
    "DEMO_MASK_SUBDIR",
    "DEMO_VERSION",
    "check_demo_target",
    "demo_cache_dir",
    "ensure_demo_case",
    "foreign_entries",
    "is_demo_case",
    "load_demo_masks",
    "write_demo_case",
    "write_demo_case_atomically",
]

#: Version of the case folder's content; bump with any change of its bytes.
DEMO_VERSION = PHANTOM_VERSION
DEMO_CASE_FILE = "case.json"
DEMO_CASE_FORMAT = "seedplan-demo-case"
DEMO_CASE_FORMAT_VERSION = 1
DEMO_CT_SUBDIR = "ct"
DEMO_MASK_SUBDIR = "masks"
DEMO_MASK_NAMES = ("GTV", "SpinalCord", "SpinalCanal", "VertebralBody")
DEMO_MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "GTV": (255, 0, 0),
    "SpinalCord": (255, 255, 0),
    "SpinalCanal": (0, 200, 255),
    "VertebralBody": (0, 180, 0),
}
DEMO_PATIENT_NAME = "SEEDPLAN^DEMO"
DEMO_PATIENT_ID = "DEMO-0001"
#: Fixed acquisition date/time of the synthetic study (ISO 8601: 2024-09-17T09:30:00).
DEMO_STUDY_DATETIME = datetime(2024, 9, 17, 9, 30, 0)
#: Suggested post-implant prescription (D90 of the GTV), as in the published MESCC series.
DEMO_PRESCRIPTION_GY = 110.0
_UID_ENTROPY = ("SeedPlan demo case", f"v{DEMO_VERSION}")


def demo_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/seedplan/demo-v<N>`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seedplan" / f"demo-v{DEMO_VERSION}"


def _read_manifest(case_dir: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        data = json.loads((case_dir / DEMO_CASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != DEMO_CASE_FORMAT:
        return None
    return data


def is_demo_case(path: str | Path, *, complete: bool = False) -> bool:
    """True when ``path`` holds a SeedPlan demo case manifest (any version); with ``complete``,
    also require the current version and every listed file present."""
    case_dir = Path(path)
    data = _read_manifest(case_dir)
    if data is None:
        return False
    if not complete:
        return True
    if data.get("generator_version") != DEMO_VERSION:
        return False
    files = list(data.get("ct", {}).get("files", []))
    files += [s.get("file", "") for s in data.get("structures", {}).values()]
    files += _plan_files(data) + _postop_files(data)
    return bool(files) and all((case_dir / f).is_file() for f in files)


def _plan_files(data: dict) -> list[str]:  # type: ignore[type-arg]
    """The plan file a manifest lists (none for cases without a plan)."""
    entry = data.get("plan")
    return [str(entry["file"])] if isinstance(entry, dict) and entry.get("file") else []


def _postop_files(data: dict) -> list[str]:  # type: ignore[type-arg]
    """The post-op CT files and the truth CSV a manifest lists (none without a plan)."""
    files: list[str] = []
    postop = data.get("postop")
    if isinstance(postop, dict):
        files += [str(f) for f in postop.get("files", [])]
        if postop.get("truth"):
            files.append(str(postop["truth"]))
    return files


def foreign_entries(case_dir: str | Path) -> list[str]:
    """Top-level names in ``case_dir`` that the demo generator did not write (all of them when
    it is not a demo case); replacing the folder would delete these."""
    case = Path(case_dir)
    names = sorted(p.name for p in case.iterdir()) if case.is_dir() else []
    data = _read_manifest(case)
    if data is None:
        return names
    ours = {DEMO_CASE_FILE, DEMO_CT_SUBDIR, DEMO_MASK_SUBDIR, DEMO_EXPORTS_SUBDIR}
    files = list(data.get("ct", {}).get("files", []))
    files += [s.get("file", "") for s in data.get("structures", {}).values()]
    files += _plan_files(data) + _postop_files(data)
    ours |= {Path(f).parts[0] for f in files if f}
    return [n for n in names if n not in ours]


def _write_mask(mask: np.ndarray, geometry: GridGeometry, path: Path) -> None:
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetOrigin(tuple(float(v) for v in geometry.origin_mm))
    img.SetSpacing(tuple(float(v) for v in geometry.spacing_mm))
    img.SetDirection(tuple(float(v) for v in geometry.direction.ravel()))
    sitk.WriteImage(img, str(path), useCompression=True)


def _landmarks(ph: Phantom) -> dict:  # type: ignore[type-arg]
    """Anatomical landmarks in world LPS mm (for later generators: plans, post-op CTs)."""
    off = np.asarray(ph.spec.patient_offset_mm)
    an = ph.anatomy
    lower, upper = ph.geometry.bounds_world_mm()
    levels = []
    for lev in an.levels:
        centre = off + np.array([0.0, lev.y_mm, lev.z_mm])
        if lower[2] <= centre[2] <= upper[2]:
            levels.append(
                {
                    "name": lev.name,
                    "body_centre_mm": [round(float(v), 3) for v in centre],
                    "body_height_mm": lev.height_mm,
                }
            )
    gtv_kji = np.argwhere(ph.masks["GTV"]).mean(axis=0)
    gtv_centroid = ph.geometry.zyx_to_world(gtv_kji)
    return {
        "involved_level": an.involved_level,
        "vertebrae": levels,
        "gtv_centroid_mm": [round(float(v), 3) for v in gtv_centroid],
    }


DEMO_POSTOP_SUBDIR = "postop"
#: ``seedplan demo`` also writes the demo plan's exports here (not part of the manifest: the
#: PDF carries its print time).
DEMO_EXPORTS_SUBDIR = "exports"
DEMO_POSTOP_TRUTH = "postop_true_seeds.csv"
DEMO_POSTOP_DATETIME = datetime(2024, 9, 17, 14, 10, 0)  # the day-0 scan after the implant


def _write_postop(
    out: Path, plan_ct: CTVolume, info: PatientInfo, options: CTSeriesOptions, spec: PhantomSpec
) -> dict:  # type: ignore[type-arg]
    """The demo plan's post-op CT (:mod:`planner.demo.postop`) as DICOM, and its true seeds."""
    from dataclasses import replace as _replace

    from planner.demo.plan import DEMO_PLAN_FILE
    from planner.demo.postop import make_postop_ct
    from planner.plan.plan_file import load_plan

    plan = load_plan(out / DEMO_PLAN_FILE).plan
    post = make_postop_ct(plan, plan_ct)
    volume = CTVolume(
        hu=post.ct.hu,
        geometry=post.ct.geometry,
        info=_replace(info, series_description="SeedPlan demo: day-0 post-implant CT"),
    )
    paths = write_ct_series(
        volume,
        out / DEMO_POSTOP_SUBDIR,
        options=_replace(options, series_number=3, series_description="Post-implant 2.5mm (day 0)"),
        uid_entropy=(*_UID_ENTROPY, "post-op", repr(spec)),
        when=DEMO_POSTOP_DATETIME,
    )
    lines = [
        "# true implanted seeds of the demo post-op CT: post-op frame (x,y,z) and the planning "
        "frame (plan_x,plan_y,plan_z), LPS mm",
        "x_mm,y_mm,z_mm,plan_x_mm,plan_y_mm,plan_z_mm",
    ]
    for a, b in zip(post.seeds_postop_mm, post.seeds_plan_mm, strict=True):
        lines.append(",".join(f"{v:.3f}" for v in (*a, *b)))
    (out / DEMO_POSTOP_TRUTH).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "dir": DEMO_POSTOP_SUBDIR,
        "files": [p.relative_to(out).as_posix() for p in paths],
        "truth": DEMO_POSTOP_TRUTH,
        "seeds": len(post.seeds_plan_mm),
        "postop_to_plan": post.postop_to_plan.to_dict(),
        "description": "day-0 post-implant CT of plan.seedplan: needle errors, seed jitter, "
        "a small rigid patient shift; seeds with partial volume, streaks and noise",
    }


def write_demo_case(
    out_dir: str | Path,
    *,
    progress: Callable[[float, str], None] | None = None,
    spec: PhantomSpec | None = None,
    with_plan: bool | None = None,
) -> Path:
    """Generate the demo case into ``out_dir`` (created if needed) and return it.

    ``spec`` defaults to the full-size case (512 × 512 × 52, 0.78 × 0.78 × 2.5 mm); smaller specs
    are for tests. ``with_plan`` (default: for the full-size case only, the demo plan's search
    is tuned for its anatomy) also writes ``plan.seedplan`` and its post-op CT (``postop/``,
    true seeds in ``postop_true_seeds.csv``). Existing files of the same names
    are overwritten; nothing else is touched.
    """
    report = progress or (lambda _f, _m: None)
    spec = spec or PhantomSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    ph = generate_phantom(spec, progress=lambda f, m: report(0.6 * f, f"phantom: {m}"))
    info = PatientInfo(
        patient_name=DEMO_PATIENT_NAME,
        patient_id=DEMO_PATIENT_ID,
        series_description="SeedPlan demo: thoracic spine, MESCC T9",
        modality="CT",
        study_date=DEMO_STUDY_DATETIME.date().isoformat(),
    )
    volume = CTVolume(hu=ph.hu, geometry=ph.geometry, info=info)
    options = CTSeriesOptions(
        series_number=2,
        series_description="Thorax 2.5mm synthetic (portal venous)",
        study_description="SeedPlan demo: MESCC T9 (synthetic phantom)",
        accession_number="DEMO0001",
        manufacturer="SeedPlan synthetic phantom",
        model_name="demo_phantom",
        software_version=f"demo_phantom v{PHANTOM_VERSION}",
        institution="SeedPlan",
        patient_sex="O",
        kvp=120.0,
        body_part="CHEST",
        convolution_kernel="STANDARD",
        derived=True,
        window_center_hu=40.0,
        window_width_hu=400.0,
    )
    ct_dir = out / DEMO_CT_SUBDIR
    paths = write_ct_series(
        volume,
        ct_dir,
        options=options,
        uid_entropy=(*_UID_ENTROPY, repr(spec)),
        when=DEMO_STUDY_DATETIME,
        progress=lambda f, m: report(0.6 + 0.3 * f, m),
    )
    report(0.92, "writing masks")
    mask_dir = out / DEMO_MASK_SUBDIR
    mask_dir.mkdir(exist_ok=True)
    structures = {}
    for name in DEMO_MASK_NAMES:
        rel = f"{DEMO_MASK_SUBDIR}/{name}.nrrd"
        _write_mask(ph.masks[name], ph.geometry, out / rel)
        structures[name] = {
            "file": rel,
            "label_value": 1,
            "volume_cm3": round(
                float(ph.masks[name].sum()) * ph.geometry.voxel_volume_mm3 / 1000.0, 3
            ),
            "color_rgb": list(DEMO_MASK_COLORS[name]),
        }
    structures["VertebralBody"]["description"] = f"{ph.anatomy.involved_level} vertebral body"
    structures["GTV"]["description"] = (
        "epidural tumour invading the left posterior body and pedicle, compressing the cord"
    )

    from pydicom import dcmread

    first = dcmread(paths[0], stop_before_pixels=True)
    plan_entry = None
    postop_entry = None
    if with_plan if with_plan is not None else spec == PhantomSpec():
        from dataclasses import replace as _replace

        from planner.demo.plan import DEMO_PLAN_FILE, write_demo_plan

        report(0.94, "demo plan")
        uids = _replace(
            info,
            study_instance_uid=str(first.StudyInstanceUID),
            series_instance_uid=str(first.SeriesInstanceUID),
            frame_of_reference_uid=str(first.FrameOfReferenceUID),
        )
        # source_path relative to the case folder: planner.plan.plan_ct finds it there.
        plan_ct = CTVolume(hu=ph.hu, geometry=ph.geometry, info=uids, source_path=DEMO_CT_SUBDIR)
        _, rep = write_demo_plan(
            out, plan_ct, ph.masks, progress=lambda f, m: report(0.94 + 0.05 * f, m)
        )
        report(0.985, "post-op CT")
        postop_entry = _write_postop(out, plan_ct, info, options, spec)
        from planner.demo.plan import demo_plan_stamp

        plan_entry = {
            **demo_plan_stamp(),
            "file": DEMO_PLAN_FILE,
            "needles": int(rep.chosen.get("needles", 0)),
            "seeds": int(rep.chosen.get("seeds", 0)),
            "description": "posterolateral needles >= 5 mm from the cord and the canal; "
            "goals: PTV_eval D90 >= 110 Gy, SpinalCord D0.1cc <= 50 Gy",
        }
    manifest = {
        "format": DEMO_CASE_FORMAT,
        "format_version": DEMO_CASE_FORMAT_VERSION,
        "generator": "planner.demo.phantom",
        "generator_version": DEMO_VERSION,
        "description": (
            "Synthetic contrast-enhanced (portal-venous) thoracic CT, T7-T11, with metastatic "
            "epidural spinal cord compression at T9. Not patient data."
        ),
        "patient": {"name": DEMO_PATIENT_NAME, "id": DEMO_PATIENT_ID},
        "study_date": DEMO_STUDY_DATETIME.date().isoformat(),
        "ct": {
            "dir": DEMO_CT_SUBDIR,
            "files": [p.relative_to(out).as_posix() for p in paths],
            "study_instance_uid": str(first.StudyInstanceUID),
            "series_instance_uid": str(first.SeriesInstanceUID),
            "frame_of_reference_uid": str(first.FrameOfReferenceUID),
            "geometry": ph.geometry.to_dict(),
            "hu_sha256": hashlib.sha256(np.ascontiguousarray(ph.hu).tobytes()).hexdigest(),
            "noise_sd_hu": spec.noise_sd_hu,
        },
        "structures": structures,
        "suggested_prescription": {
            "target": "GTV",
            "dose_gy": DEMO_PRESCRIPTION_GY,
            "metric": "D90",
            "isotope": "I-125",
            "note": "total permanent-implant dose (D-infinity), TG-43",
        },
        "anatomy": _landmarks(ph),
    }
    if plan_entry is not None:
        manifest["plan"] = plan_entry
    if postop_entry is not None:
        manifest["postop"] = postop_entry
    (out / DEMO_CASE_FILE).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    report(1.0, "demo case written")
    return out


def check_demo_target(target: str | Path, *, force: bool = False) -> Path:
    """The output rule for a demo case folder; returns the final path (links followed).

    ``target`` is absent (its parent must exist), an empty folder, or - with ``force`` - a
    previous demo case holding nothing else. Devices, FIFOs, regular files, missing parents,
    folders with other files (even with ``force``) raise :class:`OutputError` naming ``target``.
    """
    from planner.files.safe_write import OutputError, OutputExistsError, check_output_folder

    final = check_output_folder(target)
    if not final.is_dir():
        return final
    foreign = foreign_entries(final)
    if foreign and not is_demo_case(final):
        raise OutputError(
            "folder is not empty and is not a SeedPlan demo case; choose a new or empty folder",
            target,
        )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise OutputError(
            f"folder holds a demo case and other files ({shown}) that replacing it would "
            "delete; choose a new or empty folder",
            target,
        )
    if is_demo_case(final) and not force:
        raise OutputExistsError("holds a demo case already; use --force to replace it", target)
    return final


def _verify_case(case_dir: Path) -> None:
    """Every file of the manifest is there and non-empty, every mask reads back."""
    data = _read_manifest(case_dir)
    if data is None:
        raise OSError(errno.EIO, "the written case.json does not read back")
    files = list(data.get("ct", {}).get("files", []))
    masks = [s.get("file", "") for s in data.get("structures", {}).values()]
    for rel in files + masks + _plan_files(data) + _postop_files(data):
        if not (case_dir / rel).is_file() or (case_dir / rel).stat().st_size == 0:
            raise OSError(errno.EIO, f"{rel} was not written")
    for rel in masks:
        sitk.ReadImage(str(case_dir / rel))
    for rel in _plan_files(data):
        from planner.plan.plan_file import load_plan

        load_plan(case_dir / rel)  # complete and intact (raises InputError otherwise)


def write_demo_case_atomically(
    target: str | Path,
    *,
    progress: Callable[[float, str], None] | None = None,
    spec: PhantomSpec | None = None,
    force: bool = False,
    make_parents: bool = False,
) -> Path:
    """Write the case into a hidden temporary sibling of ``target``, verify and fsync it, and
    swap it in with renames, so ``target`` is never seen half-written (old case kept on any
    failure, byte for byte).

    The target follows :func:`check_demo_target` (a previous demo case is replaced only with
    ``force``). ``make_parents`` creates missing parent folders (the user cache only; outputs the
    user names never get folders created). Write failures (full disk, read-only folder) raise
    :class:`~planner.files.safe_write.OutputError` naming ``target``."""
    from planner.files.safe_write import OutputError, fsync_folder, fsync_tree

    target = Path(target).absolute()
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    final = check_demo_target(target, force=force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise OutputError(
            f"cannot write in folder {final.parent}: {exc.strerror}; nothing was written", target
        ) from None
    try:
        write_demo_case(tmp, progress=progress, spec=spec)
        _verify_case(tmp)
        fsync_tree(tmp)
        check_demo_target(target, force=force)  # again: time has passed
        old: Path | None = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / "case")
        try:
            os.replace(tmp, final)
        except OSError:
            # Someone else created it meanwhile (e.g. a second window): keep theirs if valid.
            if old is not None:
                os.replace(old / "case", final)
            if not is_demo_case(final, complete=True):
                raise
        fsync_folder(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OutputError:
        raise
    except (OSError, RuntimeError) as exc:  # RuntimeError: SimpleITK's write failures
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            why = "no space left on the device"
        elif isinstance(exc, OSError):
            why = exc.strerror or str(exc)
        else:
            why = (str(exc).strip().splitlines() or ["write failed"])[-1].strip()
            why = why.replace(str(tmp), str(target))
        raise OutputError(
            f"cannot write the demo case: {why}; nothing was changed", target
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_demo_case(progress: Callable[[float, str], None] | None = None) -> Path:
    """The demo case in the user cache, generated on first use; returns the case folder."""
    case_dir = demo_cache_dir()
    manifest = _read_manifest(case_dir) or {}
    # A cache written before the demo had its plan and post-op CT, or before the current demo
    # plan (its version and seed tables: planner.demo.plan.demo_plan_stamp) is regenerated.
    from planner.demo.plan import demo_plan_is_current

    if (
        is_demo_case(case_dir, complete=True)
        and demo_plan_is_current(manifest)
        and "postop" in manifest
    ):
        return case_dir
    return write_demo_case_atomically(
        case_dir, progress=progress, spec=PhantomSpec(), force=True, make_parents=True
    )


def load_demo_masks(case_dir: str | Path, geometry: GridGeometry) -> dict[str, Mask]:
    """The case's ground-truth masks as :class:`Mask` on ``geometry`` (the loaded CT's grid).

    Raises InputError when a mask file is missing/unreadable or not on that grid."""
    case = Path(case_dir)
    data = _read_manifest(case)
    if data is None:
        raise InputError("not a SeedPlan demo case (no valid case.json)", case)
    masks: dict[str, Mask] = {}
    for name, entry in data.get("structures", {}).items():
        path = case / str(entry.get("file", ""))
        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(
                f"cannot read mask {name!r}: {str(exc).strip().splitlines()[0]}", path
            ) from exc
        mgeom = GridGeometry(
            tuple(reversed(img.GetSize())),
            np.asarray(img.GetOrigin()),
            np.asarray(img.GetSpacing()),
            np.asarray(img.GetDirection()).reshape(3, 3),
        )
        if not mgeom.same_as(geometry, tol_mm=1e-3):
            raise InputError(f"mask {name!r} is not on the CT grid", path)
        voxels = sitk.GetArrayFromImage(img) == int(entry.get("label_value", 1))
        color = tuple(entry.get("color_rgb", DEMO_MASK_COLORS.get(name, (255, 0, 0))))
        masks[name] = Mask(name=name, voxels=voxels, geometry=geometry, color_rgb=color)  # type: ignore[arg-type]
    return masks
