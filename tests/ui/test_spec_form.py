"""The job form generated from JobSpec: editors, labels, inline model messages, saving; plus the
hyperparameters table and the metric definitions tester it embeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QMessageBox, QTableWidget, QTableWidgetItem

from trainer_gui.core.spec import load_spec
from trainer_gui.core.spec.model import (
    Backend,
    ChannelSpec,
    ComputeSpec,
    JobSpec,
    MetricDefinition,
    SourceSpec,
)
from trainer_gui.ui.form.channels import ChannelsTable
from trainer_gui.ui.form.hyperparams import (
    HyperparamsTable,
    KeyValueTable,
    format_value,
    parse_value,
)
from trainer_gui.ui.form.metric_defs import MetricDefsEditor
from trainer_gui.ui.form.spec_form import (
    GROUPS,
    ComboField,
    SpecEditorDialog,
    SpecForm,
    SpinField,
    rebase_paths,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('epoch=1 loss=0.5')\n")
    (tmp_path / "data" / "train").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def form(qtbot: Any, project: Path) -> SpecForm:
    widget = SpecForm(project)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    return widget


def cell(editor: MetricDefsEditor, row: int, column: int) -> QTableWidgetItem:
    item = editor.table.item(row, column)
    assert item is not None
    return item


@pytest.fixture
def shown_dialog(qtbot: Any, project: Path) -> Iterator[SpecEditorDialog]:
    """The editor window on screen; closed at the end without the unsaved-changes question."""
    dialog = SpecEditorDialog(project)
    dialog.show()
    qtbot.waitExposed(dialog)
    yield dialog
    dialog.done(0)
    dialog.deleteLater()


def open_cell_editor(qtbot: Any, table: QTableWidget, row: int, column: int) -> QLineEdit:
    """Double-click a cell, as a person starts typing into it; returns its editor."""
    item = table.item(row, column)
    assert item is not None
    table.scrollToItem(item)
    rect = table.visualItemRect(item)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    index = table.model().index(row, column)
    qtbot.waitUntil(lambda: table.indexWidget(index) is not None, timeout=2000)
    editor = table.indexWidget(index)
    assert isinstance(editor, QLineEdit)
    return editor


def fill_valid(form: SpecForm) -> None:
    form.editor("name").set_value("my-job")
    form.editor("source.source_dir").set_value("code")
    form.editor("source.entry_point").set_value("train.py")


# -- generated from the model --------------------------------------------------------------------


def test_every_field_of_the_spec_has_an_editor(form: SpecForm) -> None:
    expected = set()
    for name, info in JobSpec.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            expected |= {f"{name}.{sub}" for sub in annotation.model_fields}
        else:
            expected.add(name)

    assert set(form.rows) == expected


def test_tabs_follow_the_groups(form: SpecForm) -> None:
    titles = [form.tabs.tabText(i) for i in range(form.tabs.count())]

    assert titles == [title for title, _ in GROUPS]
    assert titles == [
        "Source",
        "Compute",
        "Distribution",
        "Data",
        "Hyperparameters",
        "Metrics",
        "Output",
        "SageMaker",
    ]


def test_labels_are_titles_and_tooltips_are_descriptions(form: SpecForm) -> None:
    info = SourceSpec.model_fields["source_dir"]
    row = form.rows["source.source_dir"]

    assert row.label.text() == info.title
    assert row.label.toolTip() == info.description
    assert row.editor.toolTip() == info.description
    assert form.rows["compute.backend"].label.toolTip() == (
        ComputeSpec.model_fields["backend"].description
    )


def test_enums_and_literals_become_combo_boxes(form: SpecForm) -> None:
    backend = form.editor("compute.backend")
    kind = form.editor("distribution.kind")

    assert isinstance(backend, ComboField)
    assert [backend.combo.itemText(i) for i in range(backend.combo.count())] == [
        b.value for b in Backend
    ]
    assert [kind.combo.itemText(i) for i in range(kind.combo.count())] == [
        "none",
        "torchrun",
        "mpi",
        "smddp",
        "custom",
    ]
    assert form.editor("compute.gpus").combo.isEditable()  # int | Literal["all"]


def test_integer_bounds_come_from_the_model(form: SpecForm) -> None:
    count = form.editor("compute.instance_count")

    assert isinstance(count, SpinField)
    assert (count.spin.minimum(), count.spin.maximum()) == (1, 100)
    assert form.editor("distribution.processes_per_host").value() is None  # optional: unset


def test_collections_get_their_tables(form: SpecForm) -> None:
    assert isinstance(form.editor("channels"), ChannelsTable)
    assert isinstance(form.editor("metric_definitions"), MetricDefsEditor)
    assert isinstance(form.editor("hyperparameters"), HyperparamsTable)
    environment = form.editor("environment")
    assert isinstance(environment, KeyValueTable) and not environment.typed


def test_defaults_are_the_models_defaults(form: SpecForm) -> None:
    data = form.data()

    assert data["compute"]["backend"] == "local-process"
    assert data["compute"]["instance_type"] == ComputeSpec.model_fields["instance_type"].default
    assert data["max_runtime_seconds"] == 86400
    assert data["channels"] == [] and data["hyperparameters"] == {}


# -- validation as the user types ----------------------------------------------------------------


def test_typing_a_bad_job_name_shows_the_models_message(qtbot: Any, form: SpecForm) -> None:
    fill_valid(form)
    form.validate()
    edit = form.editor("name").edit
    edit.clear()

    qtbot.keyClicks(edit, "bad name!")

    qtbot.waitUntil(lambda: "must be 1-63 letters" in form.problem_text("name"), timeout=3000)
    assert form.problem_text("name").startswith("job name 'bad name!' must be")
    assert form.spec is None
    assert not form.tabs.tabIcon(0).isNull()  # the Source tab is marked


def test_fixing_the_input_clears_the_message(qtbot: Any, form: SpecForm) -> None:
    fill_valid(form)
    form.editor("name").set_value("bad name!")
    form.validate()
    assert form.problem_text("name")

    form.editor("name").edit.setText("good-name")

    qtbot.waitUntil(lambda: form.spec is not None, timeout=3000)
    assert form.problem_text("name") == ""
    assert form.tabs.tabIcon(0).isNull()


def test_a_valid_form_gives_a_spec(form: SpecForm, project: Path) -> None:
    fill_valid(form)
    form.editor("hyperparameters").set_value({"epochs": 2, "lr": 0.01})

    spec = form.validate()

    assert spec is not None
    assert spec.source.entry_point == "train.py"
    assert spec.hyperparameters == {"epochs": 2, "lr": 0.01}
    assert spec.base_dir == project


def test_a_missing_entry_script_is_reported_under_the_entry_script_field(
    qtbot: Any, form: SpecForm
) -> None:
    fill_valid(form)
    form.validate()
    edit = form.editor("source.entry_point").edit
    edit.clear()

    qtbot.keyClicks(edit, "missing.py")

    qtbot.waitUntil(lambda: form.problem_text("source.entry_point") != "", timeout=3000)
    assert "entry script 'missing.py' is not in the source folder" in form.problem_text(
        "source.entry_point"
    )
    assert form.group_errors["source"].isHidden()  # not at the top of the tab
    assert form.problem_text("source.source_dir") == ""


def test_an_empty_entry_script_is_asked_for_at_that_field(qtbot: Any, form: SpecForm) -> None:
    fill_valid(form)
    form.validate()

    form.editor("source.entry_point").edit.clear()

    qtbot.waitUntil(lambda: form.problem_text("source.entry_point") != "", timeout=3000)
    assert "give source_dir and entry_point" in form.problem_text("source.entry_point")
    assert form.group_errors["source"].isHidden()


def test_a_rule_naming_no_field_sits_at_the_groups_first_field(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("source.command").set_value(["python", "-c", "print(1)"])
    form.editor("distribution.kind").set_value("torchrun")

    form.validate()

    assert "torchrun and custom drivers run a script" in form.problem_text("distribution.kind")
    assert form.group_errors["distribution"].isHidden()


def test_a_missing_source_folder_is_reported_under_that_field(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("source.source_dir").set_value("nowhere")

    form.validate()

    assert "source folder 'nowhere' does not exist" in form.problem_text("source.source_dir")


def test_a_cross_field_rule_lands_on_the_field_it_names(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("compute.instance_count").set_value(3)

    form.validate()

    text = form.problem_text("compute.instance_count")
    assert "local-process backend runs one host" in text


def test_a_bad_gpu_value_is_rejected(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("compute.gpus").set_value("lots")

    form.validate()

    assert form.spec is None
    assert form.problem_text("compute.gpus")


def test_a_bad_role_arn_is_reported_on_the_sagemaker_tab(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("sagemaker.role_arn").set_value("not-an-arn")

    form.validate()

    assert "is not an IAM role ARN" in form.problem_text("sagemaker.role_arn")
    sagemaker_tab = [form.tabs.tabText(i) for i in range(form.tabs.count())].index("SageMaker")
    assert not form.tabs.tabIcon(sagemaker_tab).isNull()


def test_set_spec_round_trips_through_the_form(form: SpecForm, project: Path) -> None:
    spec = JobSpec.model_validate(
        {
            "name": "round-trip",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"gpus": "all", "instance_type": "ml.g5.xlarge"},
            "channels": [{"name": "train", "source": "data/train"}],
            "hyperparameters": {"epochs": 3, "tags": ["a", "b"], "flag": True},
            "environment": {"MY_VAR": "1"},
            "metric_definitions": [{"name": "loss", "regex": "loss=([0-9.]+)"}],
            "sagemaker": {"region": "eu-west-1"},
        }
    ).with_base_dir(project)

    form.set_spec(spec)

    again = form.validate()
    assert again is not None
    assert again.model_dump() == spec.model_dump()


def test_rebase_paths_keeps_specs_working_from_another_folder(tmp_path: Path) -> None:
    old = tmp_path / "old"
    new = tmp_path / "new"
    data = {
        "name": "x",
        "source": {"source_dir": "code", "dependencies": ["lib"]},
        "channels": [
            {"name": "train", "source": "../shared/train"},
            {"name": "s3", "source": "s3://b-1/x"},
        ],
        "output_path": "/abs/out",
    }

    out = rebase_paths(data, old, new)

    assert out["source"]["source_dir"] == str(old / "code")
    assert out["source"]["dependencies"] == [str(old / "lib")]
    assert out["channels"][0]["source"] == str(tmp_path / "shared" / "train")
    assert out["channels"][1]["source"] == "s3://b-1/x"
    assert out["output_path"] == "/abs/out"


# -- the editor dialog -------------------------------------------------------------------------


def test_saving_writes_yaml_in_the_project(qtbot: Any, project: Path) -> None:
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    fill_valid(dialog.form)

    with qtbot.waitSignal(dialog.sig_saved) as saved:
        path = dialog.save()

    assert path == project / "my-job.yaml"
    assert saved.args == [str(path)]
    spec = load_spec(path)
    assert spec.name == "my-job" and spec.source.entry_point == "train.py"
    assert "compute" not in path.read_text()  # defaults are left out


def test_saving_an_invalid_spec_is_refused_with_the_models_message(
    qtbot: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: shown.append(text))
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    fill_valid(dialog.form)
    dialog.form.editor("name").set_value("-bad-")

    assert dialog.save() is None

    assert shown and "job name '-bad-' must be" in shown[0]
    assert list(project.glob("*.yaml")) == []


def test_run_saves_then_asks_to_run(qtbot: Any, project: Path) -> None:
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    fill_valid(dialog.form)

    with qtbot.waitSignal(dialog.sig_run_requested) as run:
        assert dialog.run()

    spec, path = run.args
    assert isinstance(spec, JobSpec) and spec.name == "my-job"
    assert Path(path).is_file()


# -- hyperparameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", 8),
        ("0.01", 0.01),
        ("1e-3", 0.001),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ("adam", "adam"),
        ('"8"', "8"),
        ("", ""),
        ("null", None),
    ],
)
def test_hyperparameter_text_is_read_like_yaml(text: str, value: Any) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize("value", [8, 0.01, 1e-5, True, "adam", "8", [1, "a"], {"k": 1}, None])
def test_hyperparameter_values_round_trip_through_cell_text(value: Any) -> None:
    assert parse_value(format_value(value)) == value


def test_hyperparameters_import_from_json_and_yaml(qtbot: Any, tmp_path: Path) -> None:
    table = HyperparamsTable()
    qtbot.addWidget(table)
    table.set_value({"epochs": 8, "lr": 0.1})
    (tmp_path / "hp.json").write_text(json.dumps({"lr": 0.001, "batch-size": 32}))
    (tmp_path / "hp.yaml").write_text("optimizer: adam\nlayers: [64, 32]\n")

    assert table.import_file(tmp_path / "hp.json") == 2
    assert table.import_file(tmp_path / "hp.yaml") == 2

    assert table.value() == {
        "epochs": 8,
        "lr": 0.001,
        "batch-size": 32,
        "optimizer": "adam",
        "layers": [64, 32],
    }


def test_importing_a_bad_file_raises_a_clear_error(qtbot: Any, tmp_path: Path) -> None:
    from trainer_gui.core.errors import UserError

    table = HyperparamsTable()
    qtbot.addWidget(table)
    (tmp_path / "hp.yaml").write_text("- just\n- a list\n")

    with pytest.raises(UserError, match="must hold a mapping"):
        table.import_file(tmp_path / "hp.yaml")


def test_a_duplicate_hyperparameter_name_is_flagged(qtbot: Any) -> None:
    table = HyperparamsTable()
    qtbot.addWidget(table)
    table.set_value({"lr": 0.1})

    table.add_row("lr", 0.2)

    assert "already set in row 1" in table.local_problems()[1]


def show_tab(dialog: SpecEditorDialog, title: str) -> None:
    tabs = dialog.form.tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index(title))


def test_a_value_without_a_name_blocks_saving_with_the_error_at_the_row(
    qtbot: Any, shown_dialog: SpecEditorDialog, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: refused.append(text))
    dialog = shown_dialog
    fill_valid(dialog.form)
    show_tab(dialog, "Hyperparameters")
    hyper = dialog.form.editor("hyperparameters")
    qtbot.mouseClick(hyper.add_button, Qt.MouseButton.LeftButton)

    editor = open_cell_editor(qtbot, hyper.table, 0, 1)  # the name left empty
    qtbot.keyClicks(editor, "0.1")
    qtbot.keyClick(editor, Qt.Key.Key_Return)

    qtbot.waitUntil(lambda: "problem" in dialog.status.text(), timeout=3000)
    assert "valid" not in dialog.status.text()
    assert "row 1: this value has no name" in dialog.form.problem_text("hyperparameters")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert refused and "hyperparameters: row 1: this value has no name" in refused[0]
    assert list(project.glob("*.yaml")) == []


def test_naming_the_value_makes_the_spec_valid_again(
    qtbot: Any, shown_dialog: SpecEditorDialog, project: Path
) -> None:
    dialog = shown_dialog
    fill_valid(dialog.form)
    show_tab(dialog, "Hyperparameters")
    hyper = dialog.form.editor("hyperparameters")
    hyper.add_row("", 0.1)
    qtbot.waitUntil(lambda: "problem" in dialog.status.text(), timeout=3000)

    editor = open_cell_editor(qtbot, hyper.table, 0, 0)
    qtbot.keyClicks(editor, "lr")
    qtbot.keyClick(editor, Qt.Key.Key_Return)

    qtbot.waitUntil(lambda: dialog.status.text() == "The spec is valid.", timeout=3000)
    assert dialog.form.problem_text("hyperparameters") == ""
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert load_spec(project / "my-job.yaml").hyperparameters == {"lr": 0.1}


def test_an_entirely_empty_hyperparameter_row_is_ignored(
    qtbot: Any, shown_dialog: SpecEditorDialog, project: Path
) -> None:
    dialog = shown_dialog
    fill_valid(dialog.form)
    show_tab(dialog, "Hyperparameters")
    hyper = dialog.form.editor("hyperparameters")

    qtbot.mouseClick(hyper.add_button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(hyper.table.viewport().focusWidget() or hyper.table, Qt.Key.Key_Escape)

    qtbot.waitUntil(lambda: dialog.status.text() == "The spec is valid.", timeout=3000)
    assert hyper.table.rowCount() == 1
    assert dialog.form.problem_text("hyperparameters") == ""
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert load_spec(project / "my-job.yaml").hyperparameters == {}


def test_a_hyperparameter_name_used_twice_blocks_the_spec(form: SpecForm) -> None:
    fill_valid(form)
    table = form.editor("hyperparameters")
    table.set_value({"lr": 0.1})
    table.add_row("lr", 0.2)

    assert form.validate() is None
    assert any("row 2: 'lr' is already set in row 1" in p for p in form.problems)


def test_a_reserved_hyperparameter_name_shows_the_models_message(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("hyperparameters").set_value({"sagemaker_program": "x"})

    form.validate()

    assert "reserved" in form.problem_text("hyperparameters")


# -- metric definitions --------------------------------------------------------------------------


@pytest.fixture
def metrics(qtbot: Any) -> MetricDefsEditor:
    editor = MetricDefsEditor()
    qtbot.addWidget(editor)
    return editor


def test_the_regex_tester_shows_what_each_definition_finds(
    qtbot: Any, metrics: MetricDefsEditor
) -> None:
    metrics.sample.setPlainText("epoch=1 train_loss=0.91\nepoch=2 train_loss=0.52\n")

    metrics.add_definition("train_loss", r"train_loss=([0-9.]+)")

    qtbot.waitUntil(lambda: metrics.results.rowCount() == 2, timeout=2000)
    assert metrics.test_results() == [(1, "train_loss", 0.91), (2, "train_loss", 0.52)]
    assert cell(metrics, 0, 2).text() == "0.91"


def test_the_tester_updates_as_the_sample_changes(qtbot: Any, metrics: MetricDefsEditor) -> None:
    metrics.add_definition("acc", r"acc=([0-9.]+)")
    metrics.sample.setPlainText("nothing here")
    qtbot.waitUntil(lambda: cell(metrics, 0, 2).text() == "no match", timeout=2000)

    metrics.sample.setPlainText("acc=0.75")

    qtbot.waitUntil(lambda: cell(metrics, 0, 2).text() == "0.75", timeout=2000)


def test_the_tester_updates_while_a_regex_is_typed_before_enter(
    qtbot: Any, metrics: MetricDefsEditor
) -> None:
    metrics.resize(700, 500)
    metrics.show()
    qtbot.waitExposed(metrics)
    metrics.sample.setPlainText("epoch=1 acc=0.75\n")
    metrics.add_definition("acc", "")
    qtbot.waitUntil(lambda: cell(metrics, 0, 2).text() == "invalid", timeout=2000)

    editor = open_cell_editor(qtbot, metrics.table, 0, 1)
    qtbot.keyClicks(editor, "acc=([0-9.]+)")

    qtbot.waitUntil(lambda: cell(metrics, 0, 2).text() == "0.75", timeout=2000)
    assert metrics.table.indexWidget(metrics.table.model().index(0, 1)) is editor  # still typing
    assert metrics.test_results() == [(1, "acc", 0.75)]
    assert "matched: acc" in metrics.summary.text()

    qtbot.keyClick(editor, Qt.Key.Key_Escape)  # the edit is dropped: so is what it found

    qtbot.waitUntil(lambda: cell(metrics, 0, 2).text() == "invalid", timeout=2000)
    assert metrics.value() == [{"name": "acc", "regex": ""}]


def test_a_regex_with_two_groups_shows_the_models_message(metrics: MetricDefsEditor) -> None:
    metrics.add_definition("loss", r"(loss)=([0-9.]+)")

    problems = metrics.row_problems()

    assert "has 2 capture groups; it needs exactly one" in problems[0]
    assert cell(metrics, 0, 1).toolTip() == problems[0]


def test_a_regex_that_does_not_compile_is_flagged(metrics: MetricDefsEditor) -> None:
    metrics.add_definition("loss", r"loss=([0-9.]+")

    assert "does not compile" in metrics.row_problems()[0]


def test_suggest_adds_definitions_that_match_the_sample(metrics: MetricDefsEditor) -> None:
    metrics.sample.setPlainText("epoch=1 step=10 train_loss=0.5 test_acc=0.8\n")

    names = metrics.suggest_from_sample()

    assert names == ["train_loss", "test_acc"]
    values = {name: value for _, name, value in metrics.test_results()}
    assert values == {"train_loss": 0.5, "test_acc": 0.8}
    for definition in metrics.value():
        MetricDefinition.model_validate(definition)


def test_metric_definitions_reach_the_spec(form: SpecForm) -> None:
    fill_valid(form)
    form.editor("metric_definitions").set_value([{"name": "loss", "regex": "loss=([0-9.]+)"}])

    spec = form.validate()

    assert spec is not None
    assert [m.name for m in spec.metric_definitions] == ["loss"]


def test_channels_edited_in_the_form_reach_the_spec(form: SpecForm, project: Path) -> None:
    fill_valid(form)
    form.editor("channels").add_channel(str(project / "data" / "train"))

    spec = form.validate()

    assert spec is not None
    assert spec.channels == [ChannelSpec(name="train", source="data/train")]


def test_instance_groups_are_typed_in_the_compute_tab(form: SpecForm) -> None:
    """A heterogeneous cluster from the form: a table of groups (name, instance type, count)
    typed into like the user does, the distributed group as a list."""
    from trainer_gui.ui.form.instance_groups import InstanceGroupsTable

    fill_valid(form)
    form.editor("compute.backend").set_value("docker")
    groups = form.editor("compute.instance_groups")
    assert isinstance(groups, InstanceGroupsTable)
    headers = [groups.table.horizontalHeaderItem(c).text() for c in range(3)]
    assert headers == ["Group name", "Instance type", "Instance count"]  # the model's titles
    groups.add_button.click()  # a first group, ready to type its instance type into
    groups.add_button.click()
    groups.table.item(0, 0).setText("trainers")
    groups.table.item(0, 1).setText("ml.m5.large")
    groups.table.item(0, 2).setText("2")
    groups.table.item(1, 0).setText("loaders")
    groups.table.item(1, 1).setText("ml.c5.xlarge")
    form.editor("distribution.kind").set_value("torchrun")
    form.editor("distribution.instance_groups").set_value(["trainers"])

    spec = form.validate()

    assert spec is not None, form.problems
    assert [(g.name, g.instance_type, g.instance_count) for g in spec.compute.instance_groups] == [
        ("trainers", "ml.m5.large", 2),
        ("loaders", "ml.c5.xlarge", 1),
    ]
    assert spec.compute.host_count == 3
    form.editor("distribution.instance_groups").set_value(["nope"])
    assert form.validate() is None
    assert any("'nope' is not one of" in p for p in form.problems)


def test_an_instance_group_row_with_a_problem_is_marked_with_the_models_message(
    form: SpecForm,
) -> None:
    from trainer_gui.ui.form.instance_groups import InstanceGroupsTable
    from trainer_gui.ui.row_table import ERROR_BG

    fill_valid(form)
    groups = form.editor("compute.instance_groups")
    assert isinstance(groups, InstanceGroupsTable)
    groups.set_value(
        [
            {"name": "a", "instance_type": "ml.m5.large", "instance_count": 1},
            {"name": "a", "instance_type": "ml.c5.xlarge", "instance_count": 1},
        ]
    )
    groups.table.item(0, 1).setText("m5.large")  # not an ml.* type
    groups.table.item(1, 2).setText("0")

    problems = groups.row_problems()

    assert "instance_type" in problems[0]
    assert "instance_count" in problems[1] and 1 in problems
    assert groups.table.item(0, 1).background().color() == ERROR_BG
    assert groups.table.item(0, 1).toolTip() == problems[0]
    assert form.validate() is None
    groups.set_value([])
    assert groups.value() == [] and form.validate() is not None


def test_the_instance_groups_table_is_one_row_tall_with_a_hint_until_groups_are_added(
    form: SpecForm,
) -> None:
    """Empty, the table is not a big blank box on the Compute tab: one row tall with a line
    saying what no group means; it grows with its rows (then scrolls)."""
    from trainer_gui.ui.form.instance_groups import MAX_ROWS_SHOWN, InstanceGroupsTable

    groups = form.editor("compute.instance_groups")
    assert isinstance(groups, InstanceGroupsTable)
    form.show()
    empty = groups.table.height()
    assert not groups.hint.isHidden() and "No instance groups" in groups.hint.text()

    groups.add_button.click()
    groups.add_button.click()

    assert groups.hint.isHidden()
    row = groups.table.verticalHeader().defaultSectionSize()
    assert groups.table.height() == empty + row
    for _ in range(MAX_ROWS_SHOWN + 2):
        groups.add_button.click()
    assert groups.table.height() == empty + (MAX_ROWS_SHOWN - 1) * row
    groups.set_value([])
    assert groups.table.height() == empty and not groups.hint.isHidden()
