"""``tritonops demo``: the whole story on one machine, with real processes.

A local sqlite MLflow registry, a real Triton from the nvidia-pytriton wheel,
and the real ``tritonops`` CLI in a subprocess for every deploy — the same
commands a user types. It stops what it started.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from tritonops.errors import InputError

MARKER = ".tritonops-demo"
MODEL = "fraud"
ALIAS = "champion"


def _banner(text: str) -> None:
    click.echo("")
    click.secho(f"== {text}", bold=True)


def _prepare(workdir: Path) -> Path:
    """Wipe a previous demo's directory; refuse to wipe anything that is not one."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).is_file():
        raise InputError(f"{workdir} exists and is not a tritonops demo directory; choose another --workdir")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("created by `tritonops demo`; safe to delete\n")
    return workdir.resolve()


def _register(tracking_uri: str, artifacts: Path, model: object, note: str) -> int:
    """Log an ONNX model to MLflow, register it, point the alias at it; return the version."""
    import warnings

    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name("tritonops-demo") is None:
        mlflow.create_experiment("tritonops-demo", artifact_location=artifacts.as_uri())
    mlflow.set_experiment("tritonops-demo")
    with mlflow.start_run(run_name=note):
        info = mlflow.onnx.log_model(
            model,
            name="model",
            registered_model_name=MODEL,
            input_example=np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4),
        )
    version = int(info.registered_model_version)
    MlflowClient().set_registered_model_alias(MODEL, ALIAS, str(version))
    click.echo(f"registered {MODEL} version {version} ({note}); alias {ALIAS} -> {version}")
    return version


def _cli(args: list[str], env: dict[str, str]) -> int:
    argv = [sys.executable, "-m", "tritonops.cli", *args]
    click.secho("$ tritonops " + shlex.join(args), fg="cyan")
    result = subprocess.run(argv, env=env, check=False)
    click.echo(f"(exit code {result.returncode})")
    return result.returncode


def _infer(url: str) -> str:
    import numpy as np

    from tritonops.adapters.triton import TritonReplica

    replica = TritonReplica(url)
    features = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    version, outputs = replica.infer(MODEL, None, {"features": features}, ["probabilities"])
    replica.close()
    return f"version {version} answered {np.round(outputs['probabilities'][1], 4).tolist()}"


def _follow_the_registry(work: Path, env: dict[str, str], url: str) -> dict[object, int]:
    """Chapter 5: an MLflow server sends a signed webhook when the alias moves; the receiver
    deploys the version the registry names, with no other command. A forged request is refused."""
    import json
    import secrets
    import time
    import urllib.error
    import urllib.request

    from cryptography.fernet import Fernet
    from mlflow import MlflowClient

    from tritonops.local.processes import Process, free_port, http_ok, wait_for
    from tritonops.local.samples import linear_model

    _banner("5. production follows the registry: an MLflow server's webhook, no command typed")
    port, rx_port = free_port(), free_port()
    server_env = dict(
        os.environ,
        # MLflow delivers to https on public addresses only, unless told otherwise (loopback here),
        # and every server worker must share one key to decrypt the webhook secrets.
        MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
        MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
        MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        MLFLOW_WEBHOOK_CACHE_TTL="1",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    server = Process(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", env["MLFLOW_TRACKING_URI"]],
        work / "mlflow-server.log", env=server_env, cwd=work,
    )  # fmt: skip
    server_url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(24)
    rx_env = dict(env, MLFLOW_TRACKING_URI=server_url, TRITONOPS_DEMO_WEBHOOK_SECRET=secret)
    receiver_args = ["webhook", "--listen", f"127.0.0.1:{rx_port}", "--secret-env", "TRITONOPS_DEMO_WEBHOOK_SECRET",
                     "--mode", "local", "--model", MODEL, "--alias", ALIAS]  # fmt: skip
    click.secho("$ tritonops " + shlex.join(receiver_args) + "   (in the background)", fg="cyan")
    receiver = Process(
        [sys.executable, "-m", "tritonops.cli", *receiver_args], work / "webhook.log", env=rx_env
    )
    rx_url = f"http://127.0.0.1:{rx_port}/"
    results: dict[object, int] = {}
    try:
        wait_for(lambda: http_ok(f"{server_url}/health"), 180, "MLflow server", server.proc, server.log)
        wait_for(lambda: http_ok(f"{rx_url}healthz"), 60, "webhook receiver", receiver.proc, receiver.log)
        client = MlflowClient(tracking_uri=server_url, registry_uri=server_url)
        client.create_webhook(
            name="tritonops", url=rx_url, events=["model_version_alias.created"], secret=secret
        )
        time.sleep(1.5)  # the server's webhook cache
        click.echo(f"MLflow server on {server_url} calls {rx_url} when an alias is set (signed, HMAC-SHA256)")

        version = _register(server_url, work / "mlartifacts", linear_model(seed=5), "retrained again")
        deadline = time.monotonic() + 180
        current = Path(env["TRITONOPS_REPO"]) / MODEL / "current.json"
        while time.monotonic() < deadline:
            if current.is_file() and json.loads(current.read_text())["active_version"] == version:
                break
            time.sleep(0.5)
        served = json.loads(current.read_text())["active_version"]
        click.echo(f"the receiver deployed it by itself: current.json says version {served}")
        click.echo(f"production traffic: {_infer(url)}")
        results["webhook"] = 0 if served == version else 1

        forged = json.dumps({"entity": "model_version_alias", "action": "created",
                             "data": {"name": MODEL, "alias": ALIAS, "version": "1"}}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": "forged-1",
                   "X-MLflow-Timestamp": str(int(time.time())), "X-MLflow-Signature": "v1,bm90IHRoZSBzZWNyZXQ="}  # fmt: skip
        try:
            urllib.request.urlopen(urllib.request.Request(rx_url, data=forged, headers=headers), timeout=10)
            results["forged"] = 200
        except urllib.error.HTTPError as exc:
            results["forged"] = exc.code
        click.echo(
            f"a request signed with the wrong secret, asking for version 1: HTTP {results['forged']} (refused)"
        )
        click.echo(f"production traffic: {_infer(url)}")
    finally:
        receiver.stop()
        server.stop()
    return results


def run_demo(workdir: Path, http_port: int) -> None:
    from tritonops.local.processes import start_triton
    from tritonops.local.samples import linear_model

    work = _prepare(workdir)
    pvc = work / "pvc"
    repo, state = pvc / "models", pvc / "state"
    repo.mkdir(parents=True)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        TRITONOPS_REPO=str(repo),
        TRITONOPS_STATE_DIR=str(state),
    )
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri

    _banner(f"starting a real Triton (explicit model control) on port {http_port}")
    triton, url = start_triton(repo, work / "triton.log", http_port=http_port)
    env["TRITONOPS_TRITON_URL"] = url
    expected_exit: dict[object, int] = {}
    try:
        _banner("1. register a model and deploy it: load -> ready -> smoke -> commit")
        v1 = _register(tracking_uri, work / "mlartifacts", linear_model(seed=1), "baseline")
        expected_exit[v1] = _cli(["deploy", "--model", MODEL, "--alias", ALIAS], env)
        click.echo(f"production traffic (no version in the request): {_infer(url)}")

        _banner("2. a new version whose output shape changed (3 classes instead of 2)")
        v2 = _register(tracking_uri, work / "mlartifacts", linear_model(seed=2, n_classes=3), "shape change")
        expected_exit[v2] = _cli(["deploy", "--model", MODEL, "--alias", ALIAS], env)
        click.echo(f"production traffic: {_infer(url)}")

        _banner("3. a good new version")
        v3 = _register(tracking_uri, work / "mlartifacts", linear_model(seed=3), "retrained")
        expected_exit[v3] = _cli(["deploy", "--model", MODEL, "--alias", ALIAS], env)
        click.echo(f"production traffic: {_infer(url)}")

        _banner("4. a version that loads and infers, but answers NaN")
        v4 = _register(tracking_uri, work / "mlartifacts", linear_model(seed=4, produce_nan=True), "broken")
        expected_exit[v4] = _cli(["deploy", "--model", MODEL, "--alias", ALIAS], env)
        click.echo(f"production traffic: {_infer(url)}")

        expected_exit.update(_follow_the_registry(work, env, url))

        _banner("status and history")
        _cli(["status", "--model", MODEL], env)
        _cli(["history", "--model", MODEL], env)
        click.echo(f"\nquarantine: {sorted(p.name for p in (state / 'quarantine' / MODEL).iterdir())}")
        click.echo(f"repository: {sorted(p.name for p in (repo / MODEL).iterdir())}")
    finally:
        _banner("stopping Triton")
        triton.stop()
    want = {v1: 0, v2: 3, v3: 0, v4: 3, "webhook": 0, "forged": 401}
    if expected_exit != want:
        raise click.ClickException(f"demo did not go as expected: exit codes {expected_exit}, wanted {want}")
    click.echo(f"\nall done; everything the demo made is in {work}")
