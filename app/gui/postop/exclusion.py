"""What the post-op window never counts as a seed: the excluded metal and the painted region.

:class:`ExclusionTools` (owned by :class:`app.gui.postop.window.PostopWindow`):

* **Non-seed metal** the detection excluded (pedicle screws, rods, cement, needles left in) is
  outlined magenta on the view, numbered M1, M2 … as in the **Metal** tab (centre LPS mm,
  volume mm³, seed equivalents, why excluded; a click on a row moves the crosshair there); its
  voxels are found by :func:`app.gui.postop.overlays.metal_regions` in the background after the
  detection.
* **Exclusion region**: *Paint exclusion* (E) turns the left button on the view into a brush
  (radius in mm; a disc in the view plane, or a sphere) painting a region never searched for
  seeds (:class:`app.gui.postop.overlays.ExclusionMask`, the planning brush's footprint
  :func:`planner.structures.paint.stroke`); it is drawn white and hatched, each stroke and
  each *Clear exclusion* is one step of its own undo (*Undo exclusion* / *Redo exclusion*),
  and *Detect & verify* passes it to the detection (``verify_plan(..., exclude=mask)``):
  seeds found inside it before are gone after the next detection. The region is on the
  post-op CT's grid and is dropped when another post-op CT is opened.
* **Kept in a file**: *Save exclusion…* writes the region as a mask on the post-op CT's grid
  (``.nrrd``, ``.nii.gz``, ``.nii`` or ``.mha``; 1 = excluded), the file
  ``seedplan detect|verify --exclude MASK`` reads; atomic, never over the post-op CT, the
  planning CT or the plan (:mod:`app.gui.postop.exclusion_file`). *Open exclusion…* reads
  such a mask (or any mask ``--exclude`` reads) as the region, one step of its undo; a mask of
  another grid is refused with a message stating both grids, the region unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.gui.postop.actions import make_action
from app.gui.postop.case import PostopCase
from app.gui.postop.exclusion_file import (
    MASK_SUFFIXES,
    load_exclusion_mask,
    save_exclusion_mask,
)
from app.gui.postop.overlays import ExclusionMask, MaskOutlineLayer, MaskRegion
from app.gui.postop.panels import MetalTable
from app.gui.tools.brush import BrushCursor
from dose.errors import InputError
from dose.geometry import GridGeometry
from planner.imaging.paths import IMAGE_SUFFIXES
from planner.postop.detection.detect import MetalObject

if TYPE_CHECKING:
    from app.gui.views.slice_view import SliceView
    from app.gui.window_protocols import SessionWindow

__all__ = ["EXCLUSION_RGB", "METAL_RGB", "ExclusionTools", "ExclusionWindow"]

#: Colours (RGB 0-1) of the excluded metal's outline and of the painted exclusion region.
METAL_RGB = (1.0, 0.2, 1.0)
EXCLUSION_RGB = (1.0, 1.0, 1.0)
_METAL_NOTE_BEFORE = (
    "Detect & verify lists here the non-seed metal it excluded (pedicle screws, rods, cement, "
    "needles left in), outlined magenta on the view."
)


class ExclusionWindow(PostopCase, Protocol):
    """What the exclusion tools use of the post-op window besides the case: the main window
    (may a dialog be shown?), the post-op view they paint and draw on, a toolbar row of their
    own, and the actions' update."""

    main: SessionWindow
    view: SliceView

    def addToolBarBreak(self) -> None: ...  # noqa: N802 (Qt)

    def addToolBar(self, title: str) -> QToolBar: ...  # noqa: N802 (Qt)

    def update_actions(self, *_args: object) -> None: ...


class ExclusionTools(QObject):
    """The Metal tab, the metal outlines and the exclusion brush of ``window`` (module
    docstring); an event filter on ``window.view`` while painting."""

    def __init__(self, window: ExclusionWindow) -> None:
        super().__init__(window)
        self.window = window
        view, session = window.view, window.postop_session
        #: The painted exclusion region (on the post-op CT's grid; None before a CT is open).
        self.mask: ExclusionMask | None = None
        #: The excluded metal's voxels, one per ``detection.metal`` object (None: not found).
        self.metal: list[MaskRegion | None] = []
        #: Volume (mm³) of the exclusion region the verification shown was detected with.
        self.verified_mm3 = 0.0
        self._painting_last: NDArray[np.float64] | None = None
        self.metal_layer = MaskOutlineLayer(
            view, session, lambda: self.metal, METAL_RGB, line_width=2.5
        )
        view.layers.append(self.metal_layer)
        self.exclusion_layer = MaskOutlineLayer(
            view,
            session,
            lambda: [self.mask.region() if self.mask is not None else None],
            EXCLUSION_RGB,
            hatch=True,
            line_width=1.5,
        )
        view.layers.append(self.exclusion_layer)
        self._brush_cursor = BrushCursor(view)
        self.metal_table = MetalTable()
        self.metal_table.cellClicked.connect(self._on_metal_clicked)
        self.metal_note = QLabel(_METAL_NOTE_BEFORE)
        self.metal_note.setObjectName("postop_metal_note")
        self.metal_note.setWordWrap(True)
        #: The Metal tab: what the list is, then the list.
        self.metal_page = QWidget()
        layout = QVBoxLayout(self.metal_page)
        layout.addWidget(self.metal_note)
        layout.addWidget(self.metal_table, 1)
        self._build_toolbar()
        view.installEventFilter(self)

    def _build_toolbar(self) -> None:
        window = self.window
        window.addToolBarBreak()  # a row of its own: the post-op toolbar fills the first
        bar = window.addToolBar("Exclusion region")
        bar.setObjectName("postop_exclusion_toolbar")
        self.paint_action = make_action(
            window,
            "Paint exclusion",
            lambda: window.update_actions(),
            "E",
            "Left button paints a region never searched for seeds (a screw, a needle left in)",
        )
        self.paint_action.setCheckable(True)
        self.paint_action.toggled.connect(self._paint_toggled)
        self.radius_spin = QDoubleSpinBox()
        self.radius_spin.setObjectName("postop_exclusion_radius")
        self.radius_spin.setRange(0.5, 50.0)
        self.radius_spin.setValue(5.0)
        self.radius_spin.setSingleStep(0.5)
        self.radius_spin.setPrefix("radius ")
        self.radius_spin.setSuffix(" mm")
        self.radius_spin.setToolTip("Exclusion brush radius")
        self.sphere_check = QCheckBox("Sphere")
        self.sphere_check.setToolTip("Paint a 3-D sphere instead of a disc in the view plane")
        self.undo_action = make_action(
            window, "Undo exclusion", self.undo, None, "Undo the last exclusion stroke or clear"
        )
        self.redo_action = make_action(
            window, "Redo exclusion", self.redo, None, "Redo the exclusion stroke undone"
        )
        self.clear_action = make_action(
            window, "Clear exclusion", self.clear, None, "Remove the painted exclusion region"
        )
        self.save_action = make_action(
            window,
            "Save exclusion…",
            lambda: self.save_region(),
            None,
            "Save the exclusion region as a mask file (seedplan detect|verify --exclude reads it)",
        )
        self.open_action = make_action(
            window,
            "Open exclusion…",
            lambda: self.open_region(),
            None,
            "Open an exclusion mask saved before (on this post-op CT's grid)",
        )
        bar.addAction(self.paint_action)
        bar.addWidget(self.radius_spin)
        bar.addWidget(self.sphere_check)
        for a in (
            self.undo_action,
            self.redo_action,
            self.clear_action,
            self.save_action,
            self.open_action,
        ):
            bar.addAction(a)

    # ------------------------------------------------------------------ state
    def reset(self, geometry: GridGeometry) -> None:
        """A new post-op CT on ``geometry``: an empty region, no metal."""
        self.mask = ExclusionMask(geometry)
        self.metal = []

    def set_metal(self, metal: list[MaskRegion | None] | None) -> None:
        self.metal = list(metal) if metal is not None else []

    def mask_for_detection(self) -> NDArray[np.bool_] | None:
        """A copy of the painted region (z, y, x) for the detection; None when nothing is."""
        ex = self.mask
        if ex is None or ex.mask is None or ex.is_empty:
            return None
        return ex.mask.copy()

    def update_actions(self) -> None:
        ex = self.mask
        self.paint_action.setEnabled(ex is not None)
        self.undo_action.setEnabled(ex is not None and ex.can_undo)
        self.redo_action.setEnabled(ex is not None and ex.can_redo)
        self.clear_action.setEnabled(ex is not None and not ex.is_empty)
        self.save_action.setEnabled(ex is not None and not ex.is_empty)
        self.open_action.setEnabled(ex is not None)

    def refresh(self, metal_objects: list[MetalObject] | None) -> None:
        """Redraw both outlines and list ``metal_objects`` (None: none detected yet)."""
        self.metal_layer.update()
        self.exclusion_layer.update()
        self.metal_table.show_metal(metal_objects)
        if metal_objects is None:
            self.metal_note.setText(_METAL_NOTE_BEFORE)
        elif not metal_objects:
            self.metal_note.setText(
                "No non-seed metal excluded on this CT: no screw, rod, cement or needle left "
                "in was found."
            )
        else:
            n = len(metal_objects)
            self.metal_note.setText(
                f"{n} non-seed metal object{'s' if n > 1 else ''} excluded from the seeds "
                f"(M1{f' … M{n}' if n > 1 else ''}, outlined magenta on the view); click a row "
                "to show it."
            )

    def _on_metal_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self.metal_table.objects):
            centre = np.asarray(self.metal_table.objects[row].centre_mm, float)
            self.window.postop_session.set_crosshair(centre, snap=False)

    # ------------------------------------------------------------------ the region's file
    def _inputs(self) -> tuple[str | None, ...]:
        """Files a saved mask must never replace: the post-op CT, the planning CT, the plan."""
        w = self.window
        doc = w.document
        return tuple(
            p or None
            for p in (
                w.postop_ct.source_path if w.postop_ct is not None else None,
                w.planning_ct.source_path if w.planning_ct is not None else None,
                str(doc.path) if doc is not None and doc.path is not None else None,
            )
        )

    def _default_path(self) -> Path:
        post = self.window.postop_ct
        source = Path(post.source_path) if post is not None and post.source_path else None
        if source is None or not source.exists():
            return Path.home() / "exclusion.nrrd"
        stem = source.name.split(".")[0] or "postop"
        return source.parent / f"{stem}-exclusion.nrrd"

    def _error(self, title: str, message: str) -> None:
        """One line in the progress bar's message; a dialog too when the window asks."""
        self.window.runner.label.setText(message)
        if self.window.main.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self.window)
            box.setInformativeText("The exclusion region is unchanged.")
            box.exec()

    def save_region(self, path: str | Path | None = None, *, force: bool = False) -> Path | None:
        """Save the painted region as a mask file (module docstring); asks for the file when
        ``path`` is None. Returns the file written; None (the reason shown) when nothing was."""
        ex, post = self.mask, self.window.postop_ct
        if ex is None or ex.mask is None or ex.is_empty or post is None:
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self.window,
                "Save the exclusion region",
                str(self._default_path()),
                f"Exclusion masks ({' '.join('*' + s for s in MASK_SUFFIXES)})",
            )
            if not chosen:
                return None
            force = chosen.lower().endswith(MASK_SUFFIXES)  # the dialog asked to replace it
            path = chosen if force else chosen + ".nrrd"
        try:
            saved = save_exclusion_mask(
                ex.mask, post.geometry, path, inputs=self._inputs(), force=force
            )
        except InputError as exc:
            self._error("Cannot save the exclusion region", str(exc))
            return None
        volume_cm3 = ex.voxels * float(np.prod(post.geometry.spacing_mm)) / 1000.0
        self.window.runner.label.setText(
            f"Exclusion region ({volume_cm3:.1f} cm³) saved to {saved}; "
            f"seedplan detect|verify --exclude {saved.name} reads it"
        )
        return saved

    def open_region(self, path: str | Path | None = None) -> bool:
        """Make the mask file ``path`` the exclusion region (one undo step); asks for the file
        when ``path`` is None. False (the reason shown) when it is not on this CT's grid,
        cannot be read or holds no voxel."""
        ex, post = self.mask, self.window.postop_ct
        if ex is None or post is None:
            return False
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self.window,
                "Open an exclusion region",
                str(self._default_path().parent),
                f"Masks ({' '.join('*' + s for s in IMAGE_SUFFIXES)});;All files (*)",
            )
            if not chosen:
                return False
            path = chosen
        try:
            mask = load_exclusion_mask(path, post)
        except InputError as exc:
            self._error("Cannot open the exclusion region", str(exc))
            return False
        if not mask.any():
            self._error("Cannot open the exclusion region", f"{path}: the mask excludes no voxel")
            return False
        ex.replace(mask)
        self._changed()
        volume_cm3 = float(mask.sum()) * float(np.prod(post.geometry.spacing_mm)) / 1000.0
        self.window.runner.label.setText(
            f"Exclusion region ({volume_cm3:.1f} cm³) opened from {path}; "
            "Detect & verify uses it (Undo exclusion gives back the one before)"
        )
        return True

    # ------------------------------------------------------------------ painting
    def _changed(self) -> None:
        self.exclusion_layer.update()
        self.window.update_actions()

    def undo(self) -> None:
        if self.mask is not None and self.mask.undo():
            self._changed()

    def redo(self) -> None:
        if self.mask is not None and self.mask.redo():
            self._changed()

    def clear(self) -> None:
        if self.mask is not None and self.mask.clear():
            self._changed()

    def _paint_toggled(self, on: bool) -> None:
        if not on:
            self._painting_last = None
            if self.mask is not None:
                self.mask.end_stroke()
            self._brush_cursor.show(None, self.radius_spin.value())
        self.window.update_actions()

    def paint(self, path_mm: NDArray[np.float64]) -> bool:
        """Paint the exclusion brush along ``path_mm`` ``(n, 3)`` LPS mm (a disc in the view
        plane, or spheres); True when a voxel changed."""
        ex = self.mask
        if ex is None:
            return False
        normal = None if self.sphere_check.isChecked() else self.window.view.normal
        changed = ex.paint(path_mm, self.radius_spin.value(), plane_normal=normal)
        if changed:
            self._changed()
        return changed

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """While *Paint exclusion* is on, the left button on the view paints (press, drag,
        release = one undo step); everything else reaches the view."""
        view = self.window.view
        if watched is not view or not self.paint_action.isChecked():
            return False
        kind = event.type()
        if kind not in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseMove,
            QEvent.Type.MouseButtonRelease,
        ):
            return False
        assert isinstance(event, QMouseEvent)
        if self.window.postop_session.volume is None or self.mask is None:
            return False
        pos = event.position()
        xyz = view.display_to_world(pos.x(), pos.y())
        left = Qt.MouseButton.LeftButton
        if kind == QEvent.Type.MouseMove:
            self._brush_cursor.show(xyz, self.radius_spin.value())
            if self._painting_last is None or not event.buttons() & left:
                return False  # a hover, or another button's drag: the view's
            self.paint(np.vstack([self._painting_last, xyz]))
            self._painting_last = xyz
            return True
        if event.button() != left or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False
        if kind == QEvent.Type.MouseButtonPress:
            self.mask.begin_stroke()
            self._painting_last = xyz
            self.paint(np.vstack([xyz, xyz]))
        else:
            self._painting_last = None
            self.mask.end_stroke()
            self.window.update_actions()
        return True

    def close(self) -> None:
        """Window teardown: stop filtering the view, drop the cursor and both outlines."""
        self.window.view.removeEventFilter(self)
        self._brush_cursor.remove()
        self.exclusion_layer.close()
        self.metal_layer.close()
