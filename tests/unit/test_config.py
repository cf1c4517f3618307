import json

from tritonops.core.config import derive_config, render_pbtxt, to_load_json
from tritonops.core.signature import Signature, TensorSpec

BATCHED = Signature(
    (TensorSpec("features", "FP32", (-1, 4)),),
    (TensorSpec("probabilities", "FP32", (-1, 2)), TensorSpec("label", "INT64", (-1,))),
)
FIXED = Signature((TensorSpec("image", "UINT8", (3, 224, 224)),), (TensorSpec("logits", "FP16", (1000,)),))


def test_batching_when_every_first_dim_is_dynamic() -> None:
    config = derive_config("fraud", BATCHED, 13, max_batch_size=32)
    assert config.max_batch_size == 32
    assert config.tensor_dims(BATCHED.inputs[0]) == (4,)
    assert config.tensor_dims(BATCHED.outputs[1]) == ()


def test_no_batching_when_a_first_dim_is_fixed() -> None:
    assert derive_config("m", FIXED, 1).max_batch_size == 0
    mixed = Signature(BATCHED.inputs, (TensorSpec("p", "FP32", (1, 2)),))
    assert derive_config("m", mixed, 1).max_batch_size == 0


def test_pbtxt_pins_the_version_and_states_the_interface() -> None:
    text = render_pbtxt(derive_config("fraud", BATCHED, 13, max_batch_size=8))
    expected_lines = [
        'name: "fraud"',
        'backend: "onnxruntime"',
        "max_batch_size: 8",
        "version_policy: { specific: { versions: [ 13 ] } }",
        '    name: "features"',
        "    data_type: TYPE_FP32",
        "    dims: [ 4 ]",
        '    name: "label"',
        "    data_type: TYPE_INT64",
        "    dims: [  ]",
    ]
    for line in expected_lines:
        assert line in text.splitlines(), line


def test_pbtxt_for_fixed_shapes_keeps_all_dims() -> None:
    text = render_pbtxt(derive_config("vision", FIXED, 2))
    assert "max_batch_size: 0" in text
    assert "    dims: [ 3, 224, 224 ]" in text.splitlines()
    assert "    data_type: TYPE_FP16" in text.splitlines()


def test_strings_are_type_string_in_configs() -> None:
    sig = Signature((TensorSpec("text", "BYTES", (-1, 1)),), (TensorSpec("score", "FP32", (-1, 1)),))
    config = derive_config("nlp", sig, 1)
    assert "data_type: TYPE_STRING" in render_pbtxt(config)
    assert json.loads(to_load_json(config))["input"][0]["data_type"] == "TYPE_STRING"


def test_load_json_matches_the_pbtxt() -> None:
    config = derive_config("fraud", BATCHED, 3, max_batch_size=16).with_versions([5, 3, 5])
    body = json.loads(to_load_json(config))
    assert body["version_policy"] == {"specific": {"versions": [3, 5]}}
    assert body["max_batch_size"] == 16
    assert [t["dims"] for t in body["output"]] == [[2], []]
    assert "versions: [ 3, 5 ]" in render_pbtxt(config)


def test_rendering_is_deterministic() -> None:
    config = derive_config("fraud", BATCHED, 13)
    assert render_pbtxt(config) == render_pbtxt(derive_config("fraud", BATCHED, 13))
