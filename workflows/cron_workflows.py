"""The Argo CronWorkflows ``tritonops-follow`` and ``tritonops-drift-repair``, defined with Hera.

**tritonops-follow** (every 5 minutes): production follows the registry even when no webhook
arrives. Its first step, ``tritonops follow --json``, resolves every ``MODEL@ALIAS`` of the
ConfigMap key ``TRITONOPS_FOLLOW`` (metadata only: nothing is downloaded or loaded) and prints
the ones whose alias points at a version that is not committed; the second step creates one
Workflow from the WorkflowTemplate ``tritonops-deploy`` per printed model (Argo's own
``resource`` template, ``withParam`` over that list). The deploy itself is the WorkflowTemplate's:
verified on every replica, rolled back on any failure. A target the follower could not check
(alias deleted, registry down) turns its step red for that run; the other targets are still
deployed (``continueOn``).

**tritonops-drift-repair** (every 10 minutes): for every model committed in the repository (a
``current.json``) that no run is working on, ``tritonops status`` (exit 4 when a replica serves
something else than current.json), then ``tritonops recover`` where status did not exit 0.

Both run the image, user, ConfigMap, Secret and volumes of the WorkflowTemplates (common.py).
``concurrencyPolicy: Forbid``: a run still going when the next is due makes the next one skip,
and ``startingDeadlineSeconds`` drops runs the controller missed (it was down) instead of
starting them late in a burst.

Pod Security: the submit step is a ``resource`` template, whose pod is Argo's executor alone
(``init`` and ``main``, no ``wait``; Argo gives both its own restricted securityContext when the
controller sets none). A workflow-level podSpecPatch naming ``wait`` would *add* a ``wait``
container without an image to that pod, so here the patch is on each container template.
"""

from __future__ import annotations

import yaml
from hera.workflows import Container, CronWorkflow, Parameter, Resource, Steps
from hera.workflows import models as m

from workflows import deploy_template
from workflows.common import LABELS, MLFLOW_SECRETS, POD_SPEC_PATCH, Step, container, dump, workflow_settings

FOLLOW_NAME = "tritonops-follow"
# The one ServiceAccount allowed to create workflows (k8s/base/rbac.yaml): the submit step's only.
SUBMITTER_SERVICE_ACCOUNT = "tritonops-follow"
DRIFT_NAME = "tritonops-drift-repair"
FOLLOW_SCHEDULE = "*/5 * * * *"
DRIFT_SCHEDULE = "*/10 * * * *"

# Reads the registry's aliases and the volume's current.json: MLflow's credentials only (no
# Triton key, no S3 keys). Listing committed models reads the volume alone: no credentials.
CHECK_ALIASES = Step("check-aliases", ["follow", "--json"], 240, secrets=MLFLOW_SECRETS)
SUBMIT_DEADLINE = 60
LIST_COMMITTED = Step("list-committed", ["follow", "--committed", "--json"], 60, secrets=())
_MODEL = "{{inputs.parameters.model}}"
STATUS = Step("status", ["status", "--model", _MODEL], 120, inputs=("model",))
RECOVER = Step("recover", ["recover", "--model", _MODEL], deploy_template.RECOVER.deadline, inputs=("model",))

FOLLOW_DEADLINE = CHECK_ALIASES.budget + SUBMIT_DEADLINE
DRIFT_DEADLINE = LIST_COMMITTED.budget + STATUS.budget + RECOVER.budget

# The Workflow the follower creates: the WorkflowTemplate by reference, model and alias only (the
# gates are the template's defaults, i.e. the overlay's). No namespace: the follower's own. No
# owner reference: the follower's workflows are garbage-collected within minutes, and a deleted
# owner would take a running deploy with it.
DEPLOY_MANIFEST = yaml.safe_dump(
    {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{deploy_template.NAME}-",
            "labels": {**LABELS, "app.kubernetes.io/component": "deploy", "tritonops/trigger": "follow"},
            "annotations": {"tritonops/submitted-by": "{{workflow.name}}"},
        },
        "spec": {
            "workflowTemplateRef": {"name": deploy_template.NAME},
            "arguments": {
                "parameters": [
                    {"name": "model", "value": "{{inputs.parameters.model}}"},
                    {"name": "alias", "value": "{{inputs.parameters.alias}}"},
                ]
            },
        },
    },
    sort_keys=False,
)


def _cron(name: str, schedule: str, starting_deadline: int, description: str, **spec: object) -> CronWorkflow:
    component = name.removeprefix("tritonops-")
    return CronWorkflow(
        name=name,
        labels={**LABELS, "app.kubernetes.io/component": component},
        annotations={"workflows.argoproj.io/description": description},
        schedules=[schedule],
        concurrency_policy="Forbid",
        starting_deadline_seconds=starting_deadline,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=5,
        workflow_metadata=m.WorkflowMetadata(labels={**LABELS, "app.kubernetes.io/component": component}),
        **workflow_settings(),
        **spec,
    )


def _container(step: Step) -> Container:
    # The podSpecPatch on the template, not the workflow: see the module's docstring.
    return container(step, pod_spec_patch=POD_SPEC_PATCH)


def build_follow() -> CronWorkflow:
    with _cron(
        FOLLOW_NAME,
        FOLLOW_SCHEDULE,
        120,
        "Every 5 minutes: deploy (tritonops-deploy) every MODEL@ALIAS of TRITONOPS_FOLLOW whose "
        "alias points at a version that is not committed.",
        entrypoint="follow",
        active_deadline_seconds=FOLLOW_DEADLINE,
    ) as cw:
        check = _container(CHECK_ALIASES)
        submit = Resource(
            name="submit-deploy",
            inputs=[Parameter(name="model"), Parameter(name="alias")],
            action="create",
            manifest=DEPLOY_MANIFEST,
            active_deadline_seconds=SUBMIT_DEADLINE,
            service_account_name=SUBMITTER_SERVICE_ACCOUNT,
        )
        with Steps(name="follow"):
            check(name="moved", continue_on=m.ContinueOn(failed=True))
            submit(
                name="deploy",
                with_param="{{steps.moved.outputs.result}}",
                arguments={"model": "{{item.model}}", "alias": "{{item.alias}}"},
            )
    return cw


def build_drift() -> CronWorkflow:
    with _cron(
        DRIFT_NAME,
        DRIFT_SCHEDULE,
        300,
        "Every 10 minutes: tritonops status on every committed model no run is working on, "
        "tritonops recover where a replica drifted from current.json.",
        entrypoint="drift-repair",
        active_deadline_seconds=DRIFT_DEADLINE,
    ) as cw:
        listing = _container(LIST_COMMITTED)
        status = _container(STATUS)
        recover = _container(RECOVER)
        with Steps(name="repair-model", inputs=[Parameter(name="model")]) as repair:
            status(
                name="status",
                arguments={"model": "{{inputs.parameters.model}}"},
                continue_on=m.ContinueOn(failed=True),
            )
            recover(
                name="recover",
                arguments={"model": "{{inputs.parameters.model}}"},
                when="{{steps.status.exitCode}} != 0",
            )
        with Steps(name="drift-repair"):
            listing(name="list")
            repair(
                name="repair",
                with_param="{{steps.list.outputs.result}}",
                arguments={"model": "{{item.model}}"},
            )
    return cw


def follow_yaml() -> str:
    return dump(build_follow(), "workflows/cron_workflows.py")


def drift_yaml() -> str:
    return dump(build_drift(), "workflows/cron_workflows.py")


FOLLOW_OUTPUT = deploy_template.K8S_BASE / "cronworkflow-follow.yaml"
DRIFT_OUTPUT = deploy_template.K8S_BASE / "cronworkflow-drift-repair.yaml"
