"""Report figures (matplotlib, Agg backend, no Qt): the DVH and isodoses on three planes.

Every figure carries the plan's identity (patient, plan, revision) and units on its axes.
Views are sampled in LPS millimetres on planes through a point (the target centroid): axial
(x → patient left, y → posterior, drawn with anterior up), coronal (x, z with superior up) and
sagittal (y, z with anterior left), so any CT direction matrix is shown correctly. CT and masks
are sampled nearest-neighbour, the dose trilinearly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display, no Qt: before pyplot

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from dose.dvh import DVH
from dose.geometry import GridGeometry
from planner.plan.verification import DVHPair

__all__ = [
    "ISODOSE_PERCENT",
    "PlaneView",
    "dvh_png",
    "isodose_png",
    "seed_match_png",
    "verification_dvh_png",
]

#: Isodose lines drawn (% of the prescription) and their colours.
ISODOSE_PERCENT = (50, 100, 150, 200)
#: Isodose colours, chosen apart from the usual structure colours (red GTV, yellow cord …):
#: structures are dashed in their own colour, isodoses solid in these.
_ISO_COLORS = ("#2f7dff", "#ff7f00", "#00d0a0", "#ffffff")
DPI = 160


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def dvh_png(
    dvhs: Mapping[str, DVH],
    colors: Mapping[str, tuple[int, int, int]],
    *,
    prescription_gy: float | None,
    identity: str,
    size_in: tuple[float, float] = (7.0, 3.6),
) -> bytes:
    """Cumulative DVHs (volume % vs dose Gy), one line per structure, the prescription marked."""
    fig, ax = plt.subplots(figsize=size_in)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92)
    top = 0.0
    for name, dvh in dvhs.items():
        edges = dvh.bin_edges_gy
        cum = dvh.cumulative_percent
        n = min(len(edges), len(cum))
        rgb = np.asarray(colors.get(name, (80, 80, 80)), dtype=float) / 255.0
        ax.plot(edges[:n], cum[:n], color=rgb, lw=1.6, label=f"{name} ({dvh.volume_cm3:.2f} cm³)")
        top = max(top, float(dvh.dmax_gy))
    _dvh_axes(ax, prescription_gy, top, f"Cumulative DVH — {identity}", pd_style="--")
    return _png(fig)


def _dvh_axes(
    ax: plt.Axes, prescription_gy: float | None, top_gy: float, title: str, pd_style: str
) -> None:
    """A cumulative DVH's axes: dose to ``top_gy`` (at most 3 × PD), volume 0–105 %, the
    prescription marked (line style ``pd_style``), grid, legend and title."""
    if prescription_gy:
        ax.axvline(prescription_gy, color="k", ls=pd_style, lw=1.0)
        ax.text(prescription_gy, 101, f" PD {prescription_gy:g} Gy", va="bottom", fontsize=8)
        top_gy = min(top_gy, 3.0 * prescription_gy)
    ax.set_xlim(0, max(top_gy * 1.02, 1.0))
    ax.set_ylim(0, 105)
    ax.set_xlabel("Dose D∞ (Gy)")
    ax.set_ylabel("Volume (% of structure)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=8 if len(title) < 90 else 7)


@dataclass(frozen=True)
class PlaneView:
    """One sampled plane: ``name`` ("axial" …), the two in-plane LPS axes (indices 0-2) and
    the fixed coordinate."""

    name: str
    u_axis: int
    v_axis: int
    fixed_axis: int
    fixed_mm: float


def _sample_linear(volume: NDArray, geometry: GridGeometry, pts_mm: NDArray[np.float64]) -> NDArray:
    """Trilinear samples (0 outside the grid) at LPS points (..., 3)."""
    kji = geometry.world_to_zyx(pts_mm.reshape(-1, 3)).T
    vals = ndimage.map_coordinates(volume, kji, order=1, mode="constant", cval=0.0)
    return vals.reshape(pts_mm.shape[:-1])


def _sample_nearest(
    volume: NDArray,
    geometry: GridGeometry,
    pts_mm: NDArray[np.float64],
    fill: float,
    offset_kji: tuple[int, int, int] = (0, 0, 0),
) -> NDArray[np.float64]:
    """Nearest-voxel samples of ``volume`` (a crop starting at ``offset_kji`` of ``geometry``;
    ``fill`` outside) at LPS points (..., 3); no copy of the volume."""
    kji = np.rint(geometry.world_to_zyx(pts_mm.reshape(-1, 3))).astype(np.int64)
    kji -= np.asarray(offset_kji, dtype=np.int64)
    ok = np.all((kji >= 0) & (kji < np.asarray(volume.shape)), axis=1)
    out = np.full(kji.shape[0], fill, dtype=np.float64)
    out[ok] = volume[kji[ok, 0], kji[ok, 1], kji[ok, 2]]
    return out.reshape(pts_mm.shape[:-1])


def isodose_png(
    view: PlaneView,
    *,
    centre_mm: NDArray[np.float64],
    half_width_mm: float,
    ct_hu: NDArray | None,
    ct_geometry: GridGeometry,
    dose_gy: NDArray[np.float64],
    dose_geometry: GridGeometry,
    prescription_gy: float,
    masks: Sequence[tuple[str, NDArray[np.bool_], tuple[int, int, int], tuple[int, int, int]]],
    seeds_mm: NDArray[np.float64],
    identity: str,
    pixel_mm: float = 0.5,
    size_in: tuple[float, float] = (2.6, 3.5),
) -> bytes:
    """Isodose lines (:data:`ISODOSE_PERCENT` of the prescription) over the CT with the
    structures' outlines and the seeds within ±2.5 mm of the plane. ``masks``: (name, crop,
    crop offset (k, j, i) on the CT grid, colour)."""
    n = int(np.ceil(2 * half_width_mm / pixel_mm)) + 1
    u = centre_mm[view.u_axis] + np.linspace(-half_width_mm, half_width_mm, n)
    v = centre_mm[view.v_axis] + np.linspace(-half_width_mm, half_width_mm, n)
    uu, vv = np.meshgrid(u, v)
    pts = np.empty((*uu.shape, 3))
    pts[..., view.u_axis] = uu
    pts[..., view.v_axis] = vv
    pts[..., view.fixed_axis] = view.fixed_mm
    fig, ax = plt.subplots(figsize=size_in)
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.27, top=0.92)
    extent = (u[0], u[-1], v[0], v[-1])
    if ct_hu is not None:
        hu = _sample_nearest(ct_hu, ct_geometry, pts, -1000.0)
        ax.imshow(hu, cmap="gray", vmin=-160, vmax=240, origin="lower", extent=extent)
    dose = _sample_linear(np.asarray(dose_gy, dtype=np.float64), dose_geometry, pts)
    levels = [prescription_gy * p / 100.0 for p in ISODOSE_PERCENT]
    cs = ax.contour(uu, vv, dose, levels=levels, colors=_ISO_COLORS, linewidths=1.2)
    handles = [
        plt.Line2D(
            [], [], color=c if c != "#ffffff" else "#999999", lw=1.2, label=f"{p} % ({lv:g} Gy)"
        )
        for p, lv, c in zip(ISODOSE_PERCENT, levels, _ISO_COLORS, strict=True)
    ]
    del cs
    for name, crop, offset, rgb in masks:
        m = _sample_nearest(crop, ct_geometry, pts, 0.0, offset)
        if m.max() > 0.5:
            col = np.asarray(rgb, dtype=float) / 255.0
            ax.contour(uu, vv, m, levels=[0.5], colors=[col], linewidths=0.7, linestyles="--")
            handles.append(plt.Line2D([], [], color=col, lw=0.9, ls="--", label=name))
    near = np.abs(seeds_mm[:, view.fixed_axis] - view.fixed_mm) <= 2.5 if len(seeds_mm) else []
    if len(seeds_mm) and np.any(near):
        s = seeds_mm[near]
        ax.plot(s[:, view.u_axis], s[:, view.v_axis], "o", ms=2.2, mfc="k", mec="w", mew=0.5)
    names = "xyz"
    lps = {0: ("R", "L"), 1: ("A", "P"), 2: ("I", "S")}
    ax.set_xlabel(f"{names[view.u_axis]} (mm)   {lps[view.u_axis][0]} ↔ {lps[view.u_axis][1]}")
    ax.set_ylabel(f"{names[view.v_axis]} (mm)   {lps[view.v_axis][0]} ↔ {lps[view.v_axis][1]}")
    if view.v_axis == 1:  # axial: anterior up (radiological display)
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)
    fixed = names[view.fixed_axis]
    ax.set_title(f"{identity}\n{view.name}, {fixed} = {view.fixed_mm:.1f} mm", fontsize=5.5)
    fig.legend(handles=handles, fontsize=4.5, loc="lower center", ncol=3, frameon=False)
    return _png(fig)


def verification_dvh_png(
    dvhs: Sequence[DVHPair],
    colors: Mapping[str, tuple[int, int, int]],
    *,
    prescription_gy: float | None,
    identity: str,
    size_in: tuple[float, float] = (7.0, 3.6),
) -> bytes:
    """Planned (solid) and post-op (dashed) cumulative DVHs of each structure, in its colour
    (volume % vs dose Gy; as the GUI's post-op DVH draws them), the prescription marked."""
    fig, ax = plt.subplots(figsize=size_in)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92)
    top = 1.0
    for d in dvhs:
        rgb = np.asarray(colors.get(d.structure, (80, 80, 80)), dtype=float) / 255.0
        ax.plot(d.dose_gy("planned"), d.planned_percent, color=rgb, lw=1.5, label=d.structure)
        ax.plot(d.dose_gy("postop"), d.postop_percent, color=rgb, lw=1.5, ls="--")
        top = max(top, float(d.dose_gy("planned")[-1]), float(d.dose_gy("postop")[-1]))
    ax.plot([], [], color="k", lw=1.5, label="planned")
    ax.plot([], [], color="k", lw=1.5, ls="--", label="post-op")
    title = f"Cumulative DVH, planned vs post-op — {identity}"
    _dvh_axes(ax, prescription_gy, top, title, pd_style=":")
    return _png(fig)


def seed_match_png(
    planned_mm: NDArray[np.float64],
    implanted_mm: NDArray[np.float64],
    pairs: Sequence[tuple[int, int]],
    *,
    identity: str,
    size_in: tuple[float, float] = (7.0, 3.5),
) -> bytes:
    """Planned (○) and implanted (●) seeds (planning frame, LPS mm) projected on the axial
    (x, y; anterior up) and coronal (x, z; superior up) planes, each matched pair joined by its
    displacement; planned seeds left unmatched are red ✕, implanted ones orange ▲."""
    planned = np.asarray(planned_mm, dtype=np.float64).reshape(-1, 3)
    implanted = np.asarray(implanted_mm, dtype=np.float64).reshape(-1, 3)
    done_p = {i for i, _ in pairs}
    done_i = {j for _, j in pairs}
    lone_p = [i for i in range(len(planned)) if i not in done_p]
    lone_i = [j for j in range(len(implanted)) if j not in done_i]
    fig, axes = plt.subplots(1, 2, figsize=size_in)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.25, top=0.88, wspace=0.25)
    lps = {0: "x (mm)   R ↔ L", 1: "y (mm)   A ↔ P", 2: "z (mm)   I ↔ S"}
    for ax, (u, v, name) in zip(axes, ((0, 1, "Axial"), (0, 2, "Coronal")), strict=True):
        for i, j in pairs:
            ax.plot(
                [planned[i, u], implanted[j, u]],
                [planned[i, v], implanted[j, v]],
                "-",
                color="#555555",
                lw=0.6,
            )
        if len(planned):
            ax.plot(planned[:, u], planned[:, v], "o", ms=4, mfc="none", mec="#1f77b4", mew=0.8)
        if len(implanted):
            ax.plot(implanted[:, u], implanted[:, v], "o", ms=2.4, mfc="k", mec="k")
        if lone_p:
            ax.plot(planned[lone_p, u], planned[lone_p, v], "x", ms=6, color="#d62728", mew=1.4)
        if lone_i:
            ax.plot(implanted[lone_i, u], implanted[lone_i, v], "^", ms=5, color="#ff7f0e")
        ax.set_xlabel(lps[u], fontsize=7)
        ax.set_ylabel(lps[v], fontsize=7)
        if v == 1:  # axial: anterior up (radiological display)
            ax.invert_yaxis()
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{name} projection", fontsize=8)
    handles = [
        plt.Line2D([], [], ls="none", marker="o", mfc="none", mec="#1f77b4", label="planned"),
        plt.Line2D([], [], ls="none", marker="o", ms=3, mfc="k", mec="k", label="implanted"),
        plt.Line2D([], [], color="#555555", lw=0.8, label="displacement"),
        plt.Line2D([], [], ls="none", marker="x", color="#d62728", label="planned, not found"),
        plt.Line2D([], [], ls="none", marker="^", color="#ff7f0e", label="implanted, unmatched"),
    ]
    fig.legend(handles=handles, fontsize=6.5, loc="lower center", ncol=5, frameon=False)
    fig.suptitle(f"Seeds, planned vs implanted (planning frame) — {identity}", fontsize=7)
    return _png(fig)
