"""`tritonops step` edge cases an Argo exit handler meets."""

from __future__ import annotations

import pytest

from tests.helpers import Env

pytestmark = pytest.mark.integration


def test_exit_handler_steps_tolerate_a_run_that_never_started(env: Env, model_name: str) -> None:
    for step in ("rollback", "report"):
        result = env.cli("step", step, "--model", model_name, "--run-id", "never-started-1")
        assert result.returncode == 0, result.stderr
        assert "never started" in result.stdout


def test_a_deploy_step_without_its_snapshot_is_bad_input(env: Env, model_name: str) -> None:
    result = env.cli("step", "load", "--model", model_name, "--run-id", "never-started-2")
    assert result.returncode == 2
    assert "run the snapshot step first" in result.stderr


def test_snapshot_needs_an_alias(env: Env, model_name: str) -> None:
    result = env.cli("step", "snapshot", "--model", model_name, "--run-id", "no-alias-1")
    assert result.returncode == 2 and "--alias" in result.stderr
