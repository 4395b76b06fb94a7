#!/usr/bin/env bash
# Build the local base image trainer-gui/base:bookworm from Debian packages, for machines that
# cannot pull images (CI): debootstrap --variant=minbase + python3 (3.11, matching the cp311 torch
# wheel) + python3-venv + ca-certificates + procps, then `docker import`.
#
# Usage: scripts/ci/make-base-image.sh [TAG]            (default: trainer-gui/base:bookworm)
# Environment:
#   TRAINER_CI_CACHE  cache folder (default ~/.cache/trainer-gui-ci): downloaded .debs and the
#                     finished root file system tarball are kept there, so a machine whose Docker
#                     data was wiped re-imports in seconds
#   DEBIAN_MIRROR     Debian mirror URL (default: the host's own apt source for bookworm, else
#                     debootstrap's default)
#   FORCE=1           rebuild even if the image exists
# Idempotent: does nothing when the image already exists.
set -euo pipefail

tag=${1:-trainer-gui/base:bookworm}
suite=bookworm
cache=${TRAINER_CI_CACHE:-$HOME/.cache/trainer-gui-ci}
tarball="$cache/base-$suite-rootfs.tar"
say() { printf '[make-base-image] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

docker info >/dev/null 2>&1 || die "Docker is not running: run scripts/ci/provision-docker.sh first"
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag already exists ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
    exit 0
fi

import_tarball() {
    say "importing $tarball as $tag"
    docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'CMD ["/bin/bash"]' \
        -c 'LABEL org.opencontainers.image.title=trainer-gui-base' \
        -c "LABEL org.opencontainers.image.description=\"Debian $suite minbase + python3\"" \
        "$tarball" "$tag" >/dev/null
}

if [ "${FORCE:-0}" != 1 ] && [ -s "$tarball" ]; then
    import_tarball
    say "done (from cached root file system)"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap with apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        debootstrap >/dev/null
fi

# The host's own bookworm mirror, if it has one (a deb822 .sources file or a one-line list).
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u ~ /debian\/?$/ {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list || true)
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/tg-rootfs.XXXXXX")
trap '$SUDO rm -rf "$root"' EXIT
mkdir -p "$cache/debootstrap-debs"
say "debootstrap --variant=minbase $suite ${mirror:-<debootstrap default mirror>}"
$SUDO debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates,procps \
    --cache-dir="$cache/debootstrap-debs" \
    "$suite" "$root" ${mirror:+"$mirror"} >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }

# Keep it small-ish: package caches, docs, man pages and foreign locales are not needed to run
# training scripts. The apt sources stay so that users can apt-get inside derived images.
$SUDO rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/log/apt/*
# shellcheck disable=SC2086  # $SUDO is empty or "sudo -n"
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' \
    -exec $SUDO rm -rf {} + 2>/dev/null || true
# A container's resolv.conf and hostname are provided by Docker at run time.
$SUDO rm -f "$root/etc/hostname"
: | $SUDO tee "$root/etc/resolv.conf" >/dev/null

$SUDO tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
import_tarball
say "done: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
