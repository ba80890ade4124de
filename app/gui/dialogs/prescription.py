"""The prescription and seed dialog: PD, target, seed model, strength (U or mCi), dates.

OK applies :class:`~planner.plan.commands.SetPrescription` and
:class:`~planner.plan.commands.SetSource` as one undo step. The strength is entered in U
(air-kerma strength S_K) or mCi (apparent activity); the other unit is shown beside it with
1.270 U/mCi (I-125), and with both dates the strength at implant after decay (T½ 59.40 d).
A value the plan refuses (outside the plausible ranges) is shown in the dialog, which stays
open.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from dose.errors import InputError
from dose.units import U_PER_MCI_I125
from planner.plan.commands import SetPrescription, SetSource
from planner.plan.model import Prescription, SourceSpec

if TYPE_CHECKING:
    from app.gui.planning_ui import PlanningUI

__all__ = ["PrescriptionDialog"]


def _qdate(d: date | None) -> QDate:
    d = d or date.today()
    return QDate(d.year, d.month, d.day)


def _pydate(q: QDate) -> date:
    return date(q.year(), q.month(), q.day())


class PrescriptionDialog(QDialog):
    """Edit the plan's prescription and source (module docstring)."""

    def __init__(self, planning: PlanningUI, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.planning = planning
        self.setWindowTitle("Prescription and seeds")
        self.setObjectName("prescription_dialog")
        plan = planning.plan
        assert plan is not None
        form = QFormLayout(self)
        rx, src = plan.prescription, plan.source
        self.pd = QDoubleSpinBox()
        self.pd.setObjectName("pd_gy")
        self.pd.setRange(1.0, 400.0)
        self.pd.setDecimals(1)
        self.pd.setSuffix(" Gy")
        self.pd.setValue(rx.dose_gy if rx else 110.0)
        form.addRow("Prescription (D∞, total dose)", self.pd)
        self.target = QComboBox()
        self.target.setObjectName("target")
        for s in plan.structures:
            if s.role == "target" or s.role == "other":
                self.target.addItem(f"{s.name} ({s.role})", s.id)
        if rx is not None:
            self.target.setCurrentIndex(max(self.target.findData(rx.structure_id), 0))
        form.addRow("Prescribed to", self.target)
        self.metric = QComboBox()
        self.metric.setObjectName("metric")
        self.metric.addItems(["D90", "D100", "D95", "D98"])
        if rx is not None:
            self.metric.setCurrentText(rx.metric)
        form.addRow("Metric", self.metric)
        from dose.sources import known_models

        self.model = QComboBox()
        self.model.setObjectName("model")
        self.model.addItems(known_models())
        self.model.setCurrentText(src.model_id if src else "6711")
        form.addRow("Seed model", self.model)
        self.unit = QComboBox()
        self.unit.setObjectName("unit")
        self.unit.addItems(["U", "mCi"])
        self.strength = QDoubleSpinBox()
        self.strength.setObjectName("strength")
        self.strength.setDecimals(3)
        self.strength.setRange(0.0, 100.0)
        if src is not None and src.strength_u is not None:
            self.unit.setCurrentText(src.entered_as)
            value = src.strength_u if src.entered_as == "U" else src.strength_u / U_PER_MCI_I125
            self.strength.setValue(value)
        else:
            self.strength.setValue(0.5)
        form.addRow("Strength per seed unit", self.unit)
        form.addRow("Strength per seed (at calibration)", self.strength)
        self.dated = QCheckBox("Apply decay from calibration to implant")
        self.dated.setObjectName("dated")
        self.calibration = QDateEdit(_qdate(src.calibration_date if src else None))
        self.implant = QDateEdit(_qdate(src.implant_date if src else None))
        for w in (self.calibration, self.implant):
            w.setDisplayFormat("yyyy-MM-dd")
            w.setCalendarPopup(True)
        self.dated.setChecked(bool(src and src.calibration_date))
        form.addRow(self.dated)
        form.addRow("Calibration date", self.calibration)
        form.addRow("Implant date", self.implant)
        self.other = QLabel("")
        self.other.setObjectName("strength_other_unit")
        form.addRow("", self.other)
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setStyleSheet("color: #ff7766")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        for sig in (
            self.strength.valueChanged,
            self.unit.currentTextChanged,
            self.dated.toggled,
            self.calibration.dateChanged,
            self.implant.dateChanged,
        ):
            sig.connect(self._update_other)
        self._update_other()

    def strength_u(self) -> float:
        v = float(self.strength.value())
        return v if self.unit.currentText() == "U" else v * U_PER_MCI_I125

    def _update_other(self, *_args: object) -> None:
        u = self.strength_u()
        text = f"= {u:.3f} U = {u / U_PER_MCI_I125:.3f} mCi per seed (1.270 U/mCi)"
        self.calibration.setEnabled(self.dated.isChecked())
        self.implant.setEnabled(self.dated.isChecked())
        if self.dated.isChecked():
            try:
                from dose.source_strength import decay_between

                f = decay_between(
                    _pydate(self.calibration.date()), _pydate(self.implant.date())
                ).factor
                text += f"; at implant {u * f:.3f} U ({u * f / U_PER_MCI_I125:.3f} mCi), × {f:.3f}"
            except InputError as exc:
                text += f"; {exc}"
        self.other.setText(text)

    def values(self) -> tuple[Prescription, SourceSpec]:
        """The prescription and source entered (ValueError / InputError when refused)."""
        from dose.sources import load_model

        sid = self.target.currentData()
        if sid is None:
            raise ValueError("the plan has no target structure to prescribe to")
        rx = Prescription(float(self.pd.value()), sid, self.metric.currentText())
        model = load_model(self.model.currentText())
        dated = self.dated.isChecked()
        src = SourceSpec(
            model.model_id,
            model.checksum,
            self.strength_u(),
            "mCi" if self.unit.currentText() == "mCi" else "U",
            _pydate(self.calibration.date()) if dated else None,
            _pydate(self.implant.date()) if dated else None,
        )
        return rx, src

    def apply(self) -> None:
        doc = self.planning.document
        if doc is None:
            self.reject()
            return
        try:
            rx, src = self.values()
            with doc.transaction("Set prescription and seeds"):
                doc.execute(SetPrescription(rx))
                doc.execute(SetSource(src))
        except (ValueError, InputError) as exc:
            self.error.setText(str(exc))
            return
        self.accept()
