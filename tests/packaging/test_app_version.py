"""One version string: pyproject.toml -> package metadata -> `__version__`, `--version`, About and
every installer (which take it from the metadata at build time and never spell it out)."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from packaging_helpers import PACKAGING, ROOT

import trainer_gui
from trainer_gui.cli.main import main


def _pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match, "no static version in pyproject.toml"
    return match.group(1)


def test_package_version_is_pyprojects() -> None:
    assert trainer_gui.__version__ == version("trainer-gui") == _pyproject_version()


def test_cli_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"trainer-gui {trainer_gui.__version__}"


def test_no_recipe_hardcodes_the_version() -> None:
    current = _pyproject_version()
    recipes = [
        p for p in PACKAGING.rglob("*") if p.is_file() and p.suffix not in {".ico", ".icns", ".pyc"}
    ]
    recipes.append(ROOT / ".github" / "workflows" / "release.yml")
    offenders = [
        str(p.relative_to(ROOT)) for p in recipes if current in p.read_text(errors="replace")
    ]
    assert offenders == []


def test_recipes_read_the_version_from_the_package() -> None:
    spec = (PACKAGING / "trainer_gui.spec").read_text()
    assert 'VERSION = version("trainer-gui")' in spec
    assert 'info_plist["CFBundleShortVersionString"] = VERSION' in spec
    assert "copy_metadata" in spec  # so importlib.metadata works frozen
    build = (PACKAGING / "linux" / "build.sh").read_text()
    assert (
        'version("trainer-gui")' in build
        and "@VERSION@" in (PACKAGING / "linux" / "deb" / "control.in").read_text()
    )
    iss = (PACKAGING / "windows" / "trainer-gui.iss").read_text()
    assert "#ifndef AppVersion" in iss and "#error" in iss and "AppVersion={#AppVersion}" in iss
    assert 'version("trainer-gui")' in (PACKAGING / "macos" / "build_dmg.sh").read_text()
