"""Export a spec for SageMaker: runnable SDK V3 (ModelTrainer) and V2 (PyTorch estimator) code, and
the CreateTrainingJob request as JSON, the same texts as `trainer-gui sagemaker export`.

The plan behind them may ask AWS for the default bucket (a spec without an S3 prefix), so it is
made on the thread pool; the dialog shows a busy line meanwhile, then the three texts, the notes
about placeholders above them, and any error inline.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.spec.model import JobSpec
from trainer_gui.ui.icons import ERROR_COLOR, app_icon
from trainer_gui.ui.tasks import error_text, run_task

log = logging.getLogger(__name__)

# (format, tab title, file name suffix, file dialog filter)
FORMATS: list[tuple[str, str, str, str]] = [
    ("v3", "SageMaker SDK v3 (ModelTrainer)", "_sagemaker_v3.py", "Python (*.py)"),
    ("v2", "SDK v2 (PyTorch estimator)", "_sagemaker_v2.py", "Python (*.py)"),
    ("request", "CreateTrainingJob request (JSON)", "_sagemaker_request.json", "JSON (*.json)"),
]


def export_texts(spec: JobSpec) -> tuple[dict[str, str], list[str]]:
    """Every format the dialog shows, and the notes (blocking: run it on a worker thread)."""
    from trainer_gui.core.aws.export import export_spec

    return export_spec(spec, tuple(fmt for fmt, _, _, _ in FORMATS))


def format_title(spec: JobSpec, fmt: str, title: str) -> str:
    """A spec naming an AWS Batch queue exports the SubmitServiceJob request that carries the
    CreateTrainingJob request, so its tab says so."""
    if fmt == "request" and spec.sagemaker.batch_queue:
        return "SubmitServiceJob request (JSON)"
    return title


def how_to_run(spec: JobSpec) -> str:
    """The line above the texts: how each one is run, for a queued spec through AWS Batch."""
    if spec.sagemaker.batch_queue:
        return (
            f"The job goes to the AWS Batch training queue {spec.sagemaker.batch_queue}: run "
            "the code with the SageMaker Python SDK (it submits through TrainingQueue), or send "
            "the request with `aws batch submit-service-job --cli-input-json` (a service job "
            "carrying the CreateTrainingJob request). The job name in them is an example."
        )
    return (
        "Run the code with the SageMaker Python SDK, or send the request with "
        "`aws sagemaker create-training-job --cli-input-json`. The job name in them is an "
        "example."
    )


class ExportDialog(QDialog):
    """The spec as SageMaker SDK code and request JSON, one read-only tab each; Copy, Save As."""

    def __init__(self, spec: JobSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.setWindowTitle(f"Export {spec.name} for SageMaker")
        self.setWindowIcon(app_icon())
        self.setSizeGripEnabled(True)
        self.ready = False
        """True once the texts are shown (False while the plan is made, and after an error)."""

        self.status_label = QLabel("Preparing the export…", self)
        self.status_label.setWordWrap(True)
        self.notes_label = QLabel(self)
        self.notes_label.setWordWrap(True)
        self.notes_label.hide()
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.hide()

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.editors: dict[str, QPlainTextEdit] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for fmt, title, _, _ in FORMATS:
            editor = QPlainTextEdit(self)
            editor.setReadOnly(True)
            editor.setFont(mono)
            editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            editor.setPlaceholderText("Preparing the export…")
            self.editors[fmt] = editor
            self.tabs.addTab(editor, format_title(spec, fmt, title))

        self.buttons = QDialogButtonBox(self)
        self.copy_button: QPushButton = self.buttons.addButton(
            "Copy", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.copy_button.setToolTip("Copy the text of the shown tab to the clipboard")
        self.save_button: QPushButton = self.buttons.addButton(
            "Save As…", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.save_button.setToolTip("Save the text of the shown tab to a file")
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.close_button.clicked.connect(self.reject)
        self.copy_button.setEnabled(False)
        self.save_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addWidget(self.notes_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.buttons)
        self.resize(900, 640)

        def work() -> tuple[dict[str, str], list[str]]:
            return export_texts(spec)

        # Bound slots: Qt drops the result if the dialog is gone by the time it comes.
        run_task(work, self._on_exported, self._on_failed)

    # -- results -----------------------------------------------------------------------------

    @Slot(object)
    def _on_exported(self, result: tuple[dict[str, str], list[str]]) -> None:
        texts, notes = result
        for fmt, editor in self.editors.items():
            editor.setPlainText(texts.get(fmt, ""))
        self.status_label.setText(how_to_run(self.spec))
        if notes:
            items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            self.notes_label.setText(f"Notes:<ul style='margin: 0'>{items}</ul>")
            self.notes_label.show()
        self.ready = True
        self.copy_button.setEnabled(True)
        self.save_button.setEnabled(True)

    @Slot(object, str)
    def _on_failed(self, exc: BaseException, tb: str) -> None:
        log.debug("export failed: %s\n%s", exc, tb)
        self.show_error(f"Cannot export the spec: {error_text(exc)}")
        self.status_label.hide()
        for editor in self.editors.values():
            editor.setPlaceholderText("")

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    # -- the texts ---------------------------------------------------------------------------

    def current_format(self) -> str:
        return FORMATS[self.tabs.currentIndex()][0]

    def text(self, fmt: str) -> str:
        """The shown text of one format ("v3", "v2" or "request"); empty until it is made."""
        return self.editors[fmt].toPlainText()

    def default_file_name(self, fmt: str) -> str:
        suffix = next(s for f, _, s, _ in FORMATS if f == fmt)
        return f"{self.spec.name}{suffix}"

    @Slot()
    def copy(self) -> None:
        fmt = self.current_format()
        QGuiApplication.clipboard().setText(self.text(fmt))
        self.status_label.setText(f"Copied the {self.tabs.tabText(self.tabs.currentIndex())}.")
        self.status_label.show()

    def ask_save_path(self, default: str) -> str | None:
        """The file to save to (a file dialog), or None when the user cancels."""
        fmt = self.current_format()
        filters = next(f for k, _, _, f in FORMATS if k == fmt)
        path, _ = QFileDialog.getSaveFileName(self, "Save the export", default, filters)
        return path or None

    @Slot()
    def _on_save_clicked(self) -> None:
        self.save()

    def save(self) -> Path | None:
        """Ask where, then write the shown tab's text; returns the file, or None."""
        fmt = self.current_format()
        name = self.default_file_name(fmt)
        # The spec's folder (the project), never the process's working folder.
        folder = self.spec.base_dir or Path.home()
        default = str(folder / name)
        chosen = self.ask_save_path(default)
        if not chosen:
            return None
        target = Path(chosen)
        if not target.suffix:
            target = target.with_suffix(Path(name).suffix)
        try:
            target.write_text(self.text(fmt), encoding="utf-8")
        except OSError as exc:
            self.show_error(f"Cannot write {target}: {exc.strerror or exc}")
            return None
        self.error_label.hide()
        self.status_label.setText(f"Saved {target}")
        self.status_label.show()
        return target


__all__ = ["FORMATS", "ExportDialog", "export_texts", "format_title", "how_to_run"]
