"""The Predict panel: try a served model the way SageMaker would be called.

    from trainer_gui.core.serving.launcher import EndpointLauncher
    from trainer_gui.ui.predict_panel import PredictPanel

    launcher = EndpointLauncher()            # one per app
    panel = PredictPanel(launcher, parent)   # a plain QWidget: put it in a dock or a tab
    panel.serve_model(job_id_or_path)        # e.g. from a "Serve" action on a finished job
    ...
    panel.shutdown()                         # at exit: cancels a pending start, closes clients
    launcher.shutdown_all()                  # then remove this app's endpoints (off the GUI thread)

What it does:

* an endpoint picker: the local endpoints (listed from Docker every few seconds while visible),
  "URL…" for any http:// address, and "SageMaker endpoint…" (name and region, InvokeEndpoint
  with the standard AWS credential chain);
* "Serve model…": a model.tar.gz or a model folder (a dropped one too) starts a local endpoint,
  with a progress bar and the container's log shown live in the Log tab; "Stop" removes the
  selected endpoint;
* a request editor for JSON and CSV with editable Content-Type and Accept; Ctrl+Enter sends.
  The Content-Type follows what is sent: typed text goes as JSON (CSV when it is
  comma-separated lines) unless a type was picked by hand ("Auto" goes back to following the
  text, and so does Clear);
* dropping a file (.json, .csv, .npy, an image, anything) sends it with a content type taken from
  its suffix, for that file only: once the file's text is edited, or the editor cleared, the
  type follows the text again (a binary payload's type can be changed for a re-send);
* the response: status code, latency, content type, body pretty-printed (JSON indented, CSV as
  text, NPY as the array), formatted off the GUI thread. When the answer is class
  probabilities (`core.serving.readout`), the classes show as bars, best first: the top
  `TOP_K`, "Show all" for the rest, an example picker for a batch, class names from the
  answer or the model folder (labels.txt, index_to_name.json, ...); "Raw" shows the body;
* it fits a 1280-pixel window beside the jobs: its button rows wrap, and request and response
  stack when the panel is narrower than `SIDE_BY_SIDE_WIDTH`;
* a history of requests (up to `HISTORY_LIMIT`): selecting one shows it, "Re-send" (or a double
  click) sends it again to the endpoint it went to.

Every Docker, HTTP and AWS call runs on the thread pool through the panel's `TaskGroup`
(`ui.tasks`); results come back on the GUI thread, and `shutdown()` cancels what is still pending,
so no result reaches a closed panel. Serving progress and log lines come back through signals of a
QObject that lives on the GUI thread (style-anchors section 8). `launcher` may be None: then only
URLs and SageMaker endpoints can be used.

Signals: `sig_endpoint_started(Endpoint)`, `sig_endpoints_changed(list[Endpoint])`,
`sig_response(HistoryEntry)`, `sig_serve_failed(str)`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QFontDatabase,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QShortcut,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.serving.client import (
    CUSTOM_ATTRIBUTES_MAX,
    SAGEMAKER_PREFIX,
    InvokeResult,
    check_custom_attributes,
    client_for,
    content_type_for,
    format_body,
)
from trainer_gui.core.serving.readout import (
    ClassReadout,
    ClassScore,
    guess_text_content_type,
    labels_from_folder,
    read_classes,
)
from trainer_gui.ui.flow_layout import FlowLayout
from trainer_gui.ui.tasks import BackgroundTask, TaskGroup

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtCore import QMimeData

    from trainer_gui.core.serving.launcher import Endpoint, EndpointLauncher, StartProgress

log = logging.getLogger(__name__)

__all__ = ["HISTORY_LIMIT", "ClassBars", "HistoryEntry", "PredictPanel"]

HISTORY_LIMIT = 100
REFRESH_MS = 5000
LOG_LINES = 5000
TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".txt", ".tsv")
TEXT_MAX_BYTES = 1024 * 1024
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CONTENT_TYPES = [
    "application/json",
    "text/csv",
    "application/x-npy",
    "application/jsonlines",
    "text/plain",
    "image/jpeg",
    "image/png",
    "application/octet-stream",
]
ACCEPTS = ["application/json", "text/csv", "application/x-npy", "*/*"]
KIND_LOCAL, KIND_URL, KIND_SAGEMAKER = "local", "url", "sagemaker"
TOP_K = 5
SHOW_ALL_LIMIT = 1000  # bars at most; the raw body has the rest
SIDE_BY_SIDE_WIDTH = 760  # narrower: the response goes under the request
MIN_WIDTH = 320
GUESS_NOW_CHARS = 64 * 1024  # a longer typed request has its type guessed after a pause


@dataclass
class HistoryEntry:
    """One request sent and what came back (`result`) or why nothing did (`error`)."""

    target: str  # what client_for takes: a URL, or sagemaker:NAME
    label: str  # how the endpoint was shown (its name)
    body: bytes
    content_type: str
    accept: str
    source: str  # "editor" or the file's name
    sent_at: float
    region: str | None = None
    result: InvokeResult | None = None
    error: str | None = None
    formatted: str = ""
    model_dir: str | None = None  # a local endpoint's model folder (for class names)
    type_chosen: bool = False  # the content type was picked by hand, not followed
    readout: ClassReadout | None = None  # the answer as class probabilities, if it is
    custom_attributes: str | None = None  # X-Amzn-SageMaker-Custom-Attributes

    def summary(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.sent_at))
        if self.result is not None:
            outcome = f"{self.result.status}  {self.result.latency_ms:7.1f} ms"
        else:
            outcome = "error" if self.error else "…"
        return f"{when}  {outcome}  {self.content_type}  → {self.label}  ({self.source})"


# -- off the GUI thread ---------------------------------------------------------------------------


class _Relay(QObject):
    """Lives on the GUI thread; a serving start emits its progress and log lines here."""

    progress = Signal(object)
    log_line = Signal(str)

    def emit_safely(self, signal: Any, *args: Any) -> None:  # a pool thread
        try:
            signal.emit(*args)
        except RuntimeError:  # the panel was deleted meanwhile
            log.debug("the predict panel is gone; dropped %r", args)


def _message(exc: BaseException, tb: str) -> str:
    """A failure as the panel shows it: a user error's own sentence, else its type and text."""
    if isinstance(exc, UserError):
        return str(exc)
    log.error("predict panel task failed: %s\n%s", exc, tb)
    return f"{type(exc).__name__}: {exc}"


# -- widgets ------------------------------------------------------------------------------------


def _local_files(mime: QMimeData) -> list[Path]:
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def _is_model(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith(ARCHIVE_SUFFIXES)


class _RequestEditor(QPlainTextEdit):
    """The request body; dropped files go to the panel instead of being inserted as text."""

    def __init__(self, panel: PredictPanel) -> None:
        super().__init__()
        self._panel = panel

    def keyPressEvent(self, event: QKeyEvent) -> None:
        send_keys = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if event.key() in send_keys and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._panel.send()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return bool(_local_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        files = _local_files(source)
        if files:
            self._panel.handle_files(files)
            return
        super().insertFromMimeData(source)


class _ElidedLabel(QLabel):
    """A class name: as wide as the column gives it, "…" where it does not fit (full in the
    tooltip), so a long name never widens the panel."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.setToolTip(text)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.width()
        )
        painter.setPen(self.palette().color(self.foregroundRole()))
        align = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft
        painter.drawText(self.rect(), int(align), shown)

    def shown_text(self) -> str:
        """What is painted (elided to the label's width)."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.width())


def _percent(p: float) -> str:
    if 0.0 < p < 0.0005:
        return "<0.1%"
    return f"{p:.1%}"


class ClassBars(QWidget):
    """Class probabilities as bars, best first (Create ML's preview): the top `TOP_K`, or all
    of them; for a batch, a picker for the example shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.readout: ClassReadout | None = None
        self._show_all = False
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 4, 0, 0)
        head = QWidget()
        head_layout = FlowLayout(head)
        self.example_combo = QComboBox()
        self.example_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.example_combo.setMinimumContentsLength(18)
        self.example_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.example_combo.setToolTip("The request held a batch: the example shown")
        self.example_combo.currentIndexChanged.connect(self._fill)
        self.more_button = QPushButton("Show all")
        self.more_button.setToolTip(f"Every class, or the top {TOP_K}")
        self.more_button.clicked.connect(self.toggle_all)
        self.source_label = QLabel()
        self.source_label.setEnabled(False)  # a quiet note, in the disabled text colour
        for widget in (self.example_combo, self.more_button, self.source_label):
            head_layout.addWidget(widget)
        root.addWidget(head)
        self.rows_host = QWidget()
        rows_layout = QVBoxLayout(self.rows_host)
        rows_layout.setContentsMargins(0, 0, 4, 0)
        self.grid = QGridLayout()
        rows_layout.addLayout(self.grid)
        rows_layout.addStretch(1)
        self.grid.setColumnStretch(0, 2)
        self.grid.setColumnStretch(1, 3)
        self.grid.setColumnMinimumWidth(2, self.fontMetrics().horizontalAdvance("100.0%") + 4)
        self.rows_scroll = QScrollArea()
        self.rows_scroll.setWidgetResizable(True)
        self.rows_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.rows_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rows_scroll.setWidget(self.rows_host)
        root.addWidget(self.rows_scroll, 1)
        self._rows: list[tuple[_ElidedLabel, QProgressBar, QLabel]] = []

    def set_readout(self, readout: ClassReadout | None) -> None:
        """Show these probabilities (the first example, top `TOP_K`), or nothing."""
        self.readout = readout
        self._show_all = False
        combo = self.example_combo
        combo.blockSignals(True)
        combo.clear()
        if readout is not None and len(readout.rows) > 1:
            for i, row in enumerate(readout.rows):
                best = f"{row[0].label} {_percent(row[0].probability)}"
                combo.addItem(f"Example {i + 1} of {len(readout.rows)}: {best}")
        combo.blockSignals(False)
        combo.setVisible(combo.count() > 1)
        source = readout.labels_from if readout is not None else ""
        self.source_label.setText(
            "class names from the model folder" if source == "model folder" else ""
        )
        self.source_label.setVisible(bool(self.source_label.text()))
        self._fill()

    def example(self) -> int:
        return max(self.example_combo.currentIndex(), 0)

    @Slot()
    def toggle_all(self) -> None:
        self._show_all = not self._show_all
        self._fill()

    def shown(self) -> list[tuple[str, str]]:
        """(class name, percentage) of each bar, top to bottom."""
        return [(name.text(), pct.text()) for name, _, pct in self._rows]

    def bars(self) -> list[tuple[_ElidedLabel, QProgressBar, QLabel]]:
        return list(self._rows)

    @Slot()
    def _fill(self) -> None:
        for row in self._rows:
            for widget in row:
                self.grid.removeWidget(widget)
                widget.deleteLater()
        self._rows = []
        readout = self.readout
        if readout is None:
            self.more_button.hide()
            return
        scores = readout.rows[self.example()]
        many = len(scores) > TOP_K
        self.more_button.setVisible(many)
        self.more_button.setText(f"Top {TOP_K}" if self._show_all else f"Show all {len(scores)}")
        shown: list[ClassScore] = scores[:SHOW_ALL_LIMIT] if self._show_all else scores[:TOP_K]
        for i, score in enumerate(shown):
            name = _ElidedLabel(score.label)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(score.probability * 1000))
            bar.setTextVisible(False)
            bar.setMaximumHeight(max(10, self.fontMetrics().height() - 2))
            bar.setToolTip(f"{score.label}: {score.probability:.6g} (output {score.index})")
            pct = QLabel(_percent(score.probability))
            pct.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if i == 0:
                bold = QFont(name.font())
                bold.setBold(True)
                name.setFont(bold)
                pct.setFont(bold)
            self.grid.addWidget(name, i, 0)
            self.grid.addWidget(bar, i, 1)
            self.grid.addWidget(pct, i, 2)
            self._rows.append((name, bar, pct))


class PredictPanel(QWidget):
    """Send requests to local or SageMaker endpoints and read the answers (see the module doc)."""

    sig_endpoint_started = Signal(object)
    sig_endpoints_changed = Signal(object)
    sig_response = Signal(object)
    sig_serve_failed = Signal(str)

    def __init__(self, launcher: EndpointLauncher | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PredictPanel")
        self.launcher = launcher
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.log_line.connect(self._on_log_line)
        self._tasks = TaskGroup(self)
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._clients_lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        self._history: list[HistoryEntry] = []
        self._binary: tuple[str, bytes] | None = None
        self._binary_type = ""  # the binary payload's content type (its file's, or edited)
        self._file_type: str | None = None  # a text file's type, until its text is edited
        self._type_chosen: str | None = None  # picked by hand; None: follow the text
        self._setting_text = False
        self._prefer_raw = False  # "Raw" was last chosen over the class bars
        self._refreshing = False
        self._first_refresh = True
        self._serving_cancel: threading.Event | None = None
        self._pending_select: str | None = None
        self._auto_target = True  # nothing picked by hand yet: follow the local endpoints
        self._build()
        self.setAcceptDrops(True)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._auto_refresh)
        self._timer.start()
        QTimer.singleShot(0, self.refresh_endpoints)

    # -- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        root = QVBoxLayout(self)
        self.setMinimumWidth(MIN_WIDTH)

        # The endpoint row wraps: Serve and Stop go under the picker in a narrow dock.
        self.top_row = QWidget()
        top = FlowLayout(self.top_row)
        picker = QWidget()
        picker.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        picker_layout = QHBoxLayout(picker)
        picker_layout.setContentsMargins(0, 0, 0, 0)
        picker_layout.addWidget(QLabel("Endpoint:"))
        self.endpoint_combo = QComboBox()
        self.endpoint_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.endpoint_combo.setMinimumContentsLength(22)
        self.endpoint_combo.currentIndexChanged.connect(self._on_target_picked)
        picker_layout.addWidget(self.endpoint_combo, 1)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("List the local endpoints again")
        self.refresh_button.clicked.connect(self.refresh_endpoints)
        picker_layout.addWidget(self.refresh_button)
        top.addWidget(picker)
        serving = QWidget()  # Serve and Stop wrap together
        serving_layout = QHBoxLayout(serving)
        serving_layout.setContentsMargins(0, 0, 0, 0)
        self.serve_button = QPushButton("Serve model…")
        self.serve_button.setToolTip("Start a local endpoint on a model.tar.gz or a model folder")
        self.serve_button.clicked.connect(self._choose_model)
        serving_layout.addWidget(self.serve_button)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Remove the selected local endpoint's container")
        self.stop_button.clicked.connect(self.stop_selected)
        serving_layout.addWidget(self.stop_button)
        top.addWidget(serving)
        root.addWidget(self.top_row)

        self.target_row = QWidget()
        target_form = QHBoxLayout(self.target_row)
        target_form.setContentsMargins(0, 0, 0, 0)
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("http://127.0.0.1:8080")
        self.sagemaker_name = QLineEdit()
        self.sagemaker_name.setPlaceholderText("SageMaker endpoint name")
        self.sagemaker_region = QLineEdit()
        self.sagemaker_region.setPlaceholderText("region (default: your AWS config)")
        for widget in (self.url_edit, self.sagemaker_name, self.sagemaker_region):
            target_form.addWidget(widget)
        self.target_row.hide()
        root.addWidget(self.target_row)

        self.serve_row = QWidget()
        serve_layout = QHBoxLayout(self.serve_row)
        serve_layout.setContentsMargins(0, 0, 0, 0)
        self.serve_progress = QProgressBar()
        self.serve_progress.setRange(0, 1000)
        self.serve_label = QLabel()
        self.serve_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.serve_cancel = QPushButton("Cancel")
        self.serve_cancel.clicked.connect(self.cancel_serving)
        serve_layout.addWidget(self.serve_label, 1)
        serve_layout.addWidget(self.serve_progress, 1)
        serve_layout.addWidget(self.serve_cancel)
        self.serve_row.hide()
        root.addWidget(self.serve_row)

        self.splitter = splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        # Request side.
        request = QWidget()
        request_layout = QVBoxLayout(request)
        request_layout.setContentsMargins(0, 0, 0, 0)
        types = QFormLayout()
        types.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.content_type_combo = QComboBox()
        self.content_type_combo.setEditable(True)
        self.content_type_combo.addItems(CONTENT_TYPES)
        self.content_type_combo.setToolTip(
            "Follows the request (JSON, or CSV for comma-separated lines; a dropped file's own "
            "type) unless you pick one"
        )
        self.content_type_combo.activated.connect(self._on_type_activated)
        line_edit = self.content_type_combo.lineEdit()
        if line_edit is not None:
            line_edit.textEdited.connect(self._on_type_by_user)
        self.type_auto_button = QToolButton()
        self.type_auto_button.setText("Auto")
        self.type_auto_button.setToolTip(
            "Follow the request again: JSON, or CSV for comma-separated lines"
        )
        self.type_auto_button.clicked.connect(self.follow_request_type)
        self.type_auto_button.hide()
        type_row = QHBoxLayout()
        type_row.setContentsMargins(0, 0, 0, 0)
        type_row.addWidget(self.content_type_combo, 1)
        type_row.addWidget(self.type_auto_button)
        self.accept_combo = QComboBox()
        self.accept_combo.setEditable(True)
        self.accept_combo.addItems(ACCEPTS)
        types.addRow("Content-Type:", type_row)
        types.addRow("Accept:", self.accept_combo)
        self.attributes_edit = QLineEdit()
        self.attributes_edit.setMaxLength(CUSTOM_ATTRIBUTES_MAX)
        self.attributes_edit.setPlaceholderText("optional, e.g. trace=42")
        self.attributes_edit.setToolTip(
            "Sent as X-Amzn-SageMaker-Custom-Attributes (InvokeEndpoint's CustomAttributes); "
            'handlers read it with context.get_request_header(0, "X-Amzn-SageMaker-Custom-'
            'Attributes")'
        )
        types.addRow("Custom attributes:", self.attributes_edit)
        request_layout.addLayout(types)
        self.editor = _RequestEditor(self)
        self.editor.setFont(mono)
        self.editor.setPlaceholderText(
            "Request body, e.g. [[0.5, -1.2, 0.1, 0.3]] (JSON) or 0.5,-1.2,0.1,0.3 (CSV).\n"
            "Drop a file here (.json, .csv, .npy, an image, anything) to send it."
        )
        self.editor.textChanged.connect(self._on_editor_changed)
        self._guess_timer = QTimer(self)
        self._guess_timer.setSingleShot(True)
        self._guess_timer.setInterval(300)
        self._guess_timer.timeout.connect(self._show_request_type)
        request_layout.addWidget(self.editor, 1)
        self.buttons_row = QWidget()
        buttons = FlowLayout(self.buttons_row)
        self.send_button = QPushButton("Send")
        self.send_button.setToolTip("Send the request (Ctrl+Enter)")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.open_button = QPushButton("Send file…")
        self.open_button.clicked.connect(self._choose_file)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the request; its Content-Type follows the text again")
        self.clear_button.clicked.connect(self.clear_request)
        for button in (self.send_button, self.open_button, self.clear_button):
            buttons.addWidget(button)
        request_layout.addWidget(self.buttons_row)
        splitter.addWidget(request)

        # Response side: response, history, container log.
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        response = QWidget()
        response_layout = QVBoxLayout(response)
        response_layout.setContentsMargins(0, 0, 0, 0)
        facts = QHBoxLayout()
        self.status_label = QLabel("No request yet")
        self.status_label.setWordWrap(True)  # a long message wraps, never widens the panel
        bold = QFont(self.status_label.font())
        bold.setBold(True)
        self.status_label.setFont(bold)
        self.latency_label = QLabel("")
        self.type_label = QLabel("")
        self.type_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.raw_button = QToolButton()
        self.raw_button.setText("Raw")
        self.raw_button.setCheckable(True)
        self.raw_button.setToolTip("The answer as it came (JSON), instead of the class bars")
        self.raw_button.toggled.connect(self._on_raw_toggled)
        self.raw_button.hide()
        facts.addWidget(self.status_label, 1)
        facts.addWidget(self.latency_label)
        facts.addWidget(self.type_label, 1)
        facts.addWidget(self.raw_button)
        response_layout.addLayout(facts)
        self.response_view = QPlainTextEdit()
        self.response_view.setReadOnly(True)
        self.response_view.setFont(mono)
        self.class_bars = ClassBars()
        self.response_stack = QStackedWidget()
        self.response_stack.addWidget(self.response_view)
        self.response_stack.addWidget(self.class_bars)
        response_layout.addWidget(self.response_stack, 1)
        self.tabs.addTab(response, "Response")

        history = QWidget()
        history_layout = QVBoxLayout(history)
        history_layout.setContentsMargins(0, 0, 0, 0)
        self.history_list = QListWidget()
        self.history_list.setFont(mono)
        self.history_list.currentRowChanged.connect(self._show_history)
        self.history_list.itemDoubleClicked.connect(self._resend_item)
        history_layout.addWidget(self.history_list, 1)
        self.resend_button = QPushButton("Re-send")
        self.resend_button.clicked.connect(self.resend_selected)
        history_layout.addWidget(self.resend_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.tabs.addTab(history, "History")

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setFont(mono)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.tabs.addTab(self.log_view, "Container log")
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        root.addWidget(splitter, 1)

        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self)
        shortcut.activated.connect(self.send)
        self._fill_targets()
        self._show_request_type()

    def sizeHint(self) -> QSize:
        """Room for the request over the response in a dock beside the jobs."""
        return QSize(440, super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        wide = event.size().width() >= SIDE_BY_SIDE_WIDTH
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.splitter.orientation() != orientation:
            self.splitter.setOrientation(orientation)
            self.splitter.setStretchFactor(0, 1 if wide else 2)
            self.splitter.setStretchFactor(1, 1 if wide else 3)
            QTimer.singleShot(0, self, self._share_splitter)

    @Slot()
    def _share_splitter(self) -> None:
        """Once laid out: stacked, the answer gets the larger share; side by side, halves."""
        wide = self.splitter.orientation() == Qt.Orientation.Horizontal
        total = sum(self.splitter.sizes())
        if total > 0:
            first = round(total * (0.5 if wide else 0.4))
            self.splitter.setSizes([first, total - first])

    # -- background work -----------------------------------------------------------------------

    def _run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None],
        cancel_event: threading.Event | None = None,
    ) -> BackgroundTask:
        return self._tasks.run(
            fn,
            on_done,
            lambda exc, tb: on_failed(_message(exc, tb)),
            cancel_event=cancel_event,
        )

    @property
    def busy(self) -> bool:
        """True while a request, a listing or a start is under way."""
        return self._tasks.pending > 0

    # -- endpoints ------------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """The local endpoints as last listed."""
        return list(self._endpoints)

    @Slot()
    def refresh_endpoints(self) -> None:
        """List the local endpoints again (off the GUI thread); the first time, also remove
        the endpoints a crashed session left behind."""
        launcher = self.launcher
        if launcher is None or self._refreshing:
            return
        self._refreshing = True
        cleanup = self._first_refresh
        self._first_refresh = False

        def work() -> list[Endpoint]:
            if cleanup:
                launcher.cleanup_orphans()
            return launcher.list_endpoints()

        self._run(work, self._on_endpoints, self._on_endpoints_failed)

    def _auto_refresh(self) -> None:
        if self.isVisible():
            self.refresh_endpoints()

    def _on_endpoints(self, endpoints: list[Endpoint]) -> None:
        self._refreshing = False
        changed = [(e.name, e.url, e.state) for e in endpoints] != [
            (e.name, e.url, e.state) for e in self._endpoints
        ]
        self._endpoints = list(endpoints)
        if changed:
            self._fill_targets()
            self.sig_endpoints_changed.emit(list(endpoints))

    def _on_endpoints_failed(self, message: str) -> None:
        self._refreshing = False
        self.endpoint_combo.setToolTip(f"Local endpoints unavailable: {message}")

    def _fill_targets(self) -> None:
        current = self.endpoint_combo.currentData()
        wanted = self._pending_select
        combo = self.endpoint_combo
        combo.blockSignals(True)
        combo.clear()
        for endpoint in self._endpoints:
            state = "" if endpoint.state in ("", "running") else f" ({endpoint.state})"
            combo.addItem(
                f"{endpoint.name} — {endpoint.url or 'no port'}{state}", (KIND_LOCAL, endpoint.name)
            )
        combo.addItem("URL…", (KIND_URL, ""))
        combo.addItem("SageMaker endpoint…", (KIND_SAGEMAKER, ""))
        index = 0 if self._endpoints else combo.count() - 2  # else URL…: nothing local
        keep = current is not None and not (self._auto_target and current[0] != KIND_LOCAL)
        for i in range(combo.count()):
            data = combo.itemData(i)
            if wanted is not None and data == (KIND_LOCAL, wanted):
                index = i
                self._pending_select = None
                break
            if keep and data == current:
                index = i
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        self._on_target_changed()

    @Slot(int)
    def _on_target_picked(self, _index: int) -> None:
        self._auto_target = False
        self._on_target_changed()

    def _on_target_changed(self) -> None:
        kind, _ = self.endpoint_combo.currentData() or (KIND_URL, "")
        self.target_row.setVisible(kind != KIND_LOCAL)
        self.url_edit.setVisible(kind == KIND_URL)
        self.sagemaker_name.setVisible(kind == KIND_SAGEMAKER)
        self.sagemaker_region.setVisible(kind == KIND_SAGEMAKER)
        self.stop_button.setEnabled(kind == KIND_LOCAL and self.launcher is not None)

    def select_endpoint(self, name: str) -> bool:
        """Pick a local endpoint by name (False if it is not listed)."""
        for i in range(self.endpoint_combo.count()):
            if self.endpoint_combo.itemData(i) == (KIND_LOCAL, name):
                self.endpoint_combo.setCurrentIndex(i)
                return True
        return False

    def select_sagemaker(self, name: str, region: str | None = None) -> None:
        """Target a deployed SageMaker endpoint."""
        self.endpoint_combo.setCurrentIndex(self.endpoint_combo.count() - 1)
        self.sagemaker_name.setText(name)
        self.sagemaker_region.setText(region or "")

    def select_url(self, url: str) -> None:
        """Target any endpoint by its http:// address."""
        self.endpoint_combo.setCurrentIndex(self.endpoint_combo.count() - 2)
        self.url_edit.setText(url)

    def current_target(self) -> tuple[str, str, str | None]:
        """(what client_for takes, a label, region) for the selection; UserError if incomplete."""
        kind, name = self.endpoint_combo.currentData() or (KIND_URL, "")
        if kind == KIND_LOCAL:
            endpoint = next((e for e in self._endpoints if e.name == name), None)
            if endpoint is None or not endpoint.url:
                raise UserError(f"endpoint {name} has no address (is it running?)")
            return endpoint.url, endpoint.name, None
        if kind == KIND_SAGEMAKER:
            sm_name = self.sagemaker_name.text().strip()
            if not sm_name:
                raise UserError("type the SageMaker endpoint's name")
            region = self.sagemaker_region.text().strip() or None
            return f"{SAGEMAKER_PREFIX}{sm_name}", sm_name, region
        url = self.url_edit.text().strip()
        if not url:
            raise UserError("type the endpoint's URL, e.g. http://127.0.0.1:8080")
        return url, url, None

    # -- serving ----------------------------------------------------------------------------------

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Serve a model", "", "Model archives (*.tar.gz *.tgz *.tar);;All files (*)"
        )
        if path:
            self.serve_model(path)

    def serve_model(self, model: str | Path, **options: Any) -> bool:
        """Start a local endpoint on a job, model.tar.gz or folder; progress and log show here.

        `options` go to `EndpointLauncher.start` (image, name, port, environment, ...).
        Returns False when no launcher is set or a start is already under way.
        """
        launcher = self.launcher
        if launcher is None or self._serving_cancel is not None:
            return False
        cancel = threading.Event()
        self._serving_cancel = cancel
        relay = self._relay
        self.serve_row.show()
        self.serve_progress.setValue(0)
        self.serve_label.setText(f"Starting {Path(str(model)).name}…")
        self.serve_button.setEnabled(False)
        self.log_view.appendPlainText(f"== serving {model}")

        def emit_progress(progress: StartProgress) -> None:
            relay.emit_safely(relay.progress, progress)

        def emit_log(line: str) -> None:
            relay.emit_safely(relay.log_line, line)

        def work() -> Endpoint:
            return launcher.start(
                model, on_progress=emit_progress, on_log=emit_log, cancel=cancel, **options
            )

        # The Cancel button sets `cancel` and waits for the start to give up (its error slot
        # resets the row); `shutdown()` cancels the task itself, and no slot runs.
        self._run(work, self._on_served, self._on_serve_failed)
        return True

    @Slot()
    def cancel_serving(self) -> None:
        if self._serving_cancel is not None:
            self._serving_cancel.set()
            self.serve_label.setText("Cancelling…")

    @Slot(object)
    def _on_progress(self, progress: StartProgress) -> None:
        self.serve_progress.setValue(int(progress.fraction * 1000))
        self.serve_label.setText(progress.message)

    @Slot(str)
    def _on_log_line(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _serving_over(self) -> None:
        self._serving_cancel = None
        self.serve_button.setEnabled(True)
        self.serve_row.hide()

    def _on_served(self, endpoint: Endpoint) -> None:
        self._serving_over()
        self._endpoints = [e for e in self._endpoints if e.name != endpoint.name] + [endpoint]
        self._pending_select = endpoint.name
        self._fill_targets()
        self.status_label.setText(f"{endpoint.name} is ready at {endpoint.url}")
        self.sig_endpoint_started.emit(endpoint)
        self.sig_endpoints_changed.emit(list(self._endpoints))

    def _on_serve_failed(self, message: str) -> None:
        self._serving_over()
        self.log_view.appendPlainText(message)
        self.status_label.setText("Serving failed")
        self.response_view.setPlainText(message)
        self._show_readout(None)
        self.tabs.setCurrentIndex(0)
        self.sig_serve_failed.emit(message)

    @Slot()
    def stop_selected(self) -> None:
        """Remove the selected local endpoint (off the GUI thread)."""
        kind, name = self.endpoint_combo.currentData() or (KIND_URL, "")
        launcher = self.launcher
        if kind != KIND_LOCAL or launcher is None:
            return
        self.stop_button.setEnabled(False)

        def stopped(_: object) -> None:
            self._endpoints = [e for e in self._endpoints if e.name != name]
            self._fill_targets()
            self.status_label.setText(f"Stopped {name}")
            self.sig_endpoints_changed.emit(list(self._endpoints))

        def failed(message: str) -> None:
            self._on_target_changed()
            self.status_label.setText(f"Could not stop {name}: {message}")

        self._run(lambda: launcher.stop(name), stopped, failed)

    # -- requests ---------------------------------------------------------------------------------

    def set_request(
        self, body: str | bytes, content_type: str | None = None, accept: str | None = None
    ) -> None:
        """Put a request in the editor (bytes that are not UTF-8 text become a binary payload).

        With a `content_type` the request goes with that type, as if picked by hand; without
        one it follows the text (JSON, or CSV for comma-separated lines).
        """
        self._binary = None
        self._file_type = None
        self._type_chosen = None
        self.editor.setReadOnly(False)
        if isinstance(body, bytes):
            try:
                text = body.decode("utf-8")
                if "\x00" in text:
                    raise UnicodeDecodeError("utf-8", body, 0, 1, "NUL")
            except UnicodeDecodeError:
                self._set_binary("payload", body, content_type or "application/octet-stream")
                text = None
        else:
            text = body
        if text is not None:
            self._set_editor_text(text)
            self._type_chosen = content_type.strip() if content_type else None
        if accept:
            self.accept_combo.setCurrentText(accept)
        self._show_request_type()

    def _set_editor_text(self, text: str) -> None:
        self._setting_text = True
        try:
            self.editor.setPlainText(text)
        finally:
            self._setting_text = False

    def _set_binary(self, name: str, data: bytes, content_type: str) -> None:
        self._binary = (name, data)
        self._binary_type = content_type
        self._file_type = None
        preview = ""
        if len(data) <= TEXT_MAX_BYTES and content_type == "application/x-npy":
            preview = "\n\n" + format_body(data, content_type, limit=4000)
        self._set_editor_text(
            f"<{name}: {len(data):,} bytes of {content_type}; Clear to type a request>{preview}"
        )
        self.editor.setReadOnly(True)
        self._show_request_type()

    @Slot()
    def clear_request(self) -> None:
        """Empty the request; its content type follows the text again."""
        self._binary = None
        self._file_type = None
        self._type_chosen = None
        self.editor.setReadOnly(False)
        self._set_editor_text("")
        self._show_request_type()

    # -- the request's content type ----------------------------------------------------------

    def request_content_type(self) -> str:
        """The type the request in the editor goes with: the payload's (a binary file's, or
        what was typed over it), a text file's until the text is edited, one picked by hand,
        else what the text looks like."""
        if self._binary is not None:
            return self._binary_type or "application/octet-stream"
        if self._file_type is not None:
            return self._file_type
        if self._type_chosen is not None:
            return self._type_chosen
        return guess_text_content_type(self.editor.toPlainText())

    def type_is_chosen(self) -> bool:
        """Whether the text goes with a type picked by hand (not followed from the text)."""
        return self._binary is None and self._file_type is None and self._type_chosen is not None

    @Slot()
    def follow_request_type(self) -> None:
        """Forget a type picked by hand: the text's own type again."""
        self._type_chosen = None
        self._file_type = None
        self._show_request_type()

    def _show_request_type(self) -> None:
        self._guess_timer.stop()
        shown = self.request_content_type()
        if self.content_type_combo.currentText() != shown:
            self.content_type_combo.setCurrentText(shown)  # emits no activated / textEdited
        self.type_auto_button.setVisible(self.type_is_chosen())

    @Slot(int)
    def _on_type_activated(self, index: int) -> None:
        self._on_type_by_user(self.content_type_combo.itemText(index))

    @Slot(str)
    def _on_type_by_user(self, text: str) -> None:
        """A type picked or typed in the box: for the payload, else for the text."""
        text = text.strip()
        if self._binary is not None:
            self._binary_type = text
            return
        self._file_type = None
        self._type_chosen = text or None
        self.type_auto_button.setVisible(self.type_is_chosen())

    @Slot()
    def _on_editor_changed(self) -> None:
        if self._setting_text or self._binary is not None:
            return
        self._file_type = None  # edited: no longer the file as it was
        if self._type_chosen is not None:
            return
        if self.editor.document().characterCount() <= GUESS_NOW_CHARS:
            self._show_request_type()
        else:
            self._guess_timer.start()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Send a file", "", "All files (*)")
        if path:
            self.send_file(path)

    def handle_files(self, files: list[Path]) -> None:
        """Dropped files: a model archive or folder is served, anything else is sent."""
        for path in files:
            if _is_model(path):
                self.serve_model(path)
                return
        if files:
            self.send_file(files[0])

    def send_file(self, path: str | Path) -> bool:
        """Load a file as the request, with the content type of its suffix, and send it."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.status_label.setText(f"Cannot read {path.name}: {exc.strerror or exc}")
            return False
        content_type = content_type_for(path)
        if path.suffix.lower() in TEXT_SUFFIXES and len(data) <= TEXT_MAX_BYTES:
            try:
                self.set_request(data.decode("utf-8"))
                self._file_type = content_type  # for this file, until its text is edited
                self._show_request_type()
            except UnicodeDecodeError:
                self._set_binary(path.name, data, content_type)
        else:
            self._set_binary(path.name, data, content_type)
        return self._send(data, content_type, path.name)

    def _request_body(self) -> bytes:
        if self._binary is not None:
            return self._binary[1]
        return self.editor.toPlainText().encode("utf-8")

    @Slot()
    def send(self) -> bool:
        """Send what the editor holds to the selected endpoint; False if nothing was sent."""
        source = self._binary[0] if self._binary is not None else "editor"
        content_type = self.request_content_type()
        self._show_request_type()
        return self._send(self._request_body(), content_type, source, self.type_is_chosen())

    def _send(self, body: bytes, content_type: str, source: str, chosen: bool = False) -> bool:
        try:
            target, label, region = self.current_target()
            attributes = check_custom_attributes(self.attributes_edit.text())
        except UserError as exc:
            self.status_label.setText(str(exc))
            return False
        kind, name = self.endpoint_combo.currentData() or (KIND_URL, "")
        endpoint = next((e for e in self._endpoints if e.name == name), None)
        model_dir = endpoint.model_dir if kind == KIND_LOCAL and endpoint is not None else None
        entry = HistoryEntry(
            target=target,
            label=label,
            body=body,
            content_type=content_type,
            accept=self.accept_combo.currentText().strip(),
            source=source,
            sent_at=time.time(),
            region=region,
            model_dir=model_dir or None,
            type_chosen=chosen,
            custom_attributes=attributes,
        )
        self._dispatch(entry)
        return True

    def _client(self, target: str, region: str | None) -> Any:
        with self._clients_lock:
            key = (target, region)
            if key not in self._clients:
                self._clients[key] = client_for(target, region=region)
            return self._clients[key]

    def _dispatch(self, entry: HistoryEntry) -> None:
        self.status_label.setText(f"Sending to {entry.label}…")
        self.latency_label.setText("")
        self.type_label.setText("")
        self.send_button.setEnabled(False)

        def work() -> HistoryEntry:
            client = self._client(entry.target, entry.region)
            result = client.invoke(
                entry.body, entry.content_type, entry.accept or None, entry.custom_attributes
            )
            entry.result = result
            entry.formatted = format_body(result.body, result.content_type)
            if result.ok:
                labels = labels_from_folder(entry.model_dir)
                entry.readout = read_classes(result.body, result.content_type, labels)
            return entry

        def failed(message: str) -> None:
            entry.error = message
            self._record(entry)

        self._run(work, self._record, failed)

    def _record(self, entry: HistoryEntry) -> None:
        self.send_button.setEnabled(True)
        self._history.append(entry)
        item = QListWidgetItem(entry.summary())
        self.history_list.addItem(item)
        while len(self._history) > HISTORY_LIMIT:
            self._history.pop(0)
            self.history_list.takeItem(0)
        self.history_list.blockSignals(True)
        self.history_list.setCurrentRow(len(self._history) - 1)
        self.history_list.blockSignals(False)
        self._show(entry)
        self.sig_response.emit(entry)

    def _show(self, entry: HistoryEntry) -> None:
        result = entry.result
        if result is None:
            self.status_label.setText("No answer")
            self.status_label.setStyleSheet("color: #b00020;")
            self.latency_label.setText("")
            self.type_label.setText("")
            self.response_view.setPlainText(entry.error or "")
            self._show_readout(None)
            return
        from http import HTTPStatus

        try:
            phrase = HTTPStatus(result.status).phrase
        except ValueError:
            phrase = ""
        self.status_label.setText(f"{result.status} {phrase}".strip())
        self.status_label.setStyleSheet("color: #1b7f3b;" if result.ok else "color: #b00020;")
        self.latency_label.setText(f"{result.latency_ms:.1f} ms")
        self.type_label.setText(result.content_type)
        self.response_view.setPlainText(entry.formatted)
        self._show_readout(entry.readout)

    def _show_readout(self, readout: ClassReadout | None) -> None:
        """Class bars for class probabilities (unless "Raw" was chosen), else the body."""
        self.class_bars.set_readout(readout)
        self.raw_button.setVisible(readout is not None)
        self.raw_button.blockSignals(True)
        self.raw_button.setChecked(self._prefer_raw)
        self.raw_button.blockSignals(False)
        bars = readout is not None and not self._prefer_raw
        self.response_stack.setCurrentWidget(self.class_bars if bars else self.response_view)

    @Slot(bool)
    def _on_raw_toggled(self, raw: bool) -> None:
        self._prefer_raw = raw
        has_bars = self.class_bars.readout is not None
        bars = has_bars and not raw
        self.response_stack.setCurrentWidget(self.class_bars if bars else self.response_view)

    def history(self) -> list[HistoryEntry]:
        return list(self._history)

    @Slot(int)
    def _show_history(self, row: int) -> None:
        if 0 <= row < len(self._history):
            entry = self._history[row]
            self._show(entry)
            self.accept_combo.setCurrentText(entry.accept)
            self.attributes_edit.setText(entry.custom_attributes or "")
            if entry.source == "editor":
                chosen = entry.content_type if entry.type_chosen else None
                self.set_request(entry.body, chosen, entry.accept)
            else:
                self._set_binary(entry.source, entry.body, entry.content_type)

    def resend(self, index: int) -> bool:
        """Send history entry `index` again, to the endpoint it went to."""
        if not 0 <= index < len(self._history):
            return False
        old = self._history[index]
        entry = HistoryEntry(
            target=old.target,
            label=old.label,
            body=old.body,
            content_type=old.content_type,
            accept=old.accept,
            source=old.source,
            sent_at=time.time(),
            region=old.region,
            model_dir=old.model_dir,
            type_chosen=old.type_chosen,
        )
        self._dispatch(entry)
        return True

    @Slot()
    def resend_selected(self) -> None:
        self.resend(self.history_list.currentRow())

    @Slot(QListWidgetItem)
    def _resend_item(self, item: QListWidgetItem) -> None:
        self.resend(self.history_list.row(item))

    # -- drops and shutdown -----------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = _local_files(event.mimeData())
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.handle_files(files)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop refreshing, cancel pending work (a start included: none of their results is
        shown), close the HTTP connections (keeps endpoints: call `launcher.shutdown_all()`
        for that)."""
        self._timer.stop()
        self._tasks.cancel_all()
        if self._serving_cancel is not None:
            self._serving_cancel.set()
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                client.close()
            except Exception:
                log.debug("closing a client failed", exc_info=True)
