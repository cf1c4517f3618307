"""A run's lease: a live Argo run (steps in separate processes) is never undone by anyone else.

Each step is the real `tritonops step` CLI against a real Triton and MLflow registry, exactly as the
workflow's containers run it; between two steps no process holds anything, only the lease.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import Env, Registry, tree_digest
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def step(env: Env, name: str, model: str, run_id: str, *extra: str, **env_extra: str):
    return env.cli("step", name, "--model", model, "--run-id", run_id, *extra, **env_extra)


def wait_lease_end(env: Env, model: str, timeout_s: float = 30) -> None:
    lease = json.loads((env.state / "leases" / f"{model}.json").read_text())
    assert lease["expires_at"] - time.time() < timeout_s
    while time.time() <= lease["expires_at"] + 0.1:
        time.sleep(0.1)


def test_cli_is_refused_between_two_steps_of_a_live_run_which_then_commits(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2))
    run = "wf-live-1"
    assert step(env, "snapshot", model_name, run, "--alias", "champion").returncode == 0
    assert step(env, "materialize", model_name, run).returncode == 0
    assert step(env, "load", model_name, run).returncode == 0

    # Between two steps: what `status` used to recommend, and the other two ways in.
    status = env.cli("status", "--model", model_name, "--json")
    assert json.loads(status.stdout)["in_progress"]["run_id"] == run
    human = env.cli("status", "--model", model_name)
    assert f"in progress: run {run}" in human.stdout and "interrupted" not in human.stdout
    for args in (
        ("recover", "--model", model_name),
        ("deploy", "--model", model_name, "--alias", "champion"),
        ("rollback", "--model", model_name, "--to", "1"),
    ):
        refused = env.cli(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"run {run}" in refused.stderr and "holds its lease until" in refused.stderr
    # Each refused attempt is on record.
    refusals = [r for r in env.history(model_name) if r["error"] and r["error"]["step"] == "precondition"]
    assert [r["error"]["type"] for r in refusals] == [
        "Busy",
        "Busy",
    ]  # deploy and rollback; recover is no run

    for name in ("ready", "smoke", "commit"):
        result = step(env, name, model_name, run)
        assert result.returncode == 0, (name, result.stdout, result.stderr)
    assert env.current(model_name)["active_version"] == v2
    assert json.loads(env.cli("status", "--model", model_name, "--json").stdout)["in_progress"] is None


def test_expired_lease_is_recovered_and_the_dead_runs_next_step_does_not_pass(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    registry.register(model_name, linear_model(seed=2))
    before = tree_digest(env.repo / model_name)
    run = "wf-dead-1"
    short = {"TRITONOPS_LEASE_SECONDS": "1"}
    assert step(env, "snapshot", model_name, run, "--alias", "champion", **short).returncode == 0
    assert step(env, "materialize", model_name, run, **short).returncode == 0
    assert step(env, "load", model_name, run, **short).returncode == 0
    wait_lease_end(env, model_name)  # the workflow was terminated: nothing renews its lease

    status = env.cli("status", "--model", model_name)
    assert "interrupted runs: ['wf-dead-1']" in status.stdout
    recovered = env.cli("recover", "--model", model_name, "--json")
    assert recovered.returncode == 0, recovered.stderr
    assert [r["outcome"] for r in json.loads(recovered.stdout)["runs"]] == ["rolled_back"]
    assert tree_digest(env.repo / model_name) == before

    late = step(env, "ready", model_name, run)
    assert late.returncode == 3, late.stdout  # not green: this run was undone
    assert "already ended rolled_back" in late.stdout


def test_next_workflows_snapshot_repairs_a_terminated_run(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2))
    short = {"TRITONOPS_LEASE_SECONDS": "6"}
    assert step(env, "snapshot", model_name, "wf-a", "--alias", "champion", **short).returncode == 0
    assert step(env, "materialize", model_name, "wf-a", **short).returncode == 0
    assert step(env, "load", model_name, "wf-a", **short).returncode == 0

    # While wf-a's lease is live, the next workflow is refused, not allowed to undo it.
    early = step(env, "snapshot", model_name, "wf-b", "--alias", "champion")
    assert early.returncode == 2 and "run wf-a" in early.stderr
    wait_lease_end(env, model_name)

    snap = step(env, "snapshot", model_name, "wf-c", "--alias", "champion")
    assert snap.returncode == 0, snap.stderr
    assert "repairing interrupted runs wf-a (rolled_back)" in snap.stdout
    for name in ("materialize", "load", "ready", "smoke", "commit"):
        result = step(env, name, model_name, "wf-c")
        assert result.returncode == 0, (name, result.stdout, result.stderr)
    assert env.current(model_name)["active_version"] == v2
