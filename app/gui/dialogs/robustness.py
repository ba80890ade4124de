"""Robustness dialog (Workflow → Robustness…, issue 12): how the plan holds up when the needles
do not land where planned.

The needle error model (entry, angle and depth errors as mean ± SD of their magnitudes, and a
per-seed jitter, and the longest lever of the angle error ``max_lever_mm``; defaults from 318
CT-guided needles, :class:`~planner.optimise.robustness.NeedleErrorModel`) and the number of
samples N are set here; *Run* evaluates the plan as it
was when pressed, off the GUI thread (:func:`planner.optimise.robustness.robustness`, the same
function as ``seedplan robustness``), with progress and Cancel. The result — target D90 and
V100 and cord D0.1 cm³ as planned and as 5th / median / 95th percentile — is listed here and
handed to the planning controller (:meth:`app.gui.planning_ui.PlanningUI.set_robustness`):
the metrics panel shows it beside the metrics and the DVH panel draws the 5th–95th percentile
band and the median curve of each structure. A result for an older state of the plan (edited
while it ran) is not shown: run it again. Nothing here changes the plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs.task_progress import TaskRunner
from dose.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    from app.gui.window_protocols import SessionWindow
    from planner.optimise.robustness import NeedleErrorModel, RobustnessResult

__all__ = ["DEFAULT_SAMPLES", "RobustnessDialog", "robustness_lines"]

DEFAULT_SAMPLES = 100
_NAMES = {
    "d90_gy": ("D90", "Gy"),
    "v100_percent": ("V100", "%"),
    "cord_d0_1cc_gy": ("D0.1 cm³", "Gy"),
}


def robustness_lines(result: RobustnessResult) -> list[str]:
    """What the user reads: per metric, planned value and 5th / median / 95th percentile."""
    n = int(result.d90_gy.size)
    out = [f"{n} samples of needle placement errors, {result.seconds:.1f} s"]
    for key, pct in result.percentiles().items():
        label, unit = _NAMES.get(key, (key, ""))
        who = result.cord if key.startswith("cord") else result.target
        nominal = result.nominal.get(key, float("nan"))
        if pct["median"] is None:
            out.append(f"{who} {label}: not available")
            continue
        out.append(
            f"{who} {label}: planned {nominal:.1f} {unit}; 5th {pct['p5']:.1f}, "
            f"median {pct['median']:.1f}, 95th {pct['p95']:.1f} {unit}"
        )
    tip = result.tip_error_mm
    if tip.size:
        out.append(
            f"simulated lateral tip error {tip.mean():.1f} ± {tip.std():.1f} mm "
            "(measured on 318 needles: 4.4 ± 2.9 mm)"
        )
    out += [f"note: {note}" for note in result.notes]
    return out


class RobustnessDialog(QDialog):
    """Error model and N → Run (background, cancel) → result shown (module docstring)."""

    def __init__(self, main: SessionWindow) -> None:
        super().__init__(main)
        from planner.optimise.robustness import NeedleErrorModel

        self.setObjectName("robustness_dialog")
        self.setWindowTitle("Robustness to needle placement errors")
        self.main = main
        self.result: RobustnessResult | None = None
        self._state_counter = -1
        defaults = NeedleErrorModel()
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Each sample moves every needle by random entry, angle and depth errors (seeds "
            "move with their needle, plus a small jitter) and recomputes the dose (exact "
            "TG-43). Defaults: measured on 318 CT-guided needles (mean ± SD of the magnitude)."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.samples = QSpinBox()
        self.samples.setObjectName("robustness_samples")
        self.samples.setRange(5, 2000)
        self.samples.setValue(DEFAULT_SAMPLES)
        self.samples.setSuffix(" samples")
        self.samples.setToolTip("More samples: steadier percentiles, longer run (100 ≈ 10 s)")
        form.addRow("Samples (N)", self.samples)
        self.entry = self._pair(defaults.entry_mm, " mm", 20.0)
        form.addRow("Entry error", self.entry[0])
        self.angle = self._pair(defaults.angle_deg, " °", 20.0)
        form.addRow("Angle error", self.angle[0])
        self.depth = self._pair(defaults.depth_mm, " mm", 30.0)
        form.addRow("Depth error", self.depth[0])
        self.jitter = QDoubleSpinBox()
        self.jitter.setRange(0.0, 10.0)
        self.jitter.setDecimals(1)
        self.jitter.setSingleStep(0.5)
        self.jitter.setSuffix(" mm")
        self.jitter.setValue(defaults.seed_jitter_mm)
        self.jitter.setToolTip("Per seed, per axis (SD of a Gaussian)")
        form.addRow("Seed jitter", self.jitter)
        self.max_lever = QDoubleSpinBox()
        self.max_lever.setObjectName("robustness_max_lever")
        self.max_lever.setRange(0.0, 500.0)
        self.max_lever.setDecimals(0)
        self.max_lever.setSingleStep(5.0)
        self.max_lever.setSuffix(" mm")
        self.max_lever.setSpecialValueText("no cap")  # 0: the angle acts on the whole needle
        self.max_lever.setValue(defaults.max_lever_mm)
        self.max_lever.setToolTip(
            "The angle error moves the tip as on a needle at most this long: the tip is "
            "checked on CT and the needle corrected, so deeper tips do not stray further "
            "(55 mm gives the measured 4.4 mm mean lateral tip error; 0: no cap)"
        )
        form.addRow("Max. angle lever", self.max_lever)
        layout.addLayout(form)
        self.runner = TaskRunner()
        self.runner.state_changed.connect(self._update_buttons)
        layout.addWidget(self.runner)
        self.result_text = QPlainTextEdit()
        self.result_text.setObjectName("robustness_result")
        self.result_text.setReadOnly(True)
        self.result_text.setPlaceholderText(
            "The percentiles appear here, beside the metrics and as bands on the DVH."
        )
        layout.addWidget(self.result_text, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addWidget(self.run_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.resize(520, 520)
        self._update_buttons()

    @staticmethod
    def _pair(
        mean_sd: tuple[float, float], suffix: str, top: float
    ) -> tuple[QWidget, QDoubleSpinBox, QDoubleSpinBox]:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        spins = []
        for value, tip in zip(mean_sd, ("mean of the magnitude", "SD"), strict=True):
            spin = QDoubleSpinBox()
            spin.setRange(0.0, top)
            spin.setDecimals(1)
            spin.setSingleStep(0.5)
            spin.setSuffix(suffix)
            spin.setValue(value)
            spin.setToolTip(tip)
            spin.setMinimumWidth(100)
            spins.append(spin)
        lay.addWidget(spins[0])
        lay.addWidget(QLabel("±"))
        lay.addWidget(spins[1])
        lay.addStretch(1)
        return row, spins[0], spins[1]

    def model(self) -> NeedleErrorModel:
        """The error model the controls say."""
        from planner.optimise.robustness import NeedleErrorModel

        return NeedleErrorModel(
            entry_mm=(self.entry[1].value(), self.entry[2].value()),
            angle_deg=(self.angle[1].value(), self.angle[2].value()),
            depth_mm=(self.depth[1].value(), self.depth[2].value()),
            seed_jitter_mm=self.jitter.value(),
            max_lever_mm=self.max_lever.value(),
        )

    def _update_buttons(self, *_args: object) -> None:
        self.run_button.setEnabled(not self.runner.busy)

    def start(self) -> bool:
        """Evaluate the current plan in the background (False: nothing started)."""
        doc = self.main.session.document
        if doc is None:
            self.runner.label.setText("No plan is open")
            return False
        plan, model, samples = doc.plan, self.model(), self.samples.value()
        self._state_counter = doc.state_counter
        self.result = None
        self.result_text.clear()

        def task(progress: ProgressFn, cancel: CancelFn) -> Any:
            from planner.optimise.robustness import robustness

            return robustness(plan, samples=samples, model=model, progress=progress, cancel=cancel)

        return self.runner.run(task, self._on_result, f"Sampling {samples} placements…")

    def _on_result(self, result: RobustnessResult) -> None:
        self.result = result
        lines = robustness_lines(result)
        planning = getattr(self.main, "planning", None)
        shown = planning is not None and planning.set_robustness(result, self._state_counter)
        if shown:
            self.runner.label.setText("Done: shown beside the metrics and on the DVH")
        else:
            self.runner.label.setText(
                "The plan changed while sampling: this result is for an older state (run again)"
            )
            lines.insert(0, "(for an older state of the plan: not shown on the DVH)")
        self.result_text.setPlainText("\n".join(lines))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        self.runner.wait(15.0)
        super().closeEvent(event)
