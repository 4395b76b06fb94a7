#!/usr/bin/env bash
# Build the Linux packages and smoke-test them the way a user meets them (`make package-check`).
#
#     scripts/package_check.sh              # build, then check
#     scripts/package_check.sh --no-build   # check what dist/ already holds
#
# 1. Build: packaging/linux/build.sh (PyInstaller bundle, .tar.gz, .deb).
# 2. Portable bundle, unpacked from the .tar.gz into a temporary folder, on this machine:
#    `trainer-gui --version` is the package's version; the training driver and the serving runtime
#    are real .py files; the self-check (packaging/selfcheck.py: every module and lazy import, AWS
#    clients, resources) passes inside the frozen app; the example job runs to completion from the bundled CLI on the
#    host-process backend, with no --python: the frozen app takes `python3` from PATH, and
#    PATH starts with JOB_PYTHON's folder (a Python with torch; default .venv/bin/python).
# 3. The .deb in a clean Debian container (image trainer-gui/base:bookworm, see
#    scripts/ci/make-base-image.sh): apt installs it with its dependencies from the Debian mirror;
#    the menu entry, icons and /usr/bin/trainer-gui are there; the app opens its main window on
#    this machine's Xvfb (the X socket is shared with the container) and a screenshot is taken;
#    the example job runs from /usr/bin/trainer-gui with this machine's Python (mounted
#    read-only at the same path); then `dpkg --purge` must leave the file system exactly as it was
#    before the install (apart from dpkg's own records, logs, /tmp and the user's data folder).
#
#    Also from the bundle: `trainer-gui gui --example` under packaging/gui_smoke.py
#    (TRAINER_GUI_SMOKE=1, Qt's offscreen platform) opens the main window on the example, runs
#    it from the sidebar to Completed, and the job's training process must be a child of the
#    job host (`trainer-gui _job-host`, its own process) (dist/package-check/bundle-gui-smoke.json).
#
# Under `set -o pipefail` no pipeline here ends in a reader that may stop early (`head`,
# `grep -q`, `awk '{...; exit}'`): the writer then dies of SIGPIPE (exit 141) or not, depending
# on timing, and the check's answer with it. Read files or variables instead; the test
# tests/packaging/test_shell_pipes.py keeps it so.
#
# Results (screenshots, logs) go to dist/package-check/. Needs: Xvfb, xdotool, Docker with the
# base image, and Pillow for the screenshot (the `package` extra). Exit code 0 only if all passed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
JOB_PYTHON=${JOB_PYTHON:-$ROOT/.venv/bin/python}
IMAGE=${PACKAGE_CHECK_IMAGE:-trainer-gui/base:bookworm}
OUT=$ROOT/dist/package-check
say() { printf '[package-check] %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

build=1
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        -h|--help) sed -n '/^set -euo/q; 2,$p' "$0"; exit 0 ;;
        *) die "unknown argument $arg" ;;
    esac
done

for tool in Xvfb xdotool docker; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install xvfb xdotool; Docker)"
done
"$PYTHON" -c 'import PIL' 2>/dev/null || die "Pillow is missing: $PYTHON -m pip install -e '.[package]'"
"$JOB_PYTHON" -c 'import torch' 2>/dev/null || die "JOB_PYTHON=$JOB_PYTHON cannot import torch"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE (scripts/ci/make-base-image.sh)"

start=$(date +%s)
if [ "$build" = 1 ]; then
    packaging/linux/build.sh
fi
version=$("$PYTHON" -c 'from importlib.metadata import version; print(version("trainer-gui"))')
newest() {  # the newest existing file among the arguments (not `ls -t | head`: see the top)
    local best= f
    for f in "$@"; do
        [ -f "$f" ] && { [ -z "$best" ] || [ "$f" -nt "$best" ]; } && best=$f
    done
    printf '%s' "$best"
}
tarball=$(newest dist/trainer-gui-"$version"-linux-*.tar.gz)
deb=$(newest dist/trainer-gui_*.deb)
[ -n "$tarball" ] && [ -n "$deb" ] || die "no .tar.gz/.deb for $version in dist/"
rm -rf "$OUT" && mkdir -p "$OUT"
tmp=$(mktemp -d)
xvfb_pid=
cleanup() {
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
    docker rm -f trainer-gui-package-check >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# -- 2. the portable bundle ---------------------------------------------------------------------
say "portable bundle: $tarball"
tar -C "$tmp" -xzf "$tarball"
app=$tmp/trainer-gui-$version
[ "$("$app/trainer-gui" --version)" = "trainer-gui $version" ] || die "--version of the bundle"
res=_internal/trainer_gui/resources  # the package's data, where a wheel has it too
for f in _internal/trainer_gui/core/contract/toolkit.py _internal/trainer_gui/core/serving/runtime.py \
         $res/examples/quickstart/job.yaml $res/examples/quickstart/.gitignore \
         $res/images/train-cpu/Dockerfile $res/icons/trainer-gui.svg $res/aws/prices.json; do
    [ -f "$app/$f" ] || die "the bundle lacks $f"
done
TRAINER_GUI_SELFCHECK=1 TRAINER_GUI_HOME=$tmp/selfcheck-home "$app/trainer-gui" >"$OUT/selfcheck.log" 2>&1 \
    || { cat "$OUT/selfcheck.log"; die "the bundle's self-check (packaging/selfcheck.py)"; }
say "  version, driver, runtime and resources: ok; $(tail -1 "$OUT/selfcheck.log")"

run_example() {  # $1: trainer-gui command, $2: log file; the job's Python comes from PATH
    local project=$tmp/project-$RANDOM
    cp -r "$app/$res/examples/quickstart" "$project"
    TRAINER_GUI_HOME=$tmp/home-$RANDOM PATH="$(dirname "$JOB_PYTHON"):$PATH" \
        timeout 600 "$1" run "$project/job.yaml" >"$2" 2>&1
}
run_example "$app/trainer-gui" "$OUT/bundle-run.log" || { tail -20 "$OUT/bundle-run.log"; die "example job from the bundle"; }
grep -q "^Job .*: Completed" "$OUT/bundle-run.log" || die "no metrics in the bundle's job output"
say "  example job from the bundled CLI (python3 from PATH): $(grep "^Final metrics" "$OUT/bundle-run.log")"

smoke=$OUT/bundle-gui-smoke.json
TRAINER_GUI_SMOKE=1 TRAINER_GUI_SMOKE_REPORT=$smoke QT_QPA_PLATFORM=offscreen \
    TRAINER_GUI_HOME=$tmp/gui-home PATH="$(dirname "$JOB_PYTHON"):$PATH" \
    timeout 600 "$app/trainer-gui" gui --example >"$OUT/bundle-gui-smoke.log" 2>&1 \
    || { tail -30 "$OUT/bundle-gui-smoke.log"; die "the bundle's window did not run the example in a job-host process ($smoke)"; }
summary=$("$PYTHON" - "$smoke" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
host = r["processes"]["job_host"] or {"pid": "?", "cmdline": []}
if r["status"] != "Completed" or not r["followed_in_job_host"] or "_job-host" not in host["cmdline"]:
    sys.exit(f"followed by {host}, window pid {r['window_pid']}, status {r['status']}")
print(f"{r['status']}, followed by the job host (pid {host['pid']}: {' '.join(host['cmdline'])}),"
      f" not the window (pid {r['window_pid']})")
EOF
) || die "the job was not followed by the bundle's own job host (\`trainer-gui _job-host\`): $smoke"
say "  window on the example, run from the sidebar: $summary"

# -- 3. the .deb in a clean container ---------------------------------------------------------------
# A display number nobody uses, including X servers of other containers on this network
# namespace (their abstract sockets show in /proc/net/unix, and clients would reach them first).
display=
for n in $(shuf -i 200-399 -n 40); do
    [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] && continue
    grep -q "@/tmp/.X11-unix/X$n\$" /proc/net/unix 2>/dev/null && continue
    display=$n; break
done
[ -n "$display" ] || die "no free X display number"
Xvfb ":$display" -screen 0 1366x768x24 -nolisten tcp -noreset -dpi 96 >/dev/null 2>&1 &
xvfb_pid=$!
export DISPLAY=":$display"
for _ in $(seq 100); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.05; done
xdotool getdisplaygeometry >/dev/null 2>&1 || die "Xvfb on :$display does not answer"

venv_real=$(cd "$(dirname "$JOB_PYTHON")/.." && pwd)
py_base=$("$JOB_PYTHON" -c 'import sys; print(sys.base_prefix)')
say ".deb in a clean container ($IMAGE): $deb"
docker run -d --init --name trainer-gui-package-check \
    -v "$ROOT/dist:/dist:ro" -v "/tmp/.X11-unix:/tmp/.X11-unix" \
    -v "$venv_real:$venv_real:ro" -v "$py_base:$py_base:ro" \
    -e DISPLAY -e DEBIAN_FRONTEND=noninteractive -e QT_X11_NO_MITSHM=1 \
    "$IMAGE" sleep infinity >/dev/null
in_box() { docker exec trainer-gui-package-check bash -c "$1"; }
snapshot='find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /root \
    -o -path /var/lib/dpkg -o -path /var/log -o -path /var/cache/debconf -o -path /dist \
    -o -path /run \) -prune -o -print | sort'

in_box "apt-get update -qq && apt-get install -y -qq /dist/$(basename "$deb") >/tmp/apt.log 2>&1" \
    || { in_box 'tail -30 /tmp/apt.log'; die "apt-get install of the .deb"; }
# Start from "dependencies installed, app not": the purge below must return to exactly this.
in_box 'dpkg --purge trainer-gui >/dev/null' || die "first purge"
in_box "$snapshot > /tmp/before.txt"
in_box "dpkg -i /dist/$(basename "$deb") >/dev/null" || die "dpkg -i"
in_box '[ "$(readlink /usr/bin/trainer-gui)" = /opt/trainer-gui/trainer-gui ]' || die "/usr/bin/trainer-gui"
in_box 'test -f /usr/share/applications/trainer-gui.desktop && test -f /usr/share/icons/hicolor/256x256/apps/trainer-gui.png && test -f /usr/share/icons/hicolor/scalable/apps/trainer-gui.svg' \
    || die "menu entry or icons missing"
[ "$(in_box 'trainer-gui --version')" = "trainer-gui $version" ] || die "--version of the installed app"
say "  installed: /usr/bin/trainer-gui, menu entry, icons, version $version"

# The window as a desktop user would open it: an unprivileged uid, the default data folder.
in_box 'mkdir -p /tmp/user-home && chown 1000:1000 /tmp/user-home'
in_box 'cd /tmp/user-home && nohup setpriv --reuid=1000 --regid=1000 --clear-groups env HOME=/tmp/user-home /usr/bin/trainer-gui >/tmp/gui.log 2>&1 & echo $! >/tmp/gui.pid'
window=
for _ in $(seq 300); do
    window=$(xdotool search --onlyvisible --name 'Trainer GUI' 2>/dev/null || true)
    window=${window%%$'\n'*}  # the first id
    [ -n "$window" ] && break
    sleep 0.1
done
[ -n "$window" ] || { in_box 'cat /tmp/gui.log'; die "no main window within 30 s"; }
sleep 3  # let it finish painting
"$PYTHON" - "$OUT/deb-main-window.png" <<'EOF'
import os, sys
from PIL import ImageGrab
ImageGrab.grab(xdisplay=os.environ["DISPLAY"]).save(sys.argv[1])
EOF
title=$(xdotool getwindowname "$window")
say "  main window shown: \"$title\" (screenshot: $OUT/deb-main-window.png)"
in_box 'kill $(cat /tmp/gui.pid); for i in $(seq 100); do kill -0 $(cat /tmp/gui.pid) 2>/dev/null || exit 0; sleep 0.1; done; exit 1' \
    || die "the app did not quit within 10 s of SIGTERM"
in_box 'cat /tmp/gui.log' > "$OUT/deb-gui.log"

# The installed CLI, run as root (as a worst case for stray files), Python from PATH.
in_box "cp -r /opt/trainer-gui/$res/examples/quickstart /tmp/project && \
    TRAINER_GUI_HOME=/tmp/home PATH=$(dirname "$JOB_PYTHON"):\$PATH \
    timeout 600 /usr/bin/trainer-gui run /tmp/project/job.yaml" > "$OUT/deb-run.log" 2>&1 \
    || { tail -20 "$OUT/deb-run.log"; die "example job from the installed app"; }
grep -q "^Job .*: Completed" "$OUT/deb-run.log" || die "no metrics from the installed app's job"
say "  example job from /usr/bin/trainer-gui: $(grep "^Final metrics" "$OUT/deb-run.log")"

in_box 'dpkg --purge trainer-gui >/dev/null' || die "dpkg --purge"
in_box "$snapshot > /tmp/after.txt"
if ! in_box 'diff /tmp/before.txt /tmp/after.txt' > "$OUT/uninstall-diff.txt"; then
    cat "$OUT/uninstall-diff.txt" >&2
    die "files left behind or removed by install + purge (dist/package-check/uninstall-diff.txt)"
fi
say "  purge: the file system is as before the install"

say "all passed in $(( $(date +%s) - start ))s; screenshots and logs in $OUT"
