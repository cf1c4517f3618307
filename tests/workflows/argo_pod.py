"""The pod Argo's controller creates for one container template, as admission will see it.

Modelled on argo-workflows' `workflow/controller/workflowpod.go` (`createWorkflowPod`,
`newExecContainer`) for the default pod layout of Argo 3.6/3.7/4.x: an `init` container and a
`wait` container running the executor image next to `main` (the template's container, its
command wrapped by the emissary). The executor containers get the controller ConfigMap's
`executor.securityContext` — nothing on a default install — and then `podSpecPatch` (the
workflow's, then the template's) is applied to the whole pod spec by strategic merge, last.

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


def executor_container(name: str, executor: dict[str, Any] | None) -> dict[str, Any]:
    """`newExecContainer`: the controller ConfigMap's `executor` (a Container) supplies
    securityContext, resources and args; nothing else comes from the template."""
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
    return c


def pod_spec(wt: dict[str, Any], template: str, executor: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pod spec for ``template`` of WorkflowTemplate ``wt`` (a container template)."""
    spec = wt["spec"]
    tmpl = {t["name"]: t for t in spec["templates"]}[template]
    assert "container" in tmpl, f"{template} is not a container template"
    main = copy.deepcopy(tmpl["container"])
    main["name"] = "main"
    main["command"] = ["/var/run/argo/argoexec", "emissary", "--", *main.get("command", [])]
    main["volumeMounts"] = [*main.get("volumeMounts", []), dict(VAR_RUN_ARGO)]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.get("serviceAccountName", "default"),
        "initContainers": [executor_container("init", executor)],
        "containers": [executor_container("wait", executor), main],
        "volumes": [*copy.deepcopy(spec.get("volumes", [])), {"name": "var-run-argo", "emptyDir": {}}],
    }
    if "automountServiceAccountToken" in spec:
        pod["automountServiceAccountToken"] = spec["automountServiceAccountToken"]
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
