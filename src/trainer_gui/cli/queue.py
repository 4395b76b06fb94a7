"""`trainer-gui queue`: the local job queue (services/queue.py) from a terminal."""

from __future__ import annotations

import argparse
import time

from trainer_gui.core.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    queue = sub.add_parser(
        "queue",
        help="the local job queue: list, move, pause, resume, cancel, limit",
        description="Local jobs wait in a queue until the slots and GPUs they need are free. "
        "The job host starts them in order, also while no window is open.",
    )
    verbs = queue.add_subparsers(dest="queue_command")
    verbs.add_parser("list", help="the queued jobs, next first (the default)")
    move = verbs.add_parser("move", help="reorder a queued job, or change its priority")
    move.add_argument("job")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=int, metavar="N", help="position (1 = next)")
    where.add_argument("--top", action="store_true", help="next to start")
    where.add_argument("--bottom", action="store_true", help="last of its priority")
    where.add_argument("--priority", type=int, metavar="P", help="higher starts first (default 0)")
    verbs.add_parser("pause", help="start no queued job until resumed (running jobs go on)")
    verbs.add_parser("resume", help="start queued jobs again")
    cancel = verbs.add_parser("cancel", help="take a job out of the queue (stops it if started)")
    cancel.add_argument("job")
    limit = verbs.add_parser("limit", help="how many local jobs run at once on this machine")
    limit.add_argument("count", nargs="?", help="a number, or 'default'")
    return queue


def cmd_queue(args: argparse.Namespace) -> int:
    from trainer_gui.cli.main import _service
    from trainer_gui.services.queue import QueueControl

    service = _service()
    try:
        control = QueueControl(service)
        verb = args.queue_command or "list"
        if verb == "list":
            _print_list(control)
        elif verb == "move":
            if args.priority is not None:
                control.set_priority(args.job, args.priority)
            else:
                position = 1 if args.top else 10**9 if args.bottom else args.to
                if position is None or position < 1:
                    raise UserError("--to takes a position from 1 (next to start)")
                control.move(args.job, position)
            _print_list(control)
        elif verb == "pause":
            control.pause()
            print("Queue paused: no queued job starts until `trainer-gui queue resume`.")
        elif verb == "resume":
            control.resume()
            print("Queue resumed.")
        elif verb == "cancel":
            status = control.cancel(args.job)
            print(f"{args.job}: {status}")
        elif verb == "limit":
            if args.count is not None:
                value = args.count.strip().lower()
                if value == "default":
                    control.set_max_parallel(None)
                elif value.isdigit():
                    control.set_max_parallel(int(value))
                else:
                    raise UserError(f"limit takes a number or 'default', not {args.count!r}")
            note = " (default: one per GPU, 1 without)" if control.max_parallel_is_default else ""
            print(f"Local jobs at once: {control.max_parallel}{note}; GPUs: {control.gpus()}")
        return 0
    finally:
        service.shutdown()


def _print_list(control: object) -> None:
    from trainer_gui.services.queue import QueueControl

    assert isinstance(control, QueueControl)
    entries = control.entries()
    state = "paused" if control.paused else "running"
    print(f"Queue {state}; local jobs at once: {control.max_parallel}")
    if not entries:
        print("No queued jobs.")
        return
    rows = [("#", "JOB", "BACKEND", "PRIORITY", "NEEDS", "WAITING")]
    now = time.time()
    for item in entries:
        waited = int(now - item.entry.enqueued_at)
        rows.append(
            (
                "starting" if item.position == 0 else str(item.position),
                item.job_id,
                item.backend,
                str(item.entry.priority),
                item.needs,
                f"{waited // 60}m{waited % 60:02d}s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
