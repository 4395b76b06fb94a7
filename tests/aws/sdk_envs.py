"""The SageMaker Python SDK interpreters the export/import tests run programs with.

SDK V2 (`sagemaker<3`) and V3 (`sagemaker-train`, `sagemaker-core`) cannot share one
environment, so `make sdk-envs` (a part of `make test`) makes one venv for each in the repo:
`.venv-sdk2` and `.venv-sdk3`. TRAINER_SDK_V2_PYTHON / TRAINER_SDK_V3_PYTHON point elsewhere.

A missing interpreter skips the test on a developer's machine and fails it in CI
(TRAINER_REQUIRE_DOCKER=1, set by .ci/run), so the comparison with the real SDK always runs
there.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_ACCESS_KEY = "AKIATGFAKEKEY7Q3ZP2X"


def _interpreter(version: int) -> Path:
    override = os.environ.get(f"TRAINER_SDK_V{version}_PYTHON")
    if override:
        return Path(override)
    return REPO / f".venv-sdk{version}" / "bin" / "python"


def sdk_python(version: int) -> str:
    """The interpreter with SDK V`version`; skips (fails in CI) when there is none."""
    path = _interpreter(version)
    if path.exists():
        return str(path)
    message = (
        f"no SageMaker Python SDK V{version} interpreter at {path}: run `make sdk-envs` "
        f"(or set TRAINER_SDK_V{version}_PYTHON)"
    )
    if os.environ.get("TRAINER_REQUIRE_DOCKER") == "1":
        pytest.fail(message)
    pytest.skip(message)


# The SDK names some endpoints itself (STS's regional one), which AWS_ENDPOINT_URL does not
# reach: every client of a program run with `run_sdk` goes to the moto server. SDK V3 asks IAM
# whether the role may act (SimulatePrincipalPolicy), which moto cannot answer: allowed.
TO_MOTO = """
import os as _os, boto3 as _boto3
_client = _boto3.session.Session.client
def _to_moto(self, *args, **kwargs):
    kwargs["endpoint_url"] = _os.environ["AWS_ENDPOINT_URL"]
    return _client(self, *args, **kwargs)
_boto3.session.Session.client = _to_moto
import botocore.client as _bc
_call = _bc.BaseClient._make_api_call
def _api(self, op, params):
    if op == "SimulatePrincipalPolicy":
        names = params.get("ActionNames", [])
        results = [{"EvalActionName": a, "EvalDecision": "allowed"} for a in names]
        return {"EvaluationResults": results, "IsTruncated": False}
    return _call(self, op, params)
_bc.BaseClient._make_api_call = _api
"""


SDK_CONFIG = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def run_sdk(
    version: int, code: str, cwd: Path, timeout: float = 300, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run `code` with SDK V`version` against the moto server the `aws` fixture set up (its
    endpoint and fake credentials are in the environment); asserts it exits 0."""
    python = sdk_python(version)
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    env.update(extra_env)
    with tempfile.TemporaryDirectory(prefix="sdk-config-") as config_dir:
        # the SDKs report usage to an AWS endpoint outside the moto server: opted out through
        # their defaults config, so a test program talks to 127.0.0.1 only
        config = Path(config_dir) / "config.yaml"
        config.write_text(SDK_CONFIG)
        env["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)
        out = subprocess.run(
            [python, "-c", TO_MOTO + code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            cwd=cwd,
        )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out
