"""Cases of a cohort: discovered in a folder or listed in a CSV manifest; their content hashes.

A **case folder** (each immediate, non-hidden subfolder of CASES) holds

* exactly one plan ``*.seedplan`` (its planning CT is the path recorded in the plan, relative
  to the plan file when not absolute, or a ``ct/`` subfolder);
* a post-op CT: ``postop.nrrd|.nii|.nii.gz|.mha|.mhd`` or a DICOM folder ``postop/``
  (``postop_ct/``), and/or a stored verification (``verification.json`` or
  ``verification/verification.json``, as written by ``seedplan verify``), which is used as is;
* optionally ``case.json`` with ``seeds_implanted`` (the clinical record; default: planned).

A **manifest** is a CSV (one header line, ``#`` comments, extra columns ignored) with the
columns ``case_id,plan`` and any of ``postop_ct, planning_ct, verification, seeds_implanted``;
relative paths are relative to the CSV's folder.

A case that cannot be used (no plan, two plans, no post-op CT) is still a case: it carries its
``problem`` and is reported as failed, never dropped.

Content hash: SHA-256 over the pipeline version, the options, and the bytes of every input file
(plan, planning CT, post-op CT, stored verification, case.json), path by path. A
``(path, size, mtime_ns) → sha256`` cache from the previous run avoids re-reading unchanged
files; the hash itself is always of content.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dose.errors import InputError

__all__ = [
    "PIPELINE_VERSION",
    "CaseInput",
    "case_content_sha256",
    "discover_cases",
    "read_manifest",
]

#: Bumped when the per-case analysis changes what it computes (forces a re-run).
PIPELINE_VERSION = "cohort-2"
IMAGE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha", ".mhd")


@dataclass(frozen=True)
class CaseInput:
    """What a case's analysis needs: paths (strings, for pickling to Dask workers)."""

    case_id: str
    plan: str = ""
    planning_ct: str = ""  # "" → the plan's recorded CT path
    postop_ct: str = ""
    verification: str = ""  # a stored verification.json (used instead of recomputing)
    seeds_implanted: int | None = None
    problem: str = ""  # why the case cannot be analysed ("" when it can)
    folder: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def roles(self) -> list[tuple[str, str]]:
        """(role, path) of every input given."""
        out = [
            (r, p)
            for r, p in (
                ("plan", self.plan),
                ("planning_ct", self.planning_ct),
                ("postop_ct", self.postop_ct),
                ("verification", self.verification),
            )
            if p
        ]
        if self.folder and (Path(self.folder) / "case.json").is_file():
            out.append(("case_json", str(Path(self.folder) / "case.json")))
        return out

    def input_paths(self) -> list[Path]:
        """Every file the analysis reads (folders expanded, sorted)."""
        out: list[Path] = []
        for p in (self.plan, self.planning_ct, self.postop_ct, self.verification):
            if p:
                out.extend(_files(Path(p)))
        if self.folder and (Path(self.folder) / "case.json").is_file():
            out.append(Path(self.folder) / "case.json")
        return out


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if path.suffix.lower() == ".mhd" and path.is_file():
        return [path, *sorted(path.parent.glob(path.stem + ".raw"))]
    return [path] if path.exists() else []


def _postop_in(folder: Path) -> Path | None:
    for name in ("postop", "postop_ct"):
        if (folder / name).is_dir():
            return folder / name
        for suffix in IMAGE_SUFFIXES:
            if (folder / (name + suffix)).is_file():
                return folder / (name + suffix)
    return None


def _implanted_from_case_json(folder: Path) -> int | None:
    path = folder / "case.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable case.json ({exc.__class__.__name__})", path) from None
    v = doc.get("seeds_implanted") if isinstance(doc, dict) else None
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InputError(f"seeds_implanted must be a positive integer (got {v!r})", path)
    return v


def _planning_ct_of(plan: Path) -> str:
    """The planning CT recorded in the plan (relative to the plan file), else ``ct/`` beside it."""
    from planner.plan.plan_file import load_plan

    try:
        recorded = load_plan(plan).plan.ct.source_path
    except InputError:
        return ""  # the analysis reports the unreadable plan
    if recorded:
        p = Path(recorded)
        return str(p if p.is_absolute() else plan.parent / p)
    return str(plan.parent / "ct") if (plan.parent / "ct").is_dir() else ""


def _case_from_folder(folder: Path) -> CaseInput:
    cid = folder.name
    plans = sorted(folder.glob("*.seedplan"))
    verification = ""
    for cand in (folder / "verification.json", folder / "verification" / "verification.json"):
        if cand.is_file():
            verification = str(cand)
            break
    postop = _postop_in(folder)
    try:
        implanted = _implanted_from_case_json(folder)
    except InputError as exc:
        return CaseInput(cid, folder=str(folder), problem=str(exc))
    if not plans:
        return CaseInput(cid, folder=str(folder), problem="no plan (.seedplan) in the case folder")
    if len(plans) > 1:
        names = ", ".join(p.name for p in plans)
        return CaseInput(cid, folder=str(folder), problem=f"{len(plans)} plans ({names}): keep one")
    if postop is None and not verification:
        return CaseInput(
            cid,
            plan=str(plans[0]),
            folder=str(folder),
            problem="no post-op CT (postop.nrrd or postop/) and no stored verification",
        )
    return CaseInput(
        cid,
        plan=str(plans[0]),
        planning_ct="" if verification else _planning_ct_of(plans[0]),
        postop_ct=str(postop) if postop is not None and not verification else "",
        verification=verification,
        seeds_implanted=implanted,
        folder=str(folder),
    )


def read_manifest(path: str | Path) -> list[CaseInput]:
    """The cases of a CSV manifest (module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the manifest ({exc.__class__.__name__})", path) from None
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    lines = [(n, ln) for n, ln in lines if not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError("empty manifest (needs a header line case_id,plan,…)", path)
    rows = list(csv.reader([ln for _, ln in lines]))
    header = [h.strip().lower() for h in rows[0]]
    for need in ("case_id", "plan"):
        if need not in header:
            raise InputError(f"the manifest has no {need!r} column", path)
    col = {h: i for i, h in enumerate(header)}
    base = path.parent
    cases: list[CaseInput] = []
    seen: set[str] = set()
    for (lineno, _), row in zip(lines[1:], rows[1:], strict=True):

        def cell(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        def resolve(p: str) -> str:
            return "" if not p else str(Path(p) if Path(p).is_absolute() else base / p)

        cid = cell("case_id")
        if not cid:
            raise InputError(f"line {lineno}: empty case_id", path)
        if cid in seen:
            raise InputError(f"line {lineno}: case_id {cid!r} appears twice", path)
        if "/" in cid or "\\" in cid or cid.startswith("."):
            raise InputError(f"line {lineno}: case_id {cid!r} is not a plain name", path)
        seen.add(cid)
        implanted: int | None = None
        if cell("seeds_implanted"):
            try:
                implanted = int(cell("seeds_implanted"))
            except ValueError:
                implanted = 0
            if implanted < 1:
                raise InputError(
                    f"line {lineno}: seeds_implanted must be a positive integer "
                    f"({cell('seeds_implanted')!r})",
                    path,
                )
        plan, post, ver = (
            resolve(cell("plan")),
            resolve(cell("postop_ct")),
            resolve(cell("verification")),
        )
        problem = ""
        if not plan or not Path(plan).is_file():
            problem = f"no plan file {plan!r}" if plan else "no plan given"
        elif not ver and (not post or not Path(post).exists()):
            problem = f"no post-op CT {post!r}" if post else "no post-op CT and no verification"
        elif ver and not Path(ver).is_file():
            problem = f"no verification file {ver!r}"
        ct = resolve(cell("planning_ct"))
        if not ct and plan and not problem and not ver:
            ct = _planning_ct_of(Path(plan))
        cases.append(
            CaseInput(
                cid,
                plan=plan,
                planning_ct=ct,
                postop_ct="" if ver else post,
                verification=ver,
                seeds_implanted=implanted,
                problem=problem,
            )
        )
    if not cases:
        raise InputError("the manifest lists no cases", path)
    return cases


def discover_cases(cases: str | Path) -> list[CaseInput]:
    """The cases under a folder (one per subfolder) or in a CSV manifest, sorted by id."""
    path = Path(cases)
    if not path.exists():
        raise InputError("no such folder or manifest", path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError("is neither a folder of cases nor a CSV manifest", path)
        return read_manifest(path)
    if not path.is_dir():
        raise InputError("is neither a folder of cases nor a CSV manifest", path)
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [_case_from_folder(p) for p in subs]
    if not found:
        raise InputError("holds no case folders (one subfolder per case)", path)
    return found


@dataclass
class HashCache:
    """``path → (size, mtime_ns, sha256)`` from a previous run (content hashes stay the truth)."""

    entries: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = str(path)
        hit = self.entries.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        self.entries[key] = (st.st_size, st.st_mtime_ns, digest)
        return digest


def case_content_sha256(
    case: CaseInput, options: dict[str, object], cache: HashCache | None = None
) -> str:
    """SHA-256 of the case's inputs, the options and :data:`PIPELINE_VERSION`."""
    cache = cache or HashCache()
    h = hashlib.sha256()
    h.update(PIPELINE_VERSION.encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    h.update(json.dumps([case.case_id, case.seeds_implanted, case.problem]).encode())
    paths = case.input_paths()
    # Names relative to the case's inputs' common folder: a moved cohort is not re-run.
    root = os.path.commonpath([str(p.parent) for p in paths]) if paths else ""
    for role, p in ((r, Path(q)) for r, q in case.roles()):
        h.update(f"{role}\n".encode())
        for f in _files(p):
            try:
                digest = cache.sha256(f)
            except OSError:
                digest = "unreadable"
            h.update(os.fsencode(os.path.relpath(f, root)) + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()
