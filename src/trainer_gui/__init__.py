"""Trainer GUI: train PyTorch models locally, in Docker, or on SageMaker from one job spec."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """`__version__`, read from the installed metadata on first use: importlib.metadata costs
    ~0.1 s at start-up, which every CLI command would pay for a number it rarely prints."""
    if name != "__version__":
        raise AttributeError(f"module 'trainer_gui' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("trainer-gui")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
