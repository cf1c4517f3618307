"""What an artefact's own config.pbtxt may set: the model's description, never how Triton runs it.

Pure rules (core/config.py); the end-to-end refusal against a real Triton is in
tests/integration/test_artifact_config_security.py.
"""

from __future__ import annotations

import pytest

from tritonops.core import config as cfg
from tritonops.core.config import ArtifactFields, ConfigSource
from tritonops.core.signature import Signature, TensorSpec
from tritonops.errors import ArtifactFieldRefused, ConfigInvalid

CLASSIFIER = Signature(
    (TensorSpec("features", "FP32", (-1, 4)),),
    (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
)


def compose(text: str, allowed: ArtifactFields | None = None) -> cfg.ModelConfig:
    source = ConfigSource(
        text, "the artefact's config.pbtxt", operator=False, allowed=allowed or ArtifactFields()
    )
    return cfg.effective_config("fraud", CLASSIFIER, [source])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('model_operations { op_library_filename: "/tmp/libx.so" }', "model_operations"),
        ("instance_group [ { kind: KIND_CPU, count: 64 } ]", "instance_group"),
        ('parameters { key: "k" value { string_value: "v" } }', "parameters"),
        (
            'model_warmup [ { name: "w" batch_size: 1 inputs { key: "features" value { '
            'data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "../../../etc/passwd" } } } ]',
            "model_warmup",
        ),
        ('model_repository_agents { agents [ { name: "checksum" } ] }', "model_repository_agents"),
        (
            'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }',
            "optimization",
        ),
        ("response_cache { enable: true }", "response_cache"),
        ('cc_model_filenames { key: "7.5" value: "../x.onnx" }', "cc_model_filenames"),
        ('runtime: "libtriton_evil.so"', "runtime"),
        ('output [ { name: "label", label_filename: "labels.txt" } ]', "output 'label' label_filename"),
        ('input [ { name: "features", format: FORMAT_NCHW } ]', "input 'features' format"),
        ('input [ { name: "features", is_shape_tensor: true } ]', "input 'features' is_shape_tensor"),
    ],
)
def test_a_field_that_is_the_operators_business_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ArtifactFieldRefused) as caught:
        compose(text)
    message = str(caught.value)
    assert named in message
    assert "operator's template" in message and "--artifact-config-fields" in message
    assert caught.value.exit_code == 2


def test_what_describes_the_model_is_taken() -> None:
    config = compose(
        'name: "elsewhere"\nplatform: "onnxruntime_onnx"\nversion_policy { latest { num_versions: 2 } }\n'
        "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 100 }\n"
        'input [ { name: "features", dims: [ 4 ], optional: false, allow_ragged_batch: false } ]\n'
        'output [ { name: "probabilities", dims: [ 2 ] } ]\n'
    )
    assert config.max_batch_size == 8 and config.dynamic_batching.max_queue_delay_microseconds == 100
    # Owned fields the artefact wrote for another repository are ignored, never taken.
    assert (config.name, config.backend, config.platform) == ("fraud", "onnxruntime", "")
    assert not config.HasField("version_policy")


def test_sequence_batching_is_taken_but_its_state_file_must_stay_inside_the_model() -> None:
    ok = compose("max_batch_size: 8\nsequence_batching { max_sequence_idle_microseconds: 5000 }\n")
    assert ok.sequence_batching.max_sequence_idle_microseconds == 5000
    escaping = (
        'max_batch_size: 8\nsequence_batching { state [ { input_name: "s_in" output_name: "s_out" '
        "data_type: TYPE_FP32 dims: [ 1 ] initial_state [ { data_type: TYPE_FP32 dims: [ 1 ] "
        'name: "init" data_file: "../../state.bin" } ] } ] }\n'
    )
    with pytest.raises(
        ArtifactFieldRefused, match=r"data_file '\.\./\.\./state\.bin' is not a plain file name"
    ):
        compose(escaping)


def test_the_operator_widens_the_list_explicitly() -> None:
    allowed = ArtifactFields.widened(["parameters", " instance_group ", "", "input.format"])
    config = compose(
        'parameters { key: "k" value { string_value: "v" } }\ninstance_group [ { count: 2 } ]\n'
        'input [ { name: "features", format: FORMAT_NONE } ]\n',
        allowed,
    )
    assert config.parameters["k"].string_value == "v" and config.instance_group[0].count == 2
    # Widening one field leaves the others refused.
    with pytest.raises(ArtifactFieldRefused, match="model_warmup"):
        compose('model_warmup [ { name: "w" batch_size: 1 } ]\n', allowed)


def test_a_widened_warmup_still_names_only_files_inside_the_model() -> None:
    allowed = ArtifactFields.widened(["model_warmup"])
    inside = (
        'model_warmup [ { name: "w" batch_size: 1 inputs { key: "features" value { '
        'data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "features.bin" } } } ]\n'
    )
    assert compose(inside, allowed).model_warmup[0].name == "w"
    for bad in ("../../../etc/passwd", "/etc/passwd", "..", "sub/dir.bin"):
        with pytest.raises(ArtifactFieldRefused, match="input_data_file"):
            compose(inside.replace("features.bin", bad), allowed)


@pytest.mark.parametrize(
    ("names", "complaint"),
    [
        (["model_operations"], "never taken from an artefact"),
        (["model_repository_agents"], "never taken from an artefact"),
        (["version_policy"], "owned by tritonops"),
        (["backend"], "owned by tritonops"),
        (["instance_groups"], "not a field of Triton's ModelConfig"),
        (["input.nonsense"], "not a field of Triton's ModelConfig"),
        (["parameters.x"], "not a field of Triton's ModelConfig"),
    ],
)
def test_widening_is_checked_against_triton_schema_and_our_rules(names: list[str], complaint: str) -> None:
    with pytest.raises(ConfigInvalid, match=complaint):
        ArtifactFields.widened(names)


def test_the_operators_template_may_set_anything_the_artefact_may_not() -> None:
    template = ConfigSource(
        'model_operations { op_library_filename: "/opt/ops/libcustom.so" }\ninstance_group [ { count: 64 } ]\n',
        "fraud.pbtxt",
    )
    config = cfg.effective_config("fraud", CLASSIFIER, [template])
    assert list(config.model_operations.op_library_filename) == ["/opt/ops/libcustom.so"]
    assert config.instance_group[0].count == 64
