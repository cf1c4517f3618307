"""Failure paths that are not our own errors: whatever breaks after the snapshot, production is restored.

The engine runs in-process against a real Triton and a real MLflow registry; the fault is injected
into one collaborator (an onnxruntime error in the parity gate, a failing quarantine move), as the
only way to make a real component fail on cue.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from tests.helpers import Env, Registry, tree_digest
from tests.integration.test_deploy import assert_serving
from tritonops.adapters import files
from tritonops.adapters.registry import RegistrySettings
from tritonops.core.state import Outcome
from tritonops.engine.deployer import Deployer, exit_code_for
from tritonops.engine.manual import recover
from tritonops.engine.settings import Settings
from tritonops.local.samples import linear_model

pytestmark = pytest.mark.integration


def deployer(env: Env) -> Deployer:
    return Deployer(
        Settings(
            repo=env.repo,
            state_dir=env.state,
            triton_urls=tuple(env.triton_urls),
            registry=RegistrySettings(tracking_uri=env.tracking_uri, max_retries=0),
        )
    )


def committed_v1(env: Env, registry: Registry, model_name: str) -> onnx.ModelProto:
    """Version 1 registered and committed through the CLI: production to protect."""
    good = linear_model(seed=1)
    registry.register(model_name, good)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    return good


def test_an_unexpected_exception_in_a_gate_rolls_back(
    env: Env, registry: Registry, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = committed_v1(env, registry, model_name)
    before = tree_digest(env.repo / model_name)
    v2 = registry.register(model_name, linear_model(seed=2))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : simulated")

    monkeypatch.setattr("tritonops.engine.gates.parity", broken)
    journal = deployer(env).run(model_name, "champion", "fault-gate-1")

    assert journal.outcome is Outcome.ROLLED_BACK and exit_code_for(journal) == 3
    assert journal.error["step"] == "smoke" and journal.error["type"] == "RuntimeError"
    assert tree_digest(env.repo / model_name) == before
    assert_serving(env, model_name, 1, good)
    assert env.quarantined(model_name)[-1].name.startswith(f"{v2}.failed_")


def test_a_failing_quarantine_move_does_not_stop_the_restore_and_loses_no_file(
    env: Env, registry: Registry, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = committed_v1(env, registry, model_name)
    current_before = (env.repo / model_name / "current.json").read_bytes()
    v2 = registry.register(model_name, linear_model(seed=2, produce_nan=True))

    def full_disk(*_args: object, **_kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tritonops.adapters.storage.StateStore.quarantine", full_disk)
    journal = deployer(env).run(model_name, "champion", "fault-quarantine-1")

    assert journal.outcome is Outcome.ROLLED_BACK, journal.rollback_detail
    assert "NOT quarantined" in journal.rollback_detail and "No space left" in journal.rollback_detail
    assert (env.repo / model_name / "current.json").read_bytes() == current_before
    assert_serving(env, model_name, 1, good)
    # The candidate's files are still on the volume (not served: the version policy pins v1).
    assert (env.repo / model_name / str(v2) / "model.onnx").is_file()


class _Crash(BaseException):
    """Stands for the process dying: nothing in the engine catches it."""


def test_a_run_killed_right_after_renaming_the_version_into_the_repository_is_quarantined_on_recovery(
    env: Env, registry: Registry, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window between the rename and the journal saying so: the journal holds MATERIALIZING
    # and no digests (the load step hashes), so only the staged dir's identity tells the
    # recovery that the directory now in the repository is this run's.
    good = committed_v1(env, registry, model_name)
    current_before = (env.repo / model_name / "current.json").read_bytes()
    v2 = registry.register(model_name, linear_model(seed=2))
    real_move = files.move_dir

    def move_then_die(src: Path, dst: Path) -> None:
        real_move(src, dst)
        raise _Crash

    monkeypatch.setattr(files, "move_dir", move_then_die)
    with pytest.raises(_Crash):
        deployer(env).run(model_name, "champion", "killed-after-rename")
    monkeypatch.setattr(files, "move_dir", real_move)
    assert (env.repo / model_name / str(v2) / "model.onnx").is_file()  # the crash left it there

    # The dead run's lease is still live: its own run id recovers it (as a workflow's onExit does),
    # through what `tritonops recover` runs.
    report = recover(deployer(env).settings, model_name, "killed-after-rename")

    [journal] = report["runs"]
    assert journal["outcome"] == Outcome.REJECTED.value  # stopped before any replica saw it
    assert not (env.repo / model_name / str(v2)).exists()
    assert env.quarantined(model_name)[-1].name.startswith(f"{v2}.failed_")
    assert (env.quarantined(model_name)[-1] / "model.onnx").is_file()  # kept for diagnosis
    assert (env.repo / model_name / "current.json").read_bytes() == current_before
    assert_serving(env, model_name, 1, good)


def test_current_json_records_the_sha256_of_every_served_file(
    env: Env, registry: Registry, model_name: str
) -> None:
    v1 = registry.register(model_name, linear_model(seed=1, extra_weights=1000))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    vdir = env.repo / model_name / str(v1)
    on_disk = {
        str(p.relative_to(vdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in vdir.rglob("*")
        if p.is_file()
    }
    current = json.loads((env.repo / model_name / "current.json").read_text())
    assert "model.onnx" in on_disk and len(on_disk) >= 2  # the graph and its external data
    assert current["files"] == on_disk
