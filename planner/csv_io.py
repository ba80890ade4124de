"""Seed, point and dose CSV files (format contract in DESIGN.md, "Command line").

Rules: one header line (the first line that is not blank and not a ``#`` comment); ``#`` lines
are comments anywhere; blank lines are skipped; extra columns are ignored; column names are
matched case-insensitively. Malformed rows raise :class:`dose.errors.InputError` naming the file
and the line.

Public API::

    read_seeds_csv(path) -> SeedRows          # x_mm,y_mm,z_mm [,dir_x,dir_y,dir_z] [,strength_U]
    read_points_csv(path) -> (P, 3) float64   # x_mm,y_mm,z_mm
    write_dose_csv(path, points_mm, rate_cgy_h, dose_gy, comments=())
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError

__all__ = [
    "DOSE_COLUMNS",
    "SeedRows",
    "read_points_csv",
    "read_seeds_csv",
    "write_dose_csv",
]

DOSE_COLUMNS = ("x_mm", "y_mm", "z_mm", "dose_rate_cGy_h", "dose_Gy")
_XYZ = ("x_mm", "y_mm", "z_mm")
_DIR = ("dir_x", "dir_y", "dir_z")


@dataclass(frozen=True, eq=False)
class SeedRows:
    """Seeds read from CSV.

    positions_mm (N, 3) LPS; axes (N, 3) unit vectors (default (0, 0, 1)); strengths_u (N,)
    with NaN where the file gives none (no ``strength_U`` column or an empty cell);
    line_numbers (N,) the 1-based line of each seed in the file.
    """

    positions_mm: NDArray[np.float64]
    axes: NDArray[np.float64]
    strengths_u: NDArray[np.float64]
    line_numbers: tuple[int, ...]
    path: Path

    def __len__(self) -> int:
        return int(self.positions_mm.shape[0])

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


def read_seeds_csv(path: str | Path) -> SeedRows:
    """Seeds ``x_mm,y_mm,z_mm`` [``dir_x,dir_y,dir_z``] [``strength_U``] → :class:`SeedRows`."""
    path = Path(path)
    header, rows = _rows(path)
    cols = _require(header, _XYZ, path)
    dir_present = [n in header for n in _DIR]
    if any(dir_present) and not all(dir_present):
        raise InputError("give all of dir_x, dir_y, dir_z or none of them", path)
    dcols = [header[n] for n in _DIR] if all(dir_present) else None
    scol = header.get("strength_u")
    pos, axes, strengths, lines = [], [], [], []
    for ln, f in rows:
        pos.append([_number(f, c, n, ln, path) for c, n in zip(cols, _XYZ, strict=True)])
        if dcols is not None:
            a = np.array([_number(f, c, n, ln, path) for c, n in zip(dcols, _DIR, strict=True)])
            norm = float(np.linalg.norm(a))
            if norm < 1e-9:
                raise InputError(f"line {ln}: seed direction (dir_x, dir_y, dir_z) is zero", path)
            axes.append(a / norm)
        else:
            axes.append(np.array([0.0, 0.0, 1.0]))
        if scol is not None and scol < len(f) and f[scol] != "":
            s = _number(f, scol, "strength_U", ln, path)
            if s <= 0:
                raise InputError(f"line {ln}: strength_U must be positive ({f[scol]!r})", path)
            strengths.append(s)
        else:
            strengths.append(math.nan)
        lines.append(ln)
    if not pos:
        raise InputError("no seeds (the file has a header but no data rows)", path)
    return SeedRows(
        np.array(pos, dtype=np.float64),
        np.array(axes, dtype=np.float64),
        np.array(strengths, dtype=np.float64),
        tuple(lines),
        path,
    )


def write_dose_csv(
    path: str | Path,
    points_mm: ArrayLike,
    rate_cgy_h: ArrayLike,
    dose_gy: ArrayLike,
    comments: Iterable[str] = (),
) -> None:
    """Write ``x_mm,y_mm,z_mm,dose_rate_cGy_h,dose_Gy`` with leading ``#`` comment lines."""
    path = Path(path)
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    rate = np.asarray(rate_cgy_h, dtype=np.float64).reshape(-1)
    dose = np.asarray(dose_gy, dtype=np.float64).reshape(-1)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        for c in comments:
            for line in str(c).splitlines() or [""]:
                fh.write(f"# {line}\n")
        fh.write(",".join(DOSE_COLUMNS) + "\n")
        for (x, y, z), r, d in zip(pts, rate, dose, strict=True):
            fh.write(f"{x:.4f},{y:.4f},{z:.4f},{r:.6g},{d:.6g}\n")
    tmp.replace(path)  # atomic: a failed write never leaves a half-written file
