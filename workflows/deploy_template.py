"""The Argo WorkflowTemplate ``tritonops-deploy``, defined with Hera.

    argo submit --from workflowtemplate/tritonops-deploy -p model=fraud -p alias=champion

Every task is a container from one image running ``tritonops ...`` against the
shared RWX PVC; the steps hand over through the run's journal on that volume
(``--run-id {{workflow.name}}``). The ``onExit`` handler rolls back when the
workflow did not succeed and then always pushes metrics.

Regenerate the committed YAML with ``make k8s-generate``; a test fails when the
YAML under ``k8s/`` and this file drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from hera.workflows import DAG, Container, Parameter, Steps, WorkflowTemplate
from hera.workflows import models as m

NAME = "tritonops-deploy"
IMAGE = "ghcr.io/tritonops/tritonops:0.1.0"
SERVICE_ACCOUNT = "tritonops-deploy"
PVC = "tritonops-volume"
MOUNT = "/pvc"
CONFIG_MAP = "tritonops-config"
SECRET = "tritonops-secrets"
UID = 10001

# Exit code a step uses for "a dependency did not answer; retrying is safe" (EX_TEMPFAIL).
TEMPFAIL = 75

MODEL = "{{workflow.parameters.model}}"
ALIAS = "{{workflow.parameters.alias}}"
RUN_ID = "{{workflow.name}}"

# (task name, extra CLI args, retried?, deadline seconds). Only steps that are safe to
# repeat are retried, and only on TEMPFAIL: a download, a readiness wait, an inference.
# Load and commit change what replicas hold and are never retried blindly.
DEPLOY_STEPS: list[tuple[str, list[str], bool, int]] = [
    ("snapshot", ["--alias", ALIAS], False, 120),
    ("materialize", [], True, 3600),
    ("load", [], False, 1800),
    ("ready", [], True, 600),
    ("smoke", [], True, 600),
    ("commit", [], False, 900),
]


def _env() -> list[m.EnvVar]:
    secret = [
        # MLflow credentials and the Triton repository-API key come from a Secret, never parameters.
        ("MLFLOW_TRACKING_USERNAME", "mlflow-username"),
        ("MLFLOW_TRACKING_PASSWORD", "mlflow-password"),
        ("MLFLOW_TRACKING_TOKEN", "mlflow-token"),
        ("AWS_ACCESS_KEY_ID", "aws-access-key-id"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key"),
        ("TRITONOPS_TRITON_API_KEY", "triton-api-key"),
    ]
    return [
        m.EnvVar(name="HOME", value="/tmp"),
        m.EnvVar(name="TMPDIR", value="/tmp"),
        m.EnvVar(name="XDG_CACHE_HOME", value="/tmp/.cache"),
        m.EnvVar(name="TRITONOPS_REPO", value=f"{MOUNT}/models"),
        m.EnvVar(name="TRITONOPS_STATE_DIR", value=f"{MOUNT}/state"),
        # Recorded in history and in the registry's tags as who deployed.
        m.EnvVar(name="TRITONOPS_ACTOR", value="argo/{{workflow.name}}"),
    ] + [
        m.EnvVar(
            name=name,
            value_from=m.EnvVarSource(
                secret_key_ref=m.SecretKeySelector(name=SECRET, key=key, optional=True)
            ),
        )
        for name, key in secret
    ]


def _env_from() -> list[m.EnvFromSource]:
    # TRITONOPS_TRITON_URL, TRITONOPS_PUSHGATEWAY, MLFLOW_TRACKING_URI live in a ConfigMap.
    return [m.EnvFromSource(config_map_ref=m.ConfigMapEnvSource(name=CONFIG_MAP))]


def _security() -> m.SecurityContext:
    return m.SecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def _container(name: str, args: list[str], deadline: int, retried: bool) -> Container:
    return Container(
        name=name,
        image=IMAGE,
        image_pull_policy="IfNotPresent",
        command=["tritonops"],
        args=args,
        env=_env(),
        env_from=_env_from(),
        security_context=_security(),
        volume_mounts=[
            m.VolumeMount(name="volume", mount_path=MOUNT),
            m.VolumeMount(name="scratch", mount_path="/tmp"),
        ],
        resources=m.ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"},
            limits={"memory": "2Gi"},
        ),
        active_deadline_seconds=deadline,
        retry_strategy=(
            m.RetryStrategy(
                limit="3",
                retry_policy="OnFailure",
                expression=f"asInt(lastRetry.exitCode) == {TEMPFAIL}",
                backoff=m.Backoff(duration="10s", factor="2", max_duration="5m"),
            )
            if retried
            else None
        ),
    )


def _step_args(step: str, extra: list[str] | None = None) -> list[str]:
    return ["step", step, "--model", MODEL, "--run-id", RUN_ID, *(extra or [])]


def build() -> WorkflowTemplate:
    """The WorkflowTemplate, as Hera objects."""
    with WorkflowTemplate(
        name=NAME,
        labels={"app.kubernetes.io/name": "tritonops", "app.kubernetes.io/component": "deploy"},
        annotations={
            "workflows.argoproj.io/description": (
                "Deploy the MLflow version an alias points at to every Triton replica: "
                "snapshot, materialize, load, ready, smoke, commit; roll back on any failure."
            ),
        },
        entrypoint="deploy",
        on_exit="exit-handler",
        service_account_name=SERVICE_ACCOUNT,
        arguments=[
            Parameter(name="model", description="Registered model name (= Triton model name)"),
            Parameter(name="alias", value="champion", description="Registry alias to deploy"),
        ],
        # One deploy per model at a time across the cluster (tritonops also locks on the volume).
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=f"tritonops-{MODEL}")]),
        active_deadline_seconds=7200,
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=86400, seconds_after_failure=604800),
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=UID,
            run_as_group=UID,
            fs_group=UID,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        automount_service_account_token=True,  # Argo's executor reports results through the API
        volumes=[
            m.Volume(
                name="volume", persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=PVC)
            ),
            m.Volume(name="scratch", empty_dir=m.EmptyDirVolumeSource(size_limit="4Gi")),
        ],
    ) as wt:
        recover = _container("recover", ["recover", "--model", MODEL], 900, False)
        steps = {
            name: _container(name, _step_args(name, extra), deadline, retried)
            for name, extra, retried, deadline in DEPLOY_STEPS
        }
        rollback = _container("rollback", _step_args("rollback"), 900, False)
        report = _container("report", _step_args("report"), 120, False)

        with DAG(name="deploy"):
            previous = recover(name="recover")
            for name, *_ in DEPLOY_STEPS:
                task = steps[name](name=name)
                previous >> task
                previous = task

        # Exit handlers ignore the workflow deadline: give this one its own.
        with Steps(name="exit-handler", active_deadline_seconds=1200):
            rollback(
                name="rollback",
                when="{{workflow.status}} != Succeeded",
                continue_on=m.ContinueOn(failed=True, error=True),
            )
            report(name="report")
    return wt


def to_yaml() -> str:
    header = "# GENERATED by workflows/deploy_template.py — do not edit; run `make k8s-generate`.\n"
    return header + yaml.safe_dump(build().to_dict(), sort_keys=False, width=120)


OUTPUT = Path(__file__).resolve().parent.parent / "k8s" / "base" / "workflowtemplate.yaml"

if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUTPUT.read_text() == to_yaml() else 1)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(to_yaml())
    print(f"wrote {OUTPUT}")
