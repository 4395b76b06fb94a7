"""Upload and download progress of SageMaker jobs: a bar with a line that says what moves.

A SageMaker submit packs and uploads the code and every local channel before the job exists,
and a finished job's model comes back the same way; on a slow link that is minutes, so the
user sees bytes, totals and what was skipped because S3 already had it. The bridge delivers the
newest `TransferProgress` per item; this widget keeps one entry per (job, direction, item) and
shows the sum of the unfinished ones, then hides a few seconds after the last one ends.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from trainer_gui.core.runners.events import TransferProgress

HIDE_AFTER_MS = 4000
_SCALE = 1000


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover - the loop returns at GB


_VERBS = {
    "upload": ("Uploading", "Uploaded"),
    "download": ("Downloading", "Downloaded"),
    "copy": ("Copying", "Copied"),  # a run's private copy of a local channel
}


def describe(progress: TransferProgress) -> str:
    """One line: 'Uploading channel train: 12.0 MB of 40.0 MB (8.0 MB already in S3)'."""
    doing, did = _VERBS.get(progress.direction, _VERBS["download"])
    complete = progress.total_bytes > 0 and progress.done_bytes >= progress.total_bytes
    verb = did if complete else doing
    text = f"{verb} {progress.what}: {format_bytes(progress.done_bytes)}"
    if progress.total_bytes > 0:
        text += f" of {format_bytes(progress.total_bytes)}"
    if progress.skipped_bytes:
        where = "already in S3" if progress.direction == "upload" else "already here"
        text += f" ({format_bytes(progress.skipped_bytes)} {where}, not sent again)"
    return text


def _finished(progress: TransferProgress) -> bool:
    return progress.total_bytes <= 0 or progress.done_bytes >= progress.total_bytes


class TransferProgressBar(QWidget):
    """The transfers of every job (status bar) or of one job (`set_job`, the job detail)."""

    def __init__(
        self,
        name_of: Callable[[str], str] | None = None,
        per_job: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._name_of = name_of or (lambda job_id: job_id)
        self._per_job = per_job
        self._job: str | None = None
        self.entries: dict[tuple[str, str, str], TransferProgress] = {}
        self.label = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, _SCALE)
        self.bar.setTextVisible(True)
        self.bar.setMaximumWidth(220)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.setInterval(HIDE_AFTER_MS)
        self._hide_timer.timeout.connect(self._on_hide_timeout)
        self.hide()

    def set_job(self, job_id: str | None) -> None:
        """Per-job mode: show only this job's transfers (None: none)."""
        self._job = job_id
        self._render()

    def _visible_entries(self) -> list[TransferProgress]:
        if self._per_job:
            return [p for (job, _, _), p in self.entries.items() if job == self._job]
        return list(self.entries.values())

    @Slot(str, object)
    def on_transfer(self, job_id: str, progress: TransferProgress) -> None:
        self.entries[(job_id, progress.direction, progress.what)] = progress
        self._render()

    def forget_job(self, job_id: str) -> None:
        """The job ended or was deleted: its transfers are over whatever they last said."""
        for key in [k for k in self.entries if k[0] == job_id]:
            del self.entries[key]
        self._render()

    def active(self) -> list[TransferProgress]:
        return [p for p in self._visible_entries() if not _finished(p)]

    def text(self) -> str:
        return self.label.text()

    def _render(self) -> None:
        shown = self._visible_entries()
        if not shown:
            self._hide_timer.stop()
            self.hide()
            return
        active = [p for p in shown if not _finished(p)]
        current = active or shown[-1:]
        done = sum(p.done_bytes for p in current)
        total = sum(p.total_bytes for p in current)
        self.bar.setValue(_SCALE if total <= 0 else min(_SCALE, round(_SCALE * done / total)))
        if len(current) == 1:
            text = describe(current[0])
        else:
            jobs = {p.job_id for p in current}
            verb = "Transferring"
            if {p.direction for p in current} == {"upload"}:
                verb = "Uploading"
            elif {p.direction for p in current} == {"download"}:
                verb = "Downloading"
            elif {p.direction for p in current} == {"copy"}:
                verb = "Copying"
            text = f"{verb} {len(current)} items: {format_bytes(done)} of {format_bytes(total)}"
            if len(jobs) > 1:
                text += f" for {len(jobs)} jobs"
        if not self._per_job:
            names = sorted({self._name_of(p.job_id) for p in current})
            text = f"{', '.join(names)} — {text}"
        self.label.setText(text)
        self.setToolTip("\n".join(f"{self._name_of(p.job_id)}: {describe(p)}" for p in shown))
        self.show()
        if active:
            self._hide_timer.stop()
        elif not self._hide_timer.isActive():
            self._hide_timer.start()

    @Slot()
    def _on_hide_timeout(self) -> None:
        """Everything shown has finished: drop it, so the bar goes away until the next one."""
        for key, progress in list(self.entries.items()):
            if _finished(progress) and (not self._per_job or key[0] == self._job):
                del self.entries[key]
        self._render()
