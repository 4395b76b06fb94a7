"""The preflight probe's default limits, in a module of their own: the CLI's parser shows them
in `--help` without importing the spec models (pydantic) that `core.preflight` needs."""

from __future__ import annotations

#: Defaults: enough data for a first batch and a first metric, small enough to copy in seconds.
DEFAULT_MAX_FILES = 20
DEFAULT_MAX_MB = 50.0
DEFAULT_TIME_LIMIT = 120.0
