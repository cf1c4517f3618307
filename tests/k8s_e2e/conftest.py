"""A stand-in for the cluster the WorkflowTemplate runs in, made of real local processes.

* the image `make image` builds (rebuilt here first if the source changed);
* the dev overlay as ArgoCD would apply it (`kubectl kustomize k8s/overlays/dev`): its ConfigMaps,
  with the service addresses replaced by loopback ones, and a test Secret `tritonops-secrets`;
* the RWX volume: a host directory bound to the PVC claim;
* a real Triton (from the nvidia-pytriton wheel, on the host) with its model-repository API
  locked by the Secret's `triton-api-key`, a real MLflow tracking server (sqlite, proxied
  `mlflow-artifacts:` store) and a real Pushgateway, all on 127.0.0.1.

A fixture that cannot start its process fails the test; nothing is skipped.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Registry
from tests.k8s_e2e import podman
from tests.k8s_e2e.runner import PodmanArgo, StepRun
from tritonops.local.processes import (
    Process,
    free_port,
    http_ok,
    start_mlflow_server,
    start_triton,
    wait_for,
)

ROOT = podman.ROOT
TEMPLATE = ROOT / "k8s" / "base" / "workflowtemplate.yaml"
OVERLAY = ROOT / "k8s" / "overlays" / "dev"
API_HEADER = "triton-api-key"
# Steps that talk to MLflow (resolve/download, version tags) pay for importing its client; the
# others should show their first line within 1 s.
MLFLOW_STEPS = {"materialize", "commit", "rollback"}

# Every container run of the session, for the start-up table.
RUNS: list[StepRun] = []
BASELINE: dict[str, list[tuple[float | None, float]]] = {}


def overlay_objects() -> list[dict[str, Any]]:
    shutil.which("kubectl") or pytest.fail("kubectl is not installed")
    out = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def overlay_config_maps(objects: list[dict[str, Any]], loopback: dict[str, str]) -> dict[str, dict[str, str]]:
    """The overlay's ConfigMaps; the keys in ``loopback`` get local addresses. Any other value
    that names a cluster address fails: the step would not reach it here."""
    maps = {o["metadata"]["name"]: dict(o.get("data") or {}) for o in objects if o["kind"] == "ConfigMap"}
    config = maps["tritonops-config"]
    missing = set(loopback) - set(config)
    assert not missing, f"tritonops-config no longer has {sorted(missing)}; update the e2e stand-in"
    config.update(loopback)
    cluster_address = re.compile(r"\.svc\b|cluster\.local|^(dns\+)?https?://(?!127\.0\.0\.1[:/])")
    for name, data in maps.items():
        for key, value in data.items():
            if cluster_address.search(value):
                raise AssertionError(
                    f"ConfigMap {name} key {key}={value!r} points into the cluster; "
                    "give it a loopback address in tests/k8s_e2e/conftest.py"
                )
    return maps


@pytest.fixture(scope="session")
def image() -> str:
    return podman.ensure_image()


@dataclass
class Cluster:
    root: Path
    pvc: Path
    triton: Process
    api_key: str
    mlflow: Process
    pushgateway: str
    registry: Registry
    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    image: str
    workflows: list[PodmanArgo] = field(default_factory=list)

    @property
    def triton_url(self) -> str:
        assert self.triton.url
        return self.triton.url

    @property
    def models(self) -> Path:
        return self.pvc / "models"

    @property
    def state(self) -> Path:
        return self.pvc / "state"

    def workflow(
        self, model: str, alias: str = "champion", config: dict[str, str] | None = None
    ) -> PodmanArgo:
        """`argo submit --from workflowtemplate/tritonops-deploy -p model=… -p alias=…`,
        reading the committed WorkflowTemplate afresh. ``config``: keys an operator would set in
        the `tritonops-config` ConfigMap for this workflow."""
        template = yaml.safe_load(TEMPLATE.read_text())
        config_maps = dict(self.config_maps)
        config_maps["tritonops-config"] = config_maps["tritonops-config"] | (config or {})
        name = f"{template['metadata']['name']}-{secrets.token_hex(3)}"
        wf = PodmanArgo(
            template=template,
            parameters={"model": model, "alias": alias},
            workflow_name=name,
            image=self.image,
            config_maps=config_maps,
            secrets=self.secrets,
            claims={self._claim(template): self.pvc},
            workdir=self.root / "workflows" / name,
            namespace="tritonops",
        )
        wf.validate()
        self.workflows.append(wf)
        return wf

    @staticmethod
    def _claim(template: dict[str, Any]) -> str:
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in template["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert len(claims) == 1, f"expected one RWX claim, found {claims}"
        return claims[0]

    # ---------------------------------------------------------------- what production looks like
    def current_bytes(self, model: str) -> bytes | None:
        path = self.models / model / "current.json"
        return path.read_bytes() if path.exists() else None

    def current(self, model: str) -> dict[str, Any]:
        data = self.current_bytes(model)
        assert data is not None, f"{model} has no current.json"
        return dict(json.loads(data))

    def repository_index(self) -> list[dict[str, Any]]:
        """Triton's view of every model version (the restricted API, with the Secret's key)."""
        request = urllib.request.Request(
            f"{self.triton_url}/v2/repository/index",
            data=b"{}",
            headers={API_HEADER: self.api_key, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return list(json.loads(resp.read()))

    def ready_versions(self, model: str) -> list[int]:
        return sorted(
            int(m["version"])
            for m in self.repository_index()
            if m["name"] == model and m.get("state") == "READY"
        )

    def infer(self, model: str, features: Any) -> Any:
        """An unversioned request, as production clients send it."""
        import numpy as np

        body = {"inputs": [{"name": "features", "shape": list(features.shape), "datatype": "FP32",
                            "data": features.flatten().tolist()}]}  # fmt: skip
        request = urllib.request.Request(
            f"{self.triton_url}/v2/models/{model}/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            out = json.loads(resp.read())["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    def pushed(self, model: str) -> dict[str, float]:
        """The Pushgateway's series for the model: {'name{extra labels}': value}."""
        with urllib.request.urlopen(f"{self.pushgateway}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("tritonops_") and f'model="{model}"' in line:
                key, value = line.rsplit(" ", 1)
                extra = sorted(
                    lab
                    for lab in re.findall(r'(\w+="[^"]*")', key)
                    if not lab.startswith(("instance=", "job=", "model="))
                )
                out[key.split("{")[0] + (f"{{{','.join(extra)}}}" if extra else "")] = float(value)
        return out


@pytest.fixture(scope="session")
def cluster(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("k8s-e2e")
    pvc = root / "pvc"
    (pvc / "models").mkdir(parents=True)
    logs = root / "logs"
    api_key = secrets.token_hex(16)
    started: list[Process] = []
    try:
        triton, _ = start_triton(
            pvc / "models", logs / "triton.log", restricted_api=f"{API_HEADER}={api_key}"
        )
        started.append(triton)
        mlflow, mlflow_url = start_mlflow_server(root / "mlflow", logs / "mlflow.log")
        started.append(mlflow)
        binary = shutil.which("prometheus-pushgateway")
        assert binary, "prometheus-pushgateway is not installed: run `make system-deps`"
        port = free_port()
        gateway = Process(  # in memory: Debian's build persists to one file every Pushgateway shares
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
            logs / "pushgateway.log",
        )
        started.append(gateway)
        pushgateway = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{pushgateway}/-/ready"), 30, "pushgateway", gateway.proc, gateway.log)
        assert triton.url
        config_maps = overlay_config_maps(
            overlay_objects(),
            {
                "TRITONOPS_TRITON_URL": triton.url,
                "TRITONOPS_PUSHGATEWAY": pushgateway,
                "MLFLOW_TRACKING_URI": mlflow_url,
            },
        )
        yield Cluster(
            root=root,
            pvc=pvc,
            triton=triton,
            api_key=api_key,
            mlflow=mlflow,
            pushgateway=pushgateway,
            registry=Registry(tracking_uri=mlflow_url, artifacts=None),
            config_maps=config_maps,
            secrets={"tritonops-secrets": {"triton-api-key": api_key}},
            image=image,
        )
    finally:
        for proc in reversed(started):
            proc.stop()


def first_line(argv: list[str]) -> tuple[float | None, float]:
    """(seconds to the first line of output, seconds to exit) of a command, as the runner measures."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman.env()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    first = time.monotonic() - started if line else None
    proc.stdout.read()
    assert proc.wait(60) == 0, f"{argv} failed: {line}"
    return first, time.monotonic() - started


@pytest.fixture(scope="session")
def startup_baseline(cluster: Cluster) -> dict[str, list[tuple[float | None, float]]]:
    """What any container of the image pays before tritonops does anything: `podman run` with the
    template's flags running /bin/true, and `tritonops --version` (interpreter + CLI import)."""
    flags = ["run", "--rm", "--pull=never", "--network=host", "--user=10001:10001", "--read-only",
             "--read-only-tmpfs=false", "--cap-drop=all", "--security-opt=no-new-privileges"]  # fmt: skip
    commands = {
        "/bin/true": ["--entrypoint=/bin/true", cluster.image],
        "--version": [cluster.image, "--version"],
    }
    for label, argv in commands.items():
        for _ in range(5):
            BASELINE.setdefault(label, []).append(first_line(podman.podman(*flags, *argv)))
    return BASELINE


@pytest.fixture
def record_runs(cluster: Cluster) -> Iterator[None]:
    before = len(cluster.workflows)
    yield
    for wf in cluster.workflows[before:]:
        RUNS.extend(wf.containers())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUNS:
        return
    by_step: dict[str, list[StepRun]] = {}
    for run in RUNS:
        by_step.setdefault(run.template, []).append(run)
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "workflow steps as containers: start-up")
    write("first line = from `podman run` to the container's first line of output (median over runs)")
    write(f"{'step':<12} {'runs':>4} {'first line':>11} {'whole step':>11}  target")
    for step, runs in by_step.items():
        firsts = [r.first_line_s for r in runs if r.first_line_s is not None]
        first = statistics.median(firsts) if firsts else float("nan")
        total = statistics.median(r.total_s for r in runs)
        if step in MLFLOW_STEPS:
            target = "(talks to MLflow)"
        else:
            target = "≤ 1 s " + ("met" if first <= 1.0 else "MISSED")
        write(f"{step:<12} {len(runs):>4} {first:>10.2f}s {total:>10.2f}s  {target}")
    for label, times in BASELINE.items():
        firsts = [f for f, _ in times if f is not None]
        first_text = f"{statistics.median(firsts):>10.2f}s" if firsts else f"{'-':>11}"
        total = statistics.median(t for _, t in times)
        write(f"{label:<12} {len(times):>4} {first_text} {total:>10.2f}s  (baseline: the container alone)")
