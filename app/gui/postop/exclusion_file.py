"""The exclusion region as a file: the mask ``seedplan detect|verify --exclude MASK`` reads.

:func:`save_exclusion_mask` writes the painted region as a 3-D image on the post-op CT's grid
(uint8, 1 = never searched for seeds, 0 elsewhere; the CT's origin, spacing and direction) in
one of the single-file formats :data:`MASK_SUFFIXES`. The write follows SeedPlan's output rule
(:mod:`planner.files.safe_write`): atomic, never over one of ``inputs`` (the post-op CT, the
planning CT, the plan), never onto a folder, device or FIFO, and an existing file only with
``force``; the file is read back before it replaces anything.

:func:`load_exclusion_mask` reads such a file with the command line's own reader
(:func:`app.commands.detect_cmd.load_exclusion`): nonzero = excluded, and a mask not on the CT
grid is refused with an :class:`~dose.errors.InputError` that states both grids.
Qt-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.files.safe_write import OutputError, write_with
from planner.imaging.volume import CTVolume

__all__ = ["MASK_SUFFIXES", "load_exclusion_mask", "save_exclusion_mask"]

#: Formats the region is saved in: one file each (.mhd/.nhdr would write a second data file
#: beside the header, which cannot be replaced atomically with it).
MASK_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")


def save_exclusion_mask(
    mask_zyx: NDArray[np.bool_],
    geometry: GridGeometry,
    path: str | Path,
    *,
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
) -> Path:
    """Write ``mask_zyx`` (bool, ``geometry.shape_zyx``) to ``path``; returns the final path.

    Raises InputError (one line naming ``path``) for another suffix, and OutputError when the
    target is refused or the write fails (the previous file is then unchanged)."""
    import SimpleITK as sitk  # noqa: N813 (the library's own convention)

    from planner.imaging.image_files import read_image_array, sitk_image

    target = Path(path)
    if not target.name.lower().endswith(MASK_SUFFIXES):
        raise InputError(f"save the exclusion region as {', '.join(MASK_SUFFIXES)}", target)
    mask = np.asarray(mask_zyx, dtype=bool)
    if mask.shape != geometry.shape_zyx:
        raise ValueError(f"mask shape {mask.shape} does not match {geometry.shape_zyx}")
    image = sitk_image(mask.astype(np.uint8), geometry)

    def write(tmp: Path) -> None:
        sitk.WriteImage(image, str(tmp), True)

    def verify(tmp: Path) -> None:
        back, back_geometry = read_image_array(tmp)
        if not back_geometry.same_as(geometry, tol_mm=1e-4) or not np.array_equal(back != 0, mask):
            raise OutputError("the written mask read back different; nothing was replaced", target)

    return write_with(
        target, write, inputs=inputs, force=force, verify=verify, io_errors=(RuntimeError,)
    )


def load_exclusion_mask(path: str | Path, ct: CTVolume) -> NDArray[np.bool_]:
    """The (z, y, x) bool mask of ``path`` on ``ct``'s grid (``--exclude``'s reader); raises
    InputError naming the file when it cannot be read or lies on another grid."""
    from app.commands.detect_cmd import load_exclusion
    from planner.imaging.paths import IMAGE_SUFFIXES

    source = Path(path)
    if not source.name.lower().endswith(IMAGE_SUFFIXES):
        raise InputError(
            f"an exclusion mask is an image file ({', '.join(IMAGE_SUFFIXES)})", source
        )
    return load_exclusion(str(source), ct)
