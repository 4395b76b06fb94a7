"""The AWS settings page against the moto server: profiles, regions, roles, test, save."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto_support import FAKE_CREDENTIALS, capture_requests, signed_for, user_agent
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QMessageBox

from trainer_gui.core.aws.defaults import AwsDefaults, load_aws_defaults, save_aws_defaults
from trainer_gui.core.aws.defaults import settings_path as aws_settings_path
from trainer_gui.ui.aws_settings import (
    DEFAULT_CHAIN,
    ROLES_DENIED_HINT,
    AwsSettingsDialog,
)
from trainer_gui.ui.status import probe_aws

ACCOUNT = "123456789012"
TIMEOUT = 20_000

TRUST_SAGEMAKER: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
TRUST_EC2: dict[str, Any] = {
    **TRUST_SAGEMAKER,
    "Statement": [
        {**TRUST_SAGEMAKER["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}
    ],
}


@pytest.fixture
def open_dialog(qtbot: Any) -> Iterator[Any]:
    """Make dialogs that are closed, with their pool work finished, before they are destroyed."""
    made: list[AwsSettingsDialog] = []

    def make() -> AwsSettingsDialog:
        dialog = AwsSettingsDialog()
        qtbot.addWidget(dialog)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    assert QThreadPool.globalInstance().waitForDone(10_000)
    for dialog in made:
        dialog.close()
    qtbot.wait(0)  # deliver the last queued results while the dialogs still exist


def _profiles_loaded(dialog: AwsSettingsDialog) -> bool:
    return dialog.profile_combo.count() > 1 and not dialog.profile_note.isVisible()


def _select_profile(dialog: AwsSettingsDialog, name: str | None) -> None:
    index = dialog.profile_combo.findData(name) if name else 0
    assert index >= 0, name
    dialog.profile_combo.setCurrentIndex(index)


def test_profiles_are_listed_from_the_aws_config(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    dialog = open_dialog()
    assert dialog.profile_combo.itemText(0) == DEFAULT_CHAIN
    qtbot.waitUntil(lambda: _profiles_loaded(dialog), timeout=TIMEOUT)
    names = [dialog.profile_combo.itemData(i) for i in range(dialog.profile_combo.count())]
    assert names == [None, "default", "research", "sso-dev"]
    assert dialog.values()["profile"] is None
    # the region list comes from botocore's data, no network
    qtbot.waitUntil(lambda: dialog.region_combo.findText("eu-west-1") >= 0, timeout=TIMEOUT)


def test_a_broken_aws_config_is_shown_not_raised(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    (aws.home / "config").write_text("[default\nregion = us-east-1\n")
    dialog = open_dialog()
    qtbot.waitUntil(lambda: "AWS config" in dialog.profile_note.text(), timeout=TIMEOUT)
    assert dialog.profile_note.isVisible()
    assert dialog.profile_combo.itemText(0) == DEFAULT_CHAIN


def test_the_region_placeholder_follows_the_profile(
    aws: Any, qtbot: Any, open_dialog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # else it wins over every profile's region
    dialog = open_dialog()
    qtbot.waitUntil(lambda: _profiles_loaded(dialog), timeout=TIMEOUT)
    line = dialog.region_combo.lineEdit()
    for profile, region in [("research", "eu-west-1"), ("sso-dev", "us-west-2")]:
        _select_profile(dialog, profile)
        qtbot.waitUntil(lambda r=region: line.placeholderText() == f"default: {r}", timeout=TIMEOUT)
        assert dialog.region_combo.currentText() == ""
        assert dialog.values()["region"] is None


def test_roles_that_trust_sagemaker_are_listed(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    iam = aws.client("iam")
    iam.create_role(
        RoleName="SageMakerExecution", AssumeRolePolicyDocument=json.dumps(TRUST_SAGEMAKER)
    )
    iam.create_role(RoleName="Ec2Role", AssumeRolePolicyDocument=json.dumps(TRUST_EC2))
    dialog = open_dialog()
    qtbot.mouseClick(dialog.list_roles_button, Qt.MouseButton.LeftButton)
    assert not dialog.list_roles_button.isEnabled()  # busy until the answer comes
    qtbot.waitUntil(dialog.list_roles_button.isEnabled, timeout=TIMEOUT)
    listed = [dialog.role_combo.itemText(i) for i in range(dialog.role_combo.count())]
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
    assert [r for r in listed if r] == [role_arn]
    assert dialog.values()["role_arn"] == role_arn  # the only one is picked
    assert dialog.list_roles_button.text() == "List roles"


def test_a_denied_role_listing_says_to_type_the_arn(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    aws.faults.error("iam:ListRoles", 403, "AccessDenied", "not allowed")
    dialog = open_dialog()
    dialog.list_roles()
    qtbot.waitUntil(dialog.role_hint.isVisible, timeout=TIMEOUT)
    assert dialog.role_hint.text() == ROLES_DENIED_HINT
    assert "iam:ListRoles" in dialog.role_hint.text()
    assert dialog.list_roles_button.isEnabled()
    assert dialog.role_combo.isEditable()


def test_test_connection_shows_the_account(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    dialog = open_dialog()
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Connected as" in dialog.test_result.text(), timeout=TIMEOUT)
    text = dialog.test_result.text()
    assert f"(account {ACCOUNT}) in us-east-1" in text
    assert dialog.s3_edit.placeholderText() == f"default: s3://sagemaker-us-east-1-{ACCOUNT}"
    assert dialog.test_button.isEnabled()

    # with an S3 prefix, its bucket is checked too
    dialog.s3_edit.setText("s3://no-such-bucket-here/jobs")
    dialog.test_connection()
    qtbot.waitUntil(lambda: "no-such-bucket-here" in dialog.test_result.text(), timeout=TIMEOUT)
    assert "does not exist" in dialog.test_result.text()


def test_test_connection_shows_aws_errors_in_red(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    aws.faults.error("sts:GetCallerIdentity", 403, "InvalidClientTokenId", "bad token", times=10)
    dialog = open_dialog()
    dialog.test_connection()
    qtbot.waitUntil(dialog.test_button.isEnabled, timeout=TIMEOUT)
    text = dialog.test_result.text()
    assert "does not accept these credentials" in text and "#d64545" in text
    assert "Traceback" not in text


def test_an_unexpected_error_is_one_short_line(
    aws: Any, qtbot: Any, open_dialog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Any) -> Any:
        raise RuntimeError("something odd\nwith more lines")

    monkeypatch.setattr("trainer_gui.core.aws.session.AwsSession.identity", boom)
    dialog = open_dialog()
    dialog.test_connection()
    qtbot.waitUntil(dialog.test_button.isEnabled, timeout=TIMEOUT)
    text = dialog.test_result.text()
    assert "Unexpected error (RuntimeError): something odd" in text
    assert "more lines" not in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("field", "value", "title"),
    [
        ("region", "moon", "Region"),
        ("role_arn", "my-role", "Execution role"),
        ("s3_prefix", "bucket/prefix", "S3 bucket/prefix"),
        ("s3_prefix", "s3://", "S3 bucket/prefix"),
    ],
)
def test_bad_values_disable_save_and_name_the_field(
    aws: Any, qtbot: Any, open_dialog: Any, field: str, value: str, title: str
) -> None:
    dialog = open_dialog()
    assert dialog.save_button.isEnabled() and not dialog.problems_label.isVisible()
    edit = {
        "region": dialog.region_combo.setEditText,
        "role_arn": dialog.role_combo.setEditText,
        "s3_prefix": dialog.s3_edit.setText,
    }[field]
    edit(value)
    assert not dialog.save_button.isEnabled()
    assert dialog.problems_label.isVisible()
    assert dialog.problems_label.text().startswith(f"{title}: ")
    assert "color:#d64545" in dialog.field_labels[field].styleSheet()
    # Enter does not save while invalid
    qtbot.keyClick(dialog.s3_edit, Qt.Key.Key_Return)
    assert dialog.isVisible() and not aws_settings_path().exists()
    edit("")
    assert dialog.save_button.isEnabled() and not dialog.problems_label.isVisible()


def test_saving_writes_the_settings_and_no_credentials(
    aws: Any, qtbot: Any, open_dialog: Any
) -> None:
    dialog = open_dialog()
    qtbot.waitUntil(lambda: _profiles_loaded(dialog), timeout=TIMEOUT)
    _select_profile(dialog, "research")
    dialog.region_combo.setEditText("eu-west-2")
    dialog.role_combo.setEditText(f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution")
    dialog.s3_edit.setText("s3://my-bucket/jobs")
    with qtbot.waitSignal(dialog.sig_saved, timeout=TIMEOUT) as saved:
        qtbot.keyClick(dialog.role_combo.lineEdit(), Qt.Key.Key_Return)  # Enter saves
    expected = AwsDefaults(
        "research",
        "eu-west-2",
        f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution",
        "s3://my-bucket/jobs",
    )
    assert saved.args == [expected]
    assert load_aws_defaults() == expected
    assert dialog.result() == AwsSettingsDialog.DialogCode.Accepted and not dialog.isVisible()
    text = aws_settings_path().read_text()
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in text

    # a new dialog shows what was saved
    again = open_dialog()
    assert again.values() == expected.as_dict()
    qtbot.waitUntil(lambda: _profiles_loaded(again), timeout=TIMEOUT)
    assert again.values() == expected.as_dict()
    assert again.profile_combo.currentText() == "research"


def test_cancel_and_escape_discard(aws: Any, qtbot: Any, open_dialog: Any) -> None:
    save_aws_defaults(AwsDefaults(region="us-west-2"))
    dialog = open_dialog()
    assert dialog.values()["region"] == "us-west-2"
    dialog.region_combo.setEditText("eu-central-1")
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and dialog.result() == AwsSettingsDialog.DialogCode.Rejected
    assert load_aws_defaults() == AwsDefaults(region="us-west-2")

    other = open_dialog()
    other.s3_edit.setText("s3://bucket")
    other.button_box.button(other.button_box.StandardButton.Cancel).click()
    assert load_aws_defaults() == AwsDefaults(region="us-west-2")


def test_a_failed_save_is_shown_and_the_dialog_stays(
    aws: Any, qtbot: Any, open_dialog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))

    def fail(defaults: AwsDefaults) -> Any:
        raise PermissionError(13, "Permission denied", "aws-settings.json")

    monkeypatch.setattr("trainer_gui.ui.aws_settings.save_aws_defaults", fail)
    dialog = open_dialog()
    dialog.region_combo.setEditText("eu-west-2")
    with qtbot.assertNotEmitted(dialog.sig_saved):
        dialog.save_button.click()
    assert shown and "Permission denied" in shown[0]
    assert dialog.isVisible()


def test_probe_aws_uses_the_saved_profile_and_region(aws: Any) -> None:
    result = probe_aws()
    assert result.state == "ok" and result.text == f"AWS: {ACCOUNT} (us-east-1)"

    save_aws_defaults(AwsDefaults(region="eu-west-2"))
    result = probe_aws()
    assert result.state == "ok" and result.text == f"AWS: {ACCOUNT} (eu-west-2)"

    # a named profile replaces the environment's keys (boto3's rule): research has none
    save_aws_defaults(AwsDefaults(profile="research"))
    result = probe_aws()
    assert result.state == "bad" and "'research'" in result.detail

    (aws.home / "credentials").write_text(
        "[research]\n"
        f"aws_access_key_id = {FAKE_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {FAKE_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    result = probe_aws()
    assert result.state == "ok" and "profile research" in result.detail
    assert result.text == f"AWS: {ACCOUNT} (us-east-1)"  # AWS_DEFAULT_REGION beats the config
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in result.detail and secret not in result.text


def test_probe_aws_talks_through_the_app_session(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's one STS call is signed with the saved profile's key for the saved region and
    carries the app session's client config (user agent), with one quick attempt, no retries."""
    (aws.home / "credentials").write_text(
        "[research]\naws_access_key_id = AKIARESEARCHPROFILE1\n"
        "aws_secret_access_key = researchSecretKeyForTheTests0000000000000\n"
    )
    save_aws_defaults(AwsDefaults(profile="research", region="eu-west-2"))
    sent = capture_requests(aws, monkeypatch)
    result = probe_aws()
    assert result.state == "ok" and result.text == f"AWS: {ACCOUNT} (eu-west-2)"
    assert len(sent) == 1
    assert signed_for(sent[0]) == ("AKIARESEARCHPROFILE1", "eu-west-2", "sts")
    assert "trainer-gui" in user_agent(sent[0])

    aws.faults.drop("sts:GetCallerIdentity", times=5)
    result = probe_aws()
    assert result.state == "warn" and "are you offline?" in result.detail
    assert aws.faults.count("sts:GetCallerIdentity") == 2  # the first call, then one more only
