"""Fixtures that start real processes. Nothing here is a mock: a fixture that cannot start
its process fails the test (it never skips), so a green run means the real thing ran."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tritonops.local.processes import Process

_names = itertools.count(1)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("mlflow")
    return Registry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifacts=root / "artifacts")


@pytest.fixture(scope="session")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared volume (<pvc>) one session-wide Triton serves; tests use distinct model names."""
    pvc = tmp_path_factory.mktemp("pvc")
    (pvc / "models").mkdir()
    return pvc


@pytest.fixture(scope="session")
def triton_process(volume: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """One real Triton for the session, serving the shared volume's models/."""
    from tritonops.local.processes import start_triton

    proc, _ = start_triton(volume / "models", tmp_path_factory.mktemp("logs") / "triton.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def triton(triton_process: Process) -> str:
    assert triton_process.url
    return triton_process.url


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A model name unique to the test (the registry and Triton are shared by the session)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    return f"{base}-{next(_names)}"


@pytest.fixture
def env(volume: Path, registry: Registry, triton: str) -> Env:
    return Env(
        repo=volume / "models",
        state=volume / "state",
        tracking_uri=registry.tracking_uri,
        triton_urls=[triton],
    )


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Pushgateway (Debian package `prometheus-pushgateway`)."""
    import shutil

    from tritonops.local.processes import Process, free_port, http_ok, wait_for

    binary = shutil.which("prometheus-pushgateway")
    assert binary, "prometheus-pushgateway is not installed: run `make system-deps`"
    port = free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    # In memory: Debian's build persists to one file that every Pushgateway on the machine shares.
    proc = Process([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], log)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/-/ready"), 30, "pushgateway", proc.proc, log)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def prometheus(
    triton_process: Process, pushgateway: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus (Debian package) scraping the session's Triton and Pushgateway,
    evaluating monitoring/rules.yaml every second.

    The scrape jobs are named as prometheus-operator names them from the committed
    PodMonitor/ServiceMonitor (tests/k8s/prometheus_operator.py), not by hand: rules that
    select a job the operator would not produce see no data here either."""
    import shutil

    import yaml

    from tests.k8s import manifests, prometheus_operator
    from tritonops.local.processes import free_port, http_ok, wait_for

    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run `make system-deps`"
    assert triton_process.metrics_url
    root = tmp_path_factory.mktemp("prometheus")
    rules = Path(__file__).resolve().parents[1] / "monitoring" / "rules.yaml"
    cluster = manifests.build("prod")
    triton = prometheus_operator.job_for(cluster, "Deployment/triton")
    gateway = prometheus_operator.job_for(cluster, "Service/pushgateway")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": triton.job,
                "honor_labels": triton.honor_labels,
                "static_configs": [{"targets": [triton_process.metrics_url.split("/")[2]]}],
            },
            {
                "job_name": gateway.job,
                "honor_labels": gateway.honor_labels,
                "static_configs": [{"targets": [pushgateway.split("/")[2]]}],
            },
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = Process(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        root / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/-/ready"), 60, "prometheus", proc.proc, proc.log)
    yield url
    proc.stop()
