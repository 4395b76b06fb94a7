"""Saving a spec file from the form keeps what the person wrote in it: comments, key order and
the spelling of every value that did not change. Only the changed values are rewritten."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from trainer_gui.core.spec import apply_overrides, load_spec
from trainer_gui.core.spec.io import read_spec_data, save_spec
from trainer_gui.ui.form.spec_form import SpecEditorDialog

COMMENTED = """\
# Baseline for the paper: do not change the seed.
name: baseline   # shown in the runs table
source:
  source_dir: code
  entry_point: train.py
hyperparameters:
  seed: 7          # fixed
  lr: '0.01'
compute:
  backend: local-process
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('epoch=1 loss=0.5')\\n")
    (tmp_path / "baseline.yaml").write_text(COMMENTED)
    return tmp_path


def test_save_in_the_form_keeps_the_files_comments_and_writes_the_change(
    qtbot: Any, project: Path
) -> None:
    path = project / "baseline.yaml"
    dialog = SpecEditorDialog(project, path=path, data=read_spec_data(path))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    edit = dialog.form.editor("name").edit
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, "baseline-2")

    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    text = path.read_text()
    assert "# Baseline for the paper: do not change the seed." in text
    assert re.search(r"^name: baseline-2 +# shown in the runs table$", text, re.M)
    assert "seed: 7          # fixed" in text
    assert "lr: '0.01'" in text  # the quotes the person wrote
    assert load_spec(path).name == "baseline-2"


def test_a_value_set_back_to_its_default_is_written_where_the_file_named_it(
    project: Path,
) -> None:
    path = project / "baseline.yaml"
    path.write_text(
        COMMENTED.replace("local-process", "docker") + "  instance_count: 2   # two hosts\n"
    )
    spec = apply_overrides(load_spec(path), ["compute.instance_count=1"])

    save_spec(spec, path)

    assert "instance_count: 1   # two hosts" in path.read_text()
    assert load_spec(path) == spec


def test_a_removed_hyperparameter_goes_and_an_added_one_is_written(project: Path) -> None:
    path = project / "baseline.yaml"
    spec = load_spec(path)
    changed = spec.model_copy(update={"hyperparameters": {"seed": 7, "epochs": 3}})

    save_spec(changed, path)

    text = path.read_text()
    assert "lr:" not in text
    assert "seed: 7          # fixed" in text
    assert load_spec(path).hyperparameters == {"seed": 7, "epochs": 3}


def test_a_file_that_is_no_valid_spec_is_written_afresh(project: Path) -> None:
    path = project / "baseline.yaml"
    spec = load_spec(path)
    path.write_text("name: [unclosed\n")

    save_spec(spec, path)

    assert load_spec(path) == spec
