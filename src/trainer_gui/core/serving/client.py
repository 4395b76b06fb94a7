"""Sending requests to an endpoint: a local one over HTTP, or a deployed SageMaker endpoint.

    client = client_for("quickstart")                 # a local endpoint's name (needs a launcher)
    client = client_for("http://127.0.0.1:49153")     # or its URL
    client = client_for("sagemaker:my-endpoint")      # InvokeEndpoint through boto3
    result = client.invoke(b"[[1, 2, 3, 4]]", "application/json", accept="application/json")
    result.status, result.latency_ms, format_body(result.body, result.content_type)

Every answer, errors included, is an `InvokeResult` with the status code the model server gave;
only "nothing answers" raises (`EndpointUnreachable`). Local clients keep one keep-alive
connection per thread (`http.client`, Nagle off), so a request costs one round trip. boto3 is
imported only when a SageMaker client is made.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import mimetypes
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from trainer_gui.core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.core.serving.launcher import EndpointLauncher

log = logging.getLogger(__name__)

__all__ = [
    "SAGEMAKER_PREFIX",
    "EndpointClient",
    "EndpointUnreachable",
    "InvokeResult",
    "LocalEndpointClient",
    "SageMakerEndpointClient",
    "client_for",
    "content_type_for",
    "format_body",
]

SAGEMAKER_PREFIX = "sagemaker:"
DEFAULT_TIMEOUT = 60.0  # SageMaker's limit for an answer

_BY_SUFFIX = {
    ".json": "application/json",
    ".jsonl": "application/jsonlines",
    ".csv": "text/csv",
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
    ".txt": "text/plain",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


class EndpointUnreachable(UserError):
    """Nothing answered (the endpoint is not running, the network is down, no credentials)."""


@dataclass(frozen=True)
class InvokeResult:
    """One answer: HTTP status, body and its content type, round-trip time, where it went."""

    status: int
    body: bytes
    content_type: str
    latency_ms: float
    target: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class EndpointClient(Protocol):
    target: str

    def invoke(
        self,
        body: bytes | str,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> InvokeResult: ...

    def close(self) -> None: ...


#: InvokeEndpoint's CustomAttributes: at most 1024 visible US-ASCII characters (RFC 7230 field).
CUSTOM_ATTRIBUTES_MAX = 1024


def check_custom_attributes(value: str | None) -> str | None:
    """The X-Amzn-SageMaker-Custom-Attributes value as SageMaker accepts it, or a UserError.

    Empty means none. SageMaker forwards the value verbatim to the handler
    (`context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")`).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > CUSTOM_ATTRIBUTES_MAX:
        raise UserError(
            f"custom attributes are {len(text)} characters; SageMaker takes at most "
            f"{CUSTOM_ATTRIBUTES_MAX}"
        )
    bad = [c for c in text if not (" " <= c <= "~" or c == "\t")]
    if bad:
        raise UserError(
            f"custom attributes must be visible US-ASCII characters (SageMaker's rule); "
            f"{bad[0]!r} is not"
        )
    return text


class LocalEndpointClient:
    """A local endpoint (`http://host:port`): POST /invocations, GET /ping, keep-alive."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise UserError(f"{url!r} is not an http://host:port address")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.url = f"http://{self.host}:{self.port}"
        self.target = self.url
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and not fresh:
            return conn
        if conn is not None:
            conn.close()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes, float]:
        for attempt in (0, 1):
            conn = self._connection(fresh=attempt == 1)
            reused = conn.sock is not None
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
                http.client.ResponseNotReady,
            ) as exc:
                conn.close()
                if attempt == 0 and reused:
                    # the server closed an idle keep-alive connection: once more
                    log.debug(
                        "%s dropped a kept-alive connection (%s); sending again", self.url, exc
                    )
                    continue
                raise EndpointUnreachable(f"{self.url} closed the connection ({exc})") from exc
            except OSError as exc:
                conn.close()
                raise EndpointUnreachable(
                    f"nothing answers at {self.url} ({exc}); is the endpoint running? "
                    "(`trainer-gui serve --list`)"
                ) from exc
            latency = (time.perf_counter() - started) * 1000.0
            if response.will_close:
                conn.close()
            return response, data, latency
        raise AssertionError("unreachable")  # pragma: no cover

    def invoke(
        self,
        body: bytes | str,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> InvokeResult:
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if accept:
            headers["Accept"] = accept
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        response, data, latency = self._request("POST", "/invocations", payload, headers)
        return InvokeResult(
            status=response.status,
            body=data,
            content_type=response.getheader("Content-Type") or "",
            latency_ms=latency,
            target=self.url,
            headers={k.lower(): v for k, v in response.getheaders()},
        )

    def ping(self) -> int:
        response, _, _ = self._request("GET", "/ping", None, {})
        return response.status

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class SageMakerEndpointClient:
    """A deployed SageMaker endpoint, through `sagemaker-runtime` InvokeEndpoint (boto3).

    The standard credential chain applies (profiles, environment, SSO); nothing is stored.
    A model error (the container answered 4xx/5xx) comes back as an `InvokeResult` with the
    container's status and message, like a local endpoint's.
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        runtime_client: Any = None,
    ) -> None:
        if not endpoint_name:
            raise UserError("name the SageMaker endpoint (sagemaker:NAME)")
        self.endpoint_name = endpoint_name
        self.target = f"{SAGEMAKER_PREFIX}{endpoint_name}"
        self._client = runtime_client
        self._region = region
        self._profile = profile

    def _runtime(self) -> Any:
        """The runtime client of the profile/region given, else of the AWS settings (like the
        training jobs), with the same adaptive retries and endpoint settings."""
        if self._client is None:
            from trainer_gui.core.aws.session import AwsSession

            session = AwsSession.from_settings(self._profile, self._region)
            self._client = session.client("sagemaker-runtime")
        return self._client

    def invoke(
        self,
        body: bytes | str,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> InvokeResult:
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        kwargs: dict[str, Any] = {"EndpointName": self.endpoint_name, "Body": payload}
        if content_type:
            kwargs["ContentType"] = content_type
        if accept:
            kwargs["Accept"] = accept
        if custom_attributes:
            kwargs["CustomAttributes"] = custom_attributes
        started = time.perf_counter()
        try:
            runtime = self._runtime()
            response = runtime.invoke_endpoint(**kwargs)
            data = response["Body"].read()
        except Exception as exc:
            return self._error(exc, (time.perf_counter() - started) * 1000.0)
        latency = (time.perf_counter() - started) * 1000.0
        meta = response.get("ResponseMetadata") or {}
        return InvokeResult(
            status=int(meta.get("HTTPStatusCode") or 200),
            body=data,
            content_type=str(response.get("ContentType") or ""),
            latency_ms=latency,
            target=self.target,
            headers={k.lower(): str(v) for k, v in (meta.get("HTTPHeaders") or {}).items()},
        )

    def _error(self, exc: Exception, latency: float) -> InvokeResult:
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            name = type(exc).__name__
            if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
                raise EndpointUnreachable(
                    f"cannot call SageMaker: {exc} (configure AWS credentials and a region, "
                    "e.g. `aws configure` or AWS_PROFILE / AWS_REGION)"
                ) from exc
            if isinstance(exc, UserError):
                raise exc
            raise EndpointUnreachable(f"cannot reach SageMaker: {exc}") from exc
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        status = int(response.get("OriginalStatusCode") or meta.get("HTTPStatusCode") or 500)
        message = str(response.get("OriginalMessage") or error.get("Message") or exc)
        code = error.get("Code") or ""
        if code and code != "ModelError":
            message = f"{code}: {message}"
        return InvokeResult(
            status=status,
            body=message.encode("utf-8"),
            content_type="text/plain; charset=utf-8",
            latency_ms=latency,
            target=self.target,
        )

    def close(self) -> None:
        self._client = None


def client_for(
    target: str,
    launcher: EndpointLauncher | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    region: str | None = None,
    profile: str | None = None,
) -> LocalEndpointClient | SageMakerEndpointClient:
    """`sagemaker:NAME`, an `http://` URL or `host:port`, or a local endpoint's name."""
    if target.startswith(SAGEMAKER_PREFIX):
        return SageMakerEndpointClient(
            target[len(SAGEMAKER_PREFIX) :], region=region, profile=profile
        )
    if target.startswith("http://") or ":" in target:
        return LocalEndpointClient(target, timeout=timeout)
    if launcher is None:
        from trainer_gui.core.serving.launcher import EndpointLauncher

        launcher = EndpointLauncher()
    endpoint = launcher.get(target)
    if not endpoint.url:
        raise EndpointUnreachable(f"endpoint {target!r} has no published port (is it running?)")
    return LocalEndpointClient(endpoint.url, timeout=timeout)


# -- files and display -------------------------------------------------------------------------


def content_type_for(path: Path | str) -> str:
    """The request content type for a file to send: by suffix, else octet-stream."""
    suffix = Path(path).suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def format_body(body: bytes, content_type: str, limit: int = 200_000) -> str:
    """A body for people: JSON indented, NPY as the array (shape, dtype), text as is,
    other binary as a size and a hex preview. At most `limit` characters."""
    media = _media(content_type)
    text: str | None = None
    if media == "application/x-npy" or body[:6] == b"\x93NUMPY":
        text = _format_npy(body)
    elif media.endswith("json") or media == "application/jsonlines":
        try:
            decoded = body.decode("utf-8")
            if media == "application/jsonlines":
                text = "\n".join(
                    json.dumps(json.loads(line)) for line in decoded.splitlines() if line.strip()
                )
            else:
                text = _pretty_json(json.loads(decoded))
        except ValueError:
            text = None
    if text is None:
        try:
            text = body.decode("utf-8")
            if "\x00" in text:
                text = None
        except UnicodeDecodeError:
            text = None
    if text is None:
        preview = body[:64].hex(" ")
        more = " …" if len(body) > 64 else ""
        text = f"<{len(body)} bytes of {content_type or 'binary data'}>\n{preview}{more}"
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return text


_FLAT_ARRAY = re.compile(
    r"\[(\s*(?:-?[\d.eE+-]+|true|false|null)(?:,\s*(?:-?[\d.eE+-]+|true|false|null))*\s*)\]"
)


def _pretty_json(value: object) -> str:
    """Indented JSON, but arrays of plain numbers stay on one line (rows of predictions)."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _FLAT_ARRAY.sub(
        lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text
    )


def _format_npy(body: bytes) -> str:
    import numpy as np

    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        return f"<not a readable .npy array: {exc}>"
    with np.printoptions(threshold=2000, linewidth=100):
        return f"array shape {array.shape}, dtype {array.dtype}\n{np.array2string(array)}"
