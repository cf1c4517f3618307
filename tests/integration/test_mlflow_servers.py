"""MLflow as teams run it: a tracking server with artefacts on S3 (proxied, or read by the
client directly), S3 going down mid-download, basic auth, tabular input examples.

Real ``mlflow server`` processes, a real S3 API (moto's server), a real Triton, the real CLI;
all on 127.0.0.1 (tests/mlflow_servers.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import FEATURES, Env, tree_digest
from tests.mlflow_servers import (
    ADMIN,
    AWS_SECRET,
    BUCKET,
    S3Server,
    Servers,
    cli_env,
    run_cli,
    serving,
    start_servers,
    state_texts,
    wait_until,
)
from tritonops.local.samples import linear_model, reference_output, sqrt_model

pytestmark = pytest.mark.integration

POSITIVE = np.array([[0.25, 4.0, 2.0, 1.5], [1.0, 0.5, 9.0, 0.1]], dtype=np.float32)


def positive_frame() -> object:
    """What a team logs for a tabular model: named columns, float64, valid (positive) values."""
    import pandas as pd

    return pd.DataFrame(POSITIVE.astype(np.float64), columns=["amount", "count", "age", "score"])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Servers]:
    """The MLflow servers boot (~20 s each, in parallel) while the session's Triton starts."""
    rig = start_servers(tmp_path_factory.mktemp("mlflow-servers"), lambda: request.getfixturevalue("triton"))
    yield rig
    rig.stop()


def assert_serving(triton: str, model: str, version: int, onnx_model: object, features: np.ndarray) -> None:
    answered, got = serving(triton, model, features)
    assert answered == version
    np.testing.assert_allclose(got, reference_output(onnx_model, features), rtol=1e-5)  # type: ignore[arg-type]


def journal_of(env: Env, model: str, run_id: str) -> dict[str, object]:
    return json.loads((env.state / "runs" / model / run_id / "journal.json").read_text())


# --------------------------------------------------------------------------- S3, proxied and direct


def test_proxied_s3_deploys_with_production_http_retries(
    servers: Servers, volume: Path, triton: str, model_name: str
) -> None:
    """The server holds the S3 credentials; neither the team's client nor tritonops has any.
    MLflow's HTTP retries are left at what tritonops runs in production (the test default
    of 0 retries is removed)."""
    server, s3 = servers.proxied, servers.s3
    model = linear_model(seed=11)
    before = set(s3.keys("proxied/"))
    with server.as_client() as registry:
        version = registry.register(model_name, model)
    uploaded = {k: k.rsplit("/", 1)[-1] for k in set(s3.keys("proxied/")) - before}
    assert "model.onnx" in uploaded.values(), f"the server did not put the model on S3: {uploaded}"
    env = server.env(volume, triton)

    result = run_cli(
        env, "deploy", "--model", model_name, "--alias", "champion", drop=("MLFLOW_HTTP_REQUEST_MAX_RETRIES",)
    )

    assert result.returncode == 0, result.stderr
    current = env.current(model_name)
    assert current is not None and current["active_version"] == version
    # What Triton serves is byte for byte what S3 holds.
    for key, name in uploaded.items():
        if name in current["files"]:
            body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == current["files"][name], name
    assert_serving(triton, model_name, version, model, FEATURES)


def test_direct_s3_client_reads_the_bucket_itself(
    servers: Servers, volume: Path, triton: str, model_name: str
) -> None:
    """``--no-serve-artifacts``: the server hands out s3:// locations and tritonops reads the
    bucket with MLflow's S3 variables from its own environment."""
    server, s3 = servers.direct, servers.s3
    model = linear_model(seed=12)
    with server.as_client() as registry:
        version = registry.register(model_name, model)
    assert any(k.endswith("/model.onnx") for k in s3.keys("direct/")), "the client did not write to S3"
    env = server.env(volume, triton)

    result = run_cli(env, "deploy", "--model", model_name, "--alias", "champion", **s3.client_env())

    assert result.returncode == 0, result.stderr
    current = env.current(model_name)
    assert current is not None and current["active_version"] == version
    assert_serving(triton, model_name, version, model, FEATURES)
    for out in (result.stdout, result.stderr, *state_texts(env, model_name).values()):
        assert AWS_SECRET not in out


@pytest.mark.parametrize("via", ["deploy", "step"])
def test_s3_down_mid_download(
    servers: Servers, volume: Path, triton: str, model_name: str, tmp_path: Path, via: str
) -> None:
    """S3 is killed (SIGKILL) while tritonops is downloading a 64 MiB artefact from it.

    ``deploy``: exit 2, nothing changed, production keeps serving. ``tritonops step
    materialize`` (an Argo step): exit 75, the workflow's retry policy may try again."""
    s3 = S3Server(tmp_path, "doomed-s3").start()  # its own S3: this test kills it
    try:
        server = servers.direct
        good, big = linear_model(seed=21), linear_model(seed=22, extra_weights=16 * 2**20)
        env = server.env(volume, triton)
        with server.as_client(**s3.client_env()) as registry:
            v1 = registry.register(model_name, good)
            committed = run_cli(
                env, "deploy", "--model", model_name, "--alias", "champion", **s3.client_env()
            )
            assert committed.returncode == 0, committed.stderr
            registry.register(model_name, big)
        model_dir = env.repo / model_name
        before = tree_digest(model_dir)
        current_bytes = (model_dir / "current.json").read_bytes()
        config_bytes = (model_dir / "config.pbtxt").read_bytes()
        run_id = f"{model_name}-s3down"
        args = ["deploy", "--model", model_name, "--alias", "champion"]
        if via == "step":
            snap = run_cli(
                env, "step", "snapshot", "--model", model_name, "--run-id", run_id, "--alias", "champion"
            )
            assert snap.returncode == 0, snap.stderr
            args = ["step", "materialize", "--model", model_name, "--run-id", run_id]
        staging = env.state / "staging" / model_name
        total = 16 * 2**20 * 4

        def landed() -> int:
            return sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) if staging.exists() else 0

        proc = subprocess.Popen(
            [sys.executable, "-m", "tritonops.cli", *args],
            env=cli_env(env, **s3.client_env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: landed() > 4 * 2**20 or proc.poll() is not None, 120, "the download to start")
            at_kill = landed()
            s3.kill()
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert 4 * 2**20 < at_kill < total, f"S3 was not killed mid-download ({at_kill} of {total} bytes)"

        out = stdout + stderr
        if via == "deploy":
            assert proc.returncode == 2, out
        else:
            assert proc.returncode == 75, out
            assert "temporary, safe to retry" in out
        assert f"the artifact store s3://{BUCKET}/direct/" in out and "is unreachable" in out, out
        assert f"(endpoint {s3.endpoint})" in out, out
        assert AWS_SECRET not in out
        # Nothing changed, production still serves v1.
        assert (model_dir / "current.json").read_bytes() == current_bytes
        assert (model_dir / "config.pbtxt").read_bytes() == config_bytes
        assert tree_digest(model_dir) == before
        assert_serving(triton, model_name, v1, good, FEATURES)
    finally:
        s3.stop()


# --------------------------------------------------------------------------- basic auth


def test_basic_auth_credentials_from_the_environment_only(
    servers: Servers, volume: Path, triton: str, model_name: str
) -> None:
    """Wrong credentials (in MLflow's variables, or in the URI) are exit 2 with a message that
    says what to check, for ``deploy`` and for a step (not retryable); the right ones commit.
    No password appears in any output or record."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    server = servers.auth
    user = f"deployer-{secrets.token_hex(4)}"
    password, wrong, in_uri = (f"{k}-{secrets.token_hex(10)}" for k in ("right", "wrong", "inuri"))
    admin = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": servers.admin_password}
    model = linear_model(seed=31)
    with server.as_client(**admin) as registry:
        users = get_app_client("basic-auth", tracking_uri=server.url)
        users.create_user(user, password)
        version = registry.register(model_name, model)
        users.grant_user_permission(user, "registered_model", model_name, "EDIT")  # to tag versions
    env = server.env(volume, triton)
    deploy = ("deploy", "--model", model_name, "--alias", "champion")
    as_user = {"MLFLOW_TRACKING_USERNAME": user}
    port = server.url.rsplit(":", 1)[1]
    run_id = f"{model_name}-auth"

    refused = run_cli(env, *deploy, **as_user, MLFLOW_TRACKING_PASSWORD=wrong)
    refused_uri = run_cli(env, *deploy, "--tracking-uri", f"http://{user}:{in_uri}@127.0.0.1:{port}")
    snap = run_cli(env, "step", "snapshot", "--model", model_name, "--run-id", run_id, "--alias", "champion")
    refused_step = run_cli(
        env,
        "step",
        "materialize",
        "--model",
        model_name,
        "--run-id",
        run_id,
        **as_user,
        MLFLOW_TRACKING_PASSWORD=wrong,
    )
    # The workflow's exit handler: ends the refused run (and its lease on the model).
    handler = run_cli(env, "step", "rollback", "--model", model_name, "--run-id", run_id)
    assert env.current(model_name) is None
    ok = run_cli(env, *deploy, **as_user, MLFLOW_TRACKING_PASSWORD=password)

    assert refused.returncode == 2, refused.stderr
    assert (
        f"MLflow at {server.url} refused the credentials (HTTP 401)" in refused.stderr
        and "check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD" in refused.stderr
    ), refused.stderr
    assert refused_uri.returncode == 2, refused_uri.stderr
    assert "refused the credentials (HTTP 401)" in refused_uri.stderr, refused_uri.stderr
    assert snap.returncode == 0, snap.stderr
    assert refused_step.returncode == 2, (
        refused_step.stdout + refused_step.stderr
    )  # not 75: retrying cannot help
    assert "refused the credentials (HTTP 401)" in refused_step.stdout + refused_step.stderr
    assert handler.returncode == 0, handler.stderr
    assert ok.returncode == 0, ok.stderr
    current = env.current(model_name)
    assert current is not None and current["active_version"] == version
    assert_serving(triton, model_name, version, model, FEATURES)
    with server.as_client(**admin):
        tags = MlflowClient(server.url).get_model_version(model_name, str(version)).tags
    assert tags.get("tritonops.status") == "production", tags

    outputs = {
        "deploy, wrong password": refused.stdout + refused.stderr,
        "deploy, password in URI": refused_uri.stdout + refused_uri.stderr,
        "step snapshot": snap.stdout + snap.stderr,
        "step materialize, wrong password": refused_step.stdout + refused_step.stderr,
        "step rollback": handler.stdout + handler.stderr,
        "deploy, right password": ok.stdout + ok.stderr,
        **state_texts(env, model_name),
    }
    for secret in (password, wrong, in_uri, servers.admin_password):
        leaks = [where for where, text in outputs.items() if secret in text]
        assert not leaks, f"a password appears in {leaks}"


# --------------------------------------------------------------------------- tabular input example


def test_tabular_input_example_is_the_smoke_input(
    servers: Servers, volume: Path, triton: str, model_name: str
) -> None:
    """A model that answers NaN for negative features, logged with a positive DataFrame as its
    input example: the smoke inference uses the table and commits. The same model logged
    without an example (another registered model, nothing committed) is smoke-tested with a
    synthesized input, which has negatives, and is rejected: the example makes the difference."""
    server = servers.proxied
    model = sqrt_model(seed=41)
    bare = f"{model_name}-bare"
    with server.as_client() as registry:
        # Registry.register calls mlflow.onnx.log_model(..., input_example=<the DataFrame>).
        v1 = registry.register(model_name, model, input_example=positive_frame())
        registry.register(bare, model, input_example=None)
    env = server.env(volume, triton)

    with_example = run_cli(env, "deploy", "--model", model_name, "--alias", "champion")
    without_example = run_cli(env, "deploy", "--model", bare, "--alias", "champion")

    assert with_example.returncode == 0, with_example.stderr
    current = env.current(model_name)
    assert current is not None and current["active_version"] == v1
    smoke_input = journal_of(env, model_name, current["deploy_run"])["smoke_input"]
    assert smoke_input, "the run recorded no smoke input: it synthesized one"
    with np.load(str(smoke_input)) as data:
        np.testing.assert_array_equal(data["features"], POSITIVE)
    assert_serving(triton, model_name, v1, model, POSITIVE)

    assert without_example.returncode == 3, without_example.stderr
    last = env.history(bare)[-1]
    assert last["outcome"] == "rolled_back" and last["error"]["type"] == "SmokeFailed", last
    assert "non-finite" in last["error"]["message"], last["error"]
    assert env.current(bare) is None


def test_rollback_proves_production_with_its_own_input_example(
    servers: Servers, volume: Path, triton: str, model_name: str
) -> None:
    """v1 (committed with its table) serves; v2, the same model without an example, fails smoke
    on the synthesized input. Rolling back must prove v1 with an input v1 accepts, not v2's."""
    server = servers.proxied
    model = sqrt_model(seed=42)
    with server.as_client() as registry:
        v1 = registry.register(model_name, model, input_example=positive_frame())
    env = server.env(volume, triton)
    assert run_cli(env, "deploy", "--model", model_name, "--alias", "champion").returncode == 0
    with server.as_client() as registry:
        v2 = registry.register(model_name, model, input_example=None)

    result = run_cli(env, "deploy", "--model", model_name, "--alias", "champion")

    last = env.history(model_name)[-1]
    assert last["version"] == v2 and last["error"]["type"] == "SmokeFailed", last
    assert env.current(model_name)["active_version"] == v1
    assert_serving(triton, model_name, v1, model, POSITIVE)
    # Was 4 (rollback_failed) while rollback proved v1 with v2's synthesized input (negatives).
    assert result.returncode == 3, result.stderr
