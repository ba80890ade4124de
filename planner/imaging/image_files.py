"""Read and write 3-D images (NIfTI .nii/.nii.gz, MetaImage .mha/.mhd, NRRD .nrrd/.nhdr).

SimpleITK does the file formats. Its physical space is LPS, like ours: ITK converts NIfTI's RAS
(qform/sform) to LPS on reading and back on writing, so an image keeps its place in the patient
whatever the format. The full direction matrix is kept (non-identity directions work).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own convention)
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.paths import (
    IMAGE_SUFFIXES,
    SpecialFileError,
    open_regular,
    regular_file_problem,
)
from planner.imaging.volume import CTVolume, PatientInfo

__all__ = ["geometry_from_sitk", "read_image", "read_image_array", "sitk_image", "write_image"]

_SUFFIXES = IMAGE_SUFFIXES
# Detached headers name their voxel file(s): MetaImage "ElementDataFile = x.raw", NRRD
# "data file: x.raw" (or "LIST" followed by one name per line).
_DATA_FILE_KEYS = {".mhd": ("elementdatafile",), ".nhdr": ("data file", "datafile")}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ libraries writing to fd 2 (MetaIO prints parse errors to std::cerr) so a
    bad file gives one clean line; the reason still comes through the exception."""
    fd = 2  # the process's stderr, whatever sys.stderr currently is
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _check_suffix(path: Path) -> None:
    if not any(path.name.lower().endswith(s) for s in _SUFFIXES):
        raise InputError(
            "unsupported image format (use .nii, .nii.gz, .mha, .mhd, .nrrd or .nhdr)", path
        )


def geometry_from_sitk(image: sitk.Image) -> GridGeometry:
    """GridGeometry of a 3-D SimpleITK image (its direction is row-major, columns = axes)."""
    size = image.GetSize()  # (x, y, z)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return GridGeometry(
        (int(size[2]), int(size[1]), int(size[0])),
        np.asarray(image.GetOrigin(), dtype=float),
        np.asarray(image.GetSpacing(), dtype=float),
        direction,
    )


def sitk_image(array_zyx: NDArray, geometry: GridGeometry) -> sitk.Image:
    """A SimpleITK image holding ``array_zyx`` (shape = geometry.shape_zyx) on ``geometry``."""
    if tuple(array_zyx.shape) != geometry.shape_zyx:
        raise ValueError(f"array shape {array_zyx.shape} does not match {geometry.shape_zyx}")
    arr = array_zyx.astype(np.uint8) if array_zyx.dtype == np.bool_ else array_zyx
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    image.SetOrigin(tuple(float(v) for v in geometry.origin_mm))
    image.SetSpacing(tuple(float(v) for v in geometry.spacing_mm))
    image.SetDirection(tuple(float(v) for v in geometry.direction.reshape(-1)))
    return image


def write_image(array_zyx: NDArray, geometry: GridGeometry, path: str | Path) -> Path:
    """Write an array on a grid as NIfTI/MHA/MHD/NRRD (format by extension); returns the path."""
    out = Path(path)
    _check_suffix(out)
    sitk.WriteImage(sitk_image(array_zyx, geometry), str(out), True)
    return out


def read_image_array(
    path: str | Path, *, max_memory_bytes: int | None = None
) -> tuple[NDArray, GridGeometry]:
    """Read a 3-D scalar image: ``(array (z, y, x), geometry)``. Bad files raise InputError."""
    src = Path(path)
    problem = regular_file_problem(src)
    if problem:
        raise InputError(problem, src)
    _check_suffix(src)
    _check_detached_data(src)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(src))
        with _quiet_stderr():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read image header: {_first_line(exc)}", src) from exc
    dim = reader.GetDimension()
    size = reader.GetSize()
    if dim == 4 and size[3] == 1:
        pass  # a 4-D file with one volume (common NIfTI); handled below
    elif dim != 3:
        raise InputError(f"expected a 3-D image, got {dim}-D (size {list(size)})", src)
    if reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"expected a scalar image, got {reader.GetNumberOfComponents()} components per voxel",
            src,
        )
    _check_nifti_size(src, reader)
    n_vox = int(np.prod(size[:3]))
    itemsize = max(2, sitk.GetArrayViewFromImage(sitk.Image(1, 1, 1, reader.GetPixelID())).itemsize)
    if max_memory_bytes is not None and n_vox * itemsize > max_memory_bytes:
        raise InputError(
            f"needs about {n_vox * itemsize / 2**20:.0f} MiB, above the limit of "
            f"{max_memory_bytes / 2**20:.0f} MiB",
            src,
        )
    try:
        with _quiet_stderr():
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read image: {_first_line(exc)}", src) from exc
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    try:
        geometry = geometry_from_sitk(image)
    except ValueError as exc:
        # e.g. a sheared NIfTI sform: the direction matrix is not orthonormal.
        raise InputError(f"unsupported geometry: {exc}", src) from exc
    return sitk.GetArrayFromImage(image), geometry


def read_image(path: str | Path, *, max_memory_bytes: int | None = None) -> CTVolume:
    """Read a CT image file as a CTVolume (HU as int16 when the values are integral, else float32).

    The file's values are taken as HU (no rescale information exists in these formats); the HU
    range is checked and a warning added when it does not look like CT.
    """
    src = Path(path)
    array, geometry = read_image_array(src, max_memory_bytes=max_memory_bytes)
    warnings: list[str] = []
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if lo >= -32768 and hi <= 32767:
            hu = array.astype(np.int16, copy=False)
        else:
            hu = array.astype(np.float32)
    else:
        hu = array.astype(np.float32, copy=False)
        if not np.all(np.isfinite(hu)):
            raise InputError("image holds NaN or infinite values", src)
    if hu.size:
        lo_f, hi_f = float(hu.min()), float(hu.max())
        if lo_f > -900:
            warnings.append(
                f"implausible HU range {lo_f:.0f}…{hi_f:.0f}: no air (≈ −1000 HU); is this a CT "
                "in Hounsfield units?"
            )
    name = src.name
    for s in _SUFFIXES:
        if name.lower().endswith(s):
            name = name[: -len(s)]
            break
    return CTVolume(
        hu=hu,
        geometry=geometry,
        info=PatientInfo(series_description=name),
        warnings=warnings,
        source_path=str(src),
    )


def _check_detached_data(header: Path) -> None:
    """A .mhd/.nhdr header's voxel files must be regular files too (ITK would block on a FIFO
    or read /dev/zero forever); raises InputError naming the data file and what it is."""
    suffix = next((s for s in _DATA_FILE_KEYS if header.name.lower().endswith(s)), None)
    if suffix is None:
        return
    try:
        with open_regular(header) as fp:
            text = fp.read(1 << 16).decode("latin-1")
    except SpecialFileError as exc:
        raise InputError(exc.reason, header) from exc
    lines = text.splitlines()
    names: list[str] = []
    for n, line in enumerate(lines):
        key, sep, value = line.partition("=" if suffix == ".mhd" else ":")
        if not sep or key.strip().lower() not in _DATA_FILE_KEYS[suffix]:
            continue
        value = value.strip()
        if value.upper() == "LIST":
            names = [ln.strip() for ln in lines[n + 1 :] if ln.strip()]
        elif value.upper() != "LOCAL" and "%" not in value:
            names = [value]
        break
    for name in names[:10000]:
        data = Path(name) if Path(name).is_absolute() else header.parent / name
        problem = regular_file_problem(data)
        if problem:
            raise InputError(f"its voxel data file {name}: {problem}", header)


def _first_line(exc: BaseException) -> str:
    """The human part of an ITK exception, on one line."""
    lines = [
        ln.strip()
        for ln in str(exc).splitlines()
        if ln.strip()
        and not ln.startswith("Exception thrown in")
        # MetaImageIO appends errno, which is stale ("No such file") for a damaged file.
        and not ln.strip().startswith("Reason: No such file")
    ]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"ITK ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", text)
    text = text.replace("sitk::ERROR: ", "").replace("[nrrd] ", "")
    if "Unable to determine ImageIO reader" in text:
        return "format not recognised (not a valid NIfTI/MetaImage/NRRD file)"
    if "File cannot be read" in text:
        return "the file cannot be read (damaged or truncated?)"
    return text[:200]


def _check_nifti_size(path: Path, reader: sitk.ImageFileReader) -> None:
    """Uncompressed .nii cut short: ITK pads the missing voxels with zeros without an error,
    so compare the file size with the header's data offset + voxel bytes."""
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return
    gz = name.endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fp:
            head = fp.read(176)
    except (OSError, EOFError) as exc:
        raise InputError(f"damaged file: {exc}", path) from exc
    if len(head) < 176:
        raise InputError("truncated NIfTI header", path)
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", head[:4])[0]
        if sizeof_hdr == 348:  # NIfTI-1: vox_offset float32 at byte 108
            vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if sizeof_hdr == 540:  # NIfTI-2: vox_offset int64 at byte 168
            vox_offset = int(struct.unpack(endian + "q", head[168:176])[0])
            break
    else:
        return  # not a NIfTI header ITK would have accepted; let ITK speak
    probe = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())
    itemsize = sitk.GetArrayViewFromImage(probe).itemsize
    n_bytes = int(np.prod(reader.GetSize())) * itemsize * reader.GetNumberOfComponents()
    if gz:
        # A cut .nii.gz also reads without error in ITK: walk the whole gzip stream.
        size = 0
        try:
            with gzip.open(path, "rb") as fp:
                while chunk := fp.read(1 << 24):
                    size += len(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"truncated or damaged gzip data: {exc}", path) from exc
    else:
        size = path.stat().st_size
    if size < vox_offset + n_bytes:
        raise InputError(
            f"truncated: voxel data need {vox_offset + n_bytes} bytes, the file has {size}", path
        )
