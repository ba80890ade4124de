"""Export dialog (issue 14): the same choices as ``seedplan export`` — PDF, CSV, RTSTRUCT,
RTPLAN, RTDOSE, the output folder and *replace files SeedPlan did not write* (``--force``) —
run by :func:`planner.export.export.export_plan` off the GUI thread with progress and cancel,
then a summary of what was written where (one line per file: kind, path, size) and every
warning. A refused folder or bad input is one line in the dialog, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from app.gui.dialogs.task_progress import TaskRunner
from dose.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    from app.gui.window_protocols import SessionWindow

__all__ = ["KIND_LABELS", "ExportDialog"]

#: The kinds of ``seedplan export`` (``--pdf`` …), in its order, with what each writes.
KIND_LABELS: dict[str, str] = {
    "pdf": "PDF plan summary and loading sheet",
    "csv": "CSV seeds, needles, loading sheet; metrics.json",
    "rtstruct": "DICOM RTSTRUCT (structures)",
    "rtplan": "DICOM RT Plan (brachy: seeds, needles, source)",
    "rtdose": "DICOM RTDOSE (dose grid, Gy)",
}


class ExportDialog(QDialog):
    """Choose what to export and where; export; see what was written (module docstring)."""

    def __init__(self, main: SessionWindow) -> None:
        super().__init__(main)
        self.setObjectName("export_dialog")
        self.setWindowTitle("Export plan")
        self.main = main
        self.summary_obj: Any = None
        layout = QVBoxLayout(self)

        folder_row = QHBoxLayout()
        self.folder_edit = QLineEdit(self._default_folder())
        self.folder_edit.setObjectName("export_folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(QLabel("Folder"))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)

        box = QGroupBox("Export")
        grid = QGridLayout(box)
        self.kind_boxes: dict[str, QCheckBox] = {}
        for row, (kind, text) in enumerate(KIND_LABELS.items()):
            check = QCheckBox(f"{kind.upper() if kind in ('pdf', 'csv') else kind}: {text}")
            check.setChecked(True)
            check.toggled.connect(self._update_buttons)
            grid.addWidget(check, row, 0)
            self.kind_boxes[kind] = check
        layout.addWidget(box)
        self.force_box = QCheckBox("Replace files of the same name that SeedPlan did not write")
        self.force_box.setToolTip(
            "seedplan export --force. Files of an earlier SeedPlan export, unchanged since, "
            "are always replaced."
        )
        layout.addWidget(self.force_box)

        self.runner = TaskRunner()
        self.runner.state_changed.connect(self._update_buttons)
        layout.addWidget(self.runner)
        self.summary = QPlainTextEdit()
        self.summary.setObjectName("export_summary")
        self.summary.setReadOnly(True)
        self.summary.setPlaceholderText("What was written, and where, appears here.")
        layout.addWidget(self.summary, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self.resize(720, 520)
        self._update_buttons()

    # ------------------------------------------------------------------ choices
    def _default_folder(self) -> str:
        doc = self.main.session.document
        if doc is not None and doc.path is not None:
            return str(doc.path.with_suffix("")) + "_export"
        return str(Path.home() / "seedplan_export")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder")
        if folder:
            self.folder_edit.setText(folder)

    def kinds(self) -> list[str]:
        """The chosen kinds, in ``seedplan export``'s order."""
        return [k for k, box in self.kind_boxes.items() if box.isChecked()]

    def set_kinds(self, kinds: list[str] | tuple[str, ...]) -> None:
        for kind, box in self.kind_boxes.items():
            box.setChecked(kind in kinds)

    def _update_buttons(self, *_args: object) -> None:
        self.export_button.setEnabled(not self.runner.busy and bool(self.kinds()))

    def _verification_record(self) -> Any:
        """The verification the report shows: the one the post-op mode holds (with its review
        edits), else None (the export then shows the plan's own record, if any)."""
        workflow = getattr(self.main, "workflow", None)
        window = getattr(workflow, "postop_window", None)
        review = getattr(window, "review", None)
        postop_ct = getattr(window, "postop_ct", None)
        if review is None or postop_ct is None:
            return None
        from planner.postop.record import verification_record

        return verification_record(
            review.verification,
            self.main.session.document.plan,
            postop_ct,
            intraop=getattr(window, "intraop", None),
            intraop_counts=getattr(window, "intraop_counts", None),
        )

    # ------------------------------------------------------------------ export
    def start_export(self) -> bool:
        """Export in the background; False when nothing can start (message shown)."""
        doc, ct = self.main.session.document, self.main.session.volume
        if doc is None:
            self.runner.label.setText("No plan is open")
            return False
        kinds = self.kinds()
        if not kinds:
            self.runner.label.setText("Choose at least one export")
            return False
        folder = self.folder_edit.text().strip()
        if not folder:
            self.runner.label.setText("Choose a folder")
            return False
        plan, force = doc.plan, self.force_box.isChecked()
        verification = self._verification_record()
        self.summary.clear()

        def task(progress: ProgressFn, cancel: CancelFn) -> Any:
            from planner.export.export import export_plan

            return export_plan(
                plan,
                ct,
                Path(folder).expanduser(),
                kinds=kinds,
                force=force,
                progress=progress,
                cancel=cancel,
                verification=verification,
            )

        return self.runner.run(
            task, self._on_exported, f"Exporting {', '.join(kinds)}…", on_failed=self._failed
        )

    def _on_exported(self, summary: Any) -> None:
        self.summary_obj = summary
        lines = [f"Written to {summary.out_dir}:", *summary.lines()]
        if summary.warnings:
            lines += ["", "Warnings:"] + [f"⚠ {w}" for w in summary.warnings]
        self.summary.setPlainText("\n".join(lines))
        self.runner.label.setText(f"{len(summary.files)} files written to {summary.out_dir}")

    def _failed(self, _exc: BaseException) -> None:
        self.summary.setPlainText(f"Nothing more was written: {self.runner.label.text()}")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        self.runner.wait(10.0)
        super().closeEvent(event)
