"""Slice stacking and resampling: the geometry of a set of parallel CT slices, and the regular
grid they are stored on.

Slice positions are computed along the slice normal n = row × column from each image's
ImagePositionPatient/ImageOrientationPatient (SimpleITK only warns and averages). Missing slices /
non-uniform spacing and gantry tilt (the position step not parallel to n, i.e. a *shear*) are
resampled onto a regular grid by :func:`resample` — or refused by the caller.

Resampling geometry (tilt and gaps). The slices of a tilted acquisition are parallel planes (the
IOP is tilted) whose origins step along the table axis, not along n. The output grid keeps the
slices' own row/column axes and pixel spacing and puts k along n (direction columns = row, col,
n), so it is the acquisition's true, orthogonal geometry. Each input slice is shifted in-plane by
its own IPP offset (linear interpolation, exact when the offset is a whole pixel) and output
planes are linearly interpolated between the two neighbouring slices along n. The first
(lowest-n) input slice lies exactly on output plane k = 0 and the last one on the last plane.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dose.geometry import GridGeometry
from dose.progress import CancelFn, Cancelled
from planner.imaging.dicom_headers import SkippedFile, SliceHeader

__all__ = [
    "AIR_HU",
    "StackGeometry",
    "analyse_stack",
    "irregular_reasons",
    "resample",
    "slice_name",
    "storage_dtype",
    "store_plane",
]

# Geometry tolerances (§4 #3): a position deviates when it is off by more than
# max(0.05 mm, 1 % of the slice spacing); in-plane offsets above 0.05 mm mean a shear.
POS_TOL_MM = 0.05
POS_TOL_FRACTION = 0.01
INPLANE_TOL_MM = 0.05
# Skip reasons of files that cannot be a missing slice, and of other parts of a split series.
_NOT_A_SLICE = ("not a regular file", "DICOMDIR", "symlink", "dangling", "unreadable folder")
_OTHER_PART = "same series but different"
AIR_HU = -1024.0  # air: fill for voxels outside every acquired slice, and for padding pixels


@dataclass
class StackGeometry:
    """Geometry of a set of parallel slices, sorted along the normal."""

    slices: list[SliceHeader]  # sorted by position along n
    d_mm: NDArray[np.float64]  # position of each slice along n
    offsets_px: NDArray[np.float64]  # (N, 2) in-plane offset of each slice vs slice 0 (row, col)
    row_dir: NDArray[np.float64]
    col_dir: NDArray[np.float64]
    normal: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    uniform: bool
    sheared: bool  # any in-plane offset between slices (tilt or shifted slices): resample
    tilt_deg: float  # from geometry (0 when not tilted)
    gaps_mm: NDArray[np.float64]
    problems: list[str]
    tilted: bool = False  # slice origins step along a line that is not the normal (gantry tilt)
    shifted: list[int] = field(default_factory=list)  # slices off that line (indices)
    shift_mm: NDArray[np.float64] | None = None  # (N,) in-plane distance of each from the line

    @property
    def regular(self) -> bool:
        return self.uniform and not self.sheared

    def output_grid(self) -> GridGeometry:
        """The regular grid the volume is stored on (exact stack, or the resampling target)."""
        ps_row, ps_col = self.pixel_spacing_mm
        rows, cols = self.slices[0].rows, self.slices[0].columns
        direction = np.column_stack([self.row_dir, self.col_dir, self.normal])
        p0 = np.asarray(self.slices[0].ipp_mm, dtype=float)
        n = len(self.slices)
        span = float(self.d_mm[-1] - self.d_mm[0])
        if self.regular:
            return GridGeometry((n, rows, cols), p0, (ps_col, ps_row, span / (n - 1)), direction)
        # Resampling target: k spacing = smallest gap (no acquired detail lost), adjusted so the
        # first and last slices lie exactly on grid planes; in-plane extent covers every slice.
        # (not below a quarter of the median gap: a stray near-duplicate slice must not blow
        # the grid up; slices closer than that are sampled, not averaged)
        dk = max(float(np.min(self.gaps_mm)), 0.25 * float(np.median(self.gaps_mm)))
        n_out = round(span / dk) + 1
        dk = span / (n_out - 1)
        lo = np.floor(self.offsets_px.min(axis=0) + 1e-6).astype(int)  # (row, col) ≤ 0
        hi = np.ceil(self.offsets_px.max(axis=0) - 1e-6).astype(int)  # ≥ 0
        origin = p0 + lo[1] * ps_col * self.row_dir + lo[0] * ps_row * self.col_dir
        shape = (n_out, rows + int(hi[0] - lo[0]), cols + int(hi[1] - lo[1]))
        return GridGeometry(shape, origin, (ps_col, ps_row, dk), direction)

    def describe_resampling(self, grid: GridGeometry) -> str:
        why = []
        if self.tilted:
            why.append(
                f"gantry tilt {self.tilt_deg:.1f}° (slice origins step along the table, not the "
                "slice normal)"
            )
        if self.shifted:
            why.append(self.describe_shifts())
        if self.sheared and not (self.tilted or self.shifted):
            why.append(self.describe_small_offsets())
        if not self.uniform:
            why.append(
                f"slice gaps {self.gaps_mm.min():.2f}–{self.gaps_mm.max():.2f} mm along the "
                "slice normal"
            )
        return (
            "resampled: "
            + "; ".join(why)
            + f" → regular {grid.spacing_mm[2]:.2f} mm grid along the slice normal "
            f"({len(self.slices)} slices → {grid.shape_zyx[0]}, "
            f"{grid.shape_zyx[2]}×{grid.shape_zyx[1]} pixels; linear interpolation; "
            f"areas outside the acquired slices set to {AIR_HU:.0f} HU)"
        )

    def describe_shifts(self, limit: int = 3) -> str:
        """ "2 slice(s) shifted in-plane off the line of the others: a/CT003.dcm by 5.00 mm…"."""
        assert self.shift_mm is not None
        worst = sorted(self.shifted, key=lambda i: -float(self.shift_mm[i]))  # type: ignore[index]
        named = ", ".join(
            f"{self.slices[i].name} by {float(self.shift_mm[i]):.2f} mm"  # type: ignore[index]
            for i in worst[:limit]
        )
        more = f" and {len(worst) - limit} more" if len(worst) > limit else ""
        return (
            f"{len(worst)} slice(s) shifted in-plane off the line through the other slices' "
            f"origins: {named}{more} (each placed where its ImagePositionPatient says)"
        )

    def describe_small_offsets(self) -> str:
        """In-plane offsets above tolerance that are neither a tilt nor single shifted slices."""
        ps_row, ps_col = self.pixel_spacing_mm
        mm = np.hypot(self.offsets_px[:, 0] * ps_row, self.offsets_px[:, 1] * ps_col)
        return (
            f"in-plane offsets between slice origins up to {float(mm.max()):.2f} mm (each slice "
            "placed where its ImagePositionPatient says)"
        )

    def describe_gaps(self, skipped: list[SkippedFile], limit: int = 8) -> list[str]:
        """One warning per irregular gap, naming its position, its neighbours and the skipped
        file that would have filled it (with that file's reason); and one per skipped file of
        this series that lay beyond either end of the stack."""
        n = len(self.slices)
        if n < 2:
            return []
        d, gaps = self.d_mm, self.gaps_mm
        median = float(np.median(gaps))
        tol = max(POS_TOL_MM, POS_TOL_FRACTION * median)
        uid = self.slices[0].series_instance_uid
        placed = [
            (float(np.asarray(k.ipp_mm) @ self.normal), k)
            for k in skipped
            if k.ipp_mm is not None and k.series_instance_uid == uid
        ]

        def who(lo_mm: float, hi_mm: float) -> list[SkippedFile]:
            return [k for dk, k in placed if lo_mm <= dk <= hi_mm]

        # Skipped before their place was known (unreadable header, truncated after the file
        # meta): they may be the missing slice, so a gap names them too.
        unknown = [
            k
            for k in skipped
            if k.ipp_mm is None
            and k.series_instance_uid in ("", uid)
            and not k.reason.startswith(_NOT_A_SLICE)
        ]
        unplaced = (
            "; files skipped before their position was known: "
            + "; ".join(f"{k.path.name} ({k.reason})" for k in unknown[:3])
            + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            if unknown
            else " (no file for it in the folder)"
        )
        out: list[str] = []
        pos = np.asarray([sl.ipp_mm for sl in self.slices], dtype=float)
        odd = [a for a in range(n - 1) if abs(float(gaps[a]) - median) > tol]
        run: list[int] = []  # consecutive irregular gaps of one size: one message

        def flush() -> None:
            if not run:
                return
            a, b = run[0], run[-1]
            sizes = gaps[run]
            lo_mm, hi_mm = float(sizes.min()), float(sizes.max())
            value = f"{lo_mm:.2f}" if hi_mm - lo_mm < 0.005 else f"{lo_mm:.2f}–{hi_mm:.2f}"
            size = (
                f"slice gap {value} mm" if len(run) == 1 else f"{len(run)} slice gaps of {value} mm"
            )
            files = who(float(d[a]) + tol, float(d[b + 1]) - tol)
            cause = "".join(f"; {k.path.name} was skipped ({k.reason})" for k in files)
            out.append(
                f"{size} (median {median:.2f} mm) from {self.slices[a].name} to "
                f"{self.slices[b + 1].name}, {float(d[a]):.2f} to {float(d[b + 1]):.2f} mm along "
                f"the slice normal{cause}"
            )
            run.clear()

        for a in odd:
            gap, lo, hi = float(gaps[a]), self.slices[a], self.slices[a + 1]
            m = round(gap / median)
            if m >= 2 and abs(gap - m * median) <= tol * m:
                flush()
                for j in range(1, m):
                    at = float(d[a]) + gap * j / m
                    ipp = pos[a] + (pos[a + 1] - pos[a]) * j / m
                    files = who(at - tol, at + tol)
                    cause = (
                        "; ".join(f"{k.path.name} was skipped ({k.reason})" for k in files)
                        if files
                        else "no image at that position in the series" + unplaced
                    )
                    out.append(
                        f"missing slice at {at:.2f} mm along the slice normal (IPP ≈ "
                        f"({ipp[0]:.2f}, {ipp[1]:.2f}, {ipp[2]:.2f}) mm LPS), between "
                        f"{lo.name} and {hi.name}: {cause}; interpolated from its neighbours"
                    )
            else:
                if run and (run[-1] != a - 1 or abs(float(gaps[run[0]]) - gap) > tol):
                    flush()
                run.append(a)
        flush()
        if len(out) > limit:
            out[limit:] = [f"… and {len(out) - limit} more irregular slice gap message(s)"]
        for end, beyond in (
            ("first", [(dk, k) for dk, k in placed if dk < d[0] - tol]),
            ("last", [(dk, k) for dk, k in placed if dk > d[-1] + tol]),
        ):
            # Other geometry parts of a split series are reported once, by the caller.
            beyond = [(dk, k) for dk, k in beyond if not k.reason.startswith(_OTHER_PART)]
            if beyond:
                edge = float(d[0] if end == "first" else d[-1])
                dk, k = beyond[0]
                more = f" (and {len(beyond) - 1} more file(s))" if len(beyond) > 1 else ""
                out.append(
                    f"{k.path.name}{more} beyond the {end} loaded slice (at {dk:.2f} mm along "
                    f"the slice normal) was skipped ({k.reason}): the volume ends at "
                    f"{edge:.2f} mm"
                )
        return out


def _inplane_fit(
    d: NDArray[np.float64], offsets_mm: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Robust line through the slices' in-plane offsets: (slope (2,) mm per mm along n,
    residual distance (N,) mm of each slice from the line).

    The slope is the Theil–Sen estimate (median of the slopes between all pairs of slices, per
    axis), so one shifted slice — or jitter — cannot pass for a small gantry tilt (a
    least-squares fit would). Pairs are subsampled above 400 slices (time).
    """
    x = d - d[0]
    n = len(d)
    stride = max(1, -(-n // 400))  # at most ~400 slices: ≤ 80 000 pairs
    idx = np.arange(0, n, stride)
    i, j = np.triu_indices(len(idx), k=1)
    i, j = idx[i], idx[j]
    dx = x[j] - x[i]
    keep = dx > POS_TOL_MM
    if np.any(keep):
        slope = np.median((offsets_mm[j] - offsets_mm[i])[keep] / dx[keep, None], axis=0)
    else:
        slope = np.zeros(2)
    intercept = np.median(offsets_mm - np.outer(x, slope), axis=0)
    residual = np.linalg.norm(offsets_mm - intercept - np.outer(x, slope), axis=1)
    return slope, residual


def analyse_stack(slices: list[SliceHeader]) -> StackGeometry:
    """Positions along n, in-plane offsets, uniformity and shear of parallel slices."""
    problems: list[str] = []
    first = slices[0]
    assert first.iop is not None and first.pixel_spacing_mm is not None
    row = np.asarray(first.iop[:3], dtype=float)
    col = np.asarray(first.iop[3:], dtype=float)
    if abs(float(row @ col)) > 1e-3 or not (
        abs(np.linalg.norm(row) - 1) < 1e-3 and abs(np.linalg.norm(col) - 1) < 1e-3
    ):
        problems.append(
            f"ImageOrientationPatient is not two orthogonal unit vectors: {list(first.iop)}"
        )
    # Orthonormalise the rounding noise of DS strings away (the header check refused
    # degenerate orientations; the guard keeps numpy quiet if one slips through).
    with np.errstate(invalid="ignore", divide="ignore"):
        row = row / np.linalg.norm(row)
        col = col - (col @ row) * row
        col = col / np.linalg.norm(col)
    if not (np.all(np.isfinite(row)) and np.all(np.isfinite(col))):
        raise ValueError(f"degenerate ImageOrientationPatient {list(first.iop)}")
    normal = np.cross(row, col)
    pos = np.asarray([s.ipp_mm for s in slices], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    slices = [slices[i] for i in order]
    pos, d = pos[order], d[order]
    ps_row, ps_col = first.pixel_spacing_mm
    rel = pos - pos[0]
    offsets_px = np.column_stack([(rel @ col) / ps_row, (rel @ row) / ps_col])
    offsets_mm = np.column_stack([rel @ col, rel @ row])
    gaps = np.diff(d) if len(d) > 1 else np.zeros(0)
    uniform, sheared, tilt, tilted = True, False, 0.0, False
    shifted: list[int] = []
    residual = np.zeros(len(d))
    if len(slices) >= 2:
        median_gap = float(np.median(gaps))
        tol = max(POS_TOL_MM, POS_TOL_FRACTION * median_gap)
        # Duplicate positions: two different images on one plane (§4 #6).
        dups = [a for a in range(len(slices) - 1) if gaps[a] <= POS_TOL_MM]
        if dups:
            a = dups[0]
            more = f" (and {len(dups) - 1} more position(s))" if len(dups) > 1 else ""
            problems.append(
                f"two different images at the same position ({d[a]:.2f} mm along the slice "
                f"normal): {slice_name(slices[a])} and {slice_name(slices[a + 1])}{more}"
            )
        # Uniform: every gap near the median AND every position near its place on the regular
        # grid from the first to the last slice (small gap errors must not add up).
        k = np.arange(len(d))
        regular_d = d[0] + k * (d[-1] - d[0]) / (len(d) - 1)
        uniform = bool(
            np.max(np.abs(gaps - median_gap)) <= tol and np.max(np.abs(d - regular_d)) <= tol
        )
        sheared = bool(np.max(np.abs(offsets_mm)) > INPLANE_TOL_MM)
        if sheared:
            # Tilt = a consistent shear (mm in-plane per mm along n); slices off that line are
            # shifted (a moved table, an edited header), reported as such.
            slope, residual = _inplane_fit(d, offsets_mm)
            span = float(d[-1] - d[0])
            tilted = bool(float(np.linalg.norm(slope)) * span > INPLANE_TOL_MM)
            if tilted:
                tilt = math.degrees(math.atan(float(np.linalg.norm(slope))))
            shifted = [int(i) for i in np.nonzero(residual > INPLANE_TOL_MM)[0]]
    return StackGeometry(
        slices=slices,
        d_mm=d,
        offsets_px=offsets_px,
        row_dir=row,
        col_dir=col,
        normal=normal,
        pixel_spacing_mm=(float(ps_row), float(ps_col)),
        uniform=uniform,
        sheared=sheared,
        tilt_deg=tilt,
        gaps_mm=gaps,
        problems=problems,
        tilted=tilted,
        shifted=shifted,
        shift_mm=residual,
    )


def slice_name(s: SliceHeader) -> str:
    """File name with its folder (series may span folders) and frame for multi-frame files."""
    return s.name


def resample(
    stack: StackGeometry,
    planes: list[NDArray[np.float32]],
    grid: GridGeometry,
    out: NDArray,
    progress: Callable[[float], None],
    cancel: CancelFn | None,
) -> None:
    """Resample the slices (sorted along n) onto ``grid``, into ``out`` (z, y, x)."""
    nz, ny, nx = grid.shape_zyx
    # Output (row, col) of slice 0's pixel (0, 0): whole numbers by construction of the grid.
    base = np.rint(grid.world_to_index(np.asarray(stack.slices[0].ipp_mm))[[1, 0]]).astype(int)
    cache: dict[int, tuple[NDArray[np.float32], NDArray[np.bool_]]] = {}

    def shifted(s: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Slice s on the output in-plane grid, and where it has data (bool (ny, nx))."""
        # Output pixel (j, i) sits at slice-s pixel (j, i) - off.
        if s not in cache:
            off = stack.offsets_px[s] + base
            src = planes[s]
            rows_in = np.arange(ny) - off[0]
            cols_in = np.arange(nx) - off[1]
            valid = ((rows_in > -1e-6) & (rows_in < src.shape[0] - 1 + 1e-6))[:, None] & (
                (cols_in > -1e-6) & (cols_in < src.shape[1] - 1 + 1e-6)
            )[None, :]
            # Bilinear shift as a weighted sum of whole-pixel placements (separable, exact for
            # whole-pixel offsets, and much faster than a general interpolator).
            whole = np.floor(off + 1e-6)
            frac = np.clip(off - whole, 0.0, 1.0)
            frac[frac < 1e-6] = 0.0
            plane = np.zeros((ny, nx), dtype=np.float32)
            for dr, wr in ((0, 1.0 - frac[0]), (1, frac[0])):
                for dc, wc in ((0, 1.0 - frac[1]), (1, frac[1])):
                    weight = wr * wc
                    if weight <= 0.0:
                        continue
                    r0, c0 = int(whole[0]) + dr, int(whole[1]) + dc
                    # Place src at (r0, c0), clipped to the output plane.
                    rs, cs = max(0, -r0), max(0, -c0)
                    re, ce = min(src.shape[0], ny - r0), min(src.shape[1], nx - c0)
                    if re > rs and ce > cs:
                        plane[r0 + rs : r0 + re, c0 + cs : c0 + ce] += (
                            np.float32(weight) * src[rs:re, cs:ce]
                        )
            plane[~valid] = AIR_HU
            cache[s] = (plane, valid)
        return cache[s]

    d0 = float(stack.d_mm[0])
    dk = float(grid.spacing_mm[2])
    n_in = len(stack.slices)
    s = 0
    for k in range(nz):
        if cancel is not None and cancel():
            raise Cancelled("load cancelled")
        d = d0 + k * dk
        while s < n_in - 2 and stack.d_mm[s + 1] <= d + 1e-9:
            s += 1
        for old in [key for key in cache if key < s]:
            del cache[old]
        gap = float(stack.d_mm[s + 1] - stack.d_mm[s])
        w = min(max((d - float(stack.d_mm[s])) / gap, 0.0), 1.0)
        if w < 1e-6:
            store_plane(out, k, shifted(s)[0])
        elif w > 1 - 1e-6:
            store_plane(out, k, shifted(s + 1)[0])
        else:
            (a, va), (b, vb) = shifted(s), shifted(s + 1)
            # Only where both neighbours have data: no mixing of tissue with the fill value.
            store_plane(out, k, np.where(va & vb, (1.0 - w) * a + w * b, AIR_HU))
        progress((k + 1) / nz)


def irregular_reasons(stack: StackGeometry) -> list[str]:
    out = []
    if stack.shifted:
        out.append(stack.describe_shifts() + " — resampling is switched off")
    if stack.sheared and not (stack.tilted or stack.shifted):
        out.append(stack.describe_small_offsets() + " — resampling is switched off")
    if stack.tilted:
        out.append(
            f"gantry tilt {stack.tilt_deg:.1f}°: slice origins step along the table, not the "
            "slice normal (a shear); loading it as a stack would misplace every slice — "
            "resampling is switched off"
        )
    if not stack.uniform:
        median = float(np.median(stack.gaps_mm))
        n_odd = int(np.sum(np.abs(stack.gaps_mm - median) > max(POS_TOL_MM, 0.01 * median)))
        d = stack.d_mm
        drift = float(np.max(np.abs(d - np.linspace(d[0], d[-1], len(d)))))
        detail = (
            f"{n_odd} gap(s) differ: missing slices?"
            if n_odd
            else f"positions drift up to {drift:.2f} mm from a regular grid"
        )
        out.append(
            f"non-uniform slice spacing: gaps {stack.gaps_mm.min():.2f}–"
            f"{stack.gaps_mm.max():.2f} mm along the slice normal (median {median:.2f} mm, "
            f"{detail}) — resampling is switched off"
        )
    return out


def storage_dtype(planes: list[NDArray[np.float32]], slices: list[SliceHeader]) -> type:
    """int16 when every rescale is integral and the values fit, else float32.

    Linear interpolation stays within the planes' range (and the −1024 HU fill), so the
    decision holds for resampled volumes too.
    """
    integral = all(
        float(s.rescale_slope).is_integer() and float(s.rescale_intercept).is_integer()
        for s in slices
    )
    if integral and planes:
        lo = min(float(p.min()) for p in planes)
        hi = max(float(p.max()) for p in planes)
        if lo >= -32768 and hi <= 32767:
            return np.int16
    return np.float32


def store_plane(hu: NDArray, k: int, plane: NDArray[np.float32]) -> None:
    """hu[k] = plane, rounded to the nearest integer for an integer array."""
    hu[k] = np.rint(plane) if hu.dtype.kind == "i" else plane
