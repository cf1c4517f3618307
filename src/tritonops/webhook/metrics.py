"""The receiver's own metrics (``GET /metrics``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from tritonops.webhook.events import (
    IGNORE_REASONS,
    REJECT_REASONS,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class Metrics:
    """The receiver's own metrics (``GET /metrics``), in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "tritonops_webhook_events_received", "Webhook deliveries received (POST)", registry=r
        )
        self.rejected = Counter(
            "tritonops_webhook_events_rejected",
            "Deliveries refused before anything was triggered",
            ["reason"],
            registry=r,
        )
        self.ignored = Counter(
            "tritonops_webhook_events_ignored",
            "Verified deliveries acknowledged without a deploy",
            ["reason"],
            registry=r,
        )
        self.triggered = Counter(
            "tritonops_webhook_events_triggered", "Deliveries that asked for a deploy", registry=r
        )
        self.deploys = Counter(
            "tritonops_webhook_deploys",
            "Deploys (or workflows) finished, by outcome",
            ["outcome"],
            registry=r,
        )
        self.retries = Counter(
            "tritonops_webhook_deploy_retries",
            "Deploys put off and retried (busy: another run held the model)",
            ["reason"],
            registry=r,
        )
        self.in_progress = Gauge("tritonops_webhook_deploys_in_progress", "Deploys running now", registry=r)
        self.with_work = Gauge(
            "tritonops_webhook_models_with_work",
            "Models with a deploy running, queued or retrying",
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for reason in IGNORE_REASONS:
            self.ignored.labels(reason)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
