"""The model configuration: Triton's own protobuf schema, merge precedence, owned fields, shapes.

Expected texts are written out by hand from Triton's model-configuration rules, not produced by
the code under test.
"""

import json

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from tritonops.core import config as cfg
from tritonops.core.config import ConfigSource
from tritonops.core.signature import Signature, TensorSpec
from tritonops.errors import ArtifactInvalid, ConfigInvalid

# What skl2onnx emits for a classifier: a rank-1 label next to the probabilities.
CLASSIFIER = Signature(
    (TensorSpec("features", "FP32", (-1, 4)),),
    (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
)
FIXED = Signature((TensorSpec("image", "UINT8", (3, 224, 224)),), (TensorSpec("logits", "FP16", (1000,)),))


def template(text: str, where: str = "fraud.pbtxt") -> ConfigSource:
    return ConfigSource(text, where, operator=True)


def artifact(text: str, widen: tuple[str, ...] = ()) -> ConfigSource:
    allowed = cfg.ArtifactFields.widened(widen)
    return ConfigSource(text, "the artefact's config.pbtxt", operator=False, allowed=allowed)


GOLDEN_CLASSIFIER = """\
# Written by tritonops. The version policy is pinned to the committed version;
# change production with `tritonops deploy` or `tritonops rollback`, not by hand.
name: "fraud"
version_policy {
  specific {
    versions: 13
  }
}
max_batch_size: 64
input {
  name: "features"
  data_type: TYPE_FP32
  dims: 4
}
output {
  name: "label"
  data_type: TYPE_INT64
  dims: 1
  reshape {
  }
}
output {
  name: "probabilities"
  data_type: TYPE_FP32
  dims: 2
}
default_model_filename: "model.onnx"
backend: "onnxruntime"
"""


def test_golden_defaults_for_a_classifier_with_a_rank1_output() -> None:
    config = cfg.effective_config("fraud", CLASSIFIER)
    assert cfg.render_pbtxt(cfg.pinned(config, [13])) == GOLDEN_CLASSIFIER


GPU_TEMPLATE = """\
# prod: two instances on GPU 0, dynamic batching, TensorRT, warmup
max_batch_size: 32
instance_group [ { kind: KIND_GPU, count: 2, gpus: [ 0 ] } ]
dynamic_batching { preferred_batch_size: [ 8, 16 ], max_queue_delay_microseconds: 500 }
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
model_warmup [ { name: "zeros", batch_size: 8,
  inputs { key: "features", value: { data_type: TYPE_FP32, dims: [ 4 ], zero_data: true } } } ]
"""

# Protobuf's text format prints fields in field-number order (backend is 17, after warmup's 16).
GOLDEN_GPU = """\
# Written by tritonops. The version policy is pinned to the committed version;
# change production with `tritonops deploy` or `tritonops rollback`, not by hand.
name: "fraud"
version_policy {
  specific {
    versions: 2
  }
}
max_batch_size: 32
input {
  name: "features"
  data_type: TYPE_FP32
  dims: 4
}
output {
  name: "label"
  data_type: TYPE_INT64
  dims: 1
  reshape {
  }
}
output {
  name: "probabilities"
  data_type: TYPE_FP32
  dims: 2
}
instance_group {
  count: 2
  gpus: 0
  kind: KIND_GPU
}
default_model_filename: "model.onnx"
dynamic_batching {
  preferred_batch_size: 8
  preferred_batch_size: 16
  max_queue_delay_microseconds: 500
}
optimization {
  execution_accelerators {
    gpu_execution_accelerator {
      name: "tensorrt"
    }
  }
}
model_warmup {
  name: "zeros"
  batch_size: 8
  inputs {
    key: "features"
    value {
      data_type: TYPE_FP32
      dims: 4
      zero_data: true
    }
  }
}
backend: "onnxruntime"
"""


def test_golden_gpu_template_passes_through_untouched() -> None:
    config = cfg.effective_config("fraud", CLASSIFIER, [template(GPU_TEMPLATE)])
    text = cfg.render_pbtxt(cfg.pinned(config, [2]))
    assert text == GOLDEN_GPU
    # What Triton parses back is the same message (the file is valid for Triton's schema).
    assert text_format.Parse(text, pb.ModelConfig()) == cfg.pinned(config, [2])


def test_no_instance_group_by_default() -> None:
    config = cfg.effective_config("m", CLASSIFIER)
    assert len(config.instance_group) == 0  # Triton then uses every GPU, else the CPU


def test_precedence_template_over_artifact_over_defaults() -> None:
    art = artifact(
        'name: "whatever"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 16\n'
        'instance_group [ { kind: KIND_CPU, count: 4 } ]\nparameters { key: "a" value { string_value: "1" } }\n',
        widen=("instance_group", "parameters"),
    )
    tpl = template("instance_group [ { kind: KIND_CPU, count: 2 } ]\n")
    config = cfg.effective_config("fraud", CLASSIFIER, [art, tpl])
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb.ModelInstanceGroup.KIND_CPU, 2)]
    assert config.max_batch_size == 16  # from the artefact: the template did not set it
    assert config.parameters["a"].string_value == "1"
    # Owned fields: always ours, whatever the artefact said.
    assert (config.name, config.backend, config.platform) == ("fraud", "onnxruntime", "")
    assert config.default_model_filename == "model.onnx"
    assert not config.HasField("version_policy")


def test_template_replaces_a_field_it_sets_instead_of_appending() -> None:
    art = artifact(
        "instance_group [ { kind: KIND_CPU, count: 4 }, { kind: KIND_CPU, count: 1 } ]\n",
        widen=("instance_group",),
    )
    config = cfg.effective_config("m", CLASSIFIER, [art, template("instance_group [ { count: 3 } ]\n")])
    assert [g.count for g in config.instance_group] == [3]


def test_platform_synonym_and_same_name_are_accepted_in_a_template() -> None:
    config = cfg.effective_config(
        "fraud",
        CLASSIFIER,
        [template('name: "fraud"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\n')],
    )
    assert (config.backend, config.platform) == ("onnxruntime", "")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('name: "other"', "name 'other'"),
        ('backend: "tensorrt"', "backend 'tensorrt'"),
        ('platform: "tensorflow_savedmodel"', "platform 'tensorflow_savedmodel'"),
        ('default_model_filename: "x.onnx"', "default_model_filename"),
        ("version_policy { latest { num_versions: 2 } }", "version_policy"),
    ],
)
def test_template_cannot_override_owned_fields(text: str, named: str) -> None:
    with pytest.raises(ConfigInvalid, match=named):
        cfg.effective_config("fraud", CLASSIFIER, [template(text)])


def test_misspelt_field_names_the_file_line_and_field() -> None:
    text = "max_batch_size: 8\ninstance_grup [ { count: 2 } ]\n"
    with pytest.raises(ConfigInvalid) as err:
        cfg.effective_config("fraud", CLASSIFIER, [template(text, "/etc/tmpl/fraud.pbtxt")])
    message = str(err.value)
    assert message.startswith("/etc/tmpl/fraud.pbtxt:2:1:")
    assert "instance_grup" in message and "\n" not in message


def test_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigInvalid, match=r"fraud.pbtxt:1:.*max_batch_size"):
        cfg.effective_config("fraud", CLASSIFIER, [template('max_batch_size: "many"\n')])


def test_a_bad_artefact_config_is_an_invalid_artefact_not_bad_input() -> None:
    with pytest.raises(ArtifactInvalid, match="artefact"):
        cfg.effective_config("fraud", CLASSIFIER, [artifact("dynamic_batching { nonsense: 1 }\n")])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('input [ { name: "feature", dims: [ 4 ] } ]', "input 'feature' is not in the ONNX file"),
        ('input [ { name: "features", data_type: TYPE_FP64 } ]', "data_type TYPE_FP64"),
        ('input [ { name: "features", dims: [ 5 ] } ]', r"dims \[5\] does not fit the ONNX shape \[4\]"),
        ('output [ { name: "probabilities", dims: [ 2, 1 ] } ]', "does not fit"),
        # dims [1] for a batch-only tensor needs reshape { shape: [ ] }: the model sees [N], not [N, 1].
        ('output [ { name: "label", dims: [ 1 ] } ]', r"dims \[1\] does not fit the ONNX shape \[\]"),
        (
            'input [ { name: "features", dims: [ 3 ], reshape { shape: [ 4 ] } } ]',
            "different numbers of elements",
        ),
    ],
)
def test_template_contradicting_the_onnx_file_names_the_tensor(text: str, named: str) -> None:
    with pytest.raises(ConfigInvalid, match=named):
        cfg.effective_config("fraud", CLASSIFIER, [template(text)])


def test_template_may_reshape_compatibly() -> None:
    text = 'input [ { name: "features", dims: [ 2, 2 ], reshape { shape: [ 4 ] } } ]'
    config = cfg.effective_config("fraud", CLASSIFIER, [template(text)])
    [features] = config.input
    assert list(features.dims) == [2, 2] and list(features.reshape.shape) == [4]
    assert features.data_type == pb.TYPE_FP32  # owned: from the ONNX file even when unset


def test_dynamic_dims_are_compatible_with_fixed_template_dims() -> None:
    sig = Signature((TensorSpec("tokens", "INT64", (-1, -1)),), (TensorSpec("score", "FP32", (-1, 1)),))
    config = cfg.effective_config("nlp", sig, [template('input [ { name: "tokens", dims: [ 128 ] } ]')])
    assert list(config.input[0].dims) == [128]
    assert list(cfg.effective_config("nlp", sig).input[0].dims) == [-1]


def test_batching_follows_the_template_and_dims_follow_batching() -> None:
    lower = cfg.effective_config("fraud", CLASSIFIER, [template("max_batch_size: 8")])
    assert lower.max_batch_size == 8
    off = cfg.effective_config("fraud", CLASSIFIER, [template("max_batch_size: 0  # no batching")])
    assert off.max_batch_size == 0
    assert [list(t.dims) for t in off.output] == [[-1], [-1, 2]]  # the batch dim is now in dims
    assert not off.output[0].HasField("reshape")


def test_batching_needs_a_dynamic_first_dim() -> None:
    assert cfg.effective_config("vision", FIXED).max_batch_size == 0
    with pytest.raises(ConfigInvalid, match=r"fixes it on \['image', 'logits'\]"):
        cfg.effective_config("vision", FIXED, [template("max_batch_size: 4")])


def test_fixed_shapes_keep_all_dims_and_strings_are_type_string() -> None:
    config = cfg.effective_config("vision", FIXED)
    assert list(config.input[0].dims) == [3, 224, 224]
    sig = Signature((TensorSpec("text", "BYTES", (-1, 1)),), (TensorSpec("score", "FP32", (-1, 1)),))
    body = json.loads(cfg.to_load_json(cfg.effective_config("nlp", sig)))
    assert body["input"][0]["data_type"] == "TYPE_STRING"


def test_load_json_is_the_same_config() -> None:
    config = cfg.pinned(
        cfg.effective_config("fraud", CLASSIFIER, [template(GPU_TEMPLATE)]), [5, 3, 5], "_c.fraud"
    )
    body = json.loads(cfg.to_load_json(config))
    assert body["name"] == "_c.fraud"
    assert body["version_policy"] == {"specific": {"versions": ["3", "5"]}}
    assert body["instance_group"] == [{"count": 2, "gpus": [0], "kind": "KIND_GPU"}]
    assert body["output"][0] == {"name": "label", "data_type": "TYPE_INT64", "dims": ["1"], "reshape": {}}


def test_digest_ignores_version_and_name_and_diff_names_fields() -> None:
    base = cfg.effective_config("fraud", CLASSIFIER)
    assert cfg.digest(cfg.pinned(base, [1])) == cfg.digest(cfg.pinned(base, [2], "_c.fraud"))
    tuned = cfg.effective_config("fraud", CLASSIFIER, [template(GPU_TEMPLATE)])
    assert cfg.digest(tuned) != cfg.digest(base)
    assert cfg.diff(base, tuned) == {
        "added": ["dynamic_batching", "instance_group", "model_warmup", "optimization"],
        "changed": ["max_batch_size"],
        "removed": [],
    }
    assert cfg.diff(tuned, base)["removed"] == [
        "dynamic_batching",
        "instance_group",
        "model_warmup",
        "optimization",
    ]


def test_interface_changes_include_a_lower_max_batch_size() -> None:
    prod = cfg.effective_config("fraud", CLASSIFIER)  # 64
    assert (
        cfg.interface_changes(
            prod, cfg.effective_config("fraud", CLASSIFIER, [template("max_batch_size: 128")])
        )
        == []
    )
    [problem] = cfg.interface_changes(
        prod, cfg.effective_config("fraud", CLASSIFIER, [template("max_batch_size: 8")])
    )
    assert "max_batch_size 64 -> 8" in problem
    reshaped = cfg.effective_config(
        "fraud",
        CLASSIFIER,
        [template('input [ { name: "features", dims: [ 2, 2 ], reshape { shape: [ 4 ] } } ]')],
    )
    assert cfg.interface_changes(prod, reshaped) == ["input 'features' shape [-1, 4] -> [-1, 2, 2]"]


def test_client_and_model_shapes_follow_reshape() -> None:
    import numpy as np

    config = cfg.effective_config("fraud", CLASSIFIER)
    client = cfg.client_signature(config)
    assert [t.dims for t in client.outputs] == [(-1, 1), (-1, 2)]
    reshaped = cfg.effective_config(
        "fraud",
        CLASSIFIER,
        [template('input [ { name: "features", dims: [ 2, 2 ], reshape { shape: [ 4 ] } } ]')],
    )
    example = {"features": np.arange(8, dtype=np.float32).reshape(2, 4)}
    sent = cfg.client_shaped(reshaped, example)
    assert sent["features"].shape == (2, 2, 2)
    assert cfg.model_shaped(reshaped, sent)["features"].shape == (2, 4)


def test_the_readme_template_is_valid_for_a_classifier() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```protobuf\n", 1)[1].split("```", 1)[0]
    config = cfg.effective_config("fraud", CLASSIFIER, [template(block, "README.md")])
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert config.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "tensorrt"


@pytest.mark.parametrize(
    ("committed_sig", "committed_text", "candidate_sig", "candidate_text", "expect"),
    [
        (None, None, CLASSIFIER, "", []),  # nothing committed: nothing to break
        (CLASSIFIER, "", CLASSIFIER, "", []),
        (CLASSIFIER, "", CLASSIFIER, "max_batch_size: 8\n", ["max_batch_size 64 -> 8"]),
        (
            CLASSIFIER,
            "",
            Signature(
                (TensorSpec("features", "FP32", (-1, 5)),),
                (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
            ),
            "",
            ["features"],
        ),
    ],
    ids=["first-deploy", "same", "smaller-batch", "tensor-shape"],
)
def test_the_interface_gate(
    committed_sig: Signature | None,
    committed_text: str | None,
    candidate_sig: Signature,
    candidate_text: str,
    expect: list[str],
) -> None:
    committed = (
        None
        if committed_sig is None
        else cfg.effective_config(
            "fraud", committed_sig, [template(committed_text)] if committed_text else []
        )
    )
    candidate = cfg.effective_config(
        "fraud", candidate_sig, [template(candidate_text)] if candidate_text else []
    )
    changes = cfg.interface_gate(committed_sig, committed, candidate_sig, candidate)
    assert len(changes) == len(expect) and all(e in c for e, c in zip(expect, changes, strict=True)), changes
