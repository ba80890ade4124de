"""Choose one series of a DICOM folder (only CT series can be chosen)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:  # pydicom (imported by the scanner) costs ~1 s at window start
    from planner.imaging.dicom_scan import ScanResult

__all__ = ["SeriesChooserDialog"]


class SeriesChooserDialog(QDialog):
    """Lists every series found in a DICOM folder; the largest CT series is preselected."""

    def __init__(self, scan: ScanResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.setObjectName("series_chooser")
        self.resize(900, 320)
        layout = QVBoxLayout(self)
        n_skipped = len(scan.skipped)
        intro = QLabel(
            f"{len(scan.series)} series found in {scan.root}"
            + (f"; {n_skipped} file(s) skipped (see the import report)" if n_skipped else "")
        )
        layout.addWidget(intro)
        self.table = QTableWidget(len(scan.series), 6, self)
        self.table.setHorizontalHeaderLabels(
            ["Modality", "Description", "Size", "Slices", "Orientation", "Series"]
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self._keys: list[str] = []
        largest = scan.largest_ct()
        select_row = 0
        for row, s in enumerate(scan.series):
            size = f"{s.columns}×{s.rows}" if s.rows else "—"
            cells = [s.modality, s.description, size, str(s.n_slices), s.orientation, s.key]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                item.setToolTip(s.summary())
                if not s.is_ct:
                    item.setFlags(Qt.ItemFlag.NoItemFlags)  # listed, not selectable
                self.table.setItem(row, col, item)
            self._keys.append(s.key)
            if largest is not None and s.key == largest.key:
                select_row = row
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectRow(select_row)
        self.table.doubleClicked.connect(self.accept)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def selected_key(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._keys[rows[0].row()] if rows else None
