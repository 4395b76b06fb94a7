"""`trainer-gui new`: list the templates, make a project from one, refuse bad input in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_gui.cli.main import main
from trainer_gui.core.spec import load_spec


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer_gui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


def test_new_list_shows_every_template_with_its_backend() -> None:
    done = cli("new", "--list")
    assert done.returncode == 0, done.stderr
    for name, backend in (
        ("image-classification", "local-process"),
        ("tabular-classification", "local-process"),
        ("ddp-torchrun", "docker"),
        ("custom-driver", "local-process"),
        ("bring-your-script", "local-process"),
    ):
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith(name + " "))
        assert f"[{backend}]" in line
    assert "trainer-gui new --template NAME FOLDER" in done.stdout


def test_new_template_creates_a_valid_project_and_says_how_to_run_it(tmp_path: Path) -> None:
    dest = tmp_path / "my-fruit"
    done = cli("new", "--template", "tabular-classification", str(dest))
    assert done.returncode == 0, done.stderr
    assert f"Created {dest} from the tabular-classification template." in done.stdout
    assert f"trainer-gui run {dest / 'job.yaml'}" in done.stdout
    spec = load_spec(dest / "job.yaml")
    assert spec.name == "my-fruit"
    assert (dest / "data" / "train" / "fruit.csv").is_file()


def test_bad_input_is_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    cases = [
        (["new", "--template", "mnist", str(tmp_path / "a")], "no template named 'mnist'"),
        (["new", "-t", "image-classification", str(taken)], "is not empty"),
        (["new", str(tmp_path / "b")], "name a template"),
        (["new", "-t", "image-classification"], "name the folder for the new project"),
        (["new", "-t", "bring-your-script", str(tmp_path / "c")], "--source FOLDER"),
        (
            [
                "new",
                "-t",
                "bring-your-script",
                str(tmp_path / "d"),
                "--source",
                str(tmp_path),
                "--channel",
                "train",
            ],
            "--channel 'train': write NAME=PATH",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("trainer-gui: ") and message in err, (argv, err)
        assert "Traceback" not in err and err.count("\n") == 1, err
    assert (taken / "keep.txt").read_text() == "mine" and sorted(os.listdir(taken)) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_new_bring_your_script_points_at_the_folder(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text("import os\nprint(os.environ['SM_CHANNEL_TRAINING'])\n")
    data = tmp_path / "data"
    data.mkdir()
    dest = tmp_path / "wrapped"
    argv = ["new", "-t", "bring-your-script", str(dest), "--source", str(code)]
    assert main([*argv, "--channel", f"training={data}"]) == 0
    spec = load_spec(dest / "job.yaml")
    assert spec.source.source_dir == str(code) and spec.source.entry_point == "main.py"
    assert [(c.name, c.source) for c in spec.channels] == [("training", str(data))]
