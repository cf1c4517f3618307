"""Verdicts: is the candidate's interface compatible, and did its smoke inference pass?

Pure functions over signatures and numpy arrays; the engine feeds them what
Triton answered and turns a non-empty list of problems into an error.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tritonops.core.signature import DYNAMIC, FLOAT_TYPES, NUMPY_DTYPES, Array, Signature, by_name


def interface_changes(committed: Signature, candidate: Signature) -> list[str]:
    """Breaking differences between the committed interface and the candidate's.

    Any change of names, datatypes or dims is breaking for a client that was
    written against the committed version — including a fixed dim becoming
    dynamic (the client can no longer rely on it).
    """
    problems: list[str] = []
    for kind, old, new in (
        ("input", committed.inputs, candidate.inputs),
        ("output", committed.outputs, candidate.outputs),
    ):
        old_by, new_by = by_name(old), by_name(new)
        for name in sorted(old_by.keys() - new_by.keys()):
            problems.append(f"{kind} {name!r} was removed")
        for name in sorted(new_by.keys() - old_by.keys()):
            problems.append(f"{kind} {name!r} was added")
        for name in sorted(old_by.keys() & new_by.keys()):
            a, b = old_by[name], new_by[name]
            if a.datatype != b.datatype:
                problems.append(f"{kind} {name!r} datatype {a.datatype} -> {b.datatype}")
            if a.dims != b.dims:
                problems.append(f"{kind} {name!r} shape {list(a.dims)} -> {list(b.dims)}")
    return problems


def synthesize_inputs(signature: Signature, batch: int = 1, seed: int = 0) -> dict[str, Array]:
    """A deterministic input for every tensor: dynamic dims become ``batch`` (first) or 1."""
    rng = np.random.default_rng(seed)
    out: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple((batch if i == 0 else 1) if d == DYNAMIC else d for i, d in enumerate(spec.dims))
        dtype = NUMPY_DTYPES.get(spec.datatype)
        if dtype is None:
            raise ValueError(f"cannot synthesize input {spec.name!r} of type {spec.datatype}")
        if spec.datatype in FLOAT_TYPES:
            out[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif spec.datatype == "BOOL":
            out[spec.name] = rng.integers(0, 2, shape).astype(bool)
        elif spec.datatype == "BYTES":
            out[spec.name] = np.full(shape, b"tritonops", dtype=object)
        else:
            out[spec.name] = rng.integers(0, 2, shape).astype(dtype)
    return out


def smoke_problems(
    signature: Signature,
    inputs: Mapping[str, Array],
    outputs: Mapping[str, tuple[str, Array]],
) -> list[str]:
    """What is wrong with Triton's answer: names, datatypes, shapes, non-finite values.

    ``outputs`` maps output name -> (datatype Triton reported, array). Dims
    that are fixed in the signature must match exactly; a dynamic first dim
    must equal the request's batch size when the model is batchable.
    """
    problems: list[str] = []
    expected = by_name(signature.outputs)
    missing = sorted(expected.keys() - outputs.keys())
    extra = sorted(outputs.keys() - expected.keys())
    if missing:
        problems.append(f"outputs missing from the answer: {missing}")
    if extra:
        problems.append(f"unexpected outputs in the answer: {extra}")
    batch = None
    if signature.batchable and inputs:
        batch = next(iter(inputs.values())).shape[0]
    for name in sorted(expected.keys() & outputs.keys()):
        spec = expected[name]
        datatype, array = outputs[name]
        if datatype != spec.datatype:
            problems.append(f"output {name!r} datatype {datatype}, expected {spec.datatype}")
        want = list(spec.dims)
        if batch is not None:
            want[0] = batch
        shape = list(array.shape)
        if len(shape) != len(want) or any(w not in (DYNAMIC, s) for w, s in zip(want, shape, strict=False)):
            problems.append(f"output {name!r} shape {shape}, expected {want}")
        if spec.datatype in FLOAT_TYPES and array.size and not np.all(np.isfinite(array)):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            problems.append(f"output {name!r} has {bad} non-finite value(s) (NaN/Inf)")
    return problems
