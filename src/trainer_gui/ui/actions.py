"""The main window's actions: their texts, shortcuts and tips, the menus, the toolbar, the jobs
table's context menu, and which of them are enabled for the selection.

The slots are the window's own (forms, dialogs, views) and its `JobCommands` (what acts on jobs);
the actions are children of the window, so their shortcuts work wherever its focus is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QStyle

from trainer_gui.core.store import JobRecord
from trainer_gui.ui.job_detail import console_link
from trainer_gui.ui.plots.parallel import open_for_selection as open_parallel
from trainer_gui.ui.run_diff_view import compare_selected
from trainer_gui.ui.sweep_view import open_sweeps
from trainer_gui.ui.template_gallery import add_to_menu as add_template_gallery

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.ui.job_commands import JobCommands
    from trainer_gui.ui.main_window import MainWindow


class WindowActions(QObject):
    """Builds the window's QActions, menus and toolbar; `update_enabled` follows the selection."""

    def __init__(self, window: MainWindow, commands: JobCommands) -> None:
        super().__init__(window)
        self.window = window
        self.commands = commands
        self._make_actions()
        self._make_menus()

    def _action(
        self,
        text: str,
        slot: Callable[[], Any],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({keys})" if keys else tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _make_actions(self) -> None:
        self.new_job_action = self._action(
            "New job…", self.window.new_job, QKeySequence.StandardKey.New, "Open a new job form"
        )
        self.new_example_action = self._action(
            "New job from the example…",
            self.commands.new_job_from_example,
            tip="Copy the quickstart example into the project and open its spec",
        )
        self.new_project_action = self.window.projects.new_action
        self.open_project_action = self.window.projects.open_action
        self.open_project_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Open))
        self.window.addAction(self.open_project_action)
        self.open_spec_action = self._action(
            "Open job spec…", self.window.ask_open_spec, "Ctrl+Shift+O", "Open a job spec YAML file"
        )
        self.save_spec_action = self._action(
            "Save job spec",
            self.window.save_spec,
            QKeySequence.StandardKey.Save,
            "Save the open job form, or open the selected spec or job in the form",
        )
        self.run_action = self._action(
            "Run",
            self.commands.run_selected,
            "Ctrl+R",
            "Run the selected spec file, or run the selected job again",
        )
        self.stop_action = self._action(
            "Stop", self.commands.stop_selected, "Ctrl+.", "Stop the selected jobs"
        )
        self.rerun_action = self._action(
            "Re-run", self.commands.rerun_selected, "Ctrl+Shift+R", "Run the selected jobs again"
        )
        self.clone_action = self._action(
            "Clone and edit…",
            self.commands.clone_selected,
            "Ctrl+E",
            "Open the selected job's spec in a new form",
        )
        self.delete_action = QAction("Delete…", self.window)
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.setToolTip("Delete the selected jobs (Del)")
        self.delete_action.triggered.connect(self.commands.delete_selected)
        self.window.jobs.table.addAction(self.delete_action)
        self.open_run_folder_action = self._action(
            "Open run folder", self.commands.open_run_folder, tip="Show the job's files"
        )
        # F5 only, not the platform's Refresh key: on GNOME-style desktops that is Ctrl+R,
        # which Run has, and an ambiguous shortcut triggers neither action.
        self.refresh_action = self._action(
            "Refresh", self.window.refresh_all, "F5", "Reload everything"
        )
        self.search_logs_action = self._action(
            "Search logs", self.window.search_logs, QKeySequence.StandardKey.Find, "Search the logs"
        )
        self.quit_action = self._action("Quit", self.window.close, QKeySequence.StandardKey.Quit)
        self.serve_action = self._action(
            "Serve model",
            self.commands.serve_selected,
            tip="Start a local inference endpoint on the "
            "selected job's model and open the Predict panel",
        )
        self.aws_settings_action = self._action(
            "AWS settings…",
            self.window.show_aws_settings,
            tip="Profile, region, execution role and S3 location of SageMaker jobs",
        )
        self.remote_jobs_action = self._action(
            "SageMaker jobs…",
            self.window.show_remote_jobs,
            "Ctrl+Shift+J",
            "List the account's training jobs: follow one here or import it as a spec",
        )
        self.export_action = self._action(
            "Export for SageMaker…",
            self.commands.export_selected,
            tip="The selected job's or spec's SageMaker SDK code (v3, v2) and request JSON",
        )
        self.console_action = self._action(
            "Open in AWS console",
            self.commands.open_console,
            tip="Open the selected SageMaker job in the AWS console (web browser)",
        )
        self.preflight_action = self._action(
            "Preflight",
            self.commands.preflight_selected,
            tip="Run the selected SageMaker spec or job here on a slice of its data, until its "
            "first metric and checkpoint (nothing is launched)",
        )
        self.preflight_setting_action = self.commands.preflight.setting_action
        self.compare_action = self._action(
            "Compare two runs…",
            functools.partial(compare_selected, self.window),
            "Ctrl+D",
            "Diff the two selected runs: spec, hyperparameters, environment, image and code",
        )
        self.parallel_action = self._action(
            "Parallel coordinates…",
            functools.partial(open_parallel, self.window),
            tip="The selected runs' hyperparameters and metrics as axes, and a scatter plot",
        )
        self.sweeps_action = self._action(
            "Sweeps…",
            functools.partial(open_sweeps, self.window),
            tip="Local sweeps: the trials, the best one, the objective by trial (the selected "
            "trial job's sweep)",
        )
        for action in (
            self.run_action,
            self.stop_action,
            self.rerun_action,
            self.clone_action,
            self.open_run_folder_action,
            self.serve_action,
            self.export_action,
            self.console_action,
            self.compare_action,
            self.parallel_action,
            self.sweeps_action,
        ):
            self.window.jobs.table.addAction(action)
        self.window.jobs.table.insertAction(self.open_run_folder_action, self.delete_action)
        self.window.jobs.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for action in self.window.jobs.export_actions():  # metrics and the runs table
            self.window.jobs.table.addAction(action)

    def _make_menus(self) -> None:
        bar = self.window.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.new_job_action)
        file_menu.addAction(self.new_example_action)
        self.new_from_template_action = add_template_gallery(self.window, file_menu)
        file_menu.addAction(self.open_spec_action)
        file_menu.addAction(self.save_spec_action)
        file_menu.addSeparator()
        file_menu.addAction(self.new_project_action)
        file_menu.addAction(self.open_project_action)
        self.recent_menu = file_menu.addMenu("Recent projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self.export_menu = file_menu.addMenu("Export")
        self.export_menu.addActions(self.window.jobs.export_actions()[1:])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        job_menu = bar.addMenu("&Job")
        for action in (self.run_action, self.stop_action, self.rerun_action, self.clone_action):
            job_menu.addAction(action)
        job_menu.addAction(self.serve_action)
        job_menu.addAction(self.preflight_action)
        job_menu.addAction(self.preflight_setting_action)
        job_menu.addAction(self.compare_action)
        job_menu.addAction(self.parallel_action)
        job_menu.addSeparator()
        job_menu.addAction(self.open_run_folder_action)
        job_menu.addAction(self.delete_action)
        cloud_menu = bar.addMenu("&Cloud")
        cloud_menu.addAction(self.remote_jobs_action)
        cloud_menu.addAction(self.export_action)
        cloud_menu.addAction(self.console_action)
        cloud_menu.addSeparator()
        cloud_menu.addAction(self.aws_settings_action)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.window.projects_dock.toggleViewAction())
        view_menu.addAction(self.window.predict_dock.toggleViewAction())
        self.queue_action = self.window.queue_dock.toggleViewAction()
        self.queue_action.setShortcut(QKeySequence("Ctrl+Shift+Q"))
        self.queue_action.setToolTip("Show or hide the local job queue (Ctrl+Shift+Q)")
        self.queue_action.setStatusTip("The local jobs waiting for the machine, in order")
        self.window.addAction(self.queue_action)
        view_menu.addAction(self.queue_action)
        view_menu.addAction(self.sweeps_action)
        view_menu.addAction(self.search_logs_action)
        view_menu.addAction(self.refresh_action)
        view_menu.addSeparator()
        self.theme_menu = view_menu.addMenu("Theme")
        self.theme_group = QActionGroup(self)
        self.theme_group.setExclusive(True)
        self.theme_actions: dict[str, QAction] = {}
        for theme, text, tip in (
            ("system", "System", "Light or dark as the desktop is"),
            ("light", "Light", "Always light"),
            ("dark", "Dark", "Always dark"),
        ):
            action = self.theme_menu.addAction(text)
            action.setCheckable(True)
            action.setStatusTip(tip)
            action.setData(theme)
            action.triggered.connect(functools.partial(self.window.set_theme, theme))
            self.theme_group.addAction(action)
            self.theme_actions[theme] = action
        self.show_theme(self.window.theme)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("About Trainer GUI", self.window._about)

        pixmaps = QStyle.StandardPixmap
        for action, theme_name, fallback in (
            (self.new_job_action, "document-new", pixmaps.SP_FileIcon),
            (self.run_action, "media-playback-start", pixmaps.SP_MediaPlay),
            (self.stop_action, "media-playback-stop", pixmaps.SP_MediaStop),
            (self.rerun_action, "view-refresh", pixmaps.SP_MediaSeekForward),
            (self.clone_action, "edit-copy", pixmaps.SP_FileDialogContentsView),
            (self.delete_action, "edit-delete", pixmaps.SP_TrashIcon),
            (self.open_run_folder_action, "folder-open", pixmaps.SP_DirOpenIcon),
            (self.refresh_action, "view-refresh", pixmaps.SP_BrowserReload),
        ):
            action.setIcon(QIcon.fromTheme(theme_name, self.window.style().standardIcon(fallback)))
        toolbar = self.window.addToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(16, 16))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.new_job_action, self.run_action, self.stop_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.rerun_action, self.clone_action, self.delete_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.open_run_folder_action)
        toolbar.addAction(self.refresh_action)

    def show_theme(self, theme: str) -> None:
        """Tick `theme` in View > Theme."""
        action = self.theme_actions.get(theme)
        if action is not None:
            action.setChecked(True)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        projects = self.window.store.list_projects()[:10]
        if not projects:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for project in projects:
            action = self.recent_menu.addAction(f"{project.name} — {project.path}")
            action.triggered.connect(
                functools.partial(self.window.projects.select_project, project.id)
            )

    def update_enabled(
        self, records: list[JobRecord], has_project: bool, spec: Path | None
    ) -> None:
        """Enable what applies to the selected jobs, the current project and the selected spec."""
        starting = self.commands.starting  # one submit at a time from these actions
        self.new_example_action.setEnabled(has_project)
        self.run_action.setEnabled(not starting and (spec is not None or bool(records)))
        self.stop_action.setEnabled(any(r.is_active for r in records))
        self.rerun_action.setEnabled(not starting and bool(records))
        self.clone_action.setEnabled(len(records) == 1)
        self.delete_action.setEnabled(bool(records))
        self.open_run_folder_action.setEnabled(len(records) == 1)
        self.export_action.setEnabled(len(records) == 1 or spec is not None)
        self.preflight_action.setEnabled(not starting and (len(records) == 1 or spec is not None))
        self.console_action.setEnabled(len(records) == 1 and console_link(records[0]) is not None)
        self.compare_action.setEnabled(len(records) == 2)
        self.parallel_action.setEnabled(len(records) >= 2)
