#!/usr/bin/env bash
# Install Debian's Docker engine (docker.io) and start dockerd in the background, then prove that
# containers on a user-defined bridge network reach each other by network alias (what the local
# SageMaker-style runner needs for multi-host jobs: algo-1, algo-2, ...).
#
# Meant for CI and developer machines that are Debian bookworm, run as root (or with sudo), with
# no systemd and no container registry: nothing is pulled, the probe image is made locally from
# Debian's busybox-static.
#
# Idempotent: a running engine that passes the probe is left alone. Order of attempts when the
# engine is not running:
#   1. dockerd with its default storage driver (overlay2 on ext4) and iptables on;
#   2. --storage-driver=vfs, if containers cannot start on overlay (nested overlay, odd fs);
#   3. --iptables=false (with the storage driver that worked), only if dockerd cannot start with
#      iptables. The alias probe runs in every case, so a mode where embedded DNS is broken fails.
#
# Environment:
#   TRAINER_CI_CACHE   cache folder (default ~/.cache/trainer-gui-ci); the engine log lives there
#   DOCKERD_LOG        dockerd log file (default $TRAINER_CI_CACHE/dockerd.log)
#   DOCKERD_TIMEOUT    seconds to wait for `docker info` after starting dockerd (default 60)
#   DOCKERD_EXTRA_ARGS extra dockerd flags, tried first (e.g. "--storage-driver=vfs")
set -euo pipefail

CACHE=${TRAINER_CI_CACHE:-$HOME/.cache/trainer-gui-ci}
LOG=${DOCKERD_LOG:-$CACHE/dockerd.log}
TIMEOUT=${DOCKERD_TIMEOUT:-60}
PROBE_IMAGE=trainer-gui/netprobe:busybox
LABEL=trainer-gui.ci-probe=1
mkdir -p "$CACHE" "$(dirname "$LOG")"

say() { printf '[provision-docker] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (or install sudo): dockerd and apt-get need root"
    SUDO="sudo -n"
fi

# --- 1. install ---------------------------------------------------------------------------------
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
# A static busybox (nc, nslookup) is copied into a tiny local image for the network probe.
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    say "installing ${need_pkgs[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package's init script from starting dockerd with default flags during install.
    policy_added=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
command -v dockerd >/dev/null || die "dockerd is still missing after installing docker.io"

# --- 2. helpers -----------------------------------------------------------------------------------
docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

dockerd_pid() {
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

stop_dockerd() {
    local pid
    pid=$(dockerd_pid)
    [ -z "$pid" ] && return 0
    say "stopping dockerd (pid $pid)"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then $SUDO kill -9 "$pid" 2>/dev/null || true; sleep 1; fi
    return 0
}

start_dockerd() {  # args: extra dockerd flags; returns 0 once `docker info` works
    stop_dockerd
    # Stale pid files from a previous (killed) session stop dockerd/containerd from starting.
    $SUDO rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
    say "starting dockerd $* (log: $LOG)"
    {
        echo "===== $(date -Is) dockerd $*"
    } >>"$LOG"
    # setsid: survive the calling shell; nohup: survive its hang-up.
    $SUDO setsid nohup dockerd --host=unix:///var/run/docker.sock "$@" >>"$LOG" 2>&1 </dev/null &
    local waited=0
    while [ "$waited" -lt "$TIMEOUT" ]; do
        if docker_ok; then say "dockerd is up after ${waited}s"; return 0; fi
        if [ "$waited" -gt 2 ] && [ -z "$(dockerd_pid)" ] && ! pgrep -x dockerd >/dev/null; then
            say "dockerd exited during start-up; last log lines:"
            tail -n 15 "$LOG" | sed 's/^/    /' >&2
            return 1
        fi
        sleep 1; waited=$((waited + 1))
    done
    say "dockerd did not answer 'docker info' within ${TIMEOUT}s; last log lines:"
    tail -n 15 "$LOG" | sed 's/^/    /' >&2
    return 1
}

ensure_probe_image() {
    docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1 && return 0
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/etc" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in sh nc nslookup ping sleep wget cat echo hostname ip; do
        ln -s busybox "$root/bin/$applet"
    done
    local rc=0
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/bin' -c 'LABEL org.opencontainers.image.title=trainer-gui-netprobe' \
        - "$PROBE_IMAGE" >/dev/null || rc=$?
    rm -rf "$root"
    return "$rc"
}

cleanup_probe() {
    docker rm -f tgprobe-algo-1 tgprobe-algo-2 >/dev/null 2>&1 || true
    docker network rm tgprobe-net >/dev/null 2>&1 || true
}

# Two containers on a user-defined bridge: algo-2 must resolve algo-1 by alias and open a TCP
# connection to it (embedded DNS + bridge forwarding), as torch.distributed will.
probe() {
    ensure_probe_image || die "could not import the probe image from /bin/busybox"
    cleanup_probe
    docker network create --label "$LABEL" tgprobe-net >/dev/null || return 1
    local err
    if ! err=$(docker run -d --name tgprobe-algo-1 --label "$LABEL" --network tgprobe-net \
        --network-alias algo-1 --hostname algo-1 "$PROBE_IMAGE" \
        sh -c 'while true; do echo pong | nc -l -p 7777; done' 2>&1 >/dev/null); then
        say "a container would not start:"; printf '%s\n' "$err" | sed 's/^/    /' >&2
        cleanup_probe; return 2
    fi
    local out rc=0
    # shellcheck disable=SC2016  # the script runs in the container's shell
    out=$(timeout 60 docker run --rm --label "$LABEL" --network tgprobe-net \
        --network-alias algo-2 --hostname algo-2 "$PROBE_IMAGE" \
        sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do
                   r=$(nc -w 3 algo-1 7777 </dev/null 2>/dev/null) && [ "$r" = pong ] \
                       && { echo ok; exit 0; }
                   sleep 1
               done
               nslookup algo-1 127.0.0.11 2>&1; exit 1' 2>&1) || rc=$?
    cleanup_probe
    if [ "$rc" -eq 0 ] && [ "$out" = ok ]; then
        say "network probe ok: algo-2 reached algo-1 by alias on a user-defined bridge"
        return 0
    fi
    say "network probe FAILED (rc=$rc):"; printf '%s\n' "$out" | sed 's/^/    /' >&2
    return 3
}

# --- 3. start (or keep) the engine ---------------------------------------------------------------
if docker_ok; then
    say "Docker engine already running ($(docker info -f '{{.ServerVersion}} {{.Driver}}'))"
    probe && exit 0
    [ -n "$(dockerd_pid)" ] || die "a Docker engine not started by this script fails the probe"
    say "restarting it to try other settings"
fi

extra=${DOCKERD_EXTRA_ARGS:-}
attempts=()
# Flags that worked last time on this machine go first.
if [ -s "$CACHE/dockerd-flags" ]; then attempts+=("$(cat "$CACHE/dockerd-flags")"); fi
attempts+=(
    "$extra"
    "$extra --storage-driver=vfs"
    "$extra --iptables=false"
    "$extra --storage-driver=vfs --iptables=false"
)
tried="|"
for flags in "${attempts[@]}"; do
    read -r -a argv <<<"$flags"
    flags="${argv[*]:-}"
    case "$tried" in *"|$flags|"*) continue ;; esac
    tried="$tried$flags|"
    if ! start_dockerd ${argv[@]+"${argv[@]}"}; then continue; fi
    if probe; then
        say "Docker engine ready: $(docker info -f '{{.ServerVersion}}')," \
            "storage driver $(docker info -f '{{.Driver}}'), dockerd flags: ${flags:-<none>}"
        echo "$flags" >"$CACHE/dockerd-flags"
        exit 0
    fi
done
stop_dockerd
die "no dockerd configuration both started and passed the network probe; see $LOG"
