"""The receiver's decisions without HTTP: verify, classify, trigger."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tritonops.errors import InputError
from tritonops.webhook.dispatch import Dispatcher
from tritonops.webhook.events import (
    MAX_BODY_BYTES,
    DeliveryMemory,
    Rules,
    parse_event,
)
from tritonops.webhook.signature import (
    DELIVERY_ID_HEADER,
    REPLAY_WINDOW_S,
    Delivery,
    Rejected,
    _header,
    verify,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def _printable(value: str | None, limit: int = 64) -> str:
    """An untrusted value (a header, a model name from a body), safe for one log line:
    control characters escaped (a newline cannot forge a line), at most ``limit`` characters."""
    text = (value or "")[:limit]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) or "-"


class Receiver:
    """The decisions of the receiver, without HTTP: verify, classify, trigger."""

    def __init__(
        self,
        secret: bytes,
        rules: Rules,
        dispatcher: Dispatcher,
        clock: Callable[[], float] = time.time,
        window_s: float = REPLAY_WINDOW_S,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        if not secret:
            raise InputError("the webhook secret is empty")
        self._secret = secret
        self.rules, self.dispatcher, self.clock = rules, dispatcher, clock
        self.metrics = dispatcher.metrics
        self.window_s, self.max_body = window_s, max_body
        self.memory = DeliveryMemory(window_s)

    def __repr__(self) -> str:  # never show the secret
        return f"Receiver(rules={self.rules!r})"

    def refuse(self, reason: str, status: int, detail: str, peer: str, headers: Mapping[str, str]) -> Reply:
        self.metrics.received.inc()
        return self._rejected(Rejected(status, reason, detail), peer, headers)

    def _rejected(self, exc: Rejected, peer: str, headers: Mapping[str, str]) -> Reply:
        self.metrics.rejected.labels(exc.reason).inc()
        log.warning(
            "webhook rejected (%s) from %s, delivery %s: %s",
            exc.reason,
            peer,
            _printable(_header(headers, DELIVERY_ID_HEADER)),
            exc.detail,
        )
        return Reply(exc.status, {"status": "rejected", "reason": exc.reason})

    def handle(self, headers: Mapping[str, str], body: bytes, peer: str) -> Reply:
        self.metrics.received.inc()
        try:
            if len(body) > self.max_body:
                raise Rejected(400, "too_large", f"{len(body)} bytes (at most {self.max_body})")
            delivery = verify(self._secret, headers, body, self.clock(), self.window_s)
            event = parse_event(body)
        except Rejected as exc:
            return self._rejected(exc, peer, headers)
        what = f"{_printable(event.entity)}.{_printable(event.action)}"
        if event.model is not None:
            what += (
                f" {_printable(event.model)}@{_printable(event.alias)} -> version {_printable(event.version)}"
            )
        if self.dispatcher.stopping:
            # Not remembered: MLflow retries a 503, and another receiver (or this one
            # restarted) takes it.
            log.warning("webhook delivery %s not taken: the receiver is stopping", _printable(delivery.id))
            return Reply(503, {"status": "stopping"})
        if not self.memory.first_time(delivery, self.clock()):
            return self._ignored("duplicate", delivery, what, "already accepted")
        why = self.rules.why_ignored(event)
        if why is not None or event.model is None or event.alias is None:
            return self._ignored(why or "event", delivery, what, "not an allowed model/alias event")
        queued = self.dispatcher.submit(event.model, event.alias)
        if queued == "stopping":
            return Reply(503, {"status": "stopping"})
        self.metrics.triggered.inc()
        log.info("webhook delivery %s: %s; deploy %s", _printable(delivery.id), what, queued)
        return Reply(202, {"status": "accepted", "deploy": queued, "model": event.model})

    def _ignored(self, reason: str, delivery: Delivery, what: str, detail: str) -> Reply:
        self.metrics.ignored.labels(reason).inc()
        log.info("webhook delivery %s ignored (%s): %s: %s", _printable(delivery.id), reason, what, detail)
        return Reply(200, {"status": "ignored", "reason": reason})
