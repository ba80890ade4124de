"""Auto plan dialog (issue 12): the options of ``seedplan autoplan``, progress and cancel, the
result's numbers, and *Apply* as **one undo step**.

:func:`planner.optimise.autoplan.autoplan` runs off the GUI thread on the plan as it was when
*Plan* was pressed; it never changes the document. *Apply* runs the result's commands
(``SetNeedlesAndSeeds``, ``SetGoals``) in one ``document.transaction("Auto plan")``, so one
Undo restores the needles, seeds and goals as they were. A result computed for an older state
of the plan (the plan was edited meanwhile) is not applied: plan again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from app.gui.dialogs.task_progress import TaskRunner
from dose.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    from app.gui.window_protocols import SessionWindow

__all__ = ["AutoplanDialog", "result_lines"]

APPROACHES = ("posterolateral", "posterior", "any")


def result_lines(result: Any) -> list[str]:
    """What the user reads before applying: counts, strength, key metrics, goals, time."""
    d = result.dosimetry
    out = [
        f"{len(result.plan.needles)} needles, {len(result.plan.seeds)} seeds, total "
        f"{d.seeds.total_strength_u:.1f} U at implant; {result.seconds:.1f} s, "
        f"{result.rounds} round(s), {d.formalism.upper()} formalism",
    ]
    for name, m in d.metrics.items():
        values = m.to_dict()
        if "d90_gy" in values:
            out.append(
                f"{name}: D90 {values['d90_gy']:.1f} Gy, V100 {values['v100_percent']:.1f} %, "
                f"V150 {values['v150_percent']:.1f} %"
            )
        elif "d0_1cc_gy" in values:
            out.append(
                f"{name}: D0.1 cm³ {values['d0_1cc_gy']:.1f} Gy, Dmax (0.03 cm³) "
                f"{values['dmax_0_03cc_gy']:.1f} Gy"
            )
    for g in d.goal_results:
        value = "—" if g.value != g.value else f"{g.value:.1f}"
        out.append(f"goal {g.label}: {value} → {g.status}")
    if result.robust is not None:
        for metric, pct in result.robust.percentiles().items():
            text = ", ".join(f"{k} {v:.1f}" for k, v in pct.items() if isinstance(v, (int, float)))
            out.append(f"robustness {metric}: {text}")
    warned = sum(g.status == "warn" for g in d.goal_results)
    if result.feasible:
        out.append("every goal met" + (f" ({warned} within 5 % of its limit)" if warned else ""))
    else:
        out.append("NOT met: " + "; ".join(result.failed_goals))
    out += [f"note: {n}" for n in result.notes]
    return out


class AutoplanDialog(QDialog):
    """Options → Plan (background) → result → Apply (one undo step). Module docstring."""

    def __init__(self, main: SessionWindow) -> None:
        super().__init__(main)
        self.setObjectName("autoplan_dialog")
        self.setWindowTitle("Auto plan")
        self.main = main
        self.result: Any = None
        self._state_counter = -1
        doc = main.session.document
        plan = doc.plan if doc is not None else None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.pd_gy = QDoubleSpinBox()
        self.pd_gy.setRange(1.0, 400.0)
        self.pd_gy.setSuffix(" Gy")
        self.pd_gy.setDecimals(1)
        rx = plan.prescription if plan is not None else None
        self.pd_gy.setValue(rx.dose_gy if rx is not None else 110.0)
        form.addRow("Prescription (D90 ≥)", self.pd_gy)
        self.approach = QComboBox()
        self.approach.addItems(APPROACHES)
        form.addRow("Approach", self.approach)
        self.parallel = QCheckBox("Parallel needles (template)")
        form.addRow("", self.parallel)
        self.bone = QComboBox()
        self.bone.addItems(["allow", "avoid"])
        self.bone.setToolTip("allow: transpedicular/costotransverse routes, bone costs; avoid")
        form.addRow("Bone", self.bone)
        self.no_pass = QListWidget()
        self.no_pass.setMaximumHeight(90)
        for s in plan.structures if plan is not None else ():
            if s.role == "target":
                continue
            item = QListWidgetItem(s.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if s.role == "oar" else Qt.CheckState.Unchecked
            )
            self.no_pass.addItem(item)
        form.addRow("Needles never pass", self.no_pass)
        self.keep_needles = QCheckBox("Keep the plan's needles (add seeds to them)")
        self.keep_needles.setEnabled(plan is not None and bool(plan.needles))
        form.addRow("", self.keep_needles)
        self.needle_spacing = self._spin(10.0, 4.0, 20.0, " mm")
        form.addRow("Needle spacing", self.needle_spacing)
        self.seed_spacing = self._spin(10.0, 5.0, 15.0, " mm")
        form.addRow("Seed spacing", self.seed_spacing)
        self.max_needles = QSpinBox()
        self.max_needles.setRange(1, 100)
        self.max_needles.setValue(30)
        self.max_needles.setSuffix(" needles")
        form.addRow("At most", self.max_needles)
        self.robust = QCheckBox("Robust to needle placement errors (slower)")
        form.addRow("", self.robust)
        self.time_budget = self._spin(10.0, 2.0, 600.0, " s")
        self.time_budget.setSingleStep(5.0)
        self.time_budget.setToolTip(
            "Every phase stops at this time and the best plan that keeps the cord limit is "
            "kept (the result says when the budget cut it short); a robust run gets 1.5 ×"
        )
        form.addRow("Time budget", self.time_budget)
        layout.addLayout(form)
        self.runner = TaskRunner()
        self.runner.state_changed.connect(self._update_buttons)
        layout.addWidget(self.runner)
        self.result_text = QPlainTextEdit()
        self.result_text.setObjectName("autoplan_result")
        self.result_text.setReadOnly(True)
        self.result_text.setPlaceholderText("The proposed plan's numbers appear here.")
        layout.addWidget(self.result_text, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.plan_button = QPushButton("Plan")
        self.plan_button.setDefault(True)
        self.plan_button.clicked.connect(self.start)
        self.apply_button = QPushButton("Apply (one undo step)")
        self.apply_button.clicked.connect(self.apply)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        for b in (self.plan_button, self.apply_button, close):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.resize(560, 640)
        self._update_buttons()

    @staticmethod
    def _spin(value: float, lo: float, hi: float, suffix: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setSingleStep(0.5)
        spin.setSuffix(suffix)
        spin.setValue(value)
        return spin

    def options(self) -> Any:
        """The :class:`~planner.optimise.autoplan.AutoplanOptions` the controls say."""
        from planner.optimise.autoplan import AutoplanOptions

        no_pass = tuple(
            self.no_pass.item(i).text()
            for i in range(self.no_pass.count())
            if self.no_pass.item(i).checkState() == Qt.CheckState.Checked
        )
        return AutoplanOptions(
            pd_gy=self.pd_gy.value(),
            approach=self.approach.currentText(),
            parallel=self.parallel.isChecked(),
            bone=self.bone.currentText(),  # type: ignore[arg-type]
            no_pass=no_pass,
            keep_needles=self.keep_needles.isChecked(),
            needle_spacing_mm=self.needle_spacing.value(),
            seed_spacing_mm=self.seed_spacing.value(),
            max_needles=self.max_needles.value(),
            robust=self.robust.isChecked(),
            time_budget_s=self.time_budget.value(),
        )

    def _update_buttons(self, *_args: object) -> None:
        busy = self.runner.busy
        self.plan_button.setEnabled(not busy)
        self.apply_button.setEnabled(not busy and self.result is not None)

    def start(self) -> bool:
        """Auto-plan the current plan in the background (False: nothing started)."""
        doc, ct = self.main.session.document, self.main.session.volume
        if doc is None:
            self.runner.label.setText("No plan is open")
            return False
        plan, options = doc.plan, self.options()
        self._state_counter = doc.state_counter
        self.result = None
        self.result_text.clear()

        def task(progress: ProgressFn, cancel: CancelFn) -> Any:
            from planner.optimise.autoplan import autoplan

            return autoplan(plan, ct, options=options, progress=progress, cancel=cancel)

        return self.runner.run(task, self._on_result, "Auto-planning…")

    def _on_result(self, result: Any) -> None:
        self.result = result
        self.result_text.setPlainText("\n".join(result_lines(result)))
        self._update_buttons()

    def apply(self) -> bool:
        """Put the result into the plan as one undo step; False when it cannot be applied."""
        doc = self.main.session.document
        if self.result is None or doc is None:
            return False
        if doc.state_counter != self._state_counter:
            self.runner.label.setText(
                "The plan changed while auto-planning; this result is for an older state: "
                "plan again"
            )
            return False
        with doc.transaction("Auto plan"):
            for command in self.result.commands:
                doc.execute(command)  # type: ignore[arg-type]
        self._state_counter = doc.state_counter
        self.runner.label.setText(
            f"Applied: {len(doc.plan.needles)} needles, {len(doc.plan.seeds)} seeds "
            "(Edit → Undo restores the plan)"
        )
        self.result = None
        self._update_buttons()
        return True

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        self.runner.wait(15.0)
        super().closeEvent(event)
