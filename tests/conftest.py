"""Fixtures that start real processes. Nothing here is a mock: a fixture that cannot start
its process fails the test (it never skips), so a green run means the real thing ran."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Env, Registry

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
def triton(volume: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tritonops.local.processes import start_triton

    proc, url = start_triton(volume / "models", tmp_path_factory.mktemp("logs") / "triton.log")
    yield url
    proc.stop()


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
    proc = Process([binary, f"--web.listen-address=127.0.0.1:{port}"], log)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/-/ready"), 30, "pushgateway", proc.proc, log)
    yield url
    proc.stop()
