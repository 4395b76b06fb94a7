"""The plots' "Export" menu: a PNG of all plots or of one, or every point as CSV.

The menu lists the metrics each time it opens. The CSV is written from a copy of the series on
a worker thread (`trainer_gui.ui.tasks.run_task`), so a million points do not stall the window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from trainer_gui.core.metrics.series import CSV_HEADER, write_csv
from trainer_gui.core.paths import runs_home
from trainer_gui.ui.tasks import run_task

if TYPE_CHECKING:
    from trainer_gui.ui.plots.panel import MetricsPanel

log = logging.getLogger(__name__)


class ExportMenu(QMenu):
    """The export choices for `panel`, rebuilt each time the menu is about to show."""

    sig_csv_exported = Signal(str, str)
    """(path, error message or "") after a CSV export started from this menu."""

    def __init__(self, panel: MetricsPanel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._panel = panel
        self.start_dir: Callable[[], Path | None] | None = None
        """Where the file dialogs start, when the owner knows better than `default_folder`."""
        self.aboutToShow.connect(self.fill)

    @Slot()
    def fill(self) -> None:
        """One PNG entry for all plots, one per metric, and the CSV entry."""
        self.clear()
        everything = self.addAction("PNG of all plots…")
        everything.triggered.connect(self._png_all_dialog)
        for metric in self._panel.metric_names:
            action = self.addAction(f"PNG of {metric}…")
            action.setData(metric)
            action.triggered.connect(self._png_one_dialog)
        self.addSeparator()
        csv_action = self.addAction("CSV of every point…")
        csv_action.setToolTip(", ".join(CSV_HEADER))
        csv_action.triggered.connect(self._csv_dialog)

    def _default_name(self) -> str:
        jobs = self._panel.jobs
        return jobs[0] if jobs else "metrics"

    def default_folder(self) -> Path:
        """The shown run's folder (several runs: the folder of all runs), not the process's
        working folder; home when there is none."""
        folder = self.start_dir() if self.start_dir is not None else None
        if folder is None:
            jobs = self._panel.jobs
            if jobs:
                runs = runs_home()
                folder = runs / jobs[0] if len(jobs) == 1 else runs
        if folder is not None and folder.is_dir():
            return folder
        return Path.home()

    @Slot()
    def _png_all_dialog(self) -> None:
        self._png_dialog(None)

    @Slot()
    def _png_one_dialog(self) -> None:
        action = self.sender()
        metric = action.data() if action is not None else None  # type: ignore[attr-defined]
        self._png_dialog(str(metric) if metric else None)

    def _png_dialog(self, metric: str | None) -> None:
        panel = self._panel
        default = str(self.default_folder() / f"{self._default_name()}-{metric or 'all'}.png")
        path, _ = QFileDialog.getSaveFileName(panel, "Export PNG", default, "PNG images (*.png)")
        if not path:
            return
        try:
            panel.export_png(path, metric)
        except (OSError, KeyError) as exc:
            log.warning("could not export %s: %s", path, exc)
            QMessageBox.warning(panel, "Export PNG", f"Could not export {path}: {exc}")

    @Slot()
    def _csv_dialog(self) -> None:
        default = str(self.default_folder() / f"{self._default_name()}.csv")
        path, _ = QFileDialog.getSaveFileName(
            self._panel, "Export CSV", default, "CSV files (*.csv)"
        )
        if not path:
            return
        snapshot = [s.snapshot() for s in self._panel.all_series()]

        def write() -> tuple[str, str]:  # worker thread
            try:
                write_csv(path, snapshot)
            except OSError as exc:
                log.warning("could not export metrics to %s: %s", path, exc)
                return path, str(exc)
            return path, ""

        run_task(write, self._on_csv_done)

    @Slot(object)
    def _on_csv_done(self, result: tuple[str, str]) -> None:
        path, error = result
        self.sig_csv_exported.emit(path, error)
        if error:
            QMessageBox.warning(self._panel, "Export CSV", f"Could not export {path}: {error}")
