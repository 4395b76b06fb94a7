"""Export from the runs table: the selected runs' metric samples as CSV or Parquet, and the
table as shown (visible columns, filtered rows) as CSV.

The files are written off the GUI thread (a project's samples can be millions of rows); the
save dialogs start in the project's folder. Parquet needs pyarrow, an optional extra
(`pip install 'trainer-gui[parquet]'`); without it the user is told so, nothing is written.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog

from trainer_gui.core.errors import UserError
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.ui.tasks import run_task

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.ui.jobs_table import JobsView

METRIC_COLUMNS = ("job_id", "job_name", "host", "metric", "step", "epoch", "value", "wall_time")
PYARROW_MISSING = (
    "Parquet export needs the pyarrow package, which is not installed. Install it with "
    "pip install 'trainer-gui[parquet]' (or pip install pyarrow) and try again; "
    "CSV export works without it."
)


def has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _metric_rows(store: Store, records: Sequence[JobRecord]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for record in records:
        for _rid, s in store.metric_samples(record.id):
            value = None if math.isnan(s.value) else s.value
            rows.append(
                (record.id, record.name, s.host, s.name, s.step, s.epoch, value, s.wall_time)
            )
    return rows


def write_metrics_csv(path: Path, store: Store, records: Sequence[JobRecord]) -> int:
    """One row a sample (NaN as an empty cell); returns the number of samples written."""
    rows = _metric_rows(store, records)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRIC_COLUMNS)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return len(rows)


def write_metrics_parquet(path: Path, store: Store, records: Sequence[JobRecord]) -> int:
    """The same rows as the CSV, typed (value NULL for NaN); needs pyarrow."""
    if not has_pyarrow():
        raise UserError(PYARROW_MISSING)
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    rows = _metric_rows(store, records)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(METRIC_COLUMNS)
    types = [
        pa.string(),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.int64(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
    ]
    table = pa.table(
        {
            name: pa.array(list(values), type=kind)
            for name, values, kind in zip(METRIC_COLUMNS, columns, types, strict=True)
        }
    )
    pq.write_table(table, str(path))
    return len(rows)


def write_table_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(header))
        writer.writerows(rows)
    return len(rows)


def _start_dir(view: JobsView) -> str:
    """The project's folder (never the working folder); the home folder for All jobs."""
    if view.project_path and Path(view.project_path).is_dir():
        return view.project_path
    return str(Path.home())


def _finish(view: JobsView, what: str, path: Path) -> tuple[Any, Any]:
    def done(count: int) -> None:
        view.last_export = path
        view._show_notice(f"Exported {count} {what} to {path}")

    def failed(exc: BaseException, _tb: str) -> None:
        view._show_notice(f"Cannot export to {path}: {exc}")

    return done, failed


def ask_export_metrics(view: JobsView, fmt: str) -> None:
    """Ask where, then write the selected runs' samples (CSV or Parquet)."""
    records = view.selected_records()
    if not records:
        view._show_notice("Select one or more runs to export their metrics.")
        return
    store = view.store
    if store is None:
        view._show_notice("No store to read the metrics from.")
        return
    if fmt == "parquet" and not has_pyarrow():
        view._show_notice(PYARROW_MISSING)
        return
    suffix = ".parquet" if fmt == "parquet" else ".csv"
    stem = records[0].name if len(records) == 1 else "metrics"
    default = str(Path(_start_dir(view)) / f"{stem}{suffix}")
    filters = "Parquet files (*.parquet)" if fmt == "parquet" else "CSV files (*.csv)"
    path_text, _ = QFileDialog.getSaveFileName(view, "Export metrics", default, filters)
    if not path_text:
        return
    path = Path(path_text)
    if not path.suffix:
        path = path.with_suffix(suffix)
    writer = write_metrics_parquet if fmt == "parquet" else write_metrics_csv
    done, failed = _finish(view, "metric samples", path)
    run_task(lambda: writer(path, store, records), done, failed)


def ask_export_table(view: JobsView) -> None:
    """Ask where, then write the table as shown (visible columns, filtered rows) as CSV."""
    header, rows = view.shown_table()
    default = str(Path(_start_dir(view)) / "runs.csv")
    path_text, _ = QFileDialog.getSaveFileName(
        view, "Export runs table", default, "CSV files (*.csv)"
    )
    if not path_text:
        return
    path = Path(path_text)
    if not path.suffix:
        path = path.with_suffix(".csv")
    done, failed = _finish(view, "runs", path)
    run_task(lambda: write_table_csv(path, header, rows), done, failed)
