"""Issue 16, "Training contract", against the real SageMaker training toolkit.

trainer-gui/toolkit-test carries `sagemaker-training` and `sagemaker-pytorch-training` from PyPI
(scripts/ci/build-toolkit-image.sh). What the toolkit gives a script is the reference:

* a null hyperparameter: the argv and SM_USER_ARGS the toolkit builds, compared with what the
  project's driver builds in a plain image, on the same spec;
* SAGEMAKER_BASE_DIR: the toolkit's own `Environment()`, built by a script the host-process
  driver started (in the toolkit image with /opt/ml removed, as on a user's machine), reads
  the run's tree and creates nothing in the home folder;
* SDK V3's variables: there under a toolkit launch too, with the driver's values;
* metric auto-detection: the toolkit's real environment dump gives no metrics;
* channels: a script that writes into and deletes from its channel, under the toolkit (root)
  and under the driver, leaves the user's folder byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import contract
from trainer_gui.core.runners.docker import CPU_IMAGE
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import JobRecord
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

TOOLKIT_IMAGE = "trainer-gui/toolkit-test:latest"
TIMEOUT = 420

DUMP = """
    import json, os, sys
    print("starting", flush=True)
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)},
              open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def _required() -> bool:
    return os.environ.get("TRAINER_REQUIRE_DOCKER", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def toolkit_image(docker_client: Any) -> str:
    import docker.errors

    try:
        docker_client.images.get(TOOLKIT_IMAGE)
    except docker.errors.ImageNotFound:
        message = f"{TOOLKIT_IMAGE} is not built: run scripts/ci/build-toolkit-image.sh"
        if _required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return TOOLKIT_IMAGE


def _spec(tmp_path: Path, image: str, script: str, **over: Any) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(textwrap.dedent(script))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("a,b\n1,2\n")
    spec: dict[str, Any] = {
        "name": "seams",
        "image": image,
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "docker", "instance_type": "ml.m5.large"},
        "channels": [{"name": "train", "source": "data"}],
    }
    spec.update(over)
    return spec_from_dict(spec, base_dir=tmp_path)


def _run(service: JobService, spec: JobSpec) -> JobRecord:
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    return record


def _seen(record: JobRecord) -> dict[str, Any]:
    path = Path(record.run_dir) / "hosts" / "algo-1" / "model" / "seen.json"
    seen: dict[str, Any] = json.loads(path.read_text())
    return seen


def test_null_hyperparameters_v3_names_and_auto_detection_match_the_toolkit(
    service: JobService, toolkit_image: str, tmp_path: Path
) -> None:
    hps = {"resume": None, "batch-size": 8, "epochs": 3, "lr": 0.1}
    records = {
        mode: _run(service, _spec(tmp_path / mode, image, DUMP, hyperparameters=hps))
        for mode, image in (("toolkit", toolkit_image), ("driver", CPU_IMAGE))
    }
    toolkit, driver = (_seen(records[m]) for m in ("toolkit", "driver"))
    # The toolkit's argv for a null value is an empty argument, and so is ours.
    assert toolkit["argv"] == ["--batch-size", "8", "--epochs", "3", "--lr", "0.1", "--resume", ""]
    assert driver["argv"] == toolkit["argv"]
    for name in ("SM_USER_ARGS", "SM_HP_RESUME", "SM_HPS", "SM_HP_BATCH-SIZE"):
        assert driver["env"][name] == toolkit["env"][name], name
    # SDK V3's names: given to the toolkit's script too, with the driver's values.
    v3 = contract.v3_environment(
        _spec(tmp_path, CPU_IMAGE, DUMP, hyperparameters=hps), "j", "algo-1"
    )
    assert {"SM_HOST_COUNT", "SM_CURRENT_HOST_RANK", "SM_HP_BATCH_SIZE"} <= set(v3)
    for name in v3:
        assert toolkit["env"][name] == driver["env"][name], name
    assert toolkit["env"]["SM_HP_BATCH_SIZE"] == "8"
    # The toolkit's environment dump (SM_NUM_CPUS=..., "epochs": 3, ...) is no metric.
    log = (Path(records["toolkit"].run_dir) / "logs" / "job.log").read_text()
    assert "SM_NUM_CPUS=" in log and '"epochs": 3' in log  # the dump the toolkit printed
    for record in records.values():  # (sys/: CPU and memory, sampled beside the job)
        names = service.store.metric_names(record.id)
        assert [n for n in names if not n.startswith("sys/")] == []


ENVIRONMENT = """
    import json, os
    from sagemaker_training import environment
    env = environment.Environment()
    json.dump({"base": environment.base_dir, "hosts": env.hosts, "channels": env.channel_input_dirs,
               "model_dir": env.model_dir, "current_host": env.current_host,
               "hps": env.hyperparameters},
              open(os.path.join(os.environ["SM_MODEL_DIR"], "toolkit-env.json"), "w"))
"""


def test_the_toolkits_environment_reads_a_host_process_jobs_tree(
    docker_client: Any, docker_labels: dict[str, str], toolkit_image: str, tmp_path: Path
) -> None:
    """The host-process driver, run as the local-process backend runs it, in the toolkit image
    with /opt/ml removed (a user's machine has none) and HOME in the test folder."""
    from trainer_gui.core.runners.base import JobContext
    from trainer_gui.core.runners.local_process import LocalProcessRunner

    spec = _spec(tmp_path, "unused", ENVIRONMENT, hyperparameters={"epochs": 2})
    spec = spec.model_copy(
        update={"compute": spec.compute.model_copy(update={"backend": "local-process"})}
    )
    run_dir = tmp_path / "runs" / "job-1"
    ctx = JobContext("job-1", spec, run_dir)
    layout = LocalProcessRunner()._prepare(ctx, lambda event: None)
    home = tmp_path / "home"
    home.mkdir()
    driver = contract.driver_path()
    command = (
        "rm -rf /opt/ml && exec python3 /driver.py --base-dir "
        + str(layout.root)
        + " --host-mode --skip-requirements"
    )
    docker_client.containers.run(
        toolkit_image,
        ["-c", command],
        entrypoint=["/bin/sh"],
        environment={"HOME": str(home), "TRAINING_JOB_NAME": "job-1"},
        volumes={
            str(tmp_path): {"bind": str(tmp_path), "mode": "rw"},
            str(driver): {"bind": "/driver.py", "mode": "ro"},
        },
        working_dir=str(layout.code_dir),
        labels=docker_labels,
        remove=True,
    )
    seen = json.loads((layout.model_dir / "toolkit-env.json").read_text())
    assert seen["base"] == str(layout.root)
    assert seen["hosts"] == ["algo-1"] and seen["current_host"] == "algo-1"
    assert seen["channels"] == {"train": str(layout.channel_dir("train"))}
    assert seen["model_dir"] == str(layout.model_dir)
    assert seen["hps"] == {"epochs": 2}
    assert list(home.iterdir()) == []  # no ~/sagemaker_local/jobs/<time>/opt/ml


VANDAL = """
    import json, os, shutil
    d = os.environ["SM_CHANNEL_TRAIN"]
    with open(os.path.join(d, "rows.csv"), "r+") as fh:
        fh.write("XXXX")
    os.remove(os.path.join(d, "other.csv"))
    shutil.rmtree(os.path.join(d, "sub"))
    open(os.path.join(d, "new.txt"), "w").write("new")
    seen = {"files": sorted(os.listdir(d)), "rows": open(os.path.join(d, "rows.csv")).read()}
    host = os.environ["SM_CURRENT_HOST"]
    json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], host + ".json"), "w"))
    print("vandalised", flush=True)
"""


def _fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        what = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[path.relative_to(root).as_posix()] = (what, stat.S_IMODE(path.lstat().st_mode))
    return out


@pytest.mark.parametrize("mode", ["toolkit", "driver"])
def test_a_script_that_writes_into_its_channel_leaves_the_users_data_alone(
    service: JobService, toolkit_image: str, tmp_path: Path, mode: str
) -> None:
    image = toolkit_image if mode == "toolkit" else CPU_IMAGE
    spec = _spec(tmp_path, image, VANDAL, compute={"backend": "docker", "instance_count": 2})
    data = tmp_path / "data"
    (data / "other.csv").write_text("c\n3\n")
    (data / "sub").mkdir()
    (data / "sub" / "deep.txt").write_text("deep")
    (data / "sub" / "deep.txt").chmod(0o444)
    before = _fingerprint(data)
    record = _run(service, spec)  # the mount was read-only: the write failed with EROFS
    assert _fingerprint(data) == before
    for host in ("algo-1", "algo-2"):  # each host its own copy, as each instance downloads one
        root = Path(record.run_dir) / "hosts" / host
        seen = json.loads((root / "model" / f"{host}.json").read_text())
        assert seen["rows"].startswith("XXXX") and seen["files"] == ["new.txt", "rows.csv"]
        assert not (root / "input" / "data" / "train").exists()  # gone with the job
