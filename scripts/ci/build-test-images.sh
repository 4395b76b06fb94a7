#!/usr/bin/env bash
# Everything the Docker tests need, from a bare Debian bookworm machine with no registry:
#   1. provision-docker.sh   install docker.io, start dockerd, prove alias networking works
#   2. make-base-image.sh    trainer-gui/base:bookworm from Debian packages (debootstrap)
#   3. make-wheelhouse.sh    .build/wheelhouse: torch (CPU) + numpy + deps as cp311 wheels
#   4. trainer-gui/train-cpu:latest and trainer-gui/inference:latest, offline, from 2 + 3
#      (same recipe: the second reuses every cached layer of the first)
#   5. train-gpu: no GPU and no CUDA base image here, so only its Dockerfile is checked: the
#      engine parses the whole file and builds its `runtime` stage on the local Debian base.
#
# Then: TRAINER_REQUIRE_DOCKER=1 .venv/bin/pytest tests/docker -q
#
# Idempotent and cached (~/.cache/trainer-gui-ci, pip's cache, Docker's build cache): a second
# run takes seconds. Environment: PYTHON (default .venv/bin/python), WHEELHOUSE (default
# .build/wheelhouse), SKIP_GPU_CHECK=1, and those of the scripts above.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
python=${PYTHON:-$repo/.venv/bin/python}
wheelhouse=${WHEELHOUSE:-$repo/.build/wheelhouse}
base=trainer-gui/base:bookworm

say() { printf '[build-test-images] %s\n' "$*" >&2; }
t0=$SECONDS
step() {  # name, command...
    local name=$1 start=$SECONDS
    shift
    say "== $name"
    "$@"
    say "== $name: $((SECONDS - start))s"
}

[ -x "$python" ] || { say "ERROR: $python not found (make the venv first, or set PYTHON)"; exit 1; }

step "provision docker" bash "$here/provision-docker.sh"
step "base image" bash "$here/make-base-image.sh" "$base"
step "wheelhouse" bash "$here/make-wheelhouse.sh" "$wheelhouse"
for kind in train-cpu inference; do
    step "image $kind" "$python" -m trainer_gui.core.images --timestamps --kind "$kind" \
        --base-image "$base" --wheelhouse "$wheelhouse"
done
if [ "${SKIP_GPU_CHECK:-0}" != 1 ]; then
    check_tag=trainer-gui/train-gpu:dockerfile-check
    step "train-gpu Dockerfile check" "$python" -m trainer_gui.core.images --kind train-gpu \
        --base-image "$base" --target runtime --tag "$check_tag" --quiet
    docker rmi "$check_tag" >/dev/null 2>&1 || true
fi
say "ready in $((SECONDS - t0))s: $(docker images --format '{{.Repository}}:{{.Tag}} ({{.Size}})' \
    --filter reference='trainer-gui/*' | tr '\n' ' ')"
step "toolkit test image" bash "$here/build-toolkit-image.sh"  # launch mode (a): tests/docker/test_launch_modes.py
