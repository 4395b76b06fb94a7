"""Warm local-process starts (issue 18): the script's contract is the cold one, both ways.

Each contract test runs cold and warm: warm means a fork server of this interpreter (without
torch here, for speed; the benchmark preimports it) is ready, and the run's phase says
"warm start". A script sees the same environment, argv, cwd, sys.path, process group, signal
dispositions and exit semantics either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from trainer_gui.core.runners import warm
from trainer_gui.core.runners.base import JobHandle
from trainer_gui.core.runners.events import JobStatus, Phase
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork server")

SpecFactory = Callable[..., JobSpec]
WaitUntil = Callable[..., None]
TIMEOUT = 120

COLD, WARM = "starting the interpreter", "warm start"


@pytest.fixture(params=["cold", "warm"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "cold":
        yield "cold"
        return
    monkeypatch.setenv("TRAINER_GUI_WARM", "1")
    pool = warm.WarmPool(preimport=())
    monkeypatch.setattr(warm, "POOL", pool)
    yield "warm"
    pool.close()


def _start_detail(service: JobService, job_id: str) -> str:
    details = [p.detail for p in service.store.phases(job_id) if p.phase is Phase.STARTING]
    assert details, "no Starting phase recorded"
    return details[-1]


def start(
    service: JobService, job_spec: SpecFactory, mode: str, script: str, **over: object
) -> JobHandle:
    """Submit `script`; warm: after a first run that readies the server for this environment."""
    if mode == "warm":
        first = service.submit(job_spec("pass\n", **over))
        assert first.wait(TIMEOUT) is not None
        assert warm.POOL.wait_ready(TIMEOUT)
    return service.submit(job_spec(script, **over))


def finish(service: JobService, handle: JobHandle, mode: str) -> None:
    assert handle.wait(TIMEOUT) is not None
    assert _start_detail(service, handle.job_id) == (WARM if mode == "warm" else COLD)


SEEN = """
    main_globals = sorted(globals())  # what a script finds in its module before its first line
    import json, os, signal, sys
    names = ["SIGINT", "SIGTERM", "SIGPIPE", "SIGHUP", "SIGCHLD", "SIGUSR1", "SIGXFSZ"]
    seen = {
        "env": dict(os.environ),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "path": sys.path,
        "file": __file__,
        "name": __name__,
        "pgid_is_pid": os.getpgid(0) == os.getpid(),
        "sid_is_pid": os.getsid(0) == os.getpid(),
        "signals": {n: str(signal.getsignal(getattr(signal, n))) for n in names},
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "stdin": os.path.realpath("/proc/self/fd/0"),
        "executable": sys.executable,
        "flags": [sys.flags.optimize, sys.flags.dont_write_bytecode, sys.flags.no_user_site],
        "stdout_write_through": sys.stdout.write_through,
        "main_spec": repr(sys.modules["__main__"].__spec__),
        "main_globals": main_globals,
        "exc": repr(sys.exc_info()),
    }
    json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
    print("loss=0.5")
"""


def _seen(service: JobService, job_id: str) -> dict[str, object]:
    record = service.get(job_id)
    text = (Path(record.run_dir) / "hosts" / "algo-1" / "model" / "seen.json").read_text()
    return json.loads(text.replace(record.run_dir, "<run>").replace(job_id, "<job>"))


EXPECTED: dict[str, dict[str, object]] = {}


def test_the_script_sees_the_same_process_either_way(
    service: JobService, job_spec: SpecFactory, mode: str
) -> None:
    over = {"hyperparameters": {"epochs": 2, "name": "x y"}, "environment": {"MY_VAR": "1"}}
    handle = start(service, job_spec, mode, SEEN, **over)
    finish(service, handle, mode)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert service.store.metric_samples(handle.job_id), "stdout reached the log"
    seen = _seen(service, handle.job_id)
    assert seen["argv"] == ["train.py", "--epochs", "2", "--name", "x y"]
    assert seen["cwd"] == "<run>/hosts/algo-1/code"
    assert seen["name"] == "__main__" and seen["file"] == "<run>/hosts/algo-1/code/train.py"
    assert seen["pgid_is_pid"] and seen["sid_is_pid"]
    assert seen["stdin"] == os.devnull
    assert seen["blocked"] == []
    env = seen["env"]
    assert isinstance(env, dict) and env["MY_VAR"] == "1" and env["TRAINING_JOB_NAME"] == "<job>"
    # Cold and warm must agree on everything (the parametrized runs share this module's dict),
    # but for what differs between any two tests (their ids, temp folders, the switch itself).
    seen["env"] = {k: v for k, v in env.items() if not k.startswith(("TRAINER_GUI_", "PYTEST_"))}
    other = EXPECTED.setdefault("seen", seen)
    assert seen == other


IGNORED = """
import json, os, signal
seen = {"hup": str(signal.getsignal(signal.SIGHUP))}
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def test_a_signal_the_job_host_ignores_stays_ignored_either_way(
    service: JobService, job_spec: SpecFactory, mode: str
) -> None:
    """Under `nohup` the job host ignores SIGHUP, and a cold run's interpreter inherits that
    (an ignored signal stays ignored across exec); a warm one must too."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        handle = start(service, job_spec, mode, IGNORED)
        finish(service, handle, mode)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert _seen(service, handle.job_id) == {"hup": str(int(signal.SIG_IGN))}


@pytest.mark.parametrize(
    ("script", "code", "status", "in_reason"),
    [
        ("import sys\nsys.exit(3)\n", 3, "Failed", "ExitCode 3"),
        ("import sys\nsys.exit(-1)\n", 255, "Failed", "ExitCode 255"),
        ("import sys\nsys.exit('bad config')\n", 1, "Failed", "bad config"),
        ("import sys\nsys.exit(None)\n", 0, "Completed", None),
        ("print('x')\nraise ValueError('bad learning rate')\n", 1, "Failed", "ValueError"),
        ("raise KeyboardInterrupt\n", 130, "Failed", "KeyboardInterrupt"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 137, "Failed", None),
    ],
)
def test_exit_semantics_are_the_cold_ones(
    service: JobService,
    job_spec: SpecFactory,
    mode: str,
    script: str,
    code: int,
    status: str,
    in_reason: str | None,
) -> None:
    handle = start(service, job_spec, mode, script)
    finish(service, handle, mode)
    record = service.get(handle.job_id)
    assert record.status == status, record.failure_reason
    if code:
        assert record.failure_reason is not None and f"ExitCode {code}" in record.failure_reason
    if in_reason:
        assert record.failure_reason is not None and in_reason in record.failure_reason


def test_threads_and_atexit_callbacks_finish_before_the_end(
    service: JobService, job_spec: SpecFactory, mode: str
) -> None:
    script = """
        import atexit, os, threading, time
        out = os.path.join(os.environ["SM_MODEL_DIR"], "order")
        def late():
            time.sleep(0.3)
            open(out, "a").write("thread\\n")
        threading.Thread(target=late).start()
        atexit.register(lambda: open(out, "a").write("atexit\\n"))
        print("main done", flush=True)
    """
    handle = start(service, job_spec, mode, script)
    finish(service, handle, mode)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    order = Path(record.run_dir) / "hosts" / "algo-1" / "model" / "order"
    assert order.read_text() == "thread\natexit\n"


def test_a_traceback_names_only_the_script(
    service: JobService, job_spec: SpecFactory, mode: str
) -> None:
    handle = start(service, job_spec, mode, "def f():\n    1 / 0\nf()\n")
    finish(service, handle, mode)
    log_text = (Path(service.get(handle.job_id).run_dir) / "logs" / "job.log").read_text()
    stderr = [line.split("\t", 3)[3] for line in log_text.splitlines() if "\tstderr\t" in line]
    assert stderr[0] == "Traceback (most recent call last):"
    assert 'train.py", line 3, in <module>' in stderr[1]
    assert stderr[-1] == "ZeroDivisionError: division by zero"
    assert not any("warm_server" in line for line in stderr)


IGNORES_SIGTERM = """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.path.join(os.environ["SM_MODEL_DIR"], "pids"), "w").write(f"{os.getpid()} {child.pid}")
    while True:
        print("loss=1", flush=True)
        time.sleep(0.05)
"""


def _pids(service: JobService, job_id: str, wait_until: WaitUntil) -> list[int]:
    path = Path(service.get(job_id).run_dir) / "hosts" / "algo-1" / "model" / "pids"
    wait_until(lambda: path.exists() and len(path.read_text().split()) == 2)
    return [int(p) for p in path.read_text().split()]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_terms_then_kills_the_whole_group(
    service: JobService, job_spec: SpecFactory, mode: str, wait_until: WaitUntil
) -> None:
    handle = start(service, job_spec, mode, IGNORES_SIGTERM)
    pids = _pids(service, handle.job_id, wait_until)
    try:
        assert psutil.Process(pids[0]).ppid() == service.get(handle.job_id).backend_ids["pid"]
        handle.cancel()
        finish(service, handle, mode)
        assert service.get(handle.job_id).status == "Stopped"
        wait_until(lambda: all(_gone(p) for p in pids), timeout=15)
    finally:
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def test_sigterm_reaches_the_scripts_handler(
    service: JobService, job_spec: SpecFactory, mode: str, wait_until: WaitUntil
) -> None:
    script = """
        import os, signal, sys, time
        def bye(*_):
            print("caught SIGTERM", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "pids"), "w").write(f"{os.getpid()} 0")
        while True:
            time.sleep(0.05)
    """
    handle = start(service, job_spec, mode, script)
    _pids(service, handle.job_id, wait_until)
    handle.cancel()
    finish(service, handle, mode)
    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert "caught SIGTERM" in (Path(record.run_dir) / "logs" / "job.log").read_text()


# -- warm only ------------------------------------------------------------------------------


@pytest.fixture
def warm_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[warm.WarmPool]:
    monkeypatch.setenv("TRAINER_GUI_WARM", "1")
    pool = warm.WarmPool(preimport=())
    monkeypatch.setattr(warm, "POOL", pool)
    yield pool
    pool.close()


def _run(service: JobService, spec: JobSpec) -> str:
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    return _start_detail(service, handle.job_id)


def test_a_changed_environment_gets_a_new_warm_interpreter(
    service: JobService, job_spec: SpecFactory, warm_pool: warm.WarmPool
) -> None:
    assert _run(service, job_spec("pass\n")) == COLD
    assert warm_pool.wait_ready(TIMEOUT)
    assert _run(service, job_spec("pass\n")) == WARM
    first = warm_pool.server_pids()
    # OMP_NUM_THREADS and the like are read when libraries load: a server with another
    # environment would give the script the wrong one.
    assert _run(service, job_spec("pass\n", environment={"OMP_NUM_THREADS": "1"})) == COLD
    assert warm_pool.wait_ready(TIMEOUT)
    assert _run(service, job_spec("pass\n", environment={"OMP_NUM_THREADS": "1"})) == WARM
    assert warm_pool.server_pids() != first


def test_gpu_jobs_and_jobs_with_requirements_never_start_warm(
    job_spec: SpecFactory, warm_pool: warm.WarmPool
) -> None:
    spec = job_spec("pass\n")
    assert warm.cold_reason(spec, False, {}) is None
    gpu = spec.model_copy(update={"compute": spec.compute.model_copy(update={"gpus": 1})})
    assert "GPU" in str(warm.cold_reason(gpu, False, {}))
    assert "requirements" in str(warm.cold_reason(spec, True, {}))
    assert "turned warm starts off" in str(warm.cold_reason(spec, False, {"warm": False}))


def test_a_project_that_opted_out_runs_cold(
    service: JobService, job_spec: SpecFactory, warm_pool: warm.WarmPool, tmp_path: Path
) -> None:
    project = service.store.add_project("p", str(tmp_path), {warm.SETTING: False})
    assert not warm.project_allows(project.settings) and warm.project_allows({})
    _run(service, job_spec("pass\n"))
    assert warm_pool.wait_ready(TIMEOUT)
    handle = service.submit(job_spec("pass\n"), project_id=project.id)
    assert handle.wait(TIMEOUT) is not None
    assert _start_detail(service, handle.job_id) == COLD


def test_a_module_the_code_folder_shadows_runs_cold(
    service: JobService, job_spec: SpecFactory, warm_pool: warm.WarmPool, tmp_path: Path
) -> None:
    _run(service, job_spec("pass\n"))
    assert warm_pool.wait_ready(TIMEOUT)
    (tmp_path / "code" / "json.py").write_text("MINE = True\n")  # the server holds json
    assert _run(service, job_spec("import json\nassert json.MINE\n")) == COLD


def test_imports_of_a_run_are_ready_for_the_next(
    service: JobService, job_spec: SpecFactory, warm_pool: warm.WarmPool, wait_until: WaitUntil
) -> None:
    _run(service, job_spec("pass\n"))
    assert warm_pool.wait_ready(TIMEOUT)
    assert _run(service, job_spec("import yaml\n")) == WARM
    probe = """
        import os, sys
        open(os.path.join(os.environ["SM_MODEL_DIR"], "had"), "w").write(str("yaml" in sys.modules))
    """

    def preimported() -> bool:
        handle = service.submit(job_spec(probe))
        handle.wait(TIMEOUT)
        had = Path(service.get(handle.job_id).run_dir) / "hosts" / "algo-1" / "model" / "had"
        return had.read_text() == "True"

    wait_until(preimported, timeout=30)


OWNER = """
import sys, time
from trainer_gui.core.runners import warm
pool = warm.WarmPool(preimport=())
pool.launch(sys.executable, [], "/", {"PATH": "/usr/bin"}, (0, 1, 2))
assert pool.wait_ready(60)
print(pool.server_pids()[0], flush=True)
time.sleep(600)
"""


def test_the_warm_interpreter_ends_with_the_process_that_owns_it(wait_until: WaitUntil) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(OWNER)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        server = int(owner.stdout.readline())
        assert psutil.pid_exists(server)
        owner.send_signal(signal.SIGKILL)  # no goodbye: the socket's end is all it notices
        owner.wait()
        wait_until(lambda: _gone(server), timeout=15)
    finally:
        with contextlib.suppress(OSError):
            owner.kill()
        owner.wait()


def test_a_stopped_job_reports_stopped_not_the_server(
    service: JobService, job_spec: SpecFactory, warm_pool: warm.WarmPool, wait_until: WaitUntil
) -> None:
    _run(service, job_spec("pass\n"))
    assert warm_pool.wait_ready(TIMEOUT)
    handle = service.submit(job_spec(IGNORES_SIGTERM))
    pids = _pids(service, handle.job_id, wait_until)
    handle.cancel()
    assert handle.wait(TIMEOUT) is JobStatus.STOPPED
    wait_until(lambda: all(_gone(p) for p in pids), timeout=15)
    assert warm_pool.server_pids(), "the warm interpreter outlives the job it started"


# -- learned imports kept across restarts of the host ------------------------------------------


def _learned_file() -> dict[str, dict[str, Any]]:
    path = warm.LearnedImports().path
    return json.loads(path.read_text())["interpreters"] if path.exists() else {}


def _start_server(pool: warm.WarmPool) -> None:
    """What the host does on a first run: start the interpreter's server (the run goes cold)."""
    assert pool.launch(sys.executable, [], "/", {"PATH": os.environ["PATH"]}, (0, 1, 2)) is None
    assert pool.wait_ready(TIMEOUT)
    assert pool.server_pids()


def test_imports_learned_before_a_restart_are_imported_by_the_next_server(
    service: JobService,
    job_spec: SpecFactory,
    warm_pool: warm.WarmPool,
    wait_until: WaitUntil,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(service, job_spec("pass\n"))
    assert warm_pool.wait_ready(TIMEOUT)
    assert "yaml" not in warm_pool.server_modules()
    assert _run(service, job_spec("import yaml\n")) == WARM
    wait_until(lambda: any("yaml" in e["modules"] for e in _learned_file().values()), timeout=30)
    warm_pool.close()  # the host ends; a new one starts with a pool of its own
    again = warm.WarmPool(preimport=())
    monkeypatch.setattr(warm, "POOL", again)
    try:
        assert _run(service, job_spec("pass\n")) == COLD
        assert again.wait_ready(TIMEOUT)
        assert "yaml" in again.server_modules()  # before the first run asked for it
    finally:
        again.close()


def test_a_changed_site_fingerprint_drops_the_learned_imports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINER_GUI_WARM", "1")
    pools = []

    def server_modules() -> set[str]:
        pool = warm.WarmPool(preimport=())
        pools.append(pool)
        _start_server(pool)
        return pool.server_modules()

    try:
        assert "yaml" not in server_modules()
        entry = _learned_file()[sys.executable]
        fingerprint = entry["fingerprint"]
        assert fingerprint and entry["modules"] == []
        learned = {"fingerprint": fingerprint, "modules": ["yaml"]}
        warm.LearnedImports().path.write_text(
            json.dumps({"version": 1, "interpreters": {sys.executable: learned}})
        )
        assert "yaml" in server_modules()
        # A package installed since: the names were learned for other packages.
        learned["fingerprint"] = [["/gone/site-packages", 1]]
        warm.LearnedImports().path.write_text(
            json.dumps({"version": 1, "interpreters": {sys.executable: learned}})
        )
        assert "yaml" not in server_modules()
        assert _learned_file()[sys.executable] == {"fingerprint": fingerprint, "modules": []}
    finally:
        for pool in pools:
            pool.close()


@pytest.mark.parametrize("text", ["{not json", '{"interpreters": {"x": 3}}', "\udcff"])
def test_a_corrupt_learned_imports_file_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    monkeypatch.setenv("TRAINER_GUI_WARM", "1")
    path = warm.LearnedImports().path
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    pool = warm.WarmPool(preimport=())
    try:
        with caplog.at_level("WARNING", logger=warm.__name__):
            _start_server(pool)
        assert any("ignoring the warm starts' learned imports" in r.message for r in caplog.records)
        assert _learned_file()[sys.executable]["modules"] == []  # written afresh
    finally:
        pool.close()
