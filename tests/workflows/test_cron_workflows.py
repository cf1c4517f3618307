"""The CronWorkflows and the on-call entry points, run as written: every container command of the
committed YAML as a local process against a real Triton and MLflow registry, in the order Argo
runs them (tests/workflows/argo_local.py), the follower's Workflow created from its rendered
manifest and run as the WorkflowTemplate it references."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Env, Registry
from tests.workflows import argo_local
from tritonops.local.samples import linear_model
from workflows import cron_workflows, deploy_template

ROOT = Path(__file__).resolve().parents[2]


def _local(env: Env, data: dict[str, Any], name: str, parameters: dict[str, str] | None = None,
           **extra_env: str) -> argo_local.LocalArgo:  # fmt: skip
    pvc = env.repo.parent
    return argo_local.LocalArgo(
        data=data,
        parameters=parameters or {},
        workflow_name=name,
        env=env.env(**extra_env),
        mount_map={
            "/pvc": pvc,
            "/tmp": pvc.parent / "scratch",
            deploy_template.MODEL_CONFIG_DIR: ROOT / "k8s" / "overlays" / "dev" / "model-config",
        },
    )


def _deploy_template() -> dict[str, Any]:
    return argo_local.load(deploy_template.OUTPUT)


def test_the_follow_cron_workflow_is_wired_as_documented() -> None:
    cron = argo_local.load(cron_workflows.FOLLOW_OUTPUT)
    view = argo_local.workflow_view(cron)
    templates = argo_local.templates(view)
    [[check], [deploy]] = templates[view["spec"]["entrypoint"]]["steps"]
    assert templates[check["template"]]["container"]["args"] == ["follow", "--json"]
    assert check["continueOn"] == {"failed": True}  # a target not checked does not stop the others
    assert deploy["withParam"] == f"{{{{steps.{check['name']}.outputs.result}}}}"
    submit = templates[deploy["template"]]
    assert submit["resource"]["action"] == "create"
    assert submit["serviceAccountName"] == cron_workflows.SUBMITTER_SERVICE_ACCOUNT
    assert "podSpecPatch" not in view["spec"] and "podSpecPatch" not in submit


@pytest.mark.integration
def test_the_follow_cron_workflow_deploys_what_moved_and_nothing_else(
    env: Env, registry: Registry, model_name: str, pushgateway: str
) -> None:
    """Tick 1: the model's alias points at a version not committed -> one Workflow created from
    tritonops-deploy, which (run as that template) commits it. Tick 2: nothing moved -> nothing
    created."""
    v1 = registry.register(model_name, linear_model(seed=1))
    cron = argo_local.workflow_view(argo_local.load(cron_workflows.FOLLOW_OUTPUT))
    created: list[dict[str, Any]] = []

    def tick(n: int) -> argo_local.LocalArgo:
        argo = _local(env, cron, f"tritonops-follow-{n}", TRITONOPS_FOLLOW=f"{model_name}@champion")
        assert argo.run_steps(cron["spec"]["entrypoint"], create=created.append) == "Succeeded", argo.log
        return argo

    first = tick(1)
    assert json.loads(first.results["check-aliases"]) == [{"model": model_name, "alias": "champion"}]
    [workflow] = created
    assert workflow["kind"] == "Workflow" and workflow["metadata"]["generateName"] == "tritonops-deploy-"
    assert workflow["metadata"]["annotations"] == {"tritonops/submitted-by": "tritonops-follow-1"}
    ref = workflow["spec"]["workflowTemplateRef"]["name"]
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert ref == deploy_template.NAME and params == {"model": model_name, "alias": "champion"}

    # What the controller then runs: the referenced template with those parameters.
    deploy = _local(
        env, _deploy_template(), f"tritonops-deploy-f{v1}", params, TRITONOPS_PUSHGATEWAY=pushgateway
    )
    assert deploy.run() == "Succeeded", deploy.log
    assert env.current(model_name)["active_version"] == v1  # type: ignore[index]
    assert env.history(model_name)[-1]["actor"] == f"argo/tritonops-deploy-f{v1}"

    second = tick(2)
    assert json.loads(second.results["check-aliases"]) == []
    assert len(created) == 1


@pytest.fixture
def own_volume(registry: Registry, tmp_path: Path) -> Iterator[Env]:
    """A volume and a Triton of the test's own: drift repair walks every committed model, and the
    session's shared volume holds other tests' models left broken on purpose (a corrupt
    current.json must make the cron workflow fail, as it does)."""
    from tritonops.local.processes import start_triton

    (tmp_path / "pvc" / "models").mkdir(parents=True)
    proc, url = start_triton(tmp_path / "pvc" / "models", tmp_path / "triton.log")
    try:
        yield Env(tmp_path / "pvc" / "models", tmp_path / "pvc" / "state", registry.tracking_uri, [url])
    finally:
        proc.stop()


@pytest.mark.integration
def test_the_drift_repair_cron_workflow_repairs_a_replica_that_drifted(
    own_volume: Env, registry: Registry, model_name: str
) -> None:
    """A replica stops serving the committed version (unloaded by hand): status exits 4 and
    recover makes it serve current.json again; a model that did not drift is only looked at."""
    env = own_volume
    v1 = registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    [triton] = env.triton_urls
    request = urllib.request.Request(
        f"{triton}/v2/repository/models/{model_name}/unload", data=b"{}", method="POST"
    )
    urllib.request.urlopen(request, timeout=30).close()
    assert env.cli("status", "--model", model_name).returncode == 4

    cron = argo_local.workflow_view(argo_local.load(cron_workflows.DRIFT_OUTPUT))
    argo = _local(env, cron, "tritonops-drift-repair-1")
    assert argo.run_steps(cron["spec"]["entrypoint"]) == "Succeeded", argo.log
    assert {"model": model_name} in json.loads(argo.results["list-committed"])
    mine = [
        (name, code) for name, code, out in argo.log if f" {model_name} " in f" {out} " or model_name in out
    ]
    assert ("status", 4) in mine and ("recover", 0) in mine, argo.log
    assert env.cli("status", "--model", model_name).returncode == 0
    assert env.current(model_name)["active_version"] == v1  # type: ignore[index]

    again = _local(env, cron, "tritonops-drift-repair-2")
    assert again.run_steps(cron["spec"]["entrypoint"]) == "Succeeded", again.log
    assert not [o for name, code, o in again.log if name == "recover" and model_name in o]


# --- on-call entry points -----------------------------------------------------------------------


@pytest.mark.integration
def test_deploy_allowing_an_interface_change_commits_what_deploy_refuses(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2, n_classes=3))  # one more output class

    refused = _local(env, _deploy_template(), f"tritonops-deploy-ic-{v2}", {"model": model_name})
    assert refused.run() == "Failed"
    assert ("materialize", 3) in refused.ran() and ("rollback", 0) in refused.ran()
    assert env.current(model_name)["active_version"] == 1  # type: ignore[index]
    assert env.history(model_name)[-1]["error"]["type"] == "InterfaceChanged"

    allowed = _local(env, _deploy_template(), f"tritonops-deploy-ica-{v2}", {"model": model_name})
    assert allowed.run("deploy-allow-interface-change") == "Succeeded", allowed.log
    assert ("materialize-allow-interface-change", 0) in allowed.ran()
    assert env.current(model_name)["active_version"] == v2  # type: ignore[index]


@pytest.mark.integration
def test_a_gate_parameter_reaches_the_steps(env: Env, registry: Registry, model_name: str) -> None:
    """`-p latency-budget-ms=0.001`: no real model answers within a microsecond: the latency
    gate fails at smoke and the exit handler restores production."""
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    registry.register(model_name, linear_model(seed=2))
    params = {"model": model_name, "latency-budget-ms": "0.001"}
    argo = _local(env, _deploy_template(), f"tritonops-deploy-gate-{model_name[-6:]}", params)
    assert argo.run() == "Failed"
    assert ("smoke", 3) in argo.ran() and ("rollback", 0) in argo.ran()
    assert env.current(model_name)["active_version"] == 1  # type: ignore[index]
    assert env.history(model_name)[-1]["error"]["type"] == "GateFailed"


@pytest.mark.integration
def test_the_rollback_template_returns_to_a_committed_version(
    env: Env, registry: Registry, model_name: str, pushgateway: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    rollback = argo_local.load(deploy_template.ROLLBACK_OUTPUT)

    # A version never committed: refused before anything changed.
    never = _local(env, rollback, "tritonops-rollback-x1", {"model": model_name, "to": "99"})
    assert never.run() == "Failed"
    assert ("recover", 0) in never.ran() and ("rollback-to-version", 2) in never.ran()
    assert env.current(model_name)["active_version"] == v2  # type: ignore[index]

    back = _local(env, rollback, "tritonops-rollback-x2", {"model": model_name, "to": "1"},
                  TRITONOPS_PUSHGATEWAY=pushgateway)  # fmt: skip
    assert back.run() == "Succeeded", back.log
    assert [name for name, code in back.ran() if code == 0] == ["recover", "rollback-to-version", "report"]
    assert ("rollback", -1) in back.ran()  # the exit handler's: skipped by its `when`
    assert env.current(model_name)["active_version"] == 1  # type: ignore[index]
    last = env.history(model_name)[-1]
    assert (last["kind"], last["outcome"], last["run_id"]) == (
        "rollback",
        "committed",
        "tritonops-rollback-x2",
    )
    assert "pushed to" in back.log[-1][2]
