"""Shared by the test tiers: registering models in a real MLflow registry, running the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: 'byte-for-byte unchanged' made checkable."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Registry:
    """A real MLflow registry (sqlite + local artifact store) driven through MLflow's own API."""

    tracking_uri: str
    artifacts: Path | None  # None: the tracking server's own (proxied) artifact store
    _versions: dict[str, int] = field(default_factory=dict)

    def _setup(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.get_experiment_by_name("tests") is None:
            location = self.artifacts.as_uri() if self.artifacts else None
            mlflow.create_experiment("tests", artifact_location=location)
        mlflow.set_experiment("tests")

    def register(
        self,
        name: str,
        model: Any,
        alias: str | None = "champion",
        input_example: np.ndarray | None = FEATURES,
        save_as_external_data: bool = True,
        pip_requirements: list[str] | None = None,
    ) -> int:
        """MLflow 3 layout: ``mlflow.onnx.log_model`` (a logged model, source ``models:/m-...``).

        ``pip_requirements`` given: MLflow writes them instead of inferring them (inference
        starts a Python subprocess per model, seconds each; tritonops never reads them)."""
        import mlflow
        import onnx
        from mlflow import MlflowClient

        self._setup()
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # log_model moves weights to external data in the proto it is given
        with mlflow.start_run():
            info = mlflow.onnx.log_model(
                copy,
                name="model",
                registered_model_name=name,
                input_example=input_example,
                save_as_external_data=save_as_external_data,
                pip_requirements=pip_requirements,
            )
        version = int(info.registered_model_version)
        if alias:
            MlflowClient().set_registered_model_alias(name, alias, str(version))
        return version

    def register_raw(
        self,
        name: str,
        model_bytes: bytes,
        alias: str | None = "champion",
        extra: dict[str, bytes] | None = None,
    ) -> int:
        """MLflow 2 layout: a plain run artefact ``runs:/<run>/onnx/model.onnx`` registered by source."""
        import tempfile

        import mlflow
        from mlflow import MlflowClient

        self._setup()
        client = MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
            d = Path(tmp) / "onnx"
            d.mkdir()
            (d / "model.onnx").write_bytes(model_bytes)
            for fname, data in (extra or {}).items():
                (d / fname).write_bytes(data)
            mlflow.log_artifacts(str(d), "onnx")
            mv = client.create_model_version(name, f"runs:/{run.info.run_id}/onnx", run_id=run.info.run_id)
        if alias:
            client.set_registered_model_alias(name, alias, str(mv.version))
        return int(mv.version)

    def register_triton_dir(
        self, name: str, model_bytes: bytes, config_pbtxt: str, alias: str = "champion"
    ) -> int:
        """NVIDIA plugin layout: a Triton model directory (``config.pbtxt`` + ``1/model.onnx``)
        logged as run artefacts and registered from ``runs:/<run>/triton``."""
        import tempfile

        import mlflow
        from mlflow import MlflowClient

        self._setup()
        client = MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
            d = Path(tmp) / "triton"
            (d / "1").mkdir(parents=True)
            (d / "1" / "model.onnx").write_bytes(model_bytes)
            (d / "config.pbtxt").write_text(config_pbtxt)
            mlflow.log_artifacts(str(d), "triton")
            mv = client.create_model_version(name, f"runs:/{run.info.run_id}/triton", run_id=run.info.run_id)
        client.set_registered_model_alias(name, alias, str(mv.version))
        return int(mv.version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        from mlflow import MlflowClient

        self._setup()
        MlflowClient().set_registered_model_alias(name, alias, str(version))


@dataclass
class Env:
    """Where one test's deploys go: its volume, registry and replicas."""

    repo: Path
    state: Path
    tracking_uri: str
    triton_urls: list[str]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TRITONOPS_REPO=str(self.repo),
            TRITONOPS_STATE_DIR=str(self.state),
            MLFLOW_TRACKING_URI=self.tracking_uri,
            TRITONOPS_TRITON_URL=",".join(self.triton_urls),
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        )
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tritonops.cli", *args],
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_lease_end(self, model: str, timeout_s: float = 60) -> None:
        """Wait until the lease a killed run left on ``model`` has expired (recover refuses before)."""
        import time

        path = self.state / "leases" / f"{model}.json"
        if not path.exists():
            return
        expires = json.loads(path.read_text())["expires_at"]
        assert expires - time.time() < timeout_s, "the lease outlives the test's patience: set a short one"
        while time.time() <= expires + 0.05:
            time.sleep(0.05)

    def current(self, model: str) -> dict[str, Any] | None:
        path = self.repo / model / "current.json"
        return json.loads(path.read_text()) if path.exists() else None

    def history(self, model: str) -> list[dict[str, Any]]:
        path = self.state / "history" / f"{model}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def quarantined(self, model: str) -> list[Path]:
        base = self.state / "quarantine" / model
        return sorted(base.iterdir()) if base.exists() else []
