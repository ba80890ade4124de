"""The DVH panel: cumulative DVHs of the exact dose (targets, cord, other structures).

Drawn with matplotlib's QtAgg canvas (PySide6): volume (% of the structure) against dose (Gy,
with % of PD on the top axis), one line per non-empty structure in its structure colour
(targets thick, organs at risk solid, others dashed), the prescription as a dotted vertical
line. The title names the engine, formalism and seed count of the exact dose drawn; while an
edit is pending the last exact curves stay and a banner over the figure says they are being
updated (a Qt label over the canvas: no matplotlib redraw, which costs 0.3–0.9 s, when a drag
starts), so the panel never shows a DVH without saying which dose it describes. The next
exact result redraws the figure and removes the banner.

Robustness (Workflow → Robustness…, ``planning.robustness``): for each structure the result
has a band for (``RobustnessResult.dvh_bands``: targets and the cord), the 5th–95th percentile
band of its cumulative DVH over the sampled needle errors is shaded in the structure's colour
and the median curve drawn dotted over the exact DVH; the legend and title say so. The bands
come from the robustness sampler's points (CT voxel centres, the targets subsampled, the dose
axis up to 3 × PD), not from the exact DVH's sub-voxel sampling, so the planned curve and the
bands differ slightly even without errors. The band goes when the plan is edited (it described
the plan before the edit).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("QtAgg")

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI
    from planner.optimise.robustness import RobustnessResult
    from planner.plan.dosimetry import PlanDosimetry

__all__ = ["PENDING_TEXT", "DVHPanel"]

#: The banner while an edit is pending (the curves shown are those before it).
PENDING_TEXT = "DVH — updating after the edit… (curves: before it)"

_BG = "#202226"
_FG = "#dcdcdc"


class DVHPanel(QWidget):
    """Cumulative DVHs of the latest exact dose (module docstring)."""

    def __init__(self, planning: PlanningUI) -> None:
        super().__init__()
        self.planning = planning
        self.setObjectName("dvh_panel")
        self.figure = Figure(figsize=(4.5, 3.2), dpi=90, facecolor=_BG)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.canvas)
        # Over the canvas, not in the layout: showing it resizes (and so redraws) nothing.
        self.pending_label = QLabel(PENDING_TEXT, self.canvas)
        self.pending_label.setObjectName("dvh_pending")
        self.pending_label.setStyleSheet(
            f"color: #ffcc66; background-color: {_BG}; padding: 1px 4px; font-size: 8pt;"
        )
        self.pending_label.adjustSize()
        self.pending_label.move(4, 2)
        self.pending_label.hide()
        # Below this the axes labels and the legend crowd the curves out.
        self.setMinimumSize(300, 190)
        #: The curves drawn: {structure name: (dose_gy array, volume_percent array)}.
        self.curves: dict[str, tuple[object, object]] = {}
        #: The robustness bands drawn: {structure name: (dose_gy, p5 %, median %, p95 %)}.
        self.bands: dict[str, tuple[object, object, object, object]] = {}
        self.result: PlanDosimetry | None = None
        planning.events.exact_changed.connect(self.show_result)
        planning.events.status_changed.connect(self._on_status)
        planning.events.robustness_changed.connect(self._on_robustness)
        self.show_result(None)

    def _on_robustness(self, _result: object) -> None:
        self.show_result(self.result)

    def _style(self) -> None:
        ax = self.axes
        ax.set_facecolor(_BG)
        for side in ax.spines.values():
            side.set_color("#888888")
        ax.tick_params(colors=_FG, labelsize=8)
        ax.xaxis.label.set_color(_FG)
        ax.yaxis.label.set_color(_FG)
        ax.set_xlabel("Dose (Gy)", fontsize=9)
        ax.set_ylabel("Volume (%)", fontsize=9)
        ax.grid(True, color="#444444", linewidth=0.5)

    @property
    def pending(self) -> bool:
        """True while the banner says the curves are being updated after an edit."""
        return not self.pending_label.isHidden()

    def show_result(self, result: PlanDosimetry | None) -> None:
        self.result = result
        self.pending_label.hide()
        self.figure.clear()
        self.axes = self.figure.add_subplot(111)
        self._style()
        self.curves = {}
        self.bands = {}
        plan = self.planning.plan
        if result is None or plan is None:
            msg = "No plan" if plan is None else "No exact dose yet"
            self.axes.text(
                0.5, 0.5, msg, color=_FG, ha="center", va="center", transform=self.axes.transAxes
            )
            self.canvas.draw_idle()
            return
        colours = {s.name: tuple(c / 255.0 for c in s.color_rgb) for s in plan.structures}
        roles = {s.name: s.role for s in plan.structures}
        top = 0.0
        for name, dvh in result.dvhs.items():
            if dvh.volume_cm3 <= 0:
                continue
            dose = dvh.bin_edges_gy[:-1]
            vol = dvh.cumulative_percent
            n = min(len(dose), len(vol))
            role = roles.get(name, "other")
            self.axes.plot(
                dose[:n],
                vol[:n],
                color=colours.get(name, (0.8, 0.8, 0.8)),
                linewidth=2.2 if role == "target" else 1.5,
                linestyle="--" if role == "other" else "-",
                label=f"{name} ({dvh.volume_cm3:.1f} cm³)",
            )
            self.curves[name] = (dose[:n], vol[:n])
            top = max(top, float(dvh.dmax_gy))
        robust = self.planning.robustness
        if robust is not None:
            top = max(top, self._draw_bands(robust, colours))
        pd = result.prescription_gy
        if pd:
            self.axes.axvline(pd, color="#ffee33", linestyle=":", linewidth=1.2)
            top = min(max(top, 2.0 * pd), 4.0 * pd)
            sec = self.axes.secondary_xaxis(
                "top", functions=(lambda d: 100 * d / pd, lambda p: p * pd / 100)
            )
            sec.set_xlabel("% of PD", fontsize=8, color=_FG)
            sec.tick_params(colors=_FG, labelsize=7)
        self.axes.set_xlim(0, top or 1.0)
        self.axes.set_ylim(0, 102)
        handles, labels = self.axes.get_legend_handles_labels()
        if self.bands:  # one neutral entry each: the band and median of every structure
            handles += [
                Patch(facecolor="#bbbbbb", alpha=0.35, edgecolor="#bbbbbb", linewidth=0.6),
                Line2D([], [], color="#bbbbbb", linewidth=1.1, linestyle=":"),
            ]
            labels += ["5th–95th percentile, needle errors", "median, needle errors"]
        leg = self.axes.legend(
            handles,
            labels,
            loc="upper right",  # cumulative DVHs leave that corner empty (high dose, low volume)
            fontsize=7,
            facecolor=_BG,
            edgecolor="#666666",
            labelcolor=_FG,
            framealpha=0.85,
        )
        leg.set_draggable(True)
        title = f"DVH — exact TG-43 {result.formalism.upper()}, {len(result.seeds)} seeds"
        if self.bands and robust is not None:
            title += f"\nbands: 5th–95th percentile of {robust.d90_gy.size} needle-error samples"
        self.axes.set_title(title, fontsize=8, color=_FG)
        with warnings.catch_warnings():  # a narrow dock: matplotlib keeps its margins
            warnings.simplefilter("ignore", UserWarning)
            self.figure.tight_layout()
        self.canvas.draw_idle()

    def _draw_bands(self, robust: RobustnessResult, colours: dict[str, tuple]) -> float:
        """Shade each structure's 5th–95th percentile band, draw its median dotted; returns
        the highest dose (Gy) of a band (for the x range)."""
        top = 0.0
        for name, band in robust.dvh_bands.items():
            dose = band.dose_gy
            p5, p50, p95 = band.volume_pct_p5, band.volume_pct_p50, band.volume_pct_p95
            if len(dose) == 0:
                continue
            colour = colours.get(name, (0.8, 0.8, 0.8))
            # Light shading (overlapping targets stay readable), edges in the structure colour.
            self.axes.fill_between(dose, p5, p95, color=colour, alpha=0.14, linewidth=0)
            for edge in (p5, p95):
                self.axes.plot(dose, edge, color=colour, linewidth=0.6, alpha=0.7)
            self.axes.plot(dose, p50, color=colour, linewidth=1.1, linestyle=":")
            self.bands[name] = (dose, p5, p50, p95)
            above = dose[p95 > 0.05]
            if above.size:
                top = max(top, float(above[-1]))
        return top

    def _on_status(self, text: str) -> None:
        """While an edit is pending the banner says the curves are being updated.

        Only the banner (a QLabel over the canvas) is shown: the figure is not redrawn (a full
        matplotlib redraw costs 0.3–0.9 s, a visible stall when a drag starts).
        """
        if self.curves and "pending" in text and self.pending_label.isHidden():
            self.pending_label.show()
            self.pending_label.raise_()
