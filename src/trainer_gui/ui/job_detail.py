"""The job detail area: header, live metrics and logs, spec summary, the spec itself, history.

One job selected: everything about it. Several selected: their metrics overlaid for comparison.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.preflight import PREFLIGHT_KEY
from trainer_gui.core.runners.events import JobStatus, Phase
from trainer_gui.core.spec import JobSpec, spec_from_text
from trainer_gui.core.spec.model import Backend
from trainer_gui.core.store import JobRecord, PhaseEntry, StatusEntry, Store
from trainer_gui.core.store.phases import format_span, timeline
from trainer_gui.services.live_data import LogChunk, MetricChunk
from trainer_gui.ui.icons import STATUS_COLORS
from trainer_gui.ui.jobs_table import format_duration
from trainer_gui.ui.log_view import LogView
from trainer_gui.ui.plots import MetricsPanel
from trainer_gui.ui.queue_view import waiting_text
from trainer_gui.ui.tasks import BackgroundTask, run_task
from trainer_gui.ui.transfers import TransferProgressBar

log = logging.getLogger(__name__)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _row(label: str, value: str) -> str:
    return f"<tr><td style='padding-right:14px; color:gray'>{label}</td><td>{value}</td></tr>"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def summary_html(record: JobRecord, spec: JobSpec | None) -> str:
    """The spec summary: what ran, where, on what, with which settings, and where its files are."""
    color = STATUS_COLORS.get(record.status, "gray")
    rows = [
        _row(
            "Job", f"<b>{_esc(record.name)}</b> <span style='color:gray'>{_esc(record.id)}</span>"
        ),
        _row("Status", f"<b style='color:{color}'>{_esc(record.status)}</b>"),
    ]
    if record.failure_reason:
        rows.append(_row("Reason", _esc(record.failure_reason)))
    rows += [
        _row("Backend", _esc(record.backend)),
        _row("Created", _when(record.created_at)),
        _row("Started", _when(record.started_at)),
        _row("Ended", _when(record.ended_at)),
        _row("Duration", format_duration(record.duration) or "—"),
    ]
    if record.backend == Backend.SAGEMAKER.value:
        rows += sagemaker_rows(record)
    run_url = QUrl.fromLocalFile(record.run_dir).toString()
    rows.append(_row("Run folder", f"<a href='{_esc(run_url)}'>{_esc(record.run_dir)}</a>"))
    artifacts = record.backend_ids.get("artifacts") or {}
    if isinstance(artifacts, dict):
        for kind, path in sorted(artifacts.items()):
            url = QUrl.fromLocalFile(str(path)).toString()
            rows.append(
                _row(f"{kind.capitalize()} artifact", f"<a href='{_esc(url)}'>{_esc(path)}</a>")
            )
    if spec is not None:
        src = spec.source
        if src.command:
            what = "<code>" + _esc(" ".join(src.command)) + "</code>"
        else:
            what = f"<code>{_esc(src.entry_point)}</code> in <code>{_esc(src.source_dir)}</code>"
        rows.append(_row("Runs", what))
        if spec.image:
            rows.append(_row("Image", _esc(spec.image)))
        compute = spec.compute
        hosts = (
            " + ".join(
                f"{_esc(g.instance_count)} × {_esc(g.instance_type)} ({_esc(g.name)})"
                for g in compute.instance_groups
            )
            or f"{_esc(compute.instance_count)} × {_esc(compute.instance_type)}"
        )
        rows.append(_row("Compute", f"{hosts}, GPUs per host: {_esc(compute.gpus)}"))
        if spec.distribution.kind != "none":
            kind = _esc(spec.distribution.kind)
            if spec.distribution.instance_groups:
                kind += " in " + ", ".join(_esc(n) for n in spec.distribution.instance_groups)
            rows.append(_row("Distribution", kind))
        if spec.channels:
            rows.append(
                _row(
                    "Channels",
                    "<br>".join(f"<b>{_esc(c.name)}</b>: {_esc(c.source)}" for c in spec.channels),
                )
            )
        if spec.hyperparameters:
            rows.append(
                _row(
                    "Hyperparameters",
                    ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in spec.hyperparameters.items()),
                )
            )
        if spec.metric_definitions:
            rows.append(_row("Metrics", ", ".join(_esc(m.name) for m in spec.metric_definitions)))
        rows.append(_row("Max runtime", f"{spec.max_runtime_seconds} s"))
        if spec.description:
            rows.append(_row("Description", _esc(spec.description)))
    return "<table cellspacing='2'>" + "".join(rows) + "</table>"


def phase_line_html(record: JobRecord, entries: list[PhaseEntry], now: float) -> str:
    """ "Preparing 0.4 s › Starting the interpreter 2.1 s › Running 8.2 s…": each phase with
    how long it took, the current one (of a job still running) bold in the status colour."""
    end = record.ended_at if record.is_terminal else None
    parts = []
    for step in timeline(entries, end, now):
        text = f"{_esc(step.label)} {format_span(step.seconds)}"
        if step.current:
            color = STATUS_COLORS.get(record.status, "gray")
            parts.append(f"<b style='color:{color}'>{text}…</b>")
        else:
            parts.append(f"<span style='color:gray'>{text}</span>")
    return " <span style='color:gray'>›</span> ".join(parts)


def phase_tooltip(entries: list[PhaseEntry]) -> str:
    """When each phase began, with the runner's own words for it."""
    return "\n".join(
        f"{time.strftime('%H:%M:%S', time.localtime(e.at))}  {e.text}"
        for e in sorted(entries, key=lambda e: e.at)
    )


def console_link(record: JobRecord) -> str | None:
    """The AWS console page of a SageMaker job, or None for other jobs."""
    if record.backend != Backend.SAGEMAKER.value:
        return None
    ids = record.backend_ids
    if ids.get("console_url"):
        return str(ids["console_url"])
    if ids.get("training_job_name") and ids.get("region"):
        from trainer_gui.core.runners.sagemaker import console_url

        return console_url(str(ids["region"]), str(ids["training_job_name"]))
    return None


def sagemaker_rows(record: JobRecord) -> list[str]:
    """Where the cloud job lives: its name, region, ARN and a link to the AWS console."""
    ids = record.backend_ids
    rows = []
    name = ids.get("training_job_name")
    if name:
        rows.append(_row("Training job", f"<code>{_esc(name)}</code>"))
    if ids.get("region"):
        rows.append(_row("Region", _esc(ids["region"])))
    if ids.get("profile"):
        rows.append(_row("AWS profile", _esc(ids["profile"])))
    if ids.get("training_job_arn"):
        rows.append(_row("ARN", f"<code>{_esc(ids['training_job_arn'])}</code>"))
    url = console_link(record)
    if url:
        rows.append(_row("AWS console", f"<a href='{_esc(url)}'>Open the job in the console</a>"))
    if ids.get("adopted"):
        rows.append(_row("Attached", "started outside this app; followed here"))
    return rows


class JobDetail(QWidget):
    """What the selected job(s) are doing: header, metrics and logs side by side, and more."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.records: list[JobRecord] = []
        self._spec_cache: dict[str, JobSpec | None] = {}
        self._history_task: BackgroundTask | None = None

        self.header = QLabel("Select a job to see its logs and metrics.", self)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        # What the run does now and how long each step took (before the first log line too).
        self.phase_line = QLabel(self)
        self.phase_line.setTextFormat(Qt.TextFormat.RichText)
        self.phase_line.setWordWrap(True)
        self.phase_line.hide()
        self._phases: list[PhaseEntry] = []
        self._phases_task: BackgroundTask | None = None
        self.transfer = TransferProgressBar(per_job=True, parent=self)
        self.metrics = MetricsPanel(self)
        self.log_view = LogView(self)
        # A queued job has no log yet: where it stands in the queue, in the log's place.
        self.queue_notice = QLabel(self)
        self.queue_notice.setObjectName("queue_notice")
        self.queue_notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.queue_notice.setWordWrap(True)
        self.queue_notice.hide()
        self._queue: dict[str, int] = {}
        self._queue_paused = False
        self.log_box = QWidget(self)
        log_layout = QVBoxLayout(self.log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.queue_notice, 1)
        log_layout.addWidget(self.log_view, 1)
        self.live = QSplitter(Qt.Orientation.Horizontal, self)
        self.live.addWidget(self.metrics)
        self.live.addWidget(self.log_box)
        self.live.setStretchFactor(0, 3)
        self.live.setStretchFactor(1, 2)
        self.summary = QTextBrowser(self)
        self.summary.setOpenLinks(False)
        self.summary.anchorClicked.connect(self._on_link)
        self.spec_text = QPlainTextEdit(self)
        self.spec_text.setReadOnly(True)
        self.spec_text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.history = QTextBrowser(self)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.live, "Metrics and logs")
        self.tabs.addTab(self.summary, "Summary")
        self.tabs.addTab(self.spec_text, "Spec")
        self.tabs.addTab(self.history, "History")
        # Beside the tabs, not above them: a download appearing when a job ends (and going
        # again) must not move the plots and the log.
        self.tabs.setCornerWidget(self.transfer, Qt.Corner.TopRightCorner)
        # Runs only while the one job shown is active: its duration and phase count up.
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.phase_line)
        layout.addWidget(self.tabs, 1)

    # -- which jobs --------------------------------------------------------------------------

    @property
    def job_ids(self) -> list[str]:
        return [r.id for r in self.records]

    def show_jobs(self, records: list[JobRecord]) -> None:
        """Show one job, several (metrics overlaid), or none."""
        if [r.id for r in records] == self.job_ids:
            self.update_records(records)
            return
        self.records = list(records)
        self.transfer.set_job(records[0].id if len(records) == 1 else None)
        self.log_box.setVisible(len(records) <= 1)  # several jobs: the plots get the room
        if len(records) == 1:
            record = records[0]
            store, job_id = self.store, record.id
            self.log_view.set_job(record.id, record.run_dir, lambda: store.log_size(job_id))
            # A cloud job and the preflight that checked it: one plot, overlaid.
            linked = record.backend_ids.get(PREFLIGHT_KEY)
            ids = [record.id, linked] if isinstance(linked, str) and linked else [record.id]
            self.metrics.set_jobs(ids, {record.id: record.name, ids[-1]: "preflight"})
            for shown in ids:
                self.metrics.load_from_store(self.store, shown)
        elif records:
            self.log_view.set_job(None, None)
            labels = {r.id: _short_label(r) for r in records}
            self.metrics.set_jobs([r.id for r in records], labels)
            for record in records:
                self.metrics.load_from_store(self.store, record.id)
        else:
            self.log_view.set_job(None, None)
            self.metrics.set_jobs([])
        self._phases = []
        self._render()
        self._load_history()
        self._load_phases()

    def update_records(self, records: list[JobRecord]) -> None:
        """Fresher copies of the jobs shown (status, times); redraws header and summary."""
        by_id = {r.id: r for r in records}
        changed = False
        for i, old in enumerate(self.records):
            new = by_id.get(old.id)
            if new is not None and new != old:
                self.records[i] = new
                changed = True
        if changed:
            self._render()
            self._load_history()
            self._load_phases()

    # -- live data from the bridge -----------------------------------------------------------

    @Slot(str, object)
    def on_logs(self, job_id: str, lines: LogChunk) -> None:
        self.log_view.append_lines(job_id, lines)
        if job_id in self.job_ids and not any(e.phase is Phase.RUNNING for e in self._phases):
            self._load_phases()  # the first line: "Running" now, not at the next tick

    @Slot(str, object)
    def on_metrics(self, job_id: str, samples: MetricChunk) -> None:
        self.metrics.add_samples(job_id, samples)
        if job_id in self.job_ids and not any(e.phase is Phase.FIRST_METRIC for e in self._phases):
            self._load_phases()

    # -- rendering ---------------------------------------------------------------------------

    def _spec(self, record: JobRecord) -> JobSpec | None:
        if record.id not in self._spec_cache:
            try:
                self._spec_cache[record.id] = spec_from_text(record.spec_yaml)
            except UserError:
                self._spec_cache[record.id] = None
        return self._spec_cache[record.id]

    def set_queue(self, positions: dict[str, int], paused: bool = False) -> None:
        """Where queued jobs stand (the Queue view's reads): shown for a queued job."""
        self._queue, self._queue_paused = dict(positions), paused
        self._render_queue()

    def _render_queue(self) -> None:
        record = self.records[0] if len(self.records) == 1 else None
        queued = record is not None and record.status == JobStatus.QUEUED.value
        if queued and record is not None:
            place = self._queue.get(record.id)
            self.queue_notice.setText(
                "Waiting in the queue" if place is None else waiting_text(place, self._queue_paused)
            )
        self.queue_notice.setVisible(queued)
        self.log_view.setVisible(not queued)

    def _render(self) -> None:
        records = self.records
        self._render_queue()
        active = len(records) == 1 and records[0].is_active
        if active and not self._ticker.isActive():
            self._ticker.start()
        elif not active:
            self._ticker.stop()
        self._render_phases()
        if not records:
            self.header.setText("Select a job to see its logs and metrics.")
            self.summary.setHtml("")
            self.spec_text.setPlainText("")
            self.history.setHtml("")
            return
        if len(records) > 1:
            names = ", ".join(_esc(r.name) for r in records[:6])
            more = f" and {len(records) - 6} more" if len(records) > 6 else ""
            self.header.setText(
                f"<b>{len(records)} jobs</b> compared: {names}{more}. "
                "<span style='color:gray'>Select one job to see its logs.</span>"
            )
            self.summary.setHtml("".join(summary_html(r, self._spec(r)) + "<hr>" for r in records))
            self.spec_text.setPlainText("\n---\n".join(f"# {r.id}\n{r.spec_yaml}" for r in records))
            return
        record = records[0]
        self._render_header(record)
        self.summary.setHtml(summary_html(record, self._spec(record)))
        if self.spec_text.toPlainText() != record.spec_yaml:
            self.spec_text.setPlainText(record.spec_yaml)

    def _render_header(self, record: JobRecord) -> None:
        color = STATUS_COLORS.get(record.status, "gray")
        extra = f" — {_esc(record.failure_reason)}" if record.failure_reason else ""
        duration = format_duration(record.duration)
        self.header.setText(
            f"<b>{_esc(record.name)}</b> &nbsp;<span style='color:{color}'>● {_esc(record.status)}"
            f"</span>{extra} &nbsp;<span style='color:gray'>{_esc(record.backend)}"
            f"{' · ' + duration if duration else ''} · {_esc(record.id)}</span>"
        )

    def _render_phases(self) -> None:
        if len(self.records) != 1 or not self._phases:
            self.phase_line.hide()
            return
        self.phase_line.setText(phase_line_html(self.records[0], self._phases, time.time()))
        self.phase_line.setToolTip(phase_tooltip(self._phases))
        self.phase_line.show()

    @Slot()
    def _tick(self) -> None:
        """A running job's duration and current phase count up; new phases are read."""
        if len(self.records) != 1 or not self.records[0].is_active:
            self._ticker.stop()
            return
        if self.records[0].started_at:
            self._render_header(self.records[0])
        self._render_phases()
        self._load_phases()

    def _load_phases(self) -> None:
        """Read the shown job's phases from the store (written by whichever process follows
        it), off the GUI thread; a read still under way is superseded."""
        if self._phases_task is not None:
            self._phases_task.cancel()
            self._phases_task = None
        if len(self.records) != 1:
            self._phases = []
            self._render_phases()
            return
        job_id = self.records[0].id
        store = self.store
        self._phases_task = run_task(
            lambda: (job_id, store.phases(job_id)), self._on_phases, self._on_phases_failed
        )

    @Slot(object)
    def _on_phases(self, result: tuple[str, list[PhaseEntry]]) -> None:
        self._phases_task = None
        job_id, entries = result
        if self.job_ids == [job_id]:
            self._phases = entries
            self._render_phases()

    def _on_phases_failed(self, exc: BaseException, tb: str) -> None:
        self._phases_task = None  # a busy or closed store: the next tick reads again
        log.debug("reading the phases failed: %s\n%s", exc, tb)

    def _load_history(self) -> None:
        if self._history_task is not None:  # the history of a job no longer shown
            self._history_task.cancel()
            self._history_task = None
        if len(self.records) != 1:
            self.history.setHtml("")
            return
        job_id = self.records[0].id
        store = self.store
        self._history_task = run_task(lambda: store.status_history(job_id), self._on_history)

    @Slot(object)
    def _on_history(self, entries: list[StatusEntry]) -> None:
        self._history_task = None
        rows = "".join(
            f"<tr><td style='padding-right:12px'>{_when(e.at)}</td>"
            f"<td style='padding-right:12px; color:{STATUS_COLORS.get(e.status, 'gray')}'>"
            f"{_esc(e.status)}</td><td>{_esc(e.message)}</td></tr>"
            for e in entries
        )
        self.history.setHtml(f"<table>{rows}</table>")

    @Slot(QUrl)
    def _on_link(self, url: QUrl) -> None:
        QDesktopServices.openUrl(url)


def _short_label(record: JobRecord) -> str:
    """Name plus the time part of the id, so runs of one spec can be told apart."""
    tail = record.id[len(record.name) :].lstrip("-")
    return f"{record.name} {tail[9:15]}" if len(tail) >= 15 else record.name
