"""Is torch there, and installing it (core/pyenv.py), against a fake interpreter.

The fake is a small script run by this test's Python: `-c "import torch"` succeeds once its
"site-packages" holds a torch marker, its pip answers `config list` and `install` as told by a
JSON file beside it (progress lines, success, a failure, or a hang to cancel), and every call is
logged, so the tests see what was asked of the interpreter and how often.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from trainer_gui.core import pyenv
from trainer_gui.core.errors import BackendUnavailable, TorchMissing, UserError
from trainer_gui.core.paths import data_home
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec

ROOT = Path(__file__).resolve().parents[2]
SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)

FAKE = """\
#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
conf = json.load(open(os.path.join(here, "fake.json")))
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
marker = os.path.join(here, "site-packages", "torch")
args = sys.argv[1:]
if args[:1] == ["-c"]:
    if args[1] == "import torch":
        time.sleep(conf.get("probe_seconds", 0))
        sys.exit(0 if os.path.exists(marker) else 1)
    if "find_spec('torch')" in args[1]:
        print(json.dumps(marker if os.path.exists(marker) else None))
        sys.exit(0)
    print(json.dumps({{"system": conf["system"], "tag": "cp311", "pip": conf["pip"],
                       "torch_dist": conf.get("torch_dist")}}))
    sys.exit(0)
if args[:2] == ["-m", "pip"] and conf["pip"] is None:
    print("No module named pip", file=sys.stderr)
    sys.exit(1)
if args[:4] == ["-m", "pip", "config", "list"]:
    for folder in conf.get("find_links", []):
        print(":env:.find-links='" + folder + "'")
    sys.exit(0)
if args[:3] == ["-m", "pip", "install"]:
    with open(os.path.join(here, "pip.pid"), "w") as f:
        f.write(str(os.getpid()))
    print("Collecting torch")
    for step in range(0, 101, 25):
        print(f"Progress {{step}} of 100")
    if conf["mode"] == "hang":
        print("Installing collected packages: torch", flush=True)
        time.sleep(120)
    if conf["mode"] == "fail":
        print("ERROR: No matching distribution found for torch==2.13.0")
        sys.exit(1)
    os.makedirs(marker, exist_ok=True)
    print("Successfully installed torch-2.13.0")
    sys.exit(0)
print("fake python: unexpected", args, file=sys.stderr)
sys.exit(3)
"""


@dataclass
class Fake:
    python: str
    folder: Path

    def configure(self, **conf: object) -> None:
        path = self.folder / "fake.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**current, **conf}))

    def install_torch(self) -> None:
        (self.folder / "site-packages" / "torch").mkdir(parents=True, exist_ok=True)

    def remove_torch(self) -> None:
        (self.folder / "site-packages" / "torch").rmdir()

    def calls(self) -> list[list[str]]:
        log = self.folder / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def torch_probes(self) -> int:
        return sum(1 for call in self.calls() if call == ["-c", "import torch"])

    def pip_installs(self) -> list[list[str]]:
        return [call for call in self.calls() if call[:3] == ["-m", "pip", "install"]]


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    pyenv.forget_torch_probes()
    yield
    pyenv.forget_torch_probes()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    if os.name == "nt" or " " in sys.executable:
        pytest.skip("the fake interpreter is a script with a #! line")
    monkeypatch.delenv(pyenv.BUILD_ENV, raising=False)
    folder = tmp_path / "fakeenv" / "bin"
    folder.mkdir(parents=True)
    python = folder / "python"
    python.write_text(FAKE.format(python=sys.executable))
    python.chmod(0o755)
    made = Fake(str(python), folder)
    made.configure(system="Linux", pip="26.3", mode="ok", find_links=[])
    return made


# -- the probe ---------------------------------------------------------------------------------


def test_a_missing_torch_is_probed_again_so_an_install_is_seen_without_a_restart(
    fake: Fake,
) -> None:
    assert pyenv.has_torch(fake.python) is False
    fake.install_torch()  # as pip would: neither the interpreter nor pyvenv.cfg changes
    assert pyenv.has_torch(fake.python) is True
    assert fake.torch_probes() == 2


def test_a_found_torch_is_remembered_and_not_imported_again(fake: Fake) -> None:
    fake.install_torch()
    assert pyenv.has_torch(fake.python) is True
    assert pyenv.has_torch(fake.python) is True
    assert fake.torch_probes() == 1
    fake.remove_torch()
    pyenv.forget_torch_probes()
    assert pyenv.has_torch(fake.python) is False


def in_a_new_process(python: str) -> bool:
    """`has_torch` as another process (a new job host) answers it, in the same data folder."""
    code = f"from trainer_gui.core import pyenv; print(pyenv.has_torch({python!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip() == "True"


def test_a_found_torch_is_remembered_in_the_data_folder_for_the_next_process(
    fake: Fake,
) -> None:
    fake.install_torch()
    assert pyenv.has_torch(fake.python) is True
    assert (data_home() / pyenv.PROBES_FILE).is_file()
    assert in_a_new_process(fake.python) is True
    assert in_a_new_process(fake.python) is True
    assert fake.torch_probes() == 1


def test_a_remembered_torch_that_was_uninstalled_or_reinstalled_is_probed_again(
    fake: Fake,
) -> None:
    fake.install_torch()
    assert pyenv.has_torch(fake.python) is True
    fake.remove_torch()
    assert in_a_new_process(fake.python) is False  # its location is gone: probed, not trusted
    assert fake.torch_probes() == 2
    fake.install_torch()  # a new install: a new file where the old one was
    assert in_a_new_process(fake.python) is True
    assert fake.torch_probes() == 3
    assert in_a_new_process(fake.python) is True
    assert fake.torch_probes() == 3


def test_a_changed_interpreter_is_probed_again(fake: Fake) -> None:
    fake.install_torch()
    assert pyenv.has_torch(fake.python) is True
    python = Path(fake.python)
    python.write_text(python.read_text() + "\n# upgraded\n")
    assert in_a_new_process(fake.python) is True
    assert fake.torch_probes() == 2


def test_a_probe_that_cannot_be_stored_costs_only_a_probe(fake: Fake) -> None:
    blocked = data_home() / pyenv.PROBES_FILE
    blocked.mkdir()  # the file cannot be written (a read-only data folder fails alike)
    fake.install_torch()
    assert pyenv.has_torch(fake.python) is True
    assert in_a_new_process(fake.python) is True
    assert fake.torch_probes() == 2
    assert blocked.is_dir()
    assert [p.name for p in blocked.parent.iterdir() if pyenv.PROBES_FILE in p.name] == [
        pyenv.PROBES_FILE
    ]  # no temporary file left behind


def test_a_probe_ahead_is_joined_by_the_check_that_follows_instead_of_run_twice(
    fake: Fake,
) -> None:
    fake.install_torch()
    fake.configure(probe_seconds=1.0)
    pyenv.probe_ahead(fake.python)
    pyenv.probe_ahead(fake.python)  # one under way already: nothing more
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda: answers.append(pyenv.has_torch(fake.python)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [True, True, True]
    assert fake.torch_probes() == 1


def test_a_missing_interpreter_has_no_torch(tmp_path: Path) -> None:
    assert pyenv.has_torch(str(tmp_path / "no" / "python")) is False


def test_the_runner_refuses_with_torch_missing_naming_the_interpreter(
    fake: Fake, job_spec: SpecFactory
) -> None:
    spec = job_spec("print('loss=1')\n")
    with pytest.raises(TorchMissing) as caught:
        LocalProcessRunner().check(spec, fake.python)
    assert caught.value.python == fake.python
    assert isinstance(caught.value, BackendUnavailable)
    assert "PyTorch is not installed" in str(caught.value)
    fake.install_torch()
    LocalProcessRunner().check(spec, fake.python)  # the next Run goes through


def test_torch_missing_crosses_a_process_boundary_intact() -> None:
    sent = TorchMissing("/envs/a/bin/python", "PyTorch is not installed for /envs/a/bin/python")
    back = pickle.loads(pickle.dumps(sent))
    assert type(back) is TorchMissing
    assert back.python == "/envs/a/bin/python"
    assert str(back) == str(sent)


def test_the_pinned_version_is_the_one_the_tests_install() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.findall(r'"(torch *[=<>~!][^"]*)"', text) == [f"torch=={pyenv.TORCH_VERSION}"]


# -- the plan ----------------------------------------------------------------------------------


def test_linux_without_a_gpu_gets_the_cpu_build_from_pytorchs_index(fake: Fake) -> None:
    plan = pyenv.plan_torch_install(fake.python, gpu=False)
    assert plan.build == "cpu"
    assert plan.command[:4] == [fake.python, "-m", "pip", "install"]
    assert plan.command[-3:] == [
        f"torch=={pyenv.TORCH_VERSION}",
        "--index-url",
        pyenv.CPU_INDEX,
    ]
    assert "no NVIDIA GPU" in plan.why


def test_a_cpu_wheel_in_pips_find_links_is_taken_without_another_index(
    fake: Fake, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / f"torch-{pyenv.TORCH_VERSION}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"")
    (wheels / f"torch-{pyenv.TORCH_VERSION}+cpu-cp312-cp312-manylinux_2_28_x86_64.whl").touch()
    fake.configure(find_links=[str(tmp_path / "elsewhere"), f"file://{wheels}"])
    plan = pyenv.plan_torch_install(fake.python, gpu=False)
    assert plan.command[-1] == f"torch=={pyenv.TORCH_VERSION}+cpu"
    assert "--index-url" not in plan.command
    assert str(wheel) in plan.why


def test_a_wheel_for_another_python_is_not_taken(fake: Fake, tmp_path: Path) -> None:
    (tmp_path / f"torch-{pyenv.TORCH_VERSION}+cpu-cp312-cp312-linux_x86_64.whl").touch()
    fake.configure(find_links=[str(tmp_path)])
    plan = pyenv.plan_torch_install(fake.python, gpu=False)
    assert pyenv.CPU_INDEX in plan.command


def test_a_gpu_machine_gets_pypis_build(fake: Fake) -> None:
    plan = pyenv.plan_torch_install(fake.python, gpu=True)
    assert plan.build == "default"
    assert plan.command[-1] == f"torch=={pyenv.TORCH_VERSION}"
    assert "--index-url" not in plan.command


def test_macos_gets_pypis_build_which_has_no_cuda(fake: Fake) -> None:
    fake.configure(system="Darwin")
    plan = pyenv.plan_torch_install(fake.python, gpu=False)
    assert plan.build == "default"
    assert "--index-url" not in plan.command


def test_the_build_can_be_forced_by_argument_or_environment(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pyenv.plan_torch_install(fake.python, build="cpu", gpu=True).build == "cpu"
    monkeypatch.setenv(pyenv.BUILD_ENV, "default")
    assert pyenv.plan_torch_install(fake.python, gpu=False).build == "default"
    monkeypatch.setenv(pyenv.BUILD_ENV, "rocm")
    with pytest.raises(UserError, match="unknown PyTorch build 'rocm'"):
        pyenv.plan_torch_install(fake.python)


def test_old_pip_gets_no_raw_progress_flag_and_a_broken_torch_is_reinstalled(fake: Fake) -> None:
    assert "raw" in pyenv.plan_torch_install(fake.python, gpu=False).command
    fake.configure(pip="23.2.1", torch_dist="2.12.0")
    command = pyenv.plan_torch_install(fake.python, gpu=False).command
    assert "--progress-bar" not in command
    assert "--force-reinstall" in command


def test_an_interpreter_without_pip_is_refused_with_the_fix(fake: Fake) -> None:
    fake.configure(pip=None)
    with pytest.raises(UserError, match=r"has no pip.*ensurepip"):
        pyenv.plan_torch_install(fake.python, gpu=False)


# -- the install -------------------------------------------------------------------------------


def test_install_reports_pips_lines_and_progress_then_torch_imports(fake: Fake) -> None:
    lines: list[str] = []
    fractions: list[float] = []
    assert pyenv.has_torch(fake.python) is False
    plan = pyenv.install_torch(
        fake.python,
        on_line=lines.append,
        on_fraction=fractions.append,
        plan=pyenv.plan_torch_install(fake.python, gpu=False),
    )
    assert fake.pip_installs() == [plan.command[1:]]
    assert "Collecting torch" in lines
    assert "Successfully installed torch-2.13.0" in lines
    assert not any(line.startswith("Progress ") for line in lines)
    assert fractions == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pyenv.has_torch(fake.python) is True


def test_a_failed_install_says_why_with_pips_last_lines(fake: Fake) -> None:
    fake.configure(mode="fail")
    with pytest.raises(UserError) as caught:
        pyenv.install_torch(fake.python, plan=pyenv.plan_torch_install(fake.python, gpu=False))
    message = str(caught.value)
    assert message.startswith("installing PyTorch failed: pip found no PyTorch")
    assert "ERROR: No matching distribution found for torch==2.13.0" in message
    assert not isinstance(caught.value, pyenv.InstallCancelled)


def test_cancel_stops_pip_at_once(fake: Fake) -> None:
    fake.configure(mode="hang")
    cancel = threading.Event()

    def on_line(line: str) -> None:
        if line.startswith("Installing collected packages"):
            cancel.set()

    started = time.monotonic()
    with pytest.raises(pyenv.InstallCancelled, match="cancelled"):
        pyenv.install_torch(
            fake.python,
            on_line=on_line,
            cancel=cancel,
            plan=pyenv.plan_torch_install(fake.python, gpu=False),
        )
    assert time.monotonic() - started < 30
    pid = int((fake.folder / "pip.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert pyenv.has_torch(fake.python) is False


def test_ensure_torch_installs_nothing_when_torch_imports(fake: Fake) -> None:
    fake.install_torch()
    assert pyenv.ensure_torch(fake.python) is None
    assert fake.pip_installs() == []


def test_the_make_entry_point_installs_once_then_says_nothing_to_do(
    fake: Fake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pyenv.BUILD_ENV, "cpu")
    assert pyenv.main(["ensure-torch", "--python", fake.python]) == 0
    assert f"PyTorch {pyenv.TORCH_VERSION} installed" in capsys.readouterr().out
    assert pyenv.main(["ensure-torch", "--python", fake.python]) == 0
    assert "nothing to install" in capsys.readouterr().out
    assert len(fake.pip_installs()) == 1
    fake.configure(pip=None)
    fake.remove_torch()
    pyenv.forget_torch_probes()
    assert pyenv.main(["ensure-torch", "--python", fake.python]) == 2
    assert "error: " in capsys.readouterr().err
