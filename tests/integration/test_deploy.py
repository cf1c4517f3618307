"""The deploy engine end to end: the real CLI, a real Triton process, a real MLflow registry."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from tests.helpers import FEATURES, Env, Registry, tree_digest
from tritonops.adapters.triton import TritonReplica
from tritonops.local.samples import linear_model, reference_output, unloadable_model

pytestmark = pytest.mark.integration


def serve(url: str, model: str, version: int | None = None) -> tuple[int, np.ndarray]:
    """What a production client gets: an inference without a version (unless given)."""
    replica = TritonReplica(url)
    try:
        answered, out = replica.infer(model, version, {"features": FEATURES}, ["probabilities"])
    finally:
        replica.close()
    return answered, out["probabilities"][1]


def ready_versions(url: str, model: str) -> list[int]:
    replica = TritonReplica(url)
    try:
        return replica.ready_versions(model)
    finally:
        replica.close()


def assert_serving(env: Env, model: str, version: int, onnx_model: onnx.ModelProto) -> None:
    """Every replica answers unversioned requests from ``version``, with the right numbers."""
    expected = reference_output(onnx_model, FEATURES)
    for url in env.triton_urls:
        assert ready_versions(url, model) == [version]
        answered, got = serve(url, model)
        assert answered == version
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_good_version_commits(env: Env, registry: Registry, model_name: str) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)

    result = env.cli("deploy", "--model", model_name, "--alias", "champion")

    assert result.returncode == 0, result.stderr
    assert f"committed: {model_name} version {v1}" in result.stdout
    current = env.current(model_name)
    assert current is not None
    assert current["active_version"] == v1 and current["alias"] == "champion"
    assert current["run_id"] and len(current["updated_at_utc"]) == 15
    # What Triton reads, parsed with Triton's own schema.
    config = text_format.Parse((env.repo / model_name / "config.pbtxt").read_text(), pb.ModelConfig())
    assert list(config.version_policy.specific.versions) == [v1]
    assert config.backend == "onnxruntime" and config.name == model_name
    assert len(config.instance_group) == 0  # no hard-coded CPU group: Triton picks GPUs where there are
    assert_serving(env, model_name, v1, good)
    [record] = env.history(model_name)
    assert record["outcome"] == "committed" and record["version"] == v1
    assert set(record["steps"]) == {"snapshot", "materialize", "load", "ready", "smoke", "commit"}


@pytest.mark.parametrize(
    ("bad", "failed_step", "outcome", "error"),
    [
        pytest.param(
            lambda: linear_model(seed=2, n_classes=3),
            "materialize",
            "rejected",
            "InterfaceChanged",
            id="output-shape-changed",
        ),
        pytest.param(unloadable_model, "load", "rolled_back", "LoadFailed", id="fails-to-load"),
        pytest.param(
            lambda: linear_model(seed=2, produce_nan=True),
            "smoke",
            "rolled_back",
            "SmokeFailed",
            id="returns-nan",
        ),
        pytest.param(
            lambda: linear_model(seed=2, n_classes=3, declared_classes=2),
            "load",
            "rolled_back",
            "LoadFailed",
            id="lies-about-shape",
        ),
    ],
)
def test_bad_version_is_rolled_back(
    env: Env, registry: Registry, model_name: str, bad, failed_step: str, outcome: str, error: str
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    current_before = (env.repo / model_name / "current.json").read_bytes()
    config_before = (env.repo / model_name / "config.pbtxt").read_bytes()
    v2 = registry.register(model_name, bad())

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json")

    assert result.returncode == 3, result.stderr
    record = json.loads(result.stdout)
    assert record["outcome"] == outcome and record["error"]["step"] == failed_step
    assert record["error"]["type"] == error  # the check meant to catch it, not a later gate
    assert (env.repo / model_name / "current.json").read_bytes() == current_before
    assert (env.repo / model_name / "config.pbtxt").read_bytes() == config_before
    assert not (env.repo / model_name / str(v2)).exists()
    assert_serving(env, model_name, v1, good)
    [kept] = env.quarantined(model_name)
    assert kept.name.startswith(f"{v2}.failed_")
    assert (kept / "model.onnx").is_file()
    assert json.loads((kept / "tritonops-reason.json").read_text())["error"]["step"] == failed_step
    assert env.history(model_name)[-1]["quarantine"] == str(kept)


def test_first_deploy_that_fails_leaves_nothing_loaded(env: Env, registry: Registry, model_name: str) -> None:
    v1 = registry.register(model_name, linear_model(seed=1, produce_nan=True))

    result = env.cli("deploy", "--model", model_name, "--alias", "champion")

    assert result.returncode == 3, result.stderr
    assert env.current(model_name) is None
    assert not (env.repo / model_name / "config.pbtxt").exists()
    assert ready_versions(env.triton_urls[0], model_name) == []
    assert env.quarantined(model_name)[0].name.startswith(f"{v1}.failed_")


def test_deploying_the_serving_version_is_a_noop(env: Env, registry: Registry, model_name: str) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    before = tree_digest(env.repo / model_name)
    mtimes = {p: p.stat().st_mtime_ns for p in (env.repo / model_name).rglob("*")}

    result = env.cli("deploy", "--model", model_name, "--alias", "champion")

    assert result.returncode == 0, result.stderr
    assert "no-op" in result.stdout
    assert tree_digest(env.repo / model_name) == before
    assert {p: p.stat().st_mtime_ns for p in (env.repo / model_name).rglob("*")} == mtimes
    assert env.history(model_name)[-1]["outcome"] == "noop"


def test_external_data_and_mlflow2_layout(env: Env, registry: Registry, model_name: str) -> None:
    # MLflow 3 logged model whose weights live in a separate external-data file.
    big = linear_model(seed=5, extra_weights=300_000)
    registry.register(model_name, big, save_as_external_data=True)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    vdir = env.repo / model_name / "1"
    data_files = [p for p in vdir.iterdir() if p.suffix == ".data"]
    assert data_files and data_files[0].stat().st_size >= 300_000 * 4
    assert_serving(env, model_name, 1, big)

    # MLflow 2 layout: a plain run artefact registered by its runs:/ source.
    plain = linear_model(seed=6)
    v2 = registry.register_raw(model_name, plain.SerializeToString())
    result = env.cli("deploy", "--model", model_name, "--alias", "champion")
    assert result.returncode == 0, result.stderr
    assert env.current(model_name)["source"].startswith("runs:/")
    assert_serving(env, model_name, v2, plain)


def test_triton_restart_after_rollback_serves_the_committed_version(
    registry: Registry, tmp_path, model_name: str
) -> None:
    from tritonops.local.processes import start_triton

    repo, state = tmp_path / "models", tmp_path / "state"
    repo.mkdir()
    proc, url = start_triton(repo, tmp_path / "triton.log")
    env = Env(repo=repo, state=state, tracking_uri=registry.tracking_uri, triton_urls=[url])
    try:
        good = linear_model(seed=1)
        v1 = registry.register(model_name, good)
        assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
        registry.register(model_name, linear_model(seed=2, produce_nan=True))
        assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 3
        # Leave a higher version directory in the repository, as an old copy would:
        # the pinned version policy must still make Triton serve the committed one.
        stray = repo / model_name / "99"
        stray.mkdir()
        onnx.save(linear_model(seed=9), str(stray / "model.onnx"))
    finally:
        proc.stop()
    proc, url = start_triton(repo, tmp_path / "triton2.log")
    try:
        env.triton_urls = [url]
        assert_serving(env, model_name, v1, good)
        status = env.cli("status", "--model", model_name, "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["drift"] is False
    finally:
        proc.stop()


def test_alias_moving_mid_run_does_not_change_the_pinned_version(
    env: Env, registry: Registry, model_name: str
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    run = "pinned-run-1"
    steps = ["snapshot", "materialize", "load", "ready", "smoke", "commit"]
    for step in steps:
        args = ["step", step, "--model", model_name, "--run-id", run]
        if step == "snapshot":
            args += ["--alias", "champion"]
        result = env.cli(*args)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        if step == "materialize":  # the alias moves while the run is in flight
            registry.set_alias(
                model_name, "champion", registry.register(model_name, linear_model(seed=7), alias=None)
            )
    assert env.current(model_name)["active_version"] == v1
    assert_serving(env, model_name, v1, good)
    assert env.cli("step", "rollback", "--model", model_name, "--run-id", run).returncode == 0
    assert env.current(model_name)["active_version"] == v1  # rollback of a committed run is a no-op


def test_manual_rollback_to_a_committed_version(env: Env, registry: Registry, model_name: str) -> None:
    first, second = linear_model(seed=1), linear_model(seed=2)
    v1 = registry.register(model_name, first)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, second)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    assert_serving(env, model_name, v2, second)

    never = env.cli("rollback", "--model", model_name, "--to", "42")
    assert never.returncode == 2 and "never committed" in never.stderr

    result = env.cli("rollback", "--model", model_name, "--to", str(v1))
    assert result.returncode == 0, result.stderr
    assert env.current(model_name)["active_version"] == v1
    assert_serving(env, model_name, v1, first)
    assert env.history(model_name)[-1]["kind"] == "rollback"
    assert (env.repo / model_name / str(v2) / "model.onnx").is_file()  # nothing lost


def test_recover_undoes_a_run_that_was_killed_after_load(
    env: Env, registry: Registry, model_name: str
) -> None:
    good = linear_model(seed=1)
    v1 = registry.register(model_name, good)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    v2 = registry.register(model_name, linear_model(seed=2))
    run = "killed-run-1"
    lease = {"TRITONOPS_LEASE_SECONDS": "3"}
    snapshot = ("step", "snapshot", "--model", model_name, "--run-id", run, "--alias", "champion")
    assert env.cli(*snapshot, **lease).returncode == 0
    assert env.cli("step", "materialize", "--model", model_name, "--run-id", run, **lease).returncode == 0
    assert env.cli("step", "load", "--model", model_name, "--run-id", run, **lease).returncode == 0
    # The candidate is verified under a staging name; production still serves only v1.
    staging = f"_candidate.{model_name}"
    assert ready_versions(env.triton_urls[0], model_name) == [v1]
    assert ready_versions(env.triton_urls[0], staging) == [v2]  # the run "dies" here

    status = env.cli("status", "--model", model_name, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["unfinished_runs"] == [run]
    env.wait_lease_end(model_name)  # nothing renews a dead run's lease
    result = env.cli("recover", "--model", model_name)

    assert result.returncode == 0, result.stderr
    assert env.current(model_name)["active_version"] == v1
    assert_serving(env, model_name, v1, good)
    assert env.quarantined(model_name)[0].name.startswith(f"{v2}.failed_")
    assert ready_versions(env.triton_urls[0], staging) == []
    assert not (env.repo / staging).exists()
    assert env.cli("status", "--model", model_name).returncode == 0


def test_parity_reference_is_computed_while_triton_loads_and_large_models_skip_the_gate(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--run-id", "parity-ref-1")
    assert result.returncode == 0, result.stderr
    journal = json.loads((env.state / "runs" / model_name / "parity-ref-1" / "journal.json").read_text())
    assert journal["parity_reference"] and np.load(journal["parity_reference"])["probabilities"].shape == (
        2,
        2,
    )
    assert env.history(model_name)[-1]["gates"]["parity"]["passed"] is True

    registry.register(model_name, linear_model(seed=2))
    result = env.cli("deploy", "--model", model_name, "--alias", "champion", TRITONOPS_PARITY_MAX_BYTES="100")
    assert result.returncode == 0, result.stderr
    parity = env.history(model_name)[-1]["gates"]["parity"]
    assert parity["skipped"] is True and "over the in-process limit" in parity["detail"]


def test_deploying_the_serving_version_repairs_a_replica_serving_extra_versions(
    env: Env, registry: Registry, model_name: str
) -> None:
    registry.register(model_name, linear_model(seed=1))
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    new = linear_model(seed=2)
    v2 = registry.register(model_name, new)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    # Someone loads version 1 next to 2 by hand: the replica drifts (it serves two versions).
    replica = TritonReplica(env.triton_urls[0])
    try:
        served = replica.model_config(model_name)
        served["version_policy"] = {"specific": {"versions": [1, v2]}}
        replica.load(model_name, json.dumps(served))
        replica.wait_version_ready(model_name, 1)
    finally:
        replica.close()
    assert ready_versions(env.triton_urls[0], model_name) == [1, v2]

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "committed"  # a repair, not a no-op
    assert ready_versions(env.triton_urls[0], model_name) == [v2]
    assert_serving(env, model_name, v2, new)
