"""Deploy metrics pushed to a Prometheus Pushgateway (names and labels are a contract).

Grouping key ``{job="tritonops", model="<model>"}``, pushed with add semantics
(``PUT`` replaces only the metric names we send): a failed run never erases the
last success timestamp, because a run only sends the timestamps it sets.
Timestamps are gauges: back-to-back rollbacks by short-lived jobs would be lost
by a per-run counter, but each one moves the gauge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tritonops.core.state import Outcome

log = logging.getLogger(__name__)

JOB = "tritonops"
OUTCOMES = ("committed", "noop", "rolled_back", "rollback_failed", "rejected")


def build_registry(
    model: str,
    outcome: Outcome,
    finished_at: float,
    duration_s: float,
    active_version: int | None,
    step_durations: Mapping[str, float],
    manual_rollback: bool = False,
) -> object:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labelnames=labels, registry=registry)

    label = outcome.value
    if outcome is Outcome.COMMITTED:
        gauge("tritonops_deploy_last_success_timestamp_seconds", "Last committed deploy.").set(finished_at)
    elif outcome is not Outcome.NOOP:  # a no-op changed nothing: neither a success nor a failure
        gauge("tritonops_deploy_last_failure_timestamp_seconds", "Last run that did not commit.").set(
            finished_at
        )
    if outcome in (Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED) or manual_rollback:
        gauge("tritonops_deploy_last_rollback_timestamp_seconds", "Last automatic or manual rollback.").set(
            finished_at
        )
    if active_version is not None:
        gauge("tritonops_deploy_active_version", "Version in current.json after the run.").set(active_version)
        # The same as a label, so alerts can join it with Triton's per-version series.
        # A push replaces the whole family in the group: only the current version stays.
        info = gauge(
            "tritonops_deploy_active_version_info", "1, labelled with the committed version.", ("version",)
        )
        info.labels(version=str(active_version)).set(1)
    gauge("tritonops_deploy_duration_seconds", "Wall time of the last run.").set(duration_s)
    steps = gauge("tritonops_deploy_step_duration_seconds", "Per step, last run.", ("step",))
    for step, seconds in step_durations.items():
        steps.labels(step=step).set(seconds)
    outcomes = gauge("tritonops_deploy_outcome", "1 for the last run's outcome.", ("outcome",))
    for name in OUTCOMES:
        outcomes.labels(outcome=name).set(1 if name == label else 0)
    return registry


def push(url: str | None, model: str, registry: object, timeout_s: float = 5.0) -> bool:
    """Push with add semantics. A failure is logged and never raised: metrics never fail a deploy."""
    if not url:
        return False
    from prometheus_client import pushadd_to_gateway

    try:
        pushadd_to_gateway(url, job=JOB, grouping_key={"model": model}, registry=registry, timeout=timeout_s)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - urllib raises URLError, OSError, HTTPError...
        log.warning("could not push metrics for model=%s to %s: %s", model, url, exc)
        return False
    log.info("pushed metrics for model=%s to %s", model, url)
    return True
