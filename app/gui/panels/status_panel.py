"""The status bar: cursor and crosshair readouts (LPS mm + HU), load progress, dose engine.

Every position is written by :func:`planner.session.coordinates.format_lps_point`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton

from planner.session.coordinates import format_lps_point

__all__ = ["StatusPanel", "readout_text"]


def readout_text(what: str, xyz_mm: NDArray[np.float64], hu: float) -> str:
    """``"Cursor  x = 1.0 mm (L)  y = … (P)  z = … (S)  ·  35 HU"``."""
    hu_text = "outside the image" if math.isnan(hu) else f"{hu:.0f} HU"
    return f"{what}  {format_lps_point(xyz_mm)}  ·  {hu_text}"


class StatusPanel:
    """Builds and owns the widgets of ``bar`` (a QMainWindow's status bar)."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.probe_label = QLabel("")
        self.probe_label.setObjectName("probe_label")
        self.crosshair_label = QLabel("")
        self.crosshair_label.setObjectName("crosshair_label")
        bar.addWidget(self.probe_label, 1)
        bar.addWidget(self.crosshair_label, 1)
        self.engine_label = QLabel("")
        self.engine_label.setObjectName("engine_label")
        self.engine_busy = QProgressBar()
        self.engine_busy.setObjectName("engine_busy")
        self.engine_busy.setRange(0, 0)  # indeterminate: compile time is not predictable
        self.engine_busy.setFixedWidth(80)
        self.engine_busy.setTextVisible(False)
        self.engine_busy.setVisible(False)
        bar.addPermanentWidget(self.engine_label)
        bar.addPermanentWidget(self.engine_busy)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("load_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setFormat("%p%")
        self.progress_label = QLabel("")
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setObjectName("cancel_load")
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(w)
            w.setVisible(False)

    # ------------------------------------------------------------------ readouts
    def show_probe(self, xyz_mm: NDArray[np.float64] | None, hu: float) -> None:
        self.probe_label.setText("" if xyz_mm is None else readout_text("Cursor", xyz_mm, hu))

    def show_crosshair(self, xyz_mm: NDArray[np.float64] | None, hu: float) -> None:
        self.crosshair_label.setText(
            "" if xyz_mm is None else readout_text("Crosshair", xyz_mm, hu)
        )

    # ------------------------------------------------------------------ long work
    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress_bar.setValue(0)
        self.progress_label.setText(message)
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            w.setVisible(busy)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(round(1000 * fraction))
        if message:
            self.progress_label.setText(message)

    def set_engine_state(self, state: str, message: str) -> None:
        """Dose engine warm-up (see :mod:`app.gui.dose_warmup`)."""
        self.engine_label.setText(message)
        self.engine_label.setToolTip(
            "The TG-43 dose kernels are compiled in a separate process at start-up (only after "
            "an install or update), so the window never waits on a compile."
        )
        self.engine_busy.setVisible(state in ("compiling", "loading"))
