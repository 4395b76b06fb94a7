#!/usr/bin/env bash
# Build "Trainer GUI.app" and a .dmg on macOS; sign and notarize when the credentials are set.
#
#     packaging/macos/build_dmg.sh              # -> dist/Trainer-GUI-<version>-macos-<arch>.dmg
#
# Needs macOS with Xcode command line tools and `pip install -e '.[package]'`. hdiutil makes
# the image (no create-dmg needed): the app plus an /Applications link to drag it onto.
#
# Signing and notarization hooks (all optional; without them the app is ad-hoc signed, which
# PyInstaller always does on macOS, and Gatekeeper asks users to confirm the first start):
#   MACOS_CODESIGN_IDENTITY   "Developer ID Application: NAME (TEAMID)" in the keychain: PyInstaller
#                             signs every binary and the .app with the hardened runtime and
#                             packaging/macos/entitlements.plist; this script signs the .dmg.
#   MACOS_NOTARY_PROFILE      a `xcrun notarytool store-credentials` keychain profile, or
#   MACOS_NOTARY_KEY, MACOS_NOTARY_KEY_ID, MACOS_NOTARY_ISSUER
#                             an App Store Connect API key (.p8 path, key id, issuer id):
#                             the .dmg is submitted with `notarytool submit --wait`, then
#                             `stapler staple` attaches the ticket so it opens offline.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
say() { printf '[build-macos] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[ "$(uname -s)" = Darwin ] || die "run this on macOS"

version=$("$PYTHON" -c 'from importlib.metadata import version; print(version("trainer-gui"))')
arch=$(uname -m)
app="dist/pyinstaller/Trainer GUI.app"
dmg="dist/Trainer-GUI-$version-macos-$arch.dmg"

say "PyInstaller bundle"
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist/pyinstaller --workpath build/packaging/pyinstaller packaging/trainer_gui.spec
[ -d "$app" ] || die "no $app"
TRAINER_GUI_SELFCHECK=1 "$app/Contents/MacOS/trainer-gui" || die "self-check of the app failed"
[ "$("$app/Contents/MacOS/trainer-gui" --version)" = "trainer-gui $version" ] || die "--version"
codesign --verify --deep --strict "$app" || die "the app's signature does not verify"

say "disk image"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
rm -f "$dmg"
hdiutil create -volname "Trainer GUI $version" -srcfolder "$stage" -fs HFS+ -format UDZO \
    -ov "$dmg" >/dev/null

if [ -n "${MACOS_CODESIGN_IDENTITY:-}" ]; then
    codesign --sign "$MACOS_CODESIGN_IDENTITY" --timestamp "$dmg"
    auth=()
    if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
        auth=(--keychain-profile "$MACOS_NOTARY_PROFILE")
    elif [ -n "${MACOS_NOTARY_KEY:-}" ]; then
        auth=(--key "$MACOS_NOTARY_KEY" --key-id "$MACOS_NOTARY_KEY_ID" --issuer "$MACOS_NOTARY_ISSUER")
    fi
    if [ ${#auth[@]} -gt 0 ]; then
        say "notarizing (waits for Apple's answer)"
        xcrun notarytool submit "$dmg" "${auth[@]}" --wait
        xcrun stapler staple "$dmg"
        spctl --assess --type open --context context:primary-signature --verbose "$dmg"
    else
        say "signed, not notarized (no MACOS_NOTARY_* set)"
    fi
fi
say "wrote $dmg ($(du -h "$dmg" | cut -f1))"
