"""The CNN and its SageMaker PyTorch serving handlers (model_fn, input_fn, predict_fn, output_fn).

train.py imports the network and the image reader from here, so training and serving share one
definition; the model folder gets a copy of this file as code/inference.py.

Requests (Content-Type; parameters such as "; charset=utf-8" are ignored):
  image/x-portable-graymap  a PGM file (P5 or P2), e.g. one from data/test
  image/png, image/jpeg     any picture, when Pillow is installed (made grayscale and resized)
  application/json          one image as rows of pixel values 0..255, a list of images, or
                            {"instances": [...]}
  application/x-npy         an array (H, W) or (N, H, W) of pixel values 0..255
Response (application/json):
  {"predictions": [[p_circle, p_cross, p_square], ...], "classes": [...], "predicted": [...]}
Bad input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
JSON = "application/json"
NPY = "application/x-npy"
PGM = "image/x-portable-graymap"
PICTURES = ("image/png", "image/jpeg")
_size = 16  # the model's image size; model_fn sets it, pictures are resized to it


class SmallCNN(nn.Module):
    """Two conv blocks and a linear layer: enough for simple shapes, fast on a CPU."""

    def __init__(self, n_classes: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(16 * (size // 4) * (size // 4), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def read_pgm(data: bytes) -> np.ndarray:
    """A PGM image (binary P5 or text P2) as float32 in 0..1, shape (height, width)."""
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":  # a comment runs to the end of its line
            while pos < len(data) and data[pos : pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ValueError("not a PGM image: the header ends early")
        tokens.append(data[start:pos])
    magic = tokens[0]
    if magic not in (b"P5", b"P2"):
        raise ValueError(f"not a PGM image: starts with {magic[:8]!r}, expected P5 or P2")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError:
        raise ValueError("not a PGM image: width, height and maxval must be numbers") from None
    if width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise ValueError(f"PGM header out of range: {width}x{height}, maxval {maxval}")
    if magic == b"P2":
        values = np.array(data[pos:].split()[: width * height], dtype=np.float32)
    else:
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
        body = data[pos + 1 : pos + 1 + width * height * dtype.itemsize]
        values = np.frombuffer(body, dtype=dtype).astype(np.float32)
    if values.size != width * height:
        raise ValueError(f"PGM image is truncated: {values.size} of {width * height} pixels")
    return values.reshape(height, width) / float(maxval)


def model_fn(model_dir: str) -> nn.Module:
    """Rebuild the CNN from model_config.json and load model.pth."""
    with open(os.path.join(model_dir, CONFIG_FILE)) as fh:
        config = json.load(fh)
    model = SmallCNN(len(config["classes"]), int(config["size"]))
    state = torch.load(os.path.join(model_dir, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    global _size
    _size = int(config["size"])
    model.classes = list(config["classes"])
    model.size = _size
    return model.eval()


def _picture(body: bytes, size: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("PNG and JPEG requests need Pillow; send a PGM image or JSON") from None
    with Image.open(io.BytesIO(body)) as img:
        small = img.convert("L").resize((size, size))
        return np.asarray(small, dtype=np.float32) / 255.0


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> np.ndarray:
    """Decode a request into images (N, H, W) of 0..1 values; resizing only for pictures."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    if media == PGM:
        return read_pgm(_bytes(request_body))[None]
    if media in PICTURES:
        return _picture(_bytes(request_body), _size)[None]
    if media == JSON:
        text = request_body if isinstance(request_body, str) else request_body.decode("utf-8")
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"application/json: body is not valid JSON ({exc})") from None
        if isinstance(payload, dict):
            payload = payload.get("instances")
        array = np.asarray(payload, dtype=np.float32) / 255.0
    elif media == NPY:
        array = np.load(io.BytesIO(_bytes(request_body)), allow_pickle=False).astype(np.float32)
        array = array / 255.0
    else:
        raise ValueError(f"unsupported content type {content_type!r}; send {PGM}, {JSON} or {NPY}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"expected an image (H, W) or images (N, H, W), got shape {array.shape}")
    return array


def _bytes(body: bytes | str) -> bytes:
    return body.encode("latin-1") if isinstance(body, str) else bytes(body)


def predict_fn(images: np.ndarray, model: nn.Module) -> dict[str, Any]:
    """Class probabilities per image, with the class names."""
    size = int(getattr(model, "size", 16))
    if images.shape[1:] != (size, size):
        height, width = images.shape[1:]
        raise ValueError(f"images must be {size}x{size} pixels, got {width}x{height}")
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(images).unsqueeze(1)), dim=1).numpy()
    classes = list(getattr(model, "classes", range(probs.shape[1])))
    return {
        "predictions": probs.round(6).tolist(),
        "classes": classes,
        "predicted": [classes[i] for i in probs.argmax(axis=1)],
    }


def output_fn(prediction: dict[str, Any], accept: str | None = JSON) -> tuple[str, str]:
    """JSON only: probabilities need their class names beside them."""
    wanted = [a.split(";")[0].strip().lower() for a in (accept or JSON).split(",")]
    if not any(a in (JSON, "*/*", "application/*", "") for a in wanted):
        raise ValueError(f"unsupported accept type {accept!r}; this model answers {JSON}")
    return json.dumps(prediction), JSON
