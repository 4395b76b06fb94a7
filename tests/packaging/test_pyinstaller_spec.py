"""The PyInstaller spec stays in step with the source, without running PyInstaller.

A missing hidden import, a trimmed AWS service model or a resource left out breaks the installed
app only when a user reaches that feature; these checks catch it at test time. The frozen build
itself is checked by `make package-check` (packaging/selfcheck.py inside the bundle).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging_helpers import (
    PACKAGING,
    ROOT,
    SPEC,
    SRC,
    aws_services_in_source,
    function_level_imports,
    spec_collection_modes,
    spec_strings,
    spec_tree,
    third_party,
)

# Imported lazily but deliberately not bundled: jobs bring their own torch; the Windows-only
# branches of the data-folder lock; Qt modules that PySide6's hooks collect on their own.
# torch runs in the user's interpreter; pynvml (GPU readings) and pyarrow (Parquet export) are
# optional, and the app says what to install when they are missing.
RESOURCES = SRC / "resources"
NOT_BUNDLED = {"torch", "msvcrt", "pynvml", "pyarrow"}
COLLECTED_BY_HOOKS = ("PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "PySide6")


def _load_selfcheck():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("selfcheck", PACKAGING / "selfcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_spec_is_valid_python() -> None:
    spec_tree()  # raises SyntaxError otherwise


def test_lazy_third_party_imports_are_declared_hidden_imports() -> None:
    hidden = set(spec_strings("hiddenimports"))
    excludes = set(spec_strings("excludes"))
    missing = []
    for name, files in sorted(function_level_imports().items()):
        if not third_party(name) or name.split(".")[0] in NOT_BUNDLED:
            continue
        if name in COLLECTED_BY_HOOKS or name.startswith("PySide6.QtCore"):
            continue
        if name in excludes:
            missing.append(f"{name} is imported lazily ({', '.join(sorted(files))}) but excluded")
        elif name not in hidden and name.split(".")[0] not in hidden:
            missing.append(f"{name} ({', '.join(sorted(files))})")
    assert missing == [], "add to hiddenimports in packaging/trainer_gui.spec"


def test_the_frozen_selfcheck_imports_what_the_spec_declares() -> None:
    third = {n for n in spec_strings("hiddenimports") if third_party(n)}
    assert third <= set(_load_selfcheck().LAZY_LIBRARIES)


def test_no_module_the_app_uses_is_excluded() -> None:
    excludes = set(spec_strings("excludes"))
    used = {n for n in function_level_imports() if third_party(n)}
    for path in SRC.rglob("*.py"):
        if RESOURCES in path.parents:  # templates' and examples' code runs in the user's Python
            continue
        used.update(re.findall(r"^(?:from|import) ([A-Za-z_][\w.]*)", path.read_text(), re.M))
    clashes = sorted(
        name
        for name in used
        if third_party(name)
        and name.split(".")[0] not in NOT_BUNDLED
        and any(name == ex or name.startswith(ex + ".") for ex in excludes)
    )
    assert clashes == []
    assert "torch" in excludes, "torch must never be followed into the bundle"
    assert not any(ex.startswith("trainer_gui") for ex in excludes)


def test_qt_modules_the_app_imports_are_not_trimmed() -> None:
    used = set()
    for path in [*SRC.rglob("*.py"), ROOT / "scripts" / "make_icons.py"]:
        used.update(re.findall(r"PySide6\.(Qt\w+)", path.read_text()))
    trimmed = set(spec_strings("QT_UNUSED"))
    assert used, "found no Qt imports: the pattern is wrong"
    assert used.isdisjoint(trimmed)
    # The big ones stay out.
    assert {"QtWebEngineCore", "Qt3DCore", "QtQuick", "QtQml", "QtMultimedia"} <= trimmed


def test_every_aws_service_the_app_calls_keeps_its_model() -> None:
    spec_services = set(spec_strings("AWS_SERVICES"))
    used = aws_services_in_source()
    assert used, "found no boto3 clients: the pattern is wrong"
    assert used <= spec_services, "add them to AWS_SERVICES in packaging/trainer_gui.spec"
    assert spec_services == set(_load_selfcheck().AWS_SERVICES)


def test_files_other_interpreters_run_are_collected_as_source() -> None:
    modes = spec_collection_modes()
    for module in ("trainer_gui.core.contract.toolkit", "trainer_gui.core.serving.runtime"):
        assert "py" in modes.get(module, "").split("+"), module
        assert (ROOT / "src" / Path(*module.split("."))).with_suffix(".py").is_file()
    # Whatever else the app mounts or copies by its own __file__ must be in that list too,
    # and so must a module of the app named as a file ("warm_server.py" beside __file__).
    ours = [p for p in SRC.rglob("*.py") if (SRC / "resources") not in p.parents]
    modules = {p.stem for p in ours} - {"__init__", "main"}  # "main.py": an entry point's name
    named = set()
    for path in ours:
        text = path.read_text()
        for name in re.findall(r"Path\((\w+)\.__file__\)", text):
            assert any(m.endswith("." + name) for m in modes), f"{path.name}: {name}.__file__"
        for name in set(re.findall(r"[\"'](\w+)\.py[\"']", text)) & modules:
            named.add(name)
            assert any(m.endswith("." + name) for m in modes), f'{path.name}: "{name}.py"'
    assert {"toolkit", "warm_server", "warm_waiter"} <= named  # the pattern finds them


def _tracked_resources() -> list[str]:
    """Git-tracked files of the package's resources, relative to src/ (trainer_gui/resources/...)."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--", "src/trainer_gui/resources"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    files = [name.removeprefix("src/") for name in done.stdout.split("\0") if name]
    assert files, "git tracks no file under src/trainer_gui/resources"
    return files


def _spec_datas() -> list[tuple[str, str]]:
    """The spec's resource `datas`, computed by the spec's own code (no PyInstaller needed)."""
    wanted = {"RESOURCES", "IGNORED_PARTS", "IGNORED_SUFFIXES", "resource_files", "datas"}
    body = []
    for node in spec_tree().body:
        names = {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
        if getattr(node, "name", None) in wanted or names & wanted:
            body.append(node)
            if "datas" in names:
                break
    namespace: dict[str, object] = {"ROOT": ROOT, "Path": Path, "subprocess": subprocess}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(SPEC), "exec"), namespace)
    datas = namespace["datas"]
    assert isinstance(datas, list)
    return datas


def test_the_bundle_holds_every_tracked_resource_where_the_package_looks() -> None:
    """The spec puts src/trainer_gui/resources/a/b at _internal/trainer_gui/resources/a/b, and
    resources_root() is the `resources` folder next to the package's modules (as in a wheel)."""
    from trainer_gui.core import paths

    bundled = sorted((Path(dest) / Path(source).name).as_posix() for source, dest in _spec_datas())
    assert bundled == sorted(_tracked_resources())
    package = Path(paths.__file__).resolve().parents[1]
    assert paths.resources_root() == package / "resources"
    assert all(name.startswith("trainer_gui/resources/") for name in bundled)


def test_every_resource_the_source_names_is_tracked() -> None:
    """resource_path("a", "b") literals point at git-tracked files (the spec bundles those)."""
    tracked_set = {Path(p) for p in _tracked_resources()}
    tracked_dirs = {parent for p in tracked_set for parent in p.parents}
    pattern = re.compile(r"resource_path\(((?:\s*\"[^\"]+\",?)+)\s*\)")
    named = []
    for path in SRC.rglob("*.py"):
        for args in pattern.findall(path.read_text()):
            parts = re.findall(r"\"([^\"]+)\"", args)
            named.append(Path("trainer_gui", "resources", *parts))
    assert named, "found no resource_path() calls: the pattern is wrong"
    for target in named:
        assert target in tracked_set or target in tracked_dirs, target


def test_the_entry_script_runs_the_cli_main() -> None:
    text = (PACKAGING / "entry.py").read_text()
    assert "from trainer_gui.cli.main import main" in text
    assert "TRAINER_GUI_SELFCHECK" in text
    assert "TRAINER_GUI_SMOKE" in text


def test_selfcheck_passes_from_source() -> None:
    """The check the frozen app runs also passes in the source tree (so a failure is the build's)."""
    done = subprocess.run(
        [sys.executable, "-c", "import selfcheck; raise SystemExit(selfcheck.run())"],
        cwd=PACKAGING,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "selfcheck: ok" in done.stdout


def test_windows_and_macos_executable_names_match_the_recipes() -> None:
    spec_text = SPEC.read_text()
    iss = (PACKAGING / "windows" / "trainer-gui.iss").read_text()
    assert 'APP_NAME = "Trainer GUI"' in spec_text and 'EXE_NAME = "trainer-gui"' in spec_text
    assert '#define GuiExe "Trainer GUI.exe"' in iss
    assert '#define CliExe "trainer-gui.exe"' in iss
    assert r'dist\pyinstaller\trainer-gui"' in iss
    assert 'name=f"{APP_NAME}.app"' in spec_text
    assert (
        'app="dist/pyinstaller/Trainer GUI.app"'
        in (PACKAGING / "macos" / "build_dmg.sh").read_text()
    )
