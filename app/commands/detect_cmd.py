"""``seedplan detect CT_PATH --out SEEDS.csv [--expected N] [--exclude MASK] [--force]``.

Finds the seeds on a post-op CT and writes them (DESIGN.md:
``x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence``, LPS mm, with ``#`` lines stating the CT, the
search, the count check and the excluded metal), and prints one summary line on stderr:
count, clusters split, non-seed metal excluded, the search (``threshold N HU``; on slices
> 3 mm ``thick-slice shape search (≥ 250 HU)``: 250 HU is only the lowest HU it looks at), and
the count against ``--expected``.

``--exclude`` (repeatable) names a region never searched for seeds (user-painted hardware, a
needle left in): a mask image on the CT grid (.nrrd/.nii/.nii.gz/.mha/.mhd; nonzero = excluded),
or a structure of a plan made on this CT as ``PLAN.seedplan:NAME``. A disagreement with
``--expected`` is reported (exit 0: the CSV holds what was found); bad input (a mask not found,
not on the CT grid, an unknown structure) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError

PLAN_SUFFIX = ".seedplan"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "detect",
        help="find the implanted seeds on a post-op CT",
        description="Find the seeds on a post-implant CT (centres and axes in LPS mm; clusters "
        "split; screws, rods and cement excluded) and write them as CSV.",
    )
    p.add_argument("ct", metavar="CT_PATH", help="post-op CT: DICOM folder/file or image file")
    p.add_argument("--out", required=True, metavar="SEEDS.csv", help="detected seeds CSV")
    p.add_argument(
        "--expected", type=int, default=None, metavar="N", help="number of seeds implanted"
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="MASK",
        help="region never searched for seeds: a mask image on the CT grid (nonzero = excluded)"
        " or PLAN.seedplan:NAME, a structure of a plan on this CT (repeatable)",
    )
    p.add_argument("--series", metavar="UID", default=None, help="SeriesInstanceUID to use")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(run=run)
    return p


def _split_plan_spec(spec: str) -> tuple[Path, str] | None:
    """``(plan path, structure name)`` for ``PLAN.seedplan:NAME``; None for a mask file."""
    head, sep, name = spec.rpartition(":")
    if sep and head.lower().endswith(PLAN_SUFFIX):
        return Path(head), name
    return None


def exclusion_file(spec: str) -> Path:
    """The file an ``--exclude`` value reads (the plan of ``PLAN.seedplan:NAME``)."""
    plan_spec = _split_plan_spec(spec)
    return plan_spec[0] if plan_spec is not None else Path(spec)


def _grid_text(g) -> str:
    return (
        f"{'×'.join(map(str, g.shape_xyz))} voxels at origin "
        f"({', '.join(f'{v:.2f}' for v in g.origin_mm)}) mm, spacing "
        f"{'/'.join(f'{v:.3g}' for v in g.spacing_mm)} mm"
    )


def _not_on_grid(what: str, g, ct, path: Path) -> InputError:
    return InputError(
        f"{what} is not on the CT grid ({_grid_text(g)}; CT {_grid_text(ct.geometry)})", path
    )


def load_exclusion(spec: str, ct) -> NDArray[np.bool_]:
    """The (z, y, x) bool exclusion mask on ``ct``'s grid from one ``--exclude`` value.

    A mask image (nonzero = excluded) must be on the CT grid; ``PLAN.seedplan:NAME`` takes the
    plan's structure NAME (case-insensitive), whose plan must be on the CT grid. InputError
    (one line naming the file) otherwise."""
    from planner.imaging.image_files import read_image_array

    plan_spec = _split_plan_spec(spec)
    if plan_spec is not None:
        from planner.plan.plan_file import load_plan

        path, name = plan_spec
        if not name.strip():
            raise InputError("give the structure to exclude as PLAN.seedplan:NAME", path)
        plan = load_plan(path).plan
        structure = plan.structure_named(name)
        if structure is None:
            names = ", ".join(repr(s.name) for s in plan.structures) or "none"
            raise InputError(f"no structure {name!r} in the plan (structures: {names})", path)
        if not structure.geometry.same_as(ct.geometry, tol_mm=1e-3):
            raise _not_on_grid(f"plan structure {structure.name!r}", structure.geometry, ct, path)
        return np.array(structure.mask, dtype=bool)
    path = Path(spec)
    arr, geometry = read_image_array(path, max_memory_bytes=8 * ct.hu.size + 2**20)
    if not geometry.same_as(ct.geometry, tol_mm=1e-3):
        raise _not_on_grid("exclusion mask", geometry, ct, path)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError("exclusion mask holds non-finite values", path)
    return np.asarray(arr != 0)


def _csv_text(result, ct_path: str, excluded: list[str]) -> str:
    buf = io.StringIO()
    buf.write(f"# seeds detected by seedplan detect on {ct_path}\n")
    buf.write(f"# {result.summary()}\n")
    for spec in excluded:
        buf.write(f"# region excluded from the search: {spec}\n")
    for m in result.metal:
        x, y, z = m.centre_mm
        buf.write(f"# excluded metal at ({x:.1f}, {y:.1f}, {z:.1f}) mm: {m.reason}\n")
    buf.write("x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,confidence\n")
    for s in result.seeds:
        x, y, z = s.position_mm
        a, b, c = s.axis
        buf.write(f"{x:.3f},{y:.3f},{z:.3f},{a:.5f},{b:.5f},{c:.5f},{s.confidence:.3f}\n")
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    from planner.files.safe_write import check_output, write_text
    from planner.imaging.ct_loader import load_ct
    from planner.postop.detection.detect import detect_seeds

    if args.expected is not None and args.expected < 0:
        raise InputError(f"--expected must be ≥ 0, got {args.expected}")
    inputs = (args.ct, *(exclusion_file(e) for e in args.exclude))
    check_output(args.out, inputs=inputs, force=args.force)
    ct, _report = load_ct(args.ct, series_uid=args.series)
    exclude = None
    for spec in args.exclude:
        mask = load_exclusion(spec, ct)
        exclude = mask if exclude is None else (exclude | mask)
    result = detect_seeds(ct, expected=args.expected, exclude=exclude)
    text = _csv_text(result, str(args.ct), list(args.exclude))
    write_text(args.out, text, inputs=inputs, force=args.force)
    sys.stderr.write(f"seedplan detect: {result.summary()}\n")
    for line in result.messages:
        sys.stderr.write(f"seedplan detect: {line}\n")
    return 0
