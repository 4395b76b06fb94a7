"""The serving runtime: SageMaker's PyTorch model server contract, standard library only.

Plain images (anything with Python >= 3.8 and torch) get this one file mounted read-only and run
it; it imports nothing from the app and nothing outside the standard library at module level.
numpy and torch are imported once, while the model loads (the default handlers need them; a
user's inference.py imports them itself).

    python runtime.py [--model-dir /opt/ml/model] [--host 0.0.0.0] [--port 8080]

What it serves (shared/docs/sagemaker-contract.md section 3):

* `GET /ping`: 200 once the model is loaded, 503 while it loads. It never waits for a running
  prediction. `POST /invocations`: the prediction. Port `SAGEMAKER_BIND_TO_PORT` (8080).
* Handlers from `/opt/ml/model/code/<SAGEMAKER_PROGRAM>` (default `inference.py`): `model_fn`,
  `input_fn`, `predict_fn`, `output_fn`, or `transform_fn` (with any of the middle three it is an
  error at load, as in the toolkit), plus `pre_model_fn` and `model_warmup_fn`. Each may take an
  extra trailing `context` argument. A missing module means all defaults, as in the toolkit.
* Defaults of the PyTorch toolkit: TorchScript load of `model.pt` or the one `*.pt`/`*.pth`;
  JSON / CSV / NPY bodies to float tensors; `no_grad` + `eval`; encoding by `Accept`, where a
  missing or `*/*` Accept means `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (application/json).

Where it deliberately does better than the toolkit (documented in docs/serving.md):

* Content types and Accept values with parameters (`application/json; charset=utf-8`, q-values)
  are understood by the default handlers; the toolkit matches the exact string only.
* Bad requests get the status they deserve, with a message that says what is wrong: 400 for a
  body the default input_fn cannot decode, 411/413 for a missing/too large body, 415 for a
  content type it has no decoder for, 406 for an Accept it cannot produce. The toolkit answers
  500 to all of them. Errors raised by user handlers stay 500 with the message (what SageMaker
  answers), unless the exception carries an int `status_code` as the toolkit's own errors do.
  The body names the exception's type and message only: its traceback goes to the container
  log, and into the body too only with `TRAINER_GUI_SERVING_DEBUG=1` (a traceback shows the
  server's paths and code to whoever can send a request).
* NPY bodies are loaded with `allow_pickle=False` (the toolkit allows pickles: code execution
  by request).

Concurrency: a thread per connection (keep-alive), so /ping and slow clients never queue behind a
prediction; the handlers themselves run under a semaphore of `TRAINER_GUI_SERVING_CONCURRENCY`
(default 1), because user handlers and models are not promised to be thread-safe (SageMaker runs
one model copy per worker *process*). Raise it for models known to be safe (torch releases the
GIL in its kernels).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
DEFAULT_TYPES = (JSON, CSV, NPY)
UTF8_TYPES = (JSON, CSV)  # the toolkit decodes these bodies to str before input_fn
MODEL_EXTENSIONS = (".pt", ".pth")
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
SERVER_NAME = "trainer-gui-serving/1"
#: Set to 1/true/yes: error bodies carry the handler's traceback (it is always in the log).
DEBUG_ENV = "TRAINER_GUI_SERVING_DEBUG"

LOADING, READY, FAILED = "loading", "ready", "failed"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def log(message: str) -> None:
    sys.stderr.write("[serving] " + message + "\n")
    sys.stderr.flush()


class ServingError(Exception):
    """An answer other than 200: `status` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoadError(Exception):
    """The model or its handlers cannot be loaded; the server exits with the message."""


# -- media types -------------------------------------------------------------------------------


def media_type(value: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (value or "").split(";", 1)[0].strip().lower()


def parse_accept(accept: str | None, default: str) -> list[str]:
    """Accept -> media types, best first (q-values honoured, order kept among equals).

    Missing, empty or `*/*` entries mean `default`, as SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT does.
    """
    entries = []
    for index, part in enumerate((accept or "").split(",")):
        fields = part.split(";")
        media = fields[0].strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media == "*/*":
            media = media_type(default) or JSON
        entries.append((-quality, index, media))
    entries.sort()
    types = [media for _, _, media in entries]
    return types or [media_type(default) or JSON]


# -- default handlers (the PyTorch toolkit's, with clear errors) --------------------------------


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_model_fn(model_dir: str) -> Any:
    """`model.pt`, else the one `*.pt`/`*.pth` in model_dir, loaded with TorchScript."""
    import torch

    names = sorted(
        name
        for name in os.listdir(model_dir)
        if name.endswith(MODEL_EXTENSIONS) and os.path.isfile(os.path.join(model_dir, name))
    )
    if "model.pt" in names:
        names = ["model.pt"]
    if len(names) != 1:
        found = ", ".join(names) if names else "none"
        raise LoadError(
            "Exactly one .pth or .pt file is required for the default model_fn in "
            f"{model_dir} (found: {found}); or provide model_fn in code/inference.py"
        )
    path = os.path.join(model_dir, names[0])
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; SageMaker uses it
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location=_device())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"Failed to load {names[0]}: the default model_fn loads TorchScript only "
            "(save with torch.jit.save(torch.jit.script(model), ...)), or provide model_fn "
            f"in code/inference.py ({first})"
        ) from exc


def _text(data: Any, media: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServingError(400, f"{media}: the body is not UTF-8 text ({exc})") from None


def _decode_json(text: str) -> Any:
    import numpy as np

    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ServingError(400, f"application/json: the body is not valid JSON ({exc})") from None
    if isinstance(payload, dict):
        raise ServingError(
            400,
            "application/json: the default input_fn wants a number or (nested) lists of "
            "numbers, e.g. [[0.1, 0.2], [0.3, 0.4]]; got a JSON object (provide input_fn in "
            "code/inference.py to accept others)",
        )
    try:
        array = np.array(payload)
    except ValueError as exc:  # ragged lists
        raise ServingError(
            400, f"application/json: the rows do not form a regular array ({exc})"
        ) from None
    return _numeric(array, JSON)


def _decode_csv(text: str) -> Any:
    """Like the toolkit's np.genfromtxt(delimiter=","), but a non-number is an error, not NaN."""
    import numpy as np

    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = []
        for column, cell in enumerate(line.split(","), start=1):
            cell = cell.strip()
            if not cell:
                values.append(float("nan"))  # genfromtxt's missing value
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ServingError(
                    400,
                    f"text/csv: line {number}, column {column}: {cell[:40]!r} is not a number "
                    "(the default input_fn reads numbers only, no header line)",
                ) from None
        if rows and len(values) != len(rows[0]):
            raise ServingError(
                400,
                f"text/csv: line {number} has {len(values)} values, the first line has "
                f"{len(rows[0])}",
            )
        rows.append(values)
    if not rows:
        raise ServingError(400, "text/csv: the body has no rows")
    return np.squeeze(np.array(rows, dtype=np.float64))


def _decode_npy(data: Any) -> Any:
    import numpy as np

    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if data[:4] == b"PK\x03\x04":
        raise ServingError(400, "application/x-npy: the body is an .npz archive, not one array")
    if data[:6] != b"\x93NUMPY":
        raise ServingError(
            400, "application/x-npy: the body is not a .npy array (np.save writes one)"
        )
    try:
        array = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    except ValueError as exc:
        message = str(exc)
        if "allow_pickle" in message:
            message = "it holds Python objects (pickles are refused)"
        raise ServingError(
            400, f"application/x-npy: the body is not a usable .npy array: {message}"
        ) from None
    except (OSError, EOFError) as exc:
        raise ServingError(
            400, f"application/x-npy: the body is not a .npy array (written by np.save): {exc}"
        ) from None
    return array


def _numeric(array: Any, media: str) -> Any:
    import numpy as np

    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number):
        if np.issubdtype(array.dtype, np.complexfloating):
            raise ServingError(400, f"{media}: complex numbers are not supported")
        return array
    raise ServingError(
        400,
        f"{media}: expected numbers, got values of type {array.dtype} (shape "
        f"{tuple(array.shape)}); the default input_fn wants (nested) lists of numbers",
    )


def default_input_fn(input_data: Any, content_type: str | None) -> Any:
    """JSON and CSV to a float32 tensor, NPY to a tensor of its own dtype, on the device."""
    import torch

    media = media_type(content_type)
    if media == JSON:
        tensor = torch.as_tensor(_decode_json(_text(input_data, media)), dtype=torch.float32)
    elif media == CSV:
        tensor = torch.as_tensor(_decode_csv(_text(input_data, media)), dtype=torch.float32)
    elif media == NPY:
        array = _decode_npy(input_data)
        try:
            tensor = torch.from_numpy(array)
        except TypeError as exc:
            raise ServingError(
                400, f"application/x-npy: torch cannot use this array: {exc}"
            ) from None
    elif not media:
        raise ServingError(
            415,
            "the request has no Content-Type; send application/json, text/csv or application/x-npy",
        )
    else:
        raise ServingError(
            415,
            f"unsupported content type {content_type!r}: the default input_fn decodes "
            f"{', '.join(DEFAULT_TYPES)} (provide input_fn in code/inference.py for others)",
        )
    return tensor.to(_device())


def default_predict_fn(data: Any, model: Any) -> Any:
    """model(data) under torch.no_grad(), the model in eval mode on the device."""
    import torch

    device = _device()
    if isinstance(model, torch.nn.Module):
        if getattr(model, "_trainer_gui_device", None) != str(device):
            model.to(device)
            setattr(model, "_trainer_gui_device", str(device))  # noqa: B010 (not a Module attr)
        if model.training:
            model.eval()
    with torch.no_grad():
        return model(data.to(device) if isinstance(data, torch.Tensor) else data)


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        tolist = getattr(o, "tolist", None)
        if callable(tolist):  # numpy arrays and scalars, tensors
            if hasattr(o, "detach"):
                o = o.detach().cpu()
            return o.tolist()
        return super().default(o)


def encode(prediction: Any, media: str) -> bytes:
    """The toolkit's encoders: JSON (json.dumps), CSV (np.savetxt, fmt %s), NPY (np.save)."""
    import numpy as np

    if media == JSON:
        return json.dumps(prediction, cls=_Encoder).encode("utf-8")
    buffer = io.BytesIO()
    if media == CSV:
        np.savetxt(buffer, np.atleast_1d(np.array(prediction)), delimiter=",", fmt="%s")
    else:
        np.save(buffer, np.asarray(prediction))
    return buffer.getvalue()


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """Tensor -> lists, encoded as the first type in Accept that JSON/CSV/NPY covers."""
    import torch

    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    for media in parse_accept(accept, JSON):
        if media in DEFAULT_TYPES:
            return encode(prediction, media), media
    raise ServingError(
        406,
        f"cannot answer in {accept!r}: the default output_fn writes "
        f"{', '.join(DEFAULT_TYPES)} (provide output_fn in code/inference.py for others)",
    )


# -- the model and its handlers ----------------------------------------------------------------


class Context:
    """What a handler with an extra trailing `context` argument receives.

    Like TorchServe's context, `system_properties` has `model_dir` and `gpu_id`; `request_headers`
    holds the current request's headers (lower-case names), `custom_attributes` the
    X-Amzn-SageMaker-Custom-Attributes header.
    """

    def __init__(self, model_dir: str, headers: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir
        self.system_properties = {"model_dir": model_dir, "gpu_id": 0}
        self.request_headers = dict(headers or {})
        self.custom_attributes = self.request_headers.get("x-amzn-sagemaker-custom-attributes")


def _wants_context(fn: Callable[..., Any], nargs: int) -> bool:
    """The toolkit's arity check: one more positional parameter than it passes = a context."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == nargs + 1


class _Handler:
    """One handler function and whether it takes a context."""

    def __init__(self, fn: Callable[..., Any], nargs: int, user: bool) -> None:
        self.fn = fn
        self.user = user
        self.context = user and _wants_context(fn, nargs)

    def __call__(self, context: Context, *args: Any) -> Any:
        if self.context:
            return self.fn(*args, context)
        return self.fn(*args)


class ModelService:
    """Loads the model and runs requests through the handlers; thread-safe by a semaphore."""

    def __init__(
        self,
        model_dir: str = DEFAULT_MODEL_DIR,
        program: str | None = None,
        default_accept: str | None = None,
        concurrency: int = 1,
        max_payload_bytes: int = 6 * 1024 * 1024,
        debug_errors: bool = False,
    ) -> None:
        self.model_dir = model_dir
        self.debug_errors = debug_errors
        self.code_dir = os.path.join(model_dir, "code")
        self.program = program or "inference.py"
        self.default_accept = default_accept or JSON
        self.max_payload_bytes = max_payload_bytes
        self.state = LOADING
        self.error = ""
        self.model: Any = None
        self.module: Any = None
        self._gate = threading.Semaphore(max(1, concurrency))
        self._ready = threading.Event()
        self.transform: _Handler | None = None
        self.input_fn = _Handler(default_input_fn, 2, False)
        self.predict_fn = _Handler(default_predict_fn, 2, False)
        self.output_fn = _Handler(default_output_fn, 2, False)

    @classmethod
    def from_environ(cls, model_dir: str | None = None) -> ModelService:
        env = os.environ
        try:
            megabytes = float(env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB") or 6)
        except ValueError:
            megabytes = 6.0
        try:
            concurrency = int(env.get("TRAINER_GUI_SERVING_CONCURRENCY") or 1)
        except ValueError:
            concurrency = 1
        return cls(
            model_dir=model_dir or env.get("SAGEMAKER_MODEL_DIR") or DEFAULT_MODEL_DIR,
            program=env.get("SAGEMAKER_PROGRAM") or None,
            default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None,
            concurrency=concurrency,
            max_payload_bytes=int(megabytes * 1024 * 1024),
            debug_errors=_truthy(env.get(DEBUG_ENV)),
        )

    # -- loading ---------------------------------------------------------------------------

    def _import_user_module(self) -> Any:
        module_name = self.program[:-3] if self.program.endswith(".py") else self.program
        path = os.path.join(self.code_dir, module_name + ".py")
        if not os.path.isfile(path):
            log(f"no {path}: using the default model_fn, input_fn, predict_fn and output_fn")
            return None
        if self.code_dir not in sys.path:
            sys.path.insert(0, self.code_dir)
        if os.path.isfile(os.path.join(self.code_dir, "requirements.txt")):
            log(
                "code/requirements.txt is not installed by this runtime: bake the packages into "
                "the image (the SageMaker image installs it at start)"
            )
        cached = sys.modules.get(module_name)
        if cached is not None and os.path.abspath(getattr(cached, "__file__", "") or "") != path:
            del sys.modules[module_name]  # another model's handlers (tests serve several)
        try:
            return importlib.import_module(module_name)
        except Exception as exc:
            raise LoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc

    def load(self) -> None:
        """Resolve the handlers and load the model (state becomes READY or FAILED)."""
        try:
            self._load()
        except Exception as exc:
            self.state = FAILED
            if isinstance(exc, LoadError):
                self.error = str(exc)
            else:
                self.error = f"model_fn failed: {type(exc).__name__}: {exc}"
            raise
        self.state = READY
        self._ready.set()

    def _load(self) -> None:
        started = time.monotonic()
        # Import torch before the user's code: every handler needs it, and it is the slow part.
        try:
            import numpy  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            raise LoadError(
                f"this image lacks {exc.name}: the serving runtime needs Python with torch and "
                "numpy (use trainer-gui/inference:latest, or a SageMaker PyTorch image)"
            ) from exc
        module = self.module = self._import_user_module()

        def user(name: str) -> Callable[..., Any] | None:
            fn = getattr(module, name, None) if module is not None else None
            return fn if callable(fn) else None

        transform = user("transform_fn")
        middle = [n for n in ("input_fn", "predict_fn", "output_fn") if user(n) is not None]
        if transform is not None and middle:
            raise LoadError(
                f"{self.program} defines transform_fn together with {', '.join(middle)}; "
                "define either transform_fn or input_fn/predict_fn/output_fn, not both"
            )
        context = Context(self.model_dir)
        pre_model = user("pre_model_fn")
        if pre_model is not None:
            _Handler(pre_model, 1, True)(context, self.model_dir)
        model_fn = user("model_fn")
        if model_fn is not None:
            self.model = _Handler(model_fn, 1, True)(context, self.model_dir)
        else:
            self.model = default_model_fn(self.model_dir)
        warmup = user("model_warmup_fn")
        if warmup is not None:
            _Handler(warmup, 2, True)(context, self.model_dir, self.model)
        if transform is not None:
            self.transform = _Handler(transform, 4, True)
        for name in ("input_fn", "predict_fn", "output_fn"):
            fn = user(name)
            if fn is not None:
                setattr(self, name, _Handler(fn, 2, True))
        which = (
            "transform_fn"
            if transform is not None
            else ", ".join(
                f"{n}{'' if getattr(self, n).user else ' (default)'}"
                for n in ("input_fn", "predict_fn", "output_fn")
            )
        )
        log(
            f"model loaded in {time.monotonic() - started:.2f}s from {self.model_dir} "
            f"(model_fn{'' if model_fn else ' (default)'}, {which})"
        )

    # -- requests --------------------------------------------------------------------------

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[bytes, str]:
        """One request: (response body, its content type); raises ServingError otherwise."""
        if self.state != READY:
            raise ServingError(503, f"the model is not loaded ({self.state}) {self.error}".strip())
        accepts = parse_accept(accept, self.default_accept)
        # What the toolkit hands the handlers: Accept with */* and blanks defaulted.
        if not accept or media_type(accept) in ("", "*/*"):
            accept = self.default_accept
        context = Context(self.model_dir, headers)
        with self._gate:
            if self.transform is not None:
                data: Any = body
                if content_type in UTF8_TYPES:
                    data = _text(body, content_type)
                result = self.transform(context, self.model, data, content_type, accept)
            else:
                result = self._three_step(context, body, content_type, accept)
        return self._response(result, accepts)

    def _three_step(
        self, context: Context, body: bytes, content_type: str | None, accept: str
    ) -> Any:
        data: Any = body
        # What the toolkit passes a user's input_fn: str for the exact JSON/CSV types, else bytes.
        if self.input_fn.user and content_type in UTF8_TYPES:
            data = _text(body, content_type)
        decoded = self.input_fn(context, data, content_type)
        prediction = self.predict_fn(context, decoded, self.model)
        return self.output_fn(context, prediction, accept)

    @staticmethod
    def _response(result: Any, accepts: list[str]) -> tuple[bytes, str]:
        content_type = accepts[0]
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result[0], str(result[1])
        if isinstance(result, str):
            return result.encode("utf-8"), content_type
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result), content_type
        if result is None:
            return b"", content_type
        return json.dumps(result, cls=_Encoder).encode("utf-8"), JSON


# -- HTTP ------------------------------------------------------------------------------------------


class RequestHandler(BaseHTTPRequestHandler):
    """/ping and /invocations over HTTP/1.1 keep-alive; one write per response, no Nagle."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection's thread ends after this long
    service: ModelService  # set on a subclass by make_server
    access_log = False

    def log_message(self, format: str, *args: Any) -> None:
        if self.access_log:
            log(f"{self.address_string()} {format % args}")

    def _send(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Server: {SERVER_NAME}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1", "replace") + b"\r\n" + body)
        if self.access_log:
            self.log_request(status, len(body))

    def _error(self, status: int, message: str) -> None:
        self._send(status, (message.rstrip("\n") + "\n").encode("utf-8"))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            service = self.service
            if service.state == READY:
                self._send(200, b"")
            elif service.state == FAILED:
                self._error(500, f"the model failed to load: {service.error}")
            else:
                self._error(503, "the model is loading")
        elif path == "/execution-parameters":
            megabytes = max(1, self.service.max_payload_bytes // (1024 * 1024))
            body = {
                "MaxConcurrentTransforms": 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": megabytes,
            }
            self._send(200, json.dumps(body).encode(), JSON)
        elif path == "/invocations":
            self._error(405, "use POST for /invocations")
        else:
            self._error(404, f"no such path {path!r}: use GET /ping or POST /invocations")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/invocations":
            self._drain_or_close()
            if path == "/ping":
                self._error(405, "use GET for /ping")
            else:
                self._error(404, f"no such path {path!r}: use GET /ping or POST /invocations")
            return
        body = self._read_body()
        if body is None:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload, content_type = self.service.invoke(
                body, self.headers.get("Content-Type"), self.headers.get("Accept"), headers
            )
        except ServingError as exc:
            self._error(exc.status, exc.message)
            return
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if not isinstance(status, int) or not 400 <= status <= 599:
                status = 500
            message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
            trace = _user_traceback(exc)
            log(f"POST /invocations -> {status}: {type(exc).__name__}: {message}\n{trace}")
            self._error(status, error_body(exc, message, trace, self.service.debug_errors))
            return
        self._send(200, payload, content_type)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._error(411, "send the body with a Content-Length (chunked bodies unsupported)")
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            self._error(411, "the request has no Content-Length")
            return None
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self.close_connection = True
            self._error(400, f"bad Content-Length {raw!r}")
            return None
        limit = self.service.max_payload_bytes
        if length > limit:
            self.close_connection = True  # the body is not read
            self._error(
                413,
                f"the body is {length} bytes, more than the {limit // (1024 * 1024)} MB limit "
                "(SAGEMAKER_MAX_PAYLOAD_IN_MB)",
            )
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _drain_or_close(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= 1024 * 1024:
            self.rfile.read(length)
        else:
            self.close_connection = True


def error_body(exc: BaseException, message: str, trace: str, debug: bool) -> str:
    """What a client sees of a handler's exception: its type and message.

    The traceback names files and lines of the model's code and the server's paths; it goes to
    the container log (the Predict panel shows it) and into the body only with `DEBUG_ENV` set.
    """
    head = f"{type(exc).__name__}: {message}"
    if debug:
        return f"{head}\n\n{trace}"
    return f"{head}\n\n(the traceback is in the container log; {DEBUG_ENV}=1 adds it here)"


def _user_traceback(exc: BaseException) -> str:
    """The traceback without this file's frames: where the user's code failed."""
    here = os.path.abspath(__file__)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(frame.filename) != here
    ]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(exc), exc))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128


def make_server(service: ModelService, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> Server:
    """An HTTP server for `service`, bound (port 0 picks a free one), not yet serving."""
    access = _truthy(os.environ.get("TRAINER_GUI_SERVING_ACCESS_LOG"))
    handler = type("BoundHandler", (RequestHandler,), {"service": service, "access_log": access})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("BoundServer", (Server,), {"address_family": family})
    return server_class((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-style model server (stdlib only)")
    parser.add_argument("--model-dir", default=None, help=f"default {DEFAULT_MODEL_DIR}")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None, help="default SAGEMAKER_BIND_TO_PORT")
    args = parser.parse_args(argv)
    port = (
        args.port
        if args.port is not None
        else int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT)
    )
    service = ModelService.from_environ(args.model_dir)
    # Listen first (SageMaker wants the socket within 250 ms), load while /ping says 503.
    server = make_server(service, args.host, port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: shutting down")
        stop.set()
        if service.state == LOADING:
            raise SystemExit(0)  # interrupts a slow load in the main thread

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log(f"listening on {args.host}:{server.server_address[1]}, loading {service.model_dir}")
    try:
        service.load()
    except Exception:
        log(f"cannot serve: {service.error}\n{traceback.format_exc()}")
        server.shutdown()
        server.server_close()
        return 1
    log(f"ready: GET /ping, POST /invocations on port {server.server_address[1]}")
    while not stop.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
