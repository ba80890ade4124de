"""Reading one DICOM object of an expected kind (RTSTRUCT, RTDOSE …) with a user-facing error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dose.errors import InputError

__all__ = ["read_dicom_object"]


def read_dicom_object(path: str | Path, *, modality: str, sop_class_uid: str) -> Any:
    """The pydicom dataset at ``path``, checked to be ``modality`` (or, without a Modality
    tag, of ``sop_class_uid``). Missing or unreadable files keep their OS error; anything else
    raises :class:`InputError` naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise InputError(f"not a readable DICOM file ({exc})", path) from exc
    found = str(getattr(ds, "Modality", ""))
    sop = str(getattr(ds, "SOPClassUID", ""))
    if found != modality and (found or sop != sop_class_uid):
        raise InputError(f"not an {modality} file (Modality {found or 'missing'})", path)
    return ds
