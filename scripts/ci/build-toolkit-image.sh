#!/usr/bin/env bash
# trainer-gui/toolkit-test:latest: a TEST image for launch mode (a), i.e. an image that carries
# the real SageMaker training toolkit (`sagemaker-training` + `sagemaker-pytorch-training` from
# PyPI) wired like the PyTorch training DLC. Built FROM trainer-gui/train-cpu:latest, offline:
#   1. on the host, `pip wheel` the two toolkits and every dependency into a wheelhouse
#      (.build/toolkit-wheelhouse). sagemaker-training is an sdist with a C extension
#      (gethostname), compiled here by the host's gcc for CPython 3.11; the host must be
#      glibc-compatible with the image (both Debian bookworm on CI), and its python 3.11;
#   2. `docker build` tests/docker/images/toolkit with that wheelhouse as wheels/ (pip --no-index).
#
# Usage: scripts/ci/build-toolkit-image.sh            (then: pytest tests/docker/test_launch_modes.py)
# Environment:
#   PYTHON           host interpreter, CPython 3.11 (default .venv/bin/python)
#   TOOLKIT_IMAGE    tag to build (default trainer-gui/toolkit-test:latest)
#   BASE_IMAGE       default trainer-gui/train-cpu:latest (must exist: build-test-images.sh)
#   TOOLKIT_SPECS    default "sagemaker-training==5.1.4 sagemaker-pytorch-training==3.0.0"
#   WHEELHOUSE       default .build/toolkit-wheelhouse
#   FORCE=1          rebuild even when an up-to-date image exists
#   FRESH=1          as on a new machine: FORCE=1, new wheelhouse, no pip or Docker build cache
# Idempotent: the image carries a label with a hash of its recipe (Dockerfile, entrypoint,
# requirement specs, base image id); when an image with that label exists, nothing is done.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
python=${PYTHON:-$repo/.venv/bin/python}
image=${TOOLKIT_IMAGE:-trainer-gui/toolkit-test:latest}
base=${BASE_IMAGE:-trainer-gui/train-cpu:latest}
specs=${TOOLKIT_SPECS:-sagemaker-training==5.1.4 sagemaker-pytorch-training==3.0.0}
wheelhouse=${WHEELHOUSE:-$repo/.build/toolkit-wheelhouse}
recipe_dir=$repo/tests/docker/images/toolkit
say() { printf '[build-toolkit-image] %s\n' "$*" >&2; }
t0=$SECONDS

base_id=$(docker image inspect --format '{{.Id}}' "$base" 2>/dev/null) \
    || { say "ERROR: $base is not built (run scripts/ci/build-test-images.sh first)"; exit 1; }
recipe=$( { cat "$recipe_dir/Dockerfile" "$recipe_dir/start_with_right_hostname.sh";
            echo "$specs $base_id"; } | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{index .Config.Labels "trainer-gui.recipe"}}' "$image" \
    2>/dev/null || true)
fresh=${FRESH:-0}
if [ "$fresh" = 1 ]; then
    FORCE=1
    export PIP_NO_CACHE_DIR=1
    rm -rf "$wheelhouse"
fi
if [ "${FORCE:-0}" != 1 ] && [ "$have" = "$recipe" ]; then
    say "up to date: $image (recipe $recipe)"
    exit 0
fi

# -- 1. wheelhouse ---------------------------------------------------------------------------
# The wheels are built by this interpreter (sagemaker-training compiles a C extension), so it
# must be the image's CPython minor version.
want_py=$(docker run --rm --entrypoint python "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have_py=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$want_py" = "$have_py" ] \
    || { say "ERROR: $python is Python $have_py, $base has $want_py; set PYTHON"; exit 1; }
# Whatever the base image already has (numpy, pip, setuptools, ...) is pinned, so pip keeps it.
pins=$(docker run --rm --entrypoint python "$base" -m pip freeze --all 2>/dev/null \
    | grep -E '^[A-Za-z0-9_.-]+==' | grep -v '+' || true)
stamp="$wheelhouse/.requirements"
want="$specs | $(echo "$pins" | tr '\n' ' ')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "wheelhouse up to date: $wheelhouse"
else
    say "building wheels for: $specs"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    echo "$pins" >"$constraints"
    # shellcheck disable=SC2086
    "$python" -m pip wheel --disable-pip-version-check --quiet --wheel-dir "$wheelhouse" \
        --constraint "$constraints" $specs 2>&1 | { grep -v 'is ignored: it is neither' || true; } >&2
    echo "$want" >"$stamp"
    say "wheelhouse: $(find "$wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1)"
fi

# -- 2. image --------------------------------------------------------------------------------
context=$(mktemp -d)
trap 'rm -rf "$context"; rm -f "${constraints:-}"' EXIT
cp "$recipe_dir/Dockerfile" "$recipe_dir/start_with_right_hostname.sh" "$context/"
mkdir "$context/wheels"
# Only what the base image lacks goes into the build context (and so into a layer). The pinned
# names are normalised once; `grep -qx` reads a here-string, not a pipe (an early exit there
# SIGPIPEs the writer, and pipefail turns that into a random "not pinned").
pinned=$(printf '%s\n' "$pins" | cut -d= -f1 | tr 'A-Z_.' 'a-z--')
for whl in "$wheelhouse"/*.whl; do
    name=$(basename "$whl" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
    if grep -qx -- "$name" <<<"$pinned"; then continue; fi
    ln "$whl" "$context/wheels/" 2>/dev/null || cp "$whl" "$context/wheels/"
done
say "docker build $image FROM $base ($(du -shL "$context/wheels" | cut -f1) of wheels)"
# The classic builder (no BuildKit here); its deprecation notice is dropped, errors are shown.
old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
no_cache=()
if [ "$fresh" = 1 ]; then no_cache=(--no-cache); fi
if ! DOCKER_BUILDKIT=0 docker build "${no_cache[@]}" --build-arg "BASE_IMAGE=$base" \
        --label "trainer-gui.recipe=$recipe" --tag "$image" "$context" >"$context/build.log" 2>&1; then
    tail -n 40 "$context/build.log" >&2
    say "ERROR: docker build failed"
    exit 1
fi
new_id=$(docker image inspect --format '{{.Id}}' "$image")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true  # the replaced build, now untagged
fi
versions=$(docker run --rm --entrypoint python "$image" -c 'import importlib.metadata as m
import sagemaker_pytorch_container.training
print(*(p + " " + m.version(p) for p in ("sagemaker-training", "sagemaker-pytorch-training")))')
say "ready in $((SECONDS - t0))s: $image ($versions)"
