"""Who can reach Triton, the Pushgateway and their metrics, read from the built overlays.

NetworkPolicy's ingress rules evaluated as the API documents them (a pod selected by any
policy admits only what one of their rules allows; a rule's peers are ORed, a peer's namespace
and pod selectors ANDed; a namespace's `kubernetes.io/metadata.name` label is its name), against
the labels the shipped objects really carry: Triton's and the Pushgateway's pod templates, and
the podMetadata of every workflow. No CNI runs here: whether the cluster enforces policies is
the cluster's (README, Running on Kubernetes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.k8s.manifests import OVERLAYS, build, by_kind, one
from tests.k8s.manifests import selector_matches as matches

NAMESPACE = "tritonops"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]


def admitted(policies: list[dict[str, Any]], source: Pod, target: Pod, port: int) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", NAMESPACE) == target.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], target.labels)
    ]
    if not selecting:
        return True  # no policy selects it: Kubernetes admits everything
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports is not None and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from")
            if peers is None or any(_peer(peer, source, target.namespace) for peer in peers):
                return True
    return False


def _peer(peer: dict[str, Any], source: Pod, policy_namespace: str) -> bool:
    assert "ipBlock" not in peer, "pod traffic is judged by labels here; an ipBlock needs its own test"
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        in_namespace = source.namespace == policy_namespace
    else:
        in_namespace = matches(namespaces, {"kubernetes.io/metadata.name": source.namespace})
    pods = peer.get("podSelector")
    return in_namespace and (pods is None or matches(pods, source.labels))


def _pod_labels(resources: list[dict[str, Any]], deployment: str) -> dict[str, str]:
    return dict(one(resources, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def _workflow_pod_labels(resources: list[dict[str, Any]]) -> list[dict[str, str]]:
    specs = [w["spec"] for w in by_kind(resources, "WorkflowTemplate")]
    specs += [c["spec"]["workflowSpec"] for c in by_kind(resources, "CronWorkflow")]
    assert len(specs) == 4
    return [dict(s["podMetadata"]["labels"]) for s in specs]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(request.param)


CLIENTS = {"dev": "default", "prod": "fraud-api"}
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})


def test_only_steps_clients_and_prometheus_reach_triton(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, resources = overlay
    policies = by_kind(resources, "NetworkPolicy")
    triton = Pod(NAMESPACE, _pod_labels(resources, "triton"))
    ports = {
        p["containerPort"]
        for p in one(resources, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports == {8000, 8001, 8002}
    for labels in _workflow_pod_labels(resources):
        step = Pod(NAMESPACE, labels)
        assert admitted(policies, step, triton, 8000) and admitted(policies, step, triton, 8001)
        assert not admitted(policies, step, triton, 8002)
    client = Pod(CLIENTS[name], {"app": "fraud-api"})
    assert admitted(policies, client, triton, 8000) and admitted(policies, client, triton, 8001)
    assert not admitted(policies, client, triton, 8002)
    assert admitted(policies, PROMETHEUS, triton, 8002)
    assert not admitted(policies, PROMETHEUS, triton, 8000)
    for stranger in (
        Pod(NAMESPACE, {"app": "debug-shell"}),  # a pod in our namespace that is not a step
        Pod("other-team", {"app": "fraud-api"}),  # a namespace the overlay does not name
        Pod("other-team", {"app.kubernetes.io/name": "tritonops", "app.kubernetes.io/component": "step"}),
        Pod("other-team", {"app.kubernetes.io/name": "prometheus"}),
    ):
        for port in (8000, 8001, 8002):
            assert not admitted(policies, stranger, triton, port), (stranger, port)


def test_only_steps_and_prometheus_reach_the_pushgateway(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, resources = overlay
    policies = by_kind(resources, "NetworkPolicy")
    gateway = Pod(NAMESPACE, _pod_labels(resources, "pushgateway"))
    for labels in _workflow_pod_labels(resources):
        assert admitted(policies, Pod(NAMESPACE, labels), gateway, 9091)
    assert admitted(policies, PROMETHEUS, gateway, 9091)
    for stranger in (
        Pod(NAMESPACE, {"app": "debug-shell"}),
        Pod(NAMESPACE, _pod_labels(resources, "triton")),
        Pod(CLIENTS[name], {"app": "fraud-api"}),
        Pod("other-team", {"app.kubernetes.io/name": "tritonops", "app.kubernetes.io/component": "step"}),
    ):
        assert not admitted(policies, stranger, gateway, 9091), stranger


def test_everything_else_in_the_namespace_admits_nothing(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = overlay
    policies = by_kind(resources, "NetworkPolicy")
    step = Pod(NAMESPACE, _workflow_pod_labels(resources)[0])
    assert not admitted(policies, step, step, 8080)  # a step pod accepts no connection
    assert not admitted(policies, Pod(NAMESPACE, {}), Pod(NAMESPACE, {"app": "anything"}), 443)


def test_the_evaluator_admits_what_no_policy_selects_and_honours_port_lists() -> None:
    """The rules above would hold vacuously if the evaluator refused everything."""
    target = Pod(NAMESPACE, {"app": "x"})
    source = Pod("elsewhere", {})
    assert admitted([], source, target, 1)
    policy = {
        "metadata": {"name": "p"},
        "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"ports": [{"port": 80}]}]},
    }
    assert admitted([policy], source, target, 80) and not admitted([policy], source, target, 81)
