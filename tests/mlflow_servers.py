"""MLflow as teams run it, for tests: a tracking server with artefacts on S3 (a real S3 API,
moto's server) — proxied by the server or reached directly by clients — and one with basic
auth. Real processes on 127.0.0.1 only; a server that cannot start fails the test (never skips).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import Env, Registry
from tritonops.local.processes import Process, free_port, http_ok, wait_for

BUCKET = "mlflow"
ADMIN = "admin"
AWS_KEY_ID = "tritonops-test-key"
# MLflow's server and clients both need the secret; a fresh one per session, so a test that
# looks for it in outputs cannot pass by luck.
AWS_SECRET = f"aws-secret-{secrets.token_hex(12)}"

# What a client may inherit from the developer's shell that would change where it goes.
_CLIENT_VARS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


@contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) variables of this process for a block; restore them after.

    MLflow's client reads credentials and the S3 endpoint from the environment at request
    time, so this is how the test process logs models as a team member would.
    """
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class S3Server:
    """A moto S3 server (``moto_server``) with the bucket MLflow writes to.

    ``kill()`` is S3 going away; ``start()`` brings a fresh, empty one back on the same port.
    """

    def __init__(self, root: Path, name: str = "s3") -> None:
        self.root, self.name = root, name
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None
        self._starts = 0

    def start(self, timeout_s: float = 60.0) -> S3Server:
        binary = Path(sys.executable).parent / "moto_server"
        assert binary.is_file(), "moto_server is not installed: `make venv` installs the dev extra"
        self._starts += 1
        log = self.root / f"{self.name}-{self._starts}.log"
        self.process = Process([str(binary), "-H", "127.0.0.1", "-p", str(self.port)], log)
        wait_for(lambda: http_ok(f"{self.endpoint}/moto-api/"), timeout_s, "moto S3", self.process.proc, log)
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
            region_name="us-east-1",
        )

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def client_env(self) -> dict[str, str]:
        """What a client that reads and writes the bucket itself needs (MLflow's own variables)."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class MlflowServer:
    """One ``mlflow server`` process and what its clients need to use it."""

    name: str
    url: str
    process: Process
    client_env: dict[str, str] = field(default_factory=dict)

    def registry(self) -> Registry:
        """tests.helpers.Registry against this server; artefacts go where the server says."""
        return Registry(tracking_uri=self.url, artifacts=None)

    @contextmanager
    def as_client(self, **extra: str) -> Iterator[Registry]:
        """This process as one of the server's clients: its S3 or auth variables set, nobody else's."""
        cleared: dict[str, str | None] = dict.fromkeys(_CLIENT_VARS)
        with environ(**{**cleared, **self.client_env, **extra}):
            yield self.registry()

    def env(self, volume: Path, triton: str) -> Env:
        return Env(
            repo=volume / "models", state=volume / "state", tracking_uri=self.url, triton_urls=[triton]
        )


def _launch(root: Path, name: str, args: list[str], env: dict[str, str]) -> tuple[Process, str]:
    port = free_port()
    (root / name).mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / name / 'mlflow.db'}",
        *args,
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k not in _CLIENT_VARS}
    # MLflow 3's job runner (GenAI scorers, trace archival) is 7 busy `huey` processes per
    # server that the registry does not use; on 2 cores they triple start-up time.
    clean["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # cwd: MLflow's auth app would otherwise put basic_auth.db wherever pytest runs.
    return Process(
        argv, root / f"{name}.log", env={**clean, **env}, cwd=root / name
    ), f"http://127.0.0.1:{port}"


@dataclass
class Servers:
    """The module's servers: S3, MLflow proxying S3, MLflow with S3 for clients, basic auth."""

    s3: S3Server
    proxied: MlflowServer
    direct: MlflowServer
    auth: MlflowServer
    admin_password: str

    def stop(self) -> None:
        """All at once: each MLflow server takes seconds to shut down gracefully."""
        import threading

        stops = [threading.Thread(target=s.process.stop) for s in (self.proxied, self.direct, self.auth)]
        for t in stops:
            t.start()
        self.s3.stop()
        for t in stops:
            t.join()


def start_servers(root: Path, meanwhile: Callable[[], object] = lambda: None) -> Servers:
    """Start every server at once (MLflow takes ~20 s to boot here), run ``meanwhile`` (e.g.
    start Triton) while they boot, then wait until all of them answer."""
    s3 = S3Server(root).start()
    proxied, proxied_url = _launch(
        root,
        "proxied",
        ["--artifacts-destination", f"s3://{BUCKET}/proxied", "--serve-artifacts"],
        s3.client_env(),  # the server talks to S3; its clients never do
    )
    direct, direct_url = _launch(
        root,
        "direct",
        ["--default-artifact-root", f"s3://{BUCKET}/direct", "--no-serve-artifacts"],
        {},  # the server never touches S3: clients read and write the bucket themselves
    )
    admin_password = f"admin-{secrets.token_hex(8)}"
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    auth, auth_url = _launch(
        root,
        "auth",
        ["--app-name", "basic-auth", "--artifacts-destination", str(root / "auth" / "artifacts")],
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            # Read by MLflow only when it creates the admin user (empty user store).
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        },
    )
    servers = Servers(
        s3=s3,
        proxied=MlflowServer("proxied", proxied_url, proxied),
        direct=MlflowServer("direct", direct_url, direct, s3.client_env()),
        auth=MlflowServer("auth", auth_url, auth),
        admin_password=admin_password,
    )
    try:
        meanwhile()
        for server in (servers.proxied, servers.direct, servers.auth):
            wait_for(
                lambda s=server: http_ok(f"{s.url}/health"),
                180,
                f"MLflow server ({server.name})",
                server.process.proc,
                server.process.log,
            )
    except BaseException:
        servers.stop()
        raise
    return servers


def run_cli(
    env: Env, *args: str, drop: tuple[str, ...] = (), timeout: float = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The real CLI with exactly the MLflow/S3 variables given (none inherited from this process);
    ``drop`` removes variables Env sets (e.g. the test default that turns MLflow's retries off)."""
    return subprocess.run(
        [sys.executable, "-m", "tritonops.cli", *args],
        env=cli_env(env, drop, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(env: Env, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    out = {k: v for k, v in env.env().items() if k not in _CLIENT_VARS and k not in drop}
    out.update(extra)
    return out


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def serving(url: str, model: str, features: np.ndarray) -> tuple[int, np.ndarray]:
    """What a production client gets: (version that answered, probabilities) for an
    unversioned request."""
    from tritonops.adapters.triton import TritonReplica

    replica = TritonReplica(url)
    try:
        answered, out = replica.infer(model, None, {"features": features}, ["probabilities"])
    finally:
        replica.close()
    return answered, out["probabilities"][1]


def state_texts(env: Env, model: str) -> dict[str, str]:
    """Every record tritonops keeps about ``model``: journals, history, current.json, quarantine notes."""
    paths = [env.state / "history" / f"{model}.jsonl", env.repo / model / "current.json"]
    for base in (env.state / "runs" / model, env.state / "quarantine" / model):
        if base.exists():
            paths += [p for p in base.rglob("*") if p.suffix in {".json", ".jsonl"}]
    return {str(p): p.read_text(errors="replace") for p in paths if p.is_file()}
