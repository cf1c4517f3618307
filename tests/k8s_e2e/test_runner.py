"""The podman runner itself: it accepts the committed template, refuses what it does not
implement, and decides dependencies and retries as Argo does. No processes, no containers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s_e2e.conftest import TEMPLATE, overlay_config_maps, overlay_objects
from tests.k8s_e2e.runner import (
    PodmanArgo,
    StepRun,
    Unsupported,
    duration_s,
    evaluate_depends,
    evaluate_retry_expression,
    evaluate_when,
    quantity,
)

LOOPBACK = {
    "TRITONOPS_TRITON_URL": "http://127.0.0.1:8000",
    "TRITONOPS_PUSHGATEWAY": "http://127.0.0.1:9091",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
}


@pytest.fixture(scope="module")
def config_maps() -> dict[str, dict[str, str]]:
    return overlay_config_maps(overlay_objects(), LOOPBACK)


def runner(template: dict[str, Any], config_maps: dict[str, dict[str, str]], tmp_path: Path) -> PodmanArgo:
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in template["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    return PodmanArgo(
        template=template,
        parameters={"model": "fraud"},
        workflow_name="tritonops-deploy-test",
        image="localhost/tritonops:dev",
        config_maps=config_maps,
        # The one key every step requires (Triton's repository-API key); the rest are optional.
        secrets={"tritonops-secrets": {"triton-api-key": "k3y"}},
        claims={c: tmp_path for c in claims},
        workdir=tmp_path,
    )


def named(template: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in template["spec"]["templates"] if t["name"] == name)


def test_the_committed_template_is_within_what_the_runner_implements(config_maps, tmp_path: Path) -> None:
    runner(yaml.safe_load(TEMPLATE.read_text()), config_maps, tmp_path).validate()


def _first_container(t: dict[str, Any]) -> dict[str, Any]:
    return next(x for x in t["spec"]["templates"] if "container" in x)


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "template inputs": lambda t: _first_container(t).__setitem__("inputs", {"parameters": [{"name": "x"}]}),
    "script template": lambda t: _first_container(t).__setitem__("script", {"source": "echo"}),
    "spec hooks": lambda t: t["spec"].__setitem__("hooks", {"exit": {"template": "report"}}),
    "container ports": lambda t: _first_container(t)["container"].__setitem__(
        "ports", [{"containerPort": 1}]
    ),
    "privileged": lambda t: _first_container(t)["container"]["securityContext"].__setitem__(
        "privileged", True
    ),
    "pod sysctls": lambda t: t["spec"]["securityContext"].__setitem__(
        "sysctls", [{"name": "a", "value": "1"}]
    ),
    "loop depends": lambda t: named(t, t["spec"]["entrypoint"])["dag"]["tasks"][1].__setitem__(
        "depends", "recover.AnySucceeded"
    ),
    "regex when": lambda t: named(t, t["spec"]["onExit"])["steps"][0][0].__setitem__(
        "when", "{{workflow.status}} =~ Fail"
    ),
    "unknown placeholder": lambda t: _first_container(t)["container"]["args"].append("{{workflow.uid}}"),
    "retry expression": lambda t: next(x for x in t["spec"]["templates"] if "retryStrategy" in x)[
        "retryStrategy"
    ].__setitem__("expression", "lastRetry.duration < 10"),
    "retry forever": lambda t: next(x for x in t["spec"]["templates"] if "retryStrategy" in x)[
        "retryStrategy"
    ].pop("limit"),
    "hostPath volume": lambda t: t["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
    "env fieldRef": lambda t: _first_container(t)["container"]["env"].append(
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ),
    "podSpecPatch on main": lambda t: t["spec"].__setitem__(
        "podSpecPatch", "containers:\n- name: main\n  resources: {}\n"
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_what_the_runner_does_not_implement_fails_loudly(mutation: str, config_maps, tmp_path: Path) -> None:
    template = copy.deepcopy(yaml.safe_load(TEMPLATE.read_text()))
    MUTATIONS[mutation](template)
    with pytest.raises(Unsupported):
        runner(template, config_maps, tmp_path).validate()


def test_a_missing_configmap_or_secret_key_stops_the_pod_like_the_kubelet(
    config_maps, tmp_path: Path
) -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    _first_container(template)["container"]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "tritonops-secrets", "key": "nope"}}}
    )
    with pytest.raises(ValueError, match="missing"):
        runner(template, config_maps, tmp_path).validate()
    without = {k: v for k, v in config_maps.items() if k != "tritonops-config"}
    with pytest.raises(ValueError, match="does not exist"):
        runner(yaml.safe_load(TEMPLATE.read_text()), without, tmp_path).validate()


@pytest.mark.parametrize(
    ("expr", "results", "expected"),
    [
        ("a", {"a": "Succeeded"}, True),
        ("a", {"a": "Skipped"}, True),
        ("a", {"a": "Failed"}, False),
        ("a", {"a": "Omitted"}, False),
        ("a && b", {"a": "Succeeded", "b": "Failed"}, False),
        ("a || b", {"a": "Succeeded", "b": "Failed"}, True),
        ("a.Failed", {"a": "Failed"}, True),
        ("!a.Succeeded", {"a": "Errored"}, True),
        ("(a.Failed || a.Errored) && b", {"a": "Errored", "b": "Succeeded"}, True),
    ],
)
def test_depends(expr: str, results: dict[str, str], expected: bool) -> None:
    assert evaluate_depends(expr, results) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("Failed != Succeeded", True),
        ("Succeeded != Succeeded", False),
        ("Error == Error && a != b", True),
        ('"Failed" == Failed', True),
    ],
)
def test_when(expr: str, expected: bool) -> None:
    assert evaluate_when(expr) is expected


def test_retries_only_as_the_strategy_says() -> None:
    retry = {"limit": "3", "retryPolicy": "OnFailure", "expression": "asInt(lastRetry.exitCode) == 75"}
    allows = PodmanArgo._retry_allows
    assert allows(retry, StepRun("s", "s", "Failed", 75))  # a dependency did not answer
    assert not allows(retry, StepRun("s", "s", "Failed", 3))  # verification failed: never retried
    assert not allows(retry, StepRun("s", "s", "Errored", 75))  # OnFailure: not for errors
    assert allows({"limit": 1, "retryPolicy": "Always"}, StepRun("s", "s", "Errored", 125))
    assert evaluate_retry_expression('lastRetry.status == "Error"', 1, "Error")
    assert not evaluate_retry_expression("asInt(lastRetry.exitCode) != 2", 2, "Failed")


def test_durations_and_quantities() -> None:
    assert duration_s("10s") == 10 and duration_s("5m") == 300 and duration_s("1h30m") == 5400
    assert duration_s("7200s") == 7200 and duration_s(15) == 15
    assert quantity("2Gi") == 2 * 2**30 and quantity("100m") == pytest.approx(0.1) and quantity("1") == 1
    with pytest.raises(Unsupported):
        duration_s("ten seconds")
