"""``tritonops plan``: the real CLI against a real Triton and a real MLflow registry.

Every plan is followed by the proof that it changed nothing: the repository and the state dir
byte-identical (every file and directory), Triton's repository index for the model and its
staging name identical, and the temporary download directory gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Env, Registry, tree_digest
from tritonops.adapters.triton import TritonReplica
from tritonops.local.processes import free_port
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration

TEMPLATE = """\
instance_group [ { kind: KIND_CPU, count: 2 } ]
dynamic_batching { max_queue_delay_microseconds: 500 }
"""


@dataclass
class Planned:
    env: Env
    registry: Registry
    model: str
    v1: int  # committed and serving
    v2: int  # same interface, other weights
    v3: int  # three classes: the output's shape changed


@pytest.fixture(scope="module")
def planned(volume: Path, registry: Registry, triton: str) -> Planned:
    env = Env(
        repo=volume / "models",
        state=volume / "state",
        tracking_uri=registry.tracking_uri,
        triton_urls=[triton],
    )
    model = "plan-subject"
    v1 = registry.register(model, linear_model(seed=1))
    deployed = env.cli("deploy", "--model", model, "--alias", "champion", "--latency-requests", "3")
    assert deployed.returncode == 0, deployed.stderr
    v2 = registry.register(model, linear_model(seed=2), alias=None)
    v3 = registry.register(model, linear_model(seed=3, n_classes=3), alias=None)
    return Planned(env, registry, model, v1, v2, v3)


def observed(env: Env, model: str) -> dict[str, Any]:
    """Everything a plan must leave alone: files and directories, and what Triton holds."""
    paths = {
        root.name: sorted(str(p.relative_to(root)) for p in root.rglob("*")) for root in (env.repo, env.state)
    }
    replica = TritonReplica(env.triton_urls[0])
    try:
        index = replica.index(model) + replica.index(f"_candidate.{model}")
    finally:
        replica.close()
    return {"repo": tree_digest(env.repo), "state": tree_digest(env.state), "paths": paths, "triton": index}


@pytest.fixture
def unchanged(planned: Planned, tmp_path: Path) -> Iterator[Path]:
    """Asserts after the test that nothing changed; yields the TMPDIR the plans must clean up."""
    before = observed(planned.env, planned.model)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield tmp
    assert observed(planned.env, planned.model) == before
    assert list(tmp.iterdir()) == [], "the plan left its download behind"


def plan(p: Planned, tmp: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = p.env.cli("plan", "--model", p.model, "--alias", "champion", "--json", *args, TMPDIR=str(tmp))
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_new_version_is_planned_as_a_deploy_with_its_replicas_and_gates(
    planned: Planned, unchanged: Path
) -> None:
    planned.registry.set_alias(planned.model, "champion", planned.v2)
    code, p = plan(planned, unchanged)
    assert code == 0
    assert p["action"] == "deploy"
    assert p["version_change"] == [planned.v1, planned.v2]
    assert p["interface"]["changes"] == []
    assert p["config"]["diff"] == {"added": [], "changed": [], "removed": []}
    assert p["config"]["digest_after"] == p["config"]["digest_before"]
    assert [(r["url"], r["ready_versions"]) for r in p["replicas"]] == [
        (planned.env.triton_urls[0], [planned.v1])
    ]
    gates = {g["name"]: g for g in p["gates"]}
    assert [n for n, g in gates.items() if g["on"]] == ["interface", "smoke", "parity", "latency"]
    assert "input example" in gates["smoke"]["detail"]
    assert p["refused"] == []
    human = planned.env.cli("plan", "--model", planned.model, "--alias", "champion", TMPDIR=str(unchanged))
    assert human.returncode == 0, human.stderr
    assert f"deploy (committed: version {planned.v1}; alias: version {planned.v2})" in human.stdout
    assert "nothing was changed" in human.stdout


def test_the_serving_version_is_a_noop(planned: Planned, unchanged: Path) -> None:
    planned.registry.set_alias(planned.model, "champion", planned.v1)
    code, p = plan(planned, unchanged)
    assert code == 0
    assert p["action"] == "noop"
    assert p["version_change"] == [planned.v1, planned.v1]
    assert p["gates"] == []
    assert p["steps"][-1] == "materialize: nothing to do (no-op, exit 0)"


def test_an_interface_change_is_flagged_and_would_be_rejected(planned: Planned, unchanged: Path) -> None:
    planned.registry.set_alias(planned.model, "champion", planned.v3)
    code, p = plan(planned, unchanged)
    assert code == 0
    assert p["action"] == "reject"
    [change] = p["interface"]["changes"]
    assert "probabilities" in change
    assert any("interface gate" in r for r in p["reasons"])
    code, allowed = plan(planned, unchanged, "--allow-interface-change")
    assert code == 0 and allowed["action"] == "deploy"
    assert allowed["interface"]["changes"] == p["interface"]["changes"]


def test_a_template_is_planned_as_a_config_diff(planned: Planned, unchanged: Path, tmp_path: Path) -> None:
    template = tmp_path / "plan-subject.pbtxt"
    template.write_text(TEMPLATE)
    planned.registry.set_alias(planned.model, "champion", planned.v1)
    code, p = plan(planned, unchanged, "--model-config", str(template))
    assert code == 0
    assert p["action"] == "redeploy"  # the serving version under a new config is a deploy
    assert p["reasons"] == ["the effective config of the committed version changed"]
    assert p["config"]["diff"] == {
        "added": ["dynamic_batching", "instance_group"],
        "changed": [],
        "removed": [],
    }
    assert p["config"]["digest_after"] != p["config"]["digest_before"]
    added = [line for line in p["config"]["text_diff"] if line.startswith("+") and not line.startswith("+++")]
    assert "+instance_group {" in added and "+  kind: KIND_CPU" in added and "+  count: 2" in added


def test_bad_input_exits_2_and_changes_nothing(planned: Planned, unchanged: Path, tmp_path: Path) -> None:
    env = planned.env
    missing = env.cli("plan", "--model", planned.model, "--alias", "no-such-alias", TMPDIR=str(unchanged))
    assert missing.returncode == 2, missing.stderr
    assert "no-such-alias" in missing.stderr
    misspelt = tmp_path / "bad.pbtxt"
    misspelt.write_text("instance_grup [ { kind: KIND_CPU } ]\n")
    bad = env.cli(
        "plan",
        "--model",
        planned.model,
        "--alias",
        "champion",
        "--model-config",
        str(misspelt),
        TMPDIR=str(unchanged),
    )
    assert bad.returncode == 2 and f"{misspelt}:1:" in bad.stderr
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: a replica that is down
    down = env.cli(
        "plan", "--model", planned.model, "--alias", "champion", "--json",
        TMPDIR=str(unchanged), TRITONOPS_TRITON_URL=f"{env.triton_urls[0]},{dead}",
    )  # fmt: skip
    assert down.returncode == 2, down.stderr  # the deploy would be refused at its snapshot
    refused = json.loads(down.stdout)["refused"]
    assert len(refused) == 1 and refused[0].startswith(f"{dead} is not live")
