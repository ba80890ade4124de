"""Seed, point and dose CSV files (format contract in DESIGN.md, "Command line").

Rules: one header line (the first line that is not blank and not a ``#`` comment); ``#`` lines
are comments anywhere; blank lines are skipped; extra columns are ignored; column names are
matched case-insensitively. Malformed rows raise :class:`dose.errors.InputError` naming the file
and the line: a cell that is not a number, not finite (inf, nan, 1e999), or a coordinate (``*_mm``
column) beyond ±:data:`MAX_ABS_COORD_MM` (10 m: no patient coordinate is that far; such values
are typing or unit errors and would overflow the dose kernel).

Writing goes through :mod:`planner.files.safe_write` (one rule for every output): the dose CSV
is written atomically, never over an input (``inputs=``), an existing file only with
``force=True``, and a table with a non-finite value is refused before anything is written.

Public API::

    read_seeds_csv(path, needle_directions=None) -> SeedRows
        # x_mm,y_mm,z_mm [,dir_x,dir_y,dir_z] [,strength_U] [,needle]
        # rows.axes are final: explicit dir > needle direction (given, else fitted) > +z
    read_needles_csv(path) -> NeedleRows      # needle,entry_x_mm,..,entry_z_mm,tip_x_mm,..,tip_z_mm
        # rows.directions() -> {needle id: (3,) unit tip − entry}
    read_points_csv(path) -> (P, 3) float64   # x_mm,y_mm,z_mm
    write_dose_csv(path, points_mm, rate_cgy_h, dose_gy, comments=(), *, inputs=(), force=False)

Seeds: the ``dir_x,dir_y,dir_z`` cells may be empty on a row (all three): that seed has no
explicit axis. ``needle`` is any string id (empty: no needle). A seed without an explicit axis
takes its needle's direction: from ``needle_directions`` (e.g. a needles file) when given, else
the line fitted to all the seeds of that needle (:func:`dose.needles.needle_axes`; a needle with a
single seed, or seeds more than 2 mm off the fitted line, is an error). A seed with neither keeps
the default axis (0, 0, 1). With ``needle_directions``, every needle id in the seeds file must be
in it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.needles import needle_axes
from planner.files.safe_write import atomic_open

__all__ = [
    "DOSE_COLUMNS",
    "MAX_ABS_COORD_MM",
    "NEEDLE_COLUMNS",
    "NeedleRows",
    "SeedRows",
    "read_needles_csv",
    "read_points_csv",
    "read_seeds_csv",
    "write_dose_csv",
]

DOSE_COLUMNS = ("x_mm", "y_mm", "z_mm", "dose_rate_cGy_h", "dose_Gy")
_XYZ = ("x_mm", "y_mm", "z_mm")
_DIR = ("dir_x", "dir_y", "dir_z")
_ENTRY = ("entry_x_mm", "entry_y_mm", "entry_z_mm")
_TIP = ("tip_x_mm", "tip_y_mm", "tip_z_mm")
NEEDLE_COLUMNS = ("needle", *_ENTRY, *_TIP)
#: Largest accepted |coordinate| in a CSV cell (mm).
MAX_ABS_COORD_MM = 10_000.0


@dataclass(frozen=True, eq=False)
class SeedRows:
    """Seeds read from CSV.

    positions_mm (N, 3) LPS; axes (N, 3) final unit vectors (explicit, else the needle's
    direction, else (0, 0, 1)); strengths_u (N,) with NaN where the file gives none (no
    ``strength_U`` column or an empty cell); line_numbers (N,) the 1-based line of each seed in
    the file; needle_ids (N,) the needle of each seed or None; has_axis (N,) bool, True where the
    file gives the seed's own axis.
    """

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    strengths_u: NDArray[np.float64]
    line_numbers: tuple[int, ...]
    path: Path
    needle_ids: tuple[str | None, ...] = ()
    has_axis: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return int(self.positions_mm.shape[0])

    def axis_source_counts(self) -> tuple[int, int, int]:
        """(axes from needles, explicit axes, default +z axes); they sum to ``len(self)``."""
        n = len(self)
        explicit = np.zeros(n, bool) if self.has_axis is None else self.has_axis
        on_needle = np.array([nid is not None for nid in self.needle_ids] or [False] * n)
        from_needle = int(np.count_nonzero(on_needle & ~explicit))
        n_explicit = int(np.count_nonzero(explicit))
        return from_needle, n_explicit, n - from_needle - n_explicit

    @property
    def has_strengths(self) -> bool:
        """True when every seed has its own strength."""
        return bool(len(self) and np.all(np.isfinite(self.strengths_u)))


def _rows(path: Path) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """(column index by lower-case name, [(line number, fields)]) of a CSV file."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 text file", path) from exc
    header: dict[str, int] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = next(csv.reader([line]))
        fields = [f.strip() for f in fields]
        if header is None:
            header = {}
            for i, name in enumerate(fields):
                key = name.lower()
                if key in header:
                    raise InputError(f"line {lineno}: column {name!r} appears twice", path)
                header[key] = i
            continue
        rows.append((lineno, fields))
    if header is None:
        raise InputError("empty file (no header line)", path)
    return header, rows


def _require(header: dict[str, int], names: Sequence[str], path: Path) -> list[int]:
    missing = [n for n in names if n.lower() not in header]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)} in the header (found: "
            f"{', '.join(header) or 'none'})",
            path,
        )
    return [header[n.lower()] for n in names]


def _number(fields: list[str], idx: int, name: str, lineno: int, path: Path) -> float:
    if idx >= len(fields):
        raise InputError(f"line {lineno}: missing value for {name}", path)
    text = fields[idx]
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"line {lineno}: {name} is not a number ({text!r})", path) from None
    if not math.isfinite(value):
        raise InputError(f"line {lineno}: {name} is not finite ({text!r})", path)
    if name.endswith("_mm") and abs(value) > MAX_ABS_COORD_MM:
        raise InputError(
            f"line {lineno}: {name} {text} is beyond ±{MAX_ABS_COORD_MM:g} mm (LPS mm expected)",
            path,
        )
    return value


def read_points_csv(path: str | Path) -> NDArray[np.float64]:
    """Points ``x_mm,y_mm,z_mm`` → (P, 3) LPS mm. An empty table raises InputError."""
    path = Path(path)
    header, rows = _rows(path)
    cols = _require(header, _XYZ, path)
    pts = np.array(
        [[_number(f, c, n, ln, path) for c, n in zip(cols, _XYZ, strict=True)] for ln, f in rows],
        dtype=np.float64,
    ).reshape(-1, 3)
    if pts.shape[0] == 0:
        raise InputError("no points (the file has a header but no data rows)", path)
    return pts


def read_seeds_csv(
    path: str | Path, needle_directions: Mapping[str, ArrayLike] | None = None
) -> SeedRows:
    """Seeds ``x_mm,y_mm,z_mm`` [``dir_x,dir_y,dir_z``] [``strength_U``] [``needle``] →
    :class:`SeedRows` with final axes (rules in the module docstring).

    needle_directions: needle id → (3,) direction (e.g. :meth:`NeedleRows.directions`); it wins
    over the line fit, and then every needle id in the file must be in it.
    """
    path = Path(path)
    header, rows = _rows(path)
    cols = _require(header, _XYZ, path)
    dir_present = [n in header for n in _DIR]
    if any(dir_present) and not all(dir_present):
        raise InputError("give all of dir_x, dir_y, dir_z or none of them", path)
    dcols = [header[n] for n in _DIR] if all(dir_present) else None
    scol = header.get("strength_u")
    ncol = header.get("needle")
    pos, axes, has_axis, strengths, lines, needles = [], [], [], [], [], []
    for ln, f in rows:
        pos.append([_number(f, c, n, ln, path) for c, n in zip(cols, _XYZ, strict=True)])
        cells = [f[c] if c < len(f) else None for c in dcols] if dcols is not None else []
        if dcols is not None and all(c == "" for c in cells):
            cells = []  # all three empty: no explicit axis on this row
        if cells and any(c == "" for c in cells):
            raise InputError(f"line {ln}: give all of dir_x, dir_y, dir_z or none of them", path)
        if cells:
            a = np.array([_number(f, c, n, ln, path) for c, n in zip(dcols, _DIR, strict=True)])
            scale = float(np.max(np.abs(a)))  # scaled first: 1e200 components do not overflow
            if scale < 1e-9:
                raise InputError(f"line {ln}: seed direction (dir_x, dir_y, dir_z) is zero", path)
            a = a / scale
            axes.append(a / np.linalg.norm(a))
            has_axis.append(True)
        else:
            axes.append(np.array([0.0, 0.0, 1.0]))
            has_axis.append(False)
        if scol is not None and scol < len(f) and f[scol] != "":
            s = _number(f, scol, "strength_U", ln, path)
            if s <= 0:
                raise InputError(f"line {ln}: strength_U must be positive ({f[scol]!r})", path)
            strengths.append(s)
        else:
            strengths.append(math.nan)
        nid = f[ncol] if ncol is not None and ncol < len(f) and f[ncol] != "" else None
        if nid is not None and needle_directions is not None and nid not in needle_directions:
            raise InputError(f"line {ln}: needle {nid!r} is not in the needles file", path)
        needles.append(nid)
        lines.append(ln)
    if not pos:
        raise InputError("no seeds (the file has a header but no data rows)", path)
    positions = np.array(pos, dtype=np.float64)
    explicit = np.array(has_axis, dtype=bool)
    final_axes = needle_axes(
        positions,
        needles,
        np.array(axes, dtype=np.float64),
        explicit,
        needle_directions=needle_directions,
        line_numbers=lines,
        path=path,
    )
    return SeedRows(
        positions,
        final_axes,
        np.array(strengths, dtype=np.float64),
        tuple(lines),
        path,
        tuple(needles),
        explicit,
    )


@dataclass(frozen=True, eq=False)
class NeedleRows:
    """Needles read from CSV: ids (M,) unique strings; entry_mm, tip_mm (M, 3) LPS mm;
    line_numbers (M,) the 1-based line of each needle in the file."""

    ids: tuple[str, ...]
    entry_mm: NDArray[np.float64]
    tip_mm: NDArray[np.float64]
    line_numbers: tuple[int, ...]
    path: Path

    def __len__(self) -> int:
        return len(self.ids)

    def directions(self) -> dict[str, NDArray[np.float64]]:
        """Needle id → (3,) unit direction tip − entry (pointing into the patient)."""
        d = self.tip_mm - self.entry_mm
        d = d / np.linalg.norm(d, axis=1)[:, np.newaxis]
        return {nid: d[i] for i, nid in enumerate(self.ids)}

    def tracks(self) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """Needle id → (entry (3,), tip (3,)) mm, for :func:`dose.needles.check_seeds_on_tracks`."""
        return {nid: (self.entry_mm[i], self.tip_mm[i]) for i, nid in enumerate(self.ids)}


def read_needles_csv(path: str | Path) -> NeedleRows:
    """Needles ``needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm`` →
    :class:`NeedleRows`. Empty or repeated ids, entry = tip, or no rows raise InputError."""
    path = Path(path)
    header, rows = _rows(path)
    idcol, *cols = _require(header, NEEDLE_COLUMNS, path)
    ids: list[str] = []
    coords: list[list[float]] = []
    lines: list[int] = []
    first_line: dict[str, int] = {}
    for ln, f in rows:
        nid = f[idcol] if idcol < len(f) else ""
        if nid == "":
            raise InputError(f"line {ln}: empty needle id", path)
        if nid in first_line:
            raise InputError(
                f"line {ln}: needle {nid!r} appears twice (first on line {first_line[nid]})", path
            )
        first_line[nid] = ln
        xyz = [_number(f, c, n, ln, path) for c, n in zip(cols, NEEDLE_COLUMNS[1:], strict=True)]
        length = math.dist(xyz[:3], xyz[3:])
        if length < 1e-6:
            raise InputError(f"line {ln}: needle {nid!r} has zero length (entry = tip)", path)
        ids.append(nid)
        coords.append(xyz)
        lines.append(ln)
    if not ids:
        raise InputError("no needles (the file has a header but no data rows)", path)
    c = np.array(coords, dtype=np.float64)
    return NeedleRows(tuple(ids), c[:, :3], c[:, 3:], tuple(lines), path)


def write_dose_csv(
    path: str | Path,
    points_mm: ArrayLike,
    rate_cgy_h: ArrayLike,
    dose_gy: ArrayLike,
    comments: Iterable[str] = (),
    *,
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
) -> Path:
    """Write ``x_mm,y_mm,z_mm,dose_rate_cGy_h,dose_Gy`` with leading ``#`` comment lines.

    points_mm (P, 3) LPS mm; rate_cgy_h (P,) cGy/h; dose_gy (P,) Gy. Written under the one
    output rule (:mod:`planner.files.safe_write`: atomic; never over one of ``inputs``; an
    existing file only with ``force``). A non-finite value raises InputError naming ``path``
    and the row before anything is written. Returns the final path."""
    path = Path(path)
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    rate = np.asarray(rate_cgy_h, dtype=np.float64).reshape(-1)
    dose = np.asarray(dose_gy, dtype=np.float64).reshape(-1)
    if not (pts.shape[0] == rate.shape[0] == dose.shape[0]):
        raise ValueError(
            f"{pts.shape[0]} points, {rate.shape[0]} rates and {dose.shape[0]} doses differ"
        )
    table = np.column_stack([pts, rate, dose])
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InputError(
            f"row {i + 1} ({', '.join(f'{v:g}' for v in table[i])}) is not finite; nothing written",
            path,
        )
    with atomic_open(path, "w", inputs=inputs, force=force) as fh:
        for c in comments:
            for line in str(c).splitlines() or [""]:
                fh.write(f"# {line}\n")
        fh.write(",".join(DOSE_COLUMNS) + "\n")
        for (x, y, z), r, d in zip(pts, rate, dose, strict=True):
            fh.write(f"{x:.4f},{y:.4f},{z:.4f},{r:.6g},{d:.6g}\n")
    return path
