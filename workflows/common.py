"""What every tritonops Argo object shares: one image, its pods' security, env and volumes.

The WorkflowTemplates (`deploy_template.py`) and the CronWorkflows (`cron_workflows.py`) build
every container template with :func:`container` and every workflow spec with
:func:`workflow_settings`, so a step of a deploy and a step of the follower run with the same
user, the same read-only root, the same ConfigMap, Secret and volumes.

What the real engines enforce, and these pieces respect (tests/workflows/argo_rules.py and
tests/k8s check each one):

* Argo accepts ``activeDeadlineSeconds`` (and, in older releases, ``retryStrategy``) only on
  leaf templates: every deadline is on a container template.
* A retried step's ``backoff.maxDuration`` is also the deadline Argo gives each attempt's pod,
  so it is never shorter than the step's own deadline.
* The namespace enforces Pod Security ``restricted``, and Argo adds its own ``init`` and
  ``wait`` containers to every pod without a securityContext: :data:`POD_SPEC_PATCH` gives them
  one. It names ``wait``, and a strategic merge *adds* a container it names that the pod lacks:
  on a workflow with a ``resource`` template (its pod has ``init`` and ``main`` only) the patch
  belongs on the container templates, not on the workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from hera.workflows import Container, Parameter
from hera.workflows import models as m

# What `make image` builds. Overlays set the real name and tag with kustomize `images:`
# (k8s/base/kustomizeconfig.yaml lets that transformer reach into the Argo objects).
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
LABELS = {"app.kubernetes.io/name": "tritonops"}
# On every pod of our workflows: what the NetworkPolicies (k8s/base/networkpolicy.yaml) admit to
# Triton's repository API and to the Pushgateway.
STEP_POD_LABELS = {"app.kubernetes.io/name": "tritonops", "app.kubernetes.io/component": "step"}

# Exit code a step uses for "a dependency did not answer; retrying is safe" (EX_TEMPFAIL).
TEMPFAIL = 75
# A step pod's memory (request, limit) unless it says otherwise: the registry steps (the MLflow
# client, flat whatever the model's size). SMALL and PARITY below.
DEFAULT_MEMORY = ("256Mi", "1Gi")


@dataclass(frozen=True)
class Step:
    """One container template: its CLI arguments, deadline per attempt and retries.

    Only steps that are safe to repeat are retried, and only on TEMPFAIL: a download, a
    readiness wait, an inference. Load and commit change what replicas hold and are never
    retried blindly. ``inputs``: the template's input parameters (``{{inputs.parameters.X}}``).
    """

    name: str
    args: list[str]
    deadline: int  # seconds, per attempt (the pod's activeDeadlineSeconds)
    retries: int = 0
    inputs: tuple[str, ...] = field(default=())
    memory: tuple[str, str] = DEFAULT_MEMORY  # (request, limit), from bench/step_memory.py
    # Keys of the Secret the step gets as environment (least privilege); None: every key.
    secrets: tuple[str, ...] | None = None

    @property
    def budget(self) -> int:
        """Seconds this step may take in all, retries included.

        Argo stops retrying once ``backoff.maxDuration`` has passed since the first attempt
        started, and also hands that moment to every attempt's pod as its deadline: a
        maxDuration shorter than one attempt kills a slow but healthy first attempt. Twice the
        deadline lets a full-length attempt fail and still be retried.
        """
        return self.deadline * 2 if self.retries else self.deadline


def _executor_security() -> dict[str, object]:
    """For Argo's own ``init`` and ``wait`` containers (its executor).

    Argo adds them to every pod with no securityContext on a default install, and the
    restricted Pod Security level refuses such a pod. ``POD_SPEC_PATCH`` (merged by Argo into
    the pod: strategic merge, by container name) gives them this one, without touching the
    cluster-wide workflow-controller ConfigMap. runAsUser and the seccomp profile are also
    inherited from the pod's securityContext. readOnlyRootFilesystem stays unset, as Argo
    itself leaves it for these two containers (restricted does not require it).
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


MLFLOW_SECRETS = ("mlflow-username", "mlflow-password", "mlflow-token")


def env(extra: list[m.EnvVar] | None = None, secrets: tuple[str, ...] | None = None) -> list[m.EnvVar]:
    secret = [
        # MLflow credentials and the Triton repository-API key come from a Secret, never parameters.
        ("MLFLOW_TRACKING_USERNAME", "mlflow-username"),
        ("MLFLOW_TRACKING_PASSWORD", "mlflow-password"),
        ("MLFLOW_TRACKING_TOKEN", "mlflow-token"),
        ("AWS_ACCESS_KEY_ID", "aws-access-key-id"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key"),
        ("TRITONOPS_TRITON_API_KEY", "triton-api-key"),
    ]
    # The repository-API key is required (fail closed: without it the pod does not start, and
    # Triton refuses to start unlocked); the MLflow and S3 credentials depend on the deployment.
    required = {"triton-api-key"}
    return (
        [
            m.EnvVar(name="HOME", value="/tmp"),
            m.EnvVar(name="TMPDIR", value="/tmp"),
            m.EnvVar(name="XDG_CACHE_HOME", value="/tmp/.cache"),
            m.EnvVar(name="TRITONOPS_REPO", value=f"{MOUNT}/models"),
            m.EnvVar(name="TRITONOPS_STATE_DIR", value=f"{MOUNT}/state"),
            m.EnvVar(name="TRITONOPS_MODEL_CONFIG_DIR", value=MODEL_CONFIG_DIR),
            # Recorded in history and in the registry's tags as who deployed.
            m.EnvVar(name="TRITONOPS_ACTOR", value="argo/{{workflow.name}}"),
        ]
        + [
            m.EnvVar(
                name=name,
                value_from=m.EnvVarSource(
                    secret_key_ref=m.SecretKeySelector(
                        name=SECRET, key=key, optional=key not in required or None
                    )
                ),
            )
            for name, key in secret
            if secrets is None or key in secrets
        ]
        + list(extra or [])
    )


def env_from() -> list[m.EnvFromSource]:
    # Addresses (TRITONOPS_TRITON_URL, TRITONOPS_PUSHGATEWAY, MLFLOW_TRACKING_URI), the gate
    # settings (TRITONOPS_PARITY_*, TRITONOPS_LATENCY_*) and the followed aliases
    # (TRITONOPS_FOLLOW) live in a ConfigMap.
    return [m.EnvFromSource(config_map_ref=m.ConfigMapEnvSource(name=CONFIG_MAP))]


def security() -> m.SecurityContext:
    return m.SecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def retry_strategy(step: Step) -> m.RetryStrategy | None:
    if not step.retries:
        return None
    return m.RetryStrategy(
        limit=str(step.retries),
        retry_policy="OnFailure",
        expression=f"asInt(lastRetry.exitCode) == {TEMPFAIL}",
        backoff=m.Backoff(duration="10s", factor="2", max_duration=f"{step.budget}s"),
    )


# Peak RSS measured per step (bench/step_memory.py, bench/RESULTS.md): the registry steps stay flat
# (~240 MiB, the MLflow client) whatever the model's size; the steps that run the golden-parity
# gate in their own process (load computes onnxruntime's reference while Triton loads; smoke if it
# has to) hold the model: about 220 MiB + 2 x its size. The gate is skipped above
# TRITONOPS_PARITY_MAX_BYTES (2 GiB by default): 220 MiB + 4 GiB fits the 5 GiB limit.
SMALL = ("128Mi", "512Mi")
PARITY = ("1Gi", "5Gi")


def container(
    step: Step, extra_env: list[m.EnvVar] | None = None, pod_spec_patch: str | None = None
) -> Container:
    """The container template of ``step``: ``tritonops <args>`` in the one image."""
    return Container(
        name=step.name,
        image=IMAGE,
        image_pull_policy="IfNotPresent",
        command=["tritonops"],
        args=step.args,
        inputs=[Parameter(name=name) for name in step.inputs] or None,
        env=env(extra_env, step.secrets),
        env_from=env_from(),
        security_context=security(),
        volume_mounts=[
            m.VolumeMount(name="volume", mount_path=MOUNT),
            m.VolumeMount(name="scratch", mount_path="/tmp"),
            m.VolumeMount(name="model-config", mount_path=MODEL_CONFIG_DIR, read_only=True),
        ],
        resources=m.ResourceRequirements(
            requests={"cpu": "100m", "memory": step.memory[0]},
            limits={"memory": step.memory[1]},
        ),
        active_deadline_seconds=step.deadline,
        retry_strategy=retry_strategy(step),
        pod_spec_patch=pod_spec_patch,
    )


def workflow_settings() -> dict[str, Any]:
    """Keyword arguments every workflow spec of ours takes (WorkflowTemplate or CronWorkflow):
    identity, pod security, volumes and clean-up."""
    return {
        "service_account_name": SERVICE_ACCOUNT,
        "pod_metadata": m.Metadata(labels=dict(STEP_POD_LABELS)),
        "pod_gc": m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        "ttl_strategy": m.TTLStrategy(seconds_after_success=86400, seconds_after_failure=604800),
        "security_context": m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=UID,
            run_as_group=UID,
            fs_group=UID,
            # The volume's root already has this group: never chown the whole NFS tree per pod.
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        "automount_service_account_token": True,  # Argo's executor reports results through the API
        "volumes": [
            m.Volume(
                name="volume", persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=PVC)
            ),
            m.Volume(name="scratch", empty_dir=m.EmptyDirVolumeSource(size_limit="4Gi")),
            m.Volume(name="model-config", config_map=m.ConfigMapVolumeSource(name=MODEL_CONFIG_MAP)),
        ],
    }


# A plain scalar YAML 1.2 (kubectl, the API server, Argo) reads as a number, boolean or null.
# PyYAML speaks YAML 1.1 and leaves some of these unquoted (`1e-05`: a string to it, a float to
# them): every string that looks like one is quoted.
_YAML12_NOT_STRING = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|true|True|TRUE|false|False|FALSE|null|Null|NULL|~"
)


class _Dumper(yaml.SafeDumper):
    pass


_SAFE_STR = yaml.SafeDumper.yaml_representers[str]


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if _YAML12_NOT_STRING.fullmatch(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return _SAFE_STR(dumper, value)  # Hera's own (block style for multi-line strings)


_Dumper.add_representer(str, _str)


def dump(obj: Any, source: str) -> str:
    """The committed YAML of a Hera object, with the header saying where it comes from."""
    header = f"# GENERATED by {source} — do not edit; run `make k8s-generate`.\n"
    return header + yaml.dump(obj.to_dict(), Dumper=_Dumper, sort_keys=False, width=120)
