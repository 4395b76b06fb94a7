"""The Linux recipe: desktop entry, .deb control data and maintainer script, build scripts."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess

import pytest
from packaging_helpers import PACKAGING, ROOT

LINUX = PACKAGING / "linux"
DESKTOP = LINUX / "trainer-gui.desktop"
SCRIPTS = [
    LINUX / "build.sh",
    LINUX / "deb" / "prerm",
    ROOT / "scripts" / "package_check.sh",
    PACKAGING / "macos" / "build_dmg.sh",
]


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(DESKTOP, encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Trainer GUI"
    assert entry["Categories"] == "Science;ArtificialIntelligence;"  # one main category
    assert entry["Icon"] == "trainer-gui"  # the hicolor name the .deb installs
    assert entry["Exec"].split()[0] == "trainer-gui"  # /usr/bin/trainer-gui
    assert entry["TryExec"] == "trainer-gui"
    assert entry["Terminal"] == "false"


def test_desktop_entry_validates() -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    done = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True, check=False)
    errors = [line for line in done.stdout.splitlines() if "error:" in line]
    assert done.returncode == 0 and errors == [], done.stdout


def test_wm_class_matches_the_desktop_file_name() -> None:
    """Docks group the window under the entry by StartupWMClass / the Wayland app id."""
    app_py = (ROOT / "src" / "trainer_gui" / "ui" / "app.py").read_text()
    assert 'setDesktopFileName("trainer-gui")' in app_py
    assert _desktop_entry()["StartupWMClass"] == "trainer-gui"


def test_deb_control_template() -> None:
    text = (LINUX / "deb" / "control.in").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", "\n".join(lines), re.M))
    for key in (
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Description",
    ):
        assert key in fields, key
    assert fields["Package"] == "trainer-gui"
    assert fields["Version"] == "@VERSION@"
    assert fields["Recommends"] == "python3"  # host-process jobs run with python3 from PATH


def test_deb_installs_app_link_menu_entry_and_icons() -> None:
    build = (LINUX / "build.sh").read_text()
    assert 'ln -s /opt/trainer-gui/trainer-gui "$stage/usr/bin/trainer-gui"' in build
    assert "usr/share/applications" in build
    assert "usr/share/icons/hicolor/${size}x${size}/apps/trainer-gui.png" in build
    assert "usr/share/icons/hicolor/scalable/apps/trainer-gui.svg" in build
    assert "usr/share/doc/trainer-gui/copyright" in build
    assert (LINUX / "deb" / "copyright").is_file()


def test_prerm_is_executable_and_only_removes_caches() -> None:
    prerm = LINUX / "deb" / "prerm"
    assert os.access(prerm, os.X_OK)
    text = prerm.read_text()
    assert text.startswith("#!/bin/sh")
    rm_lines = [line for line in text.splitlines() if "rm -" in line]
    assert rm_lines and all(
        "__pycache__" in line and "/opt/trainer-gui" in line for line in rm_lines
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(script: os.PathLike[str]) -> None:
    shell = "sh" if str(script).endswith("prerm") else "bash"
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert os.access(script, os.X_OK)


def test_package_check_is_a_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^package-check:", makefile, re.M)
    assert "scripts/package_check.sh" in makefile
