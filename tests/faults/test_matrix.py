"""The fault matrix: each scenario breaks one thing during a deploy, with production traffic
running on every replica, and checks what an operator cares about afterwards:

* the exit code;
* current.json (the committed version, or unchanged);
* every live replica answers correct inferences from the committed version;
* failed client requests: 0, except on a replica the scenario takes down;
* nothing lost: committed versions' files intact, failed candidates in quarantine with their files;
* a history record for the run.

`make faults` runs this file alone and prints the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
import pytest
from onnx import TensorProto

from tests.faults.conftest import ROWS, Rig, Row
from tests.helpers import Env, tree_digest
from tests.integration.test_deploy import assert_serving
from tests.integration.test_replicas import Traffic, traffic
from tritonops.local.processes import free_port
from tritonops.local.samples import linear_model, slow_model

pytestmark = pytest.mark.integration


@dataclass
class Ctx:
    rig: Rig
    env: Env
    model: str
    v1: int
    good: onnx.ModelProto
    down: set[str] = field(default_factory=set)  # replica URLs the scenario took down
    history_expected: bool = True
    history_model: str | None = None  # whose history records the run (default: the model)
    lost_ok: set[str] = field(default_factory=set)  # committed version dirs removed on purpose
    committed_version: int | None = None  # when the scenario is expected to commit a new version
    committed_model: onnx.ModelProto | None = None

    def deploy(self, *args: str, model: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return self.env.cli(
            "deploy", "--model", model or self.model, "--alias", "champion", "--json", *args, **env
        )

    def popen_deploy(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tritonops.cli", "deploy", "--model", self.model, "--alias", "champion", "--json", *args],
            # A short lease: a killed deploy's claim runs out within the test (renewed while alive).
            env=self.env.env(TRITONOPS_LEASE_SECONDS="3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip

    def wait_journal(
        self, condition: Callable[[dict], bool], proc: subprocess.Popen[str], timeout_s: float = 120
    ) -> dict:
        deadline = time.monotonic() + timeout_s
        base = self.env.state / "runs" / self.model
        while time.monotonic() < deadline and proc.poll() is None:
            for path in base.glob("*/journal.json"):
                with contextlib.suppress(ValueError, OSError):
                    data = json.loads(path.read_text())
                    if not data.get("outcome") and condition(data):
                        return data
            time.sleep(0.002)
        raise AssertionError("the deploy finished (or stalled) before the fault could be injected")


def onnx_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


# ------------------------------------------------------------------------------ scenarios
def alias_missing(c: Ctx) -> int:
    return c.env.cli("deploy", "--model", c.model, "--alias", "no-such-alias").returncode


def model_missing(c: Ctx) -> int:
    c.history_model = f"{c.model}-ghost"
    return c.env.cli("deploy", "--model", c.history_model, "--alias", "champion").returncode


def mlflow_down_mid_download(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2, extra_weights=96 * 2**20))  # 384 MiB
    proc = c.popen_deploy()
    c.wait_journal(lambda j: bool(j.get("staged_dir")) and not j.get("signature"), proc)
    c.rig.mlflow.kill()
    try:
        proc.communicate(timeout=300)
    finally:
        c.rig.restart_mlflow()
    return proc.returncode


def not_onnx(c: Ctx) -> int:
    c.rig.registry.register_raw(c.model, b"\x08\x07this is a pickle, not an ONNX model" * 50)
    return c.deploy().returncode


def missing_external_data(c: Ctx) -> int:
    model = linear_model(seed=2, extra_weights=1000)
    onnx.external_data_helper.convert_model_to_external_data(model, location="weights.data", size_threshold=0)
    # The .onnx file references weights.data, which is never uploaded.
    c.rig.registry.register_raw(c.model, onnx_bytes(model))
    return c.deploy().returncode


def output_shape_change(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2, n_classes=3))
    return c.deploy().returncode


def input_dtype_change(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2, input_type=TensorProto.DOUBLE), input_example=None)
    return c.deploy().returncode


def nan_output(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2, produce_nan=True))
    return c.deploy().returncode


def latency_regression(c: Ctx) -> int:
    c.rig.registry.register(c.model, slow_model(depth=96))
    return c.deploy().returncode


def replica_down_before_load(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2))
    victim = c.rig.tritons[1]
    c.down.add(str(victim.url))
    victim.kill()
    try:
        return c.deploy().returncode
    finally:
        c.rig.restart_triton(1)


def replica_killed_during_load(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2))
    victim = c.rig.tritons[1]
    proc = c.popen_deploy()
    c.wait_journal(lambda j: j["phase"] == "materialized" and bool(j.get("candidate_model")), proc)
    c.down.add(str(victim.url))
    victim.kill()
    proc.communicate(timeout=300)
    c.rig.restart_triton(1)
    return proc.returncode


def pushgateway_down(c: Ctx) -> int:
    second = linear_model(seed=2)
    c.committed_version = c.rig.registry.register(c.model, second)
    c.committed_model = second
    return c.deploy("--pushgateway", f"http://127.0.0.1:{free_port()}").returncode


def state_dir_not_writable(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2))
    blocker = c.rig.root / "not-a-directory"
    blocker.write_text("a file where the state dir's parent should be")
    c.history_expected = False  # nowhere to write it: that is the fault
    return c.deploy("--state-dir", str(blocker / "state")).returncode


def current_json_corrupted(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2))
    path = c.env.repo / c.model / "current.json"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a torn hand edit
    code = c.deploy().returncode
    assert path.read_bytes() == good[: len(good) // 2], "current.json must not be overwritten"
    path.write_bytes(good)  # the recovery path: restore it, then deploy works again
    second = linear_model(seed=2)
    c.committed_version = c.rig.registry.register(c.model, second)
    c.committed_model = second
    assert c.deploy().returncode == 0
    return code


def two_deploys_at_once(c: Ctx) -> int:
    second = linear_model(seed=2)
    c.committed_version = c.rig.registry.register(c.model, second)
    c.committed_model = second
    procs = [c.popen_deploy() for _ in range(2)]
    codes = sorted(p.wait(300) for p in procs)
    for p in procs:
        p.communicate()
    assert codes == [0, 2], codes
    return 0


def sigkill_then_recover(c: Ctx) -> int:
    c.rig.registry.register(c.model, linear_model(seed=2))
    proc = c.popen_deploy()
    c.wait_journal(lambda j: j["phase"] in ("loaded", "ready"), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    c.env.wait_lease_end(c.model)
    return c.env.cli("recover", "--model", c.model).returncode


def rollback_target_missing(c: Ctx) -> int:
    second = linear_model(seed=2)
    v2 = c.rig.registry.register(c.model, second)
    assert c.deploy().returncode == 0
    import shutil

    shutil.rmtree(c.env.repo / c.model / str(c.v1))  # someone cleaned up by hand
    c.lost_ok.add(str(c.v1))
    c.committed_version, c.committed_model = v2, second
    return c.env.cli("rollback", "--model", c.model, "--to", str(c.v1)).returncode


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Ctx], int]
    exit_code: int
    quarantined: bool = False  # a failed candidate must be kept with its files


SCENARIOS = [
    Scenario("alias missing", alias_missing, 2),
    Scenario("model missing", model_missing, 2),
    Scenario("MLflow unreachable mid-download", mlflow_down_mid_download, 2),
    Scenario("artefact not ONNX", not_onnx, 3, quarantined=True),
    Scenario("ONNX missing its external-data file", missing_external_data, 3, quarantined=True),
    Scenario("output shape change", output_shape_change, 3, quarantined=True),
    Scenario("input dtype change", input_dtype_change, 3, quarantined=True),
    Scenario("NaN output", nan_output, 3, quarantined=True),
    Scenario("latency regression", latency_regression, 3, quarantined=True),
    Scenario("Triton replica down before load", replica_down_before_load, 2),
    Scenario("Triton replica killed during load", replica_killed_during_load, 3, quarantined=True),
    Scenario("Pushgateway down (still commits)", pushgateway_down, 0),
    Scenario("state dir not writable", state_dir_not_writable, 2),
    Scenario("current.json corrupted by hand", current_json_corrupted, 4),
    Scenario("two deploys at once", two_deploys_at_once, 0),
    Scenario("SIGKILL mid-deploy, then recover", sigkill_then_recover, 0, quarantined=True),
    Scenario("rollback target's files missing", rollback_target_missing, 2),
]


def _committed_dirs(env: Env, model: str) -> dict[str, dict[str, str]]:
    base = env.repo / model
    return {p.name: tree_digest(p) for p in base.iterdir() if p.is_dir() and p.name.isdigit()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault(rig: Rig, scenario: Scenario, request: pytest.FixtureRequest) -> None:
    env = rig.env()
    model = "f-" + "".join(ch if ch.isalnum() else "-" for ch in scenario.name.lower()).strip("-")[:40]
    good = linear_model(seed=1)
    v1 = rig.registry.register(model, good)
    assert env.cli("deploy", "--model", model, "--alias", "champion").returncode == 0
    ctx = Ctx(rig, env, model, v1, good)
    before_dirs = _committed_dirs(env, model)
    history_before = {m: len(env.history(m)) for m in (model, f"{model}-ghost")}
    observed = "error"
    clients: list[Traffic] = []
    try:
        with traffic(rig.urls, model) as clients:
            code = scenario.run(ctx)
        observed = f"exit {code}"
        env = rig.env()  # replicas may have been restarted
        assert code == scenario.exit_code
        version = ctx.committed_version or v1
        assert env.current(model)["active_version"] == version
        assert_serving(env, model, version, ctx.committed_model or good)
        for c in clients:
            if c.url not in ctx.down:
                assert c.failed == 0, f"{c.url}: {c.failed} failed requests: {c.errors[:3]}"
        after_dirs = _committed_dirs(env, model)
        for name, digest in before_dirs.items():
            if name not in ctx.lost_ok:
                assert after_dirs.get(name) == digest, f"committed version {name} changed or vanished"
        if scenario.quarantined:
            kept = env.quarantined(model)
            assert kept and all((k / "model.onnx").is_file() or any(k.rglob("*.onnx")) for k in kept)
        if ctx.history_expected:
            who = ctx.history_model or model
            assert len(env.history(who)) > history_before[who], "no history record for the run"
    finally:
        failed = ", ".join(
            f"{c.failed}/{c.ok + c.failed}" + (" (down)" if c.url in ctx.down else "") for c in clients
        )
        ROWS.append(Row(scenario.name, f"exit {scenario.exit_code}", observed, failed or "-", False))
    ROWS[-1].passed = True
