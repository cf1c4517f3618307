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


def _cron_template(o: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(t for t in o["spec"]["workflowSpec"]["templates"] if kind in t)


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
    assert kinds == {"WorkflowTemplate", "CronWorkflow", "PodMonitor", "ServiceMonitor", "PrometheusRule"}
    argo = sorted(
        o["metadata"]["name"] for o in resources if o["kind"] in ("WorkflowTemplate", "CronWorkflow")
    )
    assert argo == ["tritonops-deploy", "tritonops-drift-repair", "tritonops-follow", "tritonops-rollback"]


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
        pytest.param(
            "CronWorkflow", lambda o: o["spec"].__setitem__("concurrencyPolicyy", "x"), id="cron-spec"
        ),
        pytest.param(
            "CronWorkflow", lambda o: o["spec"].__setitem__("startingDeadlineSecond", 1), id="cron-deadline"
        ),
        pytest.param(
            "CronWorkflow",
            lambda o: o["spec"]["workflowSpec"].__setitem__("entryPoint", "x"),
            id="cron-workflowspec",
        ),
        pytest.param(
            "CronWorkflow",
            lambda o: _cron_template(o, "container")["container"].__setitem__("envfrom", []),
            id="cron-container",
        ),
        pytest.param(
            "CronWorkflow",
            lambda o: _cron_template(o, "steps")["steps"][0][0].__setitem__("continueOnn", {}),
            id="cron-step",
        ),
        pytest.param(
            "CronWorkflow",
            lambda o: o["spec"]["workflowSpec"]["templates"][0].__setitem__("podSpecPatchh", ""),
            id="cron-template",
        ),
    ],
)
def test_a_misspelt_field_is_refused(kind: str, mutate) -> None:
    obj = next(o for o in build("dev") if o["kind"] == kind)
    broken = copy.deepcopy(obj)
    mutate(broken)
    assert strict_schema.errors(broken), f"a misspelt field in a {kind} passed validation"


def test_a_misspelt_field_in_the_application_is_refused() -> None:
    app = application()
    app["spec"]["syncPolicy"]["automated"]["selfHeall"] = True
    assert strict_schema.errors(app)


def test_a_misspelt_field_of_the_follow_resource_template_is_refused() -> None:
    [cron] = [
        o for o in build("dev") if o["kind"] == "CronWorkflow" and o["metadata"]["name"] == "tritonops-follow"
    ]
    broken = copy.deepcopy(cron)
    _cron_template(broken, "resource")["resource"]["setOwnerRefernce"] = False
    assert strict_schema.errors(broken)


def test_every_schema_is_the_upstream_file_its_readme_names() -> None:
    """Provenance: each schema here is listed in schemas/README.md with the sha256 it has."""
    import hashlib
    import re

    readme = (strict_schema.SCHEMAS / "README.md").read_text()
    listed = dict(re.findall(r"^\| ([\w./-]+\.json) \|[^|]*\| `([0-9a-f]{64})` \|$", readme, re.M))
    files = {
        str(p.relative_to(strict_schema.SCHEMAS)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in strict_schema.SCHEMAS.rglob("*.json")
    }
    assert files == listed


def test_strict_means_closing_what_the_catalog_left_open() -> None:
    """The catalog leaves the document root open: only the strict reading refuses a typo there."""
    wt = next(o for o in build("dev") if o["kind"] == "WorkflowTemplate")
    broken = copy.deepcopy(wt)
    broken["spce"] = {}
    assert not [e for e in strict_schema.errors(broken, strict=False) if "spce" in e]
    assert [e for e in strict_schema.errors(broken) if "spce" in e]
