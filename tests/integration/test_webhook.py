"""Production follows the registry: `tritonops webhook` against a real `mlflow server`.

Real processes on 127.0.0.1: an MLflow server (SQL backend; the file store sends no webhooks)
with webhooks allowed to plain-http loopback and one Fernet key for its secrets, the receiver as
the real CLI (`python -m tritonops.cli webhook`), the session's real Triton. Webhooks are
registered through MLflow's own client; every delivery below is one MLflow made, except the
forged ones, which are built with MLflow's own signing function.

Between MLflow and the main receiver sits a recording pass-through (``Tap``): it forwards each
delivery untouched and keeps its exact bytes, so a test can replay what MLflow really sent.

The one stand-in is the Argo Server in the last test: a small local HTTP server that records
what the receiver submits (no real Argo server runs here); the request is validated against
Argo's own API model as Hera ships it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import FEATURES, Env, Registry, tree_digest
from tests.mlflow_servers import serving, wait_until
from tritonops.local.processes import Process, free_port, http_ok, wait_for
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration

SECRET = f"whsec-{secrets.token_hex(16)}"
SECRET_ENV = "TRITONOPS_TEST_WEBHOOK_SECRET"
TAG = secrets.token_hex(2)
FOLLOW, BURST, STRANGER, KILLED = (f"wh-{name}-{TAG}" for name in ("follow", "burst", "stranger", "killed"))
ROOT = Path(__file__).resolve().parents[2]
# The latency gate runs (5 timed requests) but cannot fail on a machine this loaded: a rollback
# by a noisy p95 is not what these tests are about (the fault matrix's latency scenario is).
LENIENT_LATENCY = ("--latency-requests", "5", "--latency-factor", "1000", "--latency-budget-ms", "60000")


# ------------------------------------------------------------------ MLflow server with webhooks
@dataclass
class MlflowServer:
    url: str
    process: Process

    def registry(self) -> Registry:
        return Registry(tracking_uri=self.url, artifacts=None)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def hook(self, name: str, url: str, events: list[str]) -> str:
        """Register a webhook through MLflow's own client; wait out the server's webhook cache."""
        created = self.client().create_webhook(name=name, url=url, events=events, secret=SECRET)
        time.sleep(1.2)  # MLFLOW_WEBHOOK_CACHE_TTL=1: the next event sees it
        return str(created.webhook_id)


@pytest.fixture(scope="module")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MlflowServer]:
    from cryptography.fernet import Fernet

    root = tmp_path_factory.mktemp("mlflow-webhooks")
    port = free_port()
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "AWS_"))}
    env.update(
        # MLflow delivers only to https on public addresses unless told otherwise.
        MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
        MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
        # One key for every worker: without it each invents its own and cannot decrypt the secrets.
        MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        MLFLOW_WEBHOOK_CACHE_TTL="1",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # 7 idle job workers the registry does not use
    )
    process = Process(argv, root / "mlflow.log", env=env, cwd=root)
    try:
        request.getfixturevalue("triton")  # start Triton while MLflow boots
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/health"), 180, "MLflow server", process.proc, process.log)
        yield MlflowServer(url, process)
    finally:
        process.stop()


# ------------------------------------------------------------------ the receiver, and a tap in front of it
@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    reply: dict[str, Any]

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def is_alias_set(self, model: str) -> bool:
        e = self.event
        return (e["entity"], e["action"], e["data"].get("name")) == ("model_version_alias", "created", model)


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Tap:
    """MLflow -> tap -> receiver: forwards every delivery byte for byte, records it and the answer."""

    def __init__(self, target: str) -> None:
        self.deliveries: list[Delivery] = []
        tap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower().startswith(("x-mlflow", "content-type"))
                }
                status, reply = post(target, headers, body)
                tap.deliveries.append(Delivery(headers, body, status, reply))
                out = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alias_sets(self, model: str) -> list[Delivery]:
        return [d for d in list(self.deliveries) if d.is_alias_set(model)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Receiver:
    url: str
    process: Process
    env: Env
    tap: Tap | None = None
    hooks: list[str] = field(default_factory=list)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def count(self, name: str, **labels: str) -> float:
        return self.metrics().get((f"tritonops_webhook_{name}_total", tuple(sorted(labels.items()))), 0.0)

    def idle(self) -> bool:
        return self.metrics()[("tritonops_webhook_models_with_work", ())] == 0

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


def start_receiver(env: Env, log: Path, *args: str, **extra_env: str) -> Receiver:
    port = free_port()
    argv = [sys.executable, "-m", "tritonops.cli", "webhook", "--listen", f"127.0.0.1:{port}", *args]
    process = Process(argv, log, env=env.env(**{SECRET_ENV: SECRET}, **extra_env))
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/healthz"), 60, "webhook receiver", process.proc, log)
    return Receiver(url, process, env)


@pytest.fixture(scope="module")
def receiver(
    mlflow_server: MlflowServer, volume: Path, triton: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    """The receiver for FOLLOW and BURST (alias champion), MLflow's webhook pointed at its tap."""
    env = Env(
        repo=volume / "models", state=volume / "state", tracking_uri=mlflow_server.url, triton_urls=[triton]
    )
    log = tmp_path_factory.mktemp("receiver") / "receiver.log"
    rx = start_receiver(
        env, log,
        "--secret-env", SECRET_ENV, "--mode", "local", "--model", FOLLOW, "--model", BURST,
        "--alias", "champion", *LENIENT_LATENCY,
    )  # fmt: skip
    rx.tap = Tap(rx.url)
    try:
        # Alias sets deploy; new versions are acknowledged and ignored.
        rx.hooks.append(
            mlflow_server.hook(
                f"tritonops-{TAG}", rx.tap.url, ["model_version_alias.created", "model_version.created"]
            )
        )
        yield rx
    finally:
        for hook in rx.hooks:
            mlflow_server.client().delete_webhook(hook)
        rx.tap.stop()
        rx.process.stop()
        assert SECRET not in rx.log(), "the webhook secret was logged"


def committed(env: Env, model: str) -> int | None:
    current = env.current(model)
    return int(current["active_version"]) if current else None


def wait_committed(env: Env, model: str, version: int, log: Path, timeout_s: float = 180) -> None:
    """Until ``version`` is committed; fails at once, with the reason, if its deploy ended otherwise."""
    deadline = time.monotonic() + timeout_s
    while committed(env, model) != version:
        failed = [r for r in env.history(model) if r["version"] == version and r["outcome"] != "committed"]
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        assert not failed, (
            f"the deploy of {model} v{version} ended {failed[-1]['outcome']}: {failed[-1]['error']}\n{tail}"
        )
        assert time.monotonic() < deadline, f"{model} v{version} not committed after {timeout_s:.0f}s\n{tail}"
        time.sleep(0.05)


def journals(env: Env, model: str) -> list[dict[str, Any]]:
    base = env.state / "runs" / model
    out = []
    for path in sorted(base.glob("*/journal.json")) if base.exists() else []:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):  # being replaced atomically; read again next poll
            continue
    return out


def deploys(env: Env, model: str) -> list[tuple[int | None, str]]:
    return [(r["version"], r["outcome"]) for r in env.history(model)]


# ------------------------------------------------------------------ tests
@dataclass
class Followed:
    v1: int
    v2: int


@pytest.fixture(scope="module")
def followed(receiver: Receiver, mlflow_server: MlflowServer) -> Followed:
    """Two alias moves on FOLLOW through MLflow; nothing else is run."""
    registry = mlflow_server.registry()
    v1 = registry.register(FOLLOW, linear_model(seed=1))  # log, register, set champion -> v1
    wait_committed(receiver.env, FOLLOW, v1, receiver.process.log)
    v2 = registry.register(FOLLOW, linear_model(seed=2))
    wait_committed(receiver.env, FOLLOW, v2, receiver.process.log)
    wait_until(receiver.idle, 60, "the receiver idle")
    return Followed(v1, v2)


def test_moving_the_alias_deploys_and_serves_the_new_version(receiver: Receiver, followed: Followed) -> None:
    env, tap = receiver.env, receiver.tap
    assert tap is not None
    answered, _ = serving(env.triton_urls[0], FOLLOW, FEATURES)
    assert answered == followed.v2  # an unversioned request, as production clients send it
    history = env.history(FOLLOW)
    assert [(r["version"], r["outcome"]) for r in history] == [
        (followed.v1, "committed"),
        (followed.v2, "committed"),
    ]
    assert all("(webhook)" in r["actor"] for r in history)
    alias_sets = tap.alias_sets(FOLLOW)
    assert [(d.event["data"]["version"], d.status, d.reply["status"]) for d in alias_sets] == [
        (str(followed.v1), 202, "accepted"),
        (str(followed.v2), 202, "accepted"),
    ]
    created = [
        d
        for d in list(tap.deliveries)
        if d.event["entity"] == "model_version" and d.event["data"]["name"] == FOLLOW
    ]
    assert [(d.status, d.reply) for d in created] == [(200, {"status": "ignored", "reason": "event"})] * 2
    assert receiver.count("deploys", outcome="committed") >= 2


def test_forged_replayed_and_foreign_deliveries_deploy_nothing(
    receiver: Receiver, followed: Followed, mlflow_server: MlflowServer
) -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    env, tap = receiver.env, receiver.tap
    assert tap is not None
    before = {"repo": tree_digest(env.repo / FOLLOW), "history": env.history(FOLLOW)}
    triggered = receiver.count("events_triggered")
    real = tap.alias_sets(FOLLOW)[-1]  # what MLflow sent when champion moved to v2

    # 1. MLflow's delivery again, byte for byte: the same id is not deployed twice.
    assert post(receiver.url, real.headers, real.body) == (200, {"status": "ignored", "reason": "duplicate"})

    # 2. Forgeries, each with a fresh id so the duplicate check cannot be what stops them.
    def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
        delivery_id, stamp = str(uuid.uuid4()), str(ts if ts is not None else int(time.time()))
        return {
            "Content-Type": "application/json",
            "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, stamp, body.decode()),
        }

    wrong_secret = signed(real.body, secret="guessed-secret")
    assert post(receiver.url, wrong_secret, real.body)[0] == 401
    tampered = real.body.replace(b'"version": "%d"' % followed.v2, b'"version": "%d"' % followed.v1)
    assert tampered != real.body
    moved = {**real.headers, "X-MLflow-Delivery-Id": str(uuid.uuid4())}  # the real signature, a new id
    assert post(receiver.url, moved, real.body)[0] == 401
    assert post(receiver.url, {**real.headers, "X-MLflow-Delivery-Id": str(uuid.uuid4())}, tampered)[0] == 401
    unsigned = {k: v for k, v in signed(real.body).items() if k != "X-MLflow-Signature"}
    assert post(receiver.url, unsigned, real.body)[0] == 401
    stale = signed(real.body, ts=int(time.time()) - 600)
    assert post(receiver.url, stale, real.body) == (400, {"status": "rejected", "reason": "stale_timestamp"})

    # 3. Real deliveries for a model and an alias the receiver was not told to follow.
    mlflow_server.registry().register(STRANGER, linear_model(seed=5))
    mlflow_server.client().set_registered_model_alias(FOLLOW, "challenger", str(followed.v1))
    wait_until(lambda: len(tap.alias_sets(STRANGER)) == 1, 30, "MLflow's delivery for the stranger")
    wait_until(
        lambda: any(d.event["data"].get("alias") == "challenger" for d in tap.alias_sets(FOLLOW)),
        30,
        "MLflow's delivery for the challenger alias",
    )
    assert tap.alias_sets(STRANGER)[0].reply == {"status": "ignored", "reason": "model"}
    assert tap.alias_sets(FOLLOW)[-1].reply == {"status": "ignored", "reason": "alias"}

    assert receiver.count("events_triggered") == triggered  # counted before any answer is sent
    assert receiver.count("events_rejected", reason="bad_signature") == 3
    assert receiver.count("events_rejected", reason="missing_signature") == 1
    assert receiver.count("events_rejected", reason="stale_timestamp") == 1
    time.sleep(1.0)
    assert receiver.idle()
    assert {"repo": tree_digest(env.repo / FOLLOW), "history": env.history(FOLLOW)} == before
    assert env.current(STRANGER) is None and env.history(STRANGER) == []
    assert serving(env.triton_urls[0], FOLLOW, FEATURES)[0] == followed.v2


def test_quick_alias_moves_deploy_one_at_a_time_and_end_at_the_last(
    receiver: Receiver, mlflow_server: MlflowServer
) -> None:
    env, tap, client = receiver.env, receiver.tap, mlflow_server.client()
    assert tap is not None
    registry = mlflow_server.registry()
    v1 = registry.register(BURST, linear_model(seed=1))
    wait_committed(env, BURST, v1, receiver.process.log)
    wait_until(receiver.idle, 60, "the receiver idle")
    v2, v3, v4 = (registry.register(BURST, linear_model(seed=s), alias=None) for s in (2, 3, 4))

    client.set_registered_model_alias(BURST, "champion", str(v2))
    # The deploy the first move started has pinned v2; the next two moves land while it runs.
    wait_until(
        lambda: any(
            j["outcome"] is None and (j["candidate"] or {}).get("version") == v2 for j in journals(env, BURST)
        ),
        60,
        "a deploy of v2 under way",
    )
    client.set_registered_model_alias(BURST, "champion", str(v3))
    client.set_registered_model_alias(BURST, "champion", str(v4))
    wait_committed(env, BURST, v4, receiver.process.log)
    wait_until(receiver.idle, 60, "the receiver idle")

    assert deploys(env, BURST) == [(v1, "committed"), (v2, "committed"), (v4, "committed")]  # v3: collapsed
    runs = env.history(BURST)
    assert all(a["finished_at"] <= b["started_at"] for a, b in zip(runs, runs[1:], strict=False)), (
        "overlapping"
    )
    moves = tap.alias_sets(BURST)[1:]
    assert sorted(d.event["data"]["version"] for d in moves) == sorted(str(v) for v in (v2, v3, v4))
    assert sorted(d.reply["deploy"] for d in moves) == ["merged", "queued", "started"]
    assert serving(env.triton_urls[0], BURST, FEATURES)[0] == v4


def test_a_receiver_killed_mid_deploy_is_repaired_by_recover(
    mlflow_server: MlflowServer, volume: Path, triton: str, tmp_path: Path
) -> None:
    env = Env(
        repo=volume / "models", state=volume / "state", tracking_uri=mlflow_server.url, triton_urls=[triton]
    )
    rx = start_receiver(
        env, tmp_path / "receiver.log",
        "--secret-env", SECRET_ENV, "--mode", "local", "--model", KILLED, "--alias", "champion", *LENIENT_LATENCY,
        TRITONOPS_LEASE_SECONDS="3",
    )  # fmt: skip
    hook = mlflow_server.hook(f"tritonops-killed-{TAG}", rx.url, ["model_version_alias.created"])
    try:
        registry = mlflow_server.registry()
        v1 = registry.register(KILLED, linear_model(seed=1))
        wait_committed(env, KILLED, v1, rx.process.log)
        before = tree_digest(env.repo / KILLED)

        v2 = registry.register(KILLED, linear_model(seed=2))
        wait_until(
            lambda: any(
                j["outcome"] is None and j["phase"] in ("loaded", "ready", "smoked")
                for j in journals(env, KILLED)
            ),
            120,
            "the deploy of v2 past load (Triton holds the candidate)",
        )
        rx.process.kill()  # SIGKILL: no handler, no rollback, the lease stops being renewed
        killed_run = next(j for j in journals(env, KILLED) if j["outcome"] is None)
        assert killed_run["candidate"]["version"] == v2

        env.wait_lease_end(KILLED)
        recovered = env.cli("recover", "--model", KILLED, "--json")
        assert recovered.returncode == 0, recovered.stderr
        assert [(r["run_id"], r["outcome"]) for r in json.loads(recovered.stdout)["runs"]] == [
            (killed_run["run_id"], "rolled_back")
        ]
        assert committed(env, KILLED) == v1
        assert tree_digest(env.repo / KILLED) == before
        assert serving(triton, KILLED, FEATURES)[0] == v1
        assert [p.name.split(".")[0] for p in env.quarantined(KILLED)] == [str(v2)]
        assert SECRET not in rx.log()
    finally:
        mlflow_server.client().delete_webhook(hook)
        rx.process.stop()


# ------------------------------------------------------------------ --mode argo (a stand-in Argo server)
class FakeArgo:
    """Records what is submitted; a workflow stays Running until ``finish`` is set."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.finish = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict[str, Any]) -> None:
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append(("POST", self.path, dict(self.headers.items()), body))
                n = sum(1 for r in fake.requests if r[0] == "POST")
                self._reply(200, {"metadata": {"name": f"tritonops-deploy-wf{n}", "namespace": "tritonops"}})

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(("GET", self.path, dict(self.headers.items()), b""))
                phase = "Succeeded" if fake.finish.is_set() else "Running"
                self._reply(200, {"status": {"phase": phase}})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def submissions(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        return [
            (path, headers, json.loads(body))
            for method, path, headers, body in list(self.requests)
            if method == "POST"
        ]


def test_argo_mode_submits_the_workflow_template_as_argos_api_expects(tmp_path: Path) -> None:
    from hera.workflows.models import WorkflowSubmitRequest
    from mlflow.webhooks.delivery import _generate_hmac_signature

    model, token = f"wh-argo-{TAG}", f"argo-token-{secrets.token_hex(8)}"
    argo = FakeArgo()
    bare = Env(repo=tmp_path / "unused", state=tmp_path / "unused-state", tracking_uri="", triton_urls=[])
    env = {k: v for k, v in bare.env().items() if not k.startswith(("TRITONOPS_", "MLFLOW_TRACKING"))}
    port = free_port()
    process = Process(
        [
            sys.executable,
            "-m",
            "tritonops.cli",
            "webhook",
            "--listen",
            f"127.0.0.1:{port}",
            "--secret-env",
            SECRET_ENV,
            "--mode",
            "argo",
            "--model",
            model,
            "--alias",
            "champion",
            "--argo-insecure",
            "--argo-server",
            argo.url,
            "--argo-namespace",
            "tritonops",
            "--argo-poll-seconds",
            "0.1",
        ],  # fmt: skip
        tmp_path / "receiver.log",
        env={**env, SECRET_ENV: SECRET, "ARGO_TOKEN": token},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/healthz"), 60, "webhook receiver (argo)", process.proc, process.log)

        def deliver(version: int) -> dict[str, Any]:
            body = json.dumps(
                {
                    "entity": "model_version_alias",
                    "action": "created",
                    "timestamp": "2025-10-09T08:53:20+00:00",
                    "data": {"name": model, "alias": "champion", "version": str(version)},
                }
            )
            delivery_id, stamp = str(uuid.uuid4()), str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-MLflow-Delivery-Id": delivery_id,
                "X-MLflow-Timestamp": stamp,
                "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, stamp, body),
            }
            status, reply = post(url, headers, body.encode())
            assert status == 202, reply
            return reply

        assert deliver(1)["deploy"] == "started"
        wait_until(lambda: len(argo.submissions()) == 1, 30, "the first submission")
        assert [deliver(2)["deploy"], deliver(3)["deploy"]] == ["queued", "merged"]  # the workflow runs
        argo.finish.set()
        wait_until(lambda: len(argo.submissions()) == 2, 30, "the follow-up submission")

        def with_work() -> float:
            from prometheus_client.parser import text_string_to_metric_families

            text = urllib.request.urlopen(f"{url}/metrics").read().decode()
            return next(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "tritonops_webhook_models_with_work"
            )

        wait_until(lambda: with_work() == 0, 30, "idle")  # nothing running, nothing queued
        time.sleep(0.5)
        assert len(argo.submissions()) == 2  # three events, two workflows

        template = yaml.safe_load((ROOT / "k8s" / "base" / "workflowtemplate.yaml").read_text())
        parameters = template["spec"]["arguments"]["parameters"]
        declared = {p["name"] for p in parameters}
        required = {p["name"] for p in parameters if "value" not in p}  # no default: must be sent
        for path, headers, body in argo.submissions():
            assert path == "/api/v1/workflows/tritonops/submit"
            assert headers["Authorization"] == f"Bearer {token}"
            parsed = WorkflowSubmitRequest.model_validate(body, strict=True)
            assert parsed.model_dump(by_alias=True, exclude_none=True) == body, (
                "keys Argo's model does not know"
            )
            assert parsed.resource_kind == "WorkflowTemplate"
            assert parsed.resource_name == template["metadata"]["name"] == "tritonops-deploy"
            options = parsed.submit_options
            assert options is not None and options.parameters == [f"model={model}", "alias=champion"]
            sent = {p.split("=", 1)[0] for p in options.parameters}
            assert required <= sent <= declared, (sent, declared)
            assert options.generate_name == f"tritonops-deploy-wh-argo-{TAG}-"
        polled = [path for method, path, _, _ in argo.requests if method == "GET"]
        assert polled and all(p.startswith("/api/v1/workflows/tritonops/tritonops-deploy-wf") for p in polled)
    finally:
        process.stop()
        argo.server.shutdown()
    log = process.log.read_text()
    assert token not in log and SECRET not in log
    assert "submitted workflow tritonops-deploy-wf1" in log
