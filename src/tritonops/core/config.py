"""Triton model configuration, derived from the ONNX signature.

One ``config.pbtxt`` sits at the model root and serves every version, so a
version switch can never pick up a mismatched config. Its ``version_policy``
is pinned to the committed version: a Triton that restarts (or that loads the
model for the first time) serves exactly what ``current.json`` says, never the
highest version directory that happens to exist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tritonops.core.signature import Signature, TensorSpec

DEFAULT_MAX_BATCH_SIZE = 64


@dataclass(frozen=True)
class ModelConfig:
    """What tritonops writes to ``config.pbtxt``."""

    name: str
    signature: Signature
    versions: tuple[int, ...]
    max_batch_size: int = 0
    backend: str = "onnxruntime"
    default_model_filename: str = "model.onnx"

    def with_versions(self, versions: Sequence[int]) -> ModelConfig:
        return replace(self, versions=tuple(sorted(set(versions))))

    def tensor_dims(self, spec: TensorSpec) -> tuple[int, ...]:
        """Dims as Triton's config states them: without the batch dim when batching."""
        return spec.dims[1:] if self.max_batch_size > 0 else spec.dims


def derive_config(
    name: str,
    signature: Signature,
    version: int,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> ModelConfig:
    """The config for one version: batching on when the first dim is dynamic everywhere."""
    batch = max_batch_size if signature.batchable and max_batch_size > 0 else 0
    return ModelConfig(name=name, signature=signature, versions=(version,), max_batch_size=batch)


def _tensor_block(kind: str, specs: Sequence[TensorSpec], config: ModelConfig) -> list[str]:
    lines = [f"{kind} ["]
    for i, spec in enumerate(specs):
        dims = ", ".join(str(d) for d in config.tensor_dims(spec))
        sep = "," if i < len(specs) - 1 else ""
        lines += [
            "  {",
            f"    name: {json.dumps(spec.name)}",
            f"    data_type: TYPE_{spec.datatype if spec.datatype != 'BYTES' else 'STRING'}",
            f"    dims: [ {dims} ]",
            "  }" + sep,
        ]
    lines.append("]")
    return lines


def render_pbtxt(config: ModelConfig) -> str:
    """Render ``config.pbtxt`` (protobuf text format), deterministic byte for byte."""
    versions = ", ".join(str(v) for v in config.versions)
    lines = [
        "# Written by tritonops. The version policy is pinned to the committed version;",
        "# change production with `tritonops deploy` or `tritonops rollback`, not by hand.",
        f"name: {json.dumps(config.name)}",
        f"backend: {json.dumps(config.backend)}",
        f"max_batch_size: {config.max_batch_size}",
        f"default_model_filename: {json.dumps(config.default_model_filename)}",
        f"version_policy: {{ specific: {{ versions: [ {versions} ] }} }}",
    ]
    lines += _tensor_block("input", config.signature.inputs, config)
    lines += _tensor_block("output", config.signature.outputs, config)
    lines.append("instance_group [ { kind: KIND_CPU, count: 1 } ]")
    return "\n".join(lines) + "\n"


def to_load_json(config: ModelConfig) -> str:
    """The same config as JSON, for the ``config`` override of Triton's load API.

    Loading with an override lets tritonops choose which versions a replica
    holds during a deploy without touching the committed ``config.pbtxt``.
    """

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        dtype = "STRING" if spec.datatype == "BYTES" else spec.datatype
        return {"name": spec.name, "data_type": f"TYPE_{dtype}", "dims": list(config.tensor_dims(spec))}

    body: dict[str, Any] = {
        "name": config.name,
        "backend": config.backend,
        "max_batch_size": config.max_batch_size,
        "default_model_filename": config.default_model_filename,
        "version_policy": {"specific": {"versions": list(config.versions)}},
        "input": [tensor(s) for s in config.signature.inputs],
        "output": [tensor(s) for s in config.signature.outputs],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }
    return json.dumps(body, sort_keys=True)
