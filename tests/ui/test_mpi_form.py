"""The job form offers MPI (issue 17): the distribution kind list has `mpi`, the extra mpirun
options are a field of their own, and options without MPI are refused next to the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from trainer_gui.ui.form.spec_form import SpecForm


@pytest.fixture
def form(qtbot: Any, tmp_path: Path) -> SpecForm:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('loss=0.5')\n")
    widget = SpecForm(tmp_path)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    widget.editor("name").set_value("mpi-job")
    widget.editor("source.source_dir").set_value("code")
    widget.editor("source.entry_point").set_value("train.py")
    return widget


def _type(qtbot: Any, form: SpecForm, path: str, text: str) -> None:
    edit = form.editor(path).edit
    edit.setFocus()
    edit.clear()
    qtbot.keyClicks(edit, text)


def test_mpi_with_processes_and_options_makes_the_spec(qtbot: Any, form: SpecForm) -> None:
    combo = form.editor("distribution.kind").combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert "mpi" in items
    combo.setCurrentIndex(items.index("mpi"))
    form.editor("compute.backend").set_value("docker")
    form.editor("compute.instance_count").set_value(2)
    form.editor("distribution.processes_per_host").set_value(2)
    _type(qtbot, form, "distribution.mpi_options", "--NCCL_DEBUG WARN -x A=1")
    qtbot.keyClick(form.editor("distribution.mpi_options").edit, Qt.Key.Key_Tab)

    spec = form.validate()

    assert spec is not None, form.problem_text("distribution.mpi_options")
    assert spec.distribution.kind == "mpi"
    assert spec.distribution.processes_per_host == 2
    assert spec.distribution.mpi_options == "--NCCL_DEBUG WARN -x A=1"


def test_mpi_options_without_mpi_are_refused_at_their_field(qtbot: Any, form: SpecForm) -> None:
    _type(qtbot, form, "distribution.mpi_options", "-x A=1")

    assert form.validate() is None

    shown = form.problem_text("distribution.mpi_options")
    assert "mpi_options only apply to kind: mpi" in shown
