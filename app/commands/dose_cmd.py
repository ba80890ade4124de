"""``seedplan dose``: TG-43U1 dose at points (CSV) or on a grid (NRRD/MHA/NIfTI).

::

    seedplan dose --seeds S.csv [--needles N.csv] --model 6711 (--strength-U X | --activity-mCi X)
                  (--points P.csv --out D.csv | --grid-out FILE.nrrd [--spacing-mm 1]
                  [--margin-mm 30]) [--formalism 2d|1d]
                  [--calibration-date YYYY-MM-DD --implant-date YYYY-MM-DD]

Seed axes: a seed's own ``dir_x,dir_y,dir_z``, else its needle's direction (``needle`` column:
the ``--needles`` file's tip − entry, else the line fitted to that needle's seeds), else +z. The
formalism, model, table checksum and where the seed axes came from are printed on stderr and
written as ``#`` comments at the top of the dose CSV (and as metadata in the grid file). Bad
input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np

from dose.engine import SeedSet, make_engine, rate_to_dose_gy
from dose.errors import InputError
from dose.geometry import GridGeometry
from dose.needles import check_seeds_on_tracks
from dose.sources import load_model
from dose.units import U_PER_MCI_I125, decay_factor, mci_to_u

MIN_STRENGTH_U = 0.05
MAX_STRENGTH_U = 10.0
_GRID_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".nii", ".nii.gz")
_MAX_GRID_VOXELS = 200_000_000


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
    p.add_argument("--out", type=Path, help="dose CSV to write (with --points)")
    p.add_argument("--grid-out", type=Path, help="dose grid file (Gy, D∞): .nrrd/.mha/.nii[.gz]")
    p.add_argument("--spacing-mm", type=float, default=1.0, help="grid spacing (default 1 mm)")
    p.add_argument(
        "--margin-mm",
        type=float,
        default=30.0,
        help="grid margin around the seeds' bounding box (default 30 mm)",
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
        "--engine", choices=("numba", "reference"), default="numba", help=argparse.SUPPRESS
    )
    p.set_defaults(run=run)
    return p


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date (YYYY-MM-DD): {text!r}") from None


def _check_strengths(strengths_u: np.ndarray, where: str) -> None:
    bad = (
        ~np.isfinite(strengths_u) | (strengths_u < MIN_STRENGTH_U) | (strengths_u > MAX_STRENGTH_U)
    )
    if np.any(bad):
        v = float(strengths_u[np.argmax(bad)])
        raise InputError(
            f"{where}: seed strength {v:g} U is outside the plausible range "
            f"{MIN_STRENGTH_U}-{MAX_STRENGTH_U} U for I-125"
        )


def run(args: argparse.Namespace) -> int:
    from planner.files.csv_io import (
        read_needles_csv,
        read_points_csv,
        read_seeds_csv,
        write_dose_csv,
    )

    if args.plan is not None:
        raise InputError(
            "plan files are not supported by 'seedplan dose' yet; use --seeds", args.plan
        )
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
    elif args.activity_mci is not None:
        default_u = mci_to_u(float(args.activity_mci))
        how = f"{args.activity_mci:g} mCi = {default_u:.4g} U ({U_PER_MCI_I125} U/mCi)"
    else:
        default_u, how = float("nan"), ""
    strengths = np.where(np.isfinite(rows.strengths_u), rows.strengths_u, default_u)
    if not np.all(np.isfinite(strengths)):
        line = rows.line_numbers[int(np.argmax(~np.isfinite(strengths)))]
        raise InputError(
            f"line {line}: no strength_U for this seed; give --strength-U or --activity-mCi",
            rows.path,
        )
    if args.strength_u is not None or args.activity_mci is not None:
        _check_strengths(np.array([default_u]), "command line")
    _check_strengths(strengths, str(rows.path))
    decay = 1.0
    if args.calibration_date is not None:
        decay = decay_factor(args.calibration_date, args.implant_date)
        strengths = strengths * decay

    seeds = SeedSet.create(rows.positions_mm, rows.axes, strengths)
    engine = make_engine(model, args.formalism, kind=args.engine)

    notes = [
        f"SeedPlan TG-43U1 dose: {engine.formalism.upper()} formalism, model {model.model_id} "
        f"({model.describe()})",
        f"tables sha256 {model.checksum} ("
        + ", ".join(f"{k} {v[:12]}" for k, v in model.table_checksums.items())
        + ")",
        f"{len(seeds)} seeds, total S_K {seeds.total_strength_u:.4g} U at implant"
        + (f"; per seed {how}" if how else "; per-seed strength_U from the CSV"),
        f"seed {axes_note}",
        "dose_rate_cGy_h = initial dose rate; dose_Gy = total permanent-implant dose "
        "D_inf = rate x tau (tau = T1/2/ln2, T1/2 = 59.40 d); TG-43 dose to water in water",
    ]
    if args.calibration_date is not None:
        notes.append(
            f"decay from calibration {args.calibration_date.isoformat()} to implant "
            f"{args.implant_date.isoformat()}: factor {decay:.5f}"
        )
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
        write_dose_csv(args.out, pts, res.dose_rate_cgy_h, res.dose_gy, notes)
        sys.stderr.write(
            f"seedplan dose: {res.label()}; {len(seeds)} seeds ({axes_note}), "
            f"{pts.shape[0]} points"
            f"{f', {res.n_flagged} inside a capsule (capped)' if res.n_flagged else ''}"
            f" -> {args.out}\n"
        )
    if args.grid_out is not None:
        _write_grid(args, engine, seeds, notes, axes_note)
    return 0


def _write_grid(args, engine, seeds: SeedSet, notes: list[str], axes_note: str) -> None:
    import SimpleITK as sitk  # noqa: N813

    if not args.spacing_mm > 0:
        raise InputError(f"--spacing-mm must be positive, got {args.spacing_mm:g}")
    if not args.margin_mm >= 0:
        raise InputError(f"--margin-mm must not be negative, got {args.margin_mm:g}")
    lo, hi = seeds.bounding_box_mm()
    geometry = GridGeometry.covering_box(
        lo - args.margin_mm, hi + args.margin_mm, float(args.spacing_mm)
    )
    if geometry.n_voxels > _MAX_GRID_VOXELS:
        raise InputError(
            f"the dose grid would have {geometry.n_voxels} voxels; use a larger --spacing-mm "
            "or a smaller --margin-mm"
        )
    res = engine.dose_rate_on_grid(seeds, geometry)
    dose = rate_to_dose_gy(res.dose_rate_cgy_h).astype(np.float32)
    img = sitk.GetImageFromArray(dose)  # array (z, y, x) → image (x, y, z)
    img.SetOrigin(tuple(float(v) for v in geometry.origin_mm))
    img.SetSpacing(tuple(float(v) for v in geometry.spacing_mm))
    img.SetDirection(tuple(float(v) for v in geometry.direction.reshape(-1)))
    img.SetMetaData("seedplan_units", "Gy (total permanent-implant dose D_inf)")
    img.SetMetaData("seedplan_formalism", engine.formalism)
    img.SetMetaData("seedplan_model", engine.model.model_id)
    img.SetMetaData("seedplan_table_sha256", engine.model.checksum)
    img.SetMetaData("seedplan_seed_axes", axes_note.removeprefix("axes: "))
    args.grid_out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(args.grid_out), True)
    sys.stderr.write(
        f"seedplan dose: {res.label()}; {len(seeds)} seeds ({axes_note}); grid "
        f"{geometry.shape_xyz} voxels "
        f"(x, y, z) at {args.spacing_mm:g} mm, max {float(dose.max()):.4g} Gy"
        f"{f', {res.n_flagged} voxels inside a capsule (capped)' if res.n_flagged else ''}"
        f" -> {args.grid_out}\n"
    )
    for n in notes:
        sys.stderr.write(f"# {n}\n")
