"""The Windows and macOS recipes and the release workflow: consistent with each other and the
tree. They run only on their own CI runners; here they are read, not executed."""

from __future__ import annotations

import plistlib
import re

import yaml
from packaging_helpers import PACKAGING, ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def test_inno_setup_script() -> None:
    iss = (PACKAGING / "windows" / "trainer-gui.iss").read_text()
    assert re.search(
        r"^AppId=\{\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$", iss, re.M
    )
    assert "ArchitecturesInstallIn64BitMode=x64compatible" in iss
    assert "SetupIconFile=..\\icons\\trainer-gui.ico" in iss
    assert (PACKAGING / "icons" / "trainer-gui.ico").is_file()
    assert "Flags: ignoreversion recursesubdirs createallsubdirs" in iss
    assert "{autoprograms}" in iss


def test_info_plist_template() -> None:
    with open(PACKAGING / "macos" / "Info.plist", "rb") as fh:
        info = plistlib.load(fh)
    assert info["CFBundleName"] == "Trainer GUI"
    assert info["NSHighResolutionCapable"] is True
    assert "/opt/homebrew/bin" in info["LSEnvironment"]["PATH"]  # python3 for host jobs
    # PyInstaller's BUNDLE owns these; the template must not fight it.
    assert not {"CFBundleExecutable", "CFBundleIdentifier", "CFBundleIconFile"} & set(info)


def test_entitlements_are_minimal() -> None:
    with open(PACKAGING / "macos" / "entitlements.plist", "rb") as fh:
        entitlements = plistlib.load(fh)
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


def test_dmg_script_hooks_signing_and_notarization() -> None:
    text = (PACKAGING / "macos" / "build_dmg.sh").read_text()
    for needle in (
        "MACOS_CODESIGN_IDENTITY",
        "xcrun notarytool submit",
        "--wait",
        "xcrun stapler staple",
        "hdiutil create",
        "TRAINER_GUI_SELFCHECK=1",
    ):
        assert needle in text, needle


def test_release_workflow_builds_each_platform_on_its_runner() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert jobs["linux"]["runs-on"].startswith("ubuntu")
    assert jobs["windows"]["runs-on"].startswith("windows")
    assert jobs["macos"]["runs-on"].startswith("macos")
    assert set(jobs["publish"]["needs"]) == {"linux", "windows", "macos"}
    text = WORKFLOW.read_text()
    for path in (
        "packaging/linux/build.sh",
        "scripts/package_check.sh",
        "packaging/trainer_gui.spec",
        "packaging\\windows\\trainer-gui.iss",
        "packaging/macos/build_dmg.sh",
    ):
        assert path in text, path
        assert (ROOT / path.replace("\\", "/")).is_file(), path
    assert "TRAINER_GUI_SELFCHECK" in text  # the Windows bundle checks itself too
    # `on:` parses as True in YAML 1.1
    triggers = workflow.get("on", workflow.get(True))
    assert "tags" in triggers["push"]
