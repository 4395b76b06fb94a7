"""Start time to the main window: the PyInstaller bundle against `python -m trainer_gui`.

    python packaging/measure_startup.py [--runs 7] [--bundle dist/pyinstaller/trainer-gui]

Method (external; the app has no "quit when shown" hook): each run starts the app with a fresh
empty data folder on a private Xvfb display, and polls `xdotool search --onlyvisible --name
"Trainer GUI"` every 20 ms from just before the process is started until the main window is
mapped and visible; the time is that moment (resolution ~25 ms: the poll interval plus one
xdotool call). The app is then stopped with SIGTERM. Runs alternate between the two variants.
"Cold" is the first run of each variant after `echo 3 > /proc/sys/vm/drop_caches` where that is
allowed (root outside a container), else only the first run (files likely still cached from the
build). Also times `--version` (interpreter/bootloader start without Qt). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _display_taken(number: int) -> bool:
    """A lock file, a socket file, or an abstract socket (visible across mount namespaces, e.g.
    another container's X server on this network namespace, which clients would reach first)."""
    if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
        return True
    try:
        return f"@/tmp/.X11-unix/X{number}\n" in Path("/proc/net/unix").read_text()
    except OSError:
        return False


def start_xvfb() -> subprocess.Popen[bytes]:
    """-noreset: the polling xdotool clients come and go, and a server that resets each time its
    last client leaves refuses the app's connection if it lands in a reset."""
    for number in random.sample(range(200, 400), 40):
        if _display_taken(number):
            continue
        proc = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1366x768x24", "-nolisten", "tcp", "-noreset"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.environ["DISPLAY"] = f":{number}"
        for _ in range(100):  # wait until the server answers, not only until its socket exists
            if proc.poll() is not None:
                break
            ready = subprocess.run(
                ["xdotool", "getdisplaygeometry"], capture_output=True, check=False
            )
            if ready.returncode == 0:
                return proc
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise SystemExit("could not start Xvfb")


def window_visible() -> bool:
    done = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "Trainer GUI"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0 and bool(done.stdout.strip())


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def time_to_window(command: list[str], timeout: float = 60.0) -> float:
    home = tempfile.mkdtemp(prefix="trainer-start-")
    env = dict(os.environ, TRAINER_GUI_HOME=home)
    env.pop("QT_QPA_PLATFORM", None)
    start = time.perf_counter()
    log = Path(home) / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        while not window_visible():
            if proc.poll() is not None:
                raise SystemExit(
                    f"{command[0]} exited with {proc.returncode} before a window:\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"no window from {command} in {timeout:.0f} s")
            time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def time_version(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, "--version"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--bundle", type=Path, default=ROOT / "dist" / "pyinstaller" / "trainer-gui"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the source run")
    args = parser.parse_args()
    for tool in ("Xvfb", "xdotool"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install xvfb xdotool)")
    variants = {
        "bundle": [str(args.bundle / "trainer-gui")],
        "source": [args.python, "-m", "trainer_gui"],
    }
    xvfb = start_xvfb()
    try:
        cold_dropped = drop_caches()
        cold = {}
        for name, command in variants.items():
            if cold_dropped:
                drop_caches()
            cold[name] = time_to_window(command)
        warm: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, command in variants.items():
                warm[name].append(time_to_window(command))
        version = {name: time_version(command, args.runs) for name, command in variants.items()}
    finally:
        xvfb.terminate()
        xvfb.wait()
    cold_label = "cold (page cache dropped)" if cold_dropped else "first run (cache not dropped)"
    print(
        f"| variant | {cold_label} | warm median (min-max), {args.runs} runs | `--version` median |"
    )
    print("|---|---|---|---|")
    for name in variants:
        runs = warm[name]
        print(
            f"| {name} | {cold[name]:.2f} s | {statistics.median(runs):.2f} s "
            f"({min(runs):.2f}-{max(runs):.2f}) | {version[name] * 1000:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
