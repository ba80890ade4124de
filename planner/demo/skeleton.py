"""Painters of the skeleton (anatomy-frame mm): ribs with costal cartilage, sternum, and the
thoracic spine (bodies, discs, posterior elements, canal and cord) with the epidural tumour at
the involved level; the spine painter also fills the ground-truth masks.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from planner.demo.anatomy import Level
from planner.demo.shapes import (
    F32,
    Array,
    Block,
    Canvas,
    PhantomContext,
    Shape,
    ellipsoid,
    smooth_field,
    superellipse,
    tube_box,
    tube_segment,
)
from planner.demo.torso import cavity_point

__all__ = ["paint_ribs_and_sternum", "paint_spine"]


def _rib_path(level: Level, side: float) -> tuple[NDArray[np.float64], int]:
    """Dense centreline (n, 3) of one rib (bone then costal cartilage) and the index where the
    cartilage starts."""
    zc, yc = level.z_mm, level.y_mm
    head_z = zc + level.height_mm / 2 - 1.0
    post_y = yc + level.half_depth_mm
    pts = [
        (side * 23.5, yc + 3.0, head_z),
        (side * 30.0, post_y + 6.0, head_z - 1.5),
        (side * 40.0, post_y + 14.0, head_z - 3.5),
    ]
    # Angle of the rib, then the shaft along the chest wall, 5.5 mm outside the cavity outline,
    # descending steeply (a mid-thoracic rib ends 3-4 levels below its head).
    phis = np.radians([45.0, 28.0, 12.0, -4.0, -20.0, -36.0, -52.0, -64.0])
    shaft = [cavity_point(float(phi), 5.5) for phi in phis]
    z = head_z - 7.0
    prev = np.array([side * shaft[0][0], shaft[0][1]])
    for xy in shaft:
        xy_arr = np.array([side * xy[0], xy[1]])
        z -= 0.36 * float(np.linalg.norm(xy_arr - prev))
        prev = xy_arr
        pts.append((xy_arr[0], xy_arr[1], z))
    n_bone = len(pts)
    # Costal cartilage: continues antero-medially and turns upwards towards the sternum.
    for phi, dz in ((-74.0, 4.0), (-84.0, 9.0)):
        x, y = cavity_point(math.radians(phi), 5.0)
        z += dz
        pts.append((side * x, y, z))
    ctrl = np.asarray(pts)
    seg = np.linalg.norm(np.diff(ctrl, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    # Imported here: scipy.interpolate costs ~1 s to import, and the GUI imports this module
    # at start-up only to find the demo case.
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(s, ctrl, bc_type="natural")
    step = 6.0
    dense_s = np.arange(0.0, s[-1] + 1e-9, step)
    cart_start = int(np.searchsorted(dense_s, s[n_bone - 1]))
    return spline(dense_s), cart_start


def _paint_bone(
    ctx: PhantomContext,
    hu: Array,
    blk: Block,
    shape: Shape,
    cortex_mm: float,
    marrow: Array | float,
) -> None:
    H = ctx.anatomy.hu
    ctx.paint(hu, blk, ctx.ramp(shape.sd, shape.w), H["cortical_bone"])
    inner = shape.shell(cortex_mm)
    ctx.paint(hu, blk, ctx.ramp(inner.sd, inner.w), marrow)


def paint_ribs_and_sternum(ctx: PhantomContext, hu: Array) -> None:
    H = ctx.anatomy.hu
    an = ctx.anatomy
    zlo, zhi = float(ctx.z[0]) - 8.0, float(ctx.z[-1]) + 8.0
    # Collect every rib-segment stamp into one min-combined canvas per tissue so that
    # overlapping segments do not double-paint.
    region = ctx.block((-185.0, -130.0, -1e9), (185.0, 118.0, 1e9))
    assert region is not None
    r0 = [s.start for s in region.sl]
    sd_bone = np.full(region.shape, F32(50.0), dtype=F32)
    w_bone = np.full(region.shape, ctx.dx, dtype=F32)
    sd_cart = np.full(region.shape, F32(50.0), dtype=F32)
    w_cart = np.full(region.shape, ctx.dx, dtype=F32)
    for level in an.levels:
        for side in (-1.0, 1.0):
            path, cart_start = _rib_path(level, side)
            n = len(path)
            for i in range(n - 1):
                a, b = path[i], path[i + 1]
                if max(a[2], b[2]) < zlo or min(a[2], b[2]) > zhi:
                    continue
                frac = i / max(cart_start, 1)
                if i < cart_start:
                    # Round neck (≈ 9 mm) flattening into a tall, thin shaft (6 × 13 mm).
                    grow = min(frac * 3.0, 1.0)
                    ra = (4.3 - 1.3 * grow, 4.3 + 2.2 * grow)
                    rb = ra
                    sd_c, w_c = sd_bone, w_bone
                else:
                    ra = rb = (3.2, 5.5)
                    sd_c, w_c = sd_cart, w_cart
                r = max(max(ra), max(rb)) + 2.5
                blk = ctx.block(np.minimum(a, b) - r, np.maximum(a, b) + r)
                if blk is None:
                    continue
                sh = tube_segment(ctx, blk, a, b, ra, rb)
                loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(blk.sl, r0, strict=True))
                view_sd = sd_c[loc]
                closer = sh.sd < view_sd
                view_sd[closer] = sh.sd[closer]
                w_c[loc][closer] = sh.w[closer]
    marrow = F32(H["rib_marrow"])
    _paint_bone(ctx, hu, region, Shape(sd_bone, w_bone), 1.1, marrow)
    ctx.paint(hu, region, ctx.ramp(sd_cart, w_cart), H["cartilage"])

    # Sternum (body, then the thinner xiphoid below z ≈ −30 mm).
    blk = ctx.block((-30, -125, -1e9), (30, -80, 1e9))
    if blk is not None:
        z = blk.Z
        t = np.clip((z + F32(30.0)) / F32(-20.0), F32(0.0), F32(1.0))  # 0 above, 1 at xiphoid
        half_w = F32(15.0) - F32(8.0) * t
        half_d = F32(6.0) - F32(2.0) * t
        st = superellipse(ctx, blk, 0.0, -101.0, half_w, half_d, 2.2)
        end = Shape(-(z + F32(55.0)), ctx.dz + 0 * z)  # ends at z = −55
        st = st.intersect(end, k=2.0)
        _paint_bone(ctx, hu, blk, st, 1.2, H["cancellous_bone"])


def _stamp_vertebra(
    ctx: PhantomContext, bone: Canvas, bodies: Canvas, lev: Level
) -> tuple[tuple[slice, ...], NDArray[np.bool_]] | None:
    """Add one vertebra to the ``bone`` canvas and its body to ``bodies``; returns where the
    body is (canvas-relative slices and a boolean inside mask) or None when off the grid."""
    zc, yc = lev.z_mm, lev.y_mm
    hx, hy, hh = lev.half_width_mm, lev.half_depth_mm, lev.height_mm / 2

    def body_shape(blk: Block) -> Shape:
        dz = (blk.Z - F32(zc)) / F32(hh)
        waist = F32(1.0) - F32(0.06) * np.clip(F32(1.0) - dz * dz, F32(0.0), F32(1.0))
        xy = superellipse(ctx, blk, 0.0, yc, hx * waist, hy * waist, 2.3)
        # Posterior border is concave (the canal presses into it).
        notch = superellipse(ctx, blk, 0.0, yc + hy + 15.0, 17.0, 17.0)
        xy = xy.subtract(notch, k=3.0)
        # End plates: slightly concave (centre 0.8 mm lower than the rim).
        rr = (blk.X / F32(hx)) ** 2 + ((blk.Y - F32(yc)) / F32(hy)) ** 2
        cup = F32(0.8) * np.clip(F32(1.0) - rr, F32(0.0), F32(1.0))
        zsd = np.abs(blk.Z - F32(zc)) - (F32(hh) - cup)
        return xy.intersect(Shape(zsd, ctx.dz + F32(0.0) * zsd), k=2.5)

    lo, hi = (-hx, yc - hy, zc - hh), (hx, yc + hy, zc + hh)
    res = bodies.add(lo, hi, body_shape)
    bone.add(lo, hi, body_shape)

    post_y = yc + hy  # posterior wall of the body
    cy = post_y + 8.6  # canal centre
    ped_z = zc + 0.25 * hh
    tubes: list[
        tuple[tuple[float, ...], tuple[float, ...], tuple[float, float], tuple[float, float]]
    ] = []
    for side in (-1.0, 1.0):
        tubes += [
            # pedicle
            (
                (side * 11.5, post_y - 4.0, ped_z),
                (side * 13.0, cy + 3.0, ped_z),
                (3.6, 6.8),
                (3.8, 6.5),
            ),
            # lamina (slopes down and back to the midline)
            (
                (side * 13.0, cy + 4.0, ped_z - 1.0),
                (side * 3.0, cy + 13.0, zc - 4.0),
                (3.0, 8.0),
                (3.0, 9.0),
            ),
            # transverse process (postero-lateral)
            (
                (side * 13.5, cy + 2.0, ped_z),
                (side * 28.0, cy + 14.0, ped_z + 1.0),
                (4.0, 5.0),
                (5.0, 5.5),
            ),
        ]
    # spinous process: long, steeply down-sloping (thoracic)
    tubes.append(((0.0, cy + 12.0, zc - 3.0), (0.0, cy + 38.0, zc - 27.0), (3.0, 4.2), (3.5, 3.4)))
    for a, b, ra, rb in tubes:
        r = max(*ra, *rb)
        lo_t, hi_t = tube_box(a, b, r)
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        bone.add(
            lo_t,
            hi_t,
            lambda blk, a=a_arr, b=b_arr, ra=ra, rb=rb: tube_segment(ctx, blk, a, b, ra, rb),
            k=2.5,
        )
    for side in (-1.0, 1.0):
        for centre, radii in (
            ((side * 12.5, cy + 6.0, zc + hh + 1.5), (4.5, 3.0, 6.0)),  # superior articular
            ((side * 11.5, cy + 10.0, zc - hh + 1.0), (4.5, 3.0, 7.0)),  # inferior articular
        ):
            c_arr, r_max = np.asarray(centre), max(radii)
            bone.add(
                c_arr - r_max,
                c_arr + r_max,
                lambda blk, c=centre, r=radii: ellipsoid(ctx, blk, c, r),
                k=2.5,
            )
    if res is None:
        return None
    _, loc, shape = res
    return loc, np.broadcast_to(shape.sd < 0, tuple(s.stop - s.start for s in loc))


def paint_spine(ctx: PhantomContext, hu: Array, masks: dict[str, NDArray[np.bool_]]) -> None:
    H = ctx.anatomy.hu
    an = ctx.anatomy
    blk = ctx.block((-48, -10, -1e9), (48, 100, 1e9))
    assert blk is not None
    shape = blk.shape

    # --- discs: between consecutive bodies, slightly bulging.
    for upper, lower in zip(an.levels[:-1], an.levels[1:], strict=True):
        top = upper.z_mm - upper.height_mm / 2 + 1.5
        bot = lower.z_mm + lower.height_mm / 2 - 1.5
        zm = 0.5 * (top + bot)
        sub = ctx.block((-30, -10, bot - 3), (30, 50, top + 3))
        if sub is None:
            continue
        ym = 0.5 * (upper.y_mm + lower.y_mm)
        hx = 0.5 * (upper.half_width_mm + lower.half_width_mm) + 0.8
        hy = 0.5 * (upper.half_depth_mm + lower.half_depth_mm) + 0.8
        bulge = F32(1.0) - F32(0.05) * ((sub.Z - F32(zm)) / F32(0.5 * (top - bot))) ** 2
        xy = superellipse(ctx, sub, 0.0, ym, hx * bulge, hy * bulge, 2.3)
        notch = superellipse(ctx, sub, 0.0, ym + hy + 15.0, 17.0, 17.0)
        xy = xy.subtract(notch, k=3.0)
        zs = Shape(np.abs(sub.Z - F32(zm)) - F32(0.5 * (top - bot)), ctx.dz + 0 * sub.Z)
        disc = xy.intersect(zs, k=1.0)
        ctx.paint(hu, sub, ctx.ramp(disc.sd, disc.w), H["disc"])

    # --- canal (bony), continuous along z, following the kyphosis.
    canal_y = an.canal_centre_y_mm(blk.Z).astype(F32)
    canal = superellipse(
        ctx, blk, 0.0, canal_y, an.canal_half_width_mm, an.canal_half_depth_mm, 2.2
    )

    # --- vertebrae: bone (cortex + textured cancellous), minus the canal.
    texture = smooth_field(ctx, blk, 1.2, 1.2) * F32(35.0)
    bone = Canvas(ctx, blk)
    bodies = Canvas(ctx, blk)
    involved_body = np.zeros(shape, dtype=bool)
    for lev in an.levels:
        where = _stamp_vertebra(ctx, bone, bodies, lev)
        if where is not None and lev.name == an.involved_level:
            involved_body[where[0]] |= where[1]
    vert = bone.shape().subtract(canal, k=1.5)
    body_sd, body_w = bodies.sd, bodies.w
    # Cancellous bone: denser near the end plates, with trabecular texture.
    marrow = F32(H["cancellous_bone"]) + texture
    # Basivertebral vein: a small low-density channel in the posterior centre of each body.
    _paint_bone(ctx, hu, blk, vert, 1.3, marrow)
    bvv_y = np.asarray(an.spine_y_mm(blk.Z), dtype=F32) + F32(8.0)
    bvv = superellipse(ctx, blk, 0.0, bvv_y, 2.0, 3.5)
    inside_body = ctx.ramp(Shape(body_sd, body_w).sd + F32(3.0), body_w)
    ctx.paint(hu, blk, ctx.ramp(bvv.sd, bvv.w) * inside_body, F32(90.0))

    # --- canal contents: CSF, posterior epidural fat.
    ctx.paint(hu, blk, ctx.ramp(canal.sd, canal.w), H["csf"])
    epi = superellipse(ctx, blk, 0.0, canal_y + F32(an.canal_half_depth_mm - 1.6), 3.2, 1.8, 2.0)
    # The posterior epidural fat is segmental: thickest between the laminae (disc levels).
    segmental = np.zeros_like(blk.Z)
    for upper in an.levels[:-1]:
        z_disc = F32(upper.z_mm - upper.height_mm / 2 - 2.5)
        segmental = np.maximum(segmental, np.exp(-(((blk.Z - z_disc) / F32(7.0)) ** 2)))
    ctx.paint(hu, blk, ctx.ramp(epi.sd, epi.w) * segmental, H["epidural_fat"])
    # Neural foramina (fat) between pedicles, at disc level.
    for upper in an.levels[:-1]:
        zf = upper.z_mm - upper.height_mm / 2 - 1.0
        sub = ctx.block((-24, 20, zf - 10), (24, 60, zf + 10))
        if sub is None:
            continue
        cy = float(an.canal_centre_y_mm(zf))
        for side in (-1.0, 1.0):
            fo = ellipsoid(ctx, sub, (side * 12.5, cy - 1.0, zf), (3.5, 4.0, 5.5))
            ctx.paint(hu, sub, ctx.ramp(fo.sd, fo.w) * F32(0.8), H["epidural_fat"])

    # --- tumour: replaces the left posterior T9 body and left pedicle, epidural and
    # paravertebral extension; painted over bone (lytic), under the cord.
    t9 = an.level(an.involved_level)
    zt, yt = t9.z_mm, t9.y_mm
    post_y = yt + t9.half_depth_mm
    cyt = float(an.canal_centre_y_mm(an.tumour_z_mm))
    tum = ellipsoid(ctx, blk, (7.5, post_y - 7.0, zt - 1.0), (10.0, 7.5, 9.5), 15.0)
    for centre, radii, ang in (
        ((12.0, post_y + 4.5, zt + 3.0), (5.5, 7.5, 8.5), 0.0),  # left pedicle
        ((4.5, cyt - 4.6, an.tumour_z_mm), (8.0, 4.2, 15.0), 12.0),  # epidural, anterior-left
        ((24.0, yt + 2.0, zt - 1.0), (8.0, 12.0, 13.0), -10.0),  # paravertebral, left
    ):
        tum = tum.union(ellipsoid(ctx, blk, centre, radii, ang), k=4.0)
    cx, cyc, cax, cay = (np.asarray(v, dtype=F32) for v in an.cord_ellipse(blk.Z))
    cord = superellipse(ctx, blk, cx, cyc, cax, cay, 2.0)
    # The tumour pushes the cord; it never overlaps it (1 mm CSF/dura kept where possible).
    tum = tum.subtract(cord.shell(-0.6), k=1.0)
    ctx.paint(hu, blk, ctx.ramp(tum.sd, tum.w), H["tumour"])
    ctx.paint(hu, blk, ctx.ramp(cord.sd, cord.w), H["cord"])

    # --- masks (voxel centres inside) on the full grid.
    def full(mask_block: NDArray[np.bool_]) -> NDArray[np.bool_]:
        out = np.zeros(ctx.shape, dtype=bool)
        out[blk.sl] = np.broadcast_to(mask_block, shape)
        return out

    gtv = tum.sd < 0
    cord_m = cord.sd < 0
    masks["GTV"] = full(gtv & ~cord_m)
    masks["SpinalCord"] = full(cord_m)
    masks["SpinalCanal"] = full(canal.sd < 0)
    masks["VertebralBody"] = full(involved_body)
