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

Matching the toolkit + TorchServe (tests/serving/test_reference_*.py run the real toolkit):
handlers with a `context` get TorchServe's context API (`get_request_header(0, ...)` & co.); CSV is
decoded with `np.genfromtxt(dtype=None)`; results are written as TorchServe writes them and
labelled with the Accept; only `BaseInferenceToolkitError` sets a status (`sagemaker_inference`
is stood in for when the image lacks it); chunked bodies are read; `code/requirements.txt` is
pip-installed at start; `SAGEMAKER_MODEL_SERVER_WORKERS` worker processes (spawned, one request
at a time each) and `SAGEMAKER_MODEL_SERVER_TIMEOUT` (a worker over it is replaced).

Where it deliberately differs (docs/serving.md, docs/contract.md): bad requests to the default
handlers get 400/411/413/415/406 with a message that says what is wrong (the toolkit answers 500);
error bodies name the exception's type and message, the traceback goes to the log (and to the
body only with `TRAINER_GUI_SERVING_DEBUG=1`); NPY bodies are loaded with `allow_pickle=False`;
a response over SageMaker's 6 MB is refused here; the default output_fn labels its answer with
the type it wrote and honours Accept q-values. Connections get a thread each (keep-alive), so
/ping and slow clients never queue behind a prediction.
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


_LOG_PREFIX = "[serving] "


def log(message: str) -> None:
    sys.stderr.write(_LOG_PREFIX + message + "\n")
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


def _csv_problem(text: str) -> str | None:
    """What keeps `text` from being a table of numbers (the first bad cell or row), if anything."""
    width = None
    rows = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        for column, cell in enumerate(cells, start=1):
            cell = cell.strip()
            try:
                if cell:
                    float(cell)
            except ValueError:
                return (
                    f"line {number}, column {column}: {cell[:40]!r} is not a number (the default "
                    "input_fn reads numbers only, no header line)"
                )
        if width is not None and len(cells) != width:
            return f"line {number} has {len(cells)} values, the first line has {width}"
        width = len(cells) if width is None else width
        rows += 1
    return None if rows else "the body has no rows"


def _decode_csv(text: str) -> Any:
    """The toolkit's decoder exactly: `np.genfromtxt(StringIO(text), dtype=None, delimiter=",")`.

    dtype=None infers a type per column, so `1,,3,4` reads as integers with the empty cell
    filled (not NaN), and float and integer columns together make a record array that
    `torch.FloatTensor` refuses (a 500 there): here those are 400s that say why.
    """
    import numpy as np

    problem = _csv_problem(text)
    if problem is not None:
        raise ServingError(400, f"text/csv: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.genfromtxt(io.StringIO(text), dtype=None, delimiter=",")
    except (ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())
        raise ServingError(400, f"text/csv: numpy cannot read the rows ({detail})") from None
    if array.dtype.names is not None:
        kinds = ", ".join(f"{name}: {array.dtype[name]}" for name in array.dtype.names[:6])
        raise ServingError(
            400,
            "text/csv: the columns read as different types (" + kinds + "); SageMaker's "
            "default input_fn (np.genfromtxt with dtype=None) fails on this too. Write every "
            "column the same way (e.g. 3.0, not 3), or provide input_fn in code/inference.py",
        )
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number):
        return array
    raise ServingError(400, f"text/csv: expected numbers, got values of type {array.dtype}")


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


# -- `sagemaker_inference` for images without it ------------------------------------------------


class UnsupportedFormatError(Exception):
    """The toolkit's: a content type no decoder/encoder handles (a 500 there, as any error)."""

    def __init__(self, content_type: Any, **kwargs: Any) -> None:
        self._message = (
            f"Content type {content_type} is not supported by this framework.\n\n"
            "Please implement input_fn to to deserialize the request data or an output_fn to\n"
            "serialize the response. For more information, see the SageMaker Python SDK README."
        )
        super().__init__(self._message, **kwargs)


class BaseInferenceToolkitError(Exception):
    """The toolkit's error with an HTTP status: raise it (or a subclass) to answer that status."""

    def __init__(self, status_code: int, message: str, phrase: str) -> None:
        self.status_code = status_code
        self.message = message
        self.phrase = phrase
        super().__init__(status_code, message, phrase)


class GenericInferenceToolkitError(BaseInferenceToolkitError):
    def __init__(self, status_code: int, message: str | None = None, phrase: str | None = None):
        message = message or "Invalid Request"
        super().__init__(status_code, message, phrase or message)


def _toolkit_decode(obj: Any, content_type: str) -> Any:
    """`sagemaker_inference.decoder.decode`: exact content types, numpy arrays out."""
    import numpy as np

    if content_type == JSON:
        return np.array(json.loads(obj))
    if content_type == CSV:
        return np.genfromtxt(io.StringIO(obj), dtype=None, delimiter=",")
    if content_type == NPY:
        return np.load(io.BytesIO(obj), allow_pickle=False)  # the toolkit allows pickles
    raise UnsupportedFormatError(content_type)


def _toolkit_encode(array_like: Any, content_type: str) -> Any:
    """`sagemaker_inference.encoder.encode`: JSON and CSV as str, NPY as bytes."""
    import numpy as np

    if content_type == JSON:
        return json.dumps(array_like, default=lambda o: _Encoder().default(o))
    if content_type == CSV:
        stream = io.StringIO()
        np.savetxt(stream, array_like, delimiter=",", fmt="%s")
        return stream.getvalue()
    if content_type == NPY:
        buffer = io.BytesIO()
        np.save(buffer, array_like)
        return buffer.getvalue()
    raise UnsupportedFormatError(content_type)


def install_toolkit_modules() -> bool:
    """`sagemaker_inference.{errors,content_types,decoder,encoder}` when the image lacks them.

    Handlers written for SageMaker import them (`from sagemaker_inference import errors` to answer
    a status of their choice). The real package wins when it is installed. True if installed here.
    """
    import importlib.util
    import types

    if "sagemaker_inference" in sys.modules:
        return False
    try:
        if importlib.util.find_spec("sagemaker_inference") is not None:
            return False
    except (ImportError, ValueError):
        pass
    package = types.ModuleType("sagemaker_inference")
    package.__path__ = []  # a package: its submodules come from sys.modules
    package.__doc__ = "Stand-in for the SageMaker inference toolkit (trainer-gui serving runtime)."
    members: dict[str, dict[str, Any]] = {
        "errors": {
            "UnsupportedFormatError": UnsupportedFormatError,
            "BaseInferenceToolkitError": BaseInferenceToolkitError,
            "GenericInferenceToolkitError": GenericInferenceToolkitError,
        },
        "content_types": {
            "JSON": JSON,
            "CSV": CSV,
            "OCTET_STREAM": "application/octet-stream",
            "ANY": "*/*",
            "NPY": NPY,
            "NPZ": "application/x-npz",
            "UTF8_TYPES": [JSON, CSV],
        },
        "decoder": {"decode": _toolkit_decode},
        "encoder": {
            "encode": _toolkit_encode,
            "SUPPORTED_CONTENT_TYPES": {JSON, CSV, NPY},
        },
    }
    for name, attributes in members.items():
        module = types.ModuleType(f"sagemaker_inference.{name}")
        module.__dict__.update(attributes)
        sys.modules[module.__name__] = module
        setattr(package, name, module)
    sys.modules["sagemaker_inference"] = package
    return True


# -- the model and its handlers ----------------------------------------------------------------


class RequestProcessor:
    """One request's headers in, status and headers out: TorchServe's `ts.context.RequestProcessor`.

    Header names keep the case the client sent (as in TorchServe); `get_request_property` falls
    back to a case-insensitive match, since HTTP clients differ in the case they send.
    """

    def __init__(self, request_header: dict[str, str]) -> None:
        self._status_code = 200
        self._reason_phrase: str | None = None
        self._response_header: dict[str, str] = {}
        self._request_header = dict(request_header)

    def get_request_property(self, key: str) -> str | None:
        if key in self._request_header:
            return self._request_header[key]
        lowered = key.lower()
        for name, value in self._request_header.items():
            if name.lower() == lowered:
                return value
        return None

    def get_request_properties(self) -> dict[str, str]:
        return self._request_header

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self._status_code = code
        self._reason_phrase = reason_phrase

    def get_response_status_code(self) -> int:
        return self._status_code

    def get_response_status_phrase(self) -> str | None:
        return self._reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        self._response_header[key] = value

    def get_response_headers(self) -> dict[str, str]:
        return self._response_header

    def get_response_header(self, key: str) -> str | None:
        return self._response_header.get(key)


class Context:
    """What a handler with an extra trailing `context` argument receives: TorchServe's API.

    SageMaker handlers read custom attributes with
    `context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")`; `system_properties`,
    `request_processor`, `get_all_request_header`, `set_response_status`, `set_response_header`
    and `get_request_id` work as in `ts.context.Context` (one request per batch). While the model
    loads there is no request: `request_processor` is None, as in TorchServe. Our own shortcuts:
    `request_headers` (lower-case names) and `custom_attributes`.
    """

    def __init__(
        self,
        model_dir: str,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        gpu_id: int | None = 0,
    ) -> None:
        self.model_dir = model_dir
        self.model_name = "model"
        self.manifest: dict[str, Any] = {"model": {"modelName": "model"}}
        self._system_properties: dict[str, Any] = {
            "model_dir": model_dir,
            "gpu_id": gpu_id,
            "batch_size": 1,
            "server_name": "MMS",
            "server_version": SERVER_NAME,
            "limit_max_image_pixels": True,
        }
        self.metrics: Any = None
        self.stopping_criteria: Any = None
        self.model_yaml_config: dict[str, Any] = {}
        self.request_ids: dict[int, str] | None = None
        self._request_processor: list[RequestProcessor] | None = None
        if headers is not None:
            self.request_ids = {0: request_id or ""}
            self._request_processor = [RequestProcessor(headers)]
        self.request_headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.custom_attributes = self.request_headers.get("x-amzn-sagemaker-custom-attributes")

    @property
    def system_properties(self) -> dict[str, Any]:
        return self._system_properties

    @property
    def request_processor(self) -> list[RequestProcessor] | None:
        return self._request_processor

    @request_processor.setter
    def request_processor(self, value: list[RequestProcessor] | None) -> None:
        self._request_processor = value

    def _processor(self, idx: int) -> RequestProcessor:
        if self._request_processor is None:
            raise RuntimeError("there is no request while the model loads")
        return self._request_processor[idx]

    def get_request_id(self, idx: int = 0) -> str | None:
        return None if self.request_ids is None else self.request_ids.get(idx)

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self._processor(idx).get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return self._processor(idx).get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> tuple[int, str | None]:
        processor = self._processor(idx)
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        if self._request_processor is not None:
            self._request_processor[idx].report_status(code, reason_phrase=phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for processor in self._request_processor or []:
            processor.report_status(code, reason_phrase=phrase)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        return self._processor(idx).get_response_headers()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self._processor(idx).add_response_property(key, value)


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


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        log(f"{name}={os.environ.get(name)!r} is not a number: using {default:g}")
        return default
    return value if value > 0 else default


def environ_kwargs(model_dir: str | None = None) -> dict[str, Any]:
    """ModelService's settings from the SageMaker variables (a worker process gets them too)."""
    env = os.environ
    return {
        "model_dir": model_dir or env.get("SAGEMAKER_MODEL_DIR") or DEFAULT_MODEL_DIR,
        "program": env.get("SAGEMAKER_PROGRAM") or None,
        "default_accept": env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None,
        "concurrency": int(_env_number("TRAINER_GUI_SERVING_CONCURRENCY", 1)),
        "max_payload_bytes": int(_env_number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6) * 1024 * 1024),
        "debug_errors": _truthy(env.get(DEBUG_ENV)),
    }


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
        return cls(**environ_kwargs(model_dir))

    # -- loading ---------------------------------------------------------------------------

    def _import_user_module(self) -> Any:
        module_name = self.program[:-3] if self.program.endswith(".py") else self.program
        path = os.path.join(self.code_dir, module_name + ".py")
        if not os.path.isfile(path):
            log(f"no {path}: using the default model_fn, input_fn, predict_fn and output_fn")
            return None
        if self.code_dir not in sys.path:
            sys.path.insert(0, self.code_dir)
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
        install_toolkit_modules()
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
        reply = self._run(body, content_type, accept, headers)
        return reply.body, reply.content_type

    def handle(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request, every outcome as a Reply (what the HTTP side and a worker send back)."""
        try:
            return self._run(body, content_type, accept, headers)
        except ServingError as exc:
            return Reply.text(exc.status, exc.message)
        except Exception as exc:
            status = toolkit_status(exc)
            message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
            trace = _user_traceback(exc)
            log(f"POST /invocations -> {status}: {type(exc).__name__}: {message}\n{trace}")
            return Reply.text(status, error_body(exc, message, trace, self.debug_errors))

    def _run(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str] | None,
    ) -> Reply:
        if self.state != READY:
            raise ServingError(503, f"the model is not loaded ({self.state}) {self.error}".strip())
        # What the toolkit hands the handlers: Accept with */* and blanks defaulted.
        if not accept or media_type(accept) in ("", "*/*"):
            accept = self.default_accept
        if content_type is None and headers:
            content_type = headers.get("Content-Type") or headers.get("content-type")
        context = Context(self.model_dir, headers if headers is not None else {})
        with self._gate:
            if self.transform is not None:
                data: Any = body
                if content_type in UTF8_TYPES:
                    data = _text(body, content_type)
                result = self.transform(context, self.model, data, content_type, accept)
            else:
                result = self._three_step(context, body, content_type, accept)
            payload, label = serialize(result, accept)
        limit = RESPONSE_LIMIT_BYTES
        if len(payload) > limit:
            raise ServingError(
                500,
                f"the response is {len(payload)} bytes, more than the 6 MB SageMaker allows a "
                "real-time endpoint to return (InvokeEndpoint fails there); return less, or use "
                "batch transform or an asynchronous endpoint for large outputs",
            )
        status, _phrase = context.get_response_status(0)
        extra = {
            k: v for k, v in context.get_response_headers(0).items() if k.lower() != "content-type"
        }
        return Reply(status or 200, payload, label, tuple(extra.items()))

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


#: SageMaker real-time endpoints return at most 6 MB (the request limit is separate).
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024


class Reply:
    """An HTTP answer: status, body, content type and extra headers (picklable, for workers)."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    def __reduce__(self) -> tuple[Any, ...]:
        return (Reply, (self.status, self.body, self.content_type, self.headers))

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        return cls(status, (message.rstrip("\n") + "\n").encode("utf-8"), TEXT_PLAIN)


TEXT_PLAIN = "text/plain; charset=utf-8"


def serialize(result: Any, accept: str) -> tuple[bytes, str]:
    """What the toolkit + TorchServe make of a handler's result: (body, content type).

    The toolkit labels the response with the request's Accept (defaulted) unless the handler
    returns a `(body, content_type)` tuple. TorchServe then writes bytes as they are, str as
    UTF-8, a torch.Tensor as `torch.save` bytes, and anything else as `json.dumps(value,
    indent=2)`; what JSON cannot hold (a numpy array, say) is its 503 "Unsupported model output
    data type.".
    """
    content_type = accept
    if isinstance(result, tuple):
        result, content_type = result[0], result[1]
    content_type = str(content_type)
    if isinstance(result, (bytes, bytearray)):
        return bytes(result), content_type
    if isinstance(result, str):
        return result.encode("utf-8"), content_type
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(result, torch.Tensor):
        buffer = io.BytesIO()
        torch.save(result, buffer)
        return buffer.getvalue(), content_type
    try:
        return json.dumps(result, indent=2).encode("utf-8"), content_type
    except TypeError as exc:
        raise ServingError(
            503,
            f"Unsupported model output data type: {type(result).__name__} ({exc}). Return "
            "bytes, str, a (body, content_type) tuple or JSON-serializable values from "
            "output_fn/transform_fn (TorchServe answers 503 to this too)",
        ) from None


def toolkit_status(exc: BaseException) -> int:
    """The status for a handler's exception: the toolkit's own errors carry it, the rest is 500.

    Like the toolkit, only `sagemaker_inference.errors.BaseInferenceToolkitError` and its
    subclasses set the status (from the real package or the stand-in this runtime provides).
    """
    if any(cls.__name__ == "BaseInferenceToolkitError" for cls in type(exc).__mro__):
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 100 <= status <= 599:
            return status
    return 500


# -- worker processes, as TorchServe's ---------------------------------------------------------


class _Worker:
    def __init__(self, index: int, process: Any, conn: Any) -> None:
        self.index = index
        self.process = process
        self.conn = conn


def _worker_main(conn: Any, index: int, kwargs: dict[str, Any]) -> None:
    """One worker process: load the model, then answer requests from the pipe one at a time."""
    global _LOG_PREFIX
    _LOG_PREFIX = f"[serving w{index}] "
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server process decides when to stop
    service = ModelService(**kwargs)
    try:
        service.load()
    except BaseException:
        log(f"cannot load the model: {service.error}\n{traceback.format_exc()}")
        conn.send(("failed", service.error or "the model did not load"))
        return
    conn.send(("ready", ""))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(service.handle(*request))


class WorkerPool:
    """`workers` processes with a copy of the model each, like TorchServe's workers.

    The HTTP threads hand each request to a free worker (waiting for one if all are busy), so
    N slow requests take about N/workers times as long, and handlers that hold the GIL do not
    slow each other. A worker that has not answered within `timeout` seconds
    (SAGEMAKER_MODEL_SERVER_TIMEOUT) is killed and replaced by a fresh one that loads the model
    again, as TorchServe does; the request gets a 500 that says so. Workers are spawned, not
    forked: a fresh interpreter each, so no lock or torch thread pool of this process is copied.
    """

    def __init__(self, kwargs: dict[str, Any], workers: int = 1, timeout: float = 60.0) -> None:
        import multiprocessing
        import queue

        self.kwargs = kwargs
        self.model_dir = kwargs["model_dir"]
        self.max_payload_bytes = int(kwargs.get("max_payload_bytes") or 6 * 1024 * 1024)
        self.debug_errors = bool(kwargs.get("debug_errors"))
        self.workers = max(1, workers)
        self.timeout = timeout
        self.state = LOADING
        self.error = ""
        self.note = ""  # what the load is doing (/ping's 503 body)
        self._mp = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _spawn(self, index: int) -> _Worker:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(
            target=_worker_main,
            args=(child, index, self.kwargs),
            name=f"serving-worker-{index}",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(index, process, parent)
        with self._lock:
            self._all.append(worker)
        return worker

    def _await_loaded(self, worker: _Worker) -> None:
        try:
            kind, message = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(1)
            raise LoadError(
                f"worker {worker.index} died while loading the model (exit code "
                f"{worker.process.exitcode}); its log lines are above"
            ) from None
        if kind != "ready":
            raise LoadError(message)
        self._idle.put(worker)

    def load(self) -> None:
        """Start every worker and wait until each has loaded the model (state READY/FAILED)."""
        self.note = f"loading the model in {self.workers} worker(s)"
        started = [self._spawn(index) for index in range(self.workers)]
        try:
            for worker in started:
                self._await_loaded(worker)
        except BaseException as exc:
            self.state = FAILED
            self.error = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}"
            self.close()
            raise
        self.state = READY

    def handle(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        import queue

        if self.state != READY:
            return Reply.text(503, f"the model is not loaded ({self.state}) {self.error}".strip())
        try:
            worker = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            return Reply.text(
                503,
                f"all {self.workers} worker(s) stayed busy for {self.timeout:g} s; raise "
                "SAGEMAKER_MODEL_SERVER_WORKERS or send fewer requests at once",
            )
        try:
            worker.conn.send((body, content_type, accept, headers))
            if worker.conn.poll(self.timeout):
                reply: Reply = worker.conn.recv()
                self._idle.put(worker)
                return reply
        except (EOFError, OSError):
            worker.process.join(1)
            code = worker.process.exitcode
            log(f"worker {worker.index} died during a request (exit code {code}): restarting it")
            self._replace(worker)
            return Reply.text(
                500,
                f"the worker process died while handling the request (exit code {code}; "
                "137 is often out of memory); a new worker is loading the model",
            )
        log(
            f"worker {worker.index}: no answer within SAGEMAKER_MODEL_SERVER_TIMEOUT="
            f"{self.timeout:g} s: stopping it and starting a new one"
        )
        self._replace(worker)
        return Reply.text(
            500,
            f"the handlers did not answer within {self.timeout:g} s "
            "(SAGEMAKER_MODEL_SERVER_TIMEOUT): the worker was stopped and a new one is loading "
            "the model (TorchServe answers 500 'Worker died.' here; SageMaker's limit is 60 s)",
        )

    def _replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            if self._closed:
                return

        def restart() -> None:
            replacement = self._spawn(worker.index)
            try:
                self._await_loaded(replacement)
            except Exception as exc:
                log(f"worker {worker.index} could not load the model again: {exc}")
                replacement.process.kill()
                with self._lock:
                    if replacement in self._all:
                        self._all.remove(replacement)
                    if not self._all:  # nobody left to answer: /ping says so
                        self.state = FAILED
                        self.error = f"no worker could load the model again: {exc}"

        threading.Thread(target=restart, name=f"restart-{worker.index}", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.process.kill()
        for worker in workers:
            worker.process.join(5)
            worker.conn.close()


# -- code/requirements.txt ---------------------------------------------------------------------


def install_requirements(code_dir: str, on_line: Callable[[str], None] = log) -> None:
    """`pip install -r code/requirements.txt`, as SageMaker's images do before serving.

    pip reads its usual environment variables (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX,
    PIP_TARGET; pass them with --env) for mirrors, wheelhouses and offline installs. Its output
    goes to the log line by line; a failure is a LoadError quoting pip's last lines.
    """
    import subprocess

    path = os.path.join(code_dir, "requirements.txt")
    if not os.path.isfile(path):
        return
    import sysconfig
    import tempfile

    started = time.monotonic()
    on_line(f"installing {path} (pip install -r; SageMaker's images do this at start)")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-r",
        path,
    ]
    target = None
    purelib = sysconfig.get_paths().get("purelib") or ""
    if not os.environ.get("PIP_TARGET") and not os.access(purelib, os.W_OK):
        # Not root (the runtime runs as the user): a folder of our own, ahead on sys.path (a
        # venv's pip refuses --user). Spawned workers inherit sys.path and PYTHONPATH.
        target = os.path.join(tempfile.gettempdir(), "trainer-gui-requirements")
        os.makedirs(target, exist_ok=True)
        command += ["--target", target]
        on_line(f"{purelib} is not writable: installing into {target}")
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=code_dir,
        )
    except OSError as exc:
        raise LoadError(f"cannot run pip to install {path}: {exc}") from exc
    tail: list[str] = []
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            on_line("pip: " + line)
            tail = [*tail, line][-8:]
    code = process.wait()
    if code != 0:
        if any("No module named pip" in line for line in tail):
            hint = "this image has no pip: bake the packages into the image instead"
        else:
            hint = "check the package names and versions, and that the container reaches an "
            hint += "index (or set PIP_FIND_LINKS/PIP_NO_INDEX for a wheelhouse)"
        raise LoadError(
            f"installing code/requirements.txt failed (pip exit code {code}): {hint}. "
            "pip said: " + " | ".join(tail[-4:])
        )
    import importlib as _importlib
    import site

    if target is not None and target not in sys.path:
        sys.path.insert(0, target)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [target, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site) and user_site not in sys.path:
        site.addsitedir(user_site)  # pip fell back to a user install (no write access)
    _importlib.invalidate_caches()
    on_line(f"installed code/requirements.txt in {time.monotonic() - started:.1f}s")


# -- HTTP ------------------------------------------------------------------------------------------


class RequestHandler(BaseHTTPRequestHandler):
    """/ping and /invocations over HTTP/1.1 keep-alive; one write per response, no Nagle."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection's thread ends after this long
    service: ModelService | WorkerPool  # set on a subclass by make_server
    access_log = False

    def log_message(self, format: str, *args: Any) -> None:
        if self.access_log:
            log(f"{self.address_string()} {format % args}")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = TEXT_PLAIN,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Server: {SERVER_NAME}\r\n"
            f"Content-Type: {_header_value(content_type)}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        for name, value in headers:
            name = _header_value(str(name)).replace(":", "")
            if name.lower() not in ("content-length", "transfer-encoding", "connection", ""):
                head += f"{name}: {_header_value(str(value))}\r\n"
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
        headers = dict(self.headers.items())  # names as the client sent them, as in TorchServe
        reply = self.service.handle(
            body, self.headers.get("Content-Type"), self.headers.get("Accept"), headers
        )
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _read_body(self) -> bytes | None:
        limit = self.service.max_payload_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            self._error(411, "the request has no Content-Length (nor chunked Transfer-Encoding)")
            return None
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self.close_connection = True
            self._error(400, f"bad Content-Length {raw!r}")
            return None
        if length > limit:
            self.close_connection = True  # the body is not read
            self._too_large(length, limit)
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _too_large(self, length: int, limit: int) -> None:
        self._error(
            413,
            f"the body is {length} bytes, more than the {limit // (1024 * 1024)} MB limit "
            "(SAGEMAKER_MAX_PAYLOAD_IN_MB)",
        )

    def _read_chunked(self, limit: int) -> bytes | None:
        """A `Transfer-Encoding: chunked` body (what streaming clients send), up to `limit`."""
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                self.close_connection = True
                return None
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
                if chunk < 0:
                    raise ValueError(line)
            except ValueError:
                self.close_connection = True
                self._error(400, f"bad chunk size line {line[:40]!r} in a chunked body")
                return None
            if chunk == 0:
                while self.rfile.readline(8192).strip():  # trailers, then the blank line
                    pass
                return b"".join(parts)
            size += chunk
            if size > limit:
                self.close_connection = True
                self._too_large(size, limit)
                return None
            data = self.rfile.read(chunk)
            self.rfile.readline(8)  # the CRLF after the chunk
            if len(data) != chunk:
                self.close_connection = True
                return None
            parts.append(data)

    def _drain_or_close(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= 1024 * 1024:
            self.rfile.read(length)
        else:
            self.close_connection = True


def _header_value(value: str) -> str:
    """No CR/LF in a header (a handler's value must not add headers of its own)."""
    return value.replace("\r", " ").replace("\n", " ")


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


def make_server(
    service: ModelService | WorkerPool, host: str = "0.0.0.0", port: int = DEFAULT_PORT
) -> Server:
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
    kwargs = environ_kwargs(args.model_dir)
    # Workers: SageMaker's variable; our older TRAINER_GUI_SERVING_CONCURRENCY when it is unset.
    workers = int(
        _env_number("SAGEMAKER_MODEL_SERVER_WORKERS", 0) or kwargs.get("concurrency") or 1
    )
    kwargs["concurrency"] = 1  # one request at a time per worker, as in TorchServe
    pool = WorkerPool(kwargs, workers, _env_number("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60))
    # Listen first (SageMaker wants the socket within 250 ms), load while /ping says 503.
    server = make_server(pool, args.host, port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: shutting down")
        stop.set()
        if pool.state == LOADING:
            raise SystemExit(0)  # interrupts pip or a slow load in the main thread

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log(
        f"listening on {args.host}:{server.server_address[1]}, loading {pool.model_dir} "
        f"({workers} worker(s), timeout {pool.timeout:g} s)"
    )
    try:
        install_requirements(os.path.join(pool.model_dir, "code"))
        pool.load()
    except BaseException as exc:
        if isinstance(exc, LoadError) and pool.state != FAILED:
            pool.state, pool.error = FAILED, str(exc)
        pool.close()
        if not isinstance(exc, SystemExit):
            log(f"cannot serve: {pool.error or exc}")
        server.shutdown()
        server.server_close()
        return 0 if isinstance(exc, SystemExit) else 1
    log(f"ready: GET /ping, POST /invocations on port {server.server_address[1]}")
    while not stop.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
