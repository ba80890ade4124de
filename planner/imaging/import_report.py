"""What a CT import read, skipped and found (INT-1): the report every loader entry point returns.

:class:`ImportReport` is the one record the CLI prints (``seedplan info``), the GUI shows in its
import report and a refused load carries inside :class:`CTImportError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.dicom_scan import ScanResult, SeriesInfo, SkippedFile
from planner.imaging.volume import CTVolume

__all__ = ["CTImportError", "ImportReport", "ImportResult"]


@dataclass
class ImportReport:
    """What an import read, skipped and found (INT-1). ``problems`` non-empty = refused."""

    source: Path
    series_uid: str
    files_read: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    estimated_memory_bytes: int = 0
    geometry: GridGeometry | None = None
    series_found: list[str] = field(default_factory=list)  # one summary line per series

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Human-readable report, one entry per line."""
        out = [f"Source: {self.source}"]
        if self.series_uid:
            out.append(f"Series: {self.series_uid}")
        if self.series_found:
            out.append(f"Series found ({len(self.series_found)}):")
            out.extend(f"  {s}" for s in self.series_found)
        out.append(f"Files read: {len(self.files_read)}")
        out.append(f"Estimated memory: {self.estimated_memory_bytes / 2**20:.1f} MiB")
        if self.geometry is not None:
            g = self.geometry
            out.append(
                "Geometry: "
                + "×".join(str(n) for n in g.shape_xyz)
                + " voxels (x×y×z), spacing "
                + "/".join(f"{v:.4g}" for v in g.spacing_mm)
                + " mm, origin ("
                + ", ".join(f"{v:.2f}" for v in g.origin_mm)
                + ") mm LPS"
                + ("" if g.is_axis_aligned else ", direction " + _fmt_direction(g.direction))
            )
        if self.skipped:
            out.append(f"Skipped ({len(self.skipped)}):")
            out.extend(f"  {s.path}: {s.reason}" for s in self.skipped)
        if self.warnings:
            out.append(f"Warnings ({len(self.warnings)}):")
            out.extend(f"  - {w}" for w in self.warnings)
        if self.problems:
            out.append(f"NOT LOADED ({len(self.problems)} problem(s)):")
            out.extend(f"  - {p}" for p in self.problems)
        return out

    def refusal(self) -> CTImportError:
        """The error a refused series raises: one line, path + first problem (+ how many more)."""
        n = len(self.problems)
        more = f" (and {n - 1} more problem(s))" if n > 1 else ""
        first = self.problems[0] if self.problems else "no problem recorded"
        return CTImportError(f"CT not loaded: {first}{more}", self.source, self)

    def to_dict(self) -> dict:
        return {
            "source": str(self.source),
            "series_uid": self.series_uid,
            "loaded": self.ok,
            "files_read": [str(p) for p in self.files_read],
            "n_files_read": len(self.files_read),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
            "warnings": list(self.warnings),
            "problems": list(self.problems),
            "estimated_memory_bytes": int(self.estimated_memory_bytes),
            "geometry": None if self.geometry is None else self.geometry.to_dict(),
        }


class CTImportError(InputError):
    """The series was refused; ``report`` says why (the GUI shows it, the CLI prints one line)."""

    def __init__(self, problem: str, path: str | Path | None, report: ImportReport) -> None:
        super().__init__(problem, path)
        self.report = report


@dataclass
class ImportResult:
    """Outcome of :func:`inspect_ct`: the volume (None when refused), report, scan and series."""

    volume: CTVolume | None
    report: ImportReport
    scan: ScanResult | None = None
    series: SeriesInfo | None = None


def _fmt_direction(d: NDArray[np.float64]) -> str:
    return (
        "["
        + "; ".join(" ".join(f"{round(v, 4) + 0.0:.4f}" for v in d[:, c]) for c in range(3))
        + "] (i; j; k)"
    )
