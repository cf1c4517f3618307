"""Two real Triton replicas on one shared repository, with production traffic running throughout.

A client thread per replica sends unversioned inference requests (what production
clients send) at full speed during every deploy, rollback and failure here, and
counts every request that did not get an answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.helpers import FEATURES, Env, Registry
from tests.integration.test_deploy import assert_serving, ready_versions
from tritonops.adapters.registry import RegistrySettings
from tritonops.core.state import Outcome
from tritonops.engine.deployer import Deployer
from tritonops.engine.settings import Settings
from tritonops.errors import LoadFailed
from tritonops.local.processes import Process, start_triton
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


@dataclass
class Cluster:
    repo: Path
    state: Path
    replicas: list[Process]
    logs: Path

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.replicas if p.url]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pvc = tmp_path_factory.mktemp("pvc2")
    repo = pvc / "models"
    repo.mkdir()
    logs = tmp_path_factory.mktemp("triton-logs")
    replicas = [start_triton(repo, logs / f"triton-{i}.log")[0] for i in range(2)]
    yield Cluster(repo, pvc / "state", replicas, logs)
    for proc in replicas:
        proc.stop()


@pytest.fixture
def env2(cluster: Cluster, registry: Registry) -> Env:
    return Env(
        repo=cluster.repo, state=cluster.state, tracking_uri=registry.tracking_uri, triton_urls=cluster.urls
    )


@dataclass(eq=False)  # threads must stay hashable
class Traffic(threading.Thread):
    """Unversioned requests to one replica, as fast as it answers."""

    url: str
    model: str
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests only

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()

    def run(self) -> None:
        body = {
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [2, 4], "data": FEATURES.ravel().tolist()}
            ]
        }
        with requests.Session() as session:
            while not self.halt.is_set():
                started = time.perf_counter()
                try:
                    resp = session.post(f"{self.url}/v2/models/{self.model}/infer", json=body, timeout=10)
                except requests.RequestException as exc:
                    self.failed += 1
                    self.errors.append(repr(exc)[:200])
                    time.sleep(0.01)
                    continue
                if resp.status_code == 200:
                    self.latencies.append(time.perf_counter() - started)
                    self.ok += 1
                    self.versions.add(resp.json()["model_version"])
                else:
                    self.failed += 1
                    self.errors.append(resp.text[:200])


@contextlib.contextmanager
def traffic(urls: list[str], model: str) -> Iterator[list[Traffic]]:
    clients = [Traffic(url, model) for url in urls]
    for c in clients:
        c.start()
    _until(lambda: all(c.ok + c.failed > 0 for c in clients), "traffic flowing to every replica")
    try:
        yield clients
    finally:
        # Let every client get answers after the change too, then stop them.
        marks = [c.ok + c.failed for c in clients]
        _until(
            lambda: all(c.ok + c.failed > m + 10 for c, m in zip(clients, marks, strict=True)),
            "traffic after",
        )
        for c in clients:
            c.halt.set()
        for c in clients:
            c.join(15)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def assert_no_failures(clients: list[Traffic]) -> None:
    for c in clients:
        assert c.failed == 0, f"{c.url}: {c.failed} failed of {c.ok + c.failed}: {c.errors[:3]}"
        assert c.ok > 20, f"{c.url}: only {c.ok} requests answered"


def no_drift(env: Env, model: str) -> None:
    result = env.cli("status", "--model", model, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["drift"] is False and len(report["replicas"]) == 2


def deploy(env: Env, model: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return env.cli("deploy", "--model", model, "--alias", "champion", "--json", *extra)


def test_good_deploy_zero_failed_requests(env2: Env, registry: Registry, model_name: str) -> None:
    v1 = registry.register(model_name, linear_model(seed=1))
    assert deploy(env2, model_name).returncode == 0
    second = linear_model(seed=2)
    v2 = registry.register(model_name, second)
    with traffic(env2.triton_urls, model_name) as clients:
        result = deploy(env2, model_name)
    assert result.returncode == 0, result.stderr
    assert_no_failures(clients)
    # Production traffic saw only committed versions: never an unverified candidate early.
    assert all(c.versions <= {str(v1), str(v2)} for c in clients)
    assert_serving(env2, model_name, v2, second)
    no_drift(env2, model_name)
    gates = json.loads(result.stdout)["gates"]
    assert gates["parity"]["passed"] and gates["latency"]["passed"]
    assert gates["latency"]["production_p95_ms"] is not None


@pytest.mark.parametrize(
    ("bad", "outcome", "step"),
    [
        (lambda: linear_model(seed=2, n_classes=3), "rejected", "materialize"),
        (lambda: linear_model(seed=2, produce_nan=True), "rolled_back", "smoke"),
    ],
    ids=["interface-change", "fails-smoke"],
)
def test_failed_deploys_zero_failed_requests(
    env2: Env, registry: Registry, model_name: str, bad, outcome: str, step: str
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, bad())
    with traffic(env2.triton_urls, model_name) as clients:
        result = deploy(env2, model_name)
    assert result.returncode == 3
    record = json.loads(result.stdout)
    assert record["outcome"] == outcome and record["error"]["step"] == step
    assert_no_failures(clients)
    assert all(c.versions == {str(v1)} for c in clients)
    assert_serving(env2, model_name, v1, good)
    no_drift(env2, model_name)


def test_manual_rollback_zero_failed_requests(env2: Env, registry: Registry, model_name: str) -> None:
    first = linear_model(seed=1)
    v1 = registry.register(model_name, first)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, linear_model(seed=2))
    assert deploy(env2, model_name).returncode == 0
    with traffic(env2.triton_urls, model_name) as clients:
        result = env2.cli("rollback", "--model", model_name, "--to", str(v1), "--json")
    assert result.returncode == 0, result.stderr
    assert_no_failures(clients)
    assert_serving(env2, model_name, v1, first)
    no_drift(env2, model_name)
    record = json.loads(result.stdout)
    assert record["kind"] == "rollback" and record["actor"]


def test_latency_gate_rejects_a_slow_candidate(env2: Env, registry: Registry, model_name: str) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, linear_model(seed=2))
    # A budget no real inference can meet: the gate must measure, record, and fail.
    result = deploy(env2, model_name, "--latency-budget-ms", "0.001")
    assert result.returncode == 3
    record = json.loads(result.stdout)
    assert record["error"]["type"] == "GateFailed"
    assert record["gates"]["latency"]["passed"] is False
    assert record["gates"]["latency"]["candidate_p95_ms"] > 0.001
    assert_serving(env2, model_name, v1, good)


def test_replica_dies_during_deploy(cluster: Cluster, env2: Env, registry: Registry, model_name: str) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, linear_model(seed=2))
    victim = cluster.replicas[1]
    journal_dir = env2.state / "runs" / model_name
    with traffic(env2.triton_urls, model_name) as clients:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tritonops.cli", "deploy", "--model", model_name, "--alias", "champion",
             "--json", "--latency-requests", "200"],
            env=env2.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_phase(journal_dir, {"materialized", "loaded", "ready"})
        victim.kill()
        out, err = proc.communicate(timeout=300)
    try:
        assert proc.returncode == 3, err
        record = json.loads(out)
        assert record["outcome"] == "rolled_back"
        assert "unreachable" in record["rollback_detail"]
        assert env2.current(model_name)["active_version"] == v1
        healthy = [c for c in clients if c.url != victim.url]
        assert_no_failures(healthy)
        env2.triton_urls = [u for u in cluster.urls if u != victim.url]
        assert_serving(env2, model_name, v1, good)
    finally:
        # Bring the replica back on the same repository: it loads what current.json says.
        restarted, url = start_triton(
            cluster.repo, cluster.logs / "triton-1b.log", http_port=int(victim.url.rsplit(":", 1)[1])
        )
        cluster.replicas[1] = restarted
    env2.triton_urls = cluster.urls
    assert_serving(env2, model_name, v1, good)
    no_drift(env2, model_name)


def wait_for_phase(journal_dir: Path, phases: set[str], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in journal_dir.glob("*/journal.json"):
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text())
                if data["phase"] in phases and not data.get("outcome"):
                    return data
        time.sleep(0.01)
    raise AssertionError(f"no run reached {phases}")


def test_two_deploys_at_once(env2: Env, registry: Registry, model_name: str) -> None:
    registry.register(model_name, linear_model(seed=1))
    other = f"{model_name}-other"
    registry.register(other, linear_model(seed=3))
    cmd = [sys.executable, "-m", "tritonops.cli", "deploy", "--alias", "champion", "--json", "--model"]
    procs = [subprocess.Popen([*cmd, m], env=env2.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in (model_name, model_name, other)]  # fmt: skip
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    same = sorted(r[2] for r in results[:2])
    assert same == [0, 2], results
    busy = next(r for r in results[:2] if r[2] == 2)
    assert "another tritonops run holds the lock" in busy[1]
    assert results[2][2] == 0, results[2][1]  # a different model is not blocked
    no_drift(env2, model_name)
    no_drift(env2, other)


@pytest.mark.parametrize("stop_after", ["snapshot", "materialize", "load", "ready", "smoke"])
def test_killed_between_steps_then_recover(
    env2: Env, registry: Registry, model_name: str, stop_after: str
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, linear_model(seed=2))
    before = {name: (env2.repo / model_name / name).read_bytes() for name in ("current.json", "config.pbtxt")}
    run = f"killed-after-{stop_after}"
    for step in ["snapshot", "materialize", "load", "ready", "smoke"]:
        args = ["step", step, "--model", model_name, "--run-id", run] + (
            ["--alias", "champion"] if step == "snapshot" else []
        )
        assert env2.cli(*args, TRITONOPS_LEASE_SECONDS="3").returncode == 0
        if step == stop_after:
            break
    env2.wait_lease_end(model_name)  # the workflow was terminated: its lease runs out
    result = env2.cli("recover", "--model", model_name)
    assert result.returncode == 0, result.stderr
    assert_consistent(env2, model_name, v1, good, before, expect_quarantine=stop_after != "snapshot")


def assert_consistent(
    env: Env, model: str, version: int, onnx_model, before: dict[str, bytes], expect_quarantine: bool
) -> None:
    for name, data in before.items():
        assert (env.repo / model / name).read_bytes() == data, name
    assert_serving(env, model, version, onnx_model)
    for url in env.triton_urls:
        assert ready_versions(url, f"_candidate.{model}") == []
    assert not (env.repo / f"_candidate.{model}").exists()
    assert sorted(p.name for p in (env.repo / model).iterdir() if p.is_dir()) == [str(version)]
    kept = env.quarantined(model)
    if expect_quarantine:
        assert kept and (kept[-1] / "model.onnx").is_file()
    assert (
        not list((env.state / "staging" / model).glob("*/*"))
        if (env.state / "staging" / model).exists()
        else True
    )
    no_drift(env, model)


@pytest.mark.parametrize(
    ("phase", "condition"),
    [
        ("download", lambda j: j.get("staged_dir") and not j.get("signature")),
        ("load", lambda j: j["phase"] == "materialized" and j.get("candidate_model")),
        ("commit", lambda j: j["phase"] == "committing"),
    ],
)
def test_sigkill_mid_step_then_recover(
    env2: Env, registry: Registry, model_name: str, phase: str, condition
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    # Large enough that the download and the load take a while (external data).
    candidate = linear_model(seed=2, extra_weights=(48 * 2**20) if phase == "download" else 0)
    v2 = registry.register(model_name, candidate)
    before = {name: (env2.repo / model_name / name).read_bytes() for name in ("current.json", "config.pbtxt")}
    journal_dir = env2.state / "runs" / model_name
    proc = subprocess.Popen(
        [sys.executable, "-m", "tritonops.cli", "deploy", "--model", model_name, "--alias", "champion", "--run-id", f"sigkill-{phase}"],
        env=env2.env(TRITONOPS_LEASE_SECONDS="3"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    journal = journal_dir / f"sigkill-{phase}" / "journal.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(ValueError, OSError):
            if condition(json.loads(journal.read_text())):
                break
        time.sleep(0.002)
    assert proc.poll() is None, "the deploy finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)

    env2.wait_lease_end(model_name)
    result = env2.cli("recover", "--model", model_name, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    state = json.loads(journal.read_text())
    if state["outcome"] == "committed":  # killed after current.json was written: finished, not undone
        assert env2.current(model_name)["active_version"] == v2
        assert_serving(env2, model_name, v2, candidate)
        no_drift(env2, model_name)
    else:
        assert state["outcome"] in {"rolled_back", "rejected"}
        assert_consistent(env2, model_name, v1, good, before, expect_quarantine=phase != "download")


def test_replica_set_is_pinned_at_the_snapshot(
    cluster: Cluster, env2: Env, registry: Registry, model_name: str
) -> None:
    """A replica that joins mid-run (a new address behind the headless Service) is not part of it."""
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    new = linear_model(seed=2)
    v2 = registry.register(model_name, new)
    first, joined = cluster.urls
    at_snapshot = Env(env2.repo, env2.state, env2.tracking_uri, [first])
    run = "pinned-1"
    assert (
        at_snapshot.cli(
            "step", "snapshot", "--model", model_name, "--run-id", run, "--alias", "champion"
        ).returncode
        == 0
    )
    for step in ("materialize", "load", "ready", "smoke", "commit"):
        # Later steps see both replicas (the DNS answer grew): the run keeps its own set.
        result = env2.cli("step", step, "--model", model_name, "--run-id", run)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
    assert ready_versions(first, model_name) == [v2]
    assert ready_versions(joined, model_name) == [v1]  # untouched by this run
    assert ready_versions(joined, f"_candidate.{model_name}") == []
    drift = env2.cli("status", "--model", model_name, "--json")
    assert drift.returncode == 4 and json.loads(drift.stdout)["drift"] is True
    assert env2.cli("recover", "--model", model_name).returncode == 0
    assert_serving(env2, model_name, v2, new)


def test_pinned_replica_that_disappears_fails_the_run_and_it_rolls_back(
    cluster: Cluster, env2: Env, registry: Registry, model_name: str, tmp_path: Path
) -> None:
    extra, url = start_triton(cluster.repo, tmp_path / "triton-extra.log")
    try:
        good = linear_model(seed=1)
        v1 = registry.register(model_name, good)
        three = Env(env2.repo, env2.state, env2.tracking_uri, [*cluster.urls, url])
        assert deploy(three, model_name).returncode == 0
        before = {
            name: (env2.repo / model_name / name).read_bytes() for name in ("current.json", "config.pbtxt")
        }
        registry.register(model_name, linear_model(seed=2))
        run = "pinned-gone-1"
        assert (
            three.cli(
                "step", "snapshot", "--model", model_name, "--run-id", run, "--alias", "champion"
            ).returncode
            == 0
        )
        assert three.cli("step", "materialize", "--model", model_name, "--run-id", run).returncode == 0
        extra.stop()  # the replica is gone; DNS no longer returns it
        load = env2.cli("step", "load", "--model", model_name, "--run-id", run)
        assert load.returncode == 75, load.stdout + load.stderr  # temporary: the workflow may retry, then...
        rollback = env2.cli("step", "rollback", "--model", model_name, "--run-id", run)
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        assert "rolled_back" in rollback.stdout or "rejected" in rollback.stdout
        assert_consistent(env2, model_name, v1, good, before, expect_quarantine=True)
    finally:
        extra.stop()


def test_a_load_failing_on_one_replica_is_undone_where_it_changed_something_and_nowhere_else(
    env2: Env, registry: Registry, model_name: str
) -> None:
    """Before commit, a rollback never touches production on any replica; the replica whose
    staging load went through gets it unloaded. Real Tritons; every load/unload is recorded
    (and passed on), and replica 1's staging load fails once replica 0's is under way."""

    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert deploy(env2, model_name).returncode == 0
    registry.register(model_name, linear_model(seed=2))
    deployer = Deployer(
        Settings(
            repo=env2.repo,
            state_dir=env2.state,
            triton_urls=tuple(env2.triton_urls),
            registry=RegistrySettings(tracking_uri=env2.tracking_uri, max_retries=0),
        )
    )
    first, second = deployer.replicas
    calls: list[tuple[str, str, str]] = []

    def spy(replica: object, verb: str) -> Callable[..., None]:
        real = getattr(replica, verb)

        def recorded(model: str, *args: object, **kwargs: object) -> None:
            calls.append((replica.url, verb, model))  # type: ignore[attr-defined]
            if replica is second and verb == "load" and model != model_name:
                time.sleep(0.3)  # replica 0's load has started: it cannot be called back
                raise LoadFailed(f"simulated: {model} failed to load on {second.url}")
            real(model, *args, **kwargs)

        return recorded

    for replica in (first, second):
        for verb in ("load", "unload"):
            setattr(replica, verb, spy(replica, verb))

    with traffic(env2.triton_urls, model_name) as clients:
        journal = deployer.run(model_name, "champion", "one-replica-load-fails")

    assert journal.outcome is Outcome.ROLLED_BACK and journal.error["step"] == "load"
    staging = journal.candidate_model
    assert [c for c in calls if c[2] == model_name] == []  # production: no load, no unload, anywhere
    assert (first.url, "load", staging) in calls and (first.url, "unload", staging) in calls
    assert ready_versions(first.url, staging) == [] and ready_versions(second.url, staging) == []
    assert_no_failures(clients)
    assert_serving(env2, model_name, v1, good)
