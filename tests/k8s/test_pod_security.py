"""Pod Security `restricted` for every pod the namespace will admit: each workflow step's pod as
Argo builds it (its own `init` and `wait` containers included) and the Deployments' pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s import pod_security
from tests.k8s.manifests import OVERLAYS, build, by_kind, one
from tests.workflows import argo_pod


@pytest.fixture(scope="module", params=OVERLAYS)
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def _wt(resources: list[dict[str, Any]]) -> dict[str, Any]:
    [wt] = by_kind(resources, "WorkflowTemplate")
    return wt


def test_namespace_enforces_restricted(resources: list[dict[str, Any]]) -> None:
    [ns] = by_kind(resources, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_workflow_pod_is_admitted_under_restricted(resources: list[dict[str, Any]]) -> None:
    """Argo's default install gives its executor containers no securityContext: the template's
    podSpecPatch must make the whole pod comply, the rollback's included."""
    import kubernetes_validate

    wt = _wt(resources)
    pods = {t["name"]: argo_pod.pod_spec(wt, t["name"]) for t in wt["spec"]["templates"] if "container" in t}
    assert {"rollback", "report", "commit"} <= set(pods)
    for name, pod in pods.items():
        assert [c["name"] for c in pod["initContainers"]] == ["init"]
        assert [c["name"] for c in pod["containers"]] == ["wait", "main"], "the patch adds no container"
        assert pod_security.violations(pod) == [], name
        # What Argo submits is a valid Pod once patched (a patch can break it, too).
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod}, "1.30", strict=True
        )


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
