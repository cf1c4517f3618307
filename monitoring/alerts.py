"""Alert and recording rules for tritonops, as code.

Each alert is a *measure* (a PromQL expression that returns a value per model
whenever there is data) and a *condition* on it. The end-to-end test queries
every measure against a real Prometheus and asserts it returns data for the
model, so an alert can never silently watch a metric that does not exist.

Scrape jobs: ``job="triton"`` for every Triton replica's metrics port,
``job="pushgateway"`` for the Pushgateway with ``honor_labels: true`` (so the
pushed ``job="tritonops"`` and ``model`` labels survive). prometheus-operator
produces these names from the PodMonitor/ServiceMonitor ``jobLabel`` in
``k8s/base/monitoring.yaml`` (tests/monitoring/test_scrape_jobs.py derives them
the way the operator does); the ``absent()`` alerts fire when either job's
targets vanish, which is also what a renamed job looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SLO = 0.999  # successful inferences; the error budget is 1 - SLO
BUDGET = round(1 - SLO, 6)
P95_THRESHOLD_MS = 250
ROLLBACK_WINDOW_S = 900

TRITON = 'job="triton"'
PUSHED = 'job="tritonops"'


def failure_ratio(window: str) -> str:
    """Failed / all inference requests per model over ``window`` (all replicas, all versions)."""
    failed = f"sum by (model) (rate(nv_inference_request_failure{{{TRITON}}}[{window}]))"
    ok = f"sum by (model) (rate(nv_inference_request_success{{{TRITON}}}[{window}]))"
    return f"{failed} / ({ok} + {failed})"


RECORDING: list[dict[str, str]] = [
    {"record": f"model:tritonops_inference_failure_ratio:rate{w}", "expr": failure_ratio(w)}
    for w in ("5m", "30m", "1h", "6h")
]


@dataclass(frozen=True)
class Alert:
    name: str
    measure: str  # returns a value per model/version when there is data
    condition: str  # appended to the measure, e.g. "> 0"
    severity: str
    summary: str
    description: str
    for_: str = "0s"
    extra_measures: tuple[str, ...] = field(default_factory=tuple)  # joined with `and`
    # Fires when the measure returns nothing at all (its series are gone); condition unused.
    absent: bool = False

    @property
    def expr(self) -> str:
        if self.absent:
            return f"absent({self.measure})"
        parts = [f"({self.measure}) {self.condition}"]
        parts += [f"({m})" for m in self.extra_measures]
        return "\n  and\n".join(parts)

    def __post_init__(self) -> None:
        if self.absent == bool(self.condition):
            raise ValueError(f"{self.name}: give a condition, or absent=True, not both")

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "service": "tritonops"},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
            },
        }


ACTIVE_INFO = f"max by (model, version) (tritonops_deploy_active_version_info{{{PUSHED}}})"
LIVE_REPLICAS = f"scalar(count(up{{{TRITON}}} == 1))"
SERVING_COMMITTED = (
    f"count by (model, version) (nv_inference_request_success{{{TRITON}}} "
    f"* on (model, version) group_left () {ACTIVE_INFO})"
)

ALERTS: list[Alert] = [
    Alert(
        name="TritonopsRollback",
        measure=f"time() - max by (model) (tritonops_deploy_last_rollback_timestamp_seconds{{{PUSHED}}})",
        condition=f"< {ROLLBACK_WINDOW_S}",
        severity="warning",
        summary="{{ $labels.model }}: a deploy was rolled back",
        description=(
            "A deploy of {{ $labels.model }} failed verification (or an operator rolled back) "
            "{{ $value | humanizeDuration }} ago; production was restored to the previous version. "
            "Run `tritonops history --model {{ $labels.model }}` for the failing step and error; the "
            "candidate's files are in state/quarantine/{{ $labels.model }}/. Fix the model in the "
            "registry before moving the alias again. Resolves by itself after 15 minutes."
        ),
    ),
    Alert(
        name="TritonopsRollbackFailed",
        measure=f'max by (model) (tritonops_deploy_outcome{{{PUSHED},outcome="rollback_failed"}})',
        condition="== 1",
        severity="critical",
        summary="{{ $labels.model }}: ROLLBACK FAILED — production may not match current.json",
        description=(
            "The last run for {{ $labels.model }} could not restore the previous version on every "
            "replica. Run `tritonops status --model {{ $labels.model }}` to see what each replica "
            "serves, then `tritonops recover --model {{ $labels.model }}`. Do not deploy this model "
            "until status shows no drift."
        ),
    ),
    Alert(
        name="TritonopsCommittedVersionNotServed",
        measure=(
            f"{ACTIVE_INFO} * {LIVE_REPLICAS}\n  - on (model, version)\n  "
            f"({SERVING_COMMITTED} or {ACTIVE_INFO} * 0)"
        ),
        condition="> 0",
        for_="5m",
        severity="critical",
        summary="{{ $labels.model }} v{{ $labels.version }} is committed but {{ $value }} replica(s) do not serve it",
        description=(
            "current.json says version {{ $labels.version }} of {{ $labels.model }} is production, but "
            "{{ $value }} live Triton replica(s) have not loaded it (restarted with a bad config, "
            "out of memory, or drift). Run `tritonops status --model {{ $labels.model }}` and "
            "`tritonops recover --model {{ $labels.model }}`; check the Triton pod logs for load errors."
        ),
    ),
    Alert(
        name="TritonLatencyP95High",
        measure=(
            f'max by (model, version) (nv_inference_request_summary_us{{{TRITON},quantile="0.95"}}) / 1000'
        ),
        condition=f"> {P95_THRESHOLD_MS}",
        for_="10m",
        severity="warning",
        summary="{{ $labels.model }} v{{ $labels.version }}: p95 latency {{ $value | humanize }} ms",
        description=(
            f"The slowest replica's p95 end-to-end latency has been above {P95_THRESHOLD_MS} ms for 10 "
            "minutes. Compare queue vs compute time on the tritonops dashboard: queue time means "
            "too few instances or replicas (scale out); compute time means the model itself got "
            "slower (if a deploy just happened, roll back with `tritonops rollback`)."
        ),
    ),
    Alert(
        name="TritonErrorBudgetFastBurn",
        measure="model:tritonops_inference_failure_ratio:rate1h",
        condition=f"> {14.4 * BUDGET:.6g}",
        extra_measures=(f"model:tritonops_inference_failure_ratio:rate5m > {14.4 * BUDGET:.6g}",),
        for_="2m",
        severity="critical",
        summary="{{ $labels.model }}: failing inferences burn the error budget 14x too fast",
        description=(
            f"More than {14.4 * BUDGET:.3%} of requests to {{{{ $labels.model }}}} failed over both the "
            f"last hour and the last 5 minutes (SLO {SLO:.1%}): 2% of the monthly budget per hour. "
            "See the failure-ratio-by-reason panel: REJECTED means overload or bad client input, "
            "BACKEND means the model errors. If a deploy just happened, roll it back."
        ),
    ),
    Alert(
        name="TritonErrorBudgetSlowBurn",
        measure="model:tritonops_inference_failure_ratio:rate6h",
        condition=f"> {6 * BUDGET:.6g}",
        extra_measures=(f"model:tritonops_inference_failure_ratio:rate30m > {6 * BUDGET:.6g}",),
        for_="15m",
        severity="warning",
        summary="{{ $labels.model }}: failing inferences burn the error budget 6x too fast",
        description=(
            f"More than {6 * BUDGET:.3%} of requests to {{{{ $labels.model }}}} failed over the last 6 "
            f"hours and the last 30 minutes (SLO {SLO:.1%}): 5% of the monthly budget in 6 hours. "
            "Look at failures by reason and by version on the dashboard."
        ),
    ),
    Alert(
        name="TritonopsMetricsPushFailing",
        measure=(
            f"max by (model) (push_failure_time_seconds{{{PUSHED}}}) - max by (model) (push_time_seconds{{{PUSHED}}})"
        ),
        condition="> 0",
        severity="warning",
        summary="{{ $labels.model }}: the last deploy-metrics push was rejected",
        description=(
            "The Pushgateway rejected the last push for {{ $labels.model }}, so the deploy dashboards "
            "and alerts may be stale. Check the Pushgateway logs (a metric type or label conflict) "
            "and the `report` step of the last workflow."
        ),
    ),
    Alert(
        name="TritonopsPushgatewayDown",
        measure='up{job="pushgateway"}',
        condition="== 0",
        for_="5m",
        severity="warning",
        summary="The Pushgateway is not reachable: deploy metrics are not being recorded",
        description=(
            "Prometheus cannot scrape the Pushgateway; deploys still run, but their outcomes and "
            "rollbacks do not reach dashboards or alerts. Check the pushgateway pod and its PVC."
        ),
    ),
    Alert(
        name="TritonMetricsAbsent",
        measure=f"up{{{TRITON}}}",
        condition="",
        absent=True,
        for_="10m",
        severity="critical",
        summary="No Triton replica is being scraped: serving alerts and dashboards are blind",
        description=(
            'Prometheus has had no target with job="triton" for 10 minutes, so the latency, '
            "error-budget and committed-version alerts cannot fire. Either every Triton pod is gone "
            "(`kubectl get pods -l app.kubernetes.io/name=triton`), or the PodMonitor no longer "
            "selects them or names the job differently (its jobLabel, the pods' "
            "app.kubernetes.io/name label, the Prometheus release label): check Status > Targets."
        ),
    ),
    Alert(
        name="TritonopsPushgatewayAbsent",
        measure='up{job="pushgateway"}',
        condition="",
        absent=True,
        for_="10m",
        severity="warning",
        summary="The Pushgateway is not being scraped: deploy metrics are not being recorded",
        description=(
            'Prometheus has had no target with job="pushgateway" for 10 minutes, so deploy outcomes '
            "and rollbacks reach no dashboard or alert. Either the pushgateway Service or pod is "
            "gone, or the ServiceMonitor no longer selects it or names the job differently (its "
            "jobLabel, the Service's app.kubernetes.io/name label, the Prometheus release label): "
            "check Status > Targets."
        ),
    ),
]


def rules_file() -> dict[str, Any]:
    """A plain Prometheus rules file (what `promtool check rules` reads)."""
    return {
        "groups": [
            {"name": "tritonops.recording", "rules": RECORDING},
            {"name": "tritonops.alerts", "rules": [a.rule() for a in ALERTS]},
        ]
    }


def prometheus_rule() -> dict[str, Any]:
    """The same groups as a PrometheusRule for the Prometheus Operator."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tritonops",
            # kube-prometheus-stack selects rules by its Helm release label.
            "labels": {"release": "kube-prometheus-stack"},
        },
        "spec": rules_file(),
    }
