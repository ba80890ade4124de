"""Implicit-shape toolkit of the demo phantom: grid blocks, painting context, shapes.

Shapes are approximate signed-distance fields (mm, < 0 inside) with a partial-volume ramp width
projected on the surface normal (``w = |n_x| dx + |n_y| dy + |n_z| dz``), evaluated on
broadcastable (z, y, x) anatomy-frame coordinates. Everything is float32 numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from planner.demo.anatomy import Anatomy, PhantomSpec, phantom_geometry

__all__ = [
    "F32",
    "Array",
    "Block",
    "Canvas",
    "PhantomContext",
    "Shape",
    "ellipsoid",
    "smooth_field",
    "superellipse",
    "tube_box",
    "tube_segment",
]

F32 = np.float32
Array = NDArray[np.float32]


@dataclass
class Block:
    """A sub-box of the grid: array slices and broadcastable anatomy-frame coordinates (mm)."""

    sl: tuple[slice, slice, slice]
    Z: Array  # (nz, 1, 1)
    Y: Array  # (1, ny, 1)
    X: Array  # (1, 1, nx)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.Z.shape[0], self.Y.shape[1], self.X.shape[2])


class PhantomContext:
    """The grid in anatomy-frame coordinates plus painting helpers (given to painters)."""

    def __init__(self, spec: PhantomSpec, anatomy: Anatomy) -> None:
        self.spec = spec
        self.anatomy = anatomy
        self.geometry = phantom_geometry(spec)
        off = np.asarray(spec.patient_offset_mm)
        x_mm, y_mm, z_mm = self.geometry.axis_coordinates_mm()
        self.x = (x_mm - off[0]).astype(F32)
        self.y = (y_mm - off[1]).astype(F32)
        self.z = (z_mm - off[2]).astype(F32)
        self.dx = F32(spec.pixel_mm)
        self.dy = F32(spec.pixel_mm)
        self.dz = F32(spec.slice_mm)
        self.shape = self.geometry.shape_zyx
        self.rng = np.random.default_rng(spec.seed)

    def block(
        self,
        lo: Sequence[float] = (-1e9, -1e9, -1e9),
        hi: Sequence[float] = (1e9, 1e9, 1e9),
        *,
        flat_z: bool = False,
    ) -> Block | None:
        """Voxels whose centres lie in the anatomy box [lo, hi] (x, y, z mm); None when empty.

        ``flat_z`` gives a block whose Z has length 1 (for z-independent shapes) covering all
        slices in ``sl``."""
        sls = []
        for axis, (a, b) in zip((self.x, self.y, self.z), zip(lo, hi, strict=True), strict=True):
            i0 = int(np.searchsorted(axis, a, side="left"))
            i1 = int(np.searchsorted(axis, b, side="right"))
            if i1 <= i0:
                return None
            sls.append(slice(i0, i1))
        sx, sy, sz = sls
        Z = self.z[sz][:, None, None]
        if flat_z:
            Z = Z[:1] * F32(0)
        return Block((sz, sy, sx), Z, self.y[sy][None, :, None], self.x[sx][None, None, :])

    def block_from_slices(self, sl: tuple[slice, ...]) -> Block:
        sz, sy, sx = sl
        return Block(
            (sz, sy, sx),
            self.z[sz][:, None, None],
            self.y[sy][None, :, None],
            self.x[sx][None, None, :],
        )

    def ramp(self, sd: Array, w: Array | float) -> Array:
        """Occupancy 0..1 of a voxel whose centre is ``sd`` mm from a surface (inside < 0)."""
        return np.clip(F32(0.5) - sd / w, F32(0.0), F32(1.0))

    @staticmethod
    def paint(hu: Array, blk: Block, occ: Array, value: Array | float) -> None:
        """Blend ``value`` into ``hu`` over ``blk`` with occupancy ``occ`` (painter's order)."""
        view = hu[blk.sl]
        view += occ * (value - view)


@dataclass
class Shape:
    """Approximate signed distance ``sd`` (mm, < 0 inside) and partial-volume ramp ``w`` (mm)."""

    sd: Array
    w: Array

    def union(self, other: Shape, k: float = 0.0) -> Shape:
        return _combine(self, other, k, union=True)

    def intersect(self, other: Shape, k: float = 0.0) -> Shape:
        return _combine(self, other, k, union=False)

    def subtract(self, other: Shape, k: float = 0.0) -> Shape:
        return _combine(self, Shape(-other.sd, other.w), k, union=False)

    def shell(self, offset_mm: float) -> Shape:
        """The same surface moved inwards by ``offset_mm`` (positive) or outwards (negative)."""
        return Shape(self.sd + F32(offset_mm), self.w)


def _combine(a: Shape, b: Shape, k: float, *, union: bool) -> Shape:
    """(Smooth) min/max of two shapes; ``k`` (mm) is the fillet size (polynomial smooth-min)."""
    sa, sb = np.broadcast_arrays(a.sd, b.sd)
    wa, wb = np.broadcast_arrays(a.w, b.w)
    if not union:
        sa, sb = -sa, -sb
    pick_a = sa < sb
    sd = np.where(pick_a, sa, sb)
    if k > 0:
        h = np.maximum(F32(k) - np.abs(sa - sb), F32(0)) / F32(k)
        sd = sd - h * h * F32(k / 4)
    w = np.where(pick_a, wa, wb)
    return Shape(sd if union else -sd, w)


def _from_gradient(f: Array, gx: Array, gy: Array, gz: Array | None, ctx: PhantomContext) -> Shape:
    """Shape from an implicit function ``f`` (0 on the surface) and its gradient: first-order
    signed distance ``f/|∇f|`` and ramp width projected on the normal."""
    g2 = gx * gx + gy * gy
    if gz is not None:
        g2 = g2 + gz * gz
    g = np.sqrt(g2) + F32(1e-12)
    w = (np.abs(gx) * ctx.dx + np.abs(gy) * ctx.dy) / g
    if gz is not None:
        w = w + np.abs(gz) * ctx.dz / g
    return Shape(f / g, np.maximum(w, F32(0.3) * ctx.dx))


def superellipse(
    ctx: PhantomContext,
    blk: Block,
    cx: float | Array,
    cy: float | Array,
    ax: float | Array,
    ay: float | Array,
    p: float = 2.0,
    angle_deg: float = 0.0,
) -> Shape:
    """Cylinder along z with a superellipse cross-section ``|u/ax|^p + |v/ay|^p = 1``.

    Parameters may be arrays broadcasting against ``blk.Z`` (slowly varying with z)."""
    u = blk.X - cx
    v = blk.Y - cy
    if angle_deg:
        c, s = F32(math.cos(math.radians(angle_deg))), F32(math.sin(math.radians(angle_deg)))
        u, v = c * u + s * v, -s * u + c * v
    qa = np.abs(u) / ax + F32(1e-6)
    qb = np.abs(v) / ay + F32(1e-6)
    if p == 2.0:
        rho = np.sqrt(qa * qa + qb * qb)
        gu = qa / (ax * rho) * np.sign(u)
        gv = qb / (ay * rho) * np.sign(v)
    else:
        pa = qa ** F32(p)
        pb = qb ** F32(p)
        rho = (pa + pb) ** F32(1.0 / p)
        k = rho ** F32(1.0 - p)
        gu = pa / qa / ax * k * np.sign(u)
        gv = pb / qb / ay * k * np.sign(v)
    if angle_deg:
        gu, gv = c * gu - s * gv, s * gu + c * gv
    return _from_gradient(rho - F32(1.0), gu, gv, None, ctx)


def ellipsoid(
    ctx: PhantomContext,
    blk: Block,
    centre: Sequence[float],
    radii: Sequence[float],
    angle_deg: float = 0.0,
) -> Shape:
    """Ellipsoid with half-axes ``radii`` (x, y, z), rotated by ``angle_deg`` about z."""
    cx, cy, cz = (F32(c) for c in centre)
    rx, ry, rz = (F32(r) for r in radii)
    u = blk.X - cx
    v = blk.Y - cy
    t = blk.Z - cz
    if angle_deg:
        c, s = F32(math.cos(math.radians(angle_deg))), F32(math.sin(math.radians(angle_deg)))
        u, v = c * u + s * v, -s * u + c * v
    qa, qb, qc = u / rx, v / ry, t / rz
    rho = np.sqrt(qa * qa + qb * qb + qc * qc) + F32(1e-6)
    gu, gv, gz = qa / (rx * rho), qb / (ry * rho), qc / (rz * rho)
    if angle_deg:
        gu, gv = c * gu - s * gv, s * gu + c * gv
    return _from_gradient(rho - F32(1.0), gu, gv, gz, ctx)


def tube_segment(
    ctx: PhantomContext,
    blk: Block,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    r_a: tuple[float, float],
    r_b: tuple[float, float],
) -> Shape:
    """Capsule from ``a`` to ``b`` (x, y, z mm) with an elliptical cross-section whose half-axes
    (radial, vertical) go linearly from ``r_a`` to ``r_b``; "vertical" is +z projected
    perpendicular to the axis."""
    d = b - a
    length = float(np.linalg.norm(d))
    t = d / length
    up = np.array([0.0, 0.0, 1.0]) - t[2] * t
    if np.linalg.norm(up) < 1e-6:
        up = np.array([0.0, 1.0, 0.0]) - t[1] * t
    e2 = up / np.linalg.norm(up)
    e1 = np.cross(t, e2)
    px = blk.X - F32(a[0])
    py = blk.Y - F32(a[1])
    pz = blk.Z - F32(a[2])
    s = np.clip(px * F32(t[0]) + py * F32(t[1]) + pz * F32(t[2]), F32(0), F32(length))
    qx = px - s * F32(t[0])
    qy = py - s * F32(t[1])
    qz = pz - s * F32(t[2])
    frac = s / F32(length)
    r1 = F32(r_a[0]) + (F32(r_b[0]) - F32(r_a[0])) * frac
    r2 = F32(r_a[1]) + (F32(r_b[1]) - F32(r_a[1])) * frac
    # components of the perpendicular offset in the (e1, e2) frame; the cap direction (along t,
    # only non-zero beyond the ends) is scaled by the mean radius.
    c1 = (qx * F32(e1[0]) + qy * F32(e1[1]) + qz * F32(e1[2])) / r1
    c2 = (qx * F32(e2[0]) + qy * F32(e2[1]) + qz * F32(e2[2])) / r2
    rm = F32(0.5) * (r1 + r2)
    c3 = (qx * F32(t[0]) + qy * F32(t[1]) + qz * F32(t[2])) / rm
    rho = np.sqrt(c1 * c1 + c2 * c2 + c3 * c3) + F32(1e-6)
    g1, g2, g3 = c1 / (r1 * rho), c2 / (r2 * rho), c3 / (rm * rho)
    gx = g1 * F32(e1[0]) + g2 * F32(e2[0]) + g3 * F32(t[0])
    gy = g1 * F32(e1[1]) + g2 * F32(e2[1]) + g3 * F32(t[1])
    gz = g1 * F32(e1[2]) + g2 * F32(e2[2]) + g3 * F32(t[2])
    return _from_gradient(rho - F32(1.0), gx, gy, gz, ctx)


def smooth_field(
    ctx: PhantomContext,
    blk: Block,
    node_mm: float,
    sigma_mm: float,
    *,
    rng: np.random.Generator | None = None,
) -> Array:
    """Zero-mean, unit-variance Gaussian random field on ``blk`` with correlation ``sigma_mm``.

    White noise on a coarse lattice (``node_mm``) is interpolated with Gaussian weights by three
    small matrix products (fast, smooth, deterministic). The noise is drawn from ``rng``
    (default ``ctx.rng``, whose draws are part of the demo's bytes)."""
    axes = (blk.Z[:, 0, 0], blk.Y[0, :, 0], blk.X[0, 0, :])
    weights = []
    for coord in axes:
        lo, hi = float(coord.min()) - 2 * sigma_mm, float(coord.max()) + 2 * sigma_mm
        nodes = np.arange(lo, hi + node_mm, node_mm)
        weights.append(
            np.exp(-0.5 * ((coord[:, None] - nodes[None, :]) / sigma_mm) ** 2).astype(F32)
        )
    wz, wy, wx = weights
    nzc, nyc, nxc = wz.shape[1], wy.shape[1], wx.shape[1]
    nz, ny, nx = len(axes[0]), len(axes[1]), len(axes[2])
    noise = (ctx.rng if rng is None else rng).standard_normal((nzc, nyc, nxc), dtype=F32)
    # Coarse axes first, the big expansion (x) last as one matrix product.
    a = (wz @ noise.reshape(nzc, -1)).reshape(nz, nyc, nxc)
    a = np.matmul(wy, a)  # (nz, ny, nxc)
    a = (a.reshape(-1, nxc) @ wx.T).reshape(nz, ny, nx)
    # Exact variance of the interpolated field: sum of squared weights per axis (separable).
    var = (
        (wz * wz).sum(axis=1)[:, None, None]
        * (wy * wy).sum(axis=1)[None, :, None]
        * (wx * wx).sum(axis=1)[None, None, :]
    )
    return a / np.sqrt(var)


class Canvas:
    """A signed-distance canvas on a region: shapes are (smoothly) united into it, each shape
    evaluated only inside its own bounding box."""

    def __init__(self, ctx: PhantomContext, region: Block) -> None:
        self.ctx = ctx
        self.region = region
        self.sd = np.full(region.shape, F32(50.0), dtype=F32)
        self.w = np.full(region.shape, ctx.dx, dtype=F32)

    def add(
        self,
        lo: Sequence[float],
        hi: Sequence[float],
        make: Callable[[Block], Shape],
        k: float = 0.0,
    ) -> tuple[Block, tuple[slice, ...], Shape] | None:
        """Unite ``make(block)`` over the box [lo, hi] (x, y, z mm, padded by ``k`` + 2 mm)."""
        pad = k + 2.0
        blk = self.ctx.block(np.asarray(lo) - pad, np.asarray(hi) + pad)
        if blk is None:
            return None
        sl = tuple(
            slice(max(a.start, r.start), min(a.stop, r.stop))
            for a, r in zip(blk.sl, self.region.sl, strict=True)
        )
        if any(s.stop <= s.start for s in sl):
            return None
        if sl != blk.sl:
            blk = self.ctx.block_from_slices(sl)
        shape = make(blk)
        loc = tuple(
            slice(s.start - r.start, s.stop - r.start)
            for s, r in zip(sl, self.region.sl, strict=True)
        )
        merged = Shape(self.sd[loc], self.w[loc]).union(shape, k)
        self.sd[loc] = merged.sd
        self.w[loc] = merged.w
        return blk, loc, shape

    def shape(self) -> Shape:
        return Shape(self.sd, self.w)


def tube_box(
    a: Sequence[float], b: Sequence[float], r: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.minimum(a_arr, b_arr) - r, np.maximum(a_arr, b_arr) + r
