"""Pod Security `restricted` for every pod the namespace will admit: each workflow step's pod as
Argo builds it (its own `init` and `wait` containers included), for every WorkflowTemplate and
CronWorkflow, and the Deployments' pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s import pod_security
from tests.k8s.manifests import OVERLAYS, build, by_kind, one
from tests.workflows import argo_local, argo_pod

ARGO_KINDS = ("WorkflowTemplate", "CronWorkflow")


@pytest.fixture(scope="module", params=OVERLAYS)
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def _wt(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return one(resources, "WorkflowTemplate", "tritonops-deploy")


def _workflows(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every Argo object of the build, as the Workflow it makes (CronWorkflows: workflowSpec)."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": argo_local.workflow_view(o)
        for o in resources
        if o["kind"] in ARGO_KINDS
    }


def _pods(resources: list[dict[str, Any]], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Every pod Argo would create for any of our workflows: one per container or resource template."""
    return {
        f"{where}:{t['name']}": argo_pod.pod_spec(wf, t["name"], **kwargs)
        for where, wf in _workflows(resources).items()
        for t in wf["spec"]["templates"]
        if "container" in t or "resource" in t
    }


def api_server_refusals(pod: dict[str, Any]) -> list[str]:
    """What the API server's own pod validation (pkg/apis/core/validation, ValidatePod) refuses
    that the OpenAPI schema lets through: a container without an image."""
    return [
        f"spec.{field}[{c['name']}].image: Required value"
        for field in ("initContainers", "containers")
        for c in pod.get(field) or []
        if not c.get("image")
    ]


def _admitted(name: str, pod: dict[str, Any]) -> None:
    import kubernetes_validate

    assert pod_security.violations(pod) == [], name
    # What Argo submits is a valid Pod once patched (a patch can break it, too).
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod}, "1.30", strict=True
    )
    assert api_server_refusals(pod) == [], name


def test_namespace_enforces_restricted(resources: list[dict[str, Any]]) -> None:
    [ns] = by_kind(resources, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_workflow_pod_is_admitted_under_restricted(resources: list[dict[str, Any]]) -> None:
    """Argo's default install gives its executor containers no securityContext: the podSpecPatch
    must make every pod comply — the rollback's, the on-call entry points', the CronWorkflows' —
    and the follower's submit pod (Argo's executor alone) must comply as Argo builds it."""
    pods = _pods(resources)
    assert {
        "WorkflowTemplate/tritonops-deploy:rollback",
        "WorkflowTemplate/tritonops-deploy:materialize-allow-interface-change",
        "WorkflowTemplate/tritonops-rollback:rollback-to-version",
        "CronWorkflow/tritonops-follow:check-aliases",
        "CronWorkflow/tritonops-follow:submit-deploy",
        "CronWorkflow/tritonops-drift-repair:recover",
    } <= set(pods)
    for name, pod in pods.items():
        assert [c["name"] for c in pod["initContainers"]] == ["init"]
        expected = ["main"] if name.endswith(":submit-deploy") else ["wait", "main"]
        assert [c["name"] for c in pod["containers"]] == expected, f"{name}: the patch adds no container"
        _admitted(name, pod)


def test_the_submit_pod_with_archived_logs_is_admitted_too(resources: list[dict[str, Any]]) -> None:
    """A cluster that archives logs (artifact repository `archiveLogs`) gives resource pods a
    `wait` container as well, locked down by Argo like the others."""
    pods = _pods(resources, archive_logs=True)
    pod = pods["CronWorkflow/tritonops-follow:submit-deploy"]
    assert [c["name"] for c in pod["containers"]] == ["wait", "main"]
    _admitted("submit-deploy", pod)


def test_a_workflow_level_patch_would_break_the_submit_pod(resources: list[dict[str, Any]]) -> None:
    """Why the CronWorkflows carry the podSpecPatch on their container templates: on the
    workflow, its `wait` entry is merged into the resource pod, which has no `wait` container,
    as a new container without an image — a pod the API server refuses."""
    follow = copy.deepcopy(_workflows(resources)["CronWorkflow/tritonops-follow"])
    follow["spec"]["podSpecPatch"] = next(
        t["podSpecPatch"] for t in follow["spec"]["templates"] if "container" in t
    )
    pod = argo_pod.pod_spec(follow, "submit-deploy")
    assert [c["name"] for c in pod["containers"]] == ["main", "wait"]
    assert api_server_refusals(pod) == ["spec.containers[wait].image: Required value"]


def test_every_container_template_of_a_cron_workflow_is_patched(resources: list[dict[str, Any]]) -> None:
    """The other half of the choice above: dropping the patch from one CronWorkflow container
    template makes its pod fail admission."""
    drift = copy.deepcopy(_workflows(resources)["CronWorkflow/tritonops-drift-repair"])
    status = next(t for t in drift["spec"]["templates"] if t["name"] == "status")
    status.pop("podSpecPatch")
    found = pod_security.violations(argo_pod.pod_spec(drift, "status"))
    assert "allow_privilege_escalation: initContainers[init]: allowPrivilegeEscalation is not false" in found


def test_argo_executor_gets_a_token_in_every_workflow_pod(resources: list[dict[str, Any]]) -> None:
    """Argo's executor reports every step's result through the API (and the submit pod creates
    a Workflow) with the pod's ServiceAccount token. Argo only ever copies
    `automountServiceAccountToken: false` onto a pod, so a ServiceAccount with automount off
    leaves every pod without a token, whatever the workflow says."""
    accounts = {sa["metadata"]["name"]: sa for sa in by_kind(resources, "ServiceAccount")}
    for name, pod in _pods(resources).items():
        assert pod["serviceAccountName"] in accounts, name
        assert argo_pod.token_mounted(pod, accounts), f"{name}: no API token for Argo's executor"


def test_the_token_check_catches_an_account_without_automount(resources: list[dict[str, Any]]) -> None:
    accounts = {sa["metadata"]["name"]: copy.deepcopy(sa) for sa in by_kind(resources, "ServiceAccount")}
    accounts["tritonops-deploy"]["automountServiceAccountToken"] = False
    wt = copy.deepcopy(_wt(resources))
    assert wt["spec"]["automountServiceAccountToken"] is True  # what the workflow says does not help
    assert not argo_pod.token_mounted(argo_pod.pod_spec(wt, "commit"), accounts)


def test_only_the_submit_pod_may_create_workflows(resources: list[dict[str, Any]]) -> None:
    """The ServiceAccount whose Role creates workflows is the follower's resource template's
    alone: no pod that runs tritonops holds that token."""
    for name, pod in _pods(resources).items():
        submitter = pod["serviceAccountName"] == "tritonops-follow"
        assert submitter == name.endswith(":submit-deploy"), name
        if submitter:
            assert all(c["image"] == argo_pod.EXECUTOR_IMAGE for c in pod["containers"]), name


def test_without_the_patch_argo_executor_containers_are_refused(resources: list[dict[str, Any]]) -> None:
    """The defect this guards against: the same pods, minus podSpecPatch, on a default install."""
    wt = copy.deepcopy(_wt(resources))
    wt["spec"].pop("podSpecPatch", None)
    found = pod_security.violations(argo_pod.pod_spec(wt, "rollback"))
    assert "allow_privilege_escalation: initContainers[init]: allowPrivilegeEscalation is not false" in found
    assert "capabilities_restricted: containers[wait]: capabilities.drop does not include ALL" in found


def test_an_executor_security_context_from_the_controller_also_passes(
    resources: list[dict[str, Any]],
) -> None:
    """A cluster whose workflow-controller ConfigMap already sets executor.securityContext (the
    other way to comply) is not made worse by our patch."""
    executor = {"securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True}}
    pod = argo_pod.pod_spec(_wt(resources), "materialize", executor=executor)
    assert pod_security.violations(pod) == []
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("name", ["triton", "pushgateway"])
def test_deployment_pods_are_admitted_under_restricted(resources: list[dict[str, Any]], name: str) -> None:
    pod = one(resources, "Deployment", name)["spec"]["template"]["spec"]
    assert pod_security.violations(pod) == []


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (
            lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
            "allow_privilege_escalation",
        ),
        (lambda p: p["securityContext"].pop("runAsNonRoot"), "run_as_non_root"),
        (lambda p: p["securityContext"].pop("seccompProfile"), "seccomp_restricted"),
        (lambda p: p["containers"][0]["securityContext"].update(runAsUser=0), "run_as_user"),
        (
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
            "capabilities",
        ),
        (
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
            "capabilities",
        ),
        (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda p: p.update(hostNetwork=True), "host_namespaces"),
        (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "host_path_volumes"),
        (
            lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
            "restricted_volumes",
        ),
        (lambda p: p["containers"][0]["ports"][0].update(hostPort=8000), "host_ports"),
    ],
)
def test_the_restricted_checks_catch_what_admission_refuses(mutate, check: str) -> None:
    pod = copy.deepcopy(one(build("prod"), "Deployment", "triton")["spec"]["template"]["spec"])
    mutate(pod)
    assert any(v.startswith(check) for v in pod_security.violations(pod)), check
