"""The planning half of the workstation: needles, seeds, live isodoses, DVH and metrics.

:func:`app.gui.planning_install.install_planning_ui` puts it on the main window: one
:class:`PlanningUI`, and around it the layers, tools, docks and Plan menu that read and edit the
plan through it. They see the window as a :class:`PlanningWindow` (``planning.window``).

:class:`PlanningUI` is the one object between the Qt-free plan and the planning widgets:

* it follows the session's :class:`~planner.plan.document.PlanDocument`: every edit, undo or
  redo (``doc.events.changed``) first updates the :class:`~planner.plan.live_dose.LiveDose`
  (fast incremental dose on the three views' slices), then emits ``events.plan_changed`` so
  the layers and panels redraw — all synchronously on the GUI thread, so the isodoses follow
  a dragged seed in the same event;
* the crosshair picks the slices of the live dose (``live.set_slice``);
* when an edit ends (the mouse is released, or 250 ms after a keyboard/table edit) the exact
  3-D dose, DVHs, metrics and goals (:func:`planner.plan.dosimetry.compute_plan_dosimetry`)
  are computed on a worker with cancel; a result is shown only if no edit happened since
  (``LiveDose.generation``), so a stale result never overwrites a newer one;
* the dose engine is touched only after ``window.dose_engine.when_ready`` (never a numba
  compile on the GUI thread); until then the views show the plan without dose.

Events (psygnal, GUI thread): ``plan_changed(plan or None)``, ``live_changed(views)``,
``exact_changed(PlanDosimetry or None)``, ``selection_changed()``, ``warnings_changed()``,
``status_changed(text)``, ``robustness_changed(RobustnessResult or None)``.

The robustness result (:meth:`PlanningUI.set_robustness`, from Workflow → Robustness…) is
shown beside the metrics and as percentile bands on the DVH only while it describes the plan:
it is accepted only for the document state it was computed from, and the next edit, undo or
plan change drops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray
from psygnal import Signal
from PySide6.QtCore import QEvent, QObject, QTimer

from app.gui.layers.base import StrokeCoalescer, Subscriptions, stroke_open
from app.gui.views.live_views import LIVE_AXIS, live_view_name
from app.gui.window_protocols import StatusWindow
from app.gui.workers import Worker, start_worker
from dose.errors import InputError
from dose.progress import Cancelled
from planner.plan.live_dose import DEFAULT_LEVELS_PERCENT, LiveDose, ViewName
from planner.plan.model import Plan

if TYPE_CHECKING:
    from app.gui.dose_warmup import DoseEngineWarmUp
    from app.gui.tools.base import ToolManager
    from app.gui.views.slice_view import SliceView
    from planner.optimise.robustness import RobustnessResult
    from planner.plan.document import PlanChanged, PlanDocument
    from planner.plan.dosimetry import PlanDosimetry
    from planner.plan.needles import NeedleRow, NeedleWarning

__all__ = ["PlanningEvents", "PlanningUI", "PlanningWindow", "live_view_name"]

#: Exact refresh this long after the last edit that was not a drag (keyboard, table, undo).
EXACT_DELAY_MS = 250
#: Needle table and warnings refresh this long after the last edit (they scan the CT).
TABLE_DELAY_MS = 120


class PlanningWindow(StatusWindow, Protocol):
    """What the planning controller, and the layers, tools and panels through it
    (``planning.window``), use of the window (the main window, the controller's Qt parent):
    the session, the 2-D views, the dose engine, the tool manager (one armed tool at a time)
    and the status bar."""

    dose_engine: DoseEngineWarmUp
    tool_manager: ToolManager

    @property
    def slice_views(self) -> tuple[SliceView, SliceView, SliceView]: ...

    def installEventFilter(self, watcher: QObject) -> None: ...  # noqa: N802 (Qt)


class PlanningEvents:
    """Signals of :class:`PlanningUI` (psygnal, emitted on the GUI thread)."""

    plan_changed = Signal(object)  # Plan | None
    live_changed = Signal(object)  # frozenset of live view names
    exact_changed = Signal(object)  # PlanDosimetry | None
    selection_changed = Signal()
    warnings_changed = Signal()
    status_changed = Signal(str)
    robustness_changed = Signal(object)  # RobustnessResult | None


class PlanningUI(QObject):
    """The planning controller of one window (module docstring)."""

    def __init__(self, window: PlanningWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.events = PlanningEvents()
        self.document: PlanDocument | None = None
        self.live: LiveDose | None = None
        self.exact: PlanDosimetry | None = None
        self.exact_status = "no plan"
        #: The robustness result of the current plan state (Workflow → Robustness…), or None;
        #: dropped by the next edit (it describes the plan as it was).
        self.robustness: RobustnessResult | None = None
        self.levels_percent: tuple[float, ...] = DEFAULT_LEVELS_PERCENT
        self.wash = False
        self.selected_needle_id: str | None = None
        self.selected_seed_id: str | None = None
        self.warnings: dict[str, list[NeedleWarning]] = {}
        self.rows: list[NeedleRow] = []
        self.dragging = False
        #: The planning layers of each 2-D view: {view: {"isodoses"|"needles"|"seeds": layer}}.
        self.view_layers: dict[Any, dict[str, Any]] = {}
        #: A needle being placed (drawn, not in the plan), or None.
        self.preview_needle: Any = None
        self._engine_ready = False
        self._exact_worker: Worker | None = None
        self._exact_generation = -1
        #: Seconds of the last exact refresh (for the status line and the benchmark).
        self.exact_seconds = math.nan
        self._exact_timer = QTimer(self)
        self._exact_timer.setSingleShot(True)
        self._exact_timer.setInterval(EXACT_DELAY_MS)
        self._exact_timer.timeout.connect(self.refresh_exact)
        self._table_timer = QTimer(self)
        self._table_timer.setSingleShot(True)
        self._table_timer.setInterval(TABLE_DELAY_MS)
        self._table_timer.timeout.connect(self.refresh_table)
        #: A brush stroke's last mask edit, handled once when the stroke has ended.
        self._stroke_edit: PlanChanged | None = None
        self._after_stroke = StrokeCoalescer(
            lambda: self.document, self._flush_stroke_edit, during=False
        )
        #: Session connections of the planning part, all dropped when the window closes.
        self.subscriptions = Subscriptions()
        self.subscriptions.listen(self.session.document_changed, self._on_document_changed)
        self.subscriptions.listen(self.session.crosshair_changed, self._on_crosshair_changed)
        self.subscriptions.listen(self.session.volume_changed, self._on_volume_changed)
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        """The window is closing: stop the exact refresh and every session connection."""
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.close()
        return False

    # ------------------------------------------------------------------ state
    @property
    def plan(self) -> Plan | None:
        return None if self.document is None else self.document.plan

    def _set_status(self, text: str) -> None:
        if text == self.exact_status:
            return  # every drag step sets "… pending": listeners (the DVH title) redraw once
        self.exact_status = text
        self.events.status_changed.emit(text)

    # ------------------------------------------------------------------ document
    def _on_document_changed(self, document: PlanDocument | None) -> None:
        if self.document is not None:
            self.document.events.changed.disconnect(self._on_plan_edited, missing_ok=True)
        self._cancel_exact()
        self._stroke_edit = None
        self._after_stroke.stop()
        self.document = document
        self.live = None
        self.exact = None
        self._drop_robustness()
        self.selected_needle_id = self.selected_seed_id = None
        self.warnings, self.rows = {}, []
        if document is None:
            self._set_status("no plan")
            self.events.plan_changed.emit(None)
            self.events.exact_changed.emit(None)
            self.events.live_changed.emit(frozenset())
            self.events.warnings_changed.emit()
            return
        document.events.changed.connect(self._on_plan_edited)
        self.events.plan_changed.emit(document.plan)
        self.events.exact_changed.emit(None)
        self.refresh_table()
        engine = self.window.dose_engine
        if not engine.is_ready:
            self._set_status("waiting for the dose engine…")
            engine.start()  # idempotent; the window starts it too
        engine.when_ready(lambda doc=document: self._on_engine_ready(doc))

    def _on_engine_ready(self, document: PlanDocument) -> None:
        if document is not self.document:
            return
        self._engine_ready = True
        self._make_live()
        self.refresh_exact()

    def _make_live(self) -> None:
        plan = self.plan
        if plan is None:
            return
        self.live = None
        if plan.source is None or plan.prescription is None:
            missing = "seed source" if plan.source is None else "prescription"
            self._set_status(f"no dose: the plan has no {missing} (Plan → Prescription…)")
            self.events.live_changed.emit(frozenset())
            return
        views = self._live_indices()
        self.live = LiveDose(plan, views=views)
        self.events.live_changed.emit(frozenset(views))

    def _live_indices(self) -> dict[ViewName, int]:
        """The CT slice of each live view at the crosshair."""
        plan = self.plan
        assert plan is not None
        ijk = plan.geometry.world_to_index(self.session.crosshair_mm)
        return {v: int(np.rint(ijk[a])) for v, a in LIVE_AXIS.items()}  # type: ignore[misc]

    def _on_plan_edited(self, change: PlanChanged) -> None:
        """Follow an edit: live dose, selection, the plan listeners (DVH, metrics), the needle
        table and the exact refresh. Mask-only edits inside a stroke (a brush stroke) are
        handled once, when the stroke has ended (the dose is "pending" meanwhile)."""
        if change.what <= {"masks"} and stroke_open(self.document):
            if self._stroke_edit is None and self._engine_ready:
                self._cancel_exact()
                self._set_status("dose: live (fast) — exact refresh pending")
            self._stroke_edit = change
            self._after_stroke.request()
            return
        self._stroke_edit = None
        self._after_stroke.stop()
        self._handle_edit(change)

    def _flush_stroke_edit(self) -> None:
        change, self._stroke_edit = self._stroke_edit, None
        if change is not None and self.document is not None:
            self._handle_edit(dataclasses.replace(change, plan=self.document.plan))

    def _handle_edit(self, change: PlanChanged) -> None:
        plan = change.plan
        if self._engine_ready and (
            self.live is None
            or "source" in change.what
            or "prescription" in change.what
            or plan.source is None
            or plan.prescription is None
        ):
            self._make_live()
        elif self.live is not None:
            changed = self.live.sync(plan)
            if changed:
                self.events.live_changed.emit(changed)
        ids = {n.id for n in plan.needles}
        if self.selected_needle_id not in ids:
            self.selected_needle_id = None
        if self.selected_seed_id not in {s.id for s in plan.seeds}:
            self.selected_seed_id = None
        self._drop_robustness()
        self.events.plan_changed.emit(plan)
        if not self.dragging:  # needle table and warnings scan the CT: after the drag
            self._table_timer.start()
        if self._engine_ready:
            self._cancel_exact()
            self._set_status("dose: live (fast) — exact refresh pending")
            if not self.dragging:
                self._exact_timer.start()

    def _on_volume_changed(self) -> None:
        # A new CT: the plan (if any) belongs to the other one; the session owner closes it.
        self.events.live_changed.emit(frozenset())

    def _on_crosshair_changed(self, xyz_mm: NDArray[np.float64]) -> None:
        live = self.live
        if live is None or self.plan is None:
            return
        changed = []
        for view, index in self._live_indices().items():
            if live.slice_index(view) != index:
                live.set_slice(view, index)
                changed.append(view)
        if changed:
            self.events.live_changed.emit(frozenset(changed))

    # ------------------------------------------------------------------ editing helpers
    def execute(self, command: Any) -> bool:
        """Run ``command`` on the document; a refused edit is shown in the status bar."""
        if self.document is None:
            return False
        try:
            self.document.execute(command)
        except (ValueError, KeyError, InputError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self.window.statusBar().showMessage(f"Not done: {text}", 6000)
            return False
        return True

    @contextlib.contextmanager
    def drag(self, label: str) -> Iterator[None]:
        """One mouse drag: one undo step, and the exact refresh waits for the release."""
        assert self.document is not None
        self.dragging = True
        try:
            with self.document.stroke(label):
                yield
        finally:
            self.dragging = False
            StrokeCoalescer.flush_all()  # Undo/Redo labels follow at once
            self._table_timer.start()
            if self._engine_ready and self.document is not None:
                self._exact_timer.stop()
                self.refresh_exact()

    @property
    def active_tool(self) -> Any:
        """The armed placement/measuring tool (it has the mouse), or None. The window's one
        tool manager owns it: arming a contouring tool disarms this one and back."""
        return self.window.tool_manager.armed_other

    def activate(self, tool: Any) -> None:
        """Arm ``tool`` (it gets the mouse) through the window's tool manager: the previously
        armed tool, contouring or planning, is stopped."""
        self.window.tool_manager.arm(tool)

    def release(self, tool: Any) -> None:
        """``tool`` gives the mouse back (finished, cancelled or disarmed)."""
        self.window.tool_manager.disarm(tool)

    @property
    def any_tool_armed(self) -> bool:
        """True when a tool (contouring or planning) has the left button."""
        return bool(self.window.tool_manager.armed_name)

    def select(self, needle_id: str | None = None, seed_id: str | None = None) -> None:
        if (needle_id, seed_id) == (self.selected_needle_id, self.selected_seed_id):
            return
        self.selected_needle_id, self.selected_seed_id = needle_id, seed_id
        self.events.selection_changed.emit()

    def set_levels(self, levels_percent: tuple[float, ...]) -> None:
        """Isodose levels (% of PD) shown on the views."""
        levels = tuple(sorted({float(p) for p in levels_percent if 0 < float(p) <= 1000}))
        if not levels:
            raise ValueError("give at least one isodose level between 0 and 1000 % of PD")
        self.levels_percent = levels
        if self.live is not None:
            self.live.levels_percent = levels
        self.events.live_changed.emit(frozenset(LIVE_AXIS))

    def set_robustness(self, result: RobustnessResult, state_counter: int) -> bool:
        """Show ``result`` (computed on the document at ``state_counter``) beside the metrics
        and on the DVH; False (nothing shown) when the plan has changed since."""
        doc = self.document
        if doc is None or doc.state_counter != state_counter:
            return False
        self.robustness = result
        self.events.robustness_changed.emit(result)
        return True

    def _drop_robustness(self) -> None:
        if self.robustness is not None:
            self.robustness = None
            self.events.robustness_changed.emit(None)

    def set_wash(self, on: bool) -> None:
        self.wash = bool(on)
        self.events.live_changed.emit(frozenset(LIVE_AXIS))

    # ------------------------------------------------------------------ table and warnings
    def refresh_table(self) -> None:
        """Needle rows and warnings (CT-based checks) of the current plan."""
        from planner.plan.needles import needle_table, plan_needle_warnings

        plan = self.plan
        if plan is None:
            self.warnings, self.rows = {}, []
        else:
            ct = self.session.volume
            if ct is not None and not ct.geometry.same_as(plan.geometry):
                ct = None
            self.warnings = plan_needle_warnings(plan, ct)
            self.rows = needle_table(plan, ct, warnings=self.warnings)
        self.events.warnings_changed.emit()

    # ------------------------------------------------------------------ exact refresh
    def _cancel_exact(self) -> None:
        self._exact_timer.stop()
        if self._exact_worker is not None:
            self._exact_worker.cancel()
            self._exact_worker = None

    def refresh_exact(self) -> None:
        """Start the exact dose, DVHs and metrics of the current plan on a worker."""
        live = self.live
        if live is None or self.document is None:
            return
        self._cancel_exact()
        request = live.request_exact()
        self._exact_generation = request.generation
        self._set_status("dose: computing exact dose, DVH and metrics…")
        import time

        started = time.perf_counter()

        def task(progress: Callable[[float, str], None], cancel: Callable[[], bool]) -> Any:
            return live.run_exact(request, progress=progress, cancel=cancel)

        def finished(result: PlanDosimetry | None) -> None:
            if worker is self._exact_worker:
                self._exact_worker = None
            if result is None or live is not self.live or request.cancelled():
                return  # stale: a newer edit (and its own refresh) came after it
            self.exact_seconds = time.perf_counter() - started
            self.exact = result
            self._set_status(f"dose: exact ({self.exact_seconds:.1f} s) — {result.label}")
            self.events.exact_changed.emit(result)

        def failed(exc: BaseException) -> None:
            if worker is self._exact_worker:
                self._exact_worker = None
            self._set_status(f"dose: exact refresh failed: {exc}")

        worker = start_worker(
            task,
            on_finished=finished,
            on_failed=failed,
            cancel_exceptions=(Cancelled,),
            parent=self,
        )
        self._exact_worker = worker

    @property
    def exact_pending(self) -> bool:
        return self._exact_worker is not None or self._exact_timer.isActive()

    def close(self) -> None:
        self._cancel_exact()
        self._table_timer.stop()
        self._after_stroke.stop()
        self.subscriptions.close()
        if self.document is not None:
            self.document.events.changed.disconnect(self._on_plan_edited, missing_ok=True)
