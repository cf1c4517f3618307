"""Every object we ship, validated strictly: core kinds against Kubernetes' schemas
(kubernetes-validate), custom resources against their upstream CRD schemas (tests/k8s/schemas),
unknown fields rejected in both."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.k8s import strict_schema
from tests.k8s.manifests import K8S, OVERLAYS, build


@pytest.fixture(scope="module", params=OVERLAYS)
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def application() -> dict[str, Any]:
    return yaml.safe_load((K8S / "argocd" / "application.yaml").read_text())


def _retried(wt: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in wt["spec"]["templates"] if "retryStrategy" in t)


def test_every_object_has_a_schema_and_validates_strictly(resources: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    custom = []
    for obj in resources:
        if strict_schema.has_schema(obj):
            custom += strict_schema.errors(obj)
        else:
            # Raises for an unknown kind too: nothing ships unvalidated.
            kubernetes_validate.validate(obj, strict_schema.K8S_VERSION, strict=True)
    assert not custom, "\n".join(custom)
    kinds = {o["kind"] for o in resources if strict_schema.has_schema(o)}
    assert kinds == {"WorkflowTemplate", "PodMonitor", "ServiceMonitor", "PrometheusRule"}


def test_argocd_application_validates_strictly() -> None:
    assert strict_schema.errors(application()) == []


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        pytest.param("WorkflowTemplate", lambda o: o["spec"].__setitem__("onExitt", "x"), id="wt-spec"),
        pytest.param(
            "WorkflowTemplate",
            lambda o: o["spec"]["templates"][0]["container"].__setitem__("imagePullPolicyy", "x"),
            id="wt-container",
        ),
        pytest.param(
            "WorkflowTemplate",
            lambda o: _retried(o)["retryStrategy"]["backoff"].__setitem__("maxDurationn", "1m"),
            id="wt-backoff",
        ),
        pytest.param("WorkflowTemplate", lambda o: o.__setitem__("spce", {}), id="wt-root"),
        pytest.param("PodMonitor", lambda o: o["spec"].__setitem__("jobLable", "x"), id="podmonitor"),
        pytest.param(
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0].__setitem__("honourLabels", True),
            id="servicemonitor",
        ),
        pytest.param(
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("expresion", "1"),
            id="prometheusrule",
        ),
        pytest.param(
            "WorkflowTemplate", lambda o: o["metadata"].__setitem__("annotation", {}), id="metadata"
        ),
    ],
)
def test_a_misspelt_field_is_refused(kind: str, mutate) -> None:
    [obj] = [o for o in build("dev") if o["kind"] == kind]
    broken = copy.deepcopy(obj)
    mutate(broken)
    assert strict_schema.errors(broken), f"a misspelt field in a {kind} passed validation"


def test_a_misspelt_field_in_the_application_is_refused() -> None:
    app = application()
    app["spec"]["syncPolicy"]["automated"]["selfHeall"] = True
    assert strict_schema.errors(app)


def test_strict_means_closing_what_the_catalog_left_open() -> None:
    """The catalog leaves the document root open: only the strict reading refuses a typo there."""
    [wt] = [o for o in build("dev") if o["kind"] == "WorkflowTemplate"]
    broken = copy.deepcopy(wt)
    broken["spce"] = {}
    assert not [e for e in strict_schema.errors(broken, strict=False) if "spce" in e]
    assert [e for e in strict_schema.errors(broken) if "spce" in e]
