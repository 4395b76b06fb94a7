#!/usr/bin/env bash
# GPU check for local Docker runs (issue 17, item 2), for a machine with NVIDIA GPUs, Docker and
# the NVIDIA Container Toolkit. CI has no GPU; run this by hand on a GPU machine and record what
# it prints in docs/docker.md ("GPUs").
#
# It runs, through the app's own CLI (the same path as the window's Run):
#   1. the GPU image: torch sees CUDA inside a container;
#   2. a 1-host x 1-GPU job: one device visible, SM_NUM_GPUS=1, a matmul timing;
#   3. a 2-host x 1-GPU torchrun job over NCCL (needs 2 GPUs): each host sees a different GPU
#      (by UUID), all_reduce agrees, bus bandwidth measured;
#   4. a request for more GPUs than the machine has: refused with a clear message.
#
# Usage: scripts/gpu-check.sh [--image IMAGE] [--build] [--backend docker|local-process]
#   --image    the GPU training image (default trainer-gui/train-gpu:latest)
#   --build    build it first with `trainer-gui images build train-gpu` (needs the network)
#   --backend  local-process: no Docker; the jobs run on this machine's Python (it needs torch
#              with CUDA); step 1 is skipped and step 3 runs torchrun on the host instead
# Environment: TRAINER_GUI (the CLI; default .venv/bin/trainer-gui, else trainer-gui on PATH).
set -uo pipefail
cd "$(dirname "$0")/.."

image=trainer-gui/train-gpu:latest
build=0
backend=docker
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image=$2; shift 2 ;;
        --build) build=1; shift ;;
        --backend) backend=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cli=${TRAINER_GUI:-}
if [ -z "$cli" ]; then
    if [ -x .venv/bin/trainer-gui ]; then cli=.venv/bin/trainer-gui; else cli=$(command -v trainer-gui || true); fi
fi
[ -n "$cli" ] || { echo "gpu-check: no trainer-gui CLI (make install, or set TRAINER_GUI)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: no NVIDIA driver here" >&2; exit 2; }
case "$backend" in docker|local-process) ;; *) echo "gpu-check: --backend docker or local-process" >&2; exit 2 ;; esac
if [ "$backend" = docker ]; then
    docker info >/dev/null 2>&1 || { echo "gpu-check: Docker is not running" >&2; exit 2; }
fi

gpus=$(nvidia-smi -L | grep -c '^GPU ')
echo "== machine: $gpus GPU(s)"
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv,noheader
[ "$gpus" -ge 1 ] || { echo "gpu-check: no GPU listed by nvidia-smi" >&2; exit 2; }

if [ "$backend" = docker ] && [ "$build" = 1 ]; then
    "$cli" images build train-gpu || { echo "gpu-check: image build failed" >&2; exit 1; }
fi
[ "$backend" != docker ] || docker image inspect "$image" >/dev/null 2>&1 \
    || { echo "gpu-check: image $image is missing (use --build, or --image)" >&2; exit 2; }

work=$(mktemp -d -t trainer-gpu-check.XXXXXX)
home=$work/app-home
export TRAINER_GUI_HOME="$home"  # a throwaway data folder: the check leaves nothing behind
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/code"

cat >"$work/code/check.py" <<'PY'
"""Prints GPUCHECK lines: what this host's process sees, and what it measured."""
import json
import os
import time

import torch

rank = int(os.environ.get("RANK", "0"))
world = int(os.environ.get("WORLD_SIZE", "1"))
seen = {k: os.environ.get(k) for k in (
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "SM_NUM_GPUS", "SM_CURRENT_HOST",
    "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "LOCAL_RANK")}
seen["cuda"] = torch.cuda.is_available()
seen["device_count"] = torch.cuda.device_count()
if seen["cuda"]:
    props = torch.cuda.get_device_properties(0)
    seen["name"] = props.name
    seen["uuid"] = str(getattr(props, "uuid", ""))
print("GPUCHECK env rank=%d %s" % (rank, json.dumps(seen, sort_keys=True)), flush=True)
if not seen["cuda"]:
    raise SystemExit("GPUCHECK torch sees no CUDA device")
dev = torch.device("cuda", 0)
a = torch.randn(4096, 4096, device=dev)
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(20):
    a @ a
torch.cuda.synchronize()
tflops = 20 * 2 * 4096**3 / (time.perf_counter() - t0) / 1e12
print("GPUCHECK matmul rank=%d tflops=%.1f" % (rank, tflops), flush=True)
print("matmul_tflops=%.2f" % tflops, flush=True)
if world > 1 or "LOCAL_RANK" in os.environ:  # under torchrun: NCCL even in a world of one
    import torch.distributed as dist

    dist.init_process_group("nccl")
    x = torch.ones(1, device=dev) * (rank + 1)
    dist.all_reduce(x)
    expect = world * (world + 1) / 2
    print("GPUCHECK allreduce rank=%d sum=%s expect=%s" % (rank, x.item(), expect), flush=True)
    buf = torch.ones(64 * 1024 * 1024, device=dev)  # 256 MB of float32
    dist.all_reduce(buf)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        dist.all_reduce(buf)
    torch.cuda.synchronize()
    secs = (time.perf_counter() - t0) / 10
    busbw = buf.numel() * 4 * 2 * max(world - 1, 1) / world / secs / 1e9
    print("GPUCHECK busbw rank=%d GB/s=%.1f" % (rank, busbw), flush=True)
    print("allreduce_busbw=%.2f" % busbw, flush=True)
    if x.item() != expect:
        raise SystemExit("GPUCHECK all_reduce gave %s, expected %s" % (x.item(), expect))
    dist.destroy_process_group()
PY

spec() {  # name hosts gpus dist
    local image_line="image: $image"
    [ "$backend" = docker ] || image_line="# no image: local-process"
    cat >"$work/$1.yaml" <<YAML
name: gpu-check-$1
$image_line
source: {source_dir: code, entry_point: check.py}
compute: {backend: $backend, instance_type: ml.g5.xlarge, instance_count: $2, gpus: $3}
distribution: {kind: $4}
metric_definitions:
  - {name: matmul_tflops, regex: 'matmul_tflops=([0-9.]+)'}
  - {name: allreduce_busbw, regex: 'allreduce_busbw=([0-9.]+)'}
max_runtime_seconds: 600
YAML
}

failed=0
run_job() {  # name
    local out=$work/$1.out t0=$SECONDS
    "$cli" run "$work/$1.yaml" >"$out" 2>&1
    local rc=$?
    echo "-- $1: exit $rc in $((SECONDS - t0)) s"
    grep -E 'GPUCHECK' "$out" || tail -n 20 "$out"
    return $rc
}

echo "== 1. the image sees CUDA"
[ "$backend" = docker ] && docker run --rm --gpus all "$image" python3 -c \
    'import torch; print("GPUCHECK image cuda", torch.cuda.is_available(), torch.cuda.device_count(), torch.version.cuda)' \
    || { [ "$backend" = docker ] && failed=1; }
[ "$backend" = docker ] || echo "skipped: local-process (no image)"

echo "== 2. 1 host x 1 GPU ($backend)"
spec one 1 1 none
run_job one || failed=1
grep -q '"device_count": 1' "$work/one.out" || { echo "FAIL: the host does not see exactly 1 GPU"; failed=1; }

if [ "$backend" = local-process ]; then
    echo "== 3. 1 host x 1 GPU under torchrun on the host (the launcher, NCCL's world of one)"
    spec tr 1 1 torchrun
    run_job tr || failed=1
    grep -q 'GPUCHECK env rank=0' "$work/tr.out" && grep -q '"LOCAL_RANK": "0"' "$work/tr.out" \
        || { echo "FAIL: torchrun's rank 0 did not report"; failed=1; }
elif [ "$gpus" -ge 2 ]; then
    echo "== 3. 2 hosts x 1 GPU, torchrun over NCCL"
    spec two 2 1 torchrun
    run_job two || failed=1
    uuids=$(grep -o '"uuid": "[^"]*"' "$work/two.out" | sort -u | wc -l)
    if [ "$uuids" -eq 2 ]; then echo "ok: the two hosts saw two different GPUs"
    else echo "FAIL: the hosts saw $uuids distinct GPU(s), expected 2"; failed=1; fi
else
    echo "== 3. skipped: 2 hosts x 1 GPU needs 2 GPUs, this machine has $gpus"
fi

echo "== 4. more GPUs than the machine has"
spec many 1 $((gpus + 1)) none
if "$cli" run "$work/many.yaml" >"$work/many.out" 2>&1; then
    echo "FAIL: a job asking for $((gpus + 1)) GPUs ran"; failed=1
else
    echo "ok: refused: $(grep -i -m 1 gpu "$work/many.out")"
fi

echo "== result: $([ $failed = 0 ] && echo PASS || echo FAIL)"
exit $failed
