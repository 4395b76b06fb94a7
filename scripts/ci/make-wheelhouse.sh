#!/usr/bin/env bash
# Fill a wheelhouse with torch (CPU build) + numpy and everything they need, as wheels for
# CPython 3.11 on manylinux x86_64, so that container images can install them with
# `pip install --no-index --find-links ...` (a pip inside a container cannot verify the package
# mirror's certificate on CI machines, and no registry of images is reachable).
#
# Usage: scripts/ci/make-wheelhouse.sh [WHEELHOUSE_DIR]      (default: .build/wheelhouse)
# Environment:
#   TORCH_SPEC   default torch==2.13.0 (the CPU wheel that lies in /opt/wheels on CI machines)
#   NUMPY_SPEC   default numpy
#   PYTHON       interpreter whose pip downloads (default: python3)
# Idempotent: wheels already in the folder are not downloaded again, and a stamp file skips the
# whole step when the requirement list has not changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/.build/wheelhouse}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
numpy_spec=${NUMPY_SPEC:-numpy}
python=${PYTHON:-python3}
say() { printf '[make-wheelhouse] %s\n' "$*" >&2; }

mkdir -p "$out"
stamp="$out/.requirements"
want="$torch_spec $numpy_spec cp311-manylinux_x86_64"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && compgen -G "$out/torch-*.whl" >/dev/null && compgen -G "$out/numpy-*.whl" >/dev/null; then
    say "up to date: $out ($(du -sh "$out" | cut -f1))"
    exit 0
fi

# Wheels only, for the interpreter in the images (CPython 3.11, glibc >= 2.28 on Debian bookworm
# and python:3.11-slim), whatever Python runs this script. /opt/wheels is pip's find-links on CI
# machines and holds the CPU build of torch; elsewhere set TORCH_SPEC / PIP_FIND_LINKS yourself.
find_links=()
if [ -d /opt/wheels ]; then find_links=(--find-links /opt/wheels); fi
say "downloading $torch_spec $numpy_spec into $out"
"$python" -m pip download --disable-pip-version-check --quiet \
    --dest "$out" --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform linux_x86_64 \
    "${find_links[@]}" \
    "$torch_spec" "$numpy_spec"

torch_wheels=("$out"/torch-*.whl)
torch_whl=${torch_wheels[0]}
[ -f "$torch_whl" ] || { say "ERROR: no torch wheel in $out"; exit 1; }
case "$torch_whl" in
    *+cpu*) ;;
    *) say "WARNING: $(basename "$torch_whl") is not a +cpu build: the image will be large" ;;
esac
echo "$want" >"$stamp"
say "done: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1)"
