"""The layering rules from docs/architecture.md, checked mechanically."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trainer_gui"
FORBIDDEN_IN_CORE = ("PySide6", "shiboken6", "pyqtgraph", "trainer_gui.ui", "trainer_gui.cli")
FORBIDDEN_IN_SERVICES = FORBIDDEN_IN_CORE
LAZY_ONLY = ("boto3", "botocore", "docker", "pyqtgraph", "torch", "optuna", "pyarrow", "pynvml")


def _imports(path: Path, top_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    offenders = []
    for path in (SRC / package).rglob("*.py"):
        for name in _imports(path, top_level_only=False):
            if name.startswith(forbidden):
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    return offenders


def test_core_never_imports_qt_the_ui_or_the_cli() -> None:
    assert _offenders("core", FORBIDDEN_IN_CORE) == []


def test_services_never_import_qt_the_ui_or_the_cli() -> None:
    """The application layer runs in the job host process, which has no Qt."""
    assert _offenders("services", FORBIDDEN_IN_SERVICES) == []


def test_services_import_no_qt_when_loaded_in_a_fresh_interpreter() -> None:
    """What the job host imports (indirect imports too) pulls in no Qt."""
    code = (
        "import sys, trainer_gui.services.job_host, trainer_gui.services.api;"
        " print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6',"
        " 'pyqtgraph', 'trainer_gui.ui', 'trainer_gui.cli'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_heavy_libraries_are_imported_lazily() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "resources"):
            continue  # the example project's own code, not the app's
        for name in _imports(path, top_level_only=True):
            if name.split(".")[0] in LAZY_ONLY:
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert offenders == []


def test_the_driver_uses_only_the_standard_library() -> None:
    driver = SRC / "core" / "contract" / "toolkit.py"
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party = [n for n in _imports(driver, False) if n.split(".")[0] not in stdlib]
    assert third_party == []


def test_import_linter_contract_is_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("import-linter is not installed; install the test extras")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=SRC.parents[1], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
