"""PyTorch in a Python interpreter: is it there, and install the build that fits this machine.

Used by three callers: `make app-env` (`python -m trainer_gui.core.pyenv ensure-torch`), the
local-process backend's check before a run (`has_torch`), and the app's "Install PyTorch into
this interpreter" dialog (`install_torch`, off the GUI thread, with a cancel event).

Which build: PyPI's Linux wheels of torch carry CUDA (several GB); on a Linux machine without
an NVIDIA GPU that is waste, so there the CPU build comes from PyTorch's CPU index
(`CPU_INDEX`, ~1 GB installed). macOS and Windows wheels on PyPI have no CUDA, so PyPI's is right
there. When pip is configured with find-links that already hold the CPU wheel of `TORCH_VERSION`
for this interpreter (an offline machine, a wheelhouse), that file is asked for by its exact
version (`torch==X+cpu`) and no index beyond pip's own configuration is consulted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.errors import UserError
from trainer_gui.core.runners import proc

log = logging.getLogger(__name__)

#: The one pin of the PyTorch release this project installs and tests with (pyproject's test
#: extra names the same; tests/core/test_torch_probe.py checks they agree).
TORCH_VERSION = "2.13.0"
#: PyTorch's own index of CPU-only builds (the Linux choice where no NVIDIA GPU is found).
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: `auto`, `cpu` (force the CPU build) or `default` (PyPI's build, with CUDA on Linux).
BUILD_ENV = "TRAINER_GUI_TORCH_BUILD"
BUILDS = ("auto", "cpu", "default")
#: pip 24.1 and newer print "Progress <done> of <total>" lines with `--progress-bar raw`.
_RAW_PROGRESS_PIP = (24, 1)
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
#: SIGTERM-to-SIGKILL grace for a cancelled pip.
CANCEL_GRACE = 5.0

# -- is torch there --------------------------------------------------------------------------

#: Positive probes, remembered across processes in the data folder: a new job host would
#: otherwise import torch (3-7 s) before its first local-process job.
PROBES_FILE = "torch-probes.json"
_LOCATE = (
    "import importlib.util, json; s = importlib.util.find_spec('torch'); "
    "print(json.dumps(s.origin if s else None))"
)

_TORCH_FOUND: dict[tuple[str, tuple[int, ...]], bool] = {}  # (interpreter, stamp) -> True
_PROBING: dict[tuple[str, tuple[int, ...]], threading.Event] = {}  # probes under way
_PROBES_LOCK = threading.Lock()


def _stamp(path: str) -> tuple[int, ...] | None:
    """What changes when the file is replaced: inode, size, mtime (None: it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _probe_key(python: str) -> tuple[str, tuple[int, ...]] | None:
    # Not realpath: every venv's python links to the same base binary but sees other packages.
    path = os.path.abspath(python)
    cfg = Path(path).parent.parent / "pyvenv.cfg"
    interpreter = _stamp(path)
    if interpreter is None:
        return None
    venv = _stamp(str(cfg)) or ()
    return (path, interpreter + venv)


def _probes_path() -> Path:
    from trainer_gui.core.paths import data_home

    return data_home() / PROBES_FILE


def _read_probes() -> dict[str, Any]:
    try:
        data = json.loads(_probes_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remembered(key: tuple[str, tuple[int, ...]]) -> bool:
    """A probe of an earlier process said yes, and neither the interpreter nor torch's
    `__init__.py` changed since (pip rewrites it on every install, removes it on uninstall)."""
    entry = _read_probes().get(key[0])
    if not isinstance(entry, dict) or entry.get("interpreter") != list(key[1]):
        return False
    origin = entry.get("torch")
    stamp = _stamp(origin) if isinstance(origin, str) else None
    return stamp is not None and entry.get("torch_stamp") == list(stamp)


def _remember(python: str, key: tuple[str, tuple[int, ...]]) -> None:
    """Store a yes with where torch was found (a cheap look, no import); best effort: a data
    folder that cannot be written only costs the next process a probe."""
    try:
        done = subprocess.run(
            [python, "-c", _LOCATE], capture_output=True, text=True, timeout=60, check=False
        )
        origin = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return
    stamp = _stamp(origin) if isinstance(origin, str) else None
    if stamp is None:
        return
    path = _probes_path()
    data = _read_probes()
    data[key[0]] = {"interpreter": list(key[1]), "torch": origin, "torch_stamp": list(stamp)}
    try:
        write_atomic(path, json.dumps(data, indent=1))
    except OSError as exc:
        log.info("cannot remember the torch probe in %s: %s", path, exc)


def has_torch(python: str) -> bool:
    """Whether `python` can import torch.

    Only a yes is remembered, per interpreter (its file and pyvenv.cfg): in this process, and
    in the data folder with torch's location, so another process trusts it while that file is
    unchanged. Importing torch takes seconds, while a failed import is quick, and a "no" must
    not outlive the install that fixes it (pip changes neither the interpreter nor
    pyvenv.cfg). Concurrent calls for one interpreter share one probe (`probe_ahead`)."""
    key = _probe_key(python)
    if key is None:
        return False
    with _PROBES_LOCK:
        if _TORCH_FOUND.get(key):
            return True
        running = _PROBING.get(key)
        mine = running is None
        if running is None:
            running = _PROBING[key] = threading.Event()
    if mine:
        return _probe(python, key, running)
    running.wait()  # another thread probes this interpreter: its yes, else a try of our own
    with _PROBES_LOCK:
        if _TORCH_FOUND.get(key):
            return True
    return _probe(python, key, None)


def _probe(python: str, key: tuple[str, tuple[int, ...]], running: threading.Event | None) -> bool:
    found = False
    try:
        if _remembered(key):
            found = True
        else:
            try:
                probe = subprocess.run(
                    [python, "-c", "import torch"], capture_output=True, timeout=300, check=False
                )
            except (OSError, subprocess.SubprocessError):
                return False
            found = probe.returncode == 0
            if found:
                _remember(python, key)
        if found:
            with _PROBES_LOCK:
                _TORCH_FOUND[key] = True
        return found
    finally:
        if running is not None:
            with _PROBES_LOCK:
                _PROBING.pop(key, None)
            running.set()


def probe_ahead(python: str) -> None:
    """Start `has_torch(python)` on a thread of its own, so a check that comes later (a sweep's
    first trial) finds the answer, or joins the probe under way, instead of starting it."""
    key = _probe_key(python)
    if key is None:
        return
    with _PROBES_LOCK:
        if _TORCH_FOUND.get(key) or key in _PROBING:
            return
    threading.Thread(target=has_torch, args=(python,), name="torch-probe", daemon=True).start()


def forget_torch_probes() -> None:
    """Drop the remembered answers, here and in the data folder (an uninstall, or a test)."""
    with _PROBES_LOCK:
        _TORCH_FOUND.clear()
    with contextlib.suppress(OSError):
        _probes_path().unlink()


# -- which build -----------------------------------------------------------------------------


def nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU with a working driver (nvidia-smi lists one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and any(
        line.startswith("GPU ") for line in done.stdout.splitlines()
    )


@dataclass(frozen=True)
class Interpreter:
    """What the install needs to know of the target interpreter."""

    system: str  # platform.system(): Linux, Darwin, Windows
    tag: str  # cp311
    pip: tuple[int, ...] | None  # None: no pip module
    torch_dist: str | None  # the installed torch distribution's version, even if it is broken


_INFO_SCRIPT = """
import json, platform, sys
try:
    import pip
    pip_version = pip.__version__
except Exception:
    pip_version = None
try:
    from importlib.metadata import version
    torch_dist = version("torch")
except Exception:
    torch_dist = None
print(json.dumps({"system": platform.system(), "tag": "cp%d%d" % sys.version_info[:2],
                  "pip": pip_version, "torch_dist": torch_dist}))
"""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def inspect_interpreter(python: str) -> Interpreter:
    try:
        done = subprocess.run(
            [python, "-c", _INFO_SCRIPT], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"cannot start the Python interpreter {python}: {exc}") from exc
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip()[-500:]
        raise UserError(f"{python} does not run as a Python interpreter: {tail}") from None
    return Interpreter(
        system=str(info["system"]),
        tag=str(info["tag"]),
        pip=_version_tuple(info["pip"]) if info.get("pip") else None,
        torch_dist=info.get("torch_dist"),
    )


def pip_find_links(python: str) -> list[Path]:
    """The local folders pip (as `python` runs it) is configured to look in (`find-links`, from
    pip's config files or PIP_FIND_LINKS); URLs other than file: ones are left out."""
    try:
        done = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    folders: list[Path] = []
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip().rsplit(".", 1)[-1] != "find-links":
            continue
        for entry in value.strip().strip("'\"").split():
            if entry.startswith("file:"):
                entry = unquote(urlparse(entry).path)
            elif "://" in entry:
                continue
            if Path(entry).is_dir() and Path(entry) not in folders:
                folders.append(Path(entry))
    return folders


def local_cpu_wheel(folders: Sequence[Path], version: str, tag: str) -> Path | None:
    """A CPU wheel of torch `version` for interpreter `tag` in one of `folders`."""
    for folder in folders:
        for wheel in sorted(folder.glob(f"torch-{version}+cpu-{tag}-*.whl")):
            return wheel
    return None


@dataclass(frozen=True)
class TorchPlan:
    """The pip command that installs PyTorch into one interpreter, and why that build."""

    python: str
    command: list[str]
    build: str  # "cpu" or "default"
    why: str  # one sentence for the user


def plan_torch_install(
    python: str,
    build: str = "auto",
    version: str = TORCH_VERSION,
    gpu: bool | None = None,
) -> TorchPlan:
    """How to install torch `version` into `python` on this machine (nothing runs yet).

    `build`: `auto` takes `TRAINER_GUI_TORCH_BUILD` if set, else the CPU build on Linux without
    an NVIDIA GPU (`gpu`, when given, replaces the look for one) and PyPI's elsewhere."""
    if build == "auto":
        build = os.environ.get(BUILD_ENV, "").strip().lower() or "auto"
    if build not in BUILDS:
        raise UserError(f"unknown PyTorch build {build!r}; use one of {', '.join(BUILDS)}")
    info = inspect_interpreter(python)
    if info.pip is None:
        raise UserError(
            f"{python} has no pip, so nothing can be installed into it; "
            f"run `{python} -m ensurepip` first, or pick another interpreter"
        )
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    if info.pip >= _RAW_PROGRESS_PIP:
        command += ["--progress-bar", "raw"]
    if info.torch_dist is not None:
        # Installed but not importable (a cancelled or broken install): lay it down again.
        command.append("--force-reinstall")
    if build == "auto":
        if info.system != "Linux":
            build, why = "default", f"PyPI's build for {info.system} (no CUDA in it)"
        elif nvidia_gpu() if gpu is None else gpu:
            build, why = "default", "PyPI's build with CUDA (an NVIDIA GPU was found)"
        else:
            build, why = "cpu", "the CPU build (no NVIDIA GPU was found)"
    else:
        why = "the CPU build" if build == "cpu" else "PyPI's build"
    if build == "cpu" and info.system == "Linux":
        wheel = local_cpu_wheel(pip_find_links(python), version, info.tag)
        if wheel is not None:
            command.append(f"torch=={version}+cpu")
            why += f", from {wheel}"
        else:
            command += [f"torch=={version}", "--index-url", CPU_INDEX]
            why += f", from {CPU_INDEX}"
    else:
        command.append(f"torch=={version}")
    return TorchPlan(python, command, "cpu" if build == "cpu" else "default", why)


# -- install ---------------------------------------------------------------------------------


class InstallCancelled(UserError):
    """The user cancelled the install; pip was stopped."""


def parse_progress(line: str) -> float | None:
    """The fraction done of a "Progress <done> of <total>" line (pip's raw bar), else None."""
    match = _PROGRESS.match(line)
    if match is None:
        return None
    done, total = int(match.group(1)), int(match.group(2))
    return min(done / total, 1.0) if total > 0 else None


def _explain_failure(plan: TorchPlan, code: int, lines: list[str]) -> str:
    text = "\n".join(lines)
    tail = "\n".join(line for line in lines if line.strip())[-1500:].strip()
    if "externally-managed-environment" in text:
        reason = (
            f"{plan.python} is managed by the operating system and refuses pip installs; "
            "create a virtual environment (python3 -m venv) and pick its interpreter "
            "in the project settings"
        )
    elif "No matching distribution found" in text or "Could not find a version" in text:
        reason = (
            f"pip found no PyTorch {TORCH_VERSION} for {plan.python} ({plan.why}); "
            "check the network connection, or this Python's version is one PyTorch has no "
            "build for"
        )
    elif "No space left on device" in text:
        reason = "the disk is full; free some space (PyTorch needs 1-6 GB) and try again"
    else:
        reason = f"pip stopped with exit code {code}"
    return (
        f"installing PyTorch failed: {reason}\n\n{tail}"
        if tail
        else (f"installing PyTorch failed: {reason}")
    )


def install_torch(
    python: str,
    on_line: Callable[[str], None] | None = None,
    on_fraction: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    plan: TorchPlan | None = None,
) -> TorchPlan:
    """Run pip to install PyTorch into `python`; returns the plan it carried out.

    Every line pip prints goes to `on_line` (its raw progress lines to `on_fraction` instead,
    only when the percentage moves). Setting `cancel` stops pip and its children and raises
    `InstallCancelled`; a failed pip raises `UserError` with the reason and pip's last lines.
    Blocks: call it off the GUI thread."""
    cancel = cancel or threading.Event()
    if cancel.is_set():
        raise InstallCancelled("the PyTorch install was cancelled")
    plan = plan or plan_torch_install(python)
    emit = on_line or (lambda _line: None)
    emit(f"Installing PyTorch {TORCH_VERSION}: {plan.why}")
    emit("$ " + " ".join(plan.command))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    try:
        popen = subprocess.Popen(
            plan.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            start_new_session=os.name != "nt",
        )
    except OSError as exc:
        raise UserError(f"cannot start pip with {python}: {exc}") from exc
    with popen:
        code, kept = _follow(popen, emit, on_fraction, cancel)
    if code != 0:
        raise UserError(_explain_failure(plan, code, kept[-40:]))
    if not has_torch(python):
        raise UserError(
            f"pip reported success, but {python} still cannot import torch; "
            f"try `{python} -c 'import torch'` in a terminal to see why"
        )
    return plan


def _follow(
    popen: subprocess.Popen[str],
    emit: Callable[[str], None],
    on_fraction: Callable[[float], None] | None,
    cancel: threading.Event,
) -> tuple[int, list[str]]:
    """Pass pip's output on until it exits (its exit code and last lines), or stop it when
    `cancel` is set. A reader thread does the blocking reads, so cancel is seen within 0.1 s."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    reader = threading.Thread(target=read, name="pip-output", daemon=True)
    reader.start()
    kept: list[str] = []
    percent = -1
    while True:
        if cancel.is_set():
            proc.terminate_tree(popen.pid, CANCEL_GRACE, pgid=popen.pid if os.name != "nt" else 0)
            popen.wait()
            reader.join(timeout=5)
            raise InstallCancelled(
                "the PyTorch install was cancelled; a partly installed PyTorch is repaired "
                "by installing again"
            )
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        fraction = parse_progress(line)
        if fraction is not None:
            if on_fraction is not None and int(fraction * 100) != percent:
                percent = int(fraction * 100)
                on_fraction(fraction)
            continue
        kept = [*kept[-199:], line]
        emit(line)
    reader.join(timeout=5)
    return popen.wait(), kept


def ensure_torch(
    python: str,
    build: str = "auto",
    on_line: Callable[[str], None] | None = None,
) -> TorchPlan | None:
    """Install PyTorch into `python` unless it already imports; the plan carried out, or None."""
    if has_torch(python):
        return None
    return install_torch(python, on_line=on_line, plan=plan_torch_install(python, build))


# -- make app-env ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m trainer_gui.core.pyenv ensure-torch [--python P] [--build auto|cpu|default]`."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer_gui.core.pyenv",
        description="Install the PyTorch build that fits this machine, unless it is there.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure-torch", help="install PyTorch unless it imports")
    ensure.add_argument("--python", default=sys.executable, help="the interpreter to install into")
    ensure.add_argument("--build", choices=BUILDS, default="auto")
    plan_cmd = sub.add_parser("plan", help="print the pip command ensure-torch would run")
    plan_cmd.add_argument("--python", default=sys.executable)
    plan_cmd.add_argument("--build", choices=BUILDS, default="auto")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "plan":
            plan = plan_torch_install(args.python, args.build)
            print(f"{plan.why}\n{' '.join(plan.command)}")
            return 0
        done = ensure_torch(args.python, args.build, on_line=lambda line: print(line, flush=True))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if done is None:
        print(f"PyTorch already imports in {args.python}; nothing to install")
    else:
        print(f"PyTorch {TORCH_VERSION} installed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
