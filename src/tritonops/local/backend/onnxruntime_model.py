"""A Python-based Triton backend named ``onnxruntime`` for machines without the native one.

Triton serves every model whose config says ``backend: "onnxruntime"`` with
``<backend-dir>/onnxruntime/model.py`` when the native ONNX Runtime backend is
absent (as in the ``nvidia-pytriton`` wheel). This file is that ``model.py``.

The Python backend itself does not check what a model returns against the
config; Triton's native ONNX Runtime backend does. So this shim makes the same
checks, at load (config vs. the ONNX graph) and per request (inputs and outputs
vs. the config), so that a model that would fail in production fails here too.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}


def _model_dims(shape):
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _fits(expected, actual):
    return len(expected) == len(actual) and all(e == -1 or e == a for e, a in zip(expected, actual))


def _compatible(config_dims, model_dims):
    """Config dims must agree with the graph's dims wherever the graph fixes them."""
    return len(config_dims) == len(model_dims) and all(
        m == -1 or c == m for c, m in zip(config_dims, model_dims)
    )


class TritonPythonModel:
    def initialize(self, args):
        self.config = json.loads(args["model_config"])
        self.name = args["model_name"]
        filename = self.config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.batching = int(self.config.get("max_batch_size", 0)) > 0
        self.inputs = self._check_against_graph("input", self.session.get_inputs())
        self.outputs = self._check_against_graph("output", self.session.get_outputs())

    def _check_against_graph(self, kind, graph_tensors):
        configured = {t["name"]: t for t in self.config.get(kind, [])}
        graph = {t.name: t for t in graph_tensors}
        if set(configured) != set(graph):
            raise pb_utils.TritonModelException(
                f"unable to load model '{self.name}': configuration expects {kind}s "
                f"{sorted(configured)}, model provides {sorted(graph)}"
            )
        specs = {}
        for name, tensor in configured.items():
            node = graph[name]
            expected_type = _ORT_TO_TRITON.get(node.type)
            if tensor["data_type"] != expected_type:
                raise pb_utils.TritonModelException(
                    f"unable to load model '{self.name}': {kind} '{name}' datatype "
                    f"{tensor['data_type']} does not match model datatype {expected_type}"
                )
            dims = [int(d) for d in tensor.get("dims", [])]
            # With `reshape`, clients use `dims` and the model sees `reshape.shape`.
            reshape = tensor.get("reshape")
            model_side = [int(d) for d in reshape.get("shape", [])] if reshape is not None else dims
            model_dims = _model_dims(node.shape)
            if self.batching:
                if not model_dims or model_dims[0] != -1:
                    raise pb_utils.TritonModelException(
                        f"unable to load model '{self.name}': max_batch_size > 0 but {kind} "
                        f"'{name}' has no dynamic batch dimension (model dims {model_dims})"
                    )
                model_dims = model_dims[1:]
            if not _compatible(model_side, model_dims):
                raise pb_utils.TritonModelException(
                    f"unable to load model '{self.name}': {kind} '{name}' "
                    f"{'reshape' if reshape is not None else 'dims'} {model_side} "
                    f"do not match model dims {model_dims}"
                )
            specs[name] = (tensor["data_type"], dims, model_side if reshape is not None else None)
        return specs

    def _expected(self, dims, batch):
        return ([batch] + dims) if self.batching else dims

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._run(request)))
            except Exception as exc:  # one bad request must not fail the others
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _run(self, request):
        feed = {}
        batch = None
        for name, (_dtype, dims, reshape) in self.inputs.items():
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"input '{name}' is missing")
            array = tensor.as_numpy()
            batch = array.shape[0] if self.batching and array.ndim else batch
            if reshape is not None and _fits(self._expected(reshape, batch), list(array.shape)):
                feed[name] = array  # Triton already applied the reshape
                continue
            if not _fits(self._expected(dims, batch), list(array.shape)):
                raise ValueError(f"input '{name}' shape {list(array.shape)} does not match {dims}")
            if reshape is not None:
                array = array.reshape([batch] + reshape if self.batching else reshape)
            feed[name] = array
        names = list(self.outputs)
        results = self.session.run(names, feed)
        tensors = []
        for name, value in zip(names, results):
            dtype, dims, reshape = self.outputs[name]
            value = np.asarray(value)
            if reshape is not None and _fits(self._expected(reshape, batch), list(value.shape)):
                value = value.reshape(self._expected(dims, batch))  # clients get `dims`
            expected_np = pb_utils.triton_string_to_numpy(dtype)
            if dtype != "TYPE_STRING" and value.dtype != np.dtype(expected_np):
                raise ValueError(f"output '{name}' datatype {value.dtype} does not match config {dtype}")
            if not _fits(self._expected(dims, batch), list(value.shape)):
                raise ValueError(
                    f"output tensor shape does not match size of output: '{name}' has shape "
                    f"{list(value.shape)}, config expects {self._expected(dims, batch)}"
                )
            tensors.append(pb_utils.Tensor(name, value))
        return tensors
