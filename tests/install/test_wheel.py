"""The app people `pip install` is the app we test (defect 2 of issue 11).

Until issue 11 the resources (price table, Dockerfiles, icons, the example) lay at the repository's
root, outside the package: only editable installs and PyInstaller builds had them, and a built
wheel failed at `gui --example`, `images build` and `sagemaker cost`. Here a wheel is built the way
a release builds it (`python -m build`: an sdist, then the wheel from that sdist), from a copy of
the checkout, and

- its `trainer_gui/resources/` must be exactly the git-tracked resource files (dotfiles too), with
  no caches or stray wheels a developer left in the tree;
- installed into a clean venv outside the tree (its dependencies from the package index, cached by
  pip after the first run; no torch), with the working folder elsewhere and a fresh data folder,
  `trainer-gui sagemaker cost` reads the price table, `trainer-gui images build` sends the
  installed Dockerfile's folder to Docker, and `trainer-gui gui --example` opens the window on the
  example and runs it to Completed (packaging/gui_smoke.py drives the window under Qt's offscreen
  platform; the job runs with this test's Python, which has torch) in a job-host child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = "src/trainer_gui/resources"
WHEELHOUSE = ROOT / ".build" / "wheelhouse"
BASE_IMAGE = "trainer-gui/base:bookworm"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        pytest.skip(f"not a git checkout ({done.stderr.strip()})")
    return done.stdout


def tracked_resources() -> list[str]:
    """trainer_gui/resources/... for every git-tracked resource file."""
    names = [n for n in _git("ls-files", "-z", "--", RESOURCES).split("\0") if n]
    assert names, f"git tracks nothing under {RESOURCES}"
    return sorted(n.removeprefix("src/") for n in names)


def copy_checkout(target: Path) -> Path:
    """The files a commit of this tree would hold (tracked and new, minus ignored ones), so the
    build neither sees a developer's build/ leftovers nor writes into the shared tree."""
    names = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def build_dists(source: Path, out: Path) -> Path:
    """`python -m build` (sdist, then the wheel from the unpacked sdist); returns the wheel.
    `--no-isolation` uses this environment's setuptools, so no download is needed."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list(out.glob("trainer_gui-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def wheel_resources(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if n.startswith("trainer_gui/resources/"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = copy_checkout(tmp_path_factory.mktemp("checkout"))
    return build_dists(source, tmp_path_factory.mktemp("dist"))


def test_the_wheel_holds_exactly_the_tracked_resources(wheel: Path) -> None:
    assert wheel_resources(wheel) == tracked_resources()


def test_caches_and_stray_wheels_in_the_tree_stay_out_of_the_wheel(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "checkout")
    res = source / RESOURCES
    junk = [
        res / "examples" / "quickstart" / "code" / "__pycache__" / "train.cpython-311.pyc",
        res / "images" / "train-cpu" / "wheels" / "torch-0-py3-none-any.whl",
    ]
    for path in junk:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
    assert wheel_resources(build_dists(source, tmp_path / "dist")) == tracked_resources()


# -- the installed wheel, used from outside the tree ---------------------------------------------


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean venv (no system site-packages) with the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield venv


def _env(home: Path) -> dict[str, str]:
    """This environment minus anything that points into the checkout or its venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(ROOT))
    )
    env.update(TRAINER_GUI_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return env


def _run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def _docker_ready() -> str | None:
    """Why an images build cannot be tried here, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    if not (WHEELHOUSE.is_dir() and any(WHEELHOUSE.glob("torch-*.whl"))):
        return f"no wheelhouse at {WHEELHOUSE} (scripts/ci/make-wheelhouse.sh)"
    done = subprocess.run(
        ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        return f"no {BASE_IMAGE} image (scripts/ci/make-base-image.sh)"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_installed_wheel_works_from_outside_the_tree(installed: Path, tmp_path: Path) -> None:
    bin_dir = installed / "bin"
    app = str(bin_dir / "trainer-gui")
    env = _env(tmp_path / "home")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    # The package and its resources come from the venv, not from the checkout.
    probe = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import trainer_gui; from trainer_gui.core.paths import resources_root; "
            "print(trainer_gui.__file__); print(resources_root())",
        ],
        cwd,
        env,
    )
    assert probe.returncode == 0, probe.stderr
    package_file, resources = probe.stdout.split()
    assert package_file.startswith(str(installed)), package_file
    assert resources.startswith(str(installed)) and Path(resources, "aws", "prices.json").is_file()

    # (a) the price table
    example = Path(resources, "examples", "quickstart", "job.yaml")
    cost = _run([app, "sagemaker", "cost", str(example), "--region", "us-east-1"], cwd, env)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    assert "ml.m5.large in us-east-1: about $" in cost.stdout

    # (b) an image from the installed Dockerfile: offline from the CI wheelhouse, so on a
    # machine that built the test images every layer comes from Docker's cache.
    why_not = _docker_ready()
    if why_not is None:
        tag = f"trainer-gui/wheel-check:{uuid.uuid4().hex[:8]}"
        try:
            build = _run(
                [app, "images", "build", "train-cpu", "--base-image", BASE_IMAGE,
                 "--wheelhouse", str(WHEELHOUSE), "--tag", tag],
                cwd,
                env,
                timeout=900,
            )  # fmt: skip
        finally:
            subprocess.run(["docker", "rmi", tag], capture_output=True, check=False, timeout=120)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        assert f"Building {tag} from {Path(resources, 'images', 'train-cpu')}" in build.stdout
        assert f"Built {tag}" in build.stdout
    elif os.environ.get("TRAINER_REQUIRE_DOCKER", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"images build not tried: {why_not}")

    # (c) the window on the example, run from the sidebar to Completed
    report = tmp_path / "gui-smoke.json"
    env.update(
        TRAINER_GUI_SMOKE_REPORT=str(report),
        TRAINER_GUI_SMOKE_PYTHON=sys.executable,  # has torch; the venv has not
        TRAINER_GUI_SMOKE_TIMEOUT="240",
    )
    smoke = _run(
        [str(bin_dir / "python"), str(ROOT / "packaging" / "gui_smoke.py"), "gui", "--example"],
        cwd,
        env,
        timeout=300,
    )
    assert report.is_file(), smoke.stdout + smoke.stderr
    result = json.loads(report.read_text())
    assert smoke.returncode == 0, json.dumps(result, indent=1) + smoke.stderr[-3000:]
    assert result["trainer_gui"].startswith(str(installed))
    assert result["project"].startswith(str(tmp_path / "home"))  # a copy, never the install
    assert result["status"] == "Completed"
    assert result["followed_in_job_host"] is True
    assert result["job_host_pid"] != result["window_pid"]
