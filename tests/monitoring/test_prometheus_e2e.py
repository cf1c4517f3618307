"""Every dashboard and alert expression, queried in a real Prometheus that scrapes a real Triton
and a real Pushgateway, after real traffic, one committed deploy and one rolled-back deploy."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pytest

from monitoring import alerts, dashboard
from tests.helpers import FEATURES, Env, Registry
from tritonops.adapters.triton import TritonReplica
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def api(prometheus: str, path: str, **params: str) -> Any:
    url = f"{prometheus}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def poll(fn, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: no data within {timeout_s}s (last: {last})")


def substitute(expr: str, model: str) -> str:
    return expr.replace("$model", model).replace("$version", ".*").replace("$__rate_interval", "1m")


def test_every_expression_returns_data(
    env: Env, registry: Registry, pushgateway: str, prometheus: str, model_name: str
) -> None:
    model = model_name
    registry.register(model, linear_model(seed=1))
    assert (
        env.cli("deploy", "--model", model, "--alias", "champion", "--pushgateway", pushgateway).returncode
        == 0
    )
    replica = TritonReplica(env.triton_urls[0])
    for _ in range(50):
        replica.infer(model, None, {"features": FEATURES}, ["probabilities"])
    # Rates need two scrapes that saw traffic: wait for them, then send more.
    poll(
        lambda: api(
            prometheus,
            "query",
            query=f'count_over_time(nv_inference_request_success{{model="{model}"}}[1m]) >= 2',
        )["result"],
        "two scrapes of the model's counters",
    )
    for _ in range(50):
        replica.infer(model, None, {"features": np.flip(FEATURES, 0).copy()}, ["probabilities"])
    replica.close()
    registry.register(model, linear_model(seed=2, produce_nan=True))
    assert (
        env.cli("deploy", "--model", model, "--alias", "champion", "--pushgateway", pushgateway).returncode
        == 3
    )

    def query(expr: str) -> list[dict[str, Any]]:
        return api(prometheus, "query", query=expr)["result"]

    def for_model(expr: str) -> list[dict[str, Any]]:
        result = query(expr)
        keyed = [r for r in result if "model" in r["metric"]]
        return [r for r in keyed if r["metric"]["model"] == model] if keyed else result

    poll(
        lambda: for_model(f'tritonops_deploy_last_rollback_timestamp_seconds{{model="{model}"}}'),
        "pushed metrics",
    )

    checked = 0
    for expr in dashboard.expressions():
        concrete = substitute(expr, model)
        poll(lambda e=concrete: for_model(e), f"dashboard: {expr}")
        checked += 1
    for rule in alerts.RECORDING:
        poll(lambda r=rule: for_model(r["record"]), f"recording rule {rule['record']}")
        checked += 1
    for alert in alerts.ALERTS:
        poll(lambda a=alert: for_model(a.measure), f"alert {alert.name} measure: {alert.measure}")
        query(alert.expr)  # the full expression parses and evaluates
        checked += 1
    assert checked == len(dashboard.expressions()) + len(alerts.RECORDING) + len(alerts.ALERTS)

    committed = for_model(alerts.ALERTS[2].measure)  # TritonopsCommittedVersionNotServed
    assert [float(r["value"][1]) for r in committed] == [0.0], committed  # v1 is served: quiet

    def rollback_alert() -> list[dict[str, Any]]:
        return [
            a for a in api(prometheus, "alerts")["alerts"]
            if a["labels"]["alertname"] == "TritonopsRollback" and a["labels"].get("model") == model
        ]  # fmt: skip

    [active] = poll(rollback_alert, "TritonopsRollback in /api/v1/alerts")
    assert active["state"] == "firing"
    assert model in active["annotations"]["summary"]
    assert f"tritonops history --model {model}" in active["annotations"]["description"]
