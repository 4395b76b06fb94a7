"""The project sidebar: projects (most recently opened first) and the job specs in each.

A project is a folder; its job specs are the `*.yaml` files in it. The store remembers the list,
each project's name and its settings (the Python interpreter local-process jobs run with).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.runners import warm
from trainer_gui.core.store import Project, Store
from trainer_gui.ui.icons import ERROR_COLOR
from trainer_gui.ui.tasks import run_task, store_writes

log = logging.getLogger(__name__)

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
VALUE_ROLE = Qt.ItemDataRole.UserRole + 2
ALL_JOBS = "all"
PROJECT = "project"
SPEC = "spec"
PLACEHOLDER = "placeholder"
PYTHON_KEY = "python"
SPEC_SUFFIXES = (".yaml", ".yml")


def spec_files(folder: str | Path) -> list[Path]:
    """The job specs of a project: YAML files directly in its folder, by name."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        log.debug("cannot list %s", folder, exc_info=True)
        return []
    return sorted(
        (p for p in entries if p.suffix.lower() in SPEC_SUFFIXES and p.is_file()),
        key=lambda p: p.name.lower(),
    )


def project_name_problem(name: str) -> str | None:
    """Why `name` cannot be a new project's folder name, or None when it can (or is empty:
    the dialog asks for a name separately)."""
    name = name.strip()
    if not name:
        return None
    if "/" in name or "\\" in name:
        return "A project name cannot contain “/” or “\\”: it becomes the folder's name."
    if name in (".", ".."):
        return "“.” and “..” are not folder names; give the project a name."
    if any(ord(c) < 32 for c in name):
        return "A project name cannot contain control characters (tabs, line breaks)."
    if len(name.encode("utf-8")) > 255:
        return "That name is too long for a folder name (at most 255 bytes)."
    return None


def existing_folder(path: str | Path | None) -> str:
    """Where a file dialog starts: `path`, or its nearest folder that exists, else home."""
    if path:
        try:
            folder = Path(path).expanduser()
            while not folder.is_dir() and folder != folder.parent:
                folder = folder.parent
            if folder.is_dir():
                return str(folder)
        except (OSError, ValueError):  # a path the OS cannot look up: start at home
            pass
    return str(Path.home())


def project_python(project: Project | None) -> str | None:
    """The interpreter a project's local-process jobs use; None means the app's own."""
    if project is None:
        return None
    value = project.settings.get(PYTHON_KEY)
    return value if isinstance(value, str) and value.strip() else None


def check_python(path: str) -> str:
    """A usable interpreter path (an executable file, or a name found on PATH)."""
    import shutil

    path = path.strip()
    if not path:
        raise UserError("give the path of a Python interpreter, or leave it empty for the default")
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        if os.path.isdir(expanded):
            for sub in ("bin/python", "Scripts/python.exe"):  # a venv folder was picked
                candidate = os.path.join(expanded, sub)
                if os.path.isfile(candidate):
                    return candidate
            raise UserError(f"{path} is a folder without bin/python; pick the interpreter itself")
        if not os.path.isfile(expanded):
            raise UserError(f"Python interpreter {path} does not exist")
        if not os.access(expanded, os.X_OK):
            raise UserError(f"{path} is not executable")
        return expanded
    found = shutil.which(expanded)
    if not found:
        raise UserError(f"no {path!r} on PATH; give the full path of the interpreter")
    return found


class ProjectsPanel(QWidget):
    """Projects as a tree, with buttons and a context menu to manage them."""

    sig_project_changed = Signal(object)
    """The project now selected (a Project), or None for "All jobs"."""
    sig_spec_activated = Signal(str)
    """A spec file was double-clicked: open it in the job form."""
    sig_new_job_requested = Signal()
    sig_changed = Signal()
    """A change made in the background (`..._later`) finished, or failed and was shown."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._projects: dict[int, Project] = {}
        self._current: Project | None = None
        self._just_added: int | None = None  # see _select_added
        self._updating = False

        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setExpandsOnDoubleClick(False)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_context_menu)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tree.itemDoubleClicked.connect(self._on_double_clicked)
        self.tree.itemExpanded.connect(self._on_expanded)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.setToolTip("Projects, most recently opened first; double-click a spec to edit it")

        self.new_action = QAction("New project…", self)
        self.new_action.setToolTip("Create a project folder")
        self.new_action.triggered.connect(self.ask_new_project)
        self.open_action = QAction("Open folder…", self)
        self.open_action.setToolTip("Add an existing folder as a project (Ctrl+O)")
        self.open_action.triggered.connect(self.ask_open_folder)
        self.rename_action = QAction("Rename", self)
        self.rename_action.setShortcut(QKeySequence("F2"))
        self.rename_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.rename_action.triggered.connect(self.ask_rename)
        self.settings_action = QAction("Project settings…", self)
        self.settings_action.triggered.connect(self.ask_settings)
        self.remove_action = QAction("Remove from list", self)
        self.remove_action.setToolTip("Forget the project; its folder and jobs are kept")
        self.remove_action.triggered.connect(self.ask_remove)
        self.reveal_action = QAction("Open folder in file manager", self)
        self.reveal_action.triggered.connect(self.reveal_current)
        self.addAction(self.rename_action)

        new_button = QToolButton(self)
        new_button.setDefaultAction(self.new_action)
        new_button.setText("New…")
        open_button = QToolButton(self)
        open_button.setDefaultAction(self.open_action)
        open_button.setText("Open…")
        more = QToolButton(self)
        more.setText("⋯")
        more.setToolTip("More project actions")
        more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(more)
        for action in (self.rename_action, self.settings_action, self.reveal_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.remove_action)
        more.setMenu(menu)
        top = QHBoxLayout()
        top.setContentsMargins(2, 2, 2, 2)
        top.addWidget(new_button)
        top.addWidget(open_button)
        top.addWidget(more)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self.refresh()

    # -- state -------------------------------------------------------------------------------

    def current_project(self) -> Project | None:
        return self._current

    def projects(self) -> list[Project]:
        return list(self._projects.values())

    def current_spec_path(self) -> Path | None:
        item = self.tree.currentItem()
        if item is not None and item.data(0, KIND_ROLE) == SPEC:
            return Path(str(item.data(0, VALUE_ROLE)))
        return None

    def refresh(self) -> None:
        """Re-read the project list; keeps the selection and which projects are expanded."""
        current_id = self._current.id if self._current else None
        current_spec = self.current_spec_path()
        expanded = {
            int(item.data(0, VALUE_ROLE)) for item in self._project_items() if item.isExpanded()
        }
        self._updating = True
        try:
            self.tree.clear()
            all_item = QTreeWidgetItem(["All jobs"])
            all_item.setData(0, KIND_ROLE, ALL_JOBS)
            all_item.setToolTip(0, "Every job, whichever project started it")
            self.tree.addTopLevelItem(all_item)
            self._projects = {p.id: p for p in self.store.list_projects()}
            target: QTreeWidgetItem = all_item
            for project in self._projects.values():
                item = self._project_item(project)
                self.tree.addTopLevelItem(item)
                if project.id in expanded or project.id == current_id:
                    item.setExpanded(True)
                    self._populate_specs(item)
                if project.id == current_id:
                    target = item
                    for child in _children(item):
                        if current_spec and Path(str(child.data(0, VALUE_ROLE))) == current_spec:
                            target = child
            self.tree.setCurrentItem(target)
        finally:
            self._updating = False
        self._current = self._projects.get(current_id) if current_id is not None else None
        if current_id is not None and self._current is None:  # removed (here or elsewhere)
            self.sig_project_changed.emit(None)

    def _project_item(self, project: Project) -> QTreeWidgetItem:
        item = QTreeWidgetItem([project.name])
        item.setData(0, KIND_ROLE, PROJECT)
        item.setData(0, VALUE_ROLE, project.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        tip = project.path
        python = project_python(project)
        if python:
            tip += f"\nPython: {python}"
        if not os.path.isdir(project.path):
            tip += "\nThe folder is missing (moved or deleted?)"
            item.setForeground(0, self.palette().placeholderText())
        item.setToolTip(0, tip)
        placeholder = QTreeWidgetItem(["…"])
        placeholder.setData(0, KIND_ROLE, PLACEHOLDER)
        item.addChild(placeholder)
        return item

    def _populate_specs(self, item: QTreeWidgetItem) -> None:
        project = self._projects.get(int(item.data(0, VALUE_ROLE)))
        was = self._updating
        self._updating = True
        try:
            item.takeChildren()
            if project is None:
                return
            for path in spec_files(project.path):
                child = QTreeWidgetItem([path.name])
                child.setData(0, KIND_ROLE, SPEC)
                child.setData(0, VALUE_ROLE, str(path))
                child.setToolTip(0, f"{path}\nDouble-click to edit; Ctrl+R runs it")
                item.addChild(child)
            if item.childCount() == 0:
                empty = QTreeWidgetItem(["(no job specs yet: Ctrl+N)"])
                empty.setData(0, KIND_ROLE, PLACEHOLDER)
                empty.setFlags(Qt.ItemFlag.NoItemFlags)
                item.addChild(empty)
        finally:
            self._updating = was

    def refresh_specs(self) -> None:
        """Re-list the spec files of expanded projects (after a save, say)."""
        current = self.current_spec_path()
        for item in self._project_items():
            if item.isExpanded():
                self._populate_specs(item)
                for child in _children(item):
                    if current and Path(str(child.data(0, VALUE_ROLE))) == current:
                        self.tree.setCurrentItem(child)

    def _project_items(self) -> list[QTreeWidgetItem]:
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item for item in items if item is not None and item.data(0, KIND_ROLE) == PROJECT]

    def item_for(self, project_id: int) -> QTreeWidgetItem | None:
        for item in self._project_items():
            if int(item.data(0, VALUE_ROLE)) == project_id:
                return item
        return None

    def select_project(self, project_id: int | None) -> bool:
        if project_id is None:
            first = self.tree.topLevelItem(0)
            if first is not None:
                self.tree.setCurrentItem(first)
            return True
        item = self.item_for(project_id)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        item.setExpanded(True)
        return True

    def select_spec(self, path: str | Path) -> bool:
        for item in self._project_items():
            if not item.isExpanded():
                continue
            for child in _children(item):
                if child.data(0, KIND_ROLE) == SPEC and Path(
                    str(child.data(0, VALUE_ROLE))
                ) == Path(path):
                    self.tree.setCurrentItem(child)
                    return True
        return False

    # -- operations ----------------------------------------------------------------------------
    #
    # Each change comes twice: a blocking call that returns the result (scripts, tests, the
    # app's start) and a `..._later` one that the dialogs and the tree use. A write to the
    # store takes a few milliseconds, but it waits for the write lock, which the job host
    # holds for each batch of a job's lines (up to ~40 ms measured under a 20,000 lines/s
    # flood, longer on a busy machine), so the GUI thread never writes. Reads (`refresh`)
    # stay here: SQLite's WAL lets them through at once (< 0.5 ms measured under the flood).

    def create_project(self, folder: str | Path, name: str | None = None) -> Project:
        """Make the folder (if needed) and add it as a project, selected."""
        return self._shown(self._create(self.store, folder, name))

    def open_folder(self, folder: str | Path) -> Project:
        """Add an existing folder as a project (or select it if it is one), selected."""
        return self._shown(self._open(self.store, folder))

    def rename_project(self, project_id: int, name: str) -> None:
        self._rename(self.store, project_id, name)
        self.refresh()

    def remove_project(self, project_id: int) -> None:
        """Forget the project (its folder and its jobs stay)."""
        self.store.remove_project(project_id)
        self.refresh()

    def set_python(self, project_id: int, python: str | None) -> Project:
        self._set_python(self.store, project_id, python)
        self.refresh()
        updated = self._projects.get(project_id)
        assert updated is not None
        if self._current is not None and self._current.id == project_id:
            self._current = updated
        return updated

    def create_project_later(self, folder: str | Path, name: str | None = None) -> None:
        store = self.store
        self._later(
            "Cannot create the project",
            lambda: self._create(store, folder, name),
            self._select_created,
        )

    def open_folder_later(self, folder: str | Path) -> None:
        store = self.store
        self._later(
            "Cannot open the folder", lambda: self._open(store, folder), self._select_created
        )

    def rename_project_later(self, project_id: int, name: str) -> None:
        store = self.store
        self._later("Cannot rename the project", lambda: self._rename(store, project_id, name))

    def remove_project_later(self, project_id: int) -> None:
        store = self.store
        self._later("Cannot remove the project", lambda: store.remove_project(project_id))

    def change_settings_later(
        self, project_id: int, name: str, python: str | None, warm_start: bool | None = None
    ) -> None:
        """Rename and set the interpreter (checking it runs, which takes a moment), and whether
        its local-process runs start from the warm interpreter (None: unchanged)."""
        store = self.store

        def change() -> None:
            project = store.get_project(project_id)
            if project is not None and name.strip() != project.name:
                self._rename(store, project_id, name)
            self._set_python(store, project_id, python)
            if warm_start is not None:
                self._set_warm(store, project_id, warm_start)

        self._later("Cannot change the project settings", change)

    # The store work itself: no widgets, so any thread may run it.

    @staticmethod
    def _create(store: Store, folder: str | Path, name: str | None) -> Project:
        folder = Path(folder).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the folder {folder}: {exc}") from None
        return ProjectsPanel._add(store, folder, name)

    @staticmethod
    def _open(store: Store, folder: str | Path) -> Project:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder")
        return ProjectsPanel._add(store, folder, None)

    @staticmethod
    def _add(store: Store, folder: Path, name: str | None) -> Project:
        folder = folder.resolve()
        project = store.add_project((name or folder.name or str(folder)).strip(), str(folder))
        store.touch_project(project.id)
        return project

    @staticmethod
    def _rename(store: Store, project_id: int, name: str) -> None:
        name = name.strip()
        if not name:
            raise UserError("a project name cannot be empty")
        store.rename_project(project_id, name)

    @staticmethod
    def _change_settings(
        store: Store, project_id: int, change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Read the project's settings, let `change` edit a copy in place, store the copy."""
        project = store.get_project(project_id)
        if project is None:
            raise UserError("that project was removed")
        settings = dict(project.settings)
        change(settings)
        store.update_project_settings(project_id, settings)

    @staticmethod
    def _set_python(store: Store, project_id: int, python: str | None) -> None:
        def change(settings: dict[str, Any]) -> None:
            if python and python.strip():
                settings[PYTHON_KEY] = check_python(python)
            else:
                settings.pop(PYTHON_KEY, None)

        ProjectsPanel._change_settings(store, project_id, change)

    @staticmethod
    def _set_warm(store: Store, project_id: int, on: bool) -> None:
        def change(settings: dict[str, Any]) -> None:
            if on:
                settings.pop(warm.SETTING, None)  # the default
            else:
                settings[warm.SETTING] = False

        ProjectsPanel._change_settings(store, project_id, change)

    def _shown(self, project: Project) -> Project:
        self.refresh()
        self._select_added(project.id)
        return self._projects.get(project.id, project)

    @Slot(object)
    def _select_created(self, project: Project) -> None:
        self._select_added(project.id)

    def _select_added(self, project_id: int) -> None:
        """Select a project `_add` has just marked opened: no second, later write of that
        (it could land after a project added next and rank this one above it)."""
        self._just_added = project_id
        try:
            self.select_project(project_id)
        finally:
            self._just_added = None

    def _later(
        self, title: str, work: Callable[[], Any], then: Callable[[Any], None] | None = None
    ) -> None:
        """`work` on the pool; then the list is read again (and `then(result)`), or the
        problem is shown."""

        def done(result: Any) -> None:
            self.refresh()
            if then is not None:
                then(result)
            self.sig_changed.emit()

        def failed(exc: BaseException, tb: str) -> None:
            self.refresh()
            if isinstance(exc, UserError):
                self._warn(title, exc)
            else:
                log.error("%s: %s\n%s", title, exc, tb)
                self._warn(title, exc)
            self.sig_changed.emit()

        run_task(work, done, failed, pool=store_writes())

    # -- dialogs -----------------------------------------------------------------------------

    def _warn(self, title: str, exc: BaseException) -> None:
        QMessageBox.warning(self, title, str(exc))

    @Slot()
    def ask_new_project(self) -> None:
        dialog = NewProjectDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.create_project_later(dialog.folder(), dialog.name_edit.text().strip())

    @Slot()
    def ask_open_folder(self) -> None:
        # Beside the current project: where other projects most likely are.
        near = Path(self._current.path).parent if self._current else None
        folder = QFileDialog.getExistingDirectory(
            self, "Open a project folder", existing_folder(near)
        )
        if folder:
            self.open_folder_later(folder)

    @Slot()
    def ask_rename(self) -> None:
        item = self.item_for(self._current.id) if self._current else None
        if item is not None:
            self.tree.setCurrentItem(item)
            self.tree.editItem(item, 0)

    @Slot()
    def ask_remove(self) -> None:
        project = self._current
        if project is None:
            return
        answer = QMessageBox.question(
            self,
            "Remove the project from the list?",
            f"Remove “{project.name}” from the list?\n\nIts folder ({project.path}) and its jobs "
            "are kept; you can open the folder again later.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_project_later(project.id)

    @Slot()
    def ask_settings(self) -> None:
        project = self._current
        if project is None:
            return
        dialog = ProjectSettingsDialog(project, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.change_settings_later(
            project.id,
            dialog.name_edit.text(),
            dialog.python_edit.text(),
            dialog.warm_check.isChecked(),
        )

    @Slot()
    def reveal_current(self) -> None:
        project = self._current
        if project is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(project.path))

    # -- tree events -------------------------------------------------------------------------

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_current_changed(
        self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None
    ) -> None:
        if self._updating or item is None:
            return
        kind = item.data(0, KIND_ROLE)
        parent = item.parent()
        if kind in (SPEC, PLACEHOLDER) and parent is not None:
            item = parent
            kind = PROJECT
        project = self._projects.get(int(item.data(0, VALUE_ROLE))) if kind == PROJECT else None
        previous = self._current
        self._current = project
        enabled = project is not None
        for action in (self.rename_action, self.settings_action, self.remove_action):
            action.setEnabled(enabled)
        self.reveal_action.setEnabled(enabled)
        if (previous.id if previous else None) != (project.id if project else None):
            if project is not None and project.id != self._just_added:
                # "recent first": a write, so off the GUI thread
                touch = functools.partial(self.store.touch_project, project.id)
                run_task(touch, pool=store_writes())
            self.sig_project_changed.emit(project)

    @Slot(QTreeWidgetItem, int)
    def _on_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        kind = item.data(0, KIND_ROLE)
        if kind == SPEC:
            self.sig_spec_activated.emit(str(item.data(0, VALUE_ROLE)))
        elif kind == PROJECT:
            item.setExpanded(not item.isExpanded())

    @Slot(QTreeWidgetItem)
    def _on_expanded(self, item: QTreeWidgetItem) -> None:
        if item.data(0, KIND_ROLE) == PROJECT and not self._updating:
            self._populate_specs(item)

    @Slot(QTreeWidgetItem, int)
    def _on_item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        if self._updating or item.data(0, KIND_ROLE) != PROJECT:
            return
        project = self._projects.get(int(item.data(0, VALUE_ROLE)))
        if project is None or item.text(0) == project.name:
            return
        self.rename_project_later(project.id, item.text(0))

    @Slot(QPoint)
    def _on_context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        menu = QMenu(self)
        if item is not None and item.data(0, KIND_ROLE) in (PROJECT, SPEC):
            new_job = menu.addAction("New job spec…")
            new_job.triggered.connect(self.sig_new_job_requested)
            menu.addSeparator()
            for action in (self.rename_action, self.settings_action, self.reveal_action):
                menu.addAction(action)
            menu.addSeparator()
            menu.addAction(self.remove_action)
            menu.addSeparator()
        menu.addAction(self.new_action)
        menu.addAction(self.open_action)
        menu.exec(self.tree.viewport().mapToGlobal(pos))


class NewProjectDialog(QDialog):
    """Name and location of a new project folder."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("e.g. mnist-experiments")
        self.name_error = QLabel(self)
        self.name_error.setWordWrap(True)
        self.name_error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.name_error.hide()
        name_box = QVBoxLayout()
        name_box.setContentsMargins(0, 0, 0, 0)
        name_box.setSpacing(2)
        name_box.addWidget(self.name_edit)
        name_box.addWidget(self.name_error)
        self.location_edit = QLineEdit(str(Path.home() / "TrainerProjects"), self)
        self.browse_button = browse = QToolButton(self)
        browse.setText("…")
        browse.clicked.connect(self._on_browse)
        location = QHBoxLayout()
        location.addWidget(self.location_edit, 1)
        location.addWidget(browse)
        self.preview = QLabel(self)
        self.preview.setEnabled(False)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", name_box)
        form.addRow("Location", location)
        form.addRow("", self.preview)
        form.addRow(buttons)
        self.name_edit.textChanged.connect(self._update)
        self.location_edit.textChanged.connect(self._update)
        self._update()
        self.resize(520, self.sizeHint().height())

    def folder(self) -> Path:
        return Path(self.location_edit.text().strip()).expanduser() / self.name_edit.text().strip()

    @Slot()
    def _update(self) -> None:
        """OK only for a usable name and location; when it is greyed, say why."""
        name = self.name_edit.text().strip()
        problem = project_name_problem(name)
        self.name_error.setText(problem or "")
        self.name_error.setVisible(problem is not None)
        has_location = bool(self.location_edit.text().strip())
        self.ok_button.setEnabled(bool(name) and problem is None and has_location)
        if not name:
            self.preview.setText("Give the project a name")
        elif not has_location:
            self.preview.setText("Choose where to create the project folder")
        elif problem is None:
            self.preview.setText(f"Folder: {self.folder()}")
        else:
            self.preview.setText("")

    @Slot()
    def _on_browse(self) -> None:
        start = existing_folder(self.location_edit.text().strip())
        folder = QFileDialog.getExistingDirectory(self, "Where to create it", start)
        if folder:
            self.location_edit.setText(folder)


class ProjectSettingsDialog(QDialog):
    """A project's name and the Python interpreter its local-process jobs use."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Project settings — {project.name}")
        self.name_edit = QLineEdit(project.name, self)
        self.project = project
        folder = QLabel(project.path, self)
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.python_edit = QLineEdit(project_python(project) or "", self)
        self.python_edit.setPlaceholderText(f"the app's Python ({sys.executable})")
        self.python_edit.setToolTip(
            "Interpreter for local-process jobs: any Python or virtual environment with PyTorch "
            "installed. Empty uses the app's own."
        )
        self.browse_button = browse = QToolButton(self)
        browse.setText("…")
        browse.clicked.connect(self._on_browse)
        python = QHBoxLayout()
        python.addWidget(self.python_edit, 1)
        python.addWidget(browse)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name_edit)
        form.addRow("Folder", folder)
        form.addRow("Python interpreter", python)
        self.warm_check = QCheckBox("Start runs from a warm interpreter (torch already imported)")
        self.warm_check.setChecked(warm.project_allows(project.settings))
        self.warm_check.setToolTip(
            "Local-process runs of CPU jobs fork from an interpreter that has imported torch "
            "and what earlier runs imported, so a script starts in milliseconds; the script "
            "sees the same process as a cold start. Turn off to start every run afresh."
        )
        form.addRow("", self.warm_check)
        form.addRow(buttons)
        self.resize(560, self.sizeHint().height())

    @Slot()
    def _on_browse(self) -> None:
        # The interpreter set now, else the project's own folder (where a .venv usually is).
        current = self.python_edit.text().strip()
        start = existing_folder(Path(current).parent if current else self.project.path)
        path, _ = QFileDialog.getOpenFileName(self, "Python interpreter", start)
        if path:
            self.python_edit.setText(path)

    @Slot()
    def _on_accept(self) -> None:
        text = self.python_edit.text().strip()
        if text:
            try:
                check_python(text)
            except UserError as exc:
                QMessageBox.warning(self, "Not a usable interpreter", str(exc))
                return
        if not self.name_edit.text().strip():
            QMessageBox.warning(self, "No name", "A project name cannot be empty.")
            return
        self.accept()


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    children = (item.child(i) for i in range(item.childCount()))
    return [child for child in children if child is not None]
