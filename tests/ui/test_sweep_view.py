"""The sweep view (issue 14): a sweep's trials with their values and objective, the best one
marked, the objective by trial, and a job spec made from a trial next to the sweep file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import WindowFactory, add_job, window_factory
from PySide6.QtCore import Qt

from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import load_spec
from trainer_gui.core.spec.sweep import load_sweep
from trainer_gui.core.store import Store
from trainer_gui.services import sweeps
from trainer_gui.ui.sweep_view import BEST_MARK, EMPTY_TEXT, SweepView


def write_sweep(folder: Path, goal: str = "minimize") -> Path:
    (folder / "code").mkdir()
    (folder / "code" / "train.py").write_text("print('loss=1')\n")
    data = {
        "name": "tiny",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "hyperparameters": {"lr": 0.1, "layers": 2, "epochs": 3},
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "sweep": {
            "parameters": {
                "lr": {"type": "continuous", "min": 0.01, "max": 0.4},
                "layers": {"type": "integer", "min": 1, "max": 4},
            },
            "objective": {"metric": "loss", "goal": goal},
            "max_trials": 5,
            "max_parallel": 2,
        },
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def store(trainer_home: Path) -> Iterator[Store]:
    db = Store()
    yield db
    db.close()


def recorded(store: Store, path: Path, prefix: str = "tiny") -> str:
    """A sweep with four finished trials and one running, as a driver leaves them."""
    record = sweeps.start_sweep(store, load_sweep(path), source=path)
    rows: list[tuple[dict[str, Any], str, float | None]] = [
        ({"lr": 0.1, "layers": 1}, "complete", 0.5),
        ({"lr": 0.3, "layers": 2}, "complete", 0.2),
        ({"lr": 0.05, "layers": 4}, "pruned", 0.9),
        ({"lr": 0.2, "layers": 3}, "failed", None),
        ({"lr": 0.25, "layers": 3}, "running", None),
    ]
    for number, (params, state, value) in enumerate(rows):
        store.add_trial(record.id, number, f"{prefix}-t{number}-job", params)
        store.set_trial_state(record.id, number, state, value)
    return record.id


def shown(view: SweepView) -> list[list[str]]:
    table = view.table
    return [
        [table.item(r, c).text() for c in range(table.columnCount())]  # type: ignore[union-attr]
        for r in range(table.rowCount())
    ]


def test_the_view_shows_each_trial_with_its_values_and_marks_the_best(
    qtbot: Any, store: Store, tmp_path: Path
) -> None:
    sweep_id = recorded(store, write_sweep(tmp_path))
    view = SweepView(store, None, sweep_id)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.table.rowCount() == 5)

    headers = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]  # type: ignore[union-attr]
    assert headers == ["Trial", "State", "loss", "lr", "layers", "Job"]
    rows = shown(view)
    assert rows[1][:5] == [f"1 {BEST_MARK}", "complete", "0.2", "0.3", "2"]
    assert [r[0] for r in rows if BEST_MARK in r[0]] == [f"1 {BEST_MARK}"]
    assert [r[1] for r in rows] == ["complete", "complete", "pruned", "failed", "running"]
    assert rows[3][2] == "-"
    assert "trial 1, loss = 0.2" in view.summary.text()
    # objective by trial: every trial with a value; the best-so-far line over the complete ones
    xs, ys = view.points.getData()
    assert list(xs) == [0.0, 1.0, 2.0] and list(ys) == [0.5, 0.2, 0.9]
    line_x, line_y = view.best_line.getData()
    assert list(line_x) == [0.0, 1.0] and list(line_y) == [0.5, 0.2]
    assert not view.stop_button.isEnabled()  # no service to stop it with


def test_making_a_job_spec_from_a_trial_writes_it_next_to_the_sweep_file(
    qtbot: Any, store: Store, tmp_path: Path
) -> None:
    path = write_sweep(tmp_path)
    sweep_id = recorded(store, path)
    view = SweepView(store, None, sweep_id)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.table.rowCount() == 5)
    assert not view.spec_button.isEnabled()  # nothing selected

    rect = view.table.visualItemRect(view.table.item(2, 3))
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.spec_button.isEnabled()
    qtbot.mouseClick(view.spec_button, Qt.MouseButton.LeftButton)

    target = tmp_path / "tiny-t2.yaml"
    qtbot.waitUntil(lambda: "Wrote" in view.note.text())
    assert view.note.text() == f"Wrote {target}"
    spec = load_spec(target)
    assert spec.name == "tiny-t2"
    assert spec.hyperparameters == {"lr": 0.05, "layers": 4, "epochs": 3}
    assert spec.source.entry_point == "train.py" and spec.base_dir == tmp_path

    qtbot.mouseClick(view.spec_button, Qt.MouseButton.LeftButton)  # again: a new file
    qtbot.waitUntil(lambda: "tiny-t2-2.yaml" in view.note.text())
    assert target.exists() and (tmp_path / "tiny-t2-2.yaml").exists()


def test_with_no_sweep_the_view_says_how_to_start_one(qtbot: Any, store: Store) -> None:
    view = SweepView(store)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.chooser.count() == 0 and view.summary.text() == EMPTY_TEXT)
    assert view.table.rowCount() == 0
    assert not view.spec_button.isEnabled() and not view.stop_button.isEnabled()


def test_the_chooser_switches_between_sweeps_and_a_maximized_objective_marks_the_highest(
    qtbot: Any, store: Store, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = recorded(store, write_sweep(tmp_path / "a"))
    second = sweeps.start_sweep(store, load_sweep(write_sweep(tmp_path / "b", goal="maximize")))
    store.add_trial(second.id, 0, "m0", {"lr": 0.1, "layers": 1})
    store.set_trial_state(second.id, 0, "complete", 0.3)
    store.add_trial(second.id, 1, "m1", {"lr": 0.2, "layers": 1})
    store.set_trial_state(second.id, 1, "complete", 0.7)
    view = SweepView(store, None, first)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.chooser.count() == 2 and view.table.rowCount() == 5)

    index = view.chooser.findData(second.id)
    view.chooser.setCurrentIndex(index)
    view.chooser.activated.emit(index)  # what a pick with the mouse sends

    qtbot.waitUntil(lambda: view.table.rowCount() == 2)
    assert [r[0] for r in shown(view)] == ["0", f"1 {BEST_MARK}"]


@pytest.fixture
def make_window(qtbot: Any, trainer_home: Path) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot, in_process=True)


def test_a_trial_jobs_context_menu_opens_its_own_sweep(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    store = make_window.store
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine = recorded(store, write_sweep(tmp_path / "a"), prefix="a")
    recorded(store, write_sweep(tmp_path / "b"), prefix="b")  # newer: shown by default
    job = add_job(store, "tiny-t1", JobStatus.COMPLETED, job_id="a-t1-job")
    window = make_window()
    window.show()
    qtbot.waitUntil(lambda: job.id in window.jobs.model.job_ids(), timeout=10_000)
    assert window.jobs.select_job(job.id)
    action = window.window_actions.sweeps_action
    assert action in window.jobs.table.actions()  # the table's context menu

    action.trigger()

    view = window.findChild(SweepView)
    assert view is not None
    qtbot.waitUntil(lambda: view.chooser.count() == 2 and view.table.rowCount() == 5)
    assert view.snapshot.current is not None and view.snapshot.current.id == mine
    view.close()
