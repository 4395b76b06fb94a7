#!/usr/bin/env bash
# Build the Linux packages: the PyInstaller one-folder bundle, a portable .tar.gz of it and a .deb.
#
#     packaging/linux/build.sh                 # -> dist/trainer-gui-<version>-linux-<arch>.tar.gz
#                                              #    dist/trainer-gui_<version>_<arch>.deb
#     packaging/linux/build.sh --no-bundle     # reuse dist/pyinstaller/trainer-gui
#
# Needs: the app installed with the `package` extra (pip install -e '.[package]'); for the .deb a
# Debian or Ubuntu machine (dpkg-deb, dpkg -S, readelf); desktop-file-validate is used if present.
# Environment: PYTHON (default .venv/bin/python, else python3), DEB_MAINTAINER, DEB_COMPRESSION
# (gzip or xz; default gzip), SOURCE_DATE_EPOCH (default: the last commit's time).
#
# The .deb installs the bundle in /opt/trainer-gui, links /usr/bin/trainer-gui to it, and adds the
# menu entry and hicolor icons. Every file is owned by the package, so `apt remove` leaves nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DIST=$ROOT/dist
WORK=$ROOT/build/packaging
BUNDLE=$DIST/pyinstaller/trainer-gui
say() { printf '[build-linux] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

build_bundle=1
for arg in "$@"; do
    case $arg in
        --no-bundle) build_bundle=0 ;;
        -h|--help) sed -n '/^set -euo/q; 2,$p' "$0"; exit 0 ;;
        *) die "unknown argument $arg" ;;
    esac
done

version=$("$PYTHON" -c 'from importlib.metadata import version; print(version("trainer-gui"))') \
    || die "trainer-gui is not installed for $PYTHON (pip install -e '.[package]')"
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# -- 1. the bundle --------------------------------------------------------------------------------
if [ "$build_bundle" = 1 ]; then
    "$PYTHON" -c 'import PyInstaller' 2>/dev/null \
        || die "PyInstaller is missing: $PYTHON -m pip install -e '.[package]'"
    say "PyInstaller bundle (a few minutes)"
    start=$(date +%s)
    "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$DIST/pyinstaller" --workpath "$WORK/pyinstaller" packaging/trainer_gui.spec
    say "bundle built in $(( $(date +%s) - start ))s"
fi
[ -x "$BUNDLE/trainer-gui" ] || die "no bundle at $BUNDLE"
bundled_version=$("$BUNDLE/trainer-gui" --version | awk '{print $2}')
[ "$bundled_version" = "$version" ] \
    || die "bundle says $bundled_version, the installed package $version: rebuild it"
say "bundle: $(du -sh "$BUNDLE" | cut -f1), version $version"

tar_opts=(--sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH")

# -- 2. portable .tar.gz ----------------------------------------------------------------------------
tarball=$DIST/trainer-gui-$version-linux-$(uname -m).tar.gz
tar "${tar_opts[@]}" -C "$DIST/pyinstaller" \
    --transform "s,^trainer-gui,trainer-gui-$version," -cf - trainer-gui | gzip -n > "$tarball"
say "wrote $tarball ($(du -h "$tarball" | cut -f1))"

# -- 3. .deb ----------------------------------------------------------------------------------------
command -v dpkg-deb >/dev/null || { say "no dpkg-deb: skipping the .deb"; exit 0; }
# PEP 440 -> Debian: pre-releases and dev builds sort before the release (0.2.0rc1 -> 0.2.0~rc1).
deb_version=$(printf '%s' "$version" | sed -E 's/^([0-9.]+)[.-]?((a|b|rc|dev)[0-9]*)/\1~\2/; s/\+/+local./')
stage=$WORK/deb
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
    "$stage/usr/share/doc/trainer-gui"
cp -a "$BUNDLE" "$stage/opt/trainer-gui"
# Plain files 0644 (resources keep whatever mode the checkout gave them otherwise), the one
# program 0755; shared libraries need no execute bit.
find "$stage/opt/trainer-gui" -type f -exec chmod 644 {} +
chmod 755 "$stage/opt/trainer-gui/trainer-gui"
ln -s /opt/trainer-gui/trainer-gui "$stage/usr/bin/trainer-gui"
install -m 644 packaging/linux/trainer-gui.desktop "$stage/usr/share/applications/"
for png in src/trainer_gui/resources/icons/trainer-gui-*.png; do
    size=${png##*-}; size=${size%.png}
    install -D -m 644 "$png" "$stage/usr/share/icons/hicolor/${size}x${size}/apps/trainer-gui.png"
done
install -D -m 644 src/trainer_gui/resources/icons/trainer-gui.svg \
    "$stage/usr/share/icons/hicolor/scalable/apps/trainer-gui.svg"
install -m 644 packaging/linux/deb/copyright "$stage/usr/share/doc/trainer-gui/copyright"
install -m 755 packaging/linux/deb/prerm "$stage/DEBIAN/prerm"
find "$stage" -type d -exec chmod 755 {} +
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$stage/usr/share/applications/trainer-gui.desktop"
fi

# Runtime libraries the bundle takes from the system: PyInstaller leaves out libc and the GL/EGL
# drivers (and libxcb, which they share); everything else is bundled. Find what the bundled ELF
# files need and nothing in the bundle provides, and name the packages that own it here. The
# Wayland plugins are left out of the scan: their libwayland-* come with any Wayland session.
# fontconfig-config brings /etc/fonts and a font for the bundled libfontconfig.
mapfile -t elves < <(find "$stage/opt/trainer-gui" -type f \( -name '*.so*' -o -name trainer-gui \) \
    ! -ipath '*wayland*' ! -name 'libQt6Wl*')
needed=$(for f in "${elves[@]}"; do readelf -d "$f" 2>/dev/null; done \
    | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u)
bundled=$(find "$stage/opt/trainer-gui" -name '*.so*' -printf '%f\n' | sort -u)
# The library cache read once into a file: `ldconfig -p | awk '... exit'` stopped reading at the
# first match, and under pipefail ldconfig's SIGPIPE (exit 141) failed the build at random.
ldcache=$WORK/ldconfig.txt
ldconfig -p > "$ldcache"
packages=()
for lib in $(comm -23 <(printf '%s\n' "$needed") <(printf '%s\n' "$bundled")); do
    path=$(awk -v l="$lib" '$1 == l { print $NF; exit }' "$ldcache")
    [ -n "$path" ] || die "$lib is needed by the bundle but not installed here"
    owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null \
        || dpkg -S "/usr$path" 2>/dev/null || true)
    owner=${owner%%:*}
    [ -n "$owner" ] || die "no package owns $path ($lib)"
    packages+=("$owner")
done
glibc=$(for f in "${elves[@]}"; do readelf -V "$f" 2>/dev/null; done \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends="libc6 (>= $glibc)"
for pkg in $(printf '%s\n' "${packages[@]}" fontconfig-config | sort -u); do
    [ "$pkg" = libc6 ] || depends="$depends, $pkg"
done
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$deb_version|" -e "s|@ARCH@|$arch|" -e "s|@DEPENDS@|$depends|" \
    -e "s|@INSTALLED_SIZE@|$installed_kb|" \
    -e "s|@MAINTAINER@|${DEB_MAINTAINER:-Trainer GUI maintainers <trainer-gui@users.noreply.github.com>}|" \
    -e '/^#/d' \
    packaging/linux/deb/control.in > "$stage/DEBIAN/control"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb=$DIST/trainer-gui_${deb_version}_${arch}.deb
# gzip by default: ~10x faster than xz on 2 cores (25 s vs 4-5 min here) for a 78 MB instead of
# a 55 MB file; the release workflow sets DEB_COMPRESSION=xz. (zstd would be fast and small, but
# Debian's policy and lintian accept only gzip and xz members.)
compression=${DEB_COMPRESSION:-gzip}
dpkg-deb --root-owner-group "-Z$compression" -z6 --build "$stage" "$deb" >/dev/null
say "wrote $deb ($(du -h "$deb" | cut -f1))"
say "Depends: $depends"
