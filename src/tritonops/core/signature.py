"""Tensor signatures: what a model takes and returns, in Triton's terms.

ONNX element types are given as the integer values of ``onnx.TensorProto``
so that this module needs no ``onnx`` import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

DYNAMIC = -1

# onnx.TensorProto.DataType -> Triton datatype
_ONNX_TO_TRITON: dict[int, str] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
    16: "BF16",
}

# Triton datatype -> numpy dtype string (BYTES is an object array of bytes)
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})


def triton_datatype(onnx_elem_type: int) -> str:
    """Map an ONNX element type to Triton's datatype name."""
    try:
        return _ONNX_TO_TRITON[onnx_elem_type]
    except KeyError:
        raise ValueError(f"ONNX element type {onnx_elem_type} has no Triton datatype") from None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, Triton datatype, full dims (``-1`` = dynamic)."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["dims"]))


@dataclass(frozen=True)
class Signature:
    """A model's full interface, dims including any batch dimension."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def batchable(self) -> bool:
        """True when every tensor's first dim is dynamic: Triton may batch requests."""
        tensors = self.inputs + self.outputs
        return bool(tensors) and all(t.dims and t.dims[0] == DYNAMIC for t in tensors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )


def by_name(specs: Iterable[TensorSpec]) -> dict[str, TensorSpec]:
    return {s.name: s for s in specs}


Array = npt.NDArray[Any]
"""A tensor's values (any dtype)."""
