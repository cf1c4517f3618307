"""MLflow's webhook signature: HMAC-SHA256 over ``<id>.<timestamp>.<raw body>``, checked in constant time (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# MLflow's headers and signature scheme (mlflow/webhooks/constants.py, delivery.py).
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
REPLAY_WINDOW_S = 300.0


class Rejected(Exception):
    """A delivery refused before anything was triggered: HTTP ``status``, metric ``reason``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True)
class Delivery:
    """A delivery whose signature verified: its id and signed timestamp are MLflow's."""

    id: str
    timestamp: int


def sign(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``<delivery id>.<timestamp>.<raw body>``.

    MLflow signs the UTF-8 encoding of ``f"{id}.{ts}.{payload_json}"`` and sends exactly
    ``payload_json`` encoded as UTF-8 as the body: the raw bytes received are what was signed.
    Re-serialising the JSON would change them (MLflow's ``json.dumps`` puts spaces after ``:``).
    """
    content = delivery_id.encode("utf-8") + b"." + timestamp.encode("utf-8") + b"." + body
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    window_s: float = REPLAY_WINDOW_S,
) -> Delivery:
    """The delivery, if MLflow signed exactly this body with ``secret`` within the window.

    Raises :class:`Rejected`: 401 for a missing or wrong signature (checked first: nothing
    unsigned is looked at), 400 for a signed timestamp outside ``now ± window_s``.
    Several space-separated signatures are accepted (Standard Webhooks' rotation form).
    """
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if not delivery_id or not timestamp or not given:
        missing = [
            n
            for n, v in (
                (DELIVERY_ID_HEADER, delivery_id),
                (TIMESTAMP_HEADER, timestamp),
                (SIGNATURE_HEADER, given),
            )
            if not v
        ]
        raise Rejected(401, "missing_signature", f"no {', '.join(missing)}")
    expected = sign(secret, delivery_id, timestamp, body).encode("ascii")
    # Every candidate is compared (no early exit): the time taken says nothing about which failed.
    matches = [hmac.compare_digest(expected, c.encode("utf-8")) for c in given.split()]
    if not any(matches):
        raise Rejected(401, "bad_signature", "signature does not match the body and the shared secret")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise Rejected(400, "malformed", f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    if abs(now - signed_at) > window_s:
        raise Rejected(
            400,
            "stale_timestamp",
            f"signed at {signed_at}, {now - signed_at:+.0f}s from now (window ±{window_s:.0f}s)",
        )
    return Delivery(delivery_id, signed_at)
