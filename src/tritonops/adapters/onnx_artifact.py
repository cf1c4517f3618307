"""Inspect a downloaded ONNX artefact: complete, valid, and what its signature is."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tritonops.core.signature import DYNAMIC, Signature, TensorSpec, triton_datatype
from tritonops.errors import ArtifactInvalid

MODEL_FILENAME = "model.onnx"
_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(version_dir: Path) -> dict[str, str]:
    """sha256 of every file under a version directory, by relative path."""
    return {
        str(p.relative_to(version_dir)): sha256_file(p) for p in sorted(version_dir.rglob("*")) if p.is_file()
    }


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph, its node attributes and subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _external_files(model: Any, version_dir: Path) -> list[tuple[str, int]]:
    """(location, bytes needed) for every tensor stored outside the .onnx file."""
    import onnx

    needed: dict[str, int] = {}
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (version_dir / location).resolve()
        if not location or version_dir.resolve() not in target.parents:
            raise ArtifactInvalid(
                f"tensor {tensor.name!r} points at external data {location!r} outside the model directory"
            )
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", 0))
        except ValueError:
            raise ArtifactInvalid(
                f"tensor {tensor.name!r} has a malformed external-data offset/length "
                f"({info.get('offset')!r}, {info.get('length')!r})"
            ) from None
        if offset < 0 or length < 0:
            raise ArtifactInvalid(f"tensor {tensor.name!r} has a negative external-data offset/length")
        end = offset + length
        needed[location] = max(needed.get(location, 0), end)
    return sorted(needed.items())


def inspect(version_dir: Path) -> Signature:
    """Check ``version_dir/model.onnx`` (and its external data) and return its signature.

    Raises ArtifactInvalid when the file is not ONNX, fails the ONNX checker,
    or references external data that is missing or shorter than declared.
    """
    import onnx

    path = version_dir / MODEL_FILENAME
    if not path.is_file():
        raise ArtifactInvalid(f"{path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, ValueError, ...
        raise ArtifactInvalid(f"{path.name} is not a readable ONNX model: {exc}") from exc
    for location, needed in _external_files(model, version_dir):
        data = version_dir / location
        if not data.is_file():
            raise ArtifactInvalid(f"external data file {location!r} of {path.name} is missing")
        size = os.path.getsize(data)
        if needed and size < needed:
            raise ArtifactInvalid(
                f"external data file {location!r} has {size} bytes, the model needs {needed}"
            )
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise ArtifactInvalid(f"{path.name} fails the ONNX checker: {exc}") from exc

    initializers = {i.name for i in model.graph.initializer}

    def spec(value_info: object) -> TensorSpec:
        t = value_info.type.tensor_type  # type: ignore[attr-defined]
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DYNAMIC for d in t.shape.dim
        )
        try:
            datatype = triton_datatype(t.elem_type)
        except ValueError as exc:
            raise ArtifactInvalid(f"tensor {value_info.name!r}: {exc}") from exc  # type: ignore[attr-defined]
        return TensorSpec(value_info.name, datatype, dims)  # type: ignore[attr-defined]

    inputs = tuple(spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(spec(v) for v in model.graph.output)
    if not inputs or not outputs:
        raise ArtifactInvalid(f"{path.name} declares no inputs or no outputs")
    return Signature(inputs, outputs)
