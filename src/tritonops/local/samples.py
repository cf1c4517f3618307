"""Small ONNX models built in code, for the demo, the tests and the benchmarks.

Nothing is downloaded: each model is a few nodes with deterministic weights.
Variants reproduce the failures tritonops must catch.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tritonops.core.signature import Array

N_FEATURES = 4
N_CLASSES = 2


def _weights(seed: int, rows: int, cols: int) -> Array:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, cols)).astype(np.float32)


def linear_model(
    seed: int = 1,
    n_classes: int = N_CLASSES,
    declared_classes: int | None = None,
    produce_nan: bool = False,
    extra_weights: int = 0,
    input_type: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    """``probabilities = softmax(features @ W + b)``: input ``features`` [N, 4].

    * ``n_classes``: what the graph really computes.
    * ``declared_classes``: what the graph's output says it returns (default: the
      same). A mismatch is a model that loads fine and answers with the wrong shape.
    * ``produce_nan``: multiplies by NaN; loads and infers, returns garbage.
    * ``extra_weights``: a float initializer of that many elements that does not
      change the answer, to make the artefact large (and exercise ONNX external data).
    """
    declared = declared_classes if declared_classes is not None else n_classes
    w = numpy_helper.from_array(_weights(seed, N_FEATURES, n_classes), "W")
    b = numpy_helper.from_array(_weights(seed + 100, 1, n_classes)[0], "B")
    nodes = []
    features = "features"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["features"], ["features_f"], to=TensorProto.FLOAT))
        features = "features_f"
    nodes += [
        helper.make_node("MatMul", [features, "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
    ]
    inits = [w, b]
    last = "logits"
    if produce_nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "NAN"))
        nodes.append(helper.make_node("Mul", ["logits", "NAN"], ["logits_nan"]))
        last = "logits_nan"
    nodes.append(helper.make_node("Softmax", [last], ["probabilities"], axis=1))
    if extra_weights:
        # Used (summed, times zero, added to the output) so runtimes cannot drop it:
        # loading the model really reads these bytes; the answer does not change.
        inits.append(numpy_helper.from_array(np.ones(extra_weights, dtype=np.float32), "bulk"))
        inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.float32), "ZERO"))
        nodes[-1:-1] = [
            helper.make_node("ReduceSum", ["bulk"], ["bulk_sum"], keepdims=1),
            helper.make_node("Mul", ["bulk_sum", "ZERO"], ["bulk_zero"]),
            helper.make_node("Add", [last, "bulk_zero"], ["logits_bulk"]),
        ]
        nodes[-1] = helper.make_node("Softmax", ["logits_bulk"], ["probabilities"], axis=1)
    graph = helper.make_graph(
        nodes,
        f"linear_{seed}",
        [helper.make_tensor_value_info("features", input_type, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", declared])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def classifier_model(seed: int = 1) -> onnx.ModelProto:
    """What skl2onnx emits for a classifier: ``label`` [N] (INT64, rank 1) and ``probabilities`` [N, 2].

    A batched tensor whose only dim is the batch: Triton needs ``dims: [1]`` with
    ``reshape { shape: [] }`` for it, and refuses ``dims: []`` at load.
    """
    w = numpy_helper.from_array(_weights(seed, N_FEATURES, N_CLASSES), "W")
    b = numpy_helper.from_array(_weights(seed + 100, 1, N_CLASSES)[0], "B")
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        f"classifier_{seed}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", N_CLASSES]),
        ],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def reference_output(model: onnx.ModelProto, features: Array) -> Array:
    """What the model should answer, computed with onnxruntime in this process."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probabilities"], {"features": features})[0])


def unloadable_model() -> onnx.ModelProto:
    """Valid ONNX that passes the checker, but no runtime implements its operator.

    The interface matches :func:`linear_model`, so it passes every check before
    Triton and fails at load, as a model built for a newer runtime would.
    """
    graph = helper.make_graph(
        [helper.make_node("FraudScore", ["features"], ["probabilities"], domain="ai.tritonops.test")],
        "unloadable",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", N_CLASSES])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.tritonops.test", 1)],
    )
    model.ir_version = 8
    return model


def slow_model(depth: int = 48, width: int = 1024, seed: int = 1) -> onnx.ModelProto:
    """Same interface as :func:`linear_model`, ~100x slower: ``depth`` dense layers of ``width``.

    One weight matrix is shared by every layer, so the file stays small (4 MiB)
    while each request costs ``depth`` large matrix products: a latency
    regression, not a correctness one.
    """
    rng = np.random.default_rng(seed)
    expand = numpy_helper.from_array(rng.standard_normal((N_FEATURES, width)).astype(np.float32), "E")
    hidden = numpy_helper.from_array(
        (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "H"
    )
    head = numpy_helper.from_array(_weights(seed, width, N_CLASSES) / np.float32(np.sqrt(width)), "O")
    nodes = [helper.make_node("MatMul", ["features", "E"], ["h0"])]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "H"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{depth}", "O"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", N_CLASSES])],
        initializer=[expand, hidden, head],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def sqrt_model(seed: int = 1) -> onnx.ModelProto:
    """``softmax(sqrt(features) @ W + b)``: same interface as :func:`linear_model`, but NaN for
    any negative feature (sqrt(-x) = NaN).

    A model whose valid inputs are a subset of its input type's range (counts, prices,
    ages): smoke-testing it with a random input fails; with the team's input example it passes.
    """
    w = numpy_helper.from_array(_weights(seed, N_FEATURES, N_CLASSES), "W")
    b = numpy_helper.from_array(_weights(seed + 100, 1, N_CLASSES)[0], "B")
    nodes = [
        helper.make_node("Sqrt", ["features"], ["roots"]),
        helper.make_node("MatMul", ["roots", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        f"sqrt_{seed}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", N_CLASSES])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
