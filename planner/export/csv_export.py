"""Text exports: seed coordinates CSV, needle CSV, loading-sheet CSV and metrics JSON.

CSV files follow DESIGN.md: ``#`` comment lines (plan identity, coordinate system, units), then
one header line. Coordinates are LPS mm written with 3 decimals (1 µm: seed positions round-trip
within 0.01 mm); strengths S_K in U at the source's reference (calibration) date.

* ``seeds.csv``: ``x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,strength_U,seed,needle,from_tip_mm`` (the
  first six and ``strength_U`` are the seeds contract; the rest are ignored by readers).
* ``needles.csv``: ``order,needle,entry_x_mm,…,tip_z_mm,depth_mm,tilt_deg,axial_angle_deg,
  n_seeds,n_spacers,loaded_length_mm``.
* ``loading_sheet.csv``: one line per loaded item from each needle's tip:
  ``needle_order,needle,item,kind,seed,length_mm,from_tip_mm``.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from planner.export.needle_table import NeedleRow, SeedRow

__all__ = ["loading_csv", "metrics_json", "needles_csv", "seeds_csv"]


def _f(v: float | None, digits: int = 3) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _header(buf: io.StringIO, identity: list[str]) -> None:
    for line in identity:
        buf.write(f"# {line}\n")
    buf.write("# coordinates: DICOM patient (LPS), millimetres\n")


def seeds_csv(rows: list[SeedRow], identity: list[str]) -> str:
    """The seed coordinates CSV (module docstring)."""
    buf = io.StringIO()
    _header(buf, identity)
    buf.write("# strength_U: air-kerma strength S_K per seed (U) at the calibration date\n")
    buf.write("x_mm,y_mm,z_mm,dir_x,dir_y,dir_z,strength_U,seed,needle,from_tip_mm\n")
    for r in rows:
        x, y, z = r.seed.position_mm
        a, b, c = r.seed.axis
        buf.write(
            f"{x:.3f},{y:.3f},{z:.3f},{a:.6f},{b:.6f},{c:.6f},{_f(r.strength_u, 4)},"
            f"{r.number},{r.needle_label},{_f(r.from_tip_mm, 2)}\n"
        )
    return buf.getvalue()


def needles_csv(rows: list[NeedleRow], identity: list[str]) -> str:
    """The needle CSV (module docstring)."""
    buf = io.StringIO()
    _header(buf, identity)
    buf.write(
        "order,needle,entry_x_mm,entry_y_mm,entry_z_mm,tip_x_mm,tip_y_mm,tip_z_mm,depth_mm,"
        "tilt_deg,axial_angle_deg,n_seeds,n_spacers,loaded_length_mm\n"
    )
    for r in rows:
        e, t = r.needle.entry_mm, r.needle.tip_mm
        buf.write(
            f"{r.order},{r.label},{e[0]:.3f},{e[1]:.3f},{e[2]:.3f},{t[0]:.3f},{t[1]:.3f},"
            f"{t[2]:.3f},{r.depth_mm:.2f},{r.tilt_deg:.1f},{r.axial_angle_deg:.1f},"
            f"{len(r.seeds)},{r.n_spacers},{r.loaded_length_mm:.2f}\n"
        )
    return buf.getvalue()


def loading_csv(rows: list[NeedleRow], identity: list[str], seed_length_mm: float) -> str:
    """The loading sheet as CSV: every item of every needle from its tip (module docstring)."""
    buf = io.StringIO()
    _header(buf, identity)
    buf.write(f"# seed length {seed_length_mm:.2f} mm; spacer lengths are cut to the value given\n")
    buf.write("needle_order,needle,item,kind,seed,length_mm,from_tip_mm\n")
    for r in rows:
        pos = 0.0
        for i, (kind, value) in enumerate(r.sequence, start=1):
            length = value if kind == "spacer" else seed_length_mm
            seed = "" if kind == "spacer" else str(int(value))
            buf.write(f"{r.order},{r.label},{i},{kind},{seed},{length:.2f},{pos:.2f}\n")
            pos += length
    return buf.getvalue()


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def metrics_json(doc: dict[str, Any]) -> str:
    """One JSON object (NaN/inf as null), sorted keys, newline-terminated."""
    return json.dumps(_clean(doc), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
