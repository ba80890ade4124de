"""The Workflow menu's dialogs (issues 14 and 12): Export (the choices of ``seedplan export``,
progress, a summary of what was written where) and Auto plan (options, progress, cancel; the
result applied as one undo step)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.gui.dialogs.autoplan import AutoplanDialog
from app.gui.dialogs.export import ExportDialog
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from planner.plan.commands import SetNeedlesAndSeeds
from planner.plan.document import PlanDocument
from tests.gui.inner._helpers import settle, wait_until
from tests.postop_builders import PostopCase, build_postop_case

TASK_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def case() -> PostopCase:
    return build_postop_case()


@pytest.fixture(scope="module")
def main_window(
    gui_app: QApplication, case: PostopCase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainWindow]:
    tmp = tmp_path_factory.mktemp("dialog-settings")
    window = MainWindow(settings=Settings(Path(tmp) / "seedplan.ini"), interactive=False)
    window.resize(1200, 800)
    window.show()
    settle()
    window.session.set_volume(case.ct)
    window.session.set_document(PlanDocument(case.plan))
    settle()
    yield window
    window.close()
    settle()


def _wait(dialog: ExportDialog | AutoplanDialog) -> None:
    wait_until(lambda: not dialog.runner.busy, TASK_TIMEOUT_S)
    settle()


def test_export_writes_the_chosen_files_and_says_where(
    main_window: MainWindow, tmp_path: Path
) -> None:
    dialog = main_window.workflow.open_export()  # type: ignore[attr-defined]
    assert isinstance(dialog, ExportDialog)
    assert list(dialog.kind_boxes) == ["pdf", "csv", "rtstruct", "rtplan", "rtdose"]
    out = tmp_path / "export"
    dialog.folder_edit.setText(str(out))
    dialog.set_kinds(["csv"])
    assert dialog.kinds() == ["csv"]
    assert dialog.start_export()
    assert dialog.runner.busy  # off the GUI thread
    _wait(dialog)
    summary = dialog.summary_obj
    assert summary is not None and summary.files
    text = dialog.summary.toPlainText()
    for kind, path, _sha in summary.files:
        assert path.is_file() and path.parent == out
        assert str(path) in text and kind == "csv"
    assert (out / "seeds.csv").is_file() and not (out / "plan_summary.pdf").exists()
    assert f"files written to {out}" in dialog.runner.label.text()
    dialog.close()


def test_export_refusal_is_one_line_not_a_traceback(
    main_window: MainWindow, tmp_path: Path
) -> None:
    dialog = ExportDialog(main_window)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "seeds.csv").write_text("someone else's file\n")
    dialog.folder_edit.setText(str(target))
    dialog.set_kinds(["csv"])
    failures: list[str] = []
    dialog.runner.failed.connect(failures.append)
    assert dialog.start_export()
    _wait(dialog)
    assert failures and "\n" not in failures[0] and "Unexpected" not in failures[0]
    assert (target / "seeds.csv").read_text() == "someone else's file\n"
    dialog.force_box.setChecked(True)  # --force: now it is replaced
    assert dialog.start_export()
    _wait(dialog)
    assert (target / "seeds.csv").read_text() != "someone else's file\n"
    dialog.set_kinds([])
    assert not dialog.export_button.isEnabled() and not dialog.start_export()
    dialog.close()


def test_autoplan_can_be_cancelled(main_window: MainWindow) -> None:
    dialog = AutoplanDialog(main_window)
    before = main_window.session.document.plan  # type: ignore[union-attr]
    assert dialog.start()
    dialog.runner.cancel()
    _wait(dialog)
    assert dialog.result is None and not dialog.apply_button.isEnabled()
    assert main_window.session.document.plan is before  # type: ignore[union-attr]
    dialog.close()


def test_autoplan_result_is_one_undo_step(main_window: MainWindow) -> None:
    doc = main_window.session.document
    assert doc is not None
    dialog = main_window.workflow.open_autoplan()  # type: ignore[attr-defined]
    assert isinstance(dialog, AutoplanDialog)
    assert dialog.pd_gy.value() == pytest.approx(110.0)
    names = [dialog.no_pass.item(i).text() for i in range(dialog.no_pass.count())]
    assert names == ["SpinalCord"]  # the OAR, checked by default
    options = dialog.options()
    assert options.no_pass == ("SpinalCord",) and options.pd_gy == pytest.approx(110.0)
    assert options.time_budget_s == pytest.approx(10.0)  # the 10 s goal
    dialog.time_budget.setValue(20.0)
    assert dialog.options().time_budget_s == pytest.approx(20.0)
    before = doc.plan
    steps = len(doc.history.undo_steps)
    assert dialog.start()
    _wait(dialog)
    result = dialog.result
    assert result is not None, dialog.runner.label.text()
    text = dialog.result_text.toPlainText()
    assert f"{len(result.plan.needles)} needles" in text and "D90" in text
    assert doc.plan is before  # nothing applied yet
    assert dialog.apply()
    assert len(doc.history.undo_steps) == steps + 1
    assert doc.history.undo_label == "Auto plan"
    assert doc.plan.needles == result.plan.needles and doc.plan.seeds == result.plan.seeds
    assert len(doc.plan.needles) > 0
    assert doc.undo()
    assert doc.plan.needles == before.needles and doc.plan.seeds == before.seeds
    assert doc.plan.goals == before.goals
    dialog.close()


def test_autoplan_result_for_an_older_plan_is_not_applied(main_window: MainWindow) -> None:
    doc = main_window.session.document
    assert doc is not None
    dialog = AutoplanDialog(main_window)
    assert dialog.start()
    # The plan is edited while the auto plan runs.
    doc.execute(SetNeedlesAndSeeds(doc.plan.needles, doc.plan.seeds[:-1]))
    edited = doc.plan
    _wait(dialog)
    assert dialog.result is not None
    assert not dialog.apply()
    assert doc.plan is edited and "older state" in dialog.runner.label.text()
    doc.undo()
    dialog.close()
