"""Decode the pixel data of the slices of one series and rescale them to HU (float32 planes)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray

from dose.progress import CancelFn, Cancelled
from planner.imaging.dicom_scan import SkippedFile, SliceHeader, transfer_syntax_name
from planner.imaging.import_report import ImportReport
from planner.imaging.paths import SpecialFileError, open_regular
from planner.imaging.slice_stack import AIR_HU

__all__ = ["one_line", "read_pixels"]


def read_pixels(
    by_file: dict[Path, list[SliceHeader]],
    report: ImportReport,
    progress: Callable[[float], None],
    cancel: CancelFn | None,
) -> dict[tuple[Path, int], NDArray[np.float32]]:
    """Decode and rescale each image to HU (float32); undecodable files are skipped."""
    out: dict[tuple[Path, int], NDArray[np.float32]] = {}
    total = len(by_file)
    n_padding_voxels = 0
    for n, (path, headers) in enumerate(by_file.items()):
        if cancel is not None and cancel():
            raise Cancelled("load cancelled")
        ts = headers[0].transfer_syntax_uid
        try:
            with open_regular(path) as fp, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid values: the header checks speak
                ds = pydicom.dcmread(fp, force=True)
                meta = getattr(ds, "file_meta", None)
                if meta is None or "TransferSyntaxUID" not in meta:
                    # No file meta (§4 #14): use the encoding the header scan found.
                    meta = meta if meta is not None else pydicom.dataset.FileMetaDataset()
                    meta.TransferSyntaxUID = ts
                    ds.file_meta = meta
                raw = ds.pixel_array
        except SpecialFileError as exc:
            report.skipped.append(_skip(headers[0], exc.reason))
            continue
        except (NotImplementedError, RuntimeError, ImportError) as exc:
            report.skipped.append(
                _skip(
                    headers[0],
                    f"pixel data cannot be decoded: unsupported compression "
                    f"{transfer_syntax_name(ts)} ({one_line(exc)})",
                )
            )
            continue
        except Exception as exc:  # truncated or corrupt: pydicom raises ValueError & co.
            what = (
                "compressed pixel data could not be decoded"
                if ts not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
                else "pixel data unreadable"
            )
            report.skipped.append(
                _skip(headers[0], f"{what} ({transfer_syntax_name(ts)}): {one_line(exc)}")
            )
            continue
        h0 = headers[0]
        expected = (h0.n_frames, h0.rows, h0.columns) if h0.n_frames > 1 else (h0.rows, h0.columns)
        if raw.shape != expected:
            report.skipped.append(
                _skip(h0, f"pixel array shape {raw.shape} does not match header {expected}")
            )
            continue
        frames = raw if h0.n_frames > 1 else raw[np.newaxis]
        padding = _padding_range(ds)
        for h in headers:
            stored = frames[h.frame]
            plane = stored.astype(np.float32)
            # Rescale per slice: slope/intercept may differ between slices (§4 #10).
            if h.rescale_slope != 1.0:
                plane *= np.float32(h.rescale_slope)
            if h.rescale_intercept != 0.0:
                plane += np.float32(h.rescale_intercept)
            if padding is not None:
                # Padding marks pixels outside the reconstructed field (e.g. −1500 on GE);
                # they are air, not "very low HU" tissue.
                outside = (stored >= padding[0]) & (stored <= padding[1])
                n_padding_voxels += int(outside.sum())
                plane[outside] = AIR_HU
            out[(h.path, h.frame)] = plane
        report.files_read.append(path)
        progress((n + 1) / max(total, 1))
    if n_padding_voxels:
        report.warnings.append(
            f"{n_padding_voxels} padding pixels (PixelPaddingValue: outside the reconstructed "
            f"field of view) set to {AIR_HU:.0f} HU (air)"
        )
    return out


def _skip(h: SliceHeader, reason: str) -> SkippedFile:
    """A skip record that remembers the file's series and position (to name it in a gap)."""
    return SkippedFile(h.path, reason, h.series_instance_uid, h.ipp_mm)


def _padding_range(ds: Any) -> tuple[float, float] | None:
    """Stored-value range marked as padding (PixelPaddingValue [..PixelPaddingRangeLimit])."""
    value = ds.get("PixelPaddingValue")
    if value is None or isinstance(value, (bytes, list)):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    lo = float(value)
    hi = float(limit) if isinstance(limit, (int, float)) else lo
    return (min(lo, hi), max(lo, hi))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("…" if len(text) > 200 else "")
