"""`trainer-gui sweep show|stop` for local sweeps (services/sweeps.py); cli/sweep.py hands a
name over here when the store has a local sweep of that id or name."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

EXIT_OK = 0


def is_local(key: str) -> bool:
    from trainer_gui.core.store import Store

    with Store() as store:
        return store.get_sweep(key) is not None


def show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The trials by number: state, objective, values; the best one marked."""
    from trainer_gui.core.store import Store
    from trainer_gui.services.sweeps import best_trial, require_sweep

    out = out or sys.stdout
    with Store() as store:
        record = require_sweep(store, args.name)
        trials = store.trials(record.id)
    best = best_trial(record, trials)
    head = f"Sweep {record.id} ({record.backend}): {record.status}"
    _line(out, head + (f" ({record.message})" if record.message else ""))
    _line(out, f"  objective: {record.goal} {record.objective}; {len(trials)} trials")
    rows = [("TRIAL", "STATE", record.objective, "JOB", "PARAMETERS")]
    for t in trials:
        mark = " *" if best is not None and t.number == best.number else ""
        value = "-" if t.value is None else f"{t.value:.6g}"
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        rows.append((f"{t.number}{mark}", t.state, value, t.job_id, params))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
        _line(out, f"{cells}  {row[4]}".rstrip())
    if best is not None:
        _line(out, f"Best trial (*): {best.number}  (trainer-gui show {best.job_id})")
    return EXIT_OK


def stop(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """No new trials; the running ones are stopped."""
    from trainer_gui.cli.main import _service
    from trainer_gui.services.sweeps import stop_sweep

    out = out or sys.stdout
    service = _service()
    try:
        record = stop_sweep(service, args.name)
    finally:
        service.shutdown()
    if record.is_active:
        _line(out, f"Stopping the sweep {record.id}: no new trials; its running trials stop")
    else:
        _line(out, f"Sweep {record.id}: {record.status}")
    return EXIT_OK


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
