"""The README's first command ends in a runnable example (issue 12, item 1).

`make app` is `make app-env` (a venv with the package and a PyTorch that fits the machine,
made once) followed by opening the window. Here, in a copy of the checkout and a venv of its
own (never the project's .venv):

- the first `make app-env` makes the venv and installs the CPU build of PyTorch from the local
  wheel pip's find-links hold (`TORCH_BUILD=cpu`, so a GPU runner takes the same file; no
  download of torch: the test is skipped where no such file lies on disk);
- a second `make app-env` runs no pip at all (make has nothing to do), and `make app` then
  only opens the window; a changed pyproject.toml makes it install again;
- the example the window opens (`example_workspace`) runs to Completed from the CLI with the
  venv's own interpreter, which is what Run in the window does on local-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer_gui.core import pyenv

ROOT = Path(__file__).resolve().parents[2]


def copy_checkout(target: Path) -> Path:
    """The files a commit of this tree would hold (tracked and new, minus ignored ones)."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.skip(f"not a git checkout ({done.stderr.strip()})")
    for name in filter(None, done.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def base_python() -> str:
    """The interpreter this test's venv was made from (what `PYTHON=` names for make)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def clean_env(home: Path) -> dict[str, str]:
    """This environment minus anything that points into the checkout or its venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", pyenv.BUILD_ENV)
        and not k.startswith("PYTEST_")
        and not k.startswith("MAKE")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(ROOT))
    )
    env.update(TRAINER_GUI_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return env


def make(
    target: str, source: Path, venv: Path, env: dict[str, str], *flags: str, timeout: float = 1200
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        ["make", *flags, target, f"VENV={venv}", f"PYTHON={base_python()}", "TORCH_BUILD=cpu"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )  # fmt: skip
    return done, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_app_env_then_the_example_runs_to_completed(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    wheel = pyenv.local_cpu_wheel(
        pyenv.pip_find_links(sys.executable),
        pyenv.TORCH_VERSION,
        f"cp{sys.version_info.major}{sys.version_info.minor}",
    )
    if wheel is None:
        pytest.skip(f"no local CPU wheel of torch {pyenv.TORCH_VERSION} in pip's find-links")
    source = copy_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    env = clean_env(tmp_path / "home")

    first, first_s = make("app-env", source, venv, env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert f"the CPU build, from {wheel}" in first.stdout
    python = venv / "bin" / "python"
    version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert version.stdout.strip() == f"{pyenv.TORCH_VERSION}+cpu", version.stderr

    second, second_s = make("app-env", source, venv, env)
    assert second.returncode == 0, second.stderr
    assert "pip" not in second.stdout + second.stderr, second.stdout
    assert "Nothing to be done" in second.stdout
    # `make app` from here only opens the window (a dry run lists what it would run).
    app, _ = make("app", source, venv, env, "-n")
    assert app.stdout.strip().splitlines() == [f"{venv}/bin/trainer-gui gui --example"]
    print(f"make app-env: first {first_s:.1f}s, second {second_s:.2f}s")

    # A changed pyproject.toml (new dependencies) installs again.
    later = time.time() + 5
    os.utime(source / "pyproject.toml", (later, later))
    again, _ = make("app-env", source, venv, env, "-n")
    assert "pip install" in again.stdout and "ensure-torch" in again.stdout

    # The example the window opens, run as Run runs it: local-process, the venv's interpreter.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c",
         "from trainer_gui.core.paths import example_workspace; print(example_workspace())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    workspace = Path(where.stdout.strip())
    assert workspace.is_relative_to(tmp_path / "home")
    run = subprocess.run(
        [str(venv / "bin" / "trainer-gui"), "run", str(workspace / "job.yaml")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "==> Completed" in run.stdout
    assert "Completed in" in run.stdout
