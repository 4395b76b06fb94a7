"""Trainer GUI: train PyTorch models locally, in Docker, or on SageMaker from one job spec."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trainer-gui")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
