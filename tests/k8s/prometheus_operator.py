"""Which scrape targets, and which `job` labels, prometheus-operator makes of our monitors.

Written from prometheus-operator's `pkg/prometheus/promcfg.go` (generatePodMonitorConfig,
generateServiceMonitorConfig): the target's `job` label is set by relabelling, last rule wins —

* PodMonitor: `job` = "<namespace>/<podmonitor name>"; then, if `spec.jobLabel` is set and the
  pod has that label with a non-empty value, the pod label's value.
* ServiceMonitor: `job` = the Service's name; then, if `spec.jobLabel` is set and the Service
  has that label with a non-empty value, the Service label's value.

Targets: pods (PodMonitor) or Services and their endpoints (ServiceMonitor) in the monitor's own
namespace unless `namespaceSelector` says otherwise, whose labels match `selector`, with a
container port (PodMonitor) or Service port (ServiceMonitor) named as the endpoint's `port`.
Endpoint `relabelings`/`metricRelabelings` that touch `job` and `namespaceSelector` are not
modelled: the functions fail loudly when they see one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.k8s.manifests import by_kind, selector_matches


@dataclass(frozen=True)
class Scrape:
    monitor: str  # "PodMonitor/triton"
    target: str  # "Deployment/triton" or "Service/pushgateway"
    port: str
    job: str
    honor_labels: bool


def _pods(resources: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(owner, namespace, pod labels, pod spec) of every pod template in the build."""
    out = []
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        for r in by_kind(resources, kind):
            template = r["spec"]["template"]
            out.append(
                (
                    f"{kind}/{r['metadata']['name']}",
                    r["metadata"].get("namespace", ""),
                    template["metadata"].get("labels", {}),
                    template["spec"],
                )
            )
    return out


def _check_endpoint(monitor: dict[str, Any], ep: dict[str, Any]) -> None:
    name = f"{monitor['kind']}/{monitor['metadata']['name']}"
    assert "namespaceSelector" not in monitor["spec"], f"{name}: namespaceSelector is not modelled"
    for field in ("relabelings", "metricRelabelings"):
        for rule in ep.get(field) or []:
            assert rule.get("targetLabel") != "job", f"{name}: {field} rewriting job is not modelled"
    assert "port" in ep, f"{name}: only endpoints selected by port name are modelled"


def scrapes(resources: list[dict[str, Any]]) -> list[Scrape]:
    """Every (monitor, target) pair the operator would scrape, with the target's job label."""
    out: list[Scrape] = []
    for pm in by_kind(resources, "PodMonitor"):
        ns, name, spec = pm["metadata"].get("namespace", ""), pm["metadata"]["name"], pm["spec"]
        for ep in spec.get("podMetricsEndpoints", []):
            _check_endpoint(pm, ep)
            for owner, pod_ns, labels, pod in _pods(resources):
                ports = {p.get("name") for c in pod.get("containers", []) for p in c.get("ports") or []}
                if pod_ns != ns or not selector_matches(spec["selector"], labels) or ep["port"] not in ports:
                    continue
                job = f"{ns}/{name}"
                if spec.get("jobLabel") and labels.get(spec["jobLabel"]):
                    job = labels[spec["jobLabel"]]
                out.append(Scrape(f"PodMonitor/{name}", owner, ep["port"], job, bool(ep.get("honorLabels"))))
    for sm in by_kind(resources, "ServiceMonitor"):
        ns, name, spec = sm["metadata"].get("namespace", ""), sm["metadata"]["name"], sm["spec"]
        for ep in spec.get("endpoints", []):
            _check_endpoint(sm, ep)
            for svc in by_kind(resources, "Service"):
                labels = svc["metadata"].get("labels", {})
                ports = {p.get("name") for p in svc["spec"].get("ports", [])}
                if svc["metadata"].get("namespace", "") != ns or not selector_matches(
                    spec["selector"], labels
                ):
                    continue
                if ep["port"] not in ports:
                    continue
                # The Service must also have endpoints: some pod its selector matches.
                if not any(
                    pod_ns == ns
                    and all(labels_.get(k) == v for k, v in svc["spec"].get("selector", {}).items())
                    for _, pod_ns, labels_, _ in _pods(resources)
                ):
                    continue
                job = svc["metadata"]["name"]
                if spec.get("jobLabel") and labels.get(spec["jobLabel"]):
                    job = labels[spec["jobLabel"]]
                out.append(
                    Scrape(f"ServiceMonitor/{name}", f"Service/{svc['metadata']['name']}", ep["port"], job,
                           bool(ep.get("honorLabels")))
                )  # fmt: skip
    return out


def job_for(resources: list[dict[str, Any]], target: str) -> Scrape:
    """The one scrape of ``target`` ("Deployment/triton", "Service/pushgateway")."""
    found = [s for s in scrapes(resources) if s.target == target]
    assert len(found) == 1, f"{target} is scraped {len(found)} times: {found}"
    return found[0]
