"""File > New from template…: a gallery of project templates as cards, and where to put one.

The cards come from `core.templates` (title, description, tags, a backend badge). Picking one
and a folder, then Create, makes the project off the GUI thread (`ui.tasks`), then the window
opens it the way Open folder does. The "bring your script" template asks for the user's folder
and entry script instead of bringing code; what is missing is said beside the Create button,
never only by a greyed-out button.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.templates import (
    CreatedProject,
    Template,
    create_project,
    list_templates,
)
from trainer_gui.ui.tasks import TaskGroup, error_text

if TYPE_CHECKING:
    from trainer_gui.ui.main_window import MainWindow

CARD_SIZE = QSize(300, 140)
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
BADGE_COLOURS = {"local-process": "#2e7d32", "docker": "#1565c0", "sagemaker": "#ef6c00"}


class TemplateCard(QFrame):
    """One template: title, backend badge, description and tags."""

    def __init__(self, template: Template, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"card-{template.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # the list selects
        title = QLabel(f"<b>{html.escape(template.title)}</b>", self)
        title.setWordWrap(True)
        colour = BADGE_COLOURS.get(template.backend, "#555555")
        self.badge = QLabel(template.backend, self)
        self.badge.setObjectName("backend_badge")
        self.badge.setStyleSheet(
            f"QLabel {{ background: {colour}; color: white; border-radius: 6px; "
            "padding: 1px 6px; font-size: 11px; }"
        )
        head = QHBoxLayout()
        head.addWidget(title, 1)
        head.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        description = QLabel(template.description, self)
        description.setWordWrap(True)
        description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        description.setToolTip(template.description)
        tags = QLabel(" · ".join(template.tags), self)
        tags.setEnabled(False)  # the palette's muted text
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(head)
        layout.addWidget(description, 1)
        layout.addWidget(tags)


class TemplateGalleryDialog(QDialog):
    """Pick a template, name the project folder, Create; `sig_created` carries the result."""

    sig_created = Signal(object)
    """(CreatedProject) once the project is on disk."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        location: Path | None = None,
        templates: list[Template] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project from a template")
        self.templates = templates if templates is not None else list_templates()
        self.created: CreatedProject | None = None
        self._tasks = TaskGroup(self)
        self._name_edited = False

        self.cards = QListWidget(self)
        self.cards.setObjectName("template_cards")
        self.cards.setViewMode(QListView.ViewMode.IconMode)
        self.cards.setResizeMode(QListView.ResizeMode.Adjust)
        self.cards.setMovement(QListView.Movement.Static)
        self.cards.setUniformItemSizes(True)
        self.cards.setSpacing(6)
        self.cards.setWordWrap(True)
        for template in self.templates:
            item = QListWidgetItem(self.cards)
            item.setData(NAME_ROLE, template.name)
            item.setSizeHint(CARD_SIZE)
            item.setToolTip(template.description)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, template.title)
            self.cards.setItemWidget(item, TemplateCard(template, self.cards))

        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("project_name")
        self.location_edit = QLineEdit(str(location or Path.home() / "TrainerProjects"), self)
        self.location_edit.setObjectName("project_location")
        browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip("Choose where the project folder goes")
        browse.clicked.connect(self._on_browse_location)
        location_row = QHBoxLayout()
        location_row.addWidget(self.location_edit, 1)
        location_row.addWidget(browse)

        self.source_edit = QLineEdit(self)
        self.source_edit.setObjectName("script_folder")
        self.source_edit.setPlaceholderText("the folder with your SageMaker training script")
        source_browse = QToolButton(self)
        source_browse.setText("…")
        source_browse.clicked.connect(self._on_browse_source)
        self.source_row = QWidget(self)
        source_layout = QHBoxLayout(self.source_row)
        source_layout.setContentsMargins(0, 0, 0, 0)
        source_layout.addWidget(self.source_edit, 1)
        source_layout.addWidget(source_browse)
        self.entry_edit = QLineEdit(self)
        self.entry_edit.setObjectName("entry_script")
        self.entry_edit.setPlaceholderText("train.py (guessed when empty)")

        self.status = QLabel(self)
        self.status.setObjectName("gallery_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.create_button = QPushButton("Create", self)
        self.create_button.setObjectName("create_button")
        self.create_button.setDefault(True)
        buttons.addButton(self.create_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.rejected.connect(self.reject)
        self.create_button.clicked.connect(self._on_create)

        self.form = QFormLayout()
        self.form.addRow("Project name", self.name_edit)
        self.form.addRow("Location", location_row)
        self.form.addRow("Your script folder", self.source_row)
        self.form.addRow("Entry script", self.entry_edit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.cards, 1)
        layout.addLayout(self.form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

        self.cards.currentItemChanged.connect(self._on_template_changed)
        self.name_edit.textEdited.connect(self._on_name_edited)
        for edit in (self.name_edit, self.location_edit, self.source_edit, self.entry_edit):
            edit.textChanged.connect(self._update)
        if self.templates:
            self.cards.setCurrentRow(0)
        self._on_template_changed()
        self.resize(1000, 600)

    # -- state -------------------------------------------------------------------------------

    def current_template(self) -> Template | None:
        item = self.cards.currentItem()
        if item is None:
            return None
        name = item.data(NAME_ROLE)
        return next((t for t in self.templates if t.name == name), None)

    def folder(self) -> Path:
        return Path(self.location_edit.text().strip()).expanduser() / self.name_edit.text().strip()

    def problem(self) -> str:
        """Why Create cannot go ahead yet, or ''."""
        template = self.current_template()
        if template is None:
            return "Pick a template."
        name = self.name_edit.text().strip()
        if not name:
            return "Give the project a name."
        if any(sep in name for sep in ("/", "\\")) or name in (".", ".."):
            return "The project name is a folder name: no '/' or '\\'."
        if not self.location_edit.text().strip():
            return "Choose where the project folder goes."
        folder = self.folder()
        try:
            if folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
                return f"{folder} already holds files; choose another name or location."
        except OSError as exc:
            return f"{folder} cannot be used: {exc.strerror or exc}"
        if template.wraps_folder and not self.source_edit.text().strip():
            return "Choose the folder with your training script."
        return ""

    @Slot()
    def _update(self) -> None:
        problem = self.problem()
        self.create_button.setEnabled(not problem and not self._tasks.pending)
        if problem:
            self.status.setText(problem)
        else:
            self.status.setText(f"Creates {self.folder()}")

    @Slot()
    def _on_template_changed(self, *_args: Any) -> None:
        template = self.current_template()
        wraps = template is not None and template.wraps_folder
        self.form.setRowVisible(self.source_row, wraps)
        self.form.setRowVisible(self.entry_edit, wraps)
        if template is not None and not self._name_edited:
            self.name_edit.setText(self._free_name(template.name))
        self._update()

    def _free_name(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`, ... when that folder already holds something."""
        location = Path(self.location_edit.text().strip() or ".").expanduser()
        name, n = base, 1
        while n < 100:
            folder = location / name
            try:
                if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
                    return name
            except OSError:
                return name
            n += 1
            name = f"{base}-{n}"
        return name

    @Slot(str)
    def _on_name_edited(self, _text: str) -> None:
        self._name_edited = True

    @Slot()
    def _on_browse_location(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Where to create the project", self.location_edit.text() or str(Path.home())
        )
        if folder:
            self.location_edit.setText(folder)

    @Slot()
    def _on_browse_source(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "The folder with your training script", str(Path.home())
        )
        if folder:
            self.source_edit.setText(folder)

    # -- create ------------------------------------------------------------------------------

    @Slot()
    def _on_create(self) -> None:
        template = self.current_template()
        if template is None or self.problem():
            self._update()
            return
        folder = self.folder()
        source = entry = None
        if template.wraps_folder:
            source = self.source_edit.text().strip() or None
            entry = self.entry_edit.text().strip() or None
        self.create_button.setEnabled(False)
        self.status.setText(f"Creating {folder}…")
        self._tasks.run(
            lambda: create_project(template, folder, source=source, entry_point=entry),
            self._on_done,
            self._on_failed,
        )

    def _on_done(self, created: CreatedProject) -> None:
        self.created = created
        self.sig_created.emit(created)
        self.accept()

    def _on_failed(self, exc: BaseException, _tb: str) -> None:
        self._update()
        self.status.setText(f"Cannot create the project: {error_text(exc)}")

    def done(self, result: int) -> None:
        self._tasks.cancel_all()
        super().done(result)


def open_gallery(window: MainWindow) -> TemplateGalleryDialog:
    """Show the gallery over the window; a created project opens like Open folder opens one."""
    dialog = TemplateGalleryDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def opened(created: CreatedProject) -> None:
        window.projects.open_folder_later(created.folder)
        notes = "; ".join(created.notes)
        window.statusBar().showMessage(
            f"Created {created.folder} from {created.template.title}"
            + (f" ({notes})" if notes else ""),
            15_000,
        )

    dialog.sig_created.connect(opened)
    dialog.open()
    return dialog


def add_to_menu(window: MainWindow, menu: QMenu) -> QAction:
    """File > New from template…"""
    action = QAction("New from template…", window)
    action.setObjectName("new_from_template_action")
    action.setStatusTip("Start a project from a ready-to-run template")
    action.triggered.connect(lambda: open_gallery(window))
    menu.addAction(action)
    return action
