"""Job ids and the run folder's `logs/job.log` format: shared by the service that writes it,
the CLI and the window that read it, and the SageMaker export that names jobs."""

from __future__ import annotations

import secrets
import time

JOB_LOG = "job.log"


def make_job_id(name: str) -> str:
    """`<name>-<yyyymmdd-hhmmss>-<4 hex>`: unique, sortable, and a valid SageMaker job name."""
    suffix = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    return f"{name[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


def format_log_line(t: float, host: str, stream: str, text: str) -> str:
    return f"{t:.3f}\t{host}\t{stream}\t{text}\n"


def parse_log_line(line: str) -> tuple[float, str, str, str] | None:
    parts = line.rstrip("\n").split("\t", 3)
    if len(parts) != 4:
        return None
    try:
        return float(parts[0]), parts[1], parts[2], parts[3]
    except ValueError:
        return None
