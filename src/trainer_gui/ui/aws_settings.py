"""The AWS settings page: the profile, region, execution role and S3 prefix SageMaker jobs use
where their spec leaves `sagemaker.*` empty.

    dialog = AwsSettingsDialog(window)
    dialog.sig_saved.connect(on_saved)   # an AwsDefaults, after the file was written
    dialog.open()

It edits the same file as `trainer-gui sagemaker settings` (`core.aws.defaults`). Only names and
ARNs are kept; credentials stay with boto3's chain (config profiles, SSO, environment, instance
roles) and this page never reads, shows or writes them.

Everything that touches boto3 runs on the thread pool, even the calls that need no network:
the first `import boto3` takes a noticeable moment, and an AWS call on a bad network can hang for
its whole timeout. Each background call carries a token; a result that arrives after the user
changed what it was asked for (another profile, another region) is dropped.
"""

from __future__ import annotations

import html
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.aws.defaults import AwsDefaults, load_aws_defaults, save_aws_defaults
from trainer_gui.core.aws.s3 import S3Uri
from trainer_gui.core.aws.session import (
    AwsSession,
    default_region,
    list_execution_roles,
    list_profiles,
    list_regions,
)
from trainer_gui.core.errors import SpecError, UserError
from trainer_gui.ui.icons import ERROR_COLOR, MUTED_COLOR, OK_COLOR
from trainer_gui.ui.tasks import BackgroundTask, Outcome, TaskGroup, run_tagged

log = logging.getLogger(__name__)

DEFAULT_CHAIN = "(default credential chain)"
LOADING = "loading…"
ROLES_DENIED_HINT = "This identity may not list IAM roles (iam:ListRoles); type the role ARN"
NO_ROLES_HINT = (
    "No role in this account trusts sagemaker.amazonaws.com; create one or type the role ARN"
)
CREDENTIALS_NOTE = (
    "Credentials are never stored by Trainer GUI: they come from your AWS config, SSO, "
    "environment or instance role."
)
S3_PLACEHOLDER = "default: s3://sagemaker-<region>-<account>"

# Problem lines from `AwsDefaults.from_mapping` start with the key; the page names its fields.
FIELD_TITLES = {
    "profile": "Profile",
    "region": "Region",
    "role_arn": "Execution role",
    "s3_prefix": "S3 bucket/prefix",
}


@dataclass(frozen=True)
class _TestResult:
    arn: str
    account: str
    region: str
    default_bucket: str
    bucket_error: str | None


def new_profile_combo(saved: str | None, parent: QWidget | None = None) -> QComboBox:
    """A profile picker: item data is the profile name, None for boto3's default chain."""
    combo = QComboBox(parent)
    combo.addItem(DEFAULT_CHAIN, None)
    if saved:
        combo.addItem(saved, saved)
        combo.setCurrentIndex(1)
    return combo


def fill_profiles(combo: QComboBox, names: list[str]) -> None:
    """The AWS config's profiles after the default chain, keeping the choice (a chosen profile
    no longer in the config stays, marked), without emitting change signals."""
    current = combo.currentData()
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItem(DEFAULT_CHAIN, None)
        for name in names:
            combo.addItem(name, name)
        if current and current not in names:
            combo.addItem(f"{current} (not in your AWS config)", current)
        index = combo.findData(current) if current else 0
        combo.setCurrentIndex(max(index, 0))
    finally:
        combo.blockSignals(False)


def _colored(text: str, color: str) -> str:
    return f'<span style="color:{color}">{html.escape(text)}</span>'


class AwsSettingsDialog(QDialog):
    """Edit and save the AWS defaults; test the connection and list execution roles."""

    sig_saved = Signal(object)
    """The `AwsDefaults` just written (after the file was saved, before the dialog closes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("AWS settings")
        self._loaded = load_aws_defaults()
        self._tokens: dict[str, int] = {"region": 0, "roles": 0, "test": 0}
        self._tasks = TaskGroup(self)
        self._running: dict[str, BackgroundTask] = {}  # the latest call of each kind
        self.problems: list[str] = []
        self._build()
        self._validate()
        self._start_loading()

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        saved = self._loaded
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.field_labels: dict[str, QLabel] = {}

        def label(key: str) -> QLabel:
            widget = QLabel(FIELD_TITLES[key] + ":")
            self.field_labels[key] = widget
            return widget

        # Profile
        self.profile_combo = new_profile_combo(saved.profile)
        self.profile_combo.setToolTip(
            "Named profile from your AWS config (~/.aws/config, ~/.aws/credentials), SSO profiles "
            "included. The default chain uses AWS_PROFILE, environment variables, the [default] "
            "profile or an instance role, in boto3's order."
        )
        self.profile_note = QLabel(LOADING)
        self.profile_note.setWordWrap(True)
        self.profile_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.profile_note.setStyleSheet(f"color:{MUTED_COLOR}")
        profile_row = QHBoxLayout()
        profile_row.addWidget(self.profile_combo, 1)
        profile_row.addWidget(self.profile_note)
        form.addRow(label("profile"), profile_row)

        # Region
        self.region_combo = QComboBox()
        self.region_combo.setEditable(True)
        self.region_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.region_combo.addItem("")  # empty: the profile's own region
        if saved.region:
            self.region_combo.addItem(saved.region)
            self.region_combo.setCurrentIndex(1)
        self.region_combo.setToolTip(
            "AWS region for jobs, e.g. us-east-1. Empty: the profile's region (AWS_REGION, "
            "AWS_DEFAULT_REGION or the AWS config), shown greyed when known."
        )
        self._set_region_placeholder(None)
        form.addRow(label("region"), self.region_combo)

        # Execution role
        self.role_combo = QComboBox()
        self.role_combo.setEditable(True)
        self.role_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.role_combo.setMinimumContentsLength(40)
        self.role_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.role_combo.addItem("")
        if saved.role_arn:
            self.role_combo.addItem(saved.role_arn)
            self.role_combo.setCurrentIndex(1)
        self._role_line().setPlaceholderText("arn:aws:iam::123456789012:role/SageMakerExecution")
        self.role_combo.setToolTip(
            "The IAM role SageMaker assumes to run the job; it must trust sagemaker.amazonaws.com "
            "and you need iam:PassRole on it."
        )
        self.list_roles_button = QPushButton("List roles")
        self.list_roles_button.setAutoDefault(False)
        self.list_roles_button.setToolTip(
            "List the roles of this account that SageMaker may assume (needs iam:ListRoles)"
        )
        role_row = QHBoxLayout()
        role_row.addWidget(self.role_combo, 1)
        role_row.addWidget(self.list_roles_button)
        self.role_hint = QLabel()
        self.role_hint.setWordWrap(True)
        self.role_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.role_hint.hide()
        role_box = QVBoxLayout()
        role_box.setSpacing(2)
        role_box.addLayout(role_row)
        role_box.addWidget(self.role_hint)
        form.addRow(label("role_arn"), role_box)

        # S3
        self.s3_edit = QLineEdit(saved.s3_prefix or "")
        self.s3_edit.setPlaceholderText(S3_PLACEHOLDER)
        self.s3_edit.setClearButtonEnabled(True)
        self.s3_edit.setToolTip(
            "s3://bucket/prefix for the job's code, data and outputs. Empty: SageMaker's default "
            "bucket sagemaker-<region>-<account> (created on first use)."
        )
        form.addRow(label("s3_prefix"), self.s3_edit)

        # Test connection
        self.test_button = QPushButton("Test connection")
        self.test_button.setAutoDefault(False)
        self.test_button.setToolTip(
            "Ask AWS who these credentials belong to (sts:GetCallerIdentity) and, with an S3 "
            "prefix set, whether its bucket can be reached"
        )
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextFormat(Qt.TextFormat.RichText)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        form.addRow("", test_row)

        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(f"color:{ERROR_COLOR}")
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()

        self.note_label = QLabel(CREDENTIALS_NOTE)
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet(f"color:{MUTED_COLOR}")

        self.button_box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.button_box.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setDefault(True)
        self.save_button.setToolTip("Save these settings for new SageMaker jobs (Enter)")
        self.button_box.button(QDialogButtonBox.StandardButton.Cancel).setToolTip(
            "Close without saving (Esc)"
        )

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addStretch(1)
        layout.addWidget(self.note_label)
        layout.addWidget(self.button_box)

        order: list[QWidget] = [
            self.profile_combo,
            self.region_combo,
            self.role_combo,
            self.list_roles_button,
            self.s3_edit,
            self.test_button,
            self.save_button,
            self.button_box.button(QDialogButtonBox.StandardButton.Cancel),
        ]
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)
        self.profile_combo.setFocus()
        # A width for long role ARNs; no setMinimumWidth, which would stop the layout from
        # growing the dialog when a hint or a two-line result appears.
        self.resize(680, self.sizeHint().height())

        self.profile_combo.currentIndexChanged.connect(self._on_profile_changed)
        self.region_combo.currentTextChanged.connect(self._on_region_changed)
        self.role_combo.currentTextChanged.connect(self._validate)
        self.s3_edit.textChanged.connect(self._validate)
        self.list_roles_button.clicked.connect(self.list_roles)
        self.test_button.clicked.connect(self.test_connection)
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)

    def _fit_height(self) -> None:
        """Grow to show every line: Qt does not apply a word-wrapped label's height-for-width
        to a top-level window, so a hint or result that wraps would be squeezed."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        width = self.width()
        need = (
            layout.totalHeightForWidth(width)
            if layout.hasHeightForWidth()
            else layout.totalSizeHint().height()
        )
        if need > self.height():
            self.resize(width, need)

    def _role_line(self) -> QLineEdit:
        line = self.role_combo.lineEdit()
        assert line is not None
        return line

    def _region_line(self) -> QLineEdit:
        line = self.region_combo.lineEdit()
        assert line is not None
        return line

    # -- values and validation ---------------------------------------------------------------

    def profile(self) -> str | None:
        data = self.profile_combo.currentData()
        return str(data) if data else None

    def region(self) -> str | None:
        return self.region_combo.currentText().strip() or None

    def values(self) -> dict[str, str | None]:
        """What the page holds now, as `AwsDefaults.from_mapping` takes it (empty -> None)."""
        return {
            "profile": self.profile(),
            "region": self.region(),
            "role_arn": self.role_combo.currentText().strip() or None,
            "s3_prefix": self.s3_edit.text().strip() or None,
        }

    def _check(self) -> tuple[AwsDefaults | None, list[str]]:
        try:
            return AwsDefaults.from_mapping(dict(self.values())), []
        except SpecError as exc:
            return None, list(exc.problems)

    @Slot()
    def _validate(self) -> None:
        _, problems = self._check()
        bad_keys = set()
        shown = []
        for line in problems:
            key, sep, rest = line.partition(":")
            key = key.strip()
            if sep and key in FIELD_TITLES:
                bad_keys.add(key)
                shown.append(f"{FIELD_TITLES[key]}: {rest.strip()}")
            else:
                shown.append(line)
        self.problems = shown
        self.problems_label.setText("\n".join(shown))
        self.problems_label.setVisible(bool(shown))
        self._fit_height()
        for key, widget in self.field_labels.items():
            widget.setStyleSheet(f"color:{ERROR_COLOR}" if key in bad_keys else "")
        self.save_button.setEnabled(not shown)

    def is_valid(self) -> bool:
        return not self.problems

    # -- background work ---------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._tokens[kind] += 1
        return self._tokens[kind]

    def _current(self, outcome: Outcome, kind: str) -> bool:
        return bool(outcome.tag == self._tokens[kind])

    def _run(self, kind: str, fn: Callable[[], Any], slot: Callable[[Outcome], None]) -> None:
        """A new call of `kind` off the GUI thread; the one it supersedes is cancelled."""
        token = self._next(kind) if kind in self._tokens else 0
        previous = self._running.pop(kind, None)
        if previous is not None:
            previous.cancel()
        self._running[kind] = run_tagged(token, fn, slot, group=self._tasks)

    def done(self, result: int) -> None:
        self._tasks.cancel_all()  # nothing pending reports to a closed dialog
        self._running.clear()
        super().done(result)

    def _start_loading(self) -> None:
        self._run("profiles", list_profiles, self._on_profiles)
        self._run("regions", list_regions, self._on_regions)
        self._refresh_default_region()

    @Slot(object)
    def _on_profiles(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.profile_note.setStyleSheet(f"color:{ERROR_COLOR}")
            self.profile_note.setText(outcome.message)
            self._fit_height()
            return
        fill_profiles(self.profile_combo, list(outcome.value or []))
        self.profile_note.setText("")
        self.profile_note.hide()

    @Slot(object)
    def _on_regions(self, outcome: Outcome) -> None:
        if outcome.error is not None:  # typing a region still works
            log.info("could not list AWS regions: %s", outcome.message)
            return
        current = self.region_combo.currentText()
        self.region_combo.blockSignals(True)
        try:
            self.region_combo.clear()
            self.region_combo.addItem("")
            self.region_combo.addItems(list(outcome.value or []))
            self.region_combo.setEditText(current)
        finally:
            self.region_combo.blockSignals(False)

    def _refresh_default_region(self) -> None:
        profile = self.profile()
        self._run("region", lambda: default_region(profile), self._on_default_region)

    @Slot(object)
    def _on_default_region(self, outcome: Outcome) -> None:
        if self._current(outcome, "region"):
            self._set_region_placeholder(outcome.value if outcome.error is None else None)

    def _set_region_placeholder(self, region: str | None) -> None:
        self.default_region = region
        self._region_line().setPlaceholderText(
            f"default: {region}" if region else "no default region: pick one"
        )

    @Slot()
    def _on_profile_changed(self) -> None:
        self._refresh_default_region()
        self._forget_checks()
        self._validate()

    @Slot()
    def _on_region_changed(self) -> None:
        self._forget_checks()
        self._validate()

    def _forget_checks(self) -> None:
        """Another profile or region: results of earlier checks no longer apply."""
        self._next("test")
        self._next("roles")
        self._reset_test_button()
        self._reset_roles_button()
        self.test_result.clear()
        self.role_hint.hide()
        self.s3_edit.setPlaceholderText(S3_PLACEHOLDER)

    # -- execution roles ---------------------------------------------------------------------

    @Slot()
    def list_roles(self) -> None:
        """List the roles SageMaker may assume, off the GUI thread."""
        profile, region = self.profile(), self.region()
        self.list_roles_button.setEnabled(False)
        self.list_roles_button.setText("Listing…")
        self.role_hint.hide()
        self._run("roles", lambda: list_execution_roles(profile, region), self._on_roles)

    def _reset_roles_button(self) -> None:
        self.list_roles_button.setText("List roles")
        self.list_roles_button.setEnabled(True)

    def _show_role_hint(self, text: str, color: str) -> None:
        self.role_hint.setStyleSheet(f"color:{color}")
        self.role_hint.setText(text)
        self.role_hint.show()
        self._fit_height()

    @Slot(object)
    def _on_roles(self, outcome: Outcome) -> None:
        if not self._current(outcome, "roles"):
            return
        self._reset_roles_button()
        if outcome.error is not None:
            self._show_role_hint(outcome.message, ERROR_COLOR)
            return
        if outcome.value is None:
            self._show_role_hint(ROLES_DENIED_HINT, MUTED_COLOR)
            return
        roles: list[str] = list(outcome.value)
        current = self.role_combo.currentText()
        self.role_combo.blockSignals(True)
        try:
            self.role_combo.clear()
            self.role_combo.addItem("")
            self.role_combo.addItems(roles)
            if current:
                self.role_combo.setEditText(current)
            elif len(roles) == 1:
                self.role_combo.setCurrentIndex(1)
        finally:
            self.role_combo.blockSignals(False)
        self._validate()
        if roles:
            count = f"{len(roles)} role{'s' if len(roles) != 1 else ''} SageMaker may assume"
            self._show_role_hint(f"{count}: pick one from the list", MUTED_COLOR)
        else:
            self._show_role_hint(NO_ROLES_HINT, MUTED_COLOR)

    # -- test connection ---------------------------------------------------------------------

    @Slot()
    def test_connection(self) -> None:
        """Check the credentials (and the S3 prefix's bucket) off the GUI thread."""
        profile, region = self.profile(), self.region()
        defaults, _ = self._check()
        prefix = defaults.s3_prefix if defaults is not None else None
        bucket = S3Uri.parse(prefix).bucket if prefix else None
        self.test_button.setEnabled(False)
        self.test_button.setText("Testing…")
        self.test_result.setText(_colored("Contacting AWS…", MUTED_COLOR))

        def work() -> _TestResult:
            session = AwsSession(profile, region)
            ident = session.identity()
            bucket_error = None
            if bucket:
                try:
                    session.check_bucket(bucket)
                except UserError as exc:
                    bucket_error = str(exc)
            return _TestResult(
                ident.arn, ident.account, session.region, session.default_bucket(), bucket_error
            )

        self._run("test", work, self._on_tested)

    def _reset_test_button(self) -> None:
        self.test_button.setText("Test connection")
        self.test_button.setEnabled(True)

    @Slot(object)
    def _on_tested(self, outcome: Outcome) -> None:
        if not self._current(outcome, "test"):
            return
        self._reset_test_button()
        if outcome.error is not None:
            self.test_result.setText(_colored(outcome.message, ERROR_COLOR))
            self._fit_height()
            return
        result: _TestResult = outcome.value
        text = _colored(
            f"Connected as {result.arn} (account {result.account}) in {result.region}", OK_COLOR
        )
        if result.bucket_error:
            text += "<br>" + _colored(result.bucket_error, ERROR_COLOR)
        self.test_result.setText(text)
        self._fit_height()
        self.s3_edit.setPlaceholderText(f"default: s3://{result.default_bucket}")

    # -- save / cancel -----------------------------------------------------------------------

    def accept(self) -> None:
        """Save (Enter or the Save button); the dialog stays open if the file cannot be written."""
        defaults, _ = self._check()
        if defaults is None:
            self._validate()
            return
        try:
            save_aws_defaults(defaults)
        except OSError as exc:
            QMessageBox.warning(
                self, "AWS settings", f"The AWS settings could not be saved:\n{exc}"
            )
            return
        self.sig_saved.emit(defaults)
        super().accept()
