"""The CronWorkflows' tritonops steps as containers of the built image (`make k8s-e2e`).

A CronWorkflow stamps out Workflows whose spec is its `spec.workflowSpec`: that spec, read from
the committed k8s/base/cronworkflow-*.yaml, is what the runner is given (as the template of one
workflow). Its container templates run as pods exactly as runner.py maps them (command, args,
env/envFrom with the dev overlay's ConfigMap, Secret, securityContext, volumes). Argo's own parts
— the schedule, `withParam`, the `resource` template that creates the deploy Workflow — are not
run here: the follower's printed list is read as `withParam` would read it, the manifest rendered
with each item, and the Workflow it describes run as `cluster.workflow` runs tritonops-deploy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.k8s_e2e.conftest import Cluster
from tests.k8s_e2e.runner import PodmanArgo, StepRun
from tritonops.local.samples import linear_model
from workflows import cron_workflows

pytestmark = [pytest.mark.integration]


def cron_workflow(cluster: Cluster, path: Any, name: str, config: dict[str, str] | None = None) -> PodmanArgo:
    """One Workflow of the CronWorkflow at ``path``, its pods run with podman."""
    cron = yaml.safe_load(path.read_text())
    assert cron["kind"] == "CronWorkflow"
    spec = cron["spec"]["workflowSpec"]
    config_maps = dict(cluster.config_maps)
    config_maps["tritonops-config"] = config_maps["tritonops-config"] | (config or {})
    return PodmanArgo(
        template={
            "apiVersion": cron["apiVersion"],
            "kind": "WorkflowTemplate",
            "metadata": cron["metadata"],
            "spec": spec,
        },  # fmt: skip
        parameters={},
        workflow_name=name,
        image=cluster.image,
        config_maps=config_maps,
        secrets=cluster.secrets,
        claims={"tritonops-volume": cluster.pvc},
        workdir=cluster.root / "workflows" / name,
        namespace="tritonops",
    )


def run_step(wf: PodmanArgo, template: str, inputs: dict[str, str] | None = None) -> StepRun:
    """The container template's pod running its own command and args (``inputs`` substituted
    as Argo substitutes ``{{inputs.parameters.X}}``)."""
    container = wf.templates[template]["container"]
    argv = [*container["command"], *container.get("args", [])]
    for name, value in (inputs or {}).items():
        argv = [a.replace(f"{{{{inputs.parameters.{name}}}}}", value) for a in argv]
    return wf.debug_pod(template, argv)


def printed(run: StepRun) -> Any:
    """What `outputs.result` holds (the step's stdout). The runner merges the container's stderr
    (the log) into one output, in no guaranteed order through podman: the JSON is the one line
    that parses as JSON (every log line starts with a time)."""
    found = []
    for line in run.output.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    assert len(found) == 1, run.output
    return found[0]


def test_the_follow_step_in_the_image_drives_a_deploy(cluster: Cluster) -> None:
    model = "followed"
    follow = {"TRITONOPS_FOLLOW": f"{model}@champion,{model}-absent@champion"}
    version = cluster.registry.register(model, linear_model(seed=1))

    # Tick 1: the alias points at a version not committed. The absent model is reported (the
    # step fails, continueOn lets the others through) and the moved one printed.
    tick = cron_workflow(cluster, cron_workflows.FOLLOW_OUTPUT, "tritonops-follow-1", follow)
    check = run_step(tick, "check-aliases")
    assert check.exit_code == 2, check.output
    assert f"{model}-absent@champion: not checked" in check.output
    items = printed(check)
    assert items == [{"model": model, "alias": "champion"}]

    # The submit step's manifest for that item, and the Workflow it describes.
    [submit] = [t for t in tick.templates.values() if "resource" in t]
    manifest = submit["resource"]["manifest"].replace("{{workflow.name}}", tick.workflow_name)
    for key, value in items[0].items():
        manifest = manifest.replace(f"{{{{inputs.parameters.{key}}}}}", value)
    created = yaml.safe_load(manifest)
    params = {p["name"]: p["value"] for p in created["spec"]["arguments"]["parameters"]}
    assert created["spec"]["workflowTemplateRef"]["name"] == "tritonops-deploy"
    deploy = cluster.workflow(params["model"], params["alias"])
    assert deploy.run() == "Succeeded", deploy.describe()
    assert cluster.current(model)["active_version"] == version

    # Tick 2: nothing moved.
    again = run_step(
        cron_workflow(
            cluster,
            cron_workflows.FOLLOW_OUTPUT,
            "tritonops-follow-2",
            {"TRITONOPS_FOLLOW": f"{model}@champion"},
        ),  # fmt: skip
        "check-aliases",
    )
    assert (again.exit_code, printed(again)) == (0, []), again.output

    # Drift repair's steps in the same image: the committed model is listed, its status read
    # from Triton through the locked repository API (the Secret's key), no drift.
    drift = cron_workflow(cluster, cron_workflows.DRIFT_OUTPUT, "tritonops-drift-repair-1")
    listed = run_step(drift, "list-committed")
    assert listed.exit_code == 0 and {"model": model} in printed(listed), listed.output
    status = run_step(drift, "status", {"model": model})
    assert status.exit_code == 0, status.output
    assert f"serving [{version}] [ok]" in status.output
