"""The import report: every warning about the loaded CT first, then the loader's full report."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QVBoxLayout, QWidget

__all__ = ["ImportReportDialog", "import_report_text"]


def import_report_text(
    warnings: Sequence[str], report_lines: Sequence[str], failed_lines: Sequence[str] = ()
) -> str:
    """The dialog's text: warnings (numbered), the import report, the last refused import."""
    parts: list[str] = []
    if warnings:
        parts.append(f"Warnings ({len(warnings)}):")
        parts += [f"  {n}. {w}" for n, w in enumerate(warnings, start=1)]
    if report_lines:
        parts += ([""] if parts else []) + ["Import report:"] + [f"  {x}" for x in report_lines]
    if failed_lines:
        parts += ([""] if parts else []) + ["Last refused import:"]
        parts += [f"  {x}" for x in failed_lines]
    return "\n".join(parts) if parts else "Nothing loaded yet."


class ImportReportDialog(QDialog):
    """Read-only, selectable text (so it can be copied into a report or a ticket)."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import report")
        self.setObjectName("import_report")
        self.resize(860, 480)
        layout = QVBoxLayout(self)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setPlainText(text)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
