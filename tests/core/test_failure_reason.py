"""The failure reason of a torchrun job leads with the script's own error, not the launcher's
traceback (issue 13, item 12)."""

from __future__ import annotations

from collections.abc import Callable

from trainer_gui.core.contract import toolkit
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]

BAD_LR_ON_RANK_1 = """
    import os
    import torch.distributed as dist
    dist.init_process_group("gloo")
    if dist.get_rank() == 1:
        raise ValueError("bad lr")
    dist.barrier()
"""

# A rank's error, a peer's collateral error, then torchrun's ChildFailedError block (torch 2.x).
LAUNCHER_TAIL = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "/opt/ml/code/train.py", line 5, in <module>
[rank1]:     raise ValueError("bad lr")
[rank1]: ValueError: bad lr
[rank0]: RuntimeError: Connection closed by peer
E1203 21:00:00.000000 1 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1)
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/usr/lib/python3/torch/distributed/run.py", line 892, in main
    run(args)
  File "/usr/lib/python3/torch/distributed/launcher/api.py", line 270, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_21:00:00
  host      : algo-1
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 42)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_a_launcher_failure_text_leads_with_the_scripts_error_line() -> None:
    text = toolkit._failure_text(1, LAUNCHER_TAIL.splitlines(), ["python", "-m", "torchrun"])

    first, rest = text.split("\n", 1)
    assert first == "[rank1]: ValueError: bad lr"
    assert rest.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n")
    assert "ChildFailedError" in rest  # the full text is kept after it


def test_a_plain_script_failure_text_keeps_the_toolkit_form() -> None:
    tail = ["Traceback (most recent call last):", "ValueError: bad lr"]
    text = toolkit._failure_text(1, tail, ["python", "train.py"])

    assert text.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n")


def test_a_torchrun_job_whose_rank_1_fails_names_the_scripts_error_first(
    service: JobService, job_spec: SpecFactory
) -> None:
    spec = job_spec(BAD_LR_ON_RANK_1, distribution={"kind": "torchrun", "processes_per_host": 2})
    handle = service.submit(spec)
    assert handle.wait(180) is not None

    record = service.get(handle.job_id)
    assert record.status == "Failed"
    reason = record.failure_reason or ""
    first = reason.splitlines()[0]
    assert "ValueError: bad lr" in first, reason
    assert "Root Cause" in reason  # the launcher's text follows
