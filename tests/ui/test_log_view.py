from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from pytestqt.qtbot import QtBot

from trainer_gui.core.joblog import JOB_LOG, format_log_line
from trainer_gui.core.runners.events import LogLine
from trainer_gui.ui.log_view import LogView, read_log_tail

JOB = "job-1"


def lines(n: int, start: int = 0, host: str = "algo-1", stream: str = "stdout") -> list[LogLine]:
    return [LogLine(host, stream, f"{host} line {i}", 1000.0 + i) for i in range(start, start + n)]


@pytest.fixture
def view(qtbot: QtBot) -> LogView:
    widget = LogView()
    qtbot.addWidget(widget)
    widget.resize(800, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_job(JOB, None)
    return widget


def write_job_log(run_dir: Path, items: list[LogLine]) -> Path:
    path = run_dir / "logs" / JOB_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(format_log_line(ln.time, ln.host, ln.stream, ln.text) for ln in items)
    return path


def test_memory_is_bounded_by_max_lines_and_oldest_lines_go_first(qtbot: QtBot) -> None:
    view = LogView(max_lines=100)
    qtbot.addWidget(view)
    view.set_job(JOB, None)
    for batch in range(10):
        view.append_lines(JOB, lines(100, start=batch * 100))
    assert view.line_count() == 100
    assert view.model.rowCount() == 100
    shown = view.shown_text().splitlines()
    assert shown[0] == "algo-1 line 900"
    assert shown[-1] == "algo-1 line 999"
    view.max_lines = 10
    assert view.line_count() == 10
    assert view.shown_text().splitlines() == [f"algo-1 line {i}" for i in range(990, 1000)]


def test_lines_of_other_jobs_are_ignored(view: LogView) -> None:
    view.append_lines("another-job", lines(5))
    assert view.line_count() == 0
    assert view.shown_text() == ""


def test_batch_append_is_one_model_insert_per_call(view: LogView) -> None:
    inserts: list[tuple[int, int]] = []
    removals: list[tuple[int, int]] = []
    view.model.rowsInserted.connect(lambda _p, first, last: inserts.append((first, last)))
    view.model.rowsRemoved.connect(lambda _p, first, last: removals.append((first, last)))
    view.max_lines = 800
    view.append_lines(JOB, lines(500))
    assert inserts == [(0, 499)]
    view.append_lines(JOB, lines(500, start=500))
    assert inserts == [(0, 499), (500, 999)]
    assert removals == [(0, 199)]  # the oldest 200 go in one removal
    assert view.model.rowCount() == 800
    assert view.shown_lines()[0] == "algo-1 line 200"


def test_appending_stays_cheap_when_the_log_is_full(qtbot: QtBot) -> None:
    view = LogView(max_lines=100_000)
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.show()
    view.set_job(JOB, None)
    for batch in range(80):  # 160,000 lines: the last 30 batches each drop 2,000 old ones
        view.append_lines(JOB, lines(2000, start=batch * 2000))
    started = time.perf_counter()
    view.append_lines(JOB, lines(2000, start=160_000))
    elapsed = time.perf_counter() - started
    assert view.model.rowCount() == 100_000
    assert view.shown_lines()[-1] == "algo-1 line 161999"
    assert elapsed < 0.5  # a few ms in practice: generous for a loaded CI machine


def test_set_job_loads_only_the_tail_of_a_big_log_in_the_background(
    qtbot: QtBot, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    write_job_log(run_dir, lines(50_000))
    view = LogView(max_lines=1000)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.sig_loaded, timeout=10_000):
        view.set_job(JOB, str(run_dir))
        assert view.loading
    assert not view.loading
    shown = view.shown_text().splitlines()
    assert len(shown) == 1000
    assert shown[0] == "algo-1 line 49000"
    assert shown[-1] == "algo-1 line 49999"


def test_live_lines_during_the_load_are_appended_once(qtbot: QtBot, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_job_log(run_dir, lines(100))
    view = LogView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.sig_loaded, timeout=10_000):
        view.set_job(JOB, str(run_dir))
        # Lines 95-104 arrive live while the read runs; 95-99 are already in the file.
        view.append_lines(JOB, lines(10, start=95))
    assert view.shown_text().splitlines() == [f"algo-1 line {i}" for i in range(105)]


def test_a_superseded_load_is_discarded(qtbot: QtBot, tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    write_job_log(old_dir, lines(10, host="algo-9"))
    write_job_log(new_dir, lines(3))
    view = LogView()
    qtbot.addWidget(view)
    view.set_job("old", str(old_dir))
    with qtbot.waitSignal(view.sig_loaded, timeout=10_000) as blocker:
        view.set_job("new", str(new_dir))
    assert blocker.args == ["new"]
    assert view.shown_text().splitlines() == [f"algo-1 line {i}" for i in range(3)]


def test_read_log_tail_skips_torn_and_foreign_lines(tmp_path: Path) -> None:
    path = write_job_log(tmp_path, lines(5))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("not a log line\n1234.5\talgo-1\tstd")  # a torn last line
    got = read_log_tail(path, 3)
    assert [ln.text for ln in got] == ["algo-1 line 2", "algo-1 line 3", "algo-1 line 4"]
    assert got[0].time == pytest.approx(1002.0)
    assert read_log_tail(tmp_path / "missing.log", 10) == []


def test_host_filter_and_prefix_when_several_hosts(view: LogView) -> None:
    view.append_lines(JOB, lines(2, host="algo-1"))
    assert view.shown_text().splitlines() == ["algo-1 line 0", "algo-1 line 1"]  # one host
    view.append_lines(JOB, lines(2, host="algo-2") + lines(1, start=2, host="algo-10"))
    assert view.hosts == ["algo-1", "algo-2", "algo-10"]
    combo = [view.host_combo.itemText(i) for i in range(view.host_combo.count())]
    assert combo == ["All hosts", "algo-1", "algo-2", "algo-10"]
    assert view.shown_text().splitlines()[0] == "[algo-1] algo-1 line 0"  # earlier lines too
    view.set_host_filter("algo-2")
    assert view.shown_text().splitlines() == ["[algo-2] algo-2 line 0", "[algo-2] algo-2 line 1"]
    view.append_lines(JOB, lines(1, start=5, host="algo-1") + lines(1, start=5, host="algo-2"))
    assert view.shown_text().splitlines()[-1] == "[algo-2] algo-2 line 5"
    assert len(view.shown_text().splitlines()) == 3
    view.set_host_filter(None)
    assert len(view.shown_text().splitlines()) == 7
    with pytest.raises(ValueError):
        view.set_host_filter("algo-99")


def test_search_finds_next_and_previous_and_highlights_visible_matches(view: LogView) -> None:
    view.append_lines(JOB, lines(50))
    view.search_edit.setText("Line 1")  # case-insensitive: lines 1, 10..19
    assert view.match_count() == 11
    assert "11 matches" in view.match_label.text()
    assert view.find_next()
    assert view.current_row() == 1
    assert view.selected_text() == "algo-1 line 1"
    assert view.find_next()
    assert view.current_row() == 10
    assert view.find_previous()
    assert view.current_row() == 1
    assert view.find_previous()  # wraps around to the last match
    assert view.current_row() == 19
    shown = view.highlighted_ranges()
    assert (19, 7, 6) in shown  # "line 1" at position 7 of "algo-1 line 19"
    assert all(view.shown_lines()[row][pos : pos + n].lower() == "line 1" for row, pos, n in shown)
    view.search_edit.setText("no such text")
    assert not view.find_next()
    assert view.highlighted_ranges() == []
    assert view.match_count() == 0


def test_ctrl_f_focuses_the_search_box(view: LogView, qtbot: QtBot) -> None:
    view.activateWindow()
    view.table.setFocus()
    qtbot.waitUntil(view.table.hasFocus, timeout=2000)
    qtbot.keyClick(view.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(view.search_edit.hasFocus, timeout=2000)


def test_follow_turns_off_when_scrolled_up_and_on_at_the_bottom(
    view: LogView, qtbot: QtBot
) -> None:
    bar = view.table.verticalScrollBar()
    view.append_lines(JOB, lines(500))
    qtbot.waitUntil(lambda: bar.maximum() > 0)  # the view lays out on the next event loop pass
    assert view.follow
    assert bar.value() == bar.maximum()
    with qtbot.waitSignal(view.sig_follow_changed) as blocker:
        bar.setValue(10)  # the user scrolls up
    assert blocker.args == [False]
    assert not view.follow_button.isChecked()
    before = bar.maximum()
    view.append_lines(JOB, lines(100, start=500))
    qtbot.waitUntil(lambda: view.model.rowCount() == 600 and bar.maximum() > before)
    assert bar.value() == 10  # stays where the user is reading
    bar.setValue(bar.maximum())  # back to the bottom
    assert view.follow
    assert view.follow_button.isChecked()
    view.append_lines(JOB, lines(100, start=600))
    old_maximum = bar.maximum()
    qtbot.waitUntil(lambda: bar.maximum() > old_maximum)
    assert bar.value() == bar.maximum()


def test_follow_button_jumps_to_the_end(view: LogView, qtbot: QtBot) -> None:
    bar = view.table.verticalScrollBar()
    view.append_lines(JOB, lines(500))
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(0)
    assert not view.follow
    view.follow_button.click()
    assert view.follow
    assert bar.value() == bar.maximum()
    view.follow_button.click()
    assert not view.follow


def _row_color(view: LogView, text: str) -> QColor:
    row = view.shown_lines().index(text)
    color = view.model.data(view.model.index(row, 0), Qt.ItemDataRole.ForegroundRole)
    return QColor(color) if color is not None else view.stream_color("stdout")


def test_stderr_lines_get_a_distinct_colour_in_light_and_dark_palettes(view: LogView) -> None:
    view.append_lines(
        JOB,
        [
            *lines(1, host="algo-1", stream="stdout"),
            LogLine("algo-1", "stderr", "Traceback (most recent call last):", 1.0),
            *lines(1, start=1, stream="stdout"),
        ],
    )
    stderr = _row_color(view, "Traceback (most recent call last):")
    assert stderr == view.stream_color("stderr")
    assert view.stream_color("stderr") != view.stream_color("stdout")
    assert _row_color(view, "algo-1 line 1") != stderr

    light = QPalette(QGuiApplication.palette())
    light.setColor(QPalette.ColorRole.Base, QColor("white"))
    light.setColor(QPalette.ColorRole.Text, QColor("black"))
    view.setPalette(light)
    on_light = view.stream_color("stderr")
    dark = QPalette(light)
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#dddddd"))
    view.setPalette(dark)
    on_dark = view.stream_color("stderr")
    assert on_light.lightness() < 128 < on_dark.lightness()  # readable on each background
    assert _row_color(view, "Traceback (most recent call last):") == on_dark
    # The view paints with these colours (a smoke check of the delegate).
    assert not view.table.viewport().grab().isNull()


def test_save_as_writes_the_shown_lines(view: LogView, tmp_path: Path) -> None:
    view.append_lines(JOB, [*lines(3), LogLine("algo-1", "stderr", "warn ü", 2.0)])
    out = tmp_path / "saved.log"
    view.save_to(out)
    assert out.read_text(encoding="utf-8") == (
        "algo-1 line 0\nalgo-1 line 1\nalgo-1 line 2\nwarn ü\n"
    )


def test_copy_all_and_copy_selected_lines(view: LogView, qtbot: QtBot) -> None:
    view.append_lines(JOB, lines(5))
    view.copy_all_action.trigger()
    assert QGuiApplication.clipboard().text() == "\n".join(f"algo-1 line {i}" for i in range(5))
    view.table.selectRow(3)
    view.table.selectionModel().select(
        view.model.index(1, 0),
        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
    )
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "algo-1 line 1\nalgo-1 line 3"


def test_closing_the_view_cancels_a_pending_tail_read(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.ui import log_view as log_view_mod

    run_dir = tmp_path / "run"
    write_job_log(run_dir, lines(10))
    release, started = threading.Event(), threading.Event()
    real = log_view_mod.read_log_tail

    def slow_read(path: Path, max_lines: int, end: int | None = None) -> list[LogLine]:
        started.set()
        assert release.wait(10)
        return real(path, max_lines, end)

    monkeypatch.setattr(log_view_mod, "read_log_tail", slow_read)
    view = LogView()
    qtbot.addWidget(view)
    loaded: list[str] = []
    view.sig_loaded.connect(loaded.append)
    view.set_job(JOB, str(run_dir))
    task = view._tail_task
    assert task is not None and started.wait(5)
    view.close()
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.cancelled
    assert loaded == []
    assert view.shown_lines() == []
    assert not view.loading


def test_a_newer_job_cancels_the_read_of_the_older_one(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.ui import log_view as log_view_mod

    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    write_job_log(old_dir, lines(10, host="algo-9"))
    write_job_log(new_dir, lines(3))
    release = threading.Event()
    real = log_view_mod.read_log_tail

    def read(path: Path, max_lines: int, end: int | None = None) -> list[LogLine]:
        if "old" in str(path):
            assert release.wait(10)
        return real(path, max_lines, end)

    monkeypatch.setattr(log_view_mod, "read_log_tail", read)
    view = LogView()
    qtbot.addWidget(view)
    view.set_job("old", str(old_dir))
    old_task = view._tail_task
    with qtbot.waitSignal(view.sig_loaded, timeout=10_000):
        view.set_job("new", str(new_dir))
    assert old_task is not None and old_task.cancelled
    release.set()
    qtbot.waitUntil(lambda: old_task.finished, timeout=5000)
    assert view.shown_text().splitlines() == [f"algo-1 line {i}" for i in range(3)]


def test_a_search_count_appearing_moves_nothing(view: LogView, qtbot: QtBot) -> None:
    """Typing a search that matches shows "n matches": the bar and the lines stay put."""
    from PySide6.QtWidgets import QApplication

    view.append_lines(JOB, lines(2000))
    parts = (
        view.search_edit,
        view.prev_button,
        view.next_button,
        view.match_label,
        view.follow_button,
        view.table,
    )

    def geometries() -> list[tuple[int, int, int, int]]:
        QApplication.sendPostedEvents()
        QApplication.processEvents()
        return [part.geometry().getRect() for part in parts]

    before = geometries()
    view.search_edit.setFocus()
    for text in ("l", "ine 1", "9", "9"):
        qtbot.keyClicks(view.search_edit, text)
        assert view.match_label.text().endswith(("match", "matches"))
        assert geometries() == before, view.match_label.text()
    assert view.match_label.text() == "11 matches"  # line 199, 1990..1999
    view.search_edit.clear()
    assert view.match_label.text() == ""
    assert geometries() == before


def test_the_tail_stops_where_the_store_accounts_for_the_log(qtbot: QtBot, tmp_path: Path) -> None:
    """Bytes past the committed length are a batch whose follower died before committing; the
    next follower writes them again, so the view must not show them now as well."""
    logs = tmp_path / "logs"
    logs.mkdir()
    committed = "".join(format_log_line(1.0 + i, "algo-1", "stdout", f"line {i}") for i in range(3))
    torn = format_log_line(9.0, "algo-1", "stdout", "uncommitted")
    (logs / "job.log").write_text(committed + torn, encoding="utf-8")
    view = LogView()
    qtbot.addWidget(view)

    view.set_job("j", str(tmp_path), lambda: len(committed.encode()))

    qtbot.waitUntil(lambda: not view.loading, timeout=5000)
    shown = [view.model.text(row) for row in range(view.model.rowCount())]
    assert any("line 2" in text for text in shown)
    assert not any("uncommitted" in text for text in shown)
