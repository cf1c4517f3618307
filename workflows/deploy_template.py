"""The Argo WorkflowTemplate ``tritonops-deploy``, defined with Hera.

    argo submit --from workflowtemplate/tritonops-deploy -p model=fraud -p alias=champion

Every task is a container from one image running ``tritonops ...`` against the
shared RWX PVC; the steps hand over through the run's journal on that volume
(``--run-id {{workflow.name}}``). The ``onExit`` handler rolls back when the
workflow did not succeed and then always pushes metrics.

What the real engines enforce, and this file respects (tests/workflows/argo_rules.py and
tests/k8s check each one):

* Argo accepts ``activeDeadlineSeconds`` (and, in older releases, ``retryStrategy``) only on
  leaf templates: every deadline here is on a container template, none on the DAG or the
  exit handler's steps.
* A retried step's ``backoff.maxDuration`` is also the deadline Argo gives each attempt's pod,
  so it is never shorter than the step's own deadline; the workflow deadline is at least every
  step's budget added up.
* The namespace enforces Pod Security ``restricted``, and Argo adds its own ``init`` and
  ``wait`` containers to every pod without a securityContext: ``podSpecPatch`` gives them one.

Regenerate the committed YAML with ``make k8s-generate``; a test fails when the
YAML under ``k8s/`` and this file drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from hera.workflows import DAG, Container, Parameter, Steps, WorkflowTemplate
from hera.workflows import models as m

NAME = "tritonops-deploy"
# What `make image` builds. Overlays set the real name and tag with kustomize `images:`
# (k8s/base/kustomizeconfig.yaml lets that transformer reach into the WorkflowTemplate).
IMAGE = "localhost/tritonops:dev"
SERVICE_ACCOUNT = "tritonops-deploy"
PVC = "tritonops-volume"
MOUNT = "/pvc"
CONFIG_MAP = "tritonops-config"
SECRET = "tritonops-secrets"
# Per-model Triton config templates (<model>.pbtxt), generated per overlay by kustomize.
MODEL_CONFIG_MAP = "tritonops-model-config"
MODEL_CONFIG_DIR = "/etc/tritonops/model-config"
UID = 10001

# Exit code a step uses for "a dependency did not answer; retrying is safe" (EX_TEMPFAIL).
TEMPFAIL = 75

MODEL = "{{workflow.parameters.model}}"
ALIAS = "{{workflow.parameters.alias}}"
RUN_ID = "{{workflow.name}}"


@dataclass(frozen=True)
class Step:
    """One container template: its CLI arguments, deadline per attempt and retries.

    Only steps that are safe to repeat are retried, and only on TEMPFAIL: a download, a
    readiness wait, an inference. Load and commit change what replicas hold and are never
    retried blindly.
    """

    name: str
    args: list[str]
    deadline: int  # seconds, per attempt (the pod's activeDeadlineSeconds)
    retries: int = 0

    @property
    def budget(self) -> int:
        """Seconds this step may take in all, retries included.

        Argo stops retrying once ``backoff.maxDuration`` has passed since the first attempt
        started, and also hands that moment to every attempt's pod as its deadline: a
        maxDuration shorter than one attempt kills a slow but healthy first attempt. Twice the
        deadline lets a full-length attempt fail and still be retried.
        """
        return self.deadline * 2 if self.retries else self.deadline


def _step_args(step: str, extra: list[str] | None = None) -> list[str]:
    return ["step", step, "--model", MODEL, "--run-id", RUN_ID, *(extra or [])]


RECOVER = Step("recover", ["recover", "--model", MODEL], 900)
DEPLOY_STEPS: list[Step] = [
    Step("snapshot", _step_args("snapshot", ["--alias", ALIAS]), 120),
    Step("materialize", _step_args("materialize"), 3600, retries=3),
    Step("load", _step_args("load"), 1800),
    Step("ready", _step_args("ready"), 600, retries=3),
    Step("smoke", _step_args("smoke"), 600, retries=3),
    Step("commit", _step_args("commit"), 900),
]
EXIT_STEPS: list[Step] = [
    Step("rollback", _step_args("rollback"), 900),
    Step("report", _step_args("report"), 120),
]
# Every step's budget added up, the exit handler's included. (Argo does not apply the workflow
# deadline to exit-handler pods; counting them keeps this an honest bound on a whole run.)
WORKFLOW_DEADLINE = sum(step.budget for step in [RECOVER, *DEPLOY_STEPS, *EXIT_STEPS])


def _executor_security() -> dict[str, object]:
    """For Argo's own ``init`` and ``wait`` containers (its executor).

    Argo adds them to every pod with no securityContext on a default install, and the
    restricted Pod Security level refuses such a pod. ``POD_SPEC_PATCH`` (merged by Argo into
    every pod of this workflow: strategic merge, by container name) gives them this one, without
    touching the cluster-wide workflow-controller ConfigMap. runAsUser and the seccomp profile
    are also inherited from the pod's securityContext. readOnlyRootFilesystem stays unset, as
    Argo itself leaves it for these two containers (restricted does not require it).
    """
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


POD_SPEC_PATCH = yaml.safe_dump(
    {
        "initContainers": [{"name": "init", "securityContext": _executor_security()}],
        "containers": [{"name": "wait", "securityContext": _executor_security()}],
    },
    sort_keys=False,
)


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
        m.EnvVar(name="TRITONOPS_MODEL_CONFIG_DIR", value=MODEL_CONFIG_DIR),
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
    # Addresses (TRITONOPS_TRITON_URL, TRITONOPS_PUSHGATEWAY, MLFLOW_TRACKING_URI) and the
    # gate settings (TRITONOPS_PARITY_*, TRITONOPS_LATENCY_*) live in a ConfigMap.
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


def _container(step: Step) -> Container:
    return Container(
        name=step.name,
        image=IMAGE,
        image_pull_policy="IfNotPresent",
        command=["tritonops"],
        args=step.args,
        env=_env(),
        env_from=_env_from(),
        security_context=_security(),
        volume_mounts=[
            m.VolumeMount(name="volume", mount_path=MOUNT),
            m.VolumeMount(name="scratch", mount_path="/tmp"),
            m.VolumeMount(name="model-config", mount_path=MODEL_CONFIG_DIR, read_only=True),
        ],
        resources=m.ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"},
            limits={"memory": "2Gi"},
        ),
        active_deadline_seconds=step.deadline,
        retry_strategy=(
            m.RetryStrategy(
                limit=str(step.retries),
                retry_policy="OnFailure",
                expression=f"asInt(lastRetry.exitCode) == {TEMPFAIL}",
                backoff=m.Backoff(duration="10s", factor="2", max_duration=f"{step.budget}s"),
            )
            if step.retries
            else None
        ),
    )


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
        active_deadline_seconds=WORKFLOW_DEADLINE,
        pod_spec_patch=POD_SPEC_PATCH,
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=86400, seconds_after_failure=604800),
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=UID,
            run_as_group=UID,
            fs_group=UID,
            # The volume's root already has this group: never chown the whole NFS tree per pod.
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        automount_service_account_token=True,  # Argo's executor reports results through the API
        volumes=[
            m.Volume(
                name="volume", persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=PVC)
            ),
            m.Volume(name="scratch", empty_dir=m.EmptyDirVolumeSource(size_limit="4Gi")),
            m.Volume(name="model-config", config_map=m.ConfigMapVolumeSource(name=MODEL_CONFIG_MAP)),
        ],
    ) as wt:
        recover = _container(RECOVER)
        steps = {step.name: _container(step) for step in DEPLOY_STEPS}
        rollback, report = (_container(step) for step in EXIT_STEPS)

        with DAG(name="deploy"):
            previous = recover(name="recover")
            for step in DEPLOY_STEPS:
                task = steps[step.name](name=step.name)
                previous >> task
                previous = task

        # No deadline here: Argo refuses activeDeadlineSeconds on a steps template (only leaf
        # templates may have one); rollback and report carry their own.
        with Steps(name="exit-handler"):
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
