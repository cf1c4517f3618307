"""Bad input gets a one-line error naming the problem, exit 2, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Env, Registry, tree_digest
from tritonops.local.processes import free_port
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


@pytest.fixture
def committed(env: Env, registry: Registry, model_name: str) -> str:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    return model_name


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("tritonops: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("model", "alias", "named"),
    [
        ("a/b", "champion", "'a/b'"),
        ("..", "champion", "'..'"),
        ("../etc", "champion", "'../etc'"),
        ("has space", "champion", "'has space'"),
        ("", "champion", "model name is empty"),
        ("ok-model", "bad/alias", "'bad/alias'"),
        ("ok-model", "", "alias name is empty"),
        (".hidden", "champion", "'.hidden'"),
    ],
)
def test_invalid_names(env: Env, committed: str, model: str, alias: str, named: str) -> None:
    before = tree_digest(env.repo)
    result = env.cli("deploy", "--model", model, "--alias", alias)
    assert result.returncode == 2
    assert named in _error_line(result.stderr)
    assert tree_digest(env.repo) == before


def test_unknown_model_and_alias(env: Env, committed: str) -> None:
    before = tree_digest(env.repo)
    unknown_model = env.cli("deploy", "--model", "no-such-model", "--alias", "champion")
    assert unknown_model.returncode == 2
    assert "no-such-model" in unknown_model.stdout + unknown_model.stderr
    unknown_alias = env.cli("deploy", "--model", committed, "--alias", "no-such-alias")
    assert unknown_alias.returncode == 2
    assert "no-such-alias" in unknown_alias.stdout + unknown_alias.stderr
    assert tree_digest(env.repo) == before
    assert env.history(committed)[-1]["outcome"] == "rejected"


def test_unreachable_mlflow(env: Env, registry: Registry, committed: str) -> None:
    registry.register(committed, linear_model(seed=2))  # something new to deploy
    before = tree_digest(env.repo)
    result = env.cli(
        "deploy",
        "--model",
        committed,
        "--alias",
        "champion",
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 2
    assert "unreachable" in result.stdout + result.stderr
    assert tree_digest(env.repo) == before


def test_unreachable_triton_changes_nothing(env: Env, registry: Registry, committed: str) -> None:
    registry.register(committed, linear_model(seed=2))
    before = tree_digest(env.repo)
    result = env.cli(
        "deploy",
        "--model",
        committed,
        "--alias",
        "champion",
        "--triton-url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 2
    assert "did not answer" in _error_line(result.stderr)
    assert tree_digest(env.repo) == before


def test_state_dir_inside_repo_is_refused(env: Env, committed: str) -> None:
    before = tree_digest(env.repo)
    result = env.cli(
        "deploy", "--model", committed, "--alias", "champion", "--state-dir", str(env.repo / "state")
    )
    assert result.returncode == 2
    assert "inside the model repository" in _error_line(result.stderr)
    assert tree_digest(env.repo) == before


def test_corrupt_current_json_is_reported_not_overwritten(
    env: Env, registry: Registry, committed: str
) -> None:
    registry.register(committed, linear_model(seed=2))
    path = env.repo / committed / "current.json"
    path.write_text("{ this is not json")
    before = tree_digest(env.repo)
    result = env.cli("deploy", "--model", committed, "--alias", "champion")
    assert result.returncode == 4
    assert "current.json is not valid JSON" in _error_line(result.stderr)
    assert tree_digest(env.repo) == before


def test_help_explains(env: Env) -> None:
    result = env.cli("deploy", "--help")
    assert result.returncode == 0
    for flag in (
        "--model",
        "--alias",
        "--repo",
        "--state-dir",
        "--triton-url",
        "--tracking-uri",
        "--pushgateway",
        "--json",
    ):
        assert flag in result.stdout
    assert "Exit codes" in env.cli("--help").stdout


def test_artefact_naming_a_path_outside_its_download_moves_nothing(
    env: Env, registry: Registry, model_name: str
) -> None:
    """A crafted MLmodel (flavors.onnx.data) pointing at another model's current.json."""

    other = f"{model_name}-other"
    registry.register(other, linear_model(seed=1))
    assert env.cli("deploy", "--model", other, "--alias", "champion").returncode == 0
    victim = env.repo / other / "current.json"
    before = tree_digest(env.repo)
    mlmodel = f"flavors:\n  onnx:\n    data: {victim}\n".encode()
    registry.register_raw(model_name, linear_model(seed=2).SerializeToString(), extra={"MLmodel": mlmodel})

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json")

    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["error"]["type"] == "UnsafeArtifact"
    assert tree_digest(env.repo) == before  # the other model's current.json is where it was


def test_an_input_example_outside_the_artefact_is_refused_and_its_content_never_shown(
    env: Env, registry: Registry, model_name: str, tmp_path: Path
) -> None:
    """MLmodel's saved_input_example_info.artifact_path naming a file outside the download."""
    secret = tmp_path / "credentials.json"
    secret.write_text('{"features": [[1, 2, 3, 4]], "aws_secret_access_key": "wJalrXUtnFEMI-not-shown"}')
    mlmodel = (
        "flavors:\n  onnx:\n    data: model.onnx\nsaved_input_example_info:\n"
        f"  artifact_path: ../../../../../../../..{secret}\n  type: json_object\n"
    ).encode()
    registry.register_raw(model_name, linear_model(seed=2).SerializeToString(), extra={"MLmodel": mlmodel})

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json")

    assert result.returncode == 2, result.stderr
    record = json.loads(result.stdout)
    assert record["error"]["type"] == "UnsafeArtifact"
    assert "saved_input_example_info.artifact_path" in record["error"]["message"]
    shown = result.stdout + result.stderr + json.dumps(env.history(model_name))
    assert "wJalrXUtnFEMI" not in shown
    assert env.current(model_name) is None
