"""Which MLflow the CLI talks to: the documented flags alone decide, and nothing lands in the cwd.

Real MLflow stores (sqlite), a real Triton, the real CLI run from an empty working directory with
no MLflow variables in its environment: what a new user does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def run_cli(env: Env, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with MLflow's variables removed: only the flags say where MLflow is."""
    clean = {k: v for k, v in env.env().items() if not k.startswith("MLFLOW_")}
    clean["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    return subprocess.run(
        [sys.executable, "-m", "tritonops.cli", *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("layout", ["mlflow3-logged-model", "mlflow2-run-artifact"])
def test_tracking_uri_flag_alone_deploys_and_writes_nothing_in_cwd(
    env: Env, registry: Registry, model_name: str, tmp_path: Path, layout: str
) -> None:
    model = linear_model(seed=1)
    if layout == "mlflow3-logged-model":
        version = registry.register(model_name, model)
    else:
        version = registry.register_raw(model_name, model.SerializeToString())
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    result = run_cli(
        env, cwd, "deploy", "--model", model_name, "--alias", "champion", "--tracking-uri", env.tracking_uri
    )

    assert result.returncode == 0, result.stderr
    assert env.current(model_name)["active_version"] == version
    assert sorted(os.listdir(cwd)) == []  # no ./mlflow.db, no ./mlruns


def test_registry_uri_separate_from_tracking(env: Env, model_name: str, tmp_path: Path) -> None:
    """Runs and artefacts in one store, the model registry in another (as with Unity Catalog)."""
    import mlflow
    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'tracking.db'}"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    exp = client.create_experiment("split", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp)
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").write_bytes(linear_model(seed=3).SerializeToString())
    client.log_artifacts(run.info.run_id, str(onnx_dir), "onnx")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(model_name)
    mv = client.create_model_version(model_name, f"runs:/{run.info.run_id}/onnx", run_id=run.info.run_id)
    client.set_registered_model_alias(model_name, "champion", mv.version)
    mlflow.set_tracking_uri(None)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    base = ("deploy", "--model", model_name, "--alias", "champion", "--tracking-uri", tracking)

    without = run_cli(env, cwd, *base)
    assert without.returncode == 2, without.stderr  # the tracking store has no such model
    assert "not found" in without.stderr.lower() or "RESOURCE_DOES_NOT_EXIST" in without.stderr
    assert env.current(model_name) is None

    result = run_cli(env, cwd, *base, "--registry-uri", registry)
    assert result.returncode == 0, result.stderr
    assert env.current(model_name)["active_version"] == int(mv.version)
    assert sorted(os.listdir(cwd)) == []


def test_no_tracking_uri_is_a_clear_error_that_writes_nothing(
    env: Env, model_name: str, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    result = run_cli(env, cwd, "deploy", "--model", model_name, "--alias", "champion")

    assert result.returncode == 2, result.stderr
    assert "no MLflow tracking URI" in result.stderr and "--tracking-uri" in result.stderr
    assert sorted(os.listdir(cwd)) == []
    assert env.current(model_name) is None
