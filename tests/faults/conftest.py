"""The fault matrix's rig (two Triton replicas, an MLflow tracking server over HTTP, a real
Pushgateway every CLI call of the matrix pushes to; an S3-backed MLflow server for the one
scenario that needs it), and the table it prints at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import Env, Registry, tree_digest
from tests.mlflow_servers import environ
from tritonops.local.processes import Process, free_port, http_ok, start_mlflow_server, start_triton, wait_for

# MLflow 3's job runner (GenAI scorers, trace archival) is a pool of `huey` processes per server
# that the registry never uses; on 2 cores they slow everything else down.
_QUIET_MLFLOW = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass
class Row:
    scenario: str
    expected: str
    observed: str
    caught_by: str
    failed_requests: str
    passed: bool


ROWS: list[Row] = []


@dataclass
class RigEnv(Env):
    """An Env whose every CLI call (deploy, step, recover, status...) pushes to the rig's Pushgateway."""

    pushgateway: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        pushed = {"TRITONOPS_PUSHGATEWAY": self.pushgateway} if self.pushgateway else {}
        return super().env(**{**pushed, **extra})


@dataclass
class FastRegistry(Registry):
    """tests.helpers.Registry without MLflow's pip-requirements inference, which starts a Python
    subprocess per logged model (6-12 s each on 2 cores, 0.3 s without). tritonops never reads
    requirements.txt; the model's files are what MLflow writes either way."""

    def register(self, name: str, model: Any, *args: Any, **kwargs: Any) -> int:
        kwargs.setdefault("pip_requirements", ["onnx", "onnxruntime"])
        return super().register(name, model, *args, **kwargs)

    def registered_files(self, name: str, version: int) -> dict[str, str]:
        """sha256 of every file of the registered version (the directory holding model.onnx),
        downloaded by MLflow's own client from where the registry says the version's files are."""
        import mlflow.artifacts
        from mlflow import MlflowClient

        self._setup()
        location = MlflowClient(tracking_uri=self.tracking_uri).get_model_version_download_uri(
            name, str(version)
        )
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            )
            [onnx_file] = list(root.rglob("*.onnx"))
            return tree_digest(onnx_file.parent)


@dataclass
class Rig:
    root: Path
    tritons: list[Process]
    mlflow: Process
    registry: FastRegistry
    pushgateway: Process
    pushgateway_url: str
    logs: Path
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.root / "pvc" / "models"

    @property
    def state(self) -> Path:
        return self.root / "pvc" / "state"

    @property
    def urls(self) -> list[str]:
        return [t.url for t in self.tritons if t.url]

    def env(self, tracking_uri: str | None = None) -> RigEnv:
        return RigEnv(
            repo=self.repo,
            state=self.state,
            tracking_uri=tracking_uri or self.registry.tracking_uri,
            triton_urls=self.urls,
            pushgateway=self.pushgateway_url,
        )

    def restart_triton(self, i: int) -> None:
        port = int(str(self.tritons[i].url).rsplit(":", 1)[1])
        self.restarts += 1
        self.tritons[i] = start_triton(
            self.repo, self.logs / f"triton-{i}-{self.restarts}.log", http_port=port
        )[0]

    def restart_mlflow(self) -> None:
        port = int(str(self.mlflow.url).rsplit(":", 1)[1])
        self.restarts += 1
        with environ(**_QUIET_MLFLOW):
            self.mlflow = start_mlflow_server(
                self.root / "mlflow", self.logs / f"mlflow-{self.restarts}.log", port=port
            )[0]

    def pushed(self, model: str) -> dict[tuple[str, str | None], float]:
        """What the Pushgateway exposes for ``{job="tritonops", model=<model>}``:
        ``(metric, outcome label or None) -> value``."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.pushgateway_url}/metrics", timeout=5).text
        out: dict[tuple[str, str | None], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if labels.get("job") == "tritonops" and labels.get("model") == model:
                    out[(sample.name, labels.get("outcome"))] = sample.value
        return out


def _start_pushgateway(logs: Path) -> tuple[Process, str]:
    """A real Prometheus Pushgateway (Debian package `prometheus-pushgateway`)."""
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "prometheus-pushgateway is not installed: run `make system-deps`"
    port = free_port()
    log = logs / "pushgateway.log"
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, shared by every
    # Pushgateway on the machine: a fresh one would start with other runs' metrics. In memory only.
    proc = Process([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], log)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/-/ready"), 30, "pushgateway", proc.proc, log)
    assert 'job="tritonops"' not in requests.get(f"{url}/metrics", timeout=5).text, "not a fresh Pushgateway"
    proc.url = url
    return proc, url


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("faults")
    (root / "pvc" / "models").mkdir(parents=True)
    logs = root / "logs"
    with environ(**_QUIET_MLFLOW):
        mlflow, url = start_mlflow_server(root / "mlflow", logs / "mlflow.log")
    gateway, gateway_url = _start_pushgateway(logs)
    tritons = [start_triton(root / "pvc" / "models", logs / f"triton-{i}.log")[0] for i in range(2)]
    r = Rig(root, tritons, mlflow, FastRegistry(tracking_uri=url, artifacts=None), gateway, gateway_url, logs)
    yield r
    for t in r.tritons:
        t.stop()
    r.mlflow.stop()
    r.pushgateway.stop()


@dataclass
class S3Rig:
    """A moto S3 server and an MLflow server storing artefacts there (``--artifacts-destination
    s3://...``, proxied: tritonops talks only to MLflow, MLflow to S3)."""

    s3: Any  # tests.mlflow_servers.S3Server
    mlflow: Process
    url: str
    registry: FastRegistry


@pytest.fixture(scope="session")
def s3_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Rig]:
    """Started only when a scenario needs it; the servers come from tests/mlflow_servers.py."""
    from tests.mlflow_servers import BUCKET, S3Server, _launch

    root = tmp_path_factory.mktemp("faults-s3")
    s3 = S3Server(root).start()
    proc, url = _launch(
        root,
        "proxied-s3",
        ["--artifacts-destination", f"s3://{BUCKET}/faults", "--serve-artifacts"],
        s3.client_env(),
    )
    try:
        wait_for(lambda: http_ok(f"{url}/health"), 180, "MLflow server (S3)", proc.proc, proc.log)
    except BaseException:
        proc.stop()
        s3.stop()
        raise
    proc.url = url
    yield S3Rig(s3, proc, url, FastRegistry(tracking_uri=url, artifacts=None))
    proc.stop()
    s3.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    columns = (
        ("scenario", "scenario"),
        ("expected", "expected"),
        ("observed", "observed"),
        ("caught by", "caught_by"),
        ("failed requests", "failed_requests"),
    )
    widths = [max(len(h), *(len(getattr(r, a)) for r in ROWS)) for h, a in columns]
    header = [h for h, _ in columns] + ["result"]
    terminalreporter.write_sep("=", "fault matrix")
    terminalreporter.write_line("  ".join(h.ljust(w) for h, w in zip(header, [*widths, 6], strict=True)))
    for r in ROWS:
        cells = [getattr(r, a) for _, a in columns]
        terminalreporter.write_line(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            + "  "
            + ("PASS" if r.passed else "FAIL")
        )
    failed = sum(not r.passed for r in ROWS)
    terminalreporter.write_line(
        f"fault matrix: {len(ROWS) - failed} of {len(ROWS)} scenarios behaved as expected"
    )
