"""Painters of the torso outside the spine (anatomy-frame mm): couch, body wall, lungs,
mediastinum (heart, aorta, oesophagus, azygos) and the upper abdomen.

The body and thoracic-cavity outlines are z-independent; the generator paints them once on a
single (1, y, x) slice and broadcasts.

With lumbar levels (``Anatomy.has_lumbar``) the abdomen of T12–L5 is added
(:func:`paint_lumbar_abdomen`): the liver ends (lower on the right), bowel loops in mesenteric
fat, ascending and descending colon, kidneys in perirenal fat, psoas and quadratus lumborum
beside the spine; the oesophagus and azygos end at T11–T12 and the aorta and IVC run down in
front of the lumbar bodies. The demo's thoracic anatomy paints none of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

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

__all__ = [
    "body_shape",
    "cavity_point",
    "cavity_shape",
    "mediastinum_envelope",
    "paint_body_wall",
    "paint_lumbar_abdomen",
    "paint_lungs",
    "paint_mediastinum",
    "paint_table",
]

# Body and thoracic-cavity outlines (z-independent), anatomy mm.
_BODY = {"cy": -4.0, "ax": 170.0, "ay_ant": 114.0, "ay_post": 112.0, "p": 2.3}
_CAVITY = {"cy": -6.0, "ax": 132.0, "ay_ant": 86.0, "ay_post": 66.0, "p": 2.4}
#: Couch top surface: y = _TABLE_Y - x² / _TABLE_R2 (the tray is deepest on the midline).
_TABLE_Y, _TABLE_R2 = 106.5, 3000.0


def body_shape(ctx: PhantomContext, blk: Block) -> Shape:
    b = _BODY
    ay = np.where(b["cy"] < blk.Y, F32(b["ay_post"]), F32(b["ay_ant"]))
    body = superellipse(ctx, blk, 0.0, b["cy"], b["ax"], ay, b["p"])
    # Midline furrow of the back between the erector spinae bulges.
    furrow = superellipse(ctx, blk, 0.0, _TABLE_Y + 6.0, 9.0, 7.0)
    body = body.subtract(furrow, k=8.0)
    # The back is flattened where it lies on the couch.
    top = F32(_TABLE_Y - 0.8) - blk.X * blk.X / F32(_TABLE_R2)
    couch = Shape(blk.Y - top, ctx.dy + F32(0.0) * blk.X)
    return body.intersect(couch, k=12.0)


def cavity_shape(ctx: PhantomContext, blk: Block) -> Shape:
    c = _CAVITY
    ay = np.where(c["cy"] < blk.Y, F32(c["ay_post"]), F32(c["ay_ant"]))
    cav = superellipse(ctx, blk, 0.0, c["cy"], c["ax"], ay, c["p"])
    # Keep the spine, the paraspinal muscles and the rib necks out of the thoracic cavity.
    vb_zone = superellipse(ctx, blk, 0.0, 14.0, 22.5, 17.5, 2.2)
    post_zone = superellipse(ctx, blk, 0.0, 62.0, 40.0, 24.0, 3.0)
    block = vb_zone.union(post_zone, k=14.0)
    return cav.subtract(block, k=6.0)


def cavity_point(phi: float, offset_mm: float) -> tuple[float, float]:
    """Point on the cavity outline at polar angle ``phi`` (rad, from +x towards +y) pushed
    ``offset_mm`` outwards along the ray."""
    c = _CAVITY
    p = c["p"]
    ay = c["ay_post"] if math.sin(phi) > 0 else c["ay_ant"]
    cs, sn = math.cos(phi), math.sin(phi)
    r = ((abs(cs) / c["ax"]) ** p + (abs(sn) / ay) ** p) ** (-1.0 / p)
    r += offset_mm
    return r * cs, c["cy"] + r * sn


def paint_table(ctx: PhantomContext, hu2: Array) -> None:
    """Curved carbon-fibre couch below the patient: two thin shells around foam."""
    blk = ctx.block((-260, _TABLE_Y - 20, -1e9), (260, 250, 1e9), flat_z=True)
    if blk is None:
        return
    H = ctx.anatomy.hu
    top = F32(_TABLE_Y) - blk.X * blk.X / F32(_TABLE_R2)
    depth = blk.Y - top
    edge = np.abs(blk.X) - F32(225.0)
    outer = np.maximum(np.maximum(-depth, depth - F32(45.0)), edge)
    inner = np.maximum(np.maximum(-(depth - F32(1.6)), depth - F32(43.4)), edge + F32(1.6))
    ctx.paint(hu2, blk, ctx.ramp(outer, ctx.dy), H["table_shell"])
    ctx.paint(hu2, blk, ctx.ramp(inner, ctx.dy), H["table_foam"])


def paint_body_wall(
    ctx: PhantomContext, hu2: Array, blk: Block, body: Shape, cavity: Shape
) -> None:
    """Skin, subcutaneous fat, chest-wall muscle with fat planes, paraspinal muscles."""
    H = ctx.anatomy.hu
    ctx.paint(hu2, blk, ctx.ramp(body.sd, body.w), H["skin"])
    ctx.paint(hu2, blk, ctx.ramp(body.sd + F32(1.8), body.w), H["fat"])
    # Subcutaneous fat thickness varies around the body: thicker laterally and on the flanks.
    theta = np.arctan2(blk.Y - F32(_BODY["cy"]), blk.X)
    cos2 = np.cos(theta) ** 2
    fat_mm = (
        F32(10.0) + F32(9.0) * cos2 - F32(3.0) * np.exp(-((blk.X / F32(45.0)) ** 2)) * (blk.Y < 0)
    )
    fat_mm = fat_mm + F32(3.0) * np.sin(F32(3.0) * theta) ** 2
    muscle = ctx.ramp(body.sd + fat_mm + F32(1.8), body.w)
    ctx.paint(hu2, blk, muscle, H["muscle"])
    # Fat plane between the outer muscles (pectoralis, latissimus, trapezius) and the rib layer.
    plane_sd = np.abs(cavity.sd - F32(16.0)) - F32(0.6)
    plane = ctx.ramp(plane_sd, cavity.w) * muscle * (F32(45.0) > blk.Y)
    ctx.paint(hu2, blk, plane * F32(0.7), H["fat"])
    # Paraspinal muscles (erector spinae, transversospinalis) outlined by thin fat planes.
    for side in (-1.0, 1.0):
        erector = superellipse(ctx, blk, side * 37.0, 80.0, 21.0, 15.0, 2.2, angle_deg=side * -10)
        multifidus = superellipse(ctx, blk, side * 13.0, 66.0, 7.5, 11.0, 2.2)
        for m, strength in ((erector, 0.75), (multifidus, 0.5)):
            rim = ctx.ramp(np.abs(m.sd - F32(0.5)) - F32(0.45), m.w) * muscle
            ctx.paint(hu2, blk, rim * F32(strength), H["fat"])


def mediastinum_envelope(ctx: PhantomContext, blk: Block) -> Shape:
    return superellipse(ctx, blk, 2.0, -32.0, 18.0, 54.0, 2.6)


def paint_lungs(ctx: PhantomContext, hu: Array, cavity2d: Shape, env2d: Shape) -> None:
    """Fill the thoracic cavity with lung: gravity gradient, texture and vessels."""
    H = ctx.anatomy.hu
    c = _CAVITY
    blk = ctx.block(
        (-c["ax"] - 2, c["cy"] - c["ay_ant"] - 2, -1e9),
        (c["ax"] + 2, c["cy"] + c["ay_post"] + 2, 1e9),
    )
    assert blk is not None
    sub = (slice(None), blk.sl[1], blk.sl[2])
    occ = ctx.ramp(cavity2d.sd[sub], cavity2d.w[sub]) * (
        F32(1.0) - ctx.ramp(env2d.sd[sub], env2d.w[sub])
    )
    # Dependent (posterior) lung is denser: about −900 anteriorly to −805 posteriorly.
    base = F32(H["lung"]) + F32(40.0) * (blk.Y - F32(c["cy"])) / F32(c["ay_post"])
    # Vessels: curves where two independent smooth fields are both ~0, thicker near the hila.
    f1 = smooth_field(ctx, blk, 4.0, 4.5)
    f2 = smooth_field(ctx, blk, 4.0, 4.5)
    hil = np.sqrt(
        ((np.abs(blk.X) - F32(40.0)) / F32(55.0)) ** 2 + ((blk.Y + F32(5.0)) / F32(55.0)) ** 2
    )
    width = F32(0.25) * np.exp(-F32(1.5) * hil) + F32(0.08)
    r2 = (f1 * f1 + f2 * f2) / (width * width)
    del f1, f2
    lung = base + (F32(H["blood_pool"]) - F32(H["lung"])) * np.exp(-r2)
    lung += F32(10.0) * np.sin(r2)  # faint parenchymal texture, correlated with the vessels
    ctx.paint(hu, blk, occ, lung)
    # Larger lower-lobe pulmonary arteries and veins: branching trees from the hila.
    trees = Canvas(ctx, blk)
    vessel_rng = np.random.default_rng(ctx.spec.seed + 1)
    for side in (-1.0, 1.0):
        for root, direction, radius in (
            ((side * 42.0, -2.0, 70.0), (side * 0.45, 0.35, -0.82), 5.5),  # artery
            ((side * 38.0, -22.0, 48.0), (side * 0.85, 0.15, -0.5), 5.0),  # vein
        ):
            for a, b, ra, rb in _vessel_tree(vessel_rng, root, direction, radius, 34.0, 5):
                lo_t, hi_t = tube_box(a, b, max(ra, rb))
                trees.add(
                    lo_t,
                    hi_t,
                    lambda t, a=a, b=b, ra=ra, rb=rb: tube_segment(
                        ctx, t, a, b, (ra, ra), (rb, rb)
                    ),
                )
    ctx.paint(hu, blk, ctx.ramp(trees.sd, trees.w) * occ, H["blood_pool"])


def _vessel_tree(
    rng: np.random.Generator,
    root: Sequence[float],
    direction: Sequence[float],
    radius_mm: float,
    length_mm: float,
    depth: int,
) -> list[tuple[NDArray[np.float64], NDArray[np.float64], float, float]]:
    """Segments (start, end, start radius, end radius) of a binary branching tree."""
    out: list[tuple[NDArray[np.float64], NDArray[np.float64], float, float]] = []
    stack = [(np.asarray(root, float), np.asarray(direction, float), radius_mm, length_mm, depth)]
    while stack:
        p, d, r, length, level = stack.pop()
        d = d / np.linalg.norm(d)
        q = p + d * length
        out.append((p, q, r, 0.85 * r))
        if level == 0:
            continue
        # Two children diverging by 20-40 degrees around a random perpendicular axis.
        perp = np.cross(d, rng.normal(size=3))
        perp /= np.linalg.norm(perp)
        for sign in (1.0, -1.0):
            ang = np.radians(rng.uniform(20.0, 40.0))
            child = np.cos(ang) * d + sign * np.sin(ang) * perp
            stack.append((q, child, 0.72 * r, 0.8 * length * rng.uniform(0.8, 1.2), level - 1))
    return out


def paint_mediastinum(ctx: PhantomContext, hu: Array, cavity2d: Shape) -> None:
    H = ctx.anatomy.hu
    # Heart: myocardium with ventricles, wrapped in epicardial fat; ends above the diaphragm.
    hc = (22.0, -48.0, 40.0)
    hr = (66.0, 44.0, 76.0)
    ang = -38.0
    blk = ctx.block((hc[0] - 80, hc[1] - 70, hc[2] - hr[2] - 4), (hc[0] + 80, hc[1] + 70, 1e9))
    if blk is not None:
        heart = ellipsoid(ctx, blk, hc, hr, ang)
        fat = heart.shell(-2.5)
        ctx.paint(hu, blk, ctx.ramp(fat.sd, fat.w), H["mediastinal_fat"])
        ctx.paint(hu, blk, ctx.ramp(heart.sd, heart.w), H["myocardium"])
        lv = ellipsoid(ctx, blk, (hc[0] + 16.0, hc[1] + 3.0, hc[2] - 5.0), (26, 19, 58), ang)
        rv = ellipsoid(ctx, blk, (hc[0] - 20.0, hc[1] - 12.0, hc[2] - 2.0), (27, 15, 56), ang - 10)
        la = ellipsoid(ctx, blk, (hc[0] - 20.0, hc[1] + 27.0, hc[2] + 30.0), (24, 12, 30), 0.0)
        for ch in (lv, rv, la):
            ctx.paint(hu, blk, ctx.ramp(ch.sd, ch.w), H["blood_pool"])

    _paint_abdomen(ctx, hu, cavity2d)

    # Descending aorta (left antero-lateral of the bodies, drifting to the midline caudally),
    # oesophagus (right of the aorta, anterior to the spine) and azygos vein.
    if ctx.anatomy.has_lumbar:
        _paint_mediastinal_tubes_lumbar(ctx, hu)
        return
    blk = ctx.block((-60, -40, -1e9), (60, 40, 1e9))
    assert blk is not None
    z = blk.Z
    ax_c = F32(25.0) + F32(0.07) * z
    ay_c = F32(4.0) - F32(0.03) * z
    aorta = superellipse(ctx, blk, ax_c, ay_c, 12.5, 12.5)
    ctx.paint(hu, blk, ctx.ramp(aorta.sd - F32(3.0), aorta.w), H["mediastinal_fat"])
    ctx.paint(hu, blk, ctx.ramp(aorta.sd, aorta.w), H["muscle"])  # wall
    ctx.paint(hu, blk, ctx.ramp(aorta.sd + F32(1.5), aorta.w), H["aorta"])
    oes_x = F32(6.0) + F32(0.1) * np.maximum(-z, F32(0.0))
    oes = superellipse(ctx, blk, oes_x, F32(-10.0), 10.0, 6.5, 2.0, angle_deg=20.0)
    ctx.paint(hu, blk, ctx.ramp(oes.sd - F32(2.0), oes.w), H["mediastinal_fat"])
    ctx.paint(hu, blk, ctx.ramp(oes.sd, oes.w), H["oesophagus"])
    lumen = superellipse(ctx, blk, oes_x + F32(1.0), F32(-10.5), 3.5, 1.4, 2.0, angle_deg=20.0)
    # Air in the lumen only on some slices (peristalsis), smoothly.
    air_amount = F32(0.5) + F32(0.5) * np.sin(z / F32(9.0))
    ctx.paint(hu, blk, ctx.ramp(lumen.sd, lumen.w) * air_amount, H["air"])
    azy = superellipse(ctx, blk, -9.0, 2.0, 4.0, 4.5)
    ctx.paint(hu, blk, ctx.ramp(azy.sd, azy.w), H["vein"])
    hemi = superellipse(ctx, blk, 16.0, 20.0, 2.8, 2.8)
    ctx.paint(hu, blk, ctx.ramp(hemi.sd, hemi.w), H["vein"])


def _to_lumbar(z: Array, z_start: float, z_end: float) -> Array:
    """0 above ``z_start``, 1 below ``z_end`` (mm), smooth in between."""
    t = np.clip((F32(z_start) - z) / F32(z_start - z_end), F32(0.0), F32(1.0))
    return t * t * (F32(3.0) - F32(2.0) * t)


def _great_vessels(ctx: PhantomContext, z: Array) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """Aorta and IVC (centre x, y and radius, mm, per z) with lumbar levels: the thoracic paths
    above T11, then in front of the lumbar bodies (aorta left of the midline, IVC right)."""
    an = ctx.anatomy
    t = _to_lumbar(z, -60.0, -100.0)
    front = np.asarray(an.spine_y_mm(z), dtype=F32) - an._level_profile(z, "half_depth_mm")
    ax = (F32(25.0) + F32(0.07) * z) * (1 - t) + F32(13.0) * t
    ay = (F32(4.0) - F32(0.03) * z) * (1 - t) + (front - F32(12.0)) * t
    ar = F32(12.5) - F32(2.5) * t
    t2 = _to_lumbar(z, -70.0, -110.0)
    vx = F32(-18.0) * (1 - t2) + F32(-25.0) * t2
    vy = F32(-8.0) * (1 - t2) + (front - F32(9.0)) * t2
    return (ax, ay, ar), (vx, vy, F32(12.0) + F32(1.0) * t2)


def _paint_mediastinal_tubes_lumbar(ctx: PhantomContext, hu: Array) -> None:
    """Aorta, oesophagus (ending at T11-T12) and azygos system of an anatomy with lumbar
    levels."""
    H = ctx.anatomy.hu
    blk = ctx.block((-60, -60, -1e9), (60, 40, 1e9))
    assert blk is not None
    z = blk.Z
    (ax_c, ay_c, ar), _ = _great_vessels(ctx, z)
    aorta = superellipse(ctx, blk, ax_c, ay_c, ar, ar)
    ctx.paint(hu, blk, ctx.ramp(aorta.sd - F32(3.0), aorta.w), H["mediastinal_fat"])
    ctx.paint(hu, blk, ctx.ramp(aorta.sd, aorta.w), H["muscle"])  # wall
    ctx.paint(hu, blk, ctx.ramp(aorta.sd + F32(1.5), aorta.w), H["aorta"])
    ends = F32(1.0) - _to_lumbar(z, -62.0, -75.0)  # the oesophagus joins the stomach
    oes_x = F32(6.0) + F32(0.1) * np.maximum(-z, F32(0.0))
    oes = superellipse(ctx, blk, oes_x, F32(-10.0), 10.0, 6.5, 2.0, angle_deg=20.0)
    ctx.paint(hu, blk, ctx.ramp(oes.sd - F32(2.0), oes.w) * ends, H["mediastinal_fat"])
    ctx.paint(hu, blk, ctx.ramp(oes.sd, oes.w) * ends, H["oesophagus"])
    lumen = superellipse(ctx, blk, oes_x + F32(1.0), F32(-10.5), 3.5, 1.4, 2.0, angle_deg=20.0)
    air_amount = F32(0.5) + F32(0.5) * np.sin(z / F32(9.0))
    ctx.paint(hu, blk, ctx.ramp(lumen.sd, lumen.w) * air_amount * ends, H["air"])
    veins = F32(1.0) - _to_lumbar(z, -80.0, -95.0)
    azy = superellipse(ctx, blk, -9.0, 2.0, 4.0, 4.5)
    ctx.paint(hu, blk, ctx.ramp(azy.sd, azy.w) * veins, H["vein"])
    hemi = superellipse(ctx, blk, 16.0, 20.0, 2.8, 2.8)
    ctx.paint(hu, blk, ctx.ramp(hemi.sd, hemi.w) * veins, H["vein"])


def _paint_abdomen(ctx: PhantomContext, hu: Array, cavity2d: Shape) -> None:
    """Liver (right dome), stomach and spleen (left dome) below the hemidiaphragms."""
    H = ctx.anatomy.hu
    c = _CAVITY
    blk = ctx.block(
        (-c["ax"] - 2, c["cy"] - c["ay_ant"] - 2, -1e9),
        (c["ax"] + 2, c["cy"] + c["ay_post"] + 2, -20.0),
    )
    if blk is None:
        return
    sub = (slice(None), blk.sl[1], blk.sl[2])
    in_cavity = ctx.ramp(cavity2d.sd[sub], cavity2d.w[sub])
    # Dome heights (paraboloids): the right dome is higher than the left.
    # The posterior costophrenic recesses go deeper: the dome falls faster behind y = 10 mm.
    post = np.maximum(blk.Y - F32(10.0), F32(0.0))
    recess = F32(2.0) * post * post
    r_dome = F32(-30.0) - (
        (blk.X + F32(55.0)) ** 2 + F32(0.7) * (blk.Y + F32(5.0)) ** 2 + recess
    ) / F32(170.0)
    l_dome = F32(-50.0) - (
        (blk.X - F32(60.0)) ** 2 + F32(0.7) * (blk.Y - F32(5.0)) ** 2 + recess
    ) / F32(150.0)
    dome = np.maximum(r_dome, l_dome)
    sd = blk.Z - dome  # < 0 below the diaphragm
    w = ctx.dz * F32(0.8) + ctx.dx
    below = ctx.ramp(sd, w) * in_cavity
    ctx.paint(hu, blk, ctx.ramp(sd - F32(4.0), w) * in_cavity, H["muscle"])  # diaphragm
    # Liver on the right and across the midline; abdominal fat under the left dome.
    left = ctx.ramp(F32(12.0) - F32(0.3) * blk.Y - blk.X, F32(6.0))
    organ = F32(H["liver"]) + left * F32(H["mediastinal_fat"] - H["liver"])
    ctx.paint(hu, blk, below, organ)
    spleen = ellipsoid(ctx, blk, (88.0, 35.0, -75.0), (24.0, 42.0, 34.0), 50.0)
    ctx.paint(hu, blk, ctx.ramp(spleen.sd, spleen.w) * below, H["spleen"])
    # Stomach contents: air cap under the left dome, fluid below.
    st = ellipsoid(ctx, blk, (55.0, -40.0, -62.0), (32.0, 26.0, 30.0), 30.0)
    ctx.paint(hu, blk, ctx.ramp(st.sd, st.w) * below, H["stomach_wall"])
    st_occ = ctx.ramp(st.sd + F32(3.0), st.w) * below
    # Supine patient: the gas rises anteriorly, with a flat air-fluid level (constant y).
    air = ctx.ramp(blk.Y - F32(-27.0), ctx.dy)
    content = F32(H["stomach_fluid"]) + air * F32(H["air"] - H["stomach_fluid"])
    ctx.paint(hu, blk, st_occ, content)
    # Inferior vena cava entering the liver.
    if ctx.anatomy.has_lumbar:
        _, (vx, vy, vr) = _great_vessels(ctx, blk.Z)
        ivc = superellipse(ctx, blk, vx, vy, vr, vr * F32(10.0 / 12.0))
    else:
        ivc = superellipse(ctx, blk, -18.0, -8.0, 12.0, 10.0)
    ctx.paint(hu, blk, ctx.ramp(ivc.sd, ivc.w) * below, H["vein"])
    # Hepatic veins converging on the IVC (enhanced in the portal-venous phase).
    liver = below * (F32(1.0) - left)
    veins = Canvas(ctx, blk)
    vessel_rng = np.random.default_rng(ctx.spec.seed + 2)
    for direction in ((-0.9, -0.1, -0.45), (-0.5, -0.75, -0.4), (0.3, -0.9, -0.35)):
        for a, b, ra, rb in _vessel_tree(vessel_rng, (-18.0, -8.0, -40.0), direction, 4.5, 30.0, 3):
            lo_t, hi_t = tube_box(a, b, max(ra, rb))
            veins.add(
                lo_t,
                hi_t,
                lambda t, a=a, b=b, ra=ra, rb=rb: tube_segment(ctx, t, a, b, (ra, ra), (rb, rb)),
            )
    ctx.paint(hu, blk, ctx.ramp(veins.sd, veins.w) * liver, H["vein"])


def paint_lumbar_abdomen(ctx: PhantomContext, hu: Array, cavity2d: Shape) -> None:
    """The abdomen below the liver (anatomy with lumbar levels; module docstring).

    The liver's inferior surface falls from z = −100 mm medially to −150 mm at the right lateral
    wall (less anteriorly and posteriorly); below it the cavity holds mesenteric fat with
    small-bowel loops (fluid or gas), the ascending and descending colon, and in the
    retroperitoneum the kidneys (left centre −125 mm, right −140 mm: L1-L2) in perirenal fat,
    psoas (growing from T12 down) and quadratus lumborum; the aorta and IVC are painted again
    on top. Random draws come from
    their own generator (``spec.seed + 3``)."""
    an = ctx.anatomy
    H = an.hu
    c = _CAVITY
    blk = ctx.block(
        (-c["ax"] - 2, c["cy"] - c["ay_ant"] - 2, -1e9),
        (c["ax"] + 2, c["cy"] + c["ay_post"] + 2, -70.0),
    )
    if blk is None:
        return
    rng = np.random.default_rng(ctx.spec.seed + 3)
    sub = (slice(None), blk.sl[1], blk.sl[2])
    in_cav = ctx.ramp(cavity2d.sd[sub], cavity2d.w[sub])
    # Deepest laterally at mid-depth (the right lobe's tip), curving up anteriorly/posteriorly.
    reach = (-blk.X - F32(20.0)) / F32(100.0) - F32(0.6) * ((blk.Y + F32(10.0)) / F32(110.0)) ** 2
    z_liver = F32(-100.0) - F32(50.0) * np.clip(reach, 0, 1)
    infra = ctx.ramp(blk.Z - z_liver, ctx.dz + ctx.dx) * in_cav
    ctx.paint(hu, blk, infra, H["fat"])
    spine_y = np.asarray(an.spine_y_mm(blk.Z), dtype=F32)
    half_w = an._level_profile(blk.Z, "half_width_mm")

    # Small-bowel loops: chains of capsules in the anterior cavity.
    z_lo, z_hi = float(ctx.z[0]), min(float(ctx.z[-1]), -100.0)
    loops = {"bowel_content": Canvas(ctx, blk), "bowel_gas": Canvas(ctx, blk)}
    if z_hi > z_lo - 30.0:
        n_chains = max(4, int((z_hi - z_lo + 60.0) / 12.0))
        for _ in range(n_chains):
            p = np.array(
                [rng.uniform(-85, 85), rng.uniform(-85, -30), rng.uniform(z_lo - 20, z_hi + 10)]
            )
            d = rng.normal(size=3)
            r = float(rng.uniform(8.0, 12.0))
            canvas = loops["bowel_gas" if rng.uniform() < 0.3 else "bowel_content"]
            for _seg in range(7):
                d = d / np.linalg.norm(d) + 0.8 * rng.normal(size=3)
                d /= np.linalg.norm(d)
                q = p + 20.0 * d
                q[0] = float(np.clip(q[0], -95, 95))
                q[1] = float(np.clip(q[1], -88, -20))
                lo_t, hi_t = tube_box(p, q, r)
                canvas.add(
                    lo_t,
                    hi_t,
                    lambda t, a=p, b=q, r=r: tube_segment(ctx, t, a, b, (r, r), (r, r)),
                    k=2.0,
                )
                p = q
    # Colon: ascending (right, from the hepatic flexure) and descending (left).
    colon = Canvas(ctx, blk)
    for cx, cy, r, z_top in ((-88.0, -18.0, 19.0, -115.0), (90.0, 2.0, 14.0, -85.0)):
        colon.add(
            (cx - r, cy - r, -1e9),
            (cx + r, cy + r, z_top + r),
            lambda t, cx=cx, cy=cy, r=r, z_top=z_top: superellipse(ctx, t, cx, cy, r, r).intersect(
                Shape(t.Z - F32(z_top), ctx.dz + 0 * t.Z), k=8.0
            ),
        )
    gut_w = infra
    for name, canvas in (*loops.items(), ("colon", colon)):
        sh = canvas.shape()
        ctx.paint(hu, blk, ctx.ramp(sh.sd, sh.w) * gut_w, H["bowel_wall"])
        inner = sh.shell(2.0)
        if name == "colon":
            # Stool (mottled, with gas bubbles) and gas rising anteriorly.
            mottle = smooth_field(ctx, blk, 3.0, 2.5, rng=rng)
            content = F32(-60.0) + F32(60.0) * mottle
            content = np.where(mottle > 1.2, F32(H["bowel_gas"]), content)
            gas = ctx.ramp(blk.Y - F32(-18.0), ctx.dy)
            content = content + gas * (F32(H["bowel_gas"]) - content)
        else:
            content = F32(H[name])
        ctx.paint(hu, blk, ctx.ramp(inner.sd, inner.w) * gut_w, content)

    # Retroperitoneum: kidneys in perirenal fat (hilum facing antero-medially).
    for side, zk in ((1.0, -125.0), (-1.0, -140.0)):
        yk = float(an.spine_y_mm(zk)) + 16.0
        centre, radii, ang = (side * 68.0, yk, zk), (27.0, 19.0, 55.0), side * 35.0
        box_lo = (side * 68.0 - 40, yk - 40, zk - 70)
        box_hi = (side * 68.0 + 40, yk + 40, zk + 70)
        kb = ctx.block(box_lo, box_hi)
        if kb is None:
            continue
        kid = ellipsoid(ctx, kb, centre, radii, ang)
        perirenal = kid.shell(-7.0)
        ctx.paint(hu, kb, ctx.ramp(perirenal.sd, perirenal.w), H["retroperitoneal_fat"])
        ctx.paint(hu, kb, ctx.ramp(kid.sd, kid.w), H["kidney"])
        hil = (side * 68.0 - side * 14.0, yk - 8.0, zk)
        sinus = ellipsoid(ctx, kb, hil, (10.0, 7.0, 24.0), ang)
        ctx.paint(hu, kb, ctx.ramp(sinus.sd, sinus.w), H["renal_sinus_fat"])
    # Psoas (from T12 down, growing) and quadratus lumborum (behind the kidneys).
    grow = np.clip((F32(-95.0) - blk.Z) / F32(90.0), F32(0.0), F32(1.0))
    starts = ctx.ramp(blk.Z - F32(-92.0), ctx.dz)
    canal_y = np.asarray(an.canal_centre_y_mm(blk.Z), dtype=F32)
    for side in (-1.0, 1.0):
        pax = F32(4.0) + F32(11.0) * grow
        pay = F32(4.0) + F32(10.0) * grow
        psoas = superellipse(
            ctx, blk, side * (half_w + F32(0.8) * pax), spine_y + F32(5.0), pax, pay, 2.0
        )
        ctx.paint(hu, blk, ctx.ramp(psoas.sd - F32(1.5), psoas.w) * starts, H["fat"])
        ctx.paint(hu, blk, ctx.ramp(psoas.sd, psoas.w) * starts, H["muscle"])
        qax = F32(5.0) + F32(9.0) * grow
        ql = superellipse(
            ctx,
            blk,
            side * (half_w + F32(30.0)),
            canal_y + F32(8.0),
            qax,
            F32(8.0),
            2.0,
            angle_deg=side * 25.0,
        )
        ctx.paint(hu, blk, ctx.ramp(ql.sd - F32(1.5), ql.w) * starts * in_cav, H["fat"])
        ctx.paint(hu, blk, ctx.ramp(ql.sd, ql.w) * starts * in_cav, H["muscle"])
    # Great vessels again on top (the fat and bowel above were painted over them).
    (ax_c, ay_c, ar), (vx, vy, vr) = _great_vessels(ctx, blk.Z)
    low = ctx.ramp(blk.Z - F32(-90.0), ctx.dz)
    aorta = superellipse(ctx, blk, ax_c, ay_c, ar, ar)
    ctx.paint(hu, blk, ctx.ramp(aorta.sd - F32(3.0), aorta.w) * low, H["fat"])
    ctx.paint(hu, blk, ctx.ramp(aorta.sd, aorta.w) * low, H["muscle"])
    ctx.paint(hu, blk, ctx.ramp(aorta.sd + F32(1.5), aorta.w) * low, H["aorta"])
    ivc = superellipse(ctx, blk, vx, vy, vr, vr * F32(10.0 / 12.0))
    ctx.paint(hu, blk, ctx.ramp(ivc.sd - F32(2.0), ivc.w) * low, H["fat"])
    ctx.paint(hu, blk, ctx.ramp(ivc.sd, ivc.w) * low, H["vein"])
