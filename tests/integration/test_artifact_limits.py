"""What one artefact may put on the shared volume, and how much quarantine keeps, end to end.

The real CLI against a real MLflow registry and Triton: an artefact over the byte or file
limit, or one the volume has no room for, is refused from the registry's listing before a byte
lands (exit 2, production untouched, nothing kept); quarantine keeps the newest N failures.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import Env, Registry, tree_digest
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def staged_bytes(env: Env, model: str) -> int:
    root = env.state / "staging" / model
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("TRITONOPS_MAX_ARTIFACT_BYTES", "200", "over the limit of"),
        ("TRITONOPS_MAX_ARTIFACT_FILES", "5", "files, over the limit of 5"),
        ("TRITONOPS_FREE_SPACE_MARGIN_BYTES", str(1 << 60), "plus a margin of"),
    ],
    ids=["bytes", "files", "free-space"],
)
def test_an_artefact_over_the_limits_is_refused_before_downloading(
    env: Env, registry: Registry, model_name: str, setting: str, value: str, named: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    before = tree_digest(env.repo / model_name)
    extra = {f"notes-{n}.txt": b"x" * 10 for n in range(8)}
    registry.register_raw(model_name, linear_model(seed=2).SerializeToString(), extra=extra)

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json", **{setting: value})

    assert result.returncode == 2, result.stderr
    record = json.loads(result.stdout)
    assert record["error"]["type"] == "ArtifactTooLarge" and named in record["error"]["message"]
    assert "not downloaded" in record["error"]["message"]
    assert tree_digest(env.repo / model_name) == before
    assert staged_bytes(env, model_name) == 0 and env.quarantined(model_name) == []


def test_quarantine_keeps_the_newest_failures_and_says_what_it_deleted(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    refused_config = f'name: "{model_name}"\nparameters {{ key: "k" value {{ string_value: "v" }} }}\n'
    for seed in (2, 3, 4, 5):
        registry.register_triton_dir(model_name, linear_model(seed=seed).SerializeToString(), refused_config)
        failed = env.cli(
            "deploy", "--model", model_name, "--alias", "champion", TRITONOPS_QUARANTINE_KEEP="2"
        )
        assert failed.returncode == 2, failed.stderr

    kept = env.quarantined(model_name)
    assert [p.name.split(".")[0] for p in kept] == ["4", "5"]
    pruned = [r for r in env.history(model_name) if r["outcome"] == "pruned"]
    assert [r["version"] for r in pruned] == [2, 3]
    assert all(
        "--quarantine-keep" in r["detail"] and not r["quarantine"].startswith(str(env.repo)) for r in pruned
    )
    shown = env.cli("history", "--model", model_name)
    assert "deleted from quarantine" in shown.stdout
    assert env.current(model_name)["active_version"] == 1  # production never moved
