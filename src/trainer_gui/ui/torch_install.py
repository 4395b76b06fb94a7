"""The "Install PyTorch into this interpreter" dialog, offered when Run is refused for want of it.

The install is `core.pyenv.install_torch` on the thread pool (`run_task`); pip's lines and
progress go through a queue that a GUI-thread timer empties, so a chatty pip costs the window
one repaint per tick, and nothing the worker does touches a widget. Cancel stops pip (and
whatever it started); closing the dialog does the same and drops the result.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import TorchMissing
from trainer_gui.core.pyenv import TORCH_VERSION, InstallCancelled, install_torch
from trainer_gui.ui.tasks import BackgroundTask, error_text, run_task

POLL_MS = 100
#: Lines kept in the output view (pip prints a few hundred at most; a runaway one is cut).
MAX_LINES = 5000
_PHASES = (
    ("Collecting", "Finding PyTorch and what it needs…"),
    ("Downloading", "Downloading…"),
    ("Processing", "Reading the package files…"),
    ("Installing collected packages", "Installing (unpacking about 1 GB takes a while)…"),
    ("Successfully installed", "Checking that torch imports…"),
)


class TorchInstallDialog(QDialog):
    """Offers the install, runs it with a progress bar and pip's live output, and says how it
    ended; `installed` fires once PyTorch imports in the interpreter."""

    installed = Signal(str)
    """(interpreter): PyTorch is installed and imports there."""

    def __init__(
        self,
        python: str,
        reason: str = "",
        rerun: Callable[[], None] | None = None,
        rerun_label: str = "Run",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.python = python
        self._rerun = rerun
        self.setWindowTitle("PyTorch is not installed")
        self.setMinimumWidth(560)
        self._output: queue.Queue[tuple[str, object]] = queue.Queue()
        self._stop_pip = threading.Event()
        self._task: BackgroundTask | None = None
        self.succeeded = False
        # A dialog deleted with its window (no close event) still stops pip and drops the result.
        self._guard = _Guard()
        self.destroyed.connect(self._guard)

        self.intro = QLabel(
            f"The job runs with <b>{_escape(python)}</b>, which cannot import torch.<br>"
            f"Install PyTorch {TORCH_VERSION} there now? Where no NVIDIA GPU is found this is "
            "the CPU build (about 1 GB); with one, PyPI's build with CUDA (several GB).",
            self,
        )
        self.intro.setWordWrap(True)
        self.intro.setToolTip(reason)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(MAX_LINES)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.output.setPlaceholderText("pip's output appears here.")
        self.output.setMinimumHeight(180)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        self.buttons = QDialogButtonBox(self)
        self.install_button = QPushButton("Install PyTorch into this interpreter", self)
        self.install_button.setDefault(True)
        self.rerun_button = QPushButton(rerun_label, self)
        self.cancel_button = QPushButton("Cancel", self)
        self.close_button = QPushButton("Close", self)
        for button in (self.install_button, self.rerun_button):
            self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.rerun_button.hide()  # after addButton, which shows its button
        self.cancel_button.hide()
        self.install_button.clicked.connect(self.start_install)
        self.rerun_button.clicked.connect(self._on_rerun)
        self.cancel_button.clicked.connect(self.cancel_install)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.output, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._drain)

    # -- state --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None

    @Slot()
    def start_install(self) -> None:
        if self.running:
            return
        self._stop_pip = threading.Event()
        self.error.hide()
        self.output.clear()
        self.intro.setEnabled(False)
        self.status.setText("Starting pip…")
        self.progress.setRange(0, 0)  # busy until pip reports a download's size
        self.progress.show()
        self.install_button.hide()
        self.close_button.hide()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        sink = self._output
        fn = functools.partial(
            install_torch,
            self.python,
            on_line=lambda line: sink.put(("line", line)),
            on_fraction=lambda fraction: sink.put(("fraction", fraction)),
            cancel=self._stop_pip,
        )
        self._task = run_task(fn, self._on_done, self._on_failed)
        self._guard.watch(self._stop_pip, self._task)
        self._poll.start()

    @Slot()
    def cancel_install(self) -> None:
        """Stop pip; the dialog stays, says so, and offers the install again."""
        if self.running:
            self._stop_pip.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("Stopping pip…")

    def _finish(self) -> None:
        self._task = None
        self._guard.watch(threading.Event(), None)
        self._poll.stop()
        self._drain()
        self.cancel_button.hide()
        self.close_button.show()
        self.progress.setRange(0, 100)

    @Slot(object)
    def _on_done(self, _plan: object) -> None:
        self._finish()
        self.succeeded = True
        self.progress.setValue(100)
        self.status.setText(
            f"PyTorch {TORCH_VERSION} is installed for {self.python}; the next Run uses it."
        )
        if self._rerun is not None:
            self.rerun_button.show()
            self.rerun_button.setDefault(True)
            self.rerun_button.setFocus()
        self.installed.emit(self.python)

    @Slot(object, str)
    def _on_failed(self, exc: BaseException, _tb: str) -> None:
        self._finish()
        self.progress.hide()
        self.install_button.setText("Try again")
        self.install_button.show()
        self.intro.setEnabled(True)
        if isinstance(exc, InstallCancelled):
            self.status.setText(
                "Cancelled: pip was stopped. A partly installed PyTorch is repaired by "
                "installing again."
            )
            return
        self.status.setText("PyTorch was not installed.")
        # The reason; pip's own last lines are already in the output above.
        self.error.setText(error_text(exc).split("\n\n", 1)[0])
        self.error.show()

    @Slot()
    def _drain(self) -> None:
        lines: list[str] = []
        while True:
            try:
                kind, value = self._output.get_nowait()
            except queue.Empty:
                break
            if kind == "fraction":
                assert isinstance(value, float)
                self.progress.setRange(0, 100)
                self.progress.setValue(round(value * 100))
            else:
                line = str(value)
                lines.append(line)
                self._phase(line)
        if lines:
            self.output.appendPlainText("\n".join(lines))

    def _phase(self, line: str) -> None:
        for prefix, text in _PHASES:
            if line.startswith(prefix):
                if self.running and prefix != "Downloading":
                    self.progress.setRange(0, 0)
                self.status.setText(text)
                return

    @Slot()
    def _on_rerun(self) -> None:
        """Close and start the job the user asked for, which the install made possible."""
        self.accept()
        if self._rerun is not None and self.succeeded:
            self._rerun()

    # -- closing ------------------------------------------------------------------------------

    def _abandon(self) -> None:
        """Closing while pip runs: stop it, and let no result reach a closed dialog."""
        self._guard()
        self._task = None
        self._poll.stop()

    def reject(self) -> None:
        self._abandon()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._abandon()
        super().closeEvent(event)


class _Guard:
    """The running install of a dialog, to stop from a slot that needs no widget."""

    def __init__(self) -> None:
        self._stop: threading.Event | None = None
        self._task: BackgroundTask | None = None

    def watch(self, stop: threading.Event, task: BackgroundTask | None) -> None:
        self._stop, self._task = stop, task

    def __call__(self, *_args: object) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            self._task.cancel()
        self._stop = self._task = None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def offer_torch_install(
    parent: QWidget,
    error: TorchMissing,
    rerun: Callable[[], None] | None = None,
    rerun_label: str = "Run",
) -> TorchInstallDialog:
    """Show the dialog (window-modal, not blocking) for the interpreter `error` names; after a
    successful install its Run button calls `rerun`."""
    dialog = TorchInstallDialog(error.python, str(error), rerun, rerun_label, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
