"""Painters of the skeleton (anatomy-frame mm): ribs with costal cartilage, sternum, and the
spine (bodies, discs, posterior elements, canal and cord) with the epidural tumour at the
involved level; the spine painter also fills the ground-truth masks.

With lumbar levels (:func:`planner.demo.anatomy.spine_anatomy`): T11 and T12 carry short
floating ribs and the lumbar levels none; lumbar vertebrae have thick short pedicles, broad
laminae, long thin transverse processes, a horizontal hatchet-shaped spinous process and
sagittal facets; the canal widens; below T12 the thecal sac sits in epidural fat; the cord ends
in the conus at the L1–L2 disc and the sac below it (the cauda equina) is the ``CaudaEquina``
mask. The tumour follows ``Anatomy.tumour_side``, ``tumour_size`` and ``tumour_wrap``.
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

#: Floating ribs of an anatomy with lumbar levels: bone length along the rib (mm), no cartilage.
_FLOATING_RIB_MM = {"T11": 190.0, "T12": 120.0}


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
        if level.lumbar:
            continue
        for side in (-1.0, 1.0):
            path, cart_start = _rib_path(level, side)
            if an.has_lumbar and level.name in _FLOATING_RIB_MM:
                cart_start = min(cart_start, int(_FLOATING_RIB_MM[level.name] / 6.0))
                path = path[: cart_start + 1]
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


def _add_arch(
    ctx: PhantomContext,
    bone: Canvas,
    tubes: list[
        tuple[tuple[float, ...], tuple[float, ...], tuple[float, float], tuple[float, float]]
    ],
    articular: list[tuple[tuple[float, float, float], tuple[float, float, float]]],
) -> None:
    """Add the posterior elements of one vertebra to ``bone``, in order: tapered tubes
    (start, end, start radii, end radii; mm) then the articular processes (ellipsoid centre
    and semi-axes, mm)."""
    for a, b, ra, rb in tubes:
        lo_t, hi_t = tube_box(a, b, max(*ra, *rb))
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        bone.add(
            lo_t,
            hi_t,
            lambda blk, a=a_arr, b=b_arr, ra=ra, rb=rb: tube_segment(ctx, blk, a, b, ra, rb),
            k=2.5,
        )
    for centre, radii in articular:
        c_arr, r_max = np.asarray(centre), max(radii)
        bone.add(
            c_arr - r_max,
            c_arr + r_max,
            lambda blk, c=centre, r=radii: ellipsoid(ctx, blk, c, r),
            k=2.5,
        )


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
    if lev.lumbar:
        _stamp_lumbar_arch(ctx, bone, lev, post_y + lev.canal_half_depth_mm + 0.6, ped_z)
        if res is None:
            return None
        _, loc, shape = res
        return loc, np.broadcast_to(shape.sd < 0, tuple(s.stop - s.start for s in loc))
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
    articular = [
        (centre, radii)
        for side in (-1.0, 1.0)
        for centre, radii in (
            ((side * 12.5, cy + 6.0, zc + hh + 1.5), (4.5, 3.0, 6.0)),  # superior articular
            ((side * 11.5, cy + 10.0, zc - hh + 1.0), (4.5, 3.0, 7.0)),  # inferior articular
        )
    ]
    _add_arch(ctx, bone, tubes, articular)
    if res is None:
        return None
    _, loc, shape = res
    return loc, np.broadcast_to(shape.sd < 0, tuple(s.stop - s.start for s in loc))


def _stamp_lumbar_arch(
    ctx: PhantomContext, bone: Canvas, lev: Level, cy: float, ped_z: float
) -> None:
    """Posterior elements of a lumbar vertebra (canal centre ``cy``, pedicles at ``ped_z``)."""
    zc, hx, hh = lev.z_mm, lev.half_width_mm, lev.height_mm / 2
    post_y = lev.y_mm + lev.half_depth_mm
    chw, chd = lev.canal_half_width_mm, lev.canal_half_depth_mm
    # Transverse processes: longest at L3.
    tp_mm = {"L1": 9.0, "L2": 15.0, "L3": 21.0, "L4": 17.0, "L5": 15.0}.get(lev.name, 15.0)
    tubes: list[
        tuple[tuple[float, ...], tuple[float, ...], tuple[float, float], tuple[float, float]]
    ] = []
    for side in (-1.0, 1.0):
        tubes += [
            # pedicle: short and thick (≈ 9-10 mm wide, 15 mm tall)
            (
                (side * (chw + 1.5), post_y - 4.0, ped_z),
                (side * (chw + 3.0), cy + 3.0, ped_z),
                (4.6, 7.6),
                (4.9, 7.0),
            ),
            # lamina: broad, sloping down and back to the midline
            (
                (side * (chw + 2.5), cy + 5.0, ped_z - 1.0),
                (side * 3.0, cy + chd + 5.0, zc - 4.0),
                (3.6, 9.0),
                (3.6, 10.5),
            ),
            # transverse process: long, thin, lateral
            (
                (side * (chw + 3.0), cy + 1.0, ped_z),
                (side * (hx + tp_mm), cy + 4.0, ped_z + 1.0),
                (4.6, 5.6),
                (2.8, 4.4),
            ),
        ]
    # spinous process: horizontal, tall and flat (hatchet-shaped)
    tubes.append(
        ((0.0, cy + chd + 5.0, zc - 2.0), (0.0, cy + chd + 33.0, zc - 6.0), (3.2, 8.5), (3.8, 10.5))
    )
    articular = [
        (centre, radii)
        for side in (-1.0, 1.0)
        for centre, radii in (
            # superior articular process (with its facet facing medially), lateral ...
            ((side * (chw + 5.5), cy + chd, zc + hh + 2.0), (3.6, 7.0, 7.5)),
            # ... to the inferior articular process of the vertebra above (sagittal facets)
            ((side * (chw + 0.5), cy + chd + 3.0, zc - hh + 0.5), (3.4, 6.0, 7.5)),
        )
    ]
    _add_arch(ctx, bone, tubes, articular)


def _tumour_shape(ctx: PhantomContext, blk: Block, canal: Shape) -> Shape:
    """The tumour (before the cord / sac is cut out): replaces the posterior body and pedicle on
    the tumour's side, epidural and paravertebral extension; circumferential with ``wrap``."""
    an = ctx.anatomy
    lev = an.level(an.involved_level)
    zt, yt = lev.z_mm, lev.y_mm
    post_y = yt + lev.half_depth_mm
    cyt = float(an.canal_centre_y_mm(an.tumour_z_mm))
    side = an.tumour_side
    g = an.tumour_size
    # Lumbar levels: offsets and radii scaled with the (larger) body; 1 for thoracic levels.
    kx, ky, kz = (
        (lev.half_width_mm / 19.5, lev.half_depth_mm / 14.4, lev.height_mm / 21.5)
        if lev.lumbar
        else (1.0, 1.0, 1.0)
    )
    if side == 1.0 and g == 1.0 and not lev.lumbar:  # the demo's tumour, literally
        tum = ellipsoid(ctx, blk, (7.5, post_y - 7.0, zt - 1.0), (10.0, 7.5, 9.5), 15.0)
        parts = (
            ((12.0, post_y + 4.5, zt + 3.0), (5.5, 7.5, 8.5), 0.0),  # left pedicle
            ((4.5, cyt - 4.6, an.tumour_z_mm), (8.0, 4.2, 15.0), 12.0),  # epidural, anterior-left
            ((24.0, yt + 2.0, zt - 1.0), (8.0, 12.0, 13.0), -10.0),  # paravertebral, left
        )
    else:
        tum = ellipsoid(
            ctx,
            blk,
            (side * 7.5 * kx, post_y - 7.0 * ky, zt - 1.0 * kz),
            (10.0 * kx * min(g, 1.3), 7.5 * ky * min(g, 1.3), 9.5 * kz * min(g, 1.3)),
            side * 15.0,
        )
        grow = max(g - 1.0, 0.0)
        parts = (
            (
                (side * 12.0 * kx, post_y + 4.5, zt + 3.0 * kz),
                (5.5 * kx * min(g, 1.2), 7.5 * min(g, 1.2), 8.5 * kz * min(g, 1.2)),
                0.0,
            ),
            (
                (side * 4.5 * kx, cyt - 4.6, an.tumour_z_mm),
                (8.0 * kx * min(g, 1.15), 4.2, 15.0 * kz * min(g, 1.3)),
                side * 12.0,
            ),
            (
                (side * (24.0 * kx + 14.0 * grow), yt + 2.0 + 8.0 * grow, zt - 1.0),
                (8.0 * kx * g, 12.0 * ky * g, 13.0 * kz * g),
                side * -10.0,
            ),
        )
    for centre, radii, ang in parts:
        tum = tum.union(ellipsoid(ctx, blk, centre, radii, ang), k=4.0)
    if an.tumour_wrap:
        # Epidural all around the dura over 30 mm, into the pedicles, laminae and body wall.
        ring = canal.shell(-4.5).intersect(
            Shape(np.abs(blk.Z - F32(an.tumour_z_mm)) - F32(15.0), ctx.dz + 0 * blk.Z), k=3.0
        )
        tum = tum.union(ring, k=3.0)
    return tum


def paint_spine(ctx: PhantomContext, hu: Array, masks: dict[str, NDArray[np.bool_]]) -> None:
    H = ctx.anatomy.hu
    an = ctx.anatomy
    lumbar = an.has_lumbar
    blk = ctx.block((-48, -10, -1e9), (48, 100, 1e9))
    if lumbar:  # the lumbar bodies lie further forwards, their transverse processes reach ±50 mm
        blk = ctx.block((-60, -45, -1e9), (60, 100, 1e9))
    assert blk is not None
    shape = blk.shape

    # --- discs: between consecutive bodies, slightly bulging.
    for upper, lower in zip(an.levels[:-1], an.levels[1:], strict=True):
        top = upper.z_mm - upper.height_mm / 2 + 1.5
        bot = lower.z_mm + lower.height_mm / 2 - 1.5
        zm = 0.5 * (top + bot)
        if lumbar:
            sub = ctx.block((-32, -45, bot - 3), (32, 50, top + 3))
        else:
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
    if lumbar:
        chw, chd = (np.asarray(v, dtype=F32) for v in an.canal_half_axes_mm(blk.Z))
    else:
        chw, chd = an.canal_half_width_mm, an.canal_half_depth_mm  # type: ignore[assignment]
    canal = superellipse(ctx, blk, 0.0, canal_y, chw, chd, 2.2)

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
    epi = superellipse(ctx, blk, 0.0, canal_y + F32(chd - 1.6), 3.2, 1.8, 2.0)
    # The posterior epidural fat is segmental: thickest between the laminae (disc levels).
    segmental = np.zeros_like(blk.Z)
    for upper in an.levels[:-1]:
        z_disc = F32(upper.z_mm - upper.height_mm / 2 - 2.5)
        segmental = np.maximum(segmental, np.exp(-(((blk.Z - z_disc) / F32(7.0)) ** 2)))
    ctx.paint(hu, blk, ctx.ramp(epi.sd, epi.w) * segmental, H["epidural_fat"])
    sac: Shape | None = None
    sac_w: Array | None = None
    if lumbar:
        # Lumbar canal: the thecal sac in abundant epidural fat (from T12 down), and the nerve
        # roots of the cauda equina lying dorsally in the sac below the conus.
        sx, sy, sax, say = (np.asarray(v, dtype=F32) for v in an.sac_ellipse(blk.Z))
        sac = superellipse(ctx, blk, sx, sy, sax, say, 2.2)
        t12 = an.level("T12")
        sac_w = np.clip((F32(t12.z_mm) - blk.Z) / F32(15.0), F32(0.0), F32(1.0))
        fat = ctx.ramp(canal.sd, canal.w) * (F32(1.0) - ctx.ramp(sac.sd, sac.w)) * sac_w
        ctx.paint(hu, blk, fat, H["epidural_fat"])
        below_conus = ctx.ramp(blk.Z - F32(an.conus_z_mm), ctx.dz)
        roots = superellipse(ctx, blk, sx, sy + F32(0.35) * say, F32(0.6) * sax, F32(0.45) * say)
        ctx.paint(hu, blk, ctx.ramp(roots.sd, roots.w) * below_conus * F32(0.5), H["nerve_root"])
    # Neural foramina (fat) between pedicles, at disc level.
    for upper in an.levels[:-1]:
        zf = upper.z_mm - upper.height_mm / 2 - 1.0
        sub = ctx.block((-24, 20, zf - 10), (24, 60, zf + 10))
        fx, fr = 12.5, (3.5, 4.0, 5.5)
        if lumbar and upper.lumbar:
            sub = ctx.block((-30, -20, zf - 12), (30, 60, zf + 12))
            fx, fr = upper.canal_half_width_mm + 4.0, (4.5, 5.0, 7.5)
        if sub is None:
            continue
        cy = float(an.canal_centre_y_mm(zf))
        for side in (-1.0, 1.0):
            fo = ellipsoid(ctx, sub, (side * fx, cy - 1.0, zf), fr)
            ctx.paint(hu, sub, ctx.ramp(fo.sd, fo.w) * F32(0.8), H["epidural_fat"])

    # --- tumour: replaces the posterior body and pedicle on its side, epidural and
    # paravertebral extension; painted over bone (lytic), under the cord.
    tum = _tumour_shape(ctx, blk, canal)
    cx, cyc, cax, cay = (np.asarray(v, dtype=F32) for v in an.cord_ellipse(blk.Z))
    cord = superellipse(ctx, blk, cx, cyc, cax, cay, 2.0)
    conus = an.conus_z_mm
    if math.isfinite(conus):  # the cord ends in the conus medullaris
        cord = cord.intersect(Shape(F32(conus) - blk.Z, ctx.dz + 0 * blk.Z), k=1.0)
    # The tumour pushes the cord; it never overlaps it (1 mm CSF/dura kept where possible).
    tum = tum.subtract(cord.shell(-0.6), k=1.0)
    if sac is not None and sac_w is not None:  # ... nor the lumbar thecal sac (epidural tumour)
        tum = tum.subtract(Shape(sac.sd - F32(0.4) + F32(50.0) * (sac_w < 0.5), sac.w), k=1.0)
    ctx.paint(hu, blk, ctx.ramp(tum.sd, tum.w), H["tumour"])
    ctx.paint(hu, blk, ctx.ramp(cord.sd, cord.w), H["cord"])

    # --- masks (voxel centres inside) on the full grid.
    def full(mask_block: NDArray[np.bool_]) -> NDArray[np.bool_]:
        out = np.zeros(ctx.shape, dtype=bool)
        out[blk.sl] = np.broadcast_to(mask_block, shape)
        return out

    gtv = tum.sd < 0
    cord_m = cord.sd < 0
    neural = cord_m
    if sac is not None:
        cauda = (sac.sd < 0) & (F32(conus) > blk.Z) & ~gtv
        neural = cord_m | cauda
        if cauda.any():
            masks["CaudaEquina"] = full(cauda)
    masks["GTV"] = full(gtv & ~neural)
    masks["SpinalCord"] = full(cord_m)
    masks["SpinalCanal"] = full(canal.sd < 0)
    masks["VertebralBody"] = full(involved_body)
