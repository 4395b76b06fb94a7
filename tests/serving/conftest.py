"""Fixtures for the serving tests (no Docker): trained models to serve in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import torchscript_model, train_quickstart


@pytest.fixture(scope="session")
def quickstart_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project's model folder (model.pth, model_config.json, code/), trained for real."""
    pytest.importorskip("torch")
    return train_quickstart(tmp_path_factory.mktemp("quickstart"))


@pytest.fixture(scope="session")
def script_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one TorchScript model.pt and no code/: the default handlers serve it."""
    pytest.importorskip("torch")
    return torchscript_model(tmp_path_factory.mktemp("torchscript"))
