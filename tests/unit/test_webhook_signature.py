"""The receiver's signature check against vectors made by MLflow's own signing code.

``mlflow.webhooks.delivery._generate_hmac_signature`` is what an MLflow server runs before it
POSTs a delivery; the body it sends is ``json.dumps(payload).encode("utf-8")``. Every vector
here is built exactly that way, so a receiver that signs anything else (re-serialised JSON,
another separator, another encoding) fails these tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from mlflow.webhooks.delivery import _generate_hmac_signature

from tritonops.webhook import Rejected, sign, verify

SECRET = "whsec-unit-5f2c9a"
NOW = 1_760_000_000


def mlflow_delivery(
    data: dict[str, object] | None = None,
    secret: str = SECRET,
    timestamp: int = NOW,
    ensure_ascii: bool = True,
) -> tuple[dict[str, str], bytes]:
    """Headers and body as MLflow's ``_send_webhook_request`` builds them."""
    payload = {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2025-10-09T08:53:20.123456+00:00",
        "data": data or {"name": "fraud", "alias": "champion", "version": "7"},
    }
    payload_json = json.dumps(payload, ensure_ascii=ensure_ascii)
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        WEBHOOK_DELIVERY_ID_HEADER: delivery_id,
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, str(timestamp), payload_json),
    }
    return headers, payload_json.encode("utf-8")


def rejected(fn: Callable[[], object]) -> Rejected:
    with pytest.raises(Rejected) as info:
        fn()
    return info.value


def test_mlflows_signature_verifies_and_names_the_delivery() -> None:
    headers, body = mlflow_delivery()
    delivery = verify(SECRET.encode(), headers, body, NOW)
    assert delivery.id == headers[WEBHOOK_DELIVERY_ID_HEADER] and delivery.timestamp == NOW


def test_our_signature_is_byte_for_byte_mlflows() -> None:
    # Non-ASCII in the body (a JSON encoder without ensure_ascii): both sides sign UTF-8 bytes.
    headers, body = mlflow_delivery(
        {"name": "modèle-é", "alias": "champion", "version": "1"}, ensure_ascii=False
    )
    assert (
        sign(SECRET.encode(), headers[WEBHOOK_DELIVERY_ID_HEADER], str(NOW), body)
        == (headers[WEBHOOK_SIGNATURE_HEADER])
    )
    verify(SECRET.encode(), headers, body, NOW)


def test_wrong_secret_is_refused_401() -> None:
    headers, body = mlflow_delivery(secret="not-the-secret")
    error = rejected(lambda: verify(SECRET.encode(), headers, body, NOW))
    assert (error.status, error.reason) == (401, "bad_signature")


@pytest.mark.parametrize(
    "header", [WEBHOOK_SIGNATURE_HEADER, WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER]
)
def test_missing_header_is_refused_401(header: str) -> None:
    headers, body = mlflow_delivery()
    del headers[header]
    error = rejected(lambda: verify(SECRET.encode(), headers, body, NOW))
    assert (error.status, error.reason) == (401, "missing_signature")
    assert header in error.detail


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86_400])
def test_timestamp_outside_the_window_is_refused_400(skew: int) -> None:
    headers, body = mlflow_delivery(timestamp=NOW)  # correctly signed, but too old or too new
    error = rejected(lambda: verify(SECRET.encode(), headers, body, NOW - skew, window_s=300))
    assert (error.status, error.reason) == (400, "stale_timestamp")


@pytest.mark.parametrize("skew", [-300, 0, 299, 300])
def test_timestamp_inside_the_window_passes(skew: int) -> None:
    headers, body = mlflow_delivery(timestamp=NOW)
    verify(SECRET.encode(), headers, body, NOW + skew, window_s=300)


def test_tampered_body_is_refused_401() -> None:
    headers, body = mlflow_delivery()
    tampered = body.replace(b'"version": "7"', b'"version": "8"')
    assert tampered != body
    error = rejected(lambda: verify(SECRET.encode(), headers, tampered, NOW))
    assert (error.status, error.reason) == (401, "bad_signature")


def test_re_serialised_json_is_not_what_mlflow_signed() -> None:
    """The raw bytes are signed: the same JSON written compactly does not verify."""
    headers, body = mlflow_delivery()
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert json.loads(compact) == json.loads(body)
    assert rejected(lambda: verify(SECRET.encode(), headers, compact, NOW)).reason == "bad_signature"


@pytest.mark.parametrize("header", [WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER])
def test_tampered_id_or_timestamp_is_refused_401(header: str) -> None:
    headers, body = mlflow_delivery()
    headers[header] = str(NOW + 1) if header == WEBHOOK_TIMESTAMP_HEADER else str(uuid.uuid4())
    assert rejected(lambda: verify(SECRET.encode(), headers, body, NOW)).reason == "bad_signature"


def test_truncated_or_other_version_signature_is_refused() -> None:
    headers, body = mlflow_delivery()
    good = headers[WEBHOOK_SIGNATURE_HEADER]
    for bad in (good[:-4], "v2" + good[2:], good.split(",", 1)[1], "v1,"):
        headers[WEBHOOK_SIGNATURE_HEADER] = bad
        assert rejected(lambda: verify(SECRET.encode(), headers, body, NOW)).status == 401, bad


def test_one_of_several_signatures_is_enough_and_header_names_are_case_insensitive() -> None:
    headers, body = mlflow_delivery()
    lower = {k.lower(): v for k, v in headers.items()}
    lower[WEBHOOK_SIGNATURE_HEADER.lower()] = "v1,AAAA " + headers[WEBHOOK_SIGNATURE_HEADER]
    verify(SECRET.encode(), lower, body, NOW)


def test_a_signed_timestamp_that_is_not_unix_seconds_is_malformed() -> None:
    headers, body = mlflow_delivery()
    delivery_id = headers[WEBHOOK_DELIVERY_ID_HEADER]
    headers[WEBHOOK_TIMESTAMP_HEADER] = "yesterday"
    headers[WEBHOOK_SIGNATURE_HEADER] = _generate_hmac_signature(
        SECRET, delivery_id, "yesterday", body.decode()
    )
    error = rejected(lambda: verify(SECRET.encode(), headers, body, NOW))
    assert (error.status, error.reason) == (400, "malformed")
