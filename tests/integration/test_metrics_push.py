"""Deploy metrics reach a real Pushgateway with the contract's names, labels and add-semantics."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.helpers import Env, Registry
from tritonops.local.processes import free_port
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def scrape(url: str, model: str) -> dict[str, float]:
    """The Pushgateway's exposition for one model's group: {'name{labels}': value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("tritonops_") and f'model="{model}"' in line:
            key, value = line.rsplit(" ", 1)
            extra = ",".join(
                sorted(
                    label
                    for label in re.findall(r'(\w+="[^"]*")', key)
                    if not label.startswith(("instance=", "job=", "model="))
                )
            )
            out[f"{key.split('{')[0]}{{{extra}}}" if extra else key.split("{")[0]] = float(value)
    return out


def test_committed_then_rolled_back(env: Env, registry: Registry, pushgateway: str, model_name: str) -> None:
    v1 = registry.register(model_name, linear_model(seed=1))
    assert (
        env.cli(
            "deploy", "--model", model_name, "--alias", "champion", "--pushgateway", pushgateway
        ).returncode
        == 0
    )
    first = scrape(pushgateway, model_name)
    assert first["tritonops_deploy_active_version"] == v1
    assert first['tritonops_deploy_outcome{outcome="committed"}'] == 1
    assert first['tritonops_deploy_outcome{outcome="rolled_back"}'] == 0
    assert first["tritonops_deploy_last_success_timestamp_seconds"] > 0
    assert first['tritonops_deploy_step_duration_seconds{step="load"}'] > 0
    assert first["tritonops_deploy_duration_seconds"] > 0

    registry.register(model_name, linear_model(seed=2, produce_nan=True))
    assert (
        env.cli(
            "deploy", "--model", model_name, "--alias", "champion", "--pushgateway", pushgateway
        ).returncode
        == 3
    )
    second = scrape(pushgateway, model_name)
    # Add-semantics: the failed run did not erase the last success.
    assert (
        second["tritonops_deploy_last_success_timestamp_seconds"]
        == first["tritonops_deploy_last_success_timestamp_seconds"]
    )
    assert (
        second["tritonops_deploy_last_rollback_timestamp_seconds"]
        >= first["tritonops_deploy_last_success_timestamp_seconds"]
    )
    assert second["tritonops_deploy_last_failure_timestamp_seconds"] > 0
    assert second['tritonops_deploy_outcome{outcome="rolled_back"}'] == 1
    assert second['tritonops_deploy_outcome{outcome="committed"}'] == 0
    assert second["tritonops_deploy_active_version"] == v1


def test_pushgateway_down_never_fails_a_deploy(env: Env, registry: Registry, model_name: str) -> None:
    registry.register(model_name, linear_model(seed=1))
    result = env.cli(
        "deploy",
        "--model",
        model_name,
        "--alias",
        "champion",
        "--pushgateway",
        f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 0, result.stderr
    assert "could not push metrics" in result.stderr


def test_noop_pushes_noop_and_moves_no_timestamp(
    env: Env, registry: Registry, pushgateway: str, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    deploy = ("deploy", "--model", model_name, "--alias", "champion", "--pushgateway", pushgateway)
    assert env.cli(*deploy).returncode == 0
    first = scrape(pushgateway, model_name)

    result = env.cli(*deploy)

    assert result.returncode == 0 and "no-op" in result.stdout, result.stderr
    second = scrape(pushgateway, model_name)
    assert second['tritonops_deploy_outcome{outcome="noop"}'] == 1
    assert second['tritonops_deploy_outcome{outcome="committed"}'] == 0
    assert (
        second["tritonops_deploy_last_success_timestamp_seconds"]
        == first["tritonops_deploy_last_success_timestamp_seconds"]
    )
    assert "tritonops_deploy_last_failure_timestamp_seconds" not in second
