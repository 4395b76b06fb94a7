"""What a frozen build must be able to do, checked from inside it.

    TRAINER_GUI_SELFCHECK=1 dist/pyinstaller/trainer-gui/trainer-gui

The entry script runs this instead of the app when that variable is set. It imports every module
of the app and every library the app imports lazily (the imports a missing hidden import would
break only when a user reaches them), creates a client for each AWS service the app uses (the
bundle keeps only those service models), and checks that the version, the resources and the
files other interpreters run (the training driver, the serving runtime) are where the app looks.
No network, no display: runs on every CI runner. Exit code 0 when everything is there.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

# Also listed as AWS_SERVICES in packaging/trainer_gui.spec (tests/packaging checks they match).
AWS_SERVICES = (
    "s3",
    "sagemaker",
    "sagemaker-runtime",
    "logs",
    "sts",
    "iam",
    "sso",
    "sso-oidc",
    "batch",
    "pricing",
)
LAZY_LIBRARIES = (
    "docker",
    "docker.errors",
    "docker.types",
    "docker.models.containers",
    "boto3",
    "botocore",
    "botocore.config",
    "botocore.exceptions",
    "botocore.loaders",
    "botocore.session",
    "pyqtgraph",
    "pyqtgraph.exporters",
    "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets",
    "PySide6.QtSvg",
    "yaml",
    "ruamel.yaml",
    "ruamel.yaml.comments",
    "platformdirs",
    "numpy",
    "psutil",
    "optuna",
    "optuna.distributions",
    "optuna.storages.journal",
    "optuna.trial",
)


def _check(problems: list[str], what: str, ok: object) -> None:
    if not ok:
        problems.append(what)


def run() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    problems: list[str] = []

    import trainer_gui

    _check(
        problems,
        f"version unknown ({trainer_gui.__version__})",
        "unknown" not in trainer_gui.__version__,
    )

    modules = [
        info.name
        for info in pkgutil.walk_packages(trainer_gui.__path__, "trainer_gui.")
        if not info.name.endswith("__main__")
    ]
    _check(problems, "pkgutil found no modules of trainer_gui", len(modules) > 20)
    for name in modules + list(LAZY_LIBRARIES):
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every failure, not only the first
            problems.append(f"import {name}: {exc!r}")

    from trainer_gui.core import contract, paths
    from trainer_gui.core.runners.docker_warm import waiter_path
    from trainer_gui.core.runners.warm import server_path
    from trainer_gui.core.serving.launcher import runtime_path

    for label, path in (
        ("training driver", contract.driver_path()),
        ("serving runtime", runtime_path()),
        ("warm-start server", server_path()),
        ("warm container waiter", waiter_path()),
    ):
        _check(
            problems,
            f"{label} is not a .py file on disk: {path}",
            path.suffix == ".py" and path.is_file(),
        )
    root = paths.resources_root()
    frozen_home = getattr(sys, "_MEIPASS", None)
    if frozen_home is not None:  # where the spec puts them: _internal/trainer_gui/resources
        expected = Path(frozen_home) / "trainer_gui" / "resources"
        _check(problems, f"resources at {root}, not {expected}", root == expected)
    for parts in (
        ("examples", "quickstart", "job.yaml"),
        ("examples", "quickstart", ".gitignore"),  # dotfiles too
        ("images", "train-cpu", "Dockerfile"),
        ("images", "train-gpu", "Dockerfile"),
        ("images", "inference", "Dockerfile"),
        ("icons", "trainer-gui.svg"),
        ("icons", "trainer-gui-256.png"),
        ("aws", "prices.json"),
    ):
        _check(
            problems, f"resource missing: {'/'.join(parts)}", paths.resource_path(*parts).is_file()
        )

    import boto3

    session = boto3.session.Session(
        aws_access_key_id="selfcheck", aws_secret_access_key="selfcheck", region_name="us-east-1"
    )
    for service in AWS_SERVICES:
        try:
            session.client(service)
        except Exception as exc:
            problems.append(f"boto3 client {service}: {exc!r}")

    from PySide6.QtWidgets import QApplication

    from trainer_gui.ui.icons import app_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    _check(problems, "the app icon does not load", not app_icon().isNull())
    svg = app_icon().pixmap(600, 600)  # larger than any PNG: only the SVG icon engine can draw it
    _check(problems, "the SVG icon engine is missing", svg.width() >= 512)
    del app

    for line in problems:
        print(f"selfcheck: FAILED: {line}", file=sys.stderr)
    if not problems:
        print(
            f"selfcheck: ok (trainer-gui {trainer_gui.__version__}, {len(modules)} app modules, "
            f"{len(LAZY_LIBRARIES)} lazy imports, {len(AWS_SERVICES)} AWS services)"
        )
    return 1 if problems else 0
