"""The GUI thread asks Linux for short scheduler slices; other threads and the processes it
starts keep the default."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from trainer_gui.ui import sched

pytestmark = pytest.mark.skipif(
    sched._syscalls() is None or not sched._kernel_at_least(6, 12),
    reason="custom scheduler slices need Linux 6.12+ on x86_64 or aarch64",
)


def test_the_calling_thread_gets_short_slices_and_nothing_else_does() -> None:
    seen: dict[str, object] = {}

    def gui_thread() -> None:
        seen["taken"] = sched.ask_short_slices()
        seen["mine"] = sched.current_slice_ns()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "from trainer_gui.ui import sched\nprint(sched.current_slice_ns())",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        seen["child"] = child.stdout.strip()

    thread = threading.Thread(target=gui_thread)
    thread.start()
    thread.join(60)

    assert seen["taken"] is True
    assert seen["mine"] == sched.GUI_SLICE_NS
    default = sched.current_slice_ns()  # this thread was not touched: the kernel's default
    assert default != sched.GUI_SLICE_NS
    assert seen["child"] == str(default)  # reset on fork: what the window starts is not favoured


def test_the_window_tuning_asks_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from trainer_gui.ui import app

    asked: list[int] = []

    def ask() -> bool:
        asked.append(1)
        return True

    monkeypatch.setattr(sched, "ask_short_slices", ask)
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        app.tune_for_responsiveness()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
    assert asked == [1]
