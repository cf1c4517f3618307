"""An artefact's own config.pbtxt describes the model; it never decides how Triton runs it.

Whoever can register a model version and move an alias chooses *what* is served. A native
library Triton dlopens in every replica, a warmup file outside the model, 64 instances per
replica: each is the operator's business and refused (exit 2) with the field named, while a real
Triton keeps serving the committed version and the volume keeps its bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import FEATURES, Env, Registry, tree_digest
from tritonops.adapters.triton import TritonReplica
from tritonops.local.samples import linear_model, reference_output

pytestmark = pytest.mark.integration


def served(url: str, model: str) -> tuple[dict, np.ndarray]:
    replica = TritonReplica(url)
    try:
        _, out = replica.infer(model, None, {"features": FEATURES}, ["probabilities"])
        return replica.model_config(model), out["probabilities"][1]
    finally:
        replica.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A file that exists where the artefact points: the refusal must not depend on a missing file."""
    path = tmp_path / "libevil.so"
    path.write_bytes(b"\x7fELF not really")
    return path


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ('model_operations { op_library_filename: "{library}" }\n', "model_operations"),
        (
            'model_warmup [ { name: "w" batch_size: 1 inputs { key: "features" value { data_type: TYPE_FP32 '
            'dims: [ 4 ] input_data_file: "../../../../etc/passwd" } } } ]\n',
            "model_warmup",
        ),
        ("instance_group [ { kind: KIND_CPU, count: 64 } ]\n", "instance_group"),
    ],
    ids=["native-library", "warmup-file-outside", "64-instances"],
)
def test_runtime_fields_in_the_artefact_are_refused_and_production_is_untouched(
    env: Env, registry: Registry, model_name: str, library: Path, config: str, field: str
) -> None:
    good = linear_model(seed=1)
    registry.register(model_name, good)
    assert env.cli("deploy", "--model", model_name, "--alias", "champion").returncode == 0
    repo_before = tree_digest(env.repo / model_name)
    served_before = served(env.triton_urls[0], model_name)
    text = f'name: "{model_name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 64\n' + config.replace(
        "{library}", str(library)
    )
    version = registry.register_triton_dir(model_name, linear_model(seed=2).SerializeToString(), text)

    result = env.cli("deploy", "--model", model_name, "--alias", "champion", "--json")

    assert result.returncode == 2, result.stderr
    record = json.loads(result.stdout)
    assert record["error"]["type"] == "ArtifactFieldRefused" and record["version"] == version
    assert field in record["error"]["message"] and "operator's template" in record["error"]["message"]
    assert tree_digest(env.repo / model_name) == repo_before  # config.pbtxt, current.json, versions
    assert not (env.repo / f"_candidate.{model_name}").exists()
    config_after, answer = served(env.triton_urls[0], model_name)
    assert config_after == served_before[0]
    np.testing.assert_allclose(answer, reference_output(good, FEATURES), rtol=1e-5)
    # The refused download is kept aside for diagnosis, outside the repository.
    assert env.quarantined(model_name)


def test_the_operator_can_widen_what_the_artefact_may_set(
    env: Env, registry: Registry, model_name: str
) -> None:
    text = (
        f'name: "{model_name}"\nmax_batch_size: 8\ndynamic_batching {{ max_queue_delay_microseconds: 500 }}\n'
        'parameters { key: "origin" value { string_value: "artefact" } }\n'
    )
    registry.register_triton_dir(model_name, linear_model(seed=1).SerializeToString(), text)

    refused = env.cli("deploy", "--model", model_name, "--alias", "champion")
    assert refused.returncode == 2 and "parameters" in refused.stderr, refused.stderr

    widened = env.cli(
        "deploy", "--model", model_name, "--alias", "champion", TRITONOPS_ARTIFACT_CONFIG_FIELDS="parameters"
    )
    assert widened.returncode == 0, widened.stderr
    config, _ = served(env.triton_urls[0], model_name)
    assert config["parameters"]["origin"]["string_value"] == "artefact" and config["max_batch_size"] == 8
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 500

    never = env.cli(
        "deploy", "--model", model_name, "--alias", "champion", "--artifact-config-fields", "model_operations"
    )
    assert never.returncode == 2 and "never taken from an artefact" in never.stderr, never.stderr
