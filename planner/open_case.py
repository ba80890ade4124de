"""Opening a case: one Qt-free function for the GUI, the command line and scripts.

A *case* is what the user points SeedPlan at: a DICOM folder, a CT image file (NIfTI, MHA,
NRRD) or a SeedPlan demo case folder (its CT sub-folder also counts). Opening it means: find the
CT inside (the demo case's ``ct/`` folder), scan a DICOM folder, choose the series, load the CT
with :func:`planner.imaging.ct_loader.load_ct`, and for a demo case load its ground-truth masks.

* :func:`open_case` never asks: several series → the largest CT series, and the report says
  so (what ``seedplan info`` / ``plan new`` and ``gui --screenshot`` do).
* :func:`open_case_or_choose` returns a :class:`SeriesChoice` instead of loading when a folder
  holds several series (or no CT series) and no ``series_uid`` was given, so that a GUI can ask
  the user on its own thread and call again with the chosen ``series_uid``.

Both take ``progress(fraction 0..1, message)`` and ``cancel() -> bool`` (:mod:`dose.progress`),
may run on a worker thread, raise :class:`dose.errors.InputError` (one line naming the path and
the problem; a refused series raises its subclass ``CTImportError`` carrying the full import
report) and :class:`dose.progress.Cancelled` when cancelled.

Example::

    case = open_case("patient/CT")          # OpenedCase
    case.volume.geometry, case.masks, case.report_lines
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from dose.errors import InputError
from dose.progress import CancelFn, ProgressFn, check_cancelled, report, sub_progress
from planner.imaging.volume import CTVolume, Mask

if TYPE_CHECKING:
    from planner.imaging.dicom_scan import ScanResult

__all__ = [
    "CaseLocation",
    "OpenedCase",
    "SeriesChoice",
    "locate_case",
    "open_case",
    "open_case_or_choose",
]

#: Share of the progress range used by the header scan when a folder is scanned first.
_SCAN_SHARE = 0.3


@dataclass(frozen=True)
class CaseLocation:
    """Where the CT of a case is: ``ct_path`` to load; ``demo_case_dir`` for a demo case."""

    path: Path  # what was given
    ct_path: Path
    demo_case_dir: Path | None = None


@dataclass(frozen=True)
class OpenedCase:
    """A loaded CT and what is shown with it (the document state a session holds).

    Attributes
    ----------
    volume : CTVolume
        HU ``(z, y, x)`` on its :class:`~dose.geometry.GridGeometry` (LPS mm).
    source_path : Path
        What the user opened (folder, file or demo case folder).
    masks : mapping of str to Mask
        Structures on the CT grid (the demo case's ground truth; empty otherwise), read-only.
    report_lines : tuple of str
        The import report, one line each (shown by the GUI's import report).
    series_uid : str
        The series that was loaded ("" for an image file).
    demo_case_dir : Path or None
    """

    volume: CTVolume
    source_path: Path
    masks: Mapping[str, Mask] = field(default_factory=dict)
    report_lines: tuple[str, ...] = ()
    series_uid: str = ""
    demo_case_dir: Path | None = None

    def __post_init__(self) -> None:
        for name, mask in self.masks.items():
            if not mask.geometry.same_as(self.volume.geometry):
                raise ValueError(f"mask {name!r} is not on the CT grid of {self.source_path}")
        object.__setattr__(self, "masks", MappingProxyType(dict(self.masks)))
        object.__setattr__(self, "report_lines", tuple(self.report_lines))

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user must see about this CT (resampling, gaps, skipped files…)."""
        return tuple(self.volume.warnings)


@dataclass(frozen=True)
class SeriesChoice:
    """A DICOM folder holds several series (or no CT series): the caller must choose."""

    scan: ScanResult
    location: CaseLocation

    @property
    def path(self) -> Path:
        return self.location.path

    def no_ct_message(self) -> str:
        """One line for a folder without any CT series (names the folder and what it holds)."""
        kinds = sorted({s.modality or "?" for s in self.scan.series})
        what = f"only {', '.join(kinds)} series" if kinds else "no DICOM images"
        return (
            f"{self.scan.root}: no CT series found ({what}; "
            f"{len(self.scan.skipped)} file(s) skipped)"
        )


def locate_case(path: str | Path) -> CaseLocation:
    """Resolve what to load for ``path``; InputError when it does not exist."""
    from planner.demo.case import DEMO_CT_SUBDIR, is_demo_case

    given = Path(path).expanduser()
    if not given.exists():
        raise InputError("no such file or folder", given)
    if given.is_dir() and is_demo_case(given) and (given / DEMO_CT_SUBDIR).is_dir():
        return CaseLocation(given, given / DEMO_CT_SUBDIR, given)
    if given.name == DEMO_CT_SUBDIR and is_demo_case(given.parent):
        return CaseLocation(given, given, given.parent)
    return CaseLocation(given, given, None)


def open_case(
    path: str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> OpenedCase:
    """Open ``path`` (see the module docstring); several series → the largest CT series."""
    result = _open(path, series_uid, progress, cancel, ask=False)
    assert isinstance(result, OpenedCase)
    return result


def open_case_or_choose(
    path: str | Path,
    *,
    series_uid: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> OpenedCase | SeriesChoice:
    """Like :func:`open_case`, but a folder with several series (or none that is CT) and no
    ``series_uid`` returns a :class:`SeriesChoice` (nothing loaded) instead."""
    return _open(path, series_uid, progress, cancel, ask=True)


def _open(
    path: str | Path,
    series_uid: str | None,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    *,
    ask: bool,
) -> OpenedCase | SeriesChoice:
    from planner.imaging.ct_loader import load_ct

    location = locate_case(path)
    check_cancelled(cancel, "open cancelled")
    uid = series_uid
    notes: list[str] = []
    scanned = False
    if location.ct_path.is_dir() and uid is None:
        scan = _scan(location.ct_path, sub_progress(progress, 0.0, _SCAN_SHARE), cancel)
        cts = scan.ct_series()
        if ask and (len(scan.series) != 1 or not cts):
            return SeriesChoice(scan=scan, location=location)
        if not cts:
            raise InputError(SeriesChoice(scan, location).no_ct_message())
        uid = cts[0].key
        scanned = True
        if len(scan.series) > 1:
            notes.append(
                f"{len(scan.series)} series in the folder; opened the largest CT series {uid}"
            )
    load_progress = sub_progress(progress, _SCAN_SHARE, 1.0) if scanned else progress
    volume, import_report = load_ct(
        location.ct_path, series_uid=uid, progress=load_progress, cancel=cancel
    )
    lines = [*import_report.lines(), *notes]
    masks: dict[str, Mask] = {}
    if location.demo_case_dir is not None:
        from planner.demo.case import load_demo_masks

        try:
            masks = dict(load_demo_masks(location.demo_case_dir, volume.geometry))
        except InputError as exc:  # the CT is still usable; say why the masks are missing
            warning = f"demo ground-truth masks not shown: {exc}"
            volume.warnings.append(warning)
            lines.append(warning)
    report(progress, 1.0, "opened")
    return OpenedCase(
        volume=volume,
        source_path=location.path,
        masks=masks,
        report_lines=tuple(lines),
        series_uid=volume.info.series_instance_uid,
        demo_case_dir=location.demo_case_dir,
    )


def _scan(folder: Path, progress: ProgressFn | None, cancel: CancelFn | None) -> ScanResult:
    """Header scan of ``folder`` (progress and cancel as in :mod:`dose.progress`)."""
    from planner.imaging.dicom_scan import scan_dicom

    return scan_dicom(folder, progress=progress, cancel=cancel)
