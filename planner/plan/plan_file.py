"""``.seedplan`` plan files: one zip of versioned JSON and packed masks; safe saving.

Layout (format 2.3)::

    manifest.json            {"format": "seedplan-plan", "format_version": "2.3",
                              "app_version", "saved_utc", "content_sha256",
                              "members": {name: sha256}}
    plan.json                the plan (schema: :mod:`planner.plan.schema`)
    masks/<structure id>.bits  np.packbits of the mask inside its bounding box (C order, z y x)

``content_sha256`` is the SHA-256 of the member names and their SHA-256s (sorted): it depends on
the plan only (not on the save time), so equal plans have equal content hashes.
:func:`approved_content_sha256` is the same hash of the plan without its post-implant
verification records (the registration and the verification): what an approval covers.
Attaching either to an approved revision changes ``content_sha256`` but not
``approved_content_sha256``; a new
revision's ``previous_sha256`` is the approved-content hash of the revision it came from.

Loading (:func:`load_plan`) refuses — one line naming the file and the problem — anything that
is not a complete, intact plan file of a known version: not a zip or truncated, a member
missing, a checksum that does not match (damaged, or edited outside SeedPlan), a key unknown or
missing, a value of the wrong type or range, a mask whose bytes or voxel count disagree with
plan.json, or a format newer than this version reads. Older formats are migrated one way, in
memory (``MIGRATIONS``: vN → vN+1, each tested); the file itself is never changed on load.

Saving (:func:`save_plan`) uses the project's one safe-write rule
(:mod:`planner.files.safe_write`): a temporary file in the same folder, fsync, then the
temporary file is re-read and fully validated and its content hash compared with the plan's
before ``os.replace`` puts it in place and the folder is fsynced. On any failure (killed process,
full disk, read-only folder) the previous file stays byte-identical and an
:class:`~planner.files.safe_write.OutputError` says what happened.

Format history: 1.0 stored each mask on the whole CT grid (no box) and no ``entered_as`` for
the strength; it was the first draft of this layout and no release wrote it, but its migration
to 2.0 is kept and tested as the pattern for every later change of the format. 2.1 adds the
optional ``registration`` record (the post-op CT's rigid registration to the plan's CT, from
post-implant verification); a 2.0 file reads as a plan without one. 2.2 adds the registration's
``registered_by`` (who made or stored it: a registration may be attached to an approved
revision, so the record says who and when); a 2.1 registration reads with ``registered_by``
"" (unknown). 2.3 adds the optional ``verification`` record
(:class:`planner.plan.verification.VerificationRecord`: the post-implant verification the plan
reports, stored by ``seedplan verify`` in its copy of the plan); a 2.2 file reads as a plan
without one. Older files are saved as 2.3.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dose.errors import InputError
from dose.progress import ProgressFn, report
from planner.files.safe_write import OutputError, write_with
from planner.plan.masks import PackedBox, box_shape
from planner.plan.model import Plan
from planner.plan.schema import MaskRecord, plan_from_doc, plan_to_doc

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "PLAN_SUFFIX",
    "LoadedPlan",
    "approved_content_sha256",
    "is_plan_file",
    "load_plan",
    "plan_content_sha256",
    "plan_file_bytes",
    "save_plan",
    "write_plan_file",
]

FORMAT = "seedplan-plan"
FORMAT_VERSION = (2, 3)
PLAN_SUFFIX = ".seedplan"
_MAX_JSON_BYTES = 64 * 2**20
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)  # fixed member timestamps: equal plans give equal bytes


def _app_version() -> str:
    try:
        return importlib.metadata.version("seedplan")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _version_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


# ====================================================================== writing
def _members(plan: Plan) -> dict[str, bytes]:
    doc, masks = plan_to_doc(plan)
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    members = {"plan.json": (text + "\n").encode("utf-8")}
    for name, packed in masks.items():
        members[name] = packed.bits
    return members


def _content_sha256(member_sha: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(member_sha):
        h.update(f"{name}\0{member_sha[name]}\n".encode())
    return h.hexdigest()


def plan_content_sha256(plan: Plan) -> str:
    """The plan's content hash (what ``manifest.json`` records as ``content_sha256``)."""
    return _content_sha256({k: hashlib.sha256(v).hexdigest() for k, v in _members(plan).items()})


def approved_content_sha256(plan: Plan) -> str:
    """The content hash of what an approval covers: the plan without its post-implant
    verification records (``registration`` and ``verification`` set to None). Equal to
    :func:`plan_content_sha256` for a plan without either."""
    if plan.registration is None and plan.verification is None:
        return plan_content_sha256(plan)
    return plan_content_sha256(plan.evolve(registration=None, verification=None))


def plan_file_bytes(plan: Plan, *, saved_utc: str = "", app_version: str = "") -> bytes:
    """The complete ``.seedplan`` file for ``plan`` (in memory)."""
    buf = io.BytesIO()
    _write_zip(buf, plan, saved_utc=saved_utc, app_version=app_version, progress=None)
    return buf.getvalue()


def _write_zip(
    fh: Any, plan: Plan, *, saved_utc: str, app_version: str, progress: ProgressFn | None
) -> str:
    members = _members(plan)
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
    content = _content_sha256(sha)
    manifest = {
        "format": FORMAT,
        "format_version": _version_text(FORMAT_VERSION),
        "app_version": app_version,
        "saved_utc": saved_utc,
        "content_sha256": content,
        "members": sha,
    }
    items = [
        ("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode()),
        *members.items(),
    ]
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for i, (name, data) in enumerate(items):
            report(progress, 0.1 + 0.7 * i / len(items), f"writing {name}")
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return content


def save_plan(
    plan: Plan,
    path: str | Path,
    *,
    force: bool = False,
    inputs: tuple[str | Path | None, ...] = (),
    progress: ProgressFn | None = None,
) -> Path:
    """Write ``plan`` to ``path`` (``.seedplan``) atomically and verified; returns the path.

    An existing file is replaced only with ``force`` (the GUI's Save passes it for the plan's
    own file). Raises OutputError (an InputError: one line naming ``path``) when it cannot;
    the previous file is then unchanged.
    """
    target = Path(path)
    if target.suffix.lower() != PLAN_SUFFIX:
        raise InputError(f"a plan file name must end in {PLAN_SUFFIX}", target)
    return write_plan_file(plan, target, force=force, inputs=inputs, progress=progress)


def write_plan_file(
    plan: Plan,
    path: str | Path,
    *,
    force: bool = False,
    inputs: tuple[str | Path | None, ...] = (),
    progress: ProgressFn | None = None,
) -> Path:
    """:func:`save_plan` under any file name (the autosave's ``*.seedplan.autosave``)."""
    from planner.plan.clock import utc_now

    target = Path(path)
    app_version = _app_version()
    saved = utc_now()
    expected: dict[str, str] = {}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            expected["sha"] = _write_zip(
                fh, plan, saved_utc=saved, app_version=app_version, progress=progress
            )
            fh.flush()

    def verify(tmp: Path) -> None:
        report(progress, 0.85, "verifying")
        try:
            loaded = load_plan(tmp)
        except InputError as exc:
            raise OutputError(
                f"the written file did not read back ({exc.problem}); nothing was replaced", target
            ) from None
        if loaded.content_sha256 != expected["sha"]:
            raise OutputError("the written file read back different; nothing was replaced", target)

    final = write_with(target, write, inputs=inputs, force=force, verify=verify)
    report(progress, 1.0, "saved")
    return final


# ====================================================================== reading
class LoadedPlan:
    """A plan read from a file, with its manifest facts."""

    def __init__(
        self,
        plan: Plan,
        path: Path,
        format_version: str,
        read_version: str,
        content_sha256: str,
        saved_utc: str,
        app_version: str,
    ) -> None:
        self.plan = plan
        self.path = path
        #: The version this SeedPlan wrote/validated against (after migration).
        self.format_version = format_version
        #: The version found in the file (older when it was migrated).
        self.read_version = read_version
        self.content_sha256 = content_sha256
        self.saved_utc = saved_utc
        self.app_version = app_version

    @property
    def migrated(self) -> bool:
        return self.read_version != self.format_version


def is_plan_file(path: str | Path) -> bool:
    """True when ``path`` is a file named ``*.seedplan`` (content is checked by load_plan)."""
    p = Path(path)
    return p.suffix.lower() == PLAN_SUFFIX and p.is_file()


def _parse_version(text: Any, path: Path) -> tuple[int, int]:
    if isinstance(text, str):
        parts = text.split(".")
        if len(parts) == 2 and all(p.isdigit() and len(p) <= 4 for p in parts):
            return int(parts[0]), int(parts[1])
    raise InputError(f"manifest.json: format_version {text!r} is not MAJOR.MINOR", path)


def _migrate_1_0_to_2_0(doc: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
    """1.0 → 2.0: masks gain a box (the whole grid, as 1.0 stored them); the source gains
    ``entered_as`` ("U": 1.0 stored strengths in U only)."""
    doc = json.loads(json.dumps(doc))  # never mutate what was read
    try:
        shape = doc["ct"]["geometry"]["shape_zyx"]
        for s in doc["structures"]:
            m = s["mask"]
            if set(m) != {"file", "voxel_count"}:
                raise InputError("plan.json (format 1.0): a mask entry is not {file, voxel_count}")
            s["mask"] = {
                "file": m["file"],
                "encoding": "packbits-zyx",
                "box_zyx": [[0, int(n)] for n in shape],
                "voxel_count": m["voxel_count"],
            }
        if doc.get("source") is not None:
            doc["source"]["entered_as"] = "U"
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"plan.json (format 1.0) cannot be migrated: {exc!r}") from None
    return doc


def _migrate_2_0_to_2_1(doc: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
    """2.0 → 2.1: plans gain the optional ``registration`` record (2.0 had none)."""
    if not isinstance(doc, dict):
        raise InputError("plan.json (format 2.0) cannot be migrated: not a JSON object")
    if "registration" in doc:
        raise InputError("plan.json (format 2.0) has a 'registration' key (a 2.1 field)")
    doc = dict(doc)  # never mutate what was read (the other values are not changed)
    doc["registration"] = None
    return doc


def _migrate_2_1_to_2_2(doc: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
    """2.1 → 2.2: a registration gains ``registered_by`` ("": 2.1 did not record the user)."""
    if not isinstance(doc, dict):
        raise InputError("plan.json (format 2.1) cannot be migrated: not a JSON object")
    reg = doc.get("registration")
    if not isinstance(reg, dict):
        return doc  # None, or a wrong value the strict reader names
    if "registered_by" in reg:
        raise InputError(
            "plan.json (format 2.1) has a 'registration.registered_by' key (a 2.2 field)"
        )
    doc = dict(doc)  # never mutate what was read
    doc["registration"] = {**reg, "registered_by": ""}
    return doc


def _migrate_2_2_to_2_3(doc: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
    """2.2 → 2.3: plans gain the optional ``verification`` record (2.2 had none)."""
    if not isinstance(doc, dict):
        raise InputError("plan.json (format 2.2) cannot be migrated: not a JSON object")
    if "verification" in doc:
        raise InputError("plan.json (format 2.2) has a 'verification' key (a 2.3 field)")
    doc = dict(doc)  # never mutate what was read
    doc["verification"] = None
    return doc


#: One-way migrations of plan.json: from version → (to version, function(doc, members)).
MIGRATIONS: dict[tuple[int, int], tuple[tuple[int, int], Callable[..., dict[str, Any]]]] = {
    (1, 0): ((2, 0), _migrate_1_0_to_2_0),
    (2, 0): ((2, 1), _migrate_2_0_to_2_1),
    (2, 1): ((2, 2), _migrate_2_1_to_2_2),
    (2, 2): ((2, 3), _migrate_2_2_to_2_3),
}


def _read_member(zf: zipfile.ZipFile, name: str, path: Path, max_bytes: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise InputError(f"damaged or incomplete plan file: {name} is missing", path) from None
    if info.file_size > max_bytes:
        raise InputError(
            f"{name} is {info.file_size} bytes, more than expected ({max_bytes})", path
        )
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC error, truncation
        raise InputError(f"damaged plan file: {name} cannot be read ({exc})", path) from None
    except Exception as exc:  # zlib.error
        raise InputError(f"damaged plan file: {name} cannot be read ({exc})", path) from None


def load_plan(path: str | Path) -> LoadedPlan:
    """Read, check, migrate and validate a ``.seedplan`` file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such plan file", path)
    if not path.is_file():
        raise InputError("is not a file", path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(
            "not a SeedPlan plan file (not a zip archive, or truncated)", path
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    with zf:
        raw = _read_member(zf, "manifest.json", path, 2**20)
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InputError("manifest.json is not valid JSON (damaged file)", path) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"not a SeedPlan plan file (manifest format is not {FORMAT!r})", path)
        version = _parse_version(manifest.get("format_version"), path)
        if version > FORMAT_VERSION:
            raise InputError(
                f"written by a newer SeedPlan (plan format {_version_text(version)}; this "
                f"version reads up to {_version_text(FORMAT_VERSION)}): update SeedPlan to open it",
                path,
            )
        if version != FORMAT_VERSION and version not in MIGRATIONS:
            raise InputError(f"unknown plan format {_version_text(version)}", path)
        keys = {"format", "format_version", "app_version", "saved_utc", "content_sha256", "members"}
        if set(manifest) != keys:
            bad = sorted(set(manifest) ^ keys)
            raise InputError(f"manifest.json: unexpected or missing key(s) {bad}", path)
        member_sha = manifest["members"]
        if not isinstance(member_sha, dict) or "plan.json" not in member_sha:
            raise InputError("manifest.json: members must list plan.json", path)
        names = set(zf.namelist())
        extra = sorted(names - set(member_sha) - {"manifest.json"})
        if extra:
            raise InputError(
                f"unexpected member(s) {extra[:3]} (file edited outside SeedPlan?)", path
            )
        if (
            _content_sha256({str(k): str(v) for k, v in member_sha.items()})
            != manifest["content_sha256"]
        ):
            raise InputError(
                "manifest.json content_sha256 does not match its members "
                "(damaged, or edited outside SeedPlan)",
                path,
            )
        blobs: dict[str, bytes] = {}

        def member(name: str, max_bytes: int) -> bytes:
            if name not in member_sha:
                raise InputError(f"{name} is not listed in manifest.json", path)
            data = _read_member(zf, name, path, max_bytes)
            if hashlib.sha256(data).hexdigest() != member_sha[name]:
                raise InputError(
                    f"{name} does not match its checksum (damaged, or edited outside SeedPlan)",
                    path,
                )
            blobs[name] = data
            return data

        try:
            doc = json.loads(member("plan.json", _MAX_JSON_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InputError("plan.json is not valid JSON", path) from None
        v = version
        while v != FORMAT_VERSION:
            v, fn = MIGRATIONS[v]
            try:
                doc = fn(doc, blobs)
            except InputError as exc:  # a migration names no file: this one
                raise InputError(exc.problem, exc.path or path) from None

        def read_mask(rec: MaskRecord, where: str) -> PackedBox:
            data = member(rec.member, rec.n_bytes)
            if len(data) != rec.n_bytes:
                raise InputError(
                    f"{rec.member}: {len(data)} bytes, expected {rec.n_bytes} for "
                    f"box {list(box_shape(rec.box))}",
                    path,
                )
            packed = PackedBox(rec.box, data, 0)
            count = int(packed.unpack().sum())
            if count != rec.voxel_count:
                raise InputError(
                    f"plan.json {where}.voxel_count: {rec.voxel_count} does not "
                    f"match the mask ({count} voxels)",
                    path,
                )
            return PackedBox(rec.box, data, count)

        plan = plan_from_doc(doc, path, read_mask)
        unused = set(member_sha) - set(blobs)
        if unused:
            raise InputError(f"member(s) {sorted(unused)[:3]} belong to no structure", path)
    return LoadedPlan(
        plan,
        path,
        _version_text(FORMAT_VERSION),
        _version_text(version),
        str(manifest["content_sha256"]),
        str(manifest["saved_utc"]),
        str(manifest["app_version"]),
    )
