"""`tritonops follow` for real: a real MLflow registry, a real repository written by real deploys
(a real Triton), the CLI as a process. stdout is what Argo's `withParam` reads: JSON only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import Env, Registry
from tritonops.adapters.storage import StateStore
from tritonops.core.lease import Lease
from tritonops.follow import parse_targets
from tritonops.local.samples import linear_model


def follow(env: Env, *targets: str, extra: tuple[str, ...] = ()) -> tuple[list[dict[str, str]], int, str]:
    """(the JSON on stdout, the exit code, stderr) of `tritonops follow --targets ... --json`."""
    out = env.cli("follow", "--targets", ",".join(targets), "--json", *extra)
    return json.loads(out.stdout), out.returncode, out.stderr


def moved(model: str, alias: str = "champion") -> dict[str, str]:
    return {"model": model, "alias": alias}


@pytest.mark.integration
def test_follow_prints_the_targets_whose_alias_moved(env: Env, registry: Registry, model_name: str) -> None:
    deployed, fresh, missing = model_name, f"{model_name}-new", f"{model_name}-missing"
    registry.register(deployed, linear_model(seed=1))
    assert env.cli("deploy", "--model", deployed, "--alias", "champion").returncode == 0
    registry.register(fresh, linear_model(seed=1))

    # Committed and unchanged: nothing. Never deployed: moved.
    assert follow(env, f"{deployed}@champion", f"{fresh}@champion")[:2] == ([moved(fresh)], 0)
    # The alias moves: both, in the order given.
    v2 = registry.register(deployed, linear_model(seed=2))
    assert follow(env, f"{deployed}@champion", f"{fresh}@champion")[:2] == (
        [moved(deployed), moved(fresh)],
        0,
    )
    # Another alias of the same model, pointing at what is committed: nothing.
    registry.set_alias(deployed, "stable", 1)
    assert follow(env, f"{deployed}@stable")[:2] == ([], 0)

    # A target that cannot be checked: the others are still printed, the exit code says so.
    printed, code, stderr = follow(env, f"{missing}@champion", f"{deployed}@champion")
    assert (printed, code) == ([moved(deployed)], 2)
    assert f"{missing}@champion: not checked" in stderr

    # Once deployed, nothing moved any more; nothing was changed by following.
    assert env.cli("deploy", "--model", deployed, "--alias", "champion").returncode == 0
    assert env.current(deployed)["active_version"] == v2  # type: ignore[index]
    assert follow(env, f"{deployed}@champion")[:2] == ([], 0)
    # --committed: what drift repair walks (models with a current.json), no registry needed.
    out = env.cli("follow", "--committed", "--json", MLFLOW_TRACKING_URI="")
    assert out.returncode == 0 and {"model": deployed} in json.loads(out.stdout)
    assert {"model": fresh} not in json.loads(out.stdout)


@pytest.mark.integration
def test_follow_holds_back_what_must_not_be_submitted(env: Env, registry: Registry, model_name: str) -> None:
    target = f"{model_name}@champion"
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0

    # A version that failed verification here is not resubmitted every few minutes...
    bad = registry.register(model_name, linear_model(seed=2, produce_nan=True))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 3
    printed, code, stderr = follow(env, target)
    assert (printed, code) == ([], 0)
    assert f"version {bad} already failed here" in stderr
    # ...until the alias moves on.
    good = registry.register(model_name, linear_model(seed=3))
    assert follow(env, target)[:2] == ([moved(model_name)], 0)

    # Production rolled back by hand from the version the alias still points at: following the
    # alias would undo the rollback.
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    assert env.cli("rollback", "--model", model_name, "--to", "1").returncode == 0
    printed, code, stderr = follow(env, target)
    assert (printed, code) == ([], 0)
    assert f"rolled back from version {good} to 1" in stderr

    # A run in progress (a live lease): not submitted, and not walked by drift repair.
    latest = registry.register(model_name, linear_model(seed=4))
    store = StateStore(env.state)
    now = time.time()
    store.write_lease(model_name, Lease("tritonops-deploy-x1", "argo/tritonops-deploy-x1", now, now + 600))
    printed, code, stderr = follow(env, target)
    assert (printed, code) == ([], 0)
    assert "a run is in progress" in stderr
    committed = json.loads(env.cli("follow", "--committed", "--json").stdout)
    assert {"model": model_name} not in committed
    store.release_lease(model_name, "tritonops-deploy-x1")
    assert follow(env, target)[:2] == ([moved(model_name)], 0)
    assert latest > good


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_registry_is_retryable_and_asked_once(tmp_path: Path) -> None:
    """MLflow not answering: every target reported unchecked, exit 75, stdout still a JSON list
    (what `withParam` parses), and the registry is not waited for once per target."""
    (tmp_path / "models").mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "TRITONOPS_REPO": str(tmp_path / "models"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "TRITONOPS_FOLLOW": "fraud@champion,churn@champion,spam@champion",
    }
    out = subprocess.run(
        [sys.executable, "-m", "tritonops.cli", "follow", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (json.loads(out.stdout), out.returncode) == ([], 75), out.stderr
    for model in ("fraud", "churn", "spam"):
        assert f"{model}@champion: not checked" in out.stderr
    assert out.stderr.count("Failed to establish a new connection") <= 2  # asked for the first only


def test_nothing_to_follow_is_an_empty_list(tmp_path: Path) -> None:
    """An empty TRITONOPS_FOLLOW (the base ConfigMap's): nothing to do, no registry needed."""
    out = subprocess.run(
        [sys.executable, "-m", "tritonops.cli", "follow", "--json"],
        env={"PATH": "/usr/bin:/bin", "TRITONOPS_REPO": str(tmp_path / "models"), "TRITONOPS_FOLLOW": ""},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (out.stdout.strip(), out.returncode) == ("[]", 0), out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud@champion", [("fraud", "champion")]),
        (" fraud@champion, churn@prod ,fraud@champion ", [("fraud", "champion"), ("churn", "prod")]),
        ("", []),
    ],
)
def test_targets_parse(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(t.model, t.alias) for t in parse_targets(text)] == expected


@pytest.mark.parametrize(
    "text", ["fraud", "fraud@", "@champion", "fraud@a@b", "../x@champion", "fraud@cham pion"]
)
def test_bad_targets_are_bad_input(text: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tritonops.cli", "follow", "--targets", text, "--json"],
        env={"PATH": "/usr/bin:/bin", "TRITONOPS_REPO": str(tmp_path / "models")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2, (text, out.stdout, out.stderr)
    assert out.stdout == ""  # Argo's withParam then fails loudly instead of deploying nothing


@pytest.mark.integration
def test_follow_holds_back_a_version_refused_for_its_artefact(
    env: Env, registry: Registry, model_name: str
) -> None:
    """A refusal that is the version's own (its config sets what only the operator may): not
    downloaded again every few minutes; a refusal about the moment (busy) is retried."""
    target = f"{model_name}@champion"
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    config = f'name: "{model_name}"\ninstance_group [ {{ count: 64 }} ]\n'
    refused = registry.register_triton_dir(model_name, linear_model(seed=2).SerializeToString(), config)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 2

    printed, code, stderr = follow(env, target)
    assert (printed, code) == ([], 0)
    assert f"version {refused} already failed here" in stderr and "instance_group" in stderr


def test_only_valid_names_reach_the_submitted_manifest() -> None:
    """Argo pastes the printed model and alias into the submit step's manifest text: a name
    that could carry YAML (a quote, a newline, a colon) is refused before it is printed."""
    from tritonops.errors import InputError

    for target in (
        'fraud"\n  serviceAccountName: admin@champion',
        'fraud@champion"',
        "../x@champion",
        "a:b@c",
    ):
        with pytest.raises(InputError):
            parse_targets(target)
    assert [str(t) for t in parse_targets("fraud@champion, churn@v1.2")] == ["fraud@champion", "churn@v1.2"]


@pytest.mark.integration
def test_a_gate_missing_from_the_environment_does_not_hold_the_version_back(
    env: Env, registry: Registry, model_name: str, tmp_path: Path
) -> None:
    """onnxruntime missing where the deploy runs is the environment's fault: the run rolls back
    (exit 3), but the follower tries the same version again once the environment is fixed."""
    target = f"{model_name}@champion"
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    version = registry.register(model_name, linear_model(seed=2))
    shadow = tmp_path / "no-onnxruntime"
    shadow.mkdir()
    (shadow / "onnxruntime.py").write_text("raise ImportError('onnxruntime is not installed here')\n")
    pythonpath = os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    failed = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json", PYTHONPATH=pythonpath)

    assert failed.returncode == 3, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["type"] == "SetupIncomplete" and "onnxruntime" in error["message"]
    assert env.current(model_name)["active_version"] == 1  # type: ignore[index]
    printed, code, _ = follow(env, target)
    assert (printed, code) == ([moved(model_name)], 0), f"version {version} was held back"
