"""``seedplan dose``: TG-43U1 dose at points (CSV) or on a grid (NRRD/MHA/NIfTI).

::

    seedplan dose --seeds S.csv [--needles N.csv] --model 6711 (--strength-U X | --activity-mCi X)
                  (--points P.csv --out D.csv | --grid-out FILE.nrrd [--spacing-mm 1]
                  [--margin-mm 30]) [--formalism 2d|1d]
                  [--calibration-date YYYY-MM-DD --implant-date YYYY-MM-DD] [--force]

Seed axes: a seed's own ``dir_x,dir_y,dir_z``, else its needle's direction (``needle`` column:
the ``--needles`` file's tip − entry, else the line fitted to that needle's seeds), else +z. The
formalism, model, table checksum and where the seed axes came from are printed on stderr and
written as ``#`` comments at the top of the dose CSV (and as metadata in the grid file). Bad
input: one line, exit 2.

With a plan file (``seedplan dose PLAN``) the seeds (positions, axes = needle directions,
strengths), the seed model and the calibration/implant dates come from the plan (the options
that give them are refused); ``--grid-out`` writes the plan's dose grid (the exact 1 mm grid of
:func:`planner.plan.dosimetry.dose_grid_geometry`; ``--spacing-mm``/``--margin-mm`` do not
apply).

Safety checks (issue 8), all before any dose is computed or written:

* outputs follow the one writing rule (:mod:`planner.files.safe_write`): a regular file or
  absent, never an input of the command, an existing file only with ``--force``, its folder
  must exist; written atomically, the grid read back and compared before it replaces the target;
* numeric options are finite and in range (``--spacing-mm`` 0.1-20, ``--margin-mm`` 0-500,
  strength 0.05-10 U, :data:`dose.source_strength.PLAUSIBLE_STRENGTH_U`); CSV cells are finite
  and coordinates within ±10 m (:mod:`planner.files.csv_io`);
* calibration/implant dates follow :func:`dose.source_strength.decay_between`; the decayed
  strength must be plausible; the decay (or "no decay correction") is printed on stderr;
* a non-finite dose is never written.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import numpy as np

from dose.engine import SeedSet, make_engine, rate_to_dose_gy
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.needles import check_seeds_on_tracks
from dose.source_strength import (
    PLAUSIBLE_STRENGTH_U,
    check_strengths_u,
    strengths_at_implant,
)
from dose.sources import load_model
from dose.units import U_PER_MCI_I125, mci_to_u

MIN_STRENGTH_U, MAX_STRENGTH_U = PLAUSIBLE_STRENGTH_U
#: Single-file image formats only: a detached header (.nhdr, .mhd) names its data file, which an
#: atomic replace through a temporary name would break.
_GRID_SUFFIXES = (".nrrd", ".mha", ".nii", ".nii.gz")
_MAX_GRID_VOXELS = 200_000_000
SPACING_RANGE_MM = (0.1, 20.0)
MARGIN_RANGE_MM = (0.0, 500.0)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dose",
        help="TG-43U1 dose at points or on a grid",
        description="Compute the TG-43U1 dose of a set of I-125 seeds: initial dose rate "
        "(cGy/h) and total permanent-implant dose D∞ (Gy).",
    )
    p.add_argument("plan", nargs="?", help="plan file (instead of --seeds)")
    p.add_argument(
        "--seeds",
        type=Path,
        metavar="S.csv",
        help="seeds CSV: columns x_mm, y_mm, z_mm; optional dir_x, dir_y, dir_z (seed axis), "
        "strength_U, needle (any id). A seed without its own axis (no dir columns, or all three "
        "cells empty) points along its needle (the line fitted to that needle's seeds, unless "
        "--needles gives it), else along +z",
    )
    p.add_argument(
        "--needles",
        type=Path,
        metavar="N.csv",
        help="needles CSV: columns needle, entry_x_mm, entry_y_mm, entry_z_mm, tip_x_mm, "
        "tip_y_mm, tip_z_mm; a needle's direction (tip - entry) wins over the fit to its seeds; "
        "every needle id in the seeds CSV must be listed",
    )
    p.add_argument("--model", help="seed model id, e.g. 6711 (see resources/seeds)")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--strength-U", dest="strength_u", type=float, help="air-kerma strength per seed S_K (U)"
    )
    src.add_argument(
        "--activity-mCi",
        dest="activity_mci",
        type=float,
        help=f"apparent activity per seed (mCi; {U_PER_MCI_I125} U/mCi)",
    )
    p.add_argument("--points", type=Path, help="points CSV: x_mm,y_mm,z_mm")
    p.add_argument(
        "--out", type=Path, help="dose CSV to write (with --points); its folder must exist"
    )
    p.add_argument(
        "--grid-out",
        type=Path,
        help="dose grid file (Gy, D∞): .nrrd/.mha/.nii[.gz]; its folder must exist",
    )
    p.add_argument(
        "--spacing-mm",
        type=float,
        default=1.0,
        help=f"grid spacing (default 1 mm; {SPACING_RANGE_MM[0]:g}-{SPACING_RANGE_MM[1]:g})",
    )
    p.add_argument(
        "--margin-mm",
        type=float,
        default=30.0,
        help="grid margin around the seeds' bounding box (default 30 mm; "
        f"{MARGIN_RANGE_MM[0]:g}-{MARGIN_RANGE_MM[1]:g})",
    )
    p.add_argument(
        "--formalism",
        choices=("2d", "1d"),
        default="2d",
        help="TG-43U1 2D line source (default) or 1D point source",
    )
    p.add_argument(
        "--calibration-date",
        type=_iso_date,
        help="strength calibration date (ISO 8601); with --implant-date",
    )
    p.add_argument("--implant-date", type=_iso_date, help="implant date (ISO 8601)")
    p.add_argument(
        "--force", action="store_true", help="replace existing output files (never an input)"
    )
    p.add_argument(
        "--engine", choices=("numba", "reference"), default="numba", help=argparse.SUPPRESS
    )
    p.set_defaults(run=run)
    return p


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date (YYYY-MM-DD): {text!r}") from None


def _in_range(value: float, option: str, lo: float, hi: float, unit: str) -> float:
    """``value`` if finite and in [lo, hi], else InputError naming the option."""
    if not (np.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{option} must be a number from {lo:g} to {hi:g} {unit}, got {value:g}")
    return float(value)


def _same_file(a: Path, b: Path) -> bool:
    return Path(a).absolute() == Path(b).absolute() or (a.exists() and b.exists() and a.samefile(b))


def run(args: argparse.Namespace) -> int:
    from planner.files.csv_io import (
        read_needles_csv,
        read_points_csv,
        read_seeds_csv,
        write_dose_csv,
    )
    from planner.files.safe_write import check_output

    if args.plan is not None:
        return _run_plan(args)
    if args.seeds is None:
        raise InputError("give --seeds CSV (or a plan file)")
    if args.model is None:
        raise InputError("give --model (a seed model id)")
    want_points = args.points is not None or args.out is not None
    if want_points and (args.points is None or args.out is None):
        raise InputError("--points and --out go together")
    if not want_points and args.grid_out is None:
        raise InputError("give --points P.csv --out D.csv, or --grid-out FILE.nrrd")
    if args.grid_out is not None and not str(args.grid_out).lower().endswith(_GRID_SUFFIXES):
        raise InputError(f"grid file must end in one of {', '.join(_GRID_SUFFIXES)}", args.grid_out)
    if (args.calibration_date is None) != (args.implant_date is None):
        raise InputError("--calibration-date and --implant-date go together")
    if args.grid_out is not None:
        _in_range(args.spacing_mm, "--spacing-mm", *SPACING_RANGE_MM, "mm")
        _in_range(args.margin_mm, "--margin-mm", *MARGIN_RANGE_MM, "mm")
    if want_points and args.grid_out is not None and _same_file(args.out, args.grid_out):
        raise InputError("--out and --grid-out are the same file", args.out)
    # Fail fast on a bad target, before any input is read or dose computed (written at the end
    # through the same rule, checked again).
    inputs = (args.seeds, args.needles, args.points)
    for target in (args.out, args.grid_out):
        if target is not None:
            check_output(target, inputs=inputs, force=args.force)

    model = load_model(args.model)
    needles = None if args.needles is None else read_needles_csv(args.needles)
    rows = read_seeds_csv(args.seeds, None if needles is None else needles.directions())
    if needles is not None:
        check_seeds_on_tracks(
            rows.positions_mm,
            rows.needle_ids,
            needles.tracks(),
            line_numbers=rows.line_numbers,
            path=args.seeds,
        )
    n_needle, n_explicit, n_default = rows.axis_source_counts()
    axes_note = (
        f"axes: {n_needle} from needles"
        + (f" ({args.needles.name})" if needles is not None and n_needle else "")
        + f", {n_explicit} explicit, {n_default} default +z"
    )

    # Per-seed strengths (file column) override the command line.
    if args.strength_u is not None:
        default_u, how = float(args.strength_u), f"{args.strength_u:g} U"
        check_strengths_u([default_u], "--strength-U")
    elif args.activity_mci is not None:
        default_u = mci_to_u(float(args.activity_mci))
        how = f"{args.activity_mci:g} mCi = {default_u:.4g} U ({U_PER_MCI_I125} U/mCi)"
        check_strengths_u([default_u], f"--activity-mCi {args.activity_mci:g} mCi")
    else:
        default_u, how = float("nan"), ""
    for s_u, line in zip(rows.strengths_u, rows.line_numbers, strict=True):
        if np.isfinite(s_u):
            check_strengths_u([s_u], f"{rows.path}: line {line}", what="strength_U")
    strengths = np.where(np.isfinite(rows.strengths_u), rows.strengths_u, default_u)
    if not np.all(np.isfinite(strengths)):
        line = rows.line_numbers[int(np.argmax(~np.isfinite(strengths)))]
        raise InputError(
            f"line {line}: no strength_U for this seed; give --strength-U or --activity-mCi",
            rows.path,
        )
    strengths, decay = strengths_at_implant(
        strengths,
        args.calibration_date,
        args.implant_date,
        where="--calibration-date/--implant-date",
    )
    if decay is None:
        decay_note = (
            "no decay correction: strengths taken as at implant (no --calibration-date/"
            "--implant-date)"
        )
    else:
        decay_note = (
            f"{decay.describe()}; S_K at implant {float(strengths.min()):.4g}"
            + (f"-{float(strengths.max()):.4g}" if strengths.max() > strengths.min() else "")
            + " U per seed"
        )

    seeds = SeedSet.create(rows.positions_mm, rows.axes, strengths)
    engine = make_engine(model, args.formalism, kind=args.engine)

    notes = [
        f"SeedPlan TG-43U1 dose: {engine.formalism.upper()} formalism, model {model.model_id} "
        f"({model.describe()})",
        f"tables sha256 {model.checksum} ("
        + ", ".join(f"{k} {v[:12]}" for k, v in model.table_checksums.items())
        + ")",
        f"{len(seeds)} seeds, total S_K {seeds.total_strength_u:.4g} U at implant"
        + (f"; per seed {how}" if how else "; per-seed strength_U from the CSV")
        + (" (at calibration)" if decay is not None else ""),
        f"seed {axes_note}",
        "dose_rate_cGy_h = initial dose rate; dose_Gy = total permanent-implant dose "
        "D_inf = rate x tau (tau = T1/2/ln2, T1/2 = 59.40 d); TG-43 dose to water in water",
    ]
    notes.append(decay_note)
    if model.single_source:
        notes.append(f"WARNING: model {model.model_id} data have a single public source")

    if want_points:
        pts = read_points_csv(args.points)
        res = engine.dose_rate_at_points(seeds, pts)
        if res.n_flagged:
            notes.append(
                f"{res.n_flagged} point(s) inside a seed capsule: value capped at the capsule "
                "surface"
            )
        check_dose_values(res.dose_rate_cgy_h, args.out, pts)
        write_dose_csv(
            args.out,
            pts,
            res.dose_rate_cgy_h,
            res.dose_gy,
            notes,
            inputs=inputs,
            force=args.force,
        )
        sys.stderr.write(
            f"seedplan dose: {res.label()}; {len(seeds)} seeds ({axes_note}), "
            f"{pts.shape[0]} points"
            f"{f', {res.n_flagged} inside a capsule (capped)' if res.n_flagged else ''}"
            f" -> {args.out}\n"
        )
    if args.grid_out is not None:
        _write_grid(args, engine, seeds, notes, axes_note, decay_note, inputs)
    sys.stderr.write(f"seedplan dose: {decay_note}\n")
    return 0


def check_dose_values(dose: np.ndarray, target: Path, points_mm: np.ndarray | None = None) -> None:
    """The last guard before writing: every dose (rate) is finite and ≥ 0, else InputError
    naming the target and the first bad point (``points_mm`` (P, 3) mm) or voxel index."""
    values = np.asarray(dose, dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0.0)
    if not np.any(bad):
        return
    flat = int(np.argmax(bad.reshape(-1)))
    v = float(values.reshape(-1)[flat])
    if points_mm is not None:
        x, y, z = (float(c) for c in np.asarray(points_mm).reshape(-1, 3)[flat])
        where = f"point {flat + 1} ({x:g}, {y:g}, {z:g}) mm"
    else:
        where = f"voxel (z, y, x) {tuple(int(k) for k in np.unravel_index(flat, values.shape))}"
    raise InputError(f"the dose at {where} is {v:g} (not a valid dose); nothing written", target)


def _grid_geometry(seeds: SeedSet, spacing_mm: float, margin_mm: float) -> GridGeometry:
    """The axis-aligned grid over the seeds' box + margin; InputError when too large."""
    lo, hi = seeds.bounding_box_mm()
    n_xyz = np.floor((hi - lo + 2.0 * margin_mm) / spacing_mm + 1e-9) + 1.0
    n_voxels = float(np.prod(n_xyz))
    if not n_voxels <= _MAX_GRID_VOXELS:
        raise InputError(
            f"the dose grid would have {n_voxels:.3g} voxels (at most {_MAX_GRID_VOXELS:.0e}); "
            "use a larger --spacing-mm or a smaller --margin-mm"
        )
    return GridGeometry.covering_box(lo - margin_mm, hi + margin_mm, spacing_mm)


def _quiet_native_stderr(fn, *args):
    """Call ``fn(*args)`` with file descriptor 2 sent to /dev/null: ITK prints its own lines on
    a failed write, and the CLI's contract is one line (ours, naming the target)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        return fn(*args)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _write_grid(
    args,
    engine,
    seeds: SeedSet,
    notes: list[str],
    axes_note: str,
    decay_note: str,
    inputs: tuple,
    geometry: GridGeometry | None = None,
) -> None:
    import SimpleITK as sitk  # noqa: N813

    from planner.files.safe_write import write_with

    if geometry is None:
        geometry = _grid_geometry(seeds, float(args.spacing_mm), float(args.margin_mm))
    res = engine.dose_rate_on_grid(seeds, geometry)
    dose = rate_to_dose_gy(res.dose_rate_cgy_h).astype(np.float32)
    check_dose_values(dose, args.grid_out)
    img = sitk.GetImageFromArray(dose)  # array (z, y, x) → image (x, y, z)
    img.SetOrigin(tuple(float(v) for v in geometry.origin_mm))
    img.SetSpacing(tuple(float(v) for v in geometry.spacing_mm))
    img.SetDirection(tuple(float(v) for v in geometry.direction.reshape(-1)))
    img.SetMetaData("seedplan_units", "Gy (total permanent-implant dose D_inf)")
    img.SetMetaData("seedplan_formalism", engine.formalism)
    img.SetMetaData("seedplan_model", engine.model.model_id)
    img.SetMetaData("seedplan_table_sha256", engine.model.checksum)
    img.SetMetaData("seedplan_seed_axes", axes_note.removeprefix("axes: "))
    img.SetMetaData("seedplan_decay", decay_note)

    def verify(tmp: Path) -> None:
        # SimpleITK can "succeed" on a full disk (a truncated .nii.gz): read the file back.
        try:
            back = sitk.ReadImage(str(tmp))
        except RuntimeError:
            raise InputError(
                "cannot write: the file could not be read back (disk full?); nothing written",
                args.grid_out,
            ) from None
        same = (
            back.GetSize() == img.GetSize()
            and np.allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
            and np.allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-6)
            and np.array_equal(sitk.GetArrayViewFromImage(back), dose)
        )
        if not same:
            raise InputError(
                "the file read back differs from the computed grid; nothing written",
                args.grid_out,
            )

    write_with(
        args.grid_out,
        lambda tmp: _quiet_native_stderr(sitk.WriteImage, img, str(tmp), True),
        inputs=inputs,
        force=args.force,
        verify=verify,
        io_errors=(RuntimeError,),
    )
    sys.stderr.write(
        f"seedplan dose: {res.label()}; {len(seeds)} seeds ({axes_note}); grid "
        f"{geometry.shape_xyz} voxels "
        f"(x, y, z) at {float(geometry.spacing_mm[0]):g} mm, max {float(dose.max()):.4g} Gy"
        f"{f', {res.n_flagged} voxels inside a capsule (capped)' if res.n_flagged else ''}"
        f" -> {args.grid_out}\n"
    )
    for n in notes:
        if n == decay_note:
            continue  # printed once, by run()
        sys.stderr.write(f"# {n}\n")


def _run_plan(args: argparse.Namespace) -> int:
    """``seedplan dose PLAN (--points P.csv --out D.csv | --grid-out FILE)``."""
    from planner.files.csv_io import read_points_csv, write_dose_csv
    from planner.files.safe_write import check_output
    from planner.plan.dosimetry import dose_grid_geometry, plan_seed_set
    from planner.plan.plan_file import load_plan

    given = [
        opt
        for opt, value in (
            ("--seeds", args.seeds),
            ("--needles", args.needles),
            ("--model", args.model),
            ("--strength-U", args.strength_u),
            ("--activity-mCi", args.activity_mci),
            ("--calibration-date", args.calibration_date),
            ("--implant-date", args.implant_date),
        )
        if value is not None
    ]
    if given:
        raise InputError(
            f"{given[0]} cannot be used with a plan file: the seeds, model, strength and dates "
            "come from the plan",
            args.plan,
        )
    want_points = args.points is not None or args.out is not None
    if want_points and (args.points is None or args.out is None):
        raise InputError("--points and --out go together")
    if not want_points and args.grid_out is None:
        raise InputError("give --points P.csv --out D.csv, or --grid-out FILE.nrrd")
    if args.grid_out is not None and not str(args.grid_out).lower().endswith(_GRID_SUFFIXES):
        raise InputError(f"grid file must end in one of {', '.join(_GRID_SUFFIXES)}", args.grid_out)
    if want_points and args.grid_out is not None and _same_file(args.out, args.grid_out):
        raise InputError("--out and --grid-out are the same file", args.out)
    inputs = (Path(args.plan), args.points)
    for target in (args.out, args.grid_out):
        if target is not None:
            check_output(target, inputs=inputs, force=args.force)

    plan = load_plan(args.plan).plan
    src = plan.source
    if src is None:
        raise InputError("the plan has no seed source (model and strength)", args.plan)
    try:
        seeds, _ids = plan_seed_set(plan)
    except InputError as exc:
        raise InputError(exc.problem, args.plan) from None
    if not len(seeds):
        raise InputError("the plan has no seeds", args.plan)
    model = load_model(src.model_id)
    engine = make_engine(model, args.formalism, kind=args.engine)
    if src.calibration_date is not None and src.implant_date is not None:
        from dose.source_strength import decay_between

        decay_note = (
            f"{decay_between(src.calibration_date, src.implant_date).describe()}; S_K at "
            f"implant {float(seeds.strengths_u.min()):.4g}"
            + (
                f"-{float(seeds.strengths_u.max()):.4g}"
                if seeds.strengths_u.max() > seeds.strengths_u.min()
                else ""
            )
            + " U per seed"
        )
    else:
        decay_note = "no decay correction: the plan has no calibration/implant dates"
    axes_note = f"axes: {len(seeds)} from the plan (the needle direction for seeds on needles)"
    notes = [
        f"SeedPlan TG-43U1 dose: {engine.formalism.upper()} formalism, model {model.model_id} "
        f"({model.describe()})",
        f"tables sha256 {model.checksum} ("
        + ", ".join(f"{k} {v[:12]}" for k, v in model.table_checksums.items())
        + ")",
        f"plan {plan.plan_uid} revision {plan.revision} ({plan.status}) from {args.plan}",
        f"{len(seeds)} seeds, total S_K {seeds.total_strength_u:.4g} U at implant",
        f"seed {axes_note}",
        "dose_rate_cGy_h = initial dose rate; dose_Gy = total permanent-implant dose "
        "D_inf = rate x tau (tau = T1/2/ln2, T1/2 = 59.40 d); TG-43 dose to water in water",
        decay_note,
    ]
    if src.model_sha256 and src.model_sha256 != model.checksum:
        notes.append(
            f"WARNING: the plan was made with other {model.model_id} tables "
            f"(sha256 {src.model_sha256[:12]}); this dose uses the current tables"
        )
        sys.stderr.write(f"seedplan dose: warning: {notes[-1].removeprefix('WARNING: ')}\n")
    if model.single_source:
        notes.append(f"WARNING: model {model.model_id} data have a single public source")
    if want_points:
        pts = read_points_csv(args.points)
        res = engine.dose_rate_at_points(seeds, pts)
        if res.n_flagged:
            notes.append(
                f"{res.n_flagged} point(s) inside a seed capsule: value capped at the capsule "
                "surface"
            )
        check_dose_values(res.dose_rate_cgy_h, args.out, pts)
        write_dose_csv(
            args.out, pts, res.dose_rate_cgy_h, res.dose_gy, notes, inputs=inputs, force=args.force
        )
        sys.stderr.write(
            f"seedplan dose: {res.label()}; {len(seeds)} seeds from the plan, "
            f"{pts.shape[0]} points -> {args.out}\n"
        )
    if args.grid_out is not None:
        geometry = dose_grid_geometry(plan, seeds.positions_mm)
        _write_grid(args, engine, seeds, notes, axes_note, decay_note, inputs, geometry)
    sys.stderr.write(f"seedplan dose: {decay_note}\n")
    return 0
