import numpy as np
import pytest

from tritonops.core.signature import Signature, TensorSpec
from tritonops.core.verdict import interface_changes, smoke_problems, synthesize_inputs

SIG = Signature((TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1, 2)),))


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (SIG, []),
        (Signature(SIG.inputs, (TensorSpec("y", "FP32", (-1, 3)),)), ["output 'y' shape [-1, 2] -> [-1, 3]"]),
        (
            Signature(SIG.inputs, (TensorSpec("y", "FP32", (-1, -1)),)),
            ["output 'y' shape [-1, 2] -> [-1, -1]"],
        ),
        (Signature((TensorSpec("x", "FP64", (-1, 4)),), SIG.outputs), ["input 'x' datatype FP32 -> FP64"]),
        (
            Signature((TensorSpec("z", "FP32", (-1, 4)),), SIG.outputs),
            ["input 'x' was removed", "input 'z' was added"],
        ),
    ],
)
def test_interface_changes(candidate: Signature, expected: list[str]) -> None:
    assert interface_changes(SIG, candidate) == expected


def _answer(array: np.ndarray, datatype: str = "FP32") -> dict[str, tuple[str, np.ndarray]]:
    return {"y": (datatype, array)}


INPUTS = {"x": np.zeros((2, 4), np.float32)}


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        (_answer(np.full((2, 2), 0.5, np.float32)), None),
        (_answer(np.array([[0.5, np.nan], [0.1, 0.2]], np.float32)), "1 non-finite value"),
        (_answer(np.array([[np.inf, 0], [0.1, 0.2]], np.float32)), "non-finite"),
        (_answer(np.zeros((2, 3), np.float32)), "shape [2, 3], expected [2, 2]"),
        (_answer(np.zeros((1, 2), np.float32)), "shape [1, 2], expected [2, 2]"),
        (_answer(np.zeros((2, 2), np.float64), "FP64"), "datatype FP64, expected FP32"),
        ({}, "outputs missing"),
        ({**_answer(np.zeros((2, 2), np.float32)), "extra": ("FP32", np.zeros(1))}, "unexpected outputs"),
    ],
)
def test_smoke_verdicts(outputs: dict, problem: str | None) -> None:
    problems = smoke_problems(SIG, INPUTS, outputs)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_synthesized_inputs_follow_the_signature() -> None:
    sig = Signature(
        (
            TensorSpec("a", "FP16", (-1, 3, -1)),
            TensorSpec("b", "INT64", (5,)),
            TensorSpec("c", "BOOL", (-1,)),
            TensorSpec("s", "BYTES", (-1, 1)),
        ),
        SIG.outputs,
    )
    inputs = synthesize_inputs(sig, batch=2)
    assert inputs["a"].shape == (2, 3, 1) and inputs["a"].dtype == np.float16
    assert inputs["b"].shape == (5,) and inputs["b"].dtype == np.int64
    assert inputs["c"].dtype == bool
    assert inputs["s"].dtype == object and inputs["s"][0, 0] == b"tritonops"
    again = synthesize_inputs(sig, batch=2)
    np.testing.assert_array_equal(inputs["a"], again["a"])  # deterministic
