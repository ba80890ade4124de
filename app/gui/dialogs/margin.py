"""Dialogs of the Contour menu: a margin in mm (isotropic or per LPS axis) and a boolean."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QWidget,
)

__all__ = ["BooleanDialog", "MarginDialog"]


def _mm_spin(value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 50.0)
    spin.setDecimals(1)
    spin.setSingleStep(0.5)
    spin.setSuffix(" mm")
    spin.setValue(value)
    return spin


class MarginDialog(QDialog):
    """Source, expand/shrink, margin (mm; per axis x/y/z along LPS as an option), target."""

    def __init__(self, names: list[str], current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Margin")
        form = QFormLayout(self)
        self.source = QComboBox()
        self.source.addItems(names)
        if current in names:
            self.source.setCurrentText(current)
        form.addRow("Structure", self.source)
        self.direction = QComboBox()
        self.direction.addItems(["Expand", "Shrink"])
        form.addRow("", self.direction)
        self.margin = _mm_spin(5.0)
        form.addRow("Margin", self.margin)
        self.per_axis = QCheckBox("Per axis (x: R–L, y: A–P, z: I–S)")
        form.addRow("", self.per_axis)
        row = QHBoxLayout()
        self.axes = [_mm_spin(5.0) for _ in range(3)]
        for spin in self.axes:
            spin.setEnabled(False)
            row.addWidget(spin)
        form.addRow("x, y, z", row)
        self.per_axis.toggled.connect(self._per_axis)
        self.target = QLineEdit()
        self.target.setPlaceholderText("(the same structure)")
        form.addRow("Into", self.target)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _per_axis(self, on: bool) -> None:
        self.margin.setEnabled(not on)
        for spin in self.axes:
            spin.setEnabled(on)

    def values(self) -> tuple[str, float | tuple[float, float, float], bool, str | None]:
        """(source, margin mm or (x, y, z) mm, shrink, target name or None)."""
        if self.per_axis.isChecked():
            x, y, z = (s.value() for s in self.axes)
            margin: float | tuple[float, float, float] = (x, y, z)
        else:
            margin = self.margin.value()
        target = self.target.text().strip() or None
        return self.source.currentText(), margin, self.direction.currentIndex() == 1, target


class BooleanDialog(QDialog):
    """A op B into a target (A by default)."""

    OPS = ("union", "intersect", "subtract", "xor")

    def __init__(self, names: list[str], current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Boolean")
        form = QFormLayout(self)
        self.a = QComboBox()
        self.a.addItems(names)
        if current in names:
            self.a.setCurrentText(current)
        self.op = QComboBox()
        self.op.addItems(["A ∪ B (union)", "A ∩ B (intersect)", "A − B (subtract)", "A ⊕ B (xor)"])
        self.b = QComboBox()
        self.b.addItems(names)
        self.target = QLineEdit()
        self.target.setPlaceholderText("(A)")
        form.addRow("A", self.a)
        form.addRow("", self.op)
        form.addRow("B", self.b)
        form.addRow("Into", self.target)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[str, str, str, str | None]:
        """(op, A, B, target or None)."""
        op = self.OPS[self.op.currentIndex()]
        return op, self.a.currentText(), self.b.currentText(), self.target.text().strip() or None
