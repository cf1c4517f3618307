"""Every `job` a rule, an alert or a dashboard panel selects is a job that exists: the names
prometheus-operator gives our PodMonitor/ServiceMonitor targets, or the job tritonops pushes
(kept because the Pushgateway is scraped with honorLabels)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from tests.k8s import prometheus_operator
from tests.k8s.manifests import K8S, OVERLAYS, ROOT, build, one
from tritonops.adapters.pushgateway import JOB as PUSHED_JOB

MATCHER = re.compile(r'\bjob\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module", params=OVERLAYS)
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def existing_jobs(resources: list[dict[str, Any]]) -> set[str]:
    scrapes = prometheus_operator.scrapes(resources)
    jobs = {s.job for s in scrapes}
    if any(s.honor_labels and s.target == "Service/pushgateway" for s in scrapes):
        jobs.add(PUSHED_JOB)  # the pushed series keep the job they were pushed with
    return jobs


def expressions() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL expression we ship: rules and alerts (both files),
    dashboard panels, annotations and variable queries (the committed JSON, as Grafana reads it)."""
    out: list[tuple[str, str]] = []
    for path in (ROOT / "monitoring" / "rules.yaml", K8S / "base" / "prometheusrule.yaml"):
        data = yaml.safe_load(path.read_text())
        groups = data["spec"]["groups"] if "spec" in data else data["groups"]
        for group in groups:
            for rule in group["rules"]:
                out.append((f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]))

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    out.append((f"dashboard: {where}.{key}", value))
                elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                    out.append((f"dashboard: {where}.query", value["query"]))
                else:
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                name = value.get("title") or value.get("name") if isinstance(value, dict) else None
                walk(value, f"{where}[{name or i}]")

    walk(json.loads((K8S / "base" / "dashboards" / "tritonops.json").read_text()), "")
    return out


def selected_jobs(expr: str) -> list[tuple[str, str]]:
    return MATCHER.findall(expr)


def missing_jobs(resources: list[dict[str, Any]]) -> list[str]:
    jobs = existing_jobs(resources)
    out = []
    for where, expr in expressions():
        for op, value in selected_jobs(expr):
            if op == "=" and value not in jobs:
                out.append(f'{where}: job="{value}" (jobs: {sorted(jobs)})')
            if op == "=~" and not any(re.fullmatch(value, j) for j in jobs):
                out.append(f'{where}: job=~"{value}" matches none of {sorted(jobs)}')
    return out


def test_targets_are_scraped_under_the_jobs_the_rules_expect(resources: list[dict[str, Any]]) -> None:
    triton = prometheus_operator.job_for(resources, "Deployment/triton")
    pushgateway = prometheus_operator.job_for(resources, "Service/pushgateway")
    assert (triton.job, triton.port) == ("triton", "metrics")
    assert (pushgateway.job, pushgateway.honor_labels) == ("pushgateway", True)


def test_every_rule_alert_and_panel_selects_a_job_that_exists(resources: list[dict[str, Any]]) -> None:
    selecting = [w for w, e in expressions() if selected_jobs(e)]
    assert any(w.startswith("dashboard:") for w in selecting) and any("rules.yaml" in w for w in selecting)
    assert missing_jobs(resources) == []


def test_without_job_label_the_operator_names_jobs_namespace_slash_monitor(
    resources: list[dict[str, Any]],
) -> None:
    """What the committed manifests did before jobLabel: every expression on job="triton" saw nothing."""
    broken = copy.deepcopy(resources)
    monitor = one(broken, "PodMonitor", "triton")
    del monitor["spec"]["jobLabel"]
    ns = monitor["metadata"]["namespace"]
    assert prometheus_operator.job_for(broken, "Deployment/triton").job == f"{ns}/triton"
    assert any('job="triton"' in m for m in missing_jobs(broken))


def test_a_job_label_the_pods_do_not_carry_falls_back_to_the_default(resources: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(resources)
    one(broken, "PodMonitor", "triton")["spec"]["jobLabel"] = "app"
    assert "/" in prometheus_operator.job_for(broken, "Deployment/triton").job


def test_a_monitor_selecting_the_wrong_port_scrapes_nothing(resources: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(resources)
    one(broken, "PodMonitor", "triton")["spec"]["podMetricsEndpoints"][0]["port"] = "http-metrics"
    assert not [s for s in prometheus_operator.scrapes(broken) if s.target == "Deployment/triton"]
