"""CloudWatch Logs of a training job, as resumable log lines per host.

SageMaker writes each instance's stdout and stderr to the log group `/aws/sagemaker/TrainingJobs`,
stream `<job>/algo-<n>-<epoch seconds>` (the SDK finds them with DescribeLogStreams on the prefix
`<job>/`). Each stream is read forward with GetLogEvents; the `nextForwardToken` after the last
event read is the stream's offset, stored with the lines in the same transaction, so a later
process resumes every stream exactly there: no gap, no line twice.

A page may come back empty with a new token (CloudWatch scans the stream in time slices); the
stream is read on until the token no longer moves, which is what "drained" means here. After a
job ends its last lines can still arrive: the runner reads until a read finds nothing new on
every stream (`CloudWatchTail.moved`) for a while, within a bounded time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from trainer_gui.core.runners.events import LogLine

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
STREAM_RE = re.compile(r"^(?P<job>.+)/(?P<host>algo-\d+)-(?P<ts>\d+)$")
OFFSET_PREFIX = "cloudwatch:"


def host_of(stream: str) -> str:
    match = STREAM_RE.match(stream)
    return match["host"] if match else stream.rsplit("/", 1)[-1]


def offset_key(stream: str) -> tuple[str, str]:
    """The store's (host, stream) key for a CloudWatch stream: the host and the stream's name."""
    return host_of(stream), OFFSET_PREFIX + stream.rsplit("/", 1)[-1]


@dataclass
class _Stream:
    name: str
    token: str | None


class CloudWatchTail:
    """Reads new events of every `<job>/` stream; offsets are the streams' forward tokens."""

    def __init__(
        self,
        logs: Any,
        job_name: str,
        offsets: dict[tuple[str, str], str] | None = None,
        page_limit: int = 10_000,
        max_pages: int = 100,
    ) -> None:
        self.logs = logs
        self.job_name = job_name
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.moved = False
        """Whether the last `read` found anything new: a line, a new stream or a moved token."""
        self._saved = {
            key: value for key, value in (offsets or {}).items() if key[1].startswith(OFFSET_PREFIX)
        }
        self._streams: dict[str, _Stream] = {}

    def _discover(self) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "logGroupName": LOG_GROUP,
            "logStreamNamePrefix": self.job_name + "/",
        }
        try:
            while True:
                page = self.logs.describe_log_streams(**kwargs)
                for item in page.get("logStreams", []) or []:
                    name = item["logStreamName"]
                    if name not in self._streams:
                        token = self._saved.get(offset_key(name))
                        self._streams[name] = _Stream(name, token)
                        self.moved = True
                token = page.get("nextToken")
                if not token:
                    break
                kwargs["nextToken"] = token
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return  # no log group yet: the job has not written anything
            raise

    def read(self) -> tuple[list[LogLine], dict[tuple[str, str], str]]:
        """New lines of all hosts (time-ordered) and the offsets after them."""
        self.moved = False
        self._discover()
        lines: list[LogLine] = []
        offsets: dict[tuple[str, str], str] = {}
        for stream in sorted(self._streams.values(), key=lambda s: s.name):
            host = host_of(stream.name)
            for _ in range(self.max_pages):
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": stream.name,
                    "startFromHead": True,
                    "limit": self.page_limit,
                }
                if stream.token:
                    kwargs["nextToken"] = stream.token
                page = self.logs.get_log_events(**kwargs)
                events = page.get("events", []) or []
                for event in events:
                    for text in str(event.get("message", "")).splitlines() or [""]:
                        lines.append(
                            LogLine(host, "stdout", text, float(event["timestamp"]) / 1000.0)
                        )
                token = page.get("nextForwardToken")
                moved = bool(token) and token != stream.token
                if token:
                    stream.token = token
                if moved and token:
                    offsets[offset_key(stream.name)] = token
                    self.moved = True
                if not moved:  # the same token back: the end of the stream for now
                    break
        lines.sort(key=lambda line: line.time)
        return lines, offsets

    @property
    def hosts(self) -> list[str]:
        return sorted({host_of(name) for name in self._streams})
