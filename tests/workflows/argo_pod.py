"""The pod Argo's controller creates for one template, as admission will see it.

Modelled on argo-workflows' `workflow/controller/workflowpod.go` (`createWorkflowPod`,
`newExecContainer`, `setupServiceAccount`) and `operator.go` (`executeResource`) for the
default pod layout of Argo 3.6/3.7/4.x:

* a container template: an `init` container and a `wait` container running the executor image
  next to `main` (the template's container, its command wrapped by the emissary);
* a resource template: `init` and a `main` that is the executor itself (`argoexec resource
  <action>`), no `wait` (unless logs are archived, `archiveLogs`). Argo locks these executor
  containers down itself (`common.MinimalCtrSC()`: non-root uid 8737, no privilege escalation,
  all capabilities dropped, RuntimeDefault seccomp) when the controller sets no
  `executor.securityContext`.

The executor containers of a container template get the controller ConfigMap's
`executor.securityContext` — nothing on a default install — and then `podSpecPatch` (the
workflow's, then the template's) is applied to the whole pod spec by strategic merge, last.

The service account: the template's `serviceAccountName`, else the workflow's. Argo copies
`automountServiceAccountToken` onto the pod only when it is false; when the pod says nothing,
the ServiceAccount's own setting decides (the ServiceAccount admission plugin):
:func:`token_mounted`.

Not modelled: the opt-in init-less layout of Argo >= 4.1 (`initlessPod`, a `supervisor`
container instead of init/wait), artifact plugins and sidecars (we use none).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

EXECUTOR_IMAGE = "argoproj/argoexec:v3.7.0"  # which image does not matter to admission
VAR_RUN_ARGO = {"name": "var-run-argo", "mountPath": "/var/run/argo"}

# Strategic-merge keys of the PodSpec lists we may meet (k8s.io/api core/v1 patchMergeKey).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
}  # fmt: skip


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge patch for a PodSpec, the subset Argo's podSpecPatch needs:
    maps merge recursively (null deletes), keyed lists merge by their key (new keys are
    appended, as upstream), other lists are replaced. `$patch` directives are not supported."""
    if isinstance(patch, dict) and isinstance(original, dict):
        if any(k.startswith("$") for k in patch):
            raise NotImplementedError(f"strategic-merge directives in podSpecPatch: {list(patch)}")
        merged = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(original, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged_list = copy.deepcopy(original)
        for item in patch:
            for i, existing in enumerate(merged_list):
                if existing.get(key) == item.get(key):
                    merged_list[i] = strategic_merge(existing, item)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


# common.MinimalCtrSC(): what Argo gives a resource template's executor containers itself.
MINIMAL_CTR_SC = {
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "runAsNonRoot": True,
    "runAsUser": 8737,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def executor_container(name: str, executor: dict[str, Any] | None, resource: bool = False) -> dict[str, Any]:
    """`newExecContainer`: the controller ConfigMap's `executor` (a Container) supplies
    securityContext, resources and args; nothing else comes from the template. For a resource
    template with no executor securityContext configured, Argo's own minimal one (read-only
    root for `main` only: "always set RO FS once #10787 is fixed")."""
    executor = executor or {}
    c: dict[str, Any] = {
        "name": name,
        "image": executor.get("image", EXECUTOR_IMAGE),
        "imagePullPolicy": executor.get("imagePullPolicy", "IfNotPresent"),
        "command": ["argoexec", name],
        "env": [{"name": "ARGO_CONTAINER_NAME", "value": name}],
        "volumeMounts": [dict(VAR_RUN_ARGO)],
    }
    for field in ("securityContext", "resources", "args"):
        if executor.get(field):
            c[field] = copy.deepcopy(executor[field])
    if resource and "securityContext" not in c:
        c["securityContext"] = copy.deepcopy(MINIMAL_CTR_SC)
        if name in ("init", "wait"):
            del c["securityContext"]["readOnlyRootFilesystem"]
    return c


def pod_spec(
    wt: dict[str, Any], template: str, executor: dict[str, Any] | None = None, archive_logs: bool = False
) -> dict[str, Any]:
    """The pod spec for ``template`` (a container or resource template) of ``wt``: a
    WorkflowTemplate, or a CronWorkflow's :func:`tests.workflows.argo_local.workflow_view`."""
    spec = wt["spec"]
    tmpl = {t["name"]: t for t in spec["templates"]}[template]
    if "resource" in tmpl:
        main = executor_container("main", executor, resource=True)
        main["command"] = ["argoexec", "resource", tmpl["resource"]["action"]]
        init = executor_container("init", executor, resource=True)
        waits = [executor_container("wait", executor, resource=True)] if archive_logs else []
        volumes = [{"name": "var-run-argo", "emptyDir": {}}]
    else:
        assert "container" in tmpl, f"{template} is neither a container nor a resource template"
        main = copy.deepcopy(tmpl["container"])
        main["name"] = "main"
        main["command"] = ["/var/run/argo/argoexec", "emissary", "--", *main.get("command", [])]
        main["volumeMounts"] = [*main.get("volumeMounts", []), dict(VAR_RUN_ARGO)]
        init = executor_container("init", executor)
        waits = [executor_container("wait", executor)]
        volumes = [*copy.deepcopy(spec.get("volumes", [])), {"name": "var-run-argo", "emptyDir": {}}]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": tmpl.get("serviceAccountName") or spec.get("serviceAccountName", "default"),
        "initContainers": [init],
        "containers": [*waits, main],
        "volumes": volumes,
    }
    # setupServiceAccount: only `false` reaches the pod.
    automount = tmpl.get("automountServiceAccountToken", spec.get("automountServiceAccountToken"))
    if automount is False:
        pod["automountServiceAccountToken"] = False
    # addSchedulingConstraints and the security context: the template's own, else the workflow's.
    for field in ("securityContext", "nodeSelector", "tolerations", "affinity", "priorityClassName"):
        value = tmpl.get(field, spec.get(field))
        if value is not None:
            pod[field] = copy.deepcopy(value)
    if "activeDeadlineSeconds" in tmpl:
        pod["activeDeadlineSeconds"] = int(tmpl["activeDeadlineSeconds"])
    for patch in (spec.get("podSpecPatch"), tmpl.get("podSpecPatch")):
        if patch:
            pod = strategic_merge(pod, yaml.safe_load(patch))
    return pod


def token_mounted(pod: dict[str, Any], service_accounts: dict[str, dict[str, Any]]) -> bool:
    """Whether the pod gets its ServiceAccount's API token (what Argo's executor authenticates
    with): the pod's automountServiceAccountToken if set, else the ServiceAccount's, else yes."""
    if "automountServiceAccountToken" in pod:
        return bool(pod["automountServiceAccountToken"])
    sa = service_accounts[pod["serviceAccountName"]]
    return bool(sa.get("automountServiceAccountToken", True))
