"""Test doubles shared by the SageMaker tests and their conftest.

Kept out of conftest.py: with several conftest modules in the suite, `from conftest import ...`
finds whichever one was imported first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIATGFAKEKEY7Q3ZP2X",
    "AWS_SECRET_ACCESS_KEY": "tgFakeSecretKey/9f8e7d6c5b4a3f2e1d0c9b8aZ7y6X5w4",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzTGFakeSessionToken0123456789abcdefTRAINERGUI",
}


@dataclass
class Script:
    """What a simulated job does. `lines(host_index)` are its log lines (host_index from 1)."""

    lines: Callable[[int], list[str]] = lambda host: [f"epoch 1 loss=0.5 host {host}"]
    outcome: str = "Completed"  # Completed | Failed | hang (runs until stopped)
    failure_reason: str = "AlgorithmError: ExecuteUserScriptError: ExitCode 1"
    final_metrics: dict[str, float] = field(default_factory=dict)
    model_files: dict[str, bytes] = field(default_factory=lambda: {"model.pt": b"weights"})
    output_files: dict[str, bytes] = field(default_factory=lambda: {"report.txt": b"done"})
    lines_per_tick: int = 50
    hold: threading.Event | None = None  # set() lets the job go on past Training start


def _op_of(request: Any) -> str:
    """'<service>:<Operation>' of a prepared botocore request."""
    target = request.headers.get("X-Amz-Target")
    if target:
        target = target.decode() if isinstance(target, bytes) else target
        service, _, op = target.partition(".")
        named = {"SageMaker": "sagemaker", "AWSPriceListService": "pricing"}
        return named.get(service, "logs") + ":" + op
    body = request.body
    if isinstance(body, bytes | str) and body:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        match = re.search(r"Action=([A-Za-z]+)", text)
        if match:
            service = "iam" if "iam" in request.url or match[1] in ("ListRoles",) else "sts"
            return f"{service}:{match[1]}"
    url = request.url
    method = request.method
    query = url.split("?", 1)[1] if "?" in url else ""
    if method == "PUT" and "partNumber=" in query:
        return "s3:UploadPart"
    if method == "POST" and query.startswith("uploads"):
        return "s3:CreateMultipartUpload"
    if method == "POST" and "uploadId=" in query:
        return "s3:CompleteMultipartUpload"
    if method == "GET" and "uploadId=" in query:
        return "s3:ListParts"
    if method == "POST" and "delete" in query:
        return "s3:DeleteObjects"
    if method == "GET" and "list-type=2" in query:
        return "s3:ListObjectsV2"
    path = url.split("?", 1)[0].split("//", 1)[-1].split("/", 1)[-1]
    has_key = "/" in path.strip("/")
    if method == "PUT":
        return "s3:PutObject" if has_key else "s3:CreateBucket"
    if method == "HEAD":
        return "s3:HeadObject" if has_key else "s3:HeadBucket"
    if method == "GET":
        return "s3:GetObject" if has_key else "s3:ListObjects"
    return f"s3:{method}"


# -- what the product code sent ------------------------------------------------------------------


def capture_requests(aws: Any, monkeypatch: Any) -> list[Any]:
    """Every request botocore sends to the moto server, as sent (signed)."""
    seen: list[Any] = []
    original = aws.faults.intercept

    def intercept(request: Any) -> Any:
        seen.append(request)
        return original(request)

    monkeypatch.setattr(aws.faults, "intercept", intercept)
    return seen


def signed_for(request: Any) -> tuple[str, str, str]:
    """(access key, region, service) of a SigV4 request's credential scope."""
    auth = request.headers["Authorization"]
    auth = auth.decode() if isinstance(auth, bytes) else auth
    found = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", auth)
    assert found, auth
    return found.group(1), found.group(2), found.group(3)


def user_agent(request: Any) -> str:
    agent = request.headers.get("User-Agent", b"")
    return agent.decode() if isinstance(agent, bytes) else str(agent)
