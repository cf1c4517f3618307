"""The Argo WorkflowTemplates ``tritonops-deploy`` and ``tritonops-rollback``, defined with Hera.

    argo submit --from workflowtemplate/tritonops-deploy -p model=fraud -p alias=champion
    argo submit --from workflowtemplate/tritonops-deploy -p model=fraud --entrypoint deploy-allow-interface-change
    argo submit --from workflowtemplate/tritonops-rollback -p model=fraud -p to=7

Every task is a container from one image running ``tritonops ...`` against the shared RWX PVC;
the steps hand over through the run's journal on that volume (``--run-id {{workflow.name}}``).
The ``onExit`` handler — the same in both templates — rolls back when the workflow did not
succeed and then always pushes metrics.

Entry points of ``tritonops-deploy``: ``deploy`` (the default), ``deploy-allow-interface-change``
(the same chain; ``materialize`` accepts a candidate whose inputs/outputs differ) and ``recover``.
``tritonops-rollback`` returns production to an earlier committed version with
``tritonops rollback --to``: load, ready, smoke (with the same gates) and commit, as a deploy.

The gate settings are parameters of both (``parity-rtol``, ``parity-atol``, ``latency-requests``,
``latency-budget-ms``, ``latency-factor``), handed to every step as the environment variables the
CLI reads. Their defaults here are the CLI's (GateSettings); each overlay copies its own
``tritonops-config`` values over them (kustomize ``replacements``), so a workflow submitted
without them gates exactly as the overlay says. Parameters never carry secrets.

Deadlines (see common.py): every one is on a container template; the workflow deadline is
every step's budget on the longest entry point added up, the exit handler's included.

The steps, their order, deadlines and retries are the step table's (``tritonops/core/steps.py``).
Regenerate the committed YAML with ``make k8s-generate`` (``workflows/outputs.py`` writes every
generated Argo object); a test fails when the YAML under ``k8s/`` and the Python drift apart.
"""

from __future__ import annotations

from pathlib import Path

from hera.workflows import DAG, Container, Parameter, Steps, WorkflowTemplate
from hera.workflows import models as m

from tritonops.core import steps
from tritonops.engine.settings import GateSettings
from workflows.common import (  # noqa: F401 - names the tests and the e2e stand-in read
    DEFAULT_MEMORY,
    IMAGE,
    LABELS,
    MODEL_CONFIG_DIR,
    MODEL_CONFIG_MAP,
    PARITY,
    POD_SPEC_PATCH,
    PVC,
    SERVICE_ACCOUNT,
    SMALL,
    TEMPFAIL,
    UID,
    Step,
    container,
    dump,
    workflow_settings,
)

NAME = "tritonops-deploy"
ROLLBACK_NAME = "tritonops-rollback"

MODEL = "{{workflow.parameters.model}}"
ALIAS = "{{workflow.parameters.alias}}"
TO = "{{workflow.parameters.to}}"
RUN_ID = "{{workflow.name}}"

# (parameter, environment variable the CLI reads, the CLI's default, what it is)
_GATE_DEFAULTS = GateSettings()
GATES: list[tuple[str, str, object, str]] = [
    ("parity-rtol", "TRITONOPS_PARITY_RTOL", _GATE_DEFAULTS.parity_rtol,
     "Golden parity: relative tolerance of Triton's answer vs. onnxruntime (--parity-rtol)"),
    ("parity-atol", "TRITONOPS_PARITY_ATOL", _GATE_DEFAULTS.parity_atol,
     "Golden parity: absolute tolerance (--parity-atol)"),
    ("latency-requests", "TRITONOPS_LATENCY_REQUESTS", _GATE_DEFAULTS.latency_requests,
     "Latency gate: timed requests per replica, 0 turns it off (--latency-requests)"),
    ("latency-budget-ms", "TRITONOPS_LATENCY_BUDGET_MS", _GATE_DEFAULTS.latency_budget_ms,
     "Latency gate: the candidate's p95 budget in ms (--latency-budget-ms)"),
    ("latency-factor", "TRITONOPS_LATENCY_FACTOR", _GATE_DEFAULTS.latency_factor,
     "Latency gate: at most this many times production's p95 (--latency-factor)"),
]  # fmt: skip


def _step_args(step: str, extra: list[str] | None = None) -> list[str]:
    return ["step", step, "--model", MODEL, "--run-id", RUN_ID, *(extra or [])]


# Each step's pod, from the step table (tritonops/core/steps.py): its deadline, retries, memory.
MEMORY = {steps.Memory.REGISTRY: DEFAULT_MEMORY, steps.Memory.SMALL: SMALL, steps.Memory.MODEL: PARITY}
EXTRA_ARGS = {"snapshot": ["--alias", ALIAS]}


def _from_table(spec: steps.StepSpec, name: str | None = None, extra: list[str] | None = None) -> Step:
    args = _step_args(spec.name, [*EXTRA_ARGS.get(spec.name, []), *(extra or [])])
    return Step(name or spec.name, args, spec.deadline_s, retries=spec.retries, memory=MEMORY[spec.memory])


RECOVER = Step("recover", ["recover", "--model", MODEL], 900)
DEPLOY_STEPS: list[Step] = [_from_table(spec) for spec in steps.DEPLOY]
# `materialize` is where the interface gate is: the one step of this entry point that differs.
MATERIALIZE_ALLOW_INTERFACE_CHANGE = _from_table(
    steps.BY_NAME["materialize"], "materialize-allow-interface-change", ["--allow-interface-change"]
)
EXIT_STEPS: list[Step] = [
    Step("rollback", _step_args("rollback"), 900),
    Step("report", _step_args("report"), 120, memory=SMALL),
]
# `tritonops rollback --to` loads, waits for ready, smoke-tests (gates included) and commits in
# one process: as long as those steps may take. Never retried: it changes production.
ROLLBACK_TO = Step(
    "rollback-to-version",
    ["rollback", "--model", MODEL, "--to", TO, "--run-id", RUN_ID],
    sum(spec.deadline_s for spec in steps.ROLLBACK_TO),
    memory=PARITY,
)
# Every step's budget added up, the exit handler's included. (Argo does not apply the workflow
# deadline to exit-handler pods; counting them keeps this an honest bound on a whole run.)
WORKFLOW_DEADLINE = sum(step.budget for step in [RECOVER, *DEPLOY_STEPS, *EXIT_STEPS])
ROLLBACK_DEADLINE = sum(step.budget for step in [RECOVER, ROLLBACK_TO, *EXIT_STEPS])


def gate_parameters() -> list[Parameter]:
    return [
        Parameter(
            name=name,
            value=str(default),
            description=f"{what}. Default: the overlay's tritonops-config {envvar}",
        )
        for name, envvar, default, what in GATES
    ]


def gate_env() -> list[m.EnvVar]:
    """The gate parameters as the environment variables the CLI reads (they win over envFrom)."""
    return [
        m.EnvVar(name=envvar, value=f"{{{{workflow.parameters.{name}}}}}") for name, envvar, _, _ in GATES
    ]


def _template_settings(description: str) -> dict[str, object]:
    return {
        "labels": {**LABELS, "app.kubernetes.io/component": "deploy"},
        "annotations": {"workflows.argoproj.io/description": description},
        "on_exit": "exit-handler",
        # One run per model at a time across the cluster, deploy or rollback (tritonops also
        # locks on the volume and holds a lease).
        "synchronization": m.Synchronization(mutexes=[m.Mutex(name=f"tritonops-{MODEL}")]),
        "pod_spec_patch": POD_SPEC_PATCH,
        **workflow_settings(),
    }


def _exit_handler(rollback: Container, report: Container) -> None:
    """Roll back unless the workflow succeeded, then always report. No deadline here: Argo
    refuses activeDeadlineSeconds on a steps template; rollback and report carry their own."""
    with Steps(name="exit-handler"):
        rollback(
            name="rollback",
            when="{{workflow.status}} != Succeeded",
            continue_on=m.ContinueOn(failed=True, error=True),
        )
        report(name="report")


def build() -> WorkflowTemplate:
    """tritonops-deploy, as Hera objects."""
    with WorkflowTemplate(
        name=NAME,
        entrypoint="deploy",
        arguments=[
            Parameter(name="model", description="Registered model name (= Triton model name)"),
            Parameter(name="alias", value="champion", description="Registry alias to deploy"),
            *gate_parameters(),
        ],
        active_deadline_seconds=WORKFLOW_DEADLINE,
        **_template_settings(
            "Deploy the MLflow version an alias points at to every Triton replica: "
            f"{', '.join(spec.name for spec in steps.DEPLOY)}; roll back on any failure. "
            "Entry points: deploy, deploy-allow-interface-change, recover."
        ),
    ) as wt:
        gates = gate_env()
        recover = container(RECOVER, gates)
        by_name = {step.name: container(step, gates) for step in DEPLOY_STEPS}
        rollback, report = (container(step, gates) for step in EXIT_STEPS)
        allow = dict(by_name, materialize=container(MATERIALIZE_ALLOW_INTERFACE_CHANGE, gates))

        for entry, templates in (("deploy", by_name), ("deploy-allow-interface-change", allow)):
            with DAG(name=entry):
                previous = recover(name="recover")
                for step in DEPLOY_STEPS:
                    task = templates[step.name](name=step.name)
                    previous >> task
                    previous = task

        _exit_handler(rollback, report)
    return wt


def build_rollback() -> WorkflowTemplate:
    """tritonops-rollback, as Hera objects."""
    with WorkflowTemplate(
        name=ROLLBACK_NAME,
        entrypoint="rollback-to",
        arguments=[
            Parameter(name="model", description="Registered model name (= Triton model name)"),
            Parameter(name="to", description="Committed version to return to (see `tritonops history`)"),
            *gate_parameters(),
        ],
        active_deadline_seconds=ROLLBACK_DEADLINE,
        **_template_settings(
            "Return production to an earlier committed version (tritonops rollback --to): load, "
            "ready, smoke with the gates, commit on every replica; the state before is restored "
            "on any failure."
        ),
    ) as wt:
        gates = gate_env()
        recover = container(RECOVER, gates)
        rollback_to = container(ROLLBACK_TO, gates)
        rollback, report = (container(step, gates) for step in EXIT_STEPS)
        with DAG(name="rollback-to"):
            recover(name="recover") >> rollback_to(name=ROLLBACK_TO.name)
        _exit_handler(rollback, report)
    return wt


def to_yaml() -> str:
    return dump(build(), "workflows/deploy_template.py")


def rollback_yaml() -> str:
    return dump(build_rollback(), "workflows/deploy_template.py")


K8S_BASE = Path(__file__).resolve().parent.parent / "k8s" / "base"
OUTPUT = K8S_BASE / "workflowtemplate.yaml"
ROLLBACK_OUTPUT = K8S_BASE / "workflowtemplate-rollback.yaml"
