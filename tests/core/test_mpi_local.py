"""MPI jobs (distribution kind: mpi) on this machine, and the contract pieces they share with
Docker: the mpirun command MasterRunner builds, the hyperparameters the V2 SDK sends, and the
per-job SSH keys (stdlib Ed25519, checked against `cryptography` and `ssh-keygen`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import contract
from trainer_gui.core.contract import toolkit
from trainer_gui.core.errors import BackendUnavailable
from trainer_gui.core.runners import mpi_ssh
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.services.jobs import JobService

TIMEOUT = 120

RUN_SH = """#!/bin/sh
env > "$SM_MODEL_DIR/rank-$OMPI_COMM_WORLD_RANK.env"
echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE args $* loss=0.5"
"""


def _spec(tmp_path: Path, entry_point: str = "run.sh", **distribution: Any) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    script = code / "run.sh"
    script.write_text(RUN_SH)
    script.chmod(0o755)
    (code / "train.py").write_text("print('hi')\n")
    return spec_from_dict(
        {
            "name": "mpi-local",
            "source": {"source_dir": "code", "entry_point": entry_point},
            "compute": {"backend": "local-process", "instance_type": "ml.m5.large"},
            "distribution": {"kind": "mpi", "processes_per_host": 2, **distribution},
            "hyperparameters": {"epochs": 3},
            "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        },
        base_dir=tmp_path,
    )


def _needs_mpirun() -> None:
    if shutil.which("mpirun") is None:
        pytest.skip("Open MPI is not installed here (apt install openmpi-bin)")


# -- local-process ------------------------------------------------------------------------------


def test_without_open_mpi_the_check_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BackendUnavailable, match=r"Open MPI is not installed.*openmpi-bin"):
        LocalProcessRunner().check(_spec(tmp_path), python=sys.executable)


def test_a_python_script_without_mpi4py_is_refused_with_the_fix(tmp_path: Path) -> None:
    _needs_mpirun()
    found = subprocess.run([sys.executable, "-c", "import mpi4py"], capture_output=True)
    if found.returncode == 0:
        pytest.skip("this interpreter has mpi4py")
    with pytest.raises(BackendUnavailable, match=r"no mpi4py: install it there"):
        LocalProcessRunner().check(_spec(tmp_path, entry_point="train.py"), python=sys.executable)


def test_mpirun_runs_p_processes_here_with_the_contract_environment(
    service: JobService, tmp_path: Path
) -> None:
    _needs_mpirun()
    handle = service.submit(_spec(tmp_path, mpi_options="-x MPI_LOCAL_EXTRA=7"))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    model = Path(record.run_dir) / "hosts" / "algo-1" / "model"
    ranks = {}
    for rank in (0, 1):
        lines = (model / f"rank-{rank}.env").read_text().splitlines()
        ranks[rank] = dict(line.partition("=")[::2] for line in lines if "=" in line)
    for rank, env in ranks.items():
        assert env["OMPI_COMM_WORLD_RANK"] == str(rank)
        assert env["OMPI_COMM_WORLD_SIZE"] == "2"
        assert env["SM_CURRENT_HOST"] == "algo-1"
        assert env["SM_HP_EPOCHS"] == "3"
        assert env["SM_MODEL_DIR"] == str(model)
        assert env["MPI_LOCAL_EXTRA"] == "7"
        assert env["NCCL_DEBUG"] == "INFO"  # MasterRunner's default
    log = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "rank 1 of 2 args --epochs 3" in log
    assert service.store.metric_names(record.id) == ["loss"]


# -- the command and the request keys -----------------------------------------------------------


def test_mpirun_command_is_the_toolkits_master_runner_command() -> None:
    decoded = {
        toolkit.MPI_KEY: True,
        toolkit.MPI_OPTIONS_KEY: "--NCCL_DEBUG WARN -x FOO=1 --verbose",
    }
    cmd = toolkit.mpirun_command(
        ["algo-1", "algo-2"], 2, decoded, "eth0", ["SM_HOSTS", "PYTHONPATH"],
        ["/py", "-m", "mpi4py", "train.py", "--epochs", "3"],
        environ={"AWS_ACCESS_KEY_ID": "x"},
    )  # fmt: skip
    # mpi.py MasterRunner._create_command, less LD_PRELOAD of its gethostname shim (and
    # LD_LIBRARY_PATH, unset here).
    assert cmd == [
        "mpirun", "--host", "algo-1:2,algo-2:2", "-np", "4",
        "--allow-run-as-root", "--display-map", "--tag-output",
        "-mca", "btl_tcp_if_include", "eth0", "-mca", "oob_tcp_if_include", "eth0",
        "-mca", "plm_rsh_no_tree_spawn", "1", "-bind-to", "none", "-map-by", "slot",
        "-mca", "pml", "ob1", "-mca", "btl", "^openib",
        "-mca", "orte_abort_on_non_zero_status", "1",
        "-mca", "btl_vader_single_copy_mechanism", "none",
        "-x", "NCCL_MIN_NRINGS=4", "-x", "NCCL_SOCKET_IFNAME=eth0", "-x", "NCCL_DEBUG=WARN",
        "-x", "PATH",
        "-x", "FOO=1", "--verbose",
        "-x", "AWS_ACCESS_KEY_ID",
        "-x", "SM_HOSTS", "-x", "PYTHONPATH",
        "/py", "-m", "mpi4py", "train.py", "--epochs", "3",
    ]  # fmt: skip
    one = toolkit.mpirun_command(["algo-1"], 1, {toolkit.MPI_NUM_PROCESSES_KEY: 3}, "eth0", [],
                                 ["x"], environ={})  # fmt: skip
    assert one[1:5] == ["--host", "algo-1", "-np", "3"]


def test_the_forwarded_names_are_the_toolkits_env_vars_and_pythonpath(tmp_path: Path) -> None:
    spec = _spec(tmp_path, entry_point="train.py")
    spec = spec.model_copy(update={"hyperparameters": {"batch-size": 8}})
    env = contract.sm_environment(spec, "job", "algo-1")
    decoded = contract.decode_hyperparameters(contract.sagemaker_hyperparameters(spec, "job"))
    names = toolkit.mpi_forwarded_names(env, decoded)
    assert names[-1] == "PYTHONPATH"
    assert "SM_HP_BATCH-SIZE" in names and "SM_HP_BATCH_SIZE" not in names  # V3's own
    assert {"SM_TRAINING_ENV", "SM_HOSTS", "SM_CURRENT_HOST", "SM_FRAMEWORK_PARAMS"} <= set(names)
    assert not {"SM_CURRENT_HOST_RANK", "SM_HOST_COUNT", "SM_MASTER_ADDR"} & set(names)
    assert all(n.startswith("SM_") for n in names[:-1])


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        (
            {"processes_per_host": 2, "mpi_options": "-x A=1"},
            {
                "sagemaker_mpi_enabled": "true",
                "sagemaker_mpi_num_of_processes_per_host": "2",
                "sagemaker_mpi_custom_mpi_options": '"-x A=1"',
            },
        ),
        (
            {"processes_per_host": None},
            {"sagemaker_mpi_enabled": "true", "sagemaker_mpi_custom_mpi_options": '""'},
        ),
    ],
)
def test_hyperparameters_carry_the_v2_sdks_mpi_keys(
    tmp_path: Path, distribution: dict[str, Any], expected: dict[str, str]
) -> None:
    hps = contract.sagemaker_hyperparameters(_spec(tmp_path, **distribution), "job")
    assert {k: v for k, v in hps.items() if k.startswith("sagemaker_mpi")} == expected
    assert "sagemaker_torch_distributed_enabled" not in hps


def test_custom_mpi_options_parse_as_the_toolkit_parses_them() -> None:
    assert toolkit.parse_mpi_options("") == ("INFO", [])
    assert toolkit.parse_mpi_options("-x A=1 --NCCL_DEBUG=WARN -v") == ("WARN", ["-x", "A=1", "-v"])


# -- keys ---------------------------------------------------------------------------------------


def test_stdlib_ed25519_matches_cryptography_and_ssh_keygen(tmp_path: Path) -> None:
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization

    for seed in (bytes(32), bytes(range(32)), os.urandom(32)):
        reference = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        raw = reference.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert mpi_ssh.ed25519_public_key(seed) == raw
        loaded = serialization.load_ssh_private_key(
            mpi_ssh.private_key_file(seed, "c").encode(), password=None
        )
        assert isinstance(loaded, ed25519.Ed25519PrivateKey)
        assert (
            loaded.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            == raw
        )
    run = tmp_path / "run"
    run.mkdir()
    folder = mpi_ssh.write_job_keys(run, "job-1", ["algo-1", "algo-2"])
    assert folder == run / "ssh" and oct(folder.stat().st_mode & 0o777) == "0o700"
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    if shutil.which("ssh-keygen"):
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(folder / "id_ed25519")],
            capture_output=True, text=True, check=True,
        ).stdout.split()[:2]  # fmt: skip
        assert derived == (folder / "authorized_keys").read_text().split()[:2]
    host_key = (folder / "known_hosts").read_text().split()
    assert host_key[0] == "algo-1,algo-2" and host_key[1] == "ssh-ed25519"
    mpi_ssh.remove_job_keys(run)
    assert not folder.exists() and run.exists()


def test_keys_are_fresh_for_every_job_and_removal_leaves_other_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    first = (mpi_ssh.write_job_keys(run, "a", ["algo-1"]) / "id_ed25519").read_text()
    second = (mpi_ssh.write_job_keys(run, "a", ["algo-1"]) / "id_ed25519").read_text()
    assert first != second
    mpi_ssh.remove_job_keys(run)
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


def test_a_non_root_user_gets_a_name_for_ssh(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    mpi_ssh.write_job_keys(run, "a", ["algo-1", "algo-2"])
    mpi_ssh.write_identity(run, 1000, 1000)
    assert "trainer:x:1000:1000:trainer:/tmp:/bin/sh" in (run / "ssh" / "passwd").read_text()
    assert "trainer:x:1000:" in (run / "ssh" / "group").read_text()


def test_mpirun_tags_name_the_rank_and_its_host_as_the_toolkits_watch_does() -> None:
    assert toolkit.mpi_tag_line("[1,5]<stdout>:loss=1\n", 2) == (
        "[1,mpirank:5,algo-3]<stdout>:loss=1\n"
    )
    assert toolkit.mpi_tag_line("[1,0]<stderr>:x", 4) == "[1,mpirank:0,algo-1]<stderr>:x"
    assert toolkit.mpi_tag_line("plain line", 2) == "plain line"


def test_a_failing_rank_fails_the_job_with_its_own_error_first(
    service: JobService, tmp_path: Path
) -> None:
    _needs_mpirun()
    spec = _spec(tmp_path)
    (tmp_path / "code" / "run.sh").write_text(
        '#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then\n'
        '  echo "ValueError: bad shard on rank 1" >&2; exit 3\nfi\nsleep 30\n'
    )
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Failed"
    reason = record.failure_reason or ""
    assert reason.splitlines()[0] == (
        "[1,mpirank:1,algo-1]<stderr>:ValueError: bad shard on rank 1"
    ), reason
    assert "mpirun detected that one or more processes exited" in reason


def test_a_rank_line_written_in_pieces_reads_whole_behind_one_tag() -> None:
    """Python writes a traceback's last line in pieces and mpirun tags each one (seen in CI:
    the failure reason missed `ValueError: bad shard on rank 3`)."""
    pieces = (
        "[1,3]<stderr>:ValueError[1,3]<stderr>:: [1,3]<stderr>:bad shard on rank 3[1,3]<stderr>:\n"
    )
    assert toolkit.mpi_tag_line(pieces, 2) == (
        "[1,mpirank:3,algo-2]<stderr>:ValueError: bad shard on rank 3\n"
    )
    mixed = "[1,3]<stderr>:Value[1,0]<stderr>:step 1[1,3]<stderr>:Error: x\n"
    assert toolkit.mpi_tag_line(mixed, 2) == (
        "[1,mpirank:3,algo-2]<stderr>:ValueError: x\n[1,mpirank:0,algo-1]<stderr>:step 1\n"
    )
    assert (
        toolkit.script_error(
            ["MPI_ABORT was invoked on rank 3\n", *toolkit.mpi_tag_line(pieces, 2).splitlines()]
        )
        == "[1,mpirank:3,algo-2]<stderr>:ValueError: bad shard on rank 3"
    )
